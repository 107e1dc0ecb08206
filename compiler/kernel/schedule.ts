// Schedules: each target fills the `schedule` slot of every kernel from its target record (data,
// not code: STYLE 12). The CPU splits large matrix products by output columns across its threads
// and runs everything else on the calling thread.

import type { Entry, Kernel } from '../../runtime/program.ts';

export interface Target {
  readonly name: 'cpu';
  /** Products of at least this many multiply-adds per token row are split across threads. */
  readonly splitColumnsFrom: number;
}

export const CPU_TARGET: Target = { name: 'cpu', splitColumnsFrom: 1 << 14 };

function scheduleKernel(k: Kernel, t: Target): Kernel {
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
