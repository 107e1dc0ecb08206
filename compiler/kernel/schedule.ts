// Schedules: each target fills the `schedule` slot of every kernel from its target record (data,
// not code: STYLE 12). The CPU splits large matrix products by output columns across its threads
// and runs everything else on the calling thread. CUDA gives each kernel a block size and tiles
// (codegen/cuda/ renders them as compile-time constants).

import type { AttrValue, Entry, Kernel } from '../../runtime/program.ts';
import { cudaSchedule } from './schedule-cuda.ts';

export type Target = CpuTarget | CudaTarget;

export interface CpuTarget {
  readonly name: 'cpu';
  /** Products of at least this many multiply-adds per token row are split across threads. */
  readonly splitColumnsFrom: number;
}

export const CPU_TARGET: CpuTarget = { name: 'cpu', splitColumnsFrom: 1 << 14 };

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

function scheduleKernel(k: Kernel, t: Target): Kernel {
  if (t.name === 'cuda') return { ...k, schedule: { ...k.schedule, cuda: cudaSchedule(k, t) as Record<string, AttrValue> } };
  const s: Record<string, string> = k.family === 'matmul' && k.sizes.K! * k.sizes.N! >= t.splitColumnsFrom ? { split: 'columns' } : {};
  return { ...k, schedule: { ...k.schedule, [t.name]: s } };
}

export function schedule(e: Entry, t: Target): Entry {
  return { ...e, kernels: e.kernels.map((k) => scheduleKernel(k, t)) };
}

/** The `wasm` target (codegen/wasm/): the register block and cache block of its matrix products.
 *  Its module is generic over sizes, so the record shapes the module, not each kernel's schedule. */
export interface WasmTarget {
  readonly name: 'wasm';
  /** Rows (tokens) per micro-tile: each loaded weight vector serves this many rows. */
  readonly rowsPerTile: number;
  /** Rows per cache block: a block of x stays in cache while every weight panel passes over it. */
  readonly tokenBlock: number;
  /** k unrolled onto this many accumulator sets in the one- and two-row micro-kernels (GEMV). */
  readonly gemvUnroll: number;
  /** Products of fewer multiply-adds run on the calling thread alone. */
  readonly splitFrom: number;
}

export const WASM_TARGET: WasmTarget = { name: 'wasm', rowsPerTile: 4, tokenBlock: 64, gemvUnroll: 2, splitFrom: 1 << 17 };
