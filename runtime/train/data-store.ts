// The training corpus as a token file on disk (nanoGPT's train.bin, Megatron's indexed dataset):
// one streaming pass tokenises the data file into `<key>.tokens` (u16 ids, or u32 when the
// vocabulary is larger) plus `<key>.index` (where each document starts and its UTF-8 bytes), kept
// in a cache directory and reused while the file's path, size and mtime and the tokenizer match.
// Rows are then read back by offset (./data-rows.ts), so neither the text nor its tokens are ever
// held whole. docs/TRAINING.md "Data".

import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RuntimeError, describeError, fail } from '../errors.ts';
import type { Tokenizer } from '../tokenizer.ts';
import { type DataFormat, formatOf, readPieces } from './data.ts';

/** A tokenised corpus: `docs` documents, document i = tokens [starts[i], starts[i + 1]) of the
 *  token file (its EOS included), `bytes[i]` the UTF-8 bytes of its text and separator. */
export interface TokenStore {
  readonly file: string;
  /** Bytes per id in the token file: 2 (vocabulary ≤ 65536) or 4. */
  readonly width: 2 | 4;
  readonly tokens: number;
  readonly docs: number;
  /** [docs + 1] */
  readonly starts: Float64Array;
  /** [docs] */
  readonly bytes: Float64Array;
}

export interface StoreOptions {
  /** Where token files are kept (default: archc-data in the OS temp directory). */
  readonly cacheDir?: string;
  /** Bytes read at a time, and the longest piece of a document tokenised at once (default 1 MiB). */
  readonly chunkBytes?: number;
}

const VERSION = 1;

/** The store of `path` tokenised with `tok`: from the cache when its key matches, else built
 *  (files written under temp names and renamed into place: a store is whole or absent). RT600
 *  when the file holds no document. */
export function openStore(path: string, tok: Tokenizer, o: StoreOptions = {}): TokenStore {
  const file = resolve(path);
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    fail('RT100', [file, describeError(e)], { file });
  }
  const format = formatOf(file);
  const key = createHash('sha256').update(JSON.stringify({ v: VERSION, file, size: st.size, mtime: st.mtimeMs, format, tok: tokenizerPrint(tok) })).digest('hex').slice(0, 24);
  const dir = resolve(o.cacheDir ?? join(tmpdir(), 'archc-data'));
  const base = join(dir, key);
  const width = tok.vocabSize <= 65536 ? 2 : 4;
  const store = readStore(base, width) ?? buildStore(file, format, tok, base, width, o.chunkBytes ?? 1 << 20);
  if (store.docs === 0) fail('RT600', [file, 1, 'no documents in the file'], { file });
  return store;
}

/** What the tokens depend on: the vocabulary, the EOS, and how a probe text encodes (the merges). */
function tokenizerPrint(tok: Tokenizer): string {
  const h = createHash('sha256');
  for (let i = 0; i < tok.vocabSize; i++) h.update(`${tok.idToToken(i) ?? ''}\u0000`);
  h.update(JSON.stringify([tok.eosIds, tok.encode('The quick brown fox, 1234 times: "jumps" over\nthe lazy dog\'s été — 𝄞 ok.\n\n', { addSpecialTokens: false })]));
  return h.digest('hex');
}

/** The cached store at `base`, or null when absent or not whole. */
function readStore(base: string, width: 2 | 4): TokenStore | null {
  if (!existsSync(`${base}.index`) || !existsSync(`${base}.tokens`)) return null;
  let raw: Buffer;
  try {
    raw = readFileSync(`${base}.index`);
  } catch {
    return null; // built again (and its error, if any, named then)
  }
  if (raw.byteLength < 24 || raw.byteLength % 8) return null;
  const index = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const [version, docs, tokens] = [index[0]!, index[1]!, index[2]!];
  if (version !== VERSION || index.length !== 3 + 2 * docs + 1 || statSync(`${base}.tokens`).size !== tokens * width) return null;
  return { file: `${base}.tokens`, width, tokens, docs, starts: index.subarray(3, 4 + docs), bytes: index.subarray(4 + docs) };
}

/** One streaming pass: pieces of documents tokenised and appended to the token file. A document cut
 *  into pieces (./data.ts readPieces) is tokenised piece by piece, after newlines: exact for a
 *  byte-level vocabulary, and for BPE at most a merge across those newlines differs. */
function buildStore(file: string, format: DataFormat, tok: Tokenizer, base: string, width: 2 | 4, chunkBytes: number): TokenStore {
  const eos = tok.eosIds[0];
  const eosText = eos === undefined ? undefined : tok.idToToken(eos);
  const separator = eosText ?? '\n\n';
  const sepBytes = eos === undefined ? 0 : Buffer.byteLength(separator, 'utf8');
  const tmp = `${base}.tmp-${process.pid}`;
  let fd = -1;
  const out = width === 2 ? new Uint16Array(1 << 16) : new Uint32Array(1 << 16);
  let fill = 0, tokens = 0, docBytes = 0;
  const starts: number[] = [0], bytes: number[] = [];
  const flush = () => {
    writeSync(fd, new Uint8Array(out.buffer, 0, fill * width));
    fill = 0;
  };
  const push = (id: number) => ((out[fill++] = id), tokens++, fill === out.length && flush());
  try {
    mkdirSync(resolve(base, '..'), { recursive: true });
    fd = openSync(`${tmp}.tokens`, 'w');
    for (const p of readPieces(file, format, separator, chunkBytes)) {
      for (const id of tok.encode(p.text, { addSpecialTokens: false })) push(id);
      docBytes += Buffer.byteLength(p.text, 'utf8');
      if (!p.end) continue;
      if (eos !== undefined) push(eos);
      starts.push(tokens);
      bytes.push(docBytes + sepBytes);
      docBytes = 0;
    }
    flush();
    closeSync(fd);
    fd = -1;
    const index = Float64Array.from([VERSION, bytes.length, tokens, ...starts, ...bytes]);
    const ifd = openSync(`${tmp}.index`, 'w');
    writeSync(ifd, new Uint8Array(index.buffer));
    closeSync(ifd);
    // the tokens first: an index without its tokens is never read
    renameSync(`${tmp}.tokens`, `${base}.tokens`);
    renameSync(`${tmp}.index`, `${base}.index`);
    return { file: `${base}.tokens`, width, tokens, docs: bytes.length, starts: index.subarray(3, 4 + bytes.length), bytes: index.subarray(4 + bytes.length) };
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    for (const f of [`${tmp}.tokens`, `${tmp}.index`]) try { rmSync(f, { force: true }); } catch { /* never made */ }
    // the data's own errors stand; the cache's (a directory not writable, a full disk) name it
    if (e instanceof RuntimeError) throw e;
    fail('RT151', [`${base}.tokens`, `${describeError(e)} (the token file of ${file}; give --data-cache another directory)`], { file: `${base}.tokens` });
  }
}

/** Tokens [from, to) of the store, read by offset. */
export function readTokens(s: TokenStore, fd: number, from: number, to: number): Uint16Array | Uint32Array {
  const buf = new Uint8Array((to - from) * s.width);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, from * s.width + got);
    if (n === 0) fail('RT100', [s.file, `the token file ends before token ${to}; remove it to rebuild the cache`], { file: s.file });
    got += n;
  }
  return s.width === 2 ? new Uint16Array(buf.buffer) : new Uint32Array(buf.buffer);
}
