// What a generated CUDA kernel and its launcher agree on: the one argument struct every kernel
// takes (ArchcArgs, by value), the table of weights a kernel reads (by slot; matrices in bf16 or a
// quantised format, every other weight in f32), where each of its views sits in the arena and each of its states in a slot
// (arguments, so kernels that differ only there — the same layer at another depth — share one
// source and one compiled function), and the launch grid from its launch plan (the manifest).

import { exprLeaves } from '../expr.ts';
import { type Entry, type Kernel, type Program, type View, slotLayout } from '../program.ts';
import { QUANT_DTYPES, QUANT_GROUP, type QuantDType, type QuantTensor } from '../quant.ts';
import type { CudaGrid, CudaLaunchPlan } from './kernels.ts';

/** The fields of ArchcArgs in order: ten pointers, one 64-bit integer, three 32-bit ints (and 4
 *  bytes of padding), then ARGS_VIEWS and ARGS_STATES 64-bit offsets (floats). */
export const ARGS_FIELDS = ['arena', 'pool', 'w', 'tokens', 'positions', 'seq_start', 'seq_len', 'seq_before', 'seq_slot', 'scratch'] as const;
/** Views (activation operands, then outputs) and states one kernel may have. */
export const ARGS_VIEWS = 16;
export const ARGS_STATES = 2;
/** Where slot_floats ends and T, S, capacity (int32) start. */
export const ARGS_INTS_AT = ARGS_FIELDS.length * 8 + 8;
export const ARGS_VIEW_AT = ARGS_INTS_AT + 3 * 4 + 4;
export const ARGS_BYTES = ARGS_VIEW_AT + 8 * (ARGS_VIEWS + ARGS_STATES);

export interface ArgsValues {
  /** Device addresses of the fields named in ARGS_FIELDS. */
  readonly ptr: Readonly<Record<(typeof ARGS_FIELDS)[number], bigint>>;
  readonly slotFloats: number;
  readonly T: number;
  readonly S: number;
  readonly capacity: number;
  /** Arena offset (floats) of row 0, column 0 of each of the kernel's views (kernelViews order). */
  readonly views: readonly number[];
  /** Offset (floats) in a slot of each of the kernel's states (kernelStates order). */
  readonly states: readonly number[];
}

/** ArchcArgs as bytes (little-endian, the layout of the struct in codegen/cuda/templates/prelude). */
export function packArgs(v: ArgsValues): Uint8Array {
  const out = new Uint8Array(ARGS_BYTES);
  const dv = new DataView(out.buffer);
  ARGS_FIELDS.forEach((f, i) => dv.setBigUint64(i * 8, v.ptr[f], true));
  dv.setBigInt64(ARGS_INTS_AT - 8, BigInt(v.slotFloats), true);
  dv.setInt32(ARGS_INTS_AT, v.T, true);
  dv.setInt32(ARGS_INTS_AT + 4, v.S, true);
  dv.setInt32(ARGS_INTS_AT + 8, v.capacity, true);
  if (v.views.length > ARGS_VIEWS || v.states.length > ARGS_STATES) throw new Error(`archc runtime: ${v.views.length} views and ${v.states.length} states; a kernel takes at most ${ARGS_VIEWS} and ${ARGS_STATES}`);
  v.views.forEach((x, i) => dv.setBigInt64(ARGS_VIEW_AT + 8 * i, BigInt(x), true));
  v.states.forEach((x, i) => dv.setBigInt64(ARGS_VIEW_AT + 8 * (ARGS_VIEWS + i), BigInt(x), true));
  return out;
}

/** The views a kernel addresses, by index: its activation operands (in operand order), then its
 *  outputs. */
export function kernelViews(k: Kernel): { readonly key: string; readonly view: View }[] {
  const out: { key: string; view: View }[] = [];
  for (const [name, o] of Object.entries(k.inputs)) if ('buf' in o) out.push({ key: `in:${name}`, view: o });
  for (const [name, o] of Object.entries(k.outputs)) out.push({ key: `out:${name}`, view: o });
  return out;
}

/** The states a kernel addresses, by index: its own, then those of its conv_step epilogue stages. */
export function kernelStates(k: Kernel): number[] {
  const out = k.state === undefined ? [] : [k.state];
  for (const s of k.epilogue ?? []) if (s.kind === 'conv_step' && !out.includes(s.state)) out.push(s.state);
  return out;
}

/** Arena offset (floats) of row 0, column 0 of view `v` for a batch of T tokens and S sequences. */
export function viewBase(e: Entry, v: View, T: number, S: number): number {
  const b = e.buffers[v.buf]!;
  return (b.rows === 'T' ? b.offset * T : e.arena.T * T + b.offset * S) + v.col;
}

/** The view and state offsets of `k`'s arguments. */
export function kernelOffsets(p: Program, e: Entry, k: Kernel, T: number, S: number, capacity: number): { views: number[]; states: number[] } {
  return {
    views: kernelViews(k).map((x) => viewBase(e, x.view, T, S)),
    states: kernelStates(k).map((i) => slotLayout(p.states, capacity).offsets[i]!),
  };
}

/** How a kernel holds its matrix (slot 0 of a product or an embedding): bf16, or a quantised
 *  format (runtime/quant.ts) when loading quantised it. Each format renders its own source. */
export type MatrixFormat = 'bf16' | QuantDType;

/** What a source is rendered for: its matrix's format, and for a product over q8/q4 weights that
 *  reads its input as 8-bit activations (LoadOptions.activations 'q8', runtime/act-quant.ts) `q8a8`
 *  or `q4a8` (the same weights, each group of 32 of x rounded as it is staged). */
export type SourceFormat = MatrixFormat | `${QuantDType}a8`;

/** The formats kernel `k` renders a source for: bf16; q8 and q4 where loading may quantise its
 *  matrix; and for such a product q8a8 and q4a8. */
export function sourceFormats(k: Kernel): SourceFormat[] {
  if (!quantMatrix(k)) return ['bf16'];
  return ['bf16', ...QUANT_DTYPES, ...(k.family === 'matmul' ? QUANT_DTYPES.map((f) => `${f}a8` as const) : [])];
}

/** The matrix format a source reads. */
export const matrixFormat = (f: SourceFormat): MatrixFormat => (f === 'q8a8' ? 'q8' : f === 'q4a8' ? 'q4' : f);

export interface WeightSlot {
  readonly name: string;
  readonly dtype: MatrixFormat | 'f32';
}

/** The weight `k` reads as a matrix that loading may quantise — a product's (non-transposed) [N, K]
 *  matrix or an embedding's [V, D] table, K or D a multiple of the group — or null. */
export function quantMatrix(k: Kernel): string | null {
  const w = k.inputs.w;
  if (!w || !('weight' in w)) return null;
  if (k.family === 'matmul' && !k.attrs.transposed && k.sizes.K % QUANT_GROUP === 0) return w.weight;
  if (k.family === 'embedding' && k.sizes.D % QUANT_GROUP === 0) return w.weight;
  return null;
}

/** The weights `k` reads, in slot order: the matrix of a product or an embedding in `format` (bf16
 *  unless loading quantised it), the rest f32. */
export function kernelWeights(k: Kernel, format: MatrixFormat = 'bf16'): WeightSlot[] {
  const slots = new Map<string, WeightSlot['dtype']>();
  const add = (name: string, dtype: WeightSlot['dtype']) => { if (!slots.has(name)) slots.set(name, dtype); };
  const matrix = k.family === 'matmul' || k.family === 'embedding' ? k.inputs.w : undefined;
  if (format !== 'bf16' && !quantMatrix(k)) throw new Error(`archc runtime: kernel ${k.name} (${k.family}) reads no matrix that can be ${format}`);
  if (matrix && 'weight' in matrix) add(matrix.weight, format);
  for (const o of Object.values(k.inputs)) if ('weight' in o) add(o.weight, 'f32');
  for (const p of k.prologue ?? []) if (p.kind !== 'gather_last') add(p.weight, 'f32');
  for (const s of k.epilogue ?? []) {
    if (s.kind === 'conv_step') { add(s.weight, 'f32'); if (s.bias) add(s.bias, 'f32'); }
  }
  const exprs = [k.body, ...Object.values(k.pre ?? {}), ...(k.epilogue ?? []).map((s) => (s.kind === 'map' ? s.body : s.kind === 'conv_step' ? s.post : undefined))];
  for (const e of exprs) if (e) for (const l of exprLeaves(e)) if (l.op === 'w') add(l.name, 'f32');
  return [...slots].map(([name, dtype]) => ({ name, dtype }));
}

/** A quantised matrix as the device holds it, in one allocation: its codes (q8: int8 [N·K]; q4:
 *  [N·K/2] bytes, 8 codes a little-endian u32), then its f16 scales [N, K/32] — which start 16-byte
 *  aligned, K being a multiple of 32. */
export function quantDeviceBytes(q: QuantTensor): Uint8Array {
  const out = new Uint8Array(q.codes.byteLength + q.scales.byteLength);
  out.set(new Uint8Array(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength));
  out.set(new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength), q.codes.byteLength);
  return out;
}

/** Rows of the buffer behind a view for a batch of T tokens and S sequences. */
export function viewRows(e: Entry, v: View, T: number, S: number): number {
  const rows = e.buffers[v.buf]!.rows;
  return rows === 'T' ? T : rows === 'S' ? S : 1;
}

export interface Launch {
  /** The source's entry function: `archc_main`, `archc_gemv` for a product of few rows, or a phase's `archc_<fn>`. */
  readonly fn: string;
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  /** Bytes of dynamic shared memory. */
  readonly shared: number;
}

/** grid.x of `g` for T tokens in S sequences, and the rows it counts (0: no work). */
function gridRows(e: Entry, k: Kernel, g: CudaGrid, T: number, S: number): number {
  const rowsOf = g.rowsOf;
  const base = rowsOf === 'T' ? T : rowsOf === 'S' ? S : viewRows(e, k.inputs[rowsOf] && 'buf' in k.inputs[rowsOf]! ? k.inputs[rowsOf] as View : k.outputs[rowsOf]!, T, S);
  return base * g.rowMul;
}

/** The launch of `k` for T tokens in S sequences, from its launch plan; null when there is no work.
 *  A plan with phases launches several (launchesOf) unless its product of few rows runs the GEMV. */
export function launchOf(e: Entry, k: Kernel, s: CudaLaunchPlan, T: number, S: number): Launch | null {
  const rows = gridRows(e, k, s, T, S);
  const block: [number, number, number] = [s.threads, 1, 1];
  if (k.family === 'matmul' && s.gemvRows !== undefined && rows <= s.gemvUpTo!) {
    const x = Math.ceil(rows / s.gemvRows);
    return x ? { fn: 'archc_gemv', grid: [x, s.gemvGridY!, 1], block, shared: 0 } : null;
  }
  if (s.phases) throw new Error(`archc runtime: kernel ${k.name} runs as ${s.phases.length} launches (launchesOf)`);
  const x = Math.ceil(rows / s.rowDiv) + (s.plusS ? S : 0);
  return x && rows ? { fn: 'archc_main', grid: [x, s.gridY, 1], block, shared: 0 } : null;
}

/** The launches of `k` for T tokens in S sequences, in order: its GEMV, its phases', or its one launch. */
export function launchesOf(e: Entry, k: Kernel, s: CudaLaunchPlan, T: number, S: number): Launch[] {
  const gemv = k.family === 'matmul' && s.gemvRows !== undefined && gridRows(e, k, s, T, S) <= s.gemvUpTo!;
  if (!s.phases || gemv) {
    const l = launchOf(e, k, s, T, S);
    return l ? [l] : [];
  }
  return s.phases.flatMap((p) => {
    const rows = gridRows(e, k, p, T, S);
    const x = Math.ceil(rows / p.rowDiv) + (p.plusS ? S : 0);
    return x && rows ? [{ fn: `archc_${p.fn}`, grid: [x, p.gridY, 1] as const, block: [p.threads, 1, 1] as const, shared: p.shared ?? 0 }] : [];
  });
}

/** Floats of workspace kernel plan `s` needs for T tokens in S sequences. */
export const scratchFloats = (s: CudaLaunchPlan, T: number, S: number): number =>
  s.scratch ? s.scratch.fixed + s.scratch.perT * T + s.scratch.perS * S : 0;
