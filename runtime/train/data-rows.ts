// Rows of a tokenised corpus (./data-store.ts) in a seeded random order over the whole file. An
// epoch cuts each document longer than a row into row-sized pieces at aligned cuts shifted by a
// random phase (the epoch's), packs shorter pieces and documents greedily in file order as the
// collator's rows, and visits those rows in a random permutation, each read back by offset. A row
// is a contiguous range of the token file; its sequences start at the documents' starts inside it.
// docs/TRAINING.md "Data".

import { closeSync, openSync } from 'node:fs';
import { createRng } from '../rng.ts';
import type { Tokenizer } from '../tokenizer.ts';
import { type Doc, type PackedBatch, collate } from './data.ts';
import { type TokenStore, openStore, readTokens } from './data-store.ts';

export interface BatchOptions {
  readonly seqLen: number;
  readonly batch: number;
  readonly seed: number;
  /** Rows in a random order, cut at a random phase (default); false: the file's order, cut at each
   *  document's start (evaluation). */
  readonly shuffle?: boolean;
  /** Bytes read at a time while tokenising (default 1 MiB). */
  readonly chunkBytes?: number;
  /** Where the token files are cached (default: archc-data in the OS temp directory). */
  readonly cacheDir?: string;
  /** Stop after one pass over the file (evaluation) instead of starting the next epoch. */
  readonly once?: boolean;
  /** Where to start (a batch's `next`, saved with a run): skips what came before without reading it. */
  readonly start?: SamplerPosition;
}

/** A place in the stream of batches: batch `batch` (0 first) of epoch `epoch`. */
export interface SamplerPosition {
  readonly epoch: number;
  readonly batch: number;
}

/** An epoch's rows: [rows + 1] token offsets, row r = tokens [cuts[r], cuts[r + 1]). Documents
 *  longer than seqLen are cut into a first piece of seqLen - phase tokens, then pieces of seqLen;
 *  a piece or document that does not fit in the current row closes it. */
export function epochRows(s: TokenStore, seqLen: number, phase: number): Float64Array {
  const cuts: number[] = [0];
  let rowLen = 0;
  const piece = (at: number, len: number) => {
    if (rowLen + len > seqLen) cuts.push(at), rowLen = 0;
    rowLen += len;
  };
  for (let i = 0; i < s.docs; i++) {
    const a = s.starts[i]!, b = s.starts[i + 1]!;
    if (b - a <= seqLen) {
      piece(a, b - a);
      continue;
    }
    for (let at = a, len = seqLen - phase; at < b; at += len, len = seqLen) piece(at, Math.min(len, b - at));
  }
  if (rowLen) cuts.push(s.tokens);
  return Float64Array.from(cuts);
}

/** The epoch's phase and the order its rows are visited in (Fisher-Yates under seed and epoch). */
export function epochOrder(rows: (phase: number) => Float64Array, seqLen: number, o: Pick<BatchOptions, 'seed' | 'shuffle'>, epoch: number): { cuts: Float64Array; order: Uint32Array } {
  if (o.shuffle === false) {
    const cuts = rows(0);
    return { cuts, order: Uint32Array.from({ length: cuts.length - 1 }, (_, k) => k) };
  }
  // the seed in the high 32 bits, the epoch in the low: no two (seed, epoch) pairs share a stream
  const rng = createRng(o.seed * 4294967296 + epoch);
  const cuts = rows(Math.floor(rng.next() * seqLen));
  const order = Uint32Array.from({ length: cuts.length - 1 }, (_, k) => k);
  for (let k = order.length - 1; k > 0; k--) {
    const j = Math.floor(rng.next() * (k + 1));
    [order[k], order[j]] = [order[j]!, order[k]!];
  }
  return { cuts, order };
}

/** The sequences of row [a, b): pieces between the documents' starts inside it. A piece of a
 *  document counts its share of the document's bytes (by tokens, rounded so the pieces sum to it). */
function rowDocs(s: TokenStore, ids: Uint16Array | Uint32Array, a: number, b: number): Doc[] {
  // the last document starting at or before a
  let lo = 0, hi = s.docs - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s.starts[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  const docs: Doc[] = [];
  for (let i = lo, at = a; at < b; i++) {
    const end = Math.min(b, s.starts[i + 1]!);
    const d0 = s.starts[i]!, len = s.starts[i + 1]! - d0, share = (t: number) => Math.floor((s.bytes[i]! * (t - d0)) / len);
    docs.push({ ids: Array.from(ids.subarray(at - a, end - a)), bytes: share(end) - share(at) });
    at = end;
  }
  return docs;
}

/** A batch with where it comes from: each row's tokens [start, end) of the corpus (its documents in
 *  file order, each with its EOS), and the position after it. */
export type RowBatch = PackedBatch & { readonly spans: readonly (readonly [number, number])[]; readonly next: SamplerPosition };

/** Packed batches of `batch` rows of up to `seqLen` tokens each, forever (each epoch a new phase and
 *  permutation) unless `once`. Each batch carries `next`, the position after it. RT600 when the
 *  file holds no document. */
export function* packedBatches(path: string, tok: Tokenizer, o: BatchOptions): Generator<RowBatch> {
  const s = openStore(path, tok, o);
  const rows = (phase: number) => epochRows(s, o.seqLen, phase);
  for (let epoch = o.start?.epoch ?? 0; ; epoch++) {
    const { cuts, order } = epochOrder(rows, o.seqLen, o, epoch);
    const n = Math.ceil(order.length / o.batch);
    // the last, partial batch of an epoch is kept: every row is seen once per epoch
    for (let k = epoch === o.start?.epoch ? o.start.batch : 0; k < n; k++) {
      const fd = openSync(s.file, 'r');
      const spans = Array.from(order.subarray(k * o.batch, (k + 1) * o.batch), (r) => [cuts[r]!, cuts[r + 1]!] as const);
      let batch: Doc[][];
      try {
        batch = spans.map(([a, b]) => rowDocs(s, readTokens(s, fd, a, b), a, b));
      } finally {
        closeSync(fd);
      }
      const next = k + 1 < n ? { epoch, batch: k + 1 } : { epoch: epoch + 1, batch: 0 };
      yield { ...collate(batch, epoch), spans, next };
    }
    if (o.once) return;
  }
}
