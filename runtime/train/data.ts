// Training data: documents streamed from a text or JSONL file, tokenised with the model's
// tokenizer (into a token file: ./data-store.ts), rows shuffled under a seed (./data-rows.ts) and
// packed padding-free, with the semantics of transformers'
// DataCollatorWithFlattening(return_seq_idx=True, return_flash_attn_kwargs=True): a batch of rows
// flattened into one packed row, positions restarting at 0 per document, seq_idx, cu_seq_lens and
// max_length, labels = the ids with -100 at each document's first token (no label crosses a
// boundary). docs/TRAINING.md "Data".

import { closeSync, openSync, readSync } from 'node:fs';
import type { SeqSlice } from '../cpu/seq.ts';
import { describeError, fail } from '../errors.ts';
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
 *  one document must fit: see readPieces for documents that need not). Text: documents are
 *  separated by `separator` (empty ones skipped). JSONL: one JSON object per non-blank line, its
 *  string field "text"; a bad line is RT600 naming file and line. */
export function* readDocuments(path: string, format: DataFormat, separator: string, chunkBytes = 1 << 20): Generator<string> {
  for (const p of readPieces(path, format, separator, chunkBytes, Infinity)) yield p.text;
}

/** A document's text in order, `end` on its last piece. */
export interface TextPiece {
  readonly text: string;
  readonly end: boolean;
}

/** readDocuments in pieces: a text document longer than `maxPiece` characters comes in pieces cut
 *  after its last newline before the limit (else at the limit, never inside a surrogate pair), so
 *  a document larger than memory (one long book, or a file with no separator at all) streams. A
 *  document in pieces is kept even if it is all whitespace. */
export function* readPieces(path: string, format: DataFormat, separator: string, chunkBytes = 1 << 20, maxPiece = chunkBytes): Generator<TextPiece> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    fail('RT100', [path, describeError(e)], { file: path });
  }
  const sep = format === 'jsonl' ? '\n' : separator;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const buf = new Uint8Array(chunkBytes);
  let pending = '', line = 1, read = 0, open = false;
  // pieces of at most maxPiece characters (one more to keep a surrogate pair) cut off the front of
  // `text` while more than that lies before its last `hold` characters; the rest is returned
  const chop = function* (text: string, hold: number): Generator<TextPiece, string> {
    while (format === 'text' && text.length - hold > maxPiece) {
      let at = text.lastIndexOf('\n', maxPiece - 1) + 1;
      if (at === 0) at = maxPiece + (/[\uD800-\uDBFF]/.test(text[maxPiece - 1]!) ? 1 : 0);
      yield { text: text.slice(0, at), end: false };
      open = true;
      text = text.slice(at);
    }
    return text;
  };
  const emit = function* (text: string): Generator<TextPiece> {
    if (format === 'text') {
      if (open || text.trim() !== '') yield { text, end: true };
      open = false;
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
    yield { text: t, end: true };
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
        yield* emit(yield* chop(pending.slice(0, cut), 0));
        pending = pending.slice(cut + sep.length);
      }
      // the tail may hold the start of a separator: only what lies before it can be cut off
      pending = yield* chop(pending, sep.length - 1);
      if (n === 0) break;
    }
    yield* emit(yield* chop(pending, 0));
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
  /** UTF-8 bytes of the text the tokens encode (a piece of a document: its share by tokens). */
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
