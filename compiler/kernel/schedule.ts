// Schedules: each target fills the `schedule` slot of every kernel from its target record (data,
// not code: STYLE 12). The CPU splits large matrix products by output columns across its threads
// and runs everything else on the calling thread. WebGPU (the `wgsl` slot) gets workgroup sizes and
// tiles chosen for the limits the record assumes (a portable adapter: 256 invocations and 16 KiB of
// workgroup memory), which the WGSL renderer (codegen/wgsl/) writes into each shader as constants.
// CUDA gives each kernel a block size and tiles (codegen/cuda/ renders them as compile-time
// constants). The wasm record shapes its one generic module rather than each kernel.

import type { AttrValue, Entry, Kernel } from '../../runtime/program.ts';
import { cudaSchedule } from './schedule-cuda.ts';

export interface CpuTarget {
  readonly name: 'cpu';
  /** Products of at least this many multiply-adds per token row are split across threads. */
  readonly splitColumnsFrom: number;
}

export const CPU_TARGET: CpuTarget = { name: 'cpu', splitColumnsFrom: 1 << 14 };

export interface WgslTarget {
  readonly name: 'wgsl';
  /** Invocations of a one-dimensional workgroup (elementwise, norms, epilogues, scans). */
  readonly workgroup: number;
  /** Output tile (rows = columns = depth) of the tiled matrix product, one invocation per output. */
  readonly tile: number;
  /** The matrix-vector path: lanes that split K for one output column, columns per workgroup. */
  readonly gemvLanes: number;
  readonly gemvColumns: number;
  /** Products over at most this many rows take the matrix-vector path (decode), more the tiled one. */
  readonly gemvRows: number;
}

export const WGSL_TARGET: WgslTarget = { name: 'wgsl', workgroup: 256, tile: 16, gemvLanes: 64, gemvColumns: 4, gemvRows: 4 };

/** An NVIDIA GPU (sm_80 and later): warp size, threads per block, tiles of each kernel family. */
export interface CudaTarget {
  readonly name: 'cuda';
  readonly warp: number;
  readonly threads: number;
  /** Static shared memory one block may use (bytes). */
  readonly sharedBytes: number;
  /** Matrix products: tensor-core tiles (rows, columns, depth) for many rows; a GEMV of `gemvRows`
   *  rows by `gemvCols` columns per block for up to `gemvUpTo` rows (decode). */
  readonly matmul: { readonly tileM: number; readonly tileN: number; readonly tileK: number; readonly gemvRows: number; readonly gemvCols: number; readonly gemvUpTo: number };
  /** Keys per staged attention tile (a block holds one query row per warp). */
  readonly attention: { readonly keys: number };
  /** Chunk rows per SSD output tile. */
  readonly ssd: { readonly rows: number };
}

export const CUDA_TARGET: CudaTarget = {
  name: 'cuda', warp: 32, threads: 128, sharedBytes: 48 * 1024,
  matmul: { tileM: 64, tileN: 64, tileK: 32, gemvRows: 8, gemvCols: 8, gemvUpTo: 16 },
  attention: { keys: 32 },
  ssd: { rows: 16 },
};

export type Target = CpuTarget | WgslTarget | CudaTarget;

/** Every target a program is scheduled for, in order. */
export const TARGETS: readonly Target[] = [CPU_TARGET, WGSL_TARGET, CUDA_TARGET];

function wgslSchedule(k: Kernel, t: WgslTarget): Record<string, number> {
  if (k.family === 'matmul') return { workgroup: t.workgroup, tile: t.tile, gemv_lanes: t.gemvLanes, gemv_columns: t.gemvColumns, gemv_rows: t.gemvRows };
  // a chunked scan runs one workgroup per (chunk, head) over the head's channels
  if (k.family === 'ssd') return { workgroup: t.workgroup, chunk_lanes: Math.min(t.workgroup, k.sizes.P!) };
  return { workgroup: t.workgroup };
}

function scheduleKernel(k: Kernel, t: Target): Kernel {
  const s: Record<string, AttrValue> = t.name === 'wgsl' ? wgslSchedule(k, t)
    : t.name === 'cuda' ? (cudaSchedule(k, t) as Record<string, AttrValue>)
    : k.family === 'matmul' && k.sizes.K! * k.sizes.N! >= t.splitColumnsFrom ? { split: 'columns' } : {};
  return { ...k, schedule: { ...k.schedule, [t.name]: s } };
}

export function schedule(e: Entry, t: Target): Entry {
  return { ...e, kernels: e.kernels.map((k) => scheduleKernel(k, t)) };
}

/** The `wasm` target (codegen/wasm/): the register block and cache block of its matrix products.
 *  Its module is generic over sizes, so the record shapes the module, not each kernel's schedule. */
export interface WasmTarget {
  readonly name: 'wasm';
  /** Multiply-adds as one fused `f32x4.relaxed_madd` (the relaxed-SIMD proposal) instead of a mul
   *  then an add: twice the arithmetic per instruction where the engine has it. */
  readonly fma: boolean;
  /** Rows (tokens) per micro-tile: each loaded weight vector serves this many rows. A tile keeps
   *  2·rows f32x4 accumulators, 2 weight vectors and a broadcast x in the 15 vector registers V8
   *  allocates on x64 (a separate multiply needs one more: 4 rows without FMA, 6 with). */
  readonly rowsPerTile: number;
  /** Rows per cache block: a block of x stays in cache while every weight panel passes over it (a
   *  multiple of rowsPerTile: x is packed in tiles counted from row 0). */
  readonly tokenBlock: number;
  /** k unrolled onto this many accumulator sets in the one- and two-row micro-kernels (GEMV). */
  readonly gemvUnroll: number;
  /** One-row products (decode, batch 1) read this many panels side by side (1: as other rows). */
  readonly gemvPanels: number;
  /** Products of fewer multiply-adds run on the calling thread alone. */
  readonly splitFrom: number;
}

/** 128-bit SIMD alone: runs on every engine with SIMD. */
export const WASM_TARGET: WasmTarget = { name: 'wasm', fma: false, rowsPerTile: 4, tokenBlock: 64, gemvUnroll: 2, gemvPanels: 4, splitFrom: 1 << 17 };
/** With relaxed SIMD's fused multiply-add (Chromium >= 114, Node >= 22; Node 20 behind a flag that
 *  runtime/wasm/module.ts sets). */
export const WASM_FMA_TARGET: WasmTarget = { ...WASM_TARGET, fma: true, rowsPerTile: 6, tokenBlock: 60 };
/** The module variants a build ships, in order of preference: the runtime runs the first the engine accepts. */
export const WASM_TARGETS: readonly WasmTarget[] = [WASM_FMA_TARGET, WASM_TARGET];
