// Training data: documents streamed from a text or JSONL file, tokenised with the model's
// tokenizer, shuffled under a seed and packed padding-free, with the semantics of transformers'
// DataCollatorWithFlattening(return_seq_idx=True, return_flash_attn_kwargs=True): a batch of rows
// flattened into one packed row, positions restarting at 0 per document, seq_idx, cu_seq_lens and
// max_length, labels = the ids with -100 at each document's first token (no label crosses a
// boundary). docs/TRAINING.md "Data".

import { closeSync, openSync, readSync } from 'node:fs';
import type { SeqSlice } from '../cpu/seq.ts';
import { describeError, fail } from '../errors.ts';
import { createRng } from '../rng.ts';
import type { Tokenizer } from '../tokenizer.ts';

export type DataFormat = 'text' | 'jsonl';

/** One document: its token ids (EOS appended when the tokenizer has one) and the UTF-8 bytes of
 *  the text they encode (the separator's too when an EOS stands for it), for bits per byte. */
export interface Doc {
  readonly ids: readonly number[];
  readonly bytes: number;
}

/** 'jsonl' for .jsonl / .json files, else 'text'. */
export function formatOf(path: string): DataFormat {
  return /\.jsonl?$/i.test(path) ? 'jsonl' : 'text';
}

/** The file's documents as text, read `chunkBytes` at a time (a file larger than memory streams;
 *  one document must fit). Text: documents are separated by `separator` (empty ones skipped).
 *  JSONL: one JSON object per non-blank line, its string field "text"; a bad line is RT600 naming
 *  file and line. */
export function* readDocuments(path: string, format: DataFormat, separator: string, chunkBytes = 1 << 20): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    fail('RT100', [path, describeError(e)], { file: path });
  }
  const sep = format === 'jsonl' ? '\n' : separator;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const buf = new Uint8Array(chunkBytes);
  let pending = '', line = 1, read = 0;
  const emit = function* (text: string): Generator<string> {
    if (format === 'text') {
      if (text.trim() !== '') yield text;
      return;
    }
    const at = line++;
    if (text.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      fail('RT600', [path, at, `invalid JSON: ${describeError(e)}`], { file: path, line: at });
    }
    const t = (row as { text?: unknown } | null)?.text;
    if (typeof row !== 'object' || row === null || Array.isArray(row) || typeof t !== 'string') fail('RT600', [path, at, 'expected an object with a string field "text"'], { file: path, line: at });
    yield t;
  };
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        fail('RT100', [path, describeError(e)], { file: path });
      }
      try {
        pending += decoder.decode(buf.subarray(0, n), { stream: n > 0 });
      } catch {
        fail('RT100', [path, `not valid UTF-8 (in bytes ${Math.max(0, read - 3)} to ${read + n})`], { file: path });
      }
      read += n;
      let cut: number;
      while ((cut = pending.indexOf(sep)) >= 0) {
        yield* emit(pending.slice(0, cut));
        pending = pending.slice(cut + sep.length);
      }
      if (n === 0) break;
    }
    yield* emit(pending);
  } finally {
    closeSync(fd);
  }
}

/** Tokenised documents: no special tokens added by the post-processor, the first EOS appended.
 *  Text files are split on the EOS token's text (`<|endoftext|>`) or, without an EOS, on blank lines. */
export function* tokenizedDocuments(path: string, tok: Tokenizer, format = formatOf(path), chunkBytes?: number): Generator<Doc> {
  const eos = tok.eosIds[0];
  const eosText = eos === undefined ? undefined : tok.idToToken(eos);
  const separator = eosText ?? '\n\n';
  const sepBytes = eos === undefined ? 0 : new TextEncoder().encode(separator).length;
  for (const text of readDocuments(path, format, separator, chunkBytes)) {
    const ids = tok.encode(text, { addSpecialTokens: false });
    if (eos !== undefined) ids.push(eos);
    yield { ids, bytes: new TextEncoder().encode(text).length + sepBytes };
  }
}

/** A streaming shuffle: a buffer of `size` documents, each next one drawn uniformly from it and its
 *  place refilled from the stream (a full shuffle when the file has at most `size` documents). */
export function* shuffled<T>(items: Iterable<T>, size: number, seed: number): Generator<T> {
  const rng = createRng(seed);
  const buf: T[] = [];
  const draw = () => {
    const j = Math.floor(rng.next() * buf.length);
    const x = buf[j]!;
    buf[j] = buf[buf.length - 1]!;
    buf.pop();
    return x;
  };
  for (const x of items) {
    buf.push(x);
    if (buf.length > size) yield draw();
  }
  while (buf.length) yield draw();
}

/** A packed batch: tokens, positions and labels [T] with the rows of each sequence (the shape of
 *  compiler/grad.ts GradBatch: labels[t + 1] is row t's target), the collator's flash-attention
 *  arguments, and what the metrics count. */
export interface PackedBatch {
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqs: readonly SeqSlice[];
  readonly labels: Int32Array;
  /** [T]: the index of each token's sequence within the batch. */
  readonly seqIdx: Int32Array;
  /** [sequences + 1]: cumulative sequence lengths (cu_seq_lens_q = cu_seq_lens_k). */
  readonly cuSeqLens: Int32Array;
  /** The longest sequence (max_length_q = max_length_k). */
  readonly maxLength: number;
  /** Rows of up to seqLen tokens flattened into this batch. */
  readonly rows: number;
  /** UTF-8 bytes of the text the tokens encode (a document split over rows counts in its first). */
  readonly bytes: number;
  /** The pass over the file this batch comes from (0 first). */
  readonly epoch: number;
}

/** Flattens rows of sequences into one packed batch, as DataCollatorWithFlattening does. */
export function collate(rows: readonly (readonly Doc[])[], epoch = 0): PackedBatch {
  const seqsIds = rows.flat();
  const T = seqsIds.reduce((n, s) => n + s.ids.length, 0);
  const tokens = new Int32Array(T), positions = new Int32Array(T), labels = new Int32Array(T), seqIdx = new Int32Array(T);
  const cu = new Int32Array(seqsIds.length + 1);
  const seqs: { start: number; len: number }[] = [];
  let at = 0, maxLength = 0, bytes = 0;
  seqsIds.forEach((s, k) => {
    seqs.push({ start: at, len: s.ids.length });
    s.ids.forEach((id, j) => {
      tokens[at + j] = id;
      positions[at + j] = j;
      labels[at + j] = j === 0 ? -100 : id;
      seqIdx[at + j] = k;
    });
    at += s.ids.length;
    cu[k + 1] = at;
    maxLength = Math.max(maxLength, s.ids.length);
    bytes += s.bytes;
  });
  return { tokens, positions, labels, seqs, seqIdx, cuSeqLens: cu, maxLength, rows: rows.length, bytes, epoch };
}

export interface BatchOptions {
  readonly seqLen: number;
  readonly batch: number;
  readonly seed: number;
  /** Documents the streaming shuffle holds (default 1024); 0 keeps the file's order. */
  readonly shuffleBuffer?: number;
  /** Bytes read at a time (default 1 MiB). */
  readonly chunkBytes?: number;
  /** Stop after one pass over the file (evaluation) instead of starting the next epoch. */
  readonly once?: boolean;
}

/** Packed batches of `batch` rows of up to `seqLen` tokens each, forever (epoch e shuffled with
 *  seed + e) unless `once`. A document longer than a row is cut into pieces of seqLen tokens, each
 *  its own sequence (positions restart, its first token is not predicted). Rows are filled in
 *  order: a piece that does not fit closes the row. RT600 when the file holds no document. */
export function* packedBatches(path: string, tok: Tokenizer, o: BatchOptions): Generator<PackedBatch> {
  for (let epoch = 0; ; epoch++) {
    let docs: Iterable<Doc> = tokenizedDocuments(path, tok, formatOf(path), o.chunkBytes);
    if ((o.shuffleBuffer ?? 1024) > 0) docs = shuffled(docs, o.shuffleBuffer ?? 1024, o.seed + epoch);
    let row: Doc[] = [], rowLen = 0, any = false;
    let rows: Doc[][] = [];
    for (const d of docs) {
      any = true;
      for (let s = 0; s < d.ids.length; s += o.seqLen) {
        const piece: Doc = { ids: d.ids.slice(s, s + o.seqLen), bytes: s === 0 ? d.bytes : 0 };
        if (rowLen + piece.ids.length > o.seqLen) {
          rows.push(row);
          row = [], rowLen = 0;
          if (rows.length === o.batch) {
            yield collate(rows, epoch);
            rows = [];
          }
        }
        row.push(piece);
        rowLen += piece.ids.length;
      }
    }
    if (!any) fail('RT600', [path, 1, 'no documents in the file'], { file: path });
    if (rowLen) rows.push(row);
    // the last, partial batch of an epoch is kept: every document is seen once per epoch
    if (rows.length) yield collate(rows, epoch);
    if (o.once) return;
  }
}
