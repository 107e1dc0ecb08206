// What a generated CUDA kernel and its launcher agree on: the one argument struct every kernel
// takes (ArchcArgs, by value), the table of weights a kernel reads (by slot; matrices in bf16, every
// other weight in f32), where each state sits in a slot, and the launch grid from the schedule.

import { exprLeaves } from '../expr.ts';
import type { Entry, Kernel, Program, View } from '../program.ts';

/** The fields of ArchcArgs in order: nine pointers, one 64-bit integer, three 32-bit ints. */
export const ARGS_FIELDS = ['arena', 'pool', 'w', 'tokens', 'positions', 'seq_start', 'seq_len', 'seq_before', 'seq_slot'] as const;
export const ARGS_BYTES = 9 * 8 + 8 + 3 * 4 + 4;

export interface ArgsValues {
  /** Device addresses of the fields named in ARGS_FIELDS. */
  readonly ptr: Readonly<Record<(typeof ARGS_FIELDS)[number], bigint>>;
  readonly slotFloats: number;
  readonly T: number;
  readonly S: number;
  readonly capacity: number;
}

/** ArchcArgs as bytes (little-endian, the layout of the struct in codegen/cuda/templates/prelude). */
export function packArgs(v: ArgsValues): Uint8Array {
  const out = new Uint8Array(ARGS_BYTES);
  const dv = new DataView(out.buffer);
  ARGS_FIELDS.forEach((f, i) => dv.setBigUint64(i * 8, v.ptr[f], true));
  dv.setBigInt64(72, BigInt(v.slotFloats), true);
  dv.setInt32(80, v.T, true);
  dv.setInt32(84, v.S, true);
  dv.setInt32(88, v.capacity, true);
  return out;
}

export interface WeightSlot {
  readonly name: string;
  readonly dtype: 'bf16' | 'f32';
}

/** The weights `k` reads, in slot order: matrices of products and embeddings in bf16, the rest f32. */
export function kernelWeights(k: Kernel): WeightSlot[] {
  const slots = new Map<string, WeightSlot['dtype']>();
  const add = (name: string, dtype: WeightSlot['dtype']) => { if (!slots.has(name)) slots.set(name, dtype); };
  const matrix = k.family === 'matmul' || k.family === 'embedding' ? k.inputs.w : undefined;
  if (matrix && 'weight' in matrix) add(matrix.weight, 'bf16');
  for (const o of Object.values(k.inputs)) if ('weight' in o) add(o.weight, 'f32');
  for (const p of k.prologue ?? []) if (p.kind !== 'gather_last') add(p.weight, 'f32');
  for (const s of k.epilogue ?? []) {
    if (s.kind === 'conv_step') { add(s.weight, 'f32'); if (s.bias) add(s.bias, 'f32'); }
  }
  const exprs = [k.body, ...Object.values(k.pre ?? {}), ...(k.epilogue ?? []).map((s) => (s.kind === 'map' ? s.body : s.kind === 'conv_step' ? s.post : undefined))];
  for (const e of exprs) if (e) for (const l of exprLeaves(e)) if (l.op === 'w') add(l.name, 'f32');
  return [...slots].map(([name, dtype]) => ({ name, dtype }));
}

/** Where state `index` starts in a slot: `fixed + perCapacity · capacity` floats. */
export function stateOffset(p: Program, index: number): { fixed: number; perCapacity: number } {
  let fixed = 0, perCapacity = 0;
  for (const s of p.states.slice(0, index)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.per === 'token') perCapacity += n;
    else fixed += n;
  }
  return { fixed, perCapacity };
}

/** Rows of the buffer behind a view for a batch of T tokens and S sequences. */
export function viewRows(e: Entry, v: View, T: number, S: number): number {
  const rows = e.buffers[v.buf]!.rows;
  return rows === 'T' ? T : rows === 'S' ? S : 1;
}

export interface Launch {
  /** `archc_main`, or `archc_gemv` for a product of few rows. */
  readonly fn: 'archc_main' | 'archc_gemv';
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
}

/** The launch of `k` for T tokens in S sequences, from its CUDA schedule; null when there is no work. */
export function launchOf(e: Entry, k: Kernel, T: number, S: number): Launch | null {
  const s = k.schedule.cuda;
  if (!s) throw new Error(`archc runtime: kernel ${k.name} has no CUDA schedule`);
  const rowsOf = s.rowsOf as string;
  const base = rowsOf === 'T' ? T : rowsOf === 'S' ? S : viewRows(e, k.inputs[rowsOf] && 'buf' in k.inputs[rowsOf]! ? k.inputs[rowsOf] as View : k.outputs[rowsOf]!, T, S);
  const rows = base * (s.rowMul as number);
  const block: [number, number, number] = [s.threads as number, 1, 1];
  if (k.family === 'matmul' && rows <= (s.gemvUpTo as number)) {
    const x = Math.ceil(rows / (s.gemvRows as number));
    return x ? { fn: 'archc_gemv', grid: [x, s.gemvGridY as number, 1], block } : null;
  }
  const x = Math.ceil(rows / (s.rowDiv as number)) + (s.plusS ? S : 0);
  return x && rows ? { fn: 'archc_main', grid: [x, s.gridY as number, 1], block } : null;
}
