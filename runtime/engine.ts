// The CPU engine: runs a kernel program over a packed batch with the reference kernels.
// Each sequence owns its states (conv window and SSM state per Mamba layer, a KV cache per
// attention layer), derived from the program's state list; prefill and decode share the code.

import { OP_BY_NAME, type CpuValue, type OpDef } from './ops.ts';
import type { Program } from './program.ts';
import type { KvCache, SeqSlice } from './cpu/index.ts';
import { RuntimeError } from './errors.ts';
import { numel, type Tensor } from './tensor.ts';
import type { LinearPool } from './cpu/pool.ts';

/** One sequence's inference state: an entry per program state. KV caches start small and grow
 *  (doubling) as tokens arrive, up to `capacity` tokens. */
export interface SequenceState {
  readonly states: (Float32Array | KvCache)[];
  /** Tokens seen so far (the next position). */
  length: number;
  /** The most tokens the sequence may hold (the model's context unless told otherwise). */
  readonly capacity: number;
}

const INITIAL_KV_ROWS = 256;

export function newSequenceState(program: Program, capacity: number, reserve = INITIAL_KV_ROWS): SequenceState {
  const rows = Math.min(capacity, Math.max(1, reserve));
  const states = program.states.map((s) => {
    if (s.per === 'sequence') return new Float32Array(numel(s.shape));
    const row = numel(s.shape.slice(1));
    return { k: new Float32Array(rows * row), v: new Float32Array(rows * row), len: 0, capacity: rows } satisfies KvCache;
  });
  return { states, length: 0, capacity };
}

/** Makes room in every KV cache of `seq` for `more` tokens (doubling, capped at its capacity). */
function reserveKv(seq: SequenceState, more: number): void {
  seq.states.forEach((st, i) => {
    if (st instanceof Float32Array || st.len + more <= st.capacity) return;
    const rows = Math.min(seq.capacity, Math.max(st.len + more, 2 * st.capacity));
    const row = st.k.length / st.capacity;
    const k = new Float32Array(rows * row);
    const v = new Float32Array(rows * row);
    k.set(st.k.subarray(0, st.len * row));
    v.set(st.v.subarray(0, st.len * row));
    seq.states[i] = { k, v, len: st.len, capacity: rows } satisfies KvCache;
  });
}

/** Bytes held by one sequence's state. */
export function sequenceStateBytes(s: SequenceState): number {
  let b = 0;
  for (const x of s.states) b += x instanceof Float32Array ? x.byteLength : x.k.byteLength + x.v.byteLength;
  return b;
}

export interface Batch {
  /** Token ids, all sequences concatenated: [T]. */
  readonly tokens: Int32Array;
  /** Position of each token within its sequence: [T]. */
  readonly positions: Int32Array;
  /** Rows of each sequence, in order, covering [0, T). */
  readonly seqs: readonly SeqSlice[];
  /** The state each sequence starts from and leaves its final state in. */
  readonly sequences: readonly SequenceState[];
  /** Compute the model's head for the last token of each sequence only (outputs get one row each). */
  readonly lastRowsOnly?: boolean;
}

/** The last row of each sequence of a [T, …] value. */
function lastRows(v: CpuValue, seqs: readonly SeqSlice[]): CpuValue {
  const width = v.data.length / (v.shape[0] as number);
  const out = new Float32Array(seqs.length * width);
  seqs.forEach((s, i) => out.set((v.data as Float32Array).subarray((s.start + s.len - 1) * width, (s.start + s.len) * width), i * width));
  return { data: out, dtype: 'f32', shape: [seqs.length, ...v.shape.slice(1)] };
}

export class CpuEngine {
  private readonly ops: OpDef[];

  constructor(
    readonly program: Program,
    /** Weights by program buffer id, in their checkpoint dtype. */
    private readonly weights: ReadonlyMap<number, CpuValue>,
    /** Runs the matrix products (default: the single-threaded kernel). */
    private readonly linear?: LinearPool,
  ) {
    this.ops = program.steps.map((s) => OP_BY_NAME.get(s.op) ?? fail(`unknown op ${s.op}`));
    for (const w of program.weights) if (!weights.has(w.buffer)) fail(`weight ${w.name} was not loaded`);
  }

  /** Runs the program; returns each model output as f32 [T, …]. */
  run(batch: Batch): Map<string, Float32Array> {
    const T = batch.tokens.length;
    checkBatch(batch);
    const buf = new Map<number, CpuValue>(this.weights);
    const inputs = new Map<string, Int32Array>([['tokens', batch.tokens], ['positions', batch.positions]]);
    for (const i of this.program.inputs) {
      const data = inputs.get(i.name) ?? fail(`the program input ${i.name} is neither tokens nor positions`);
      buf.set(i.buffer, { data, dtype: 'i32', shape: [T] });
    }
    batch.sequences.forEach((seq, i) => reserveKv(seq, batch.seqs[i]!.len));
    const linear = this.linear && ((x: Float32Array, t: number, k: number, w: Tensor, b: Tensor | null) => this.linear!.linear(x, t, k, w, b));
    const ctxBase = { T, positions: batch.positions, seqs: batch.seqs, linear };
    // With lastRowsOnly the head reads only each sequence's last row: prefill for generation needs no
    // logits for the prompt ([T, vocab] would be gigabytes for a long prompt and a 128k vocabulary).
    let rows = T;
    this.program.steps.forEach((step, si) => {
      const args = step.inputs.map((b) => (b === null ? null : buf.get(b) ?? fail(`step ${si} (${step.op}) reads buffer ${b}, which is not live`)));
      if (batch.lastRowsOnly && step.op === 'head' && rows === T) {
        args[0] = lastRows(args[0]!, batch.seqs);
        rows = batch.seqs.length;
      }
      const state = step.state === undefined ? undefined : batch.sequences.map((s) => s.states[step.state!]!);
      if (rows !== T && state) fail(`step ${si} (${step.op}) carries state but follows the head`);
      const outs = this.ops[si]!.cpu(args, step.attrs, { ...ctxBase, T: rows, state });
      step.outputs.forEach((b, k) => {
        const shape = this.program.buffers[b]!.shape.map((d) => (d === 'T' ? rows : d));
        buf.set(b, { data: outs[k]!, dtype: 'f32', shape });
      });
      for (const b of step.release) buf.delete(b);
    });
    for (let s = 0; s < batch.seqs.length; s++) batch.sequences[s]!.length += batch.seqs[s]!.len;
    return new Map(this.program.outputs.map((o) => [o.name, buf.get(o.buffer)!.data as Float32Array]));
  }
}

function checkBatch(b: Batch): void {
  const T = b.tokens.length;
  if (b.positions.length !== T) throw new RuntimeError('RT301', [`positions has ${b.positions.length} entries for ${T} tokens`]);
  if (b.seqs.length !== b.sequences.length) throw new RuntimeError('RT301', [`${b.seqs.length} sequences but ${b.sequences.length} states`]);
  let next = 0;
  b.seqs.forEach((s, i) => {
    if (s.start !== next || s.len <= 0) throw new RuntimeError('RT301', [`sequence ${i} covers rows ${s.start}..${s.start + s.len}, expected to start at ${next} with at least one token`]);
    const st = b.sequences[i]!;
    if (st.length + s.len > st.capacity) {
      throw new RuntimeError('RT302', [`sequence ${i} would hold ${st.length + s.len} tokens, more than its capacity ${st.capacity}`]);
    }
    next += s.len;
  });
  if (next !== T) throw new RuntimeError('RT301', [`sequences cover ${next} rows of ${T}`]);
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}

/** Sequence slices from position ids: a position 0 (or the first row) starts a new sequence. */
export function seqsFromPositions(positions: Int32Array): SeqSlice[] {
  const out: SeqSlice[] = [];
  for (let t = 0; t < positions.length; t++) {
    if (t === 0 || positions[t] === 0) out.push({ start: t, len: 0 });
    (out[out.length - 1] as { len: number }).len++;
  }
  return out;
}

/** Sequence slices from cumulative lengths [0, l0, l0+l1, …, T]. */
export function seqsFromCuSeqlens(cu: readonly number[], T: number): SeqSlice[] {
  if (cu.length < 2 || cu[0] !== 0 || cu[cu.length - 1] !== T) {
    throw new RuntimeError('RT301', [`cu_seqlens must run from 0 to the token count ${T}, got [${cu.join(', ')}]`]);
  }
  const out: SeqSlice[] = [];
  for (let i = 1; i < cu.length; i++) {
    if (cu[i]! <= cu[i - 1]!) throw new RuntimeError('RT301', [`cu_seqlens must increase, got [${cu.join(', ')}]`]);
    out.push({ start: cu[i - 1]!, len: cu[i]! - cu[i - 1]! });
  }
  return out;
}

/** Sequence slices from a per-token sequence index (runs of equal values). */
export function seqsFromSeqIdx(seqIdx: Int32Array): SeqSlice[] {
  const out: SeqSlice[] = [];
  for (let t = 0; t < seqIdx.length; t++) {
    if (t === 0 || seqIdx[t] !== seqIdx[t - 1]) out.push({ start: t, len: 0 });
    (out[out.length - 1] as { len: number }).len++;
  }
  return out;
}

/** Positions 0..len-1 within each sequence. */
export function positionsFor(seqs: readonly SeqSlice[], T: number, offsets?: readonly number[]): Int32Array {
  const p = new Int32Array(T);
  seqs.forEach((s, i) => {
    for (let j = 0; j < s.len; j++) p[s.start + j] = (offsets?.[i] ?? 0) + j;
  });
  return p;
}
