// Schedules: each target fills the `schedule` slot of every kernel from its target record (data,
// not code: STYLE 12). The CPU splits large matrix products by output columns across its threads
// and runs everything else on the calling thread. WebGPU (the `wgsl` slot) gets workgroup sizes and
// tiles chosen for the limits the record assumes (a portable adapter: 256 invocations and 16 KiB of
// workgroup memory), which the WGSL renderer (codegen/wgsl/) writes into each shader as constants;
// `wgsl_cpu` the shape for adapters that run shaders on CPU cores (no barriers in products and norms).
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

/**
 * A WebGPU adapter shape. `gpu`: a GPU, where a workgroup's invocations run together and share
 * workgroup memory cheaply: sums over a row are split across lanes and reduced through workgroup
 * memory, products are tiled through it. `cpu`: an adapter that runs shaders on CPU cores
 * (SwiftShader, llvmpipe, WARP: what a machine without a GPU offers), which runs a few invocations
 * per SIMD instruction and emulates a barrier by switching between invocations, at great cost: each
 * invocation owns whole outputs and sums its own rows, so products and norms have no barrier, in
 * small workgroups spread over many. Both are rendered; the backend picks one by its adapter.
 */
export interface WgslTarget {
  /** The schedule slot it fills: `wgsl` (GPUs) or `wgsl_cpu` (CPU adapters). */
  readonly name: 'wgsl' | 'wgsl_cpu';
  /** Invocations of a one-dimensional workgroup (elementwise, norms, epilogues, scans). */
  readonly workgroup: number;
  /** Where a sum over a row runs: split over a workgroup's lanes and reduced through workgroup
   *  memory (`workgroup`), or inside one invocation (`invocation`, no barrier). */
  readonly reduce: 'workgroup' | 'invocation';
  /** Output tile of the product over many rows: `workgroup` reduction: a tile x tile block per
   *  workgroup, K staged through workgroup memory; `invocation`: tile x tile outputs per invocation
   *  in registers. */
  readonly tile: number;
  /** The matrix-vector path: lanes that split K for one output column (1: each invocation owns its
   *  columns), columns per workgroup (`workgroup`) or per invocation (`invocation`). */
  readonly gemvLanes: number;
  readonly gemvColumns: number;
  /** Columns per invocation of a fused matrix-vector pass over a single row (`invocation`): wider
   *  than `gemvColumns`, which also counts for each of the up to `gemvRows` rows it takes at once. */
  readonly gemvColumnsOne: number;
  /** Products over at most this many rows take the matrix-vector path (decode), more the tiled one. */
  readonly gemvRows: number;
  /** Flash attention (prefill): invocations per workgroup (query rows x the query heads of one KV
   *  head), keys per tile staged through workgroup memory, and the workgroup memory it may take. */
  readonly attentionInvocations: number;
  readonly attentionKeys: number;
  readonly workgroupBytes: number;
}

/** A portable GPU adapter: 256 invocations and 16 KiB of workgroup memory. */
export const WGSL_TARGET: WgslTarget = {
  name: 'wgsl', workgroup: 256, reduce: 'workgroup', tile: 16, gemvLanes: 64, gemvColumns: 4, gemvColumnsOne: 4, gemvRows: 4,
  attentionInvocations: 128, attentionKeys: 16, workgroupBytes: 16 * 1024,
};

/** A CPU adapter (SwiftShader: 256 invocations, 32 KiB of workgroup memory, 4-wide SIMD). */
export const WGSL_CPU_TARGET: WgslTarget = {
  name: 'wgsl_cpu', workgroup: 64, reduce: 'invocation', tile: 4, gemvLanes: 1, gemvColumns: 4, gemvColumnsOne: 8, gemvRows: 4,
  attentionInvocations: 64, attentionKeys: 32, workgroupBytes: 32 * 1024,
};

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
export const TARGETS: readonly Target[] = [CPU_TARGET, WGSL_TARGET, WGSL_CPU_TARGET, CUDA_TARGET];

function wgslSchedule(k: Kernel, t: WgslTarget): Record<string, AttrValue> {
  if (k.family === 'matmul') return { workgroup: t.workgroup, reduce: t.reduce, tile: t.tile, gemv_lanes: t.gemvLanes, gemv_columns: t.gemvColumns, gemv_columns_one: t.gemvColumnsOne, gemv_rows: t.gemvRows };
  if (k.family === 'norm') return { workgroup: t.workgroup, reduce: t.reduce };
  // a chunked scan runs one workgroup per (chunk, head) over the head's channels
  if (k.family === 'ssd') return { workgroup: t.workgroup, chunk_lanes: Math.min(t.workgroup, k.sizes.P!) };
  if (k.family === 'attention') {
    // a workgroup: `rows` query rows of one sequence x the `group` query heads of one KV head,
    // K and V tiles of `keys` rows (2 · keys · KV-row floats) in workgroup memory
    const group = k.sizes.H! / k.sizes.KV!;
    const rows = Math.max(1, Math.floor(t.attentionInvocations / group));
    let keys = t.attentionKeys;
    while (keys > 1 && 2 * keys * k.sizes.Dh! * 4 > t.workgroupBytes / 2) keys /= 2;
    return { workgroup: t.workgroup, rows, keys };
  }
  return { workgroup: t.workgroup };
}

function scheduleKernel(k: Kernel, t: Target): Kernel {
  const s: Record<string, AttrValue> = t.name === 'cpu' ? (k.family === 'matmul' && k.sizes.K! * k.sizes.N! >= t.splitColumnsFrom ? { split: 'columns' } : {})
    : t.name === 'cuda' ? (cudaSchedule(k, t) as Record<string, AttrValue>)
    : wgslSchedule(k, t);
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
  /** bf16 weights: in a cache block of at least this many rows (>= rowsPerTile) the first tile
   *  widens each panel to f32 into the thread's scratch as it goes and the other tiles run the f32
   *  micro-kernels over it; fewer rows (decode) read bf16 and widen in registers, tile by tile.
   *  Measured at the ~100M Bamba's widths (K 768 and 1280, 2 threads): a second tile of 1 row
   *  (FMA) or 3 rows (plain) already pays for the stores. */
  readonly widenFrom: number;
  /** q8/q4 weights: products of at most this many rows (decode) take the integer-dot GEMV (each
   *  activation row quantised per group of 32 to 20 bits, as three 7-bit digits, against the codes
   *  with relaxed SIMD's i8·i7 dot product, exact in integers; codegen/wasm/kernels.ts `mvi`); more rows,
   *  or 0 (no relaxed SIMD), dequantise each panel once per cache block into the thread's scratch
   *  and run the f32 micro-kernels. */
  readonly quantDotRows: number;
}

/** 128-bit SIMD alone: runs on every engine with SIMD. */
export const WASM_TARGET: WasmTarget = { name: 'wasm', fma: false, rowsPerTile: 4, tokenBlock: 64, gemvUnroll: 2, gemvPanels: 4, splitFrom: 1 << 17, widenFrom: 7, quantDotRows: 0 };
/** With relaxed SIMD's fused multiply-add (Chromium >= 114, Node >= 22; Node 20 behind a flag that
 *  runtime/wasm/module.ts sets). */
export const WASM_FMA_TARGET: WasmTarget = { ...WASM_TARGET, fma: true, rowsPerTile: 6, tokenBlock: 60, quantDotRows: 6 };
/** The module variants a build ships, in order of preference: the runtime runs the first the engine accepts. */
export const WASM_TARGETS: readonly WasmTarget[] = [WASM_FMA_TARGET, WASM_TARGET];
