// Reading and tokenising the data: any chunk size (splitting UTF-8 characters and separators) reads
// the same documents, a long document comes in pieces that join to it, JSONL rows and bad input
// named with their codes. The rows and batches: ./data-rows.test.ts.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Tokenizer, loadTokenizer } from '../../runtime/tokenizer.ts';
import { readDocuments, readPieces, tokenizedDocuments } from '../../runtime/train/data.ts';
import { packedBatches } from '../../runtime/train/data-rows.ts';
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

  it('gives a long document in pieces that join to it, cut after newlines, never inside a character', () => {
    const { text } = corpus(1, 3000, 5);
    const file = join(tmp(), 'c.txt');
    writeFileSync(file, `${text}<|endoftext|>short<|endoftext|>${text}`);
    for (const [chunk, max] of [[7, 16], [64, 64], [1000, 100], [3, 5]] as const) {
      const pieces = [...readPieces(file, 'text', '<|endoftext|>', chunk, max)];
      const docs: string[] = [''];
      for (const p of pieces) {
        expect(p.text.length, `chunk ${chunk}, pieces of ${max}`).toBeLessThanOrEqual(max + 1);
        if (!p.end) expect(p.text.endsWith('\n') || p.text.length >= max).toBe(true);
        expect(/[\uD800-\uDBFF]$/.test(p.text)).toBe(false);
        docs[docs.length - 1] += p.text;
        if (p.end) docs.push('');
      }
      expect(docs.slice(0, -1)).toEqual([text, 'short', text]);
      expect(pieces.filter((p) => !p.end).length).toBeGreaterThan(2);
    }
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
    expect(() => [...packedBatches(none, tok, { seqLen: 8, batch: 1, seed: 0, cacheDir: join(dir, 'cache') })]).toThrowError(expect.objectContaining({ code: 'RT600', file: none }));
    expect(() => [...packedBatches(join(dir, 'missing.txt'), tok, { seqLen: 8, batch: 1, seed: 0, cacheDir: join(dir, 'cache') })]).toThrowError(expect.objectContaining({ code: 'RT100' }));
    // a cache directory that cannot be made: RT151 naming the token file, nothing left behind
    writeFileSync(join(dir, 'blocked'), 'a file');
    expect(() => [...packedBatches(good, tok, { seqLen: 8, batch: 1, seed: 0, cacheDir: join(dir, 'blocked', 'cache') })]).toThrowError(expect.objectContaining({ code: 'RT151', file: expect.stringContaining(join(dir, 'blocked', 'cache')) }));
    expect(() => [...readDocuments(join(dir, 'missing.txt'), 'text', 'x')]).toThrowError(expect.objectContaining({ code: 'RT100' }));
    writeFileSync(bad, Uint8Array.from([0x61, 0x62, 0xff, 0x63]));
    expect(() => [...readDocuments(bad, 'text', 'x', 2)]).toThrowError(expect.objectContaining({ code: 'RT100', message: `RT100: cannot read ${bad}: not valid UTF-8 (in bytes 0 to 4)` }));
  });
});
