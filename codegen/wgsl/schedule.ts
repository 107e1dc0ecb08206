// The WebGPU target records (one per adapter shape) and each kernel's schedule from them: workgroup
// sizes and tiles chosen for the limits a record assumes (a portable GPU adapter: 256 invocations and
// 16 KiB of workgroup memory; `wgsl_cpu`: adapters that run shaders on CPU cores, with no barriers in
// products and norms). The WGSL renderer (render.ts) schedules each kernel as it renders it and writes
// the schedule into the shader as constants; the kernel program itself carries no schedule.

import type { Kernel } from '../../runtime/program.ts';

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
  /** `wgsl` (GPUs) or `wgsl_cpu` (CPU adapters). */
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

/** A kernel's schedule on one adapter shape. */
export interface WgslSchedule {
  readonly workgroup: number;
  readonly reduce?: 'workgroup' | 'invocation';
  readonly tile?: number;
  readonly gemv_lanes?: number;
  readonly gemv_columns?: number;
  readonly gemv_columns_one?: number;
  readonly gemv_rows?: number;
  readonly chunk_lanes?: number;
  readonly rows?: number;
  readonly keys?: number;
}

export function wgslSchedule(k: Kernel, t: WgslTarget): WgslSchedule {
  if (k.family === 'matmul') return { workgroup: t.workgroup, reduce: t.reduce, tile: t.tile, gemv_lanes: t.gemvLanes, gemv_columns: t.gemvColumns, gemv_columns_one: t.gemvColumnsOne, gemv_rows: t.gemvRows };
  if (k.family === 'norm') return { workgroup: t.workgroup, reduce: t.reduce };
  // a chunked scan runs one workgroup per (chunk, head) over the head's channels
  if (k.family === 'ssd') return { workgroup: t.workgroup, chunk_lanes: Math.min(t.workgroup, k.sizes.P) };
  if (k.family === 'attention') {
    // a workgroup: `rows` query rows of one sequence x the `group` query heads of one KV head,
    // K and V tiles of `keys` rows (2 · keys · KV-row floats) in workgroup memory
    const group = k.sizes.H / k.sizes.KV;
    const rows = Math.max(1, Math.floor(t.attentionInvocations / group));
    let keys = t.attentionKeys;
    while (keys > 1 && 2 * keys * k.sizes.Dh * 4 > t.workgroupBytes / 2) keys /= 2;
    return { workgroup: t.workgroup, rows, keys };
  }
  return { workgroup: t.workgroup };
}
