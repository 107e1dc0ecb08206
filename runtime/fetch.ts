// A checkpoint read over HTTP (browsers, or any `fetch`): config.json, model.safetensors or its
// sharded index, and tokenizer.json under a base URL. Headers come first (two range requests per
// file); each tensor is then fetched alone by its byte range, so the model is never held whole in
// the JS heap. A server that ignores ranges (200 instead of 206) still works: the file is read
// once and tensors are cut from it.

import { type HfConfig, parseHfConfig } from './hfconfig.ts';
import { describeError, fail } from './errors.ts';
import { type TensorInfo, parseSafetensorsHeader, readHeaderLength, tensorFromBytes } from './safetensors.ts';
import type { Tensor, TensorAlloc } from './tensor.ts';
import { type Tokenizer, tokenizerFromJson } from './tokenizer.ts';

/** The tensors of a checkpoint, read one at a time (a Checkpoint, or this over HTTP). */
export interface TensorSource {
  /** What was opened (a path or URL), for messages. */
  readonly path: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** One tensor; `alloc`, if given, supplies the memory of a tensor kept in its stored dtype (f32,
   *  f16, bf16, i32) — a reused buffer, or shared memory — instead of a fresh one. */
  read(name: string, alloc?: TensorAlloc): Tensor | Promise<Tensor>;
  close(): void;
}

/** What a model loads from a checkpoint directory or URL. */
export interface CheckpointFiles {
  /** config.json's path or URL (messages). */
  readonly configPath: string;
  /** Its contents ({} when the checkpoint has none). */
  readonly config: HfConfig;
  /** Opens the weights (headers only; tensors are read on demand). */
  tensors(): Promise<TensorSource>;
  tokenizer(): Promise<Tokenizer | null>;
  /** A file's path or URL (messages). */
  path(name: string): string;
}

type Fetch = (url: string, init?: { headers?: Record<string, string> }) => Promise<Response>;

/** True for an http(s) URL (a checkpoint to fetch rather than a directory). */
export function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/** Opens the checkpoint under `base` (a URL; relative ones resolve against the page). */
export async function fetchCheckpoint(base: string, fetchFn: Fetch = globalThis.fetch.bind(globalThis)): Promise<CheckpointFiles> {
  const root = base.endsWith('/') ? base : `${base}/`;
  const at = (name: string) => `${root}${name}`;
  const text = async (name: string): Promise<string | null> => {
    const r = await get(fetchFn, at(name));
    if (r.status === 404) return null;
    if (!r.ok) fail('RT100', [at(name), `HTTP ${r.status}`], { file: at(name) });
    return r.text();
  };
  const configText = await text('config.json');
  const config = configText === null ? {} : parseHfConfig(configText, at('config.json'));
  return {
    configPath: at('config.json'),
    config,
    tensors: () => openTensors(fetchFn, at),
    path: at,
    async tokenizer() {
      const tok = await text('tokenizer.json');
      if (tok === null) return null;
      return tokenizerFromJson(tok, (await text('tokenizer_config.json')) ?? undefined, (await text('special_tokens_map.json')) ?? undefined);
    },
  };
}

async function get(fetchFn: Fetch, url: string, range?: [number, number]): Promise<Response> {
  try {
    return await fetchFn(url, range ? { headers: { Range: `bytes=${range[0]}-${range[1] - 1}` } } : undefined);
  } catch (e) {
    fail('RT100', [url, describeError(e)], { file: url }, e);
  }
}

/** One remote safetensors file: its size and a reader of byte ranges. */
interface RemoteFile {
  readonly url: string;
  readonly size: number;
  bytes(begin: number, end: number): Promise<Uint8Array>;
}

async function openFile(fetchFn: Fetch, url: string): Promise<RemoteFile | null> {
  const r = await get(fetchFn, url, [0, 8]);
  if (r.status === 404) return null;
  if (!r.ok) fail('RT100', [url, `HTTP ${r.status}`], { file: url });
  if (r.status === 200) {
    // no range support: the whole file came back
    const all = new Uint8Array(await r.arrayBuffer());
    return { url, size: all.length, bytes: async (b, e) => all.slice(b, e) };
  }
  const total = /\/(\d+)\s*$/.exec(r.headers.get('content-range') ?? '');
  if (!total) fail('RT100', [url, 'a range response without the file size (Content-Range: bytes a-b/size)'], { file: url });
  const size = Number(total[1]);
  const prefix = new Uint8Array(await r.arrayBuffer());
  const file: RemoteFile = {
    url, size,
    async bytes(begin, end) {
      if (begin === 0 && end <= prefix.length) return prefix.slice(0, end);
      if (end === begin) return new Uint8Array(0);
      const part = await get(fetchFn, url, [begin, end]);
      if (part.status !== 206) fail('RT100', [url, `HTTP ${part.status} for bytes ${begin}-${end - 1}`], { file: url });
      const got = new Uint8Array(await part.arrayBuffer());
      if (got.length !== end - begin) fail('RT100', [url, `${got.length} bytes for the range ${begin}-${end - 1}`], { file: url });
      return got;
    },
  };
  return file;
}

async function header(file: RemoteFile): Promise<TensorInfo[]> {
  const n = readHeaderLength(await file.bytes(0, 8), file.size, file.url);
  return [...parseSafetensorsHeader(await file.bytes(8, 8 + n), file.size, file.url).tensors];
}

async function openTensors(fetchFn: Fetch, at: (name: string) => string): Promise<TensorSource> {
  const single = await openFile(fetchFn, at('model.safetensors'));
  const files = new Map<string, RemoteFile>();
  let infos: TensorInfo[];
  let path: string;
  if (single) {
    path = single.url;
    files.set(single.url, single);
    infos = await header(single);
  } else {
    path = at('model.safetensors.index.json');
    const r = await get(fetchFn, path);
    if (r.status === 404) fail('RT101', [at('')], { file: at('') });
    if (!r.ok) fail('RT100', [path, `HTTP ${r.status}`], { file: path });
    let map: unknown;
    try {
      map = (JSON.parse(await r.text()) as { weight_map?: unknown }).weight_map;
    } catch (e) {
      fail('RT130', [path, `not valid JSON: ${describeError(e)}`], { file: path });
    }
    if (typeof map !== 'object' || map === null || Array.isArray(map)) fail('RT130', [path, 'weight_map must be an object'], { file: path, key: 'weight_map' });
    infos = [];
    for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string' || !shard || shard.includes('/') || shard.includes('\\')) fail('RT133', [path, String(shard), tensor], { file: path, tensor });
      const url = at(shard);
      if (!files.has(url)) {
        const f = await openFile(fetchFn, url) ?? fail('RT131', [path, url, tensor], { file: path, tensor });
        files.set(url, f);
        infos.push(...(await header(f)).filter((t) => (map as Record<string, unknown>)[t.name] === shard));
      }
      if (!infos.some((t) => t.name === tensor)) fail('RT132', [path, tensor, url], { file: path, tensor });
    }
  }
  const tensors = new Map(infos.map((t) => [t.name, t]));
  let closed = false;
  return {
    path,
    tensors,
    async read(name, alloc) {
      if (closed) fail('RT141', [path], { file: path, tensor: name });
      const info = tensors.get(name) ?? fail('RT140', [path, name], { file: path, tensor: name });
      return tensorFromBytes(info, await files.get(info.file)!.bytes(info.begin, info.end), alloc);
    },
    close() { closed = true; },
  };
}
