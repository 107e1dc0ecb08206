// Sequences on a backend: each sequence owns a state slot of a pool (its conv windows, SSM states
// and KV caches); a batch of sequences runs one entry of the kernel program. Prefill, forward and
// decode share the bookkeeping here; the kernels are the program's.

import { type Backend, type RunBatch, type StatePool, runEntry, runEntryAsync } from './backend.ts';
import type { SeqSlice } from './cpu/seq.ts';
import { RuntimeError } from './errors.ts';
import { RUNTIME_LIMITS } from './limits.ts';
import type { EntryName, Program } from './program.ts';

export type { SequenceState } from './sequences.ts';

/** One sequence's inference state as the engine sees it: a slot of a state pool and the tokens it
 *  has seen (a Model's handles resolve to these, runtime/sequences.ts). */
export interface SlotState {
  readonly pool: StatePool;
  readonly slot: number;
  /** Tokens seen so far (the next position). */
  length: number;
  /** The most tokens the sequence may hold (its pool's capacity). */
  readonly capacity: number;
}

export interface Batch {
  /** Token ids, all sequences concatenated: [T]. */
  readonly tokens: Int32Array;
  /** Position of each token within its sequence: [T]. */
  readonly positions: Int32Array;
  /** Rows of each sequence, in order, covering [0, T). */
  readonly seqs: readonly SeqSlice[];
  /** The state each sequence starts from and leaves its final state in (all of one pool). */
  readonly sequences: readonly SlotState[];
}

/** Runs `entry` over a batch and advances each sequence; returns the model outputs. */
export function runBatch(backend: Backend, program: Program, entry: EntryName, b: Batch): Map<string, Float32Array> {
  const out = runEntry(backend, program, entry, toRun(b, entry, program), b.sequences[0]!.pool);
  b.sequences.forEach((s, i) => { s.length += b.seqs[i]!.len; });
  return out;
}

/** runBatch on any backend (a GPU reads its outputs asynchronously); `view`: runEntryAsync's. */
export async function runBatchAsync(backend: Backend, program: Program, entry: EntryName, b: Batch, view = false): Promise<Map<string, Float32Array>> {
  const run = toRun(b, entry, program);
  // the sequences advance when the kernels are recorded, as in runBatch
  const out = runEntryAsync(backend, program, entry, run, b.sequences[0]!.pool, view);
  b.sequences.forEach((s, i) => { s.length += b.seqs[i]!.len; });
  return out;
}

function toRun(b: Batch, entry: EntryName, program: Program): RunBatch {
  checkBatch(b, entry);
  checkRunBytes(program, entry, b.tokens.length, b.seqs.length);
  return {
    tokens: b.tokens, positions: b.positions, seqs: b.seqs,
    slots: b.sequences.map((s) => s.slot), lengths: b.sequences.map((s) => s.length),
  };
}

function checkBatch(b: Batch, entry: EntryName): void {
  const T = b.tokens.length;
  if (T === 0 || b.seqs.length === 0) throw new RuntimeError('RT301', ['no tokens to run']);
  if (b.positions.length !== T) throw new RuntimeError('RT301', [`positions has ${b.positions.length} entries for ${T} tokens`]);
  if (b.seqs.length !== b.sequences.length) throw new RuntimeError('RT301', [`${b.seqs.length} sequences but ${b.sequences.length} states`]);
  const pool = b.sequences[0]!.pool;
  const slots = new Set<number>();
  let next = 0;
  b.seqs.forEach((s, i) => {
    if (s.start !== next || s.len <= 0) throw new RuntimeError('RT301', [`sequence ${i} covers rows ${s.start}..${s.start + s.len}, expected to start at ${next} with at least one token`]);
    if (entry === 'decode' && s.len !== 1) throw new RuntimeError('RT301', [`decode takes one token per sequence; sequence ${i} has ${s.len}`]);
    const st = b.sequences[i]!;
    if (st.pool !== pool) throw new RuntimeError('RT301', [`sequence ${i} belongs to another model or state pool than sequence 0`]);
    if (slots.has(st.slot)) throw new RuntimeError('RT301', [`sequence ${i} shares its state slot with an earlier sequence of the batch`]);
    slots.add(st.slot);
    if (st.length + s.len > st.capacity) {
      throw new RuntimeError('RT302', [`sequence ${i} would hold ${st.length + s.len} tokens, more than its capacity ${st.capacity}`]);
    }
    next += s.len;
  });
  if (next !== T) throw new RuntimeError('RT301', [`sequences cover ${next} rows of ${T}`]);
}

/** RT305 unless the arena of `entry` for T tokens in S sequences stays under the run-bytes limit. */
export function checkRunBytes(program: Program, entry: EntryName, T: number, S: number): void {
  const a = program.entries[entry].arena;
  const bytes = 4 * (a.T * T + a.S * S);
  const limit = RUNTIME_LIMITS.runBytes;
  if (bytes > limit.value) throw new RuntimeError('RT305', [T, S, bytes, limit.name, limit.value]);
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
    if (!Number.isInteger(cu[i])) throw new RuntimeError('RT301', [`cu_seqlens must hold integers, found ${cu[i]} at index ${i}`]);
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
