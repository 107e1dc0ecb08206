// A model's inputs checked as numbers before they become typed arrays: token ids, positions,
// labels, sequence lengths and array lengths (a NaN, a fraction or 2^32 + 1 would otherwise wrap
// into a valid i32), and each run sized before anything is allocated.

import { type SlotState, checkRunBytes, positionsFor, seqsFromCuSeqlens, seqsFromPositions, seqsFromSeqIdx } from './engine.ts';
import type { SeqSlice } from './cpu/seq.ts';
import { RuntimeError } from './errors.ts';
import { RUNTIME_LIMITS } from './limits.ts';
import { type EntryName, type Program, slotLayout } from './program.ts';

/** What inputs are checked against: the program, its vocabulary and the sequences' capacity. */
export interface Bounds {
  readonly program: Program;
  readonly vocab: number;
  readonly capacity: number;
}

/** One run's rows: ids and positions [T], and each sequence's slice. */
export interface Rows {
  readonly ids: Int32Array;
  readonly positions: Int32Array;
  readonly seqs: SeqSlice[];
}

/** The length of an array-like argument, or RT301 naming it (a non-array, a forged length). */
export function countOf(x: unknown, what: string): number {
  const n = typeof x === 'object' && x !== null ? (x as { length?: unknown }).length : undefined;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RuntimeError('RT301', [`${what} must be an array, got ${typeof x === 'object' ? 'an object without a length' : String(x)}`]);
  return n;
}

/** decode's tokens as one-token chunks. */
export function oneEach(tokens: ArrayLike<number>): number[][] {
  return Array.from({ length: countOf(tokens, 'tokens') }, (_, i) => [tokens[i]!]);
}

/** RT300 unless `x` is an integer id in [0, vocab). */
export function tokenId(x: unknown, t: number, vocab: number): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= vocab) throw new RuntimeError('RT300', [x, t, vocab]);
  return x;
}

export function tokenIds(ids: ArrayLike<number>, vocab: number): Int32Array {
  const out = new Int32Array(countOf(ids, 'ids'));
  for (let t = 0; t < out.length; t++) out[t] = tokenId(ids[t], t, vocab);
  return out;
}

/** Position ids: integers in [0, capacity) (RT304). */
export function positionIds(p: ArrayLike<number>, T: number, capacity: number): Int32Array {
  if (countOf(p, 'positions') !== T) throw new RuntimeError('RT301', [`${p.length} positions for ${T} tokens`]);
  const out = new Int32Array(T);
  for (let t = 0; t < T; t++) {
    const x = p[t]!;
    if (!Number.isInteger(x) || x < 0 || x >= capacity) throw new RuntimeError('RT304', ['position', x, t, capacity]);
    out[t] = x;
  }
  return out;
}

/** Labels: integers (RT320); their range is the loss's check. */
export function labelIds(labels: ArrayLike<number>, T: number, vocab: number): Int32Array {
  if (countOf(labels, 'labels') !== T) throw new RuntimeError('RT301', [`${labels.length} labels for ${T} tokens`]);
  const out = new Int32Array(T);
  for (let t = 0; t < T; t++) {
    const y = labels[t]!;
    if (!Number.isInteger(y) || Math.abs(y) > RUNTIME_LIMITS.position.value) throw new RuntimeError('RT320', [y, t, 'not an integer label', vocab]);
    out[t] = y;
  }
  return out;
}

/** A forward pass's rows, its sequences at most `capacity` long (RT302), its arena and its own state
 *  slots (S slots as long as the longest sequence) within the run-bytes limit (RT305). */
export function forwardRows(b: Bounds, input: { ids: ArrayLike<number>; positions?: ArrayLike<number>; cuSeqlens?: readonly number[]; seqIdx?: ArrayLike<number> }): Rows & { longest: number } {
  const T = countOf(input?.ids, 'ids');
  if (T === 0) throw new RuntimeError('RT301', ['no tokens to run']);
  checkRunBytes(b.program, 'forward', T, 1); // 2^20 tokens is a coded refusal, not a RangeError
  const ids = tokenIds(input.ids, b.vocab);
  const given = input.positions === undefined ? undefined : positionIds(input.positions, T, b.capacity);
  let seqs: SeqSlice[];
  if (input.cuSeqlens) {
    seqs = seqsFromCuSeqlens(input.cuSeqlens, T);
  } else if (input.seqIdx) {
    if (countOf(input.seqIdx, 'seqIdx') !== T) throw new RuntimeError('RT301', [`${input.seqIdx.length} seqIdx entries for ${T} tokens`]);
    seqs = seqsFromSeqIdx(Int32Array.from(input.seqIdx));
  } else {
    seqs = seqsFromPositions(given ?? positionsFor([{ start: 0, len: T }], T));
  }
  const longest = seqs.reduce((m, s) => Math.max(m, s.len), 0);
  if (longest > b.capacity) throw new RuntimeError('RT302', [`a sequence of ${longest} tokens, more than the capacity ${b.capacity}`]);
  checkRunBytes(b.program, 'forward', T, seqs.length);
  const bytes = 4 * slotLayout(b.program.states, longest).floats * seqs.length;
  const limit = RUNTIME_LIMITS.runBytes;
  if (bytes > limit.value) throw new RuntimeError('RT305', [T, seqs.length, bytes, limit.name, limit.value]);
  return { ids, positions: given ?? positionsFor(seqs, T), seqs, longest };
}

/** New tokens of several sequences continuing from their states: each within its capacity (RT302),
 *  checked before the rows are allocated; the entry that runs them. */
export function stepRows(b: Bounds, chunks: readonly ArrayLike<number>[], sequences: readonly SlotState[], lastOnly: boolean): Rows & { entry: EntryName } {
  const S = sequences.length;
  const seqs: SeqSlice[] = [];
  let T = 0;
  for (let i = 0; i < S; i++) {
    const len = countOf(chunks[i], `sequence ${i}'s tokens`);
    const st = sequences[i]!;
    if (st.length + len > st.capacity) throw new RuntimeError('RT302', [`sequence ${i} would hold ${st.length + len} tokens, more than its capacity ${st.capacity}`]);
    seqs.push({ start: T, len });
    T += len;
  }
  const entry: EntryName = S > 0 && chunks.every((c) => c.length === 1) ? 'decode' : lastOnly ? 'prefill' : 'forward';
  checkRunBytes(b.program, entry, T, S);
  const ids = new Int32Array(T);
  const positions = new Int32Array(T);
  for (let i = 0; i < S; i++) {
    const c = chunks[i]!;
    const at = seqs[i]!.start;
    for (let j = 0; j < c.length; j++) {
      ids[at + j] = tokenId(c[j], at + j, b.vocab);
      positions[at + j] = sequences[i]!.length + j;
    }
  }
  return { entry, ids, positions, seqs };
}
