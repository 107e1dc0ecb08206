// Rows over the whole corpus: each batch's rows (`spans`, token ranges of the corpus) checked against
// the documents tokenised here one by one: every row read back is the corpus's tokens there, every
// sequence starts at a row's or a document's start (the collator's semantics), each epoch covers
// every token exactly once in a seeded order that differs per seed and per epoch; a file that is
// one long document gives rows from all over it at once; the text streams in pieces no larger than
// the chunk; the token file is reused while the file and tokenizer are the same; a resumed stream
// continues where the position says.

import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Tokenizer } from '../../runtime/tokenizer.ts';
import { loadTokenizer } from '../../runtime/tokenizer.ts';
import { type BatchOptions, packedBatches } from '../../runtime/train/data-rows.ts';
import { openStore } from '../../runtime/train/data-store.ts';
import { prng } from '../helpers/random.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const TOKENIZER = join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const tmp = useTmpDirs('archc-train-rows-');
let tok: Tokenizer;
beforeAll(async () => { tok = (await loadTokenizer(TOKENIZER))!; });

/** n random documents of 1..maxLen characters (some multi-byte, some newlines). */
function documents(n: number, maxLen: number, seed: number): string[] {
  const r = prng(seed);
  const alphabet = ['a', 'b', 'c', ' ', '\n', 'é', '€', '𝄞', 'z', '.'];
  return Array.from({ length: n }, () => Array.from({ length: 1 + Math.floor(r() * maxLen) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('').replace(/^\s+$/, 'x'));
}

/** The corpus as the loader must see it: each document tokenised alone, EOS appended; the starts. */
function stream(docs: readonly string[]): { ids: number[]; starts: Set<number> } {
  const ids: number[] = [], starts = new Set<number>();
  for (const d of docs) {
    starts.add(ids.length);
    ids.push(...tok.encode(d, { addSpecialTokens: false }), tok.eosIds[0]!);
  }
  return { ids, starts };
}

type Batch = ReturnType<typeof take>[number];
const take = (file: string, o: Partial<BatchOptions> & { cacheDir: string }, n = Infinity) => {
  const out = [];
  const it = packedBatches(file, tok, { seqLen: 16, batch: 3, seed: 1, ...o });
  for (let k = 0; k < n; k++) {
    const r = it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
};

/** Every batch is its rows' tokens of the corpus, with a sequence starting at each row's and each
 *  document's start and nowhere else; positions restart there, and the first token of each is not
 *  predicted. */
function checkBatches(batches: readonly Batch[], ids: readonly number[], starts: ReadonlySet<number>, seqLen: number): void {
  for (const b of batches) {
    const want: number[] = [], seqStarts: number[] = [];
    for (const [a, e] of b.spans) {
      expect(e - a).toBeGreaterThan(0);
      expect(e - a).toBeLessThanOrEqual(seqLen);
      for (let t = a; t < e; t++) {
        if (t === a || starts.has(t)) seqStarts.push(want.length);
        want.push(ids[t]!);
      }
    }
    expect(Array.from(b.tokens)).toEqual(want);
    expect(b.seqs.map((s) => s.start)).toEqual(seqStarts);
    expect(Array.from(b.cuSeqLens)).toEqual([...seqStarts, want.length]);
    for (let t = 0; t < want.length; t++) {
      const k = b.seqIdx[t]!;
      expect(b.positions[t]).toBe(t - b.cuSeqLens[k]!);
      expect(b.labels[t]).toBe(b.positions[t] === 0 ? -100 : b.tokens[t]);
    }
    expect(b.maxLength).toBe(Math.max(...b.seqs.map((s) => s.len)));
  }
}

/** The spans of one epoch's batches tile [0, tokens) exactly once. */
function expectCover(batches: readonly Batch[], tokens: number): void {
  const spans = batches.flatMap((b) => b.spans).sort((x, y) => x[0] - y[0]);
  expect(spans[0]![0]).toBe(0);
  for (let k = 1; k < spans.length; k++) expect(spans[k]![0], `row ${k} starts where row ${k - 1} ends`).toBe(spans[k - 1]![1]);
  expect(spans.at(-1)![1]).toBe(tokens);
}

describe('rows over the whole corpus', () => {
  it('packs short documents with the collator\'s semantics and visits every row once an epoch, in a seeded order', () => {
    const dir = tmp(), file = join(dir, 'c.txt'), cacheDir = join(dir, 'cache');
    const docs = [...documents(50, 12, 3), ...documents(6, 70, 4)]; // short ones, and some longer than a row
    writeFileSync(file, docs.join('<|endoftext|>'));
    const { ids, starts } = stream(docs);
    const a = take(file, { cacheDir, seed: 7 }, 200);
    const epochs = new Set(a.map((b) => b.epoch));
    expect(epochs.size).toBeGreaterThan(2);
    for (const e of epochs) {
      const of = a.filter((b) => b.epoch === e);
      if (of.at(-1)!.next.epoch === e) continue; // the last epoch taken is partial
      expectCover(of, ids.length);
      // documents longer than a row are cut at other places in other epochs (a random phase)
      checkBatches(of, ids, starts, 16);
    }
    const firstRows = (bs: Batch[], e: number) => bs.filter((b) => b.epoch === e).flatMap((b) => b.spans.map((s) => s[0]));
    expect(firstRows(a, 0), 'epochs visit rows in different orders').not.toEqual(firstRows(a, 1));
    expect(firstRows(a, 0), 'not the file\'s order').not.toEqual([...firstRows(a, 0)].sort((x, y) => x - y));
    // deterministic under the seed (and whatever the chunk size reading the text); another seed, another order
    const again = take(file, { cacheDir: join(dir, 'other'), seed: 7, chunkBytes: 5 }, 200);
    expect(again.map((b) => Array.from(b.tokens))).toEqual(a.map((b) => Array.from(b.tokens)));
    expect(take(file, { cacheDir, seed: 8 }, 200).map((b) => b.spans)).not.toEqual(a.map((b) => b.spans));
    // the file's order for evaluation: rows in order, documents cut at their starts, one pass
    const ordered = take(file, { cacheDir, shuffle: false, once: true });
    expectCover(ordered, ids.length);
    checkBatches(ordered, ids, starts, 16);
    const rowStarts = ordered.flatMap((b) => b.spans.map((s) => s[0]));
    expect(rowStarts).toEqual([...rowStarts].sort((x, y) => x - y));
  });

  it('gives rows from all over a file that is one document, from the first batches on', () => {
    const dir = tmp(), file = join(dir, 'book.txt'), cacheDir = join(dir, 'cache');
    const text = Array.from({ length: 400 }, (_, k) => `line ${k} of the book.\n`).join('');
    writeFileSync(file, text);
    const { ids, starts } = stream([text]);
    const first = take(file, { cacheDir, seqLen: 32, batch: 4 }, 2);
    checkBatches(first, ids, starts, 32);
    // 8 rows of ~300: drawn from the whole file, not its first 8 rows
    const at = first.flatMap((b) => b.spans.map((s) => s[0] / ids.length));
    expect(Math.max(...at), `row offsets ${at.map((x) => x.toFixed(2))}`).toBeGreaterThan(0.5);
    expect(at.filter((x) => x < 0.25).length).toBeLessThan(at.length);
    // a whole epoch covers it once, cut at a random phase
    const epoch = take(file, { cacheDir, seqLen: 32, batch: 4, once: true });
    expectCover(epoch, ids.length);
    expect(epoch.flatMap((b) => b.spans).every(([a, e]) => e - a === 32 || a === 0 || e === ids.length)).toBe(true);
  });

  it('streams a document larger than the chunk in pieces no larger than it, and reuses the token file', () => {
    const dir = tmp(), file = join(dir, 'big.txt'), cacheDir = join(dir, 'cache');
    const text = documents(1, 40000, 9)[0]!.replace(/\n/g, ' ') + '\n' + documents(1, 40000, 10)[0]!; // 5 × the chunk, few newlines
    writeFileSync(file, text);
    let longest = 0, calls = 0;
    const spy: Tokenizer = { ...tok, encode: (t, o) => (calls++, longest = Math.max(longest, t.length), tok.encode(t, o)), idToToken: (i) => tok.idToToken(i), tokenToId: (t) => tok.tokenToId(t) };
    const s = openStore(file, spy, { cacheDir, chunkBytes: 8192 });
    const { ids } = stream([text]);
    expect(s.tokens).toBe(ids.length);
    expect(longest, 'no piece of text longer than the chunk is tokenised').toBeLessThanOrEqual(8192 + 1);
    const before = calls;
    // the same file and tokenizer: the token file is read back, nothing is tokenised again
    expect(openStore(file, spy, { cacheDir, chunkBytes: 8192 }).file).toBe(s.file);
    expect(calls - before).toBe(1); // the tokenizer's fingerprint only
    const batches = take(file, { cacheDir, chunkBytes: 8192, seqLen: 64, batch: 8, once: true });
    expectCover(batches, ids.length);
    checkBatches(batches.slice(0, 3), ids, new Set([0]), 64);
    // another mtime: tokenised again
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect(openStore(file, spy, { cacheDir, chunkBytes: 8192 }).file).not.toBe(s.file);
  });

  it('continues from a saved position as the stream that never stopped', () => {
    const dir = tmp(), file = join(dir, 'c.txt'), cacheDir = join(dir, 'cache');
    writeFileSync(file, documents(40, 30, 5).join('<|endoftext|>'));
    const all = take(file, { cacheDir }, 60);
    for (const k of [1, 17, all.findIndex((b) => b.epoch === 1), 45]) {
      const rest = take(file, { cacheDir, start: all[k - 1]!.next }, 60 - k);
      expect(rest.map((b) => [b.epoch, Array.from(b.tokens)]), `from batch ${k}`).toEqual(all.slice(k).map((b) => [b.epoch, Array.from(b.tokens)]));
    }
  });
});
