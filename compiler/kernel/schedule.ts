// Schedules: each target fills the `schedule` slot of every kernel from its target record (data,
// not code: STYLE 12). The CPU splits large matrix products by output columns across its threads
// and runs everything else on the calling thread. WebGPU (the `wgsl` slot) gets workgroup sizes and
// tiles chosen for the limits the record assumes (a portable adapter: 256 invocations and 16 KiB of
// workgroup memory), which the WGSL renderer (codegen/wgsl/) writes into each shader as constants.

import type { Entry, Kernel } from '../../runtime/program.ts';

export interface CpuTarget {
  readonly name: 'cpu';
  /** Products of at least this many multiply-adds per token row are split across threads. */
  readonly splitColumnsFrom: number;
}

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

export type Target = CpuTarget | WgslTarget;

export const CPU_TARGET: CpuTarget = { name: 'cpu', splitColumnsFrom: 1 << 14 };

export const WGSL_TARGET: WgslTarget = { name: 'wgsl', workgroup: 256, tile: 16, gemvLanes: 64, gemvColumns: 4, gemvRows: 4 };

/** Every target a program is scheduled for, in order. */
export const TARGETS: readonly Target[] = [CPU_TARGET, WGSL_TARGET];

function wgslSchedule(k: Kernel, t: WgslTarget): Record<string, number> {
  if (k.family === 'matmul') return { workgroup: t.workgroup, tile: t.tile, gemv_lanes: t.gemvLanes, gemv_columns: t.gemvColumns, gemv_rows: t.gemvRows };
  // a chunked scan runs one workgroup per (chunk, head) over the head's channels
  if (k.family === 'ssd') return { workgroup: t.workgroup, chunk_lanes: Math.min(t.workgroup, k.sizes.P!) };
  return { workgroup: t.workgroup };
}

function scheduleKernel(k: Kernel, t: Target): Kernel {
  const s: Record<string, string | number> = t.name === 'wgsl' ? wgslSchedule(k, t)
    : k.family === 'matmul' && k.sizes.K! * k.sizes.N! >= t.splitColumnsFrom ? { split: 'columns' } : {};
  return { ...k, schedule: { ...k.schedule, [t.name]: s } };
}

export function schedule(e: Entry, t: Target): Entry {
  return { ...e, kernels: e.kernels.map((k) => scheduleKernel(k, t)) };
}
