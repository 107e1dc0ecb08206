// The packer against DataCollatorWithFlattening's semantics, checked as properties of every batch
// (positions restart per document, labels -100 exactly at each document's first token, seq_idx and
// cu_seq_lens agree, no row over seqLen), every document seen once per epoch, determinism under a
// seed, and streaming: any chunk size (splitting UTF-8 characters and separators) reads the same.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../runtime/errors.ts';
import { type Tokenizer, loadTokenizer } from '../../runtime/tokenizer.ts';
import { type PackedBatch, packedBatches, readDocuments, tokenizedDocuments } from '../../runtime/train/data.ts';
import { prng } from '../helpers/random.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const TOKENIZER = join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const tmp = useTmpDirs('archc-train-data-');
let tok: Tokenizer;
beforeAll(async () => { tok = (await loadTokenizer(TOKENIZER))!; });

/** n random documents of 1..maxLen characters, some multi-byte, joined by the EOS text. */
function corpus(n: number, maxLen: number, seed: number): { docs: string[]; text: string } {
  const r = prng(seed);
  const alphabet = ['a', 'b', 'c', ' ', '\n', 'é', '€', '𝄞', 'z', '.'];
  const docs = Array.from({ length: n }, () => Array.from({ length: 1 + Math.floor(r() * maxLen) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('').replace(/^\s+$/, 'x'));
  return { docs, text: docs.join('<|endoftext|>') };
}

/** Every property the collator promises, for one batch. */
function checkBatch(b: PackedBatch, seqLen: number, batch: number): void {
  const T = b.tokens.length;
  expect(b.cuSeqLens[0]).toBe(0);
  expect(b.cuSeqLens.at(-1)).toBe(T);
  expect(b.seqs.length).toBe(b.cuSeqLens.length - 1);
  expect(b.rows).toBeLessThanOrEqual(batch);
  let max = 0;
  b.seqs.forEach((s, k) => {
    expect(s.start).toBe(b.cuSeqLens[k]);
    expect(s.start + s.len).toBe(b.cuSeqLens[k + 1]);
    expect(s.len).toBeLessThanOrEqual(seqLen);
    max = Math.max(max, s.len);
  });
  expect(b.maxLength).toBe(max);
  for (let t = 0; t < T; t++) {
    const k = b.seqIdx[t]!;
    expect(b.positions[t]).toBe(t - b.cuSeqLens[k]!);
    expect(b.labels[t]).toBe(b.positions[t] === 0 ? -100 : b.tokens[t]);
  }
  // rows are at most seqLen tokens: T ≤ rows · seqLen, and every row but the last is over-full by the next piece
  expect(T).toBeLessThanOrEqual(b.rows * seqLen);
}

describe('training data', () => {
  it('reads the same documents with any chunk size (UTF-8 characters and separators cut across chunks)', () => {
    const { docs, text } = corpus(40, 30, 1);
    const file = join(tmp(), 'c.txt');
    writeFileSync(file, text);
    for (const chunk of [1, 2, 3, 5, 13, 64, 1 << 20]) expect([...readDocuments(file, 'text', '<|endoftext|>', chunk)], `chunk ${chunk}`).toEqual(docs);
  });

  it('tokenises each document to its bytes plus EOS', () => {
    const { docs, text } = corpus(10, 20, 2);
    const file = join(tmp(), 'c.txt');
    writeFileSync(file, text);
    const got = [...tokenizedDocuments(file, tok, 'text', 7)];
    expect(got.map((d) => tok.decode(d.ids.slice(0, -1)))).toEqual(docs);
    for (const d of got) expect(d.ids.at(-1)).toBe(tok.eosIds[0]);
    expect(got.map((d) => d.bytes)).toEqual(docs.map((s) => new TextEncoder().encode(s).length + '<|endoftext|>'.length));
  });

  it('packs with the collator\'s semantics, every document once per epoch, the same under a seed', () => {
    const { docs, text } = corpus(60, 40, 3);
    const file = join(tmp(), 'c.txt');
    writeFileSync(file, text);
    const seqLen = 16, batch = 3;
    const take = (seed: number, chunkBytes?: number) => [...packedBatches(file, tok, { seqLen, batch, seed, once: true, shuffleBuffer: 8, chunkBytes })];
    const a = take(7);
    for (const b of a) checkBatch(b, seqLen, batch);
    // pieces of seqLen tokens, each its own sequence: glued back per document they give every document once
    const pieces = a.flatMap((b) => b.seqs.map((s) => Array.from(b.tokens.subarray(s.start, s.start + s.len))));
    const want = docs.map((d) => [...tok.encode(d, { addSpecialTokens: false }), tok.eosIds[0]!]);
    const glued: number[][] = [];
    for (const p of pieces) {
      const last = glued.at(-1);
      if (last && last.length % seqLen === 0 && last.at(-1) !== tok.eosIds[0]) last.push(...p);
      else glued.push([...p]);
    }
    expect(glued.map((g) => g.join()).sort()).toEqual(want.map((g) => g.join()).sort());
    expect(glued.map((g) => g.join())).not.toEqual(want.map((g) => g.join())); // shuffled
    // deterministic under a seed, whatever the chunk size; another seed, another order
    const same = take(7, 5);
    expect(same.map((b) => Array.from(b.tokens))).toEqual(a.map((b) => Array.from(b.tokens)));
    expect(take(8).map((b) => Array.from(b.tokens))).not.toEqual(a.map((b) => Array.from(b.tokens)));
  });

  it('starts the next epoch with the next seed, and never lets a label cross a boundary', () => {
    const { text } = corpus(5, 10, 4);
    const file = join(tmp(), 'c.txt');
    writeFileSync(file, text);
    const it = packedBatches(file, tok, { seqLen: 32, batch: 2, seed: 0 });
    const seen: PackedBatch[] = [];
    for (let k = 0; k < 6; k++) seen.push(it.next().value as PackedBatch);
    expect(new Set(seen.map((b) => b.epoch)).size).toBeGreaterThan(1);
    for (const b of seen) checkBatch(b, 32, 2);
  });

  it('reads JSONL "text" fields and names the file and line of a bad row (RT600)', () => {
    const dir = tmp(), good = join(dir, 'd.jsonl'), bad = join(dir, 'e.jsonl'), none = join(dir, 'f.jsonl');
    writeFileSync(good, '{"text": "ab"}\n\n{"text": "c\\nd", "id": 3}\n');
    expect([...readDocuments(good, 'jsonl', '', 3)]).toEqual(['ab', 'c\nd']);
    writeFileSync(bad, '{"text": "ab"}\n{"txt": 1}\n');
    expect(() => [...readDocuments(bad, 'jsonl', '')]).toThrowError(expect.objectContaining({ code: 'RT600', line: 2, message: expect.stringContaining(`${bad}:2: expected an object with a string field "text"`) }));
    writeFileSync(bad, '{"text": "ab"}\n{oops\n');
    expect(() => [...readDocuments(bad, 'jsonl', '')]).toThrowError(expect.objectContaining({ code: 'RT600', line: 2 }));
    writeFileSync(none, '\n\n');
    expect(() => [...packedBatches(none, tok, { seqLen: 8, batch: 1, seed: 0 })]).toThrowError(RuntimeError);
    expect(() => [...readDocuments(join(dir, 'missing.txt'), 'text', 'x')]).toThrowError(expect.objectContaining({ code: 'RT100' }));
    writeFileSync(bad, Uint8Array.from([0x61, 0x62, 0xff, 0x63]));
    expect(() => [...readDocuments(bad, 'text', 'x', 2)]).toThrowError(expect.objectContaining({ code: 'RT100', message: `RT100: cannot read ${bad}: not valid UTF-8 (in bytes 0 to 4)` }));
  });
});
