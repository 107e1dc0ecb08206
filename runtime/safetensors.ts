// Safetensors checkpoints: lazy, bounds-checked reading (one file, or shards named by an index);
// writing is safetensors-write.ts. File layout: u64 little-endian header length N · N bytes of JSON
// header · data section; `data_offsets` in the header are relative to the start of the data section.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DType, type Tensor, type TensorAlloc, type TensorData, numel, f16ToF32 } from './tensor.ts';
import { RuntimeError, type RuntimeErrorContext, describeError, fail } from './errors.ts';
import { RUNTIME_LIMITS, jsonDepth } from './limits.ts';
import { probePath, readRegular } from './paths.ts';

export { type NamedTensor, type ShardedWrite, writeSafetensors, writeShardedSafetensors } from './safetensors-write.ts';

/** The reference implementation's limit on the JSON header (100 MB). */
export const MAX_HEADER_BYTES = RUNTIME_LIMITS.headerBytes.value;

/** Stored dtypes this runtime understands: bytes per element and the DType that `read` returns.
 *  F64 and F8 narrow/widen to f32; integer types become i32 (I64/U64/U32 are range-checked). */
const FILE_DTYPES = {
  F32: { bytes: 4, dtype: 'f32' },
  F16: { bytes: 2, dtype: 'f16' },
  BF16: { bytes: 2, dtype: 'bf16' },
  I32: { bytes: 4, dtype: 'i32' },
  F64: { bytes: 8, dtype: 'f32' },
  F8_E4M3: { bytes: 1, dtype: 'f32' },
  F8_E5M2: { bytes: 1, dtype: 'f32' },
  I64: { bytes: 8, dtype: 'i32' },
  U64: { bytes: 8, dtype: 'i32' },
  U32: { bytes: 4, dtype: 'i32' },
  I16: { bytes: 2, dtype: 'i32' },
  U16: { bytes: 2, dtype: 'i32' },
  I8: { bytes: 1, dtype: 'i32' },
  U8: { bytes: 1, dtype: 'i32' },
  BOOL: { bytes: 1, dtype: 'i32' },
} as const satisfies Record<string, { bytes: number; dtype: DType }>;

export type FileDType = keyof typeof FILE_DTYPES;


/** One tensor of a checkpoint. `begin`/`end` are absolute byte offsets in `file`. */
export interface TensorInfo {
  readonly name: string;
  /** The dtype `read` returns. */
  readonly dtype: DType;
  /** The dtype as stored in the file (`BF16`, `I64`, …). */
  readonly fileDtype: FileDType;
  readonly shape: readonly number[];
  readonly file: string;
  readonly begin: number;
  readonly end: number;
}

/** A parsed, validated header of one safetensors file. */
export interface SafetensorsHeader {
  readonly file: string;
  /** Absolute offset of the data section (8 + N). */
  readonly dataStart: number;
  /** In header order. */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
}

export interface Checkpoint {
  /** What was opened: a `.safetensors` file or a `.safetensors.index.json`. */
  readonly path: string;
  /** The safetensors files (shards) the tensors live in. */
  readonly files: readonly string[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** `__metadata__` of the file(s); for shards, the first value seen for each key. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Bytes of tensor data over all tensors (what an index calls `total_size`). */
  readonly totalBytes: number;
  /** Reads one tensor's byte range into a fresh typed array (a dtype kept as stored: `alloc`'s memory). */
  read(name: string, alloc?: TensorAlloc): Tensor;
  /** Closes the open files; `read` fails afterwards. Safe to call twice. */
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Header parsing (pure: takes bytes, so a browser loader can reuse it with range requests)

/** Header length N from the file's first 8 bytes, checked against the file size. */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) fail('RT110', [file, fileSize], { file });
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) fail('RT111', [file], { file });
  if (n > BigInt(fileSize - 8)) fail('RT112', [file, n, fileSize - 8], { file });
  if (n > BigInt(MAX_HEADER_BYTES)) fail('RT113', [file, n, MAX_HEADER_BYTES], { file });
  return Number(n);
}

/** Parses and validates the JSON header (`bytes` are the N header bytes of a file of `fileSize`). */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const dataStart = 8 + bytes.length;
  const dataSize = fileSize - dataStart;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    fail('RT114', [file], { file });
  }
  const depth = jsonDepth(text, RUNTIME_LIMITS.headerDepth.value);
  if (depth > RUNTIME_LIMITS.headerDepth.value) fail('RT118', [file, RUNTIME_LIMITS.headerDepth.name, RUNTIME_LIMITS.headerDepth.value], { file });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail('RT115', [file, describeError(e)], { file });
  }
  if (!isPlainObject(json)) fail('RT116', [file, describeJson(json)], { file });

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(entry, file);
      continue;
    }
    tensors.push(checkEntry(name, entry, file, dataStart, dataSize));
  }
  checkNoOverlap(tensors, file, dataStart);
  checkCovered(tensors, file, dataStart, dataSize);
  return { file, dataStart, tensors, metadata };
}

function checkMetadata(entry: unknown, file: string): Record<string, string> {
  if (!isPlainObject(entry)) fail('RT117', [file, `found ${describeJson(entry)}`], { file, key: '__metadata__' });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'string') fail('RT117', [file, `key ${k} is ${describeJson(v)}`], { file, key: k });
    setOwn(out, k, v);
  }
  return out;
}

function checkEntry(name: string, entry: unknown, file: string, dataStart: number, dataSize: number): TensorInfo {
  const ctx = { file, tensor: name };
  const bad = (what: string): never => fail('RT120', [file, name, what], ctx);
  if (!isPlainObject(entry)) bad(`entry must be an object with dtype, shape and data_offsets, found ${describeJson(entry)}`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;

  if (typeof dtype !== 'string') bad(`dtype must be a string, found ${describeJson(dtype)}`);
  if (!Object.hasOwn(FILE_DTYPES, dtype as string)) fail('RT121', [file, name, dtype, Object.keys(FILE_DTYPES).join(', ')], ctx);
  const fileDtype = dtype as FileDType;

  if (!Array.isArray(shape)) bad(`shape must be an array, found ${describeJson(shape)}`);
  const dims = shape as unknown[];
  if (!dims.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) fail('RT122', [file, name, JSON.stringify(dims)], ctx);

  const okOffset = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !okOffset(offsets[0]) || !okOffset(offsets[1]) || offsets[0] > offsets[1]) {
    bad(`data_offsets must be [begin, end] with 0 <= begin <= end, found ${describeJson(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];

  const dimsN = dims as number[];
  const elemBytes = FILE_DTYPES[fileDtype].bytes;
  const need = numel(dimsN) * elemBytes;
  if (end - begin !== need) fail('RT123', [file, name, begin, end, end - begin, fmtShape(dimsN), fileDtype, need], ctx);
  if (end > dataSize) fail('RT124', [file, name, begin, end, Math.max(0, dataSize)], ctx);

  return { name, dtype: FILE_DTYPES[fileDtype].dtype, fileDtype, shape: dimsN, file, begin: dataStart + begin, end: dataStart + end };
}

function checkNoOverlap(tensors: readonly TensorInfo[], file: string, dataStart: number): void {
  const sorted = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.begin < a.end) {
      const r = (x: number) => x - dataStart;
      fail('RT125', [file, a.name, r(a.begin), r(a.end), b.name, r(b.begin), r(b.end)], { file, tensor: b.name });
    }
  }
}

/** Bytes after the last tensor's data mean the header and the data disagree (a damaged or spliced
 *  file). Gaps between tensors are accepted, as before. */
function checkCovered(tensors: readonly TensorInfo[], file: string, dataStart: number, dataSize: number): void {
  let end = 0;
  for (const t of tensors) end = Math.max(end, t.end - dataStart);
  if (dataSize > end) fail('RT126', [file, dataSize - end, end, dataSize, 'after the last tensor (junk at the end of the file?)'], { file });
}

// ---------------------------------------------------------------------------------------------
// Opening checkpoints

/** Opens `model.safetensors` or `model.safetensors.index.json` in a directory, or a given
 *  `.safetensors` / `.safetensors.index.json` file. Reads only headers; tensors load on `read`. */
export function openCheckpoint(p: string): Checkpoint {
  const what = probePath(p);
  if (what.kind === 'missing') fail('RT100', [p, 'no such file or directory (ENOENT)'], { file: p });
  if (what.kind === 'bad') fail('RT100', [p, what.why], { file: p });
  if (what.kind === 'dir') {
    // A link that leads nowhere, a loop or an unreadable file is named, not taken for "no checkpoint".
    for (const [name, open] of [['model.safetensors', openSingle], ['model.safetensors.index.json', openSharded]] as const) {
      const f = path.join(p, name);
      const found = probePath(f);
      if (found.kind === 'bad') fail('RT100', [f, found.why], { file: f });
      if (found.kind === 'dir') fail('RT100', [f, 'a directory, expected a file'], { file: f });
      if (found.kind === 'file') return open(f);
    }
    fail('RT101', [p], { file: p });
  }
  return p.endsWith('.index.json') ? openSharded(p) : openSingle(p);
}

interface OpenShard {
  readonly fd: number;
  readonly header: SafetensorsHeader;
}

function openSingle(file: string): Checkpoint {
  const shard = openShard(file);
  return new SafetensorsCheckpoint(file, new Map([[file, shard.fd]]), shard.header.tensors, shard.header.metadata);
}

function openSharded(indexFile: string): Checkpoint {
  const weightMap = readIndex(indexFile);
  const dir = path.dirname(indexFile);
  // shard file name -> tensor names, in order of first appearance
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    const list = byShard.get(shard);
    if (list) list.push(tensor);
    else byShard.set(shard, [tensor]);
  }
  const fds = new Map<string, number>();
  const infos: TensorInfo[] = [];
  const metadata: Record<string, string> = {};
  try {
    for (const [shardName, names] of byShard) {
      const file = path.resolve(dir, shardName);
      const rel = path.relative(path.resolve(dir), file);
      if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) fail('RT133', [indexFile, shardName, names[0]], { file: indexFile, tensor: names[0] });
      const found = probePath(file);
      if (found.kind === 'missing') fail('RT131', [indexFile, file, names[0]], { file: indexFile, tensor: names[0] });
      if (found.kind === 'bad') fail('RT100', [file, found.why], { file });
      checkShardTarget(indexFile, dir, file, shardName, names[0]!);
      const { fd, header } = openShard(file);
      fds.set(file, fd);
      for (const [k, v] of Object.entries(header.metadata)) if (!Object.hasOwn(metadata, k)) setOwn(metadata, k, v);
      const inShard = new Map(header.tensors.map((t) => [t.name, t]));
      for (const name of names) {
        const info = inShard.get(name);
        if (!info) fail('RT132', [indexFile, name, file], { file: indexFile, tensor: name });
        infos.push(info);
      }
    }
  } catch (e) {
    for (const fd of fds.values()) closeQuietly(fd);
    throw e;
  }
  return new SafetensorsCheckpoint(indexFile, fds, infos, metadata);
}

/** RT133 unless the shard, its links resolved, lies inside the checkpoint folder: a shard named
 *  plainly can still be a link to any file. A Hugging Face cache keeps the files of a snapshot
 *  folder (`…/snapshots/<rev>/`) as links to its `…/blobs/`, which is allowed there. */
function checkShardTarget(indexFile: string, dir: string, file: string, shardName: string, tensor: string): void {
  const real = (p: string): string => {
    try {
      return fs.realpathSync(p);
    } catch (e) {
      fail('RT100', [p, describeError(e)], { file: p }, e);
    }
  };
  const target = real(file);
  const roots = [real(dir)];
  const snapshots = path.dirname(path.resolve(dir));
  const blobs = path.join(path.dirname(snapshots), 'blobs');
  if (path.basename(snapshots) === 'snapshots' && probePath(blobs).kind === 'dir') roots.push(real(blobs));
  const inside = (root: string) => {
    const rel = path.relative(root, target);
    return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
  };
  if (!roots.some(inside)) fail('RT133', [indexFile, `${shardName} (a link to ${target})`, tensor], { file: indexFile, tensor });
}

/** The index's `weight_map` (tensor name -> shard file), checked. */
function readIndex(indexFile: string): Record<string, string> {
  // an index is JSON like a header: the header's byte limit, counted as read, from a regular file
  const r = readRegular(indexFile, RUNTIME_LIMITS.headerBytes.value);
  if (r.kind === 'missing') fail('RT100', [indexFile, 'no such file'], { file: indexFile });
  if (r.kind === 'bad') fail('RT100', [indexFile, r.why], { file: indexFile });
  if (r.kind === 'over') fail('RT130', [indexFile, `over the limit ${RUNTIME_LIMITS.headerBytes.name} = ${RUNTIME_LIMITS.headerBytes.value} bytes`], { file: indexFile });
  const text = new TextDecoder().decode(r.bytes);
  if (jsonDepth(text, RUNTIME_LIMITS.headerDepth.value) > RUNTIME_LIMITS.headerDepth.value) {
    fail('RT130', [indexFile, `JSON nests deeper than the limit ${RUNTIME_LIMITS.headerDepth.name} = ${RUNTIME_LIMITS.headerDepth.value}`], { file: indexFile });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail('RT130', [indexFile, `not valid JSON: ${describeError(e)}`], { file: indexFile });
  }
  if (!isPlainObject(json)) fail('RT130', [indexFile, `expected a JSON object, found ${describeJson(json)}`], { file: indexFile });
  const map = json['weight_map'];
  if (!isPlainObject(map)) fail('RT130', [indexFile, `weight_map must be an object, found ${describeJson(map)}`], { file: indexFile, key: 'weight_map' });
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '') {
      fail('RT130', [indexFile, `weight_map entry ${tensor} must name a shard file, found ${describeJson(shard)}`], { file: indexFile, tensor });
    }
  }
  return map as Record<string, string>;
}

/** Opens one safetensors file and validates its header; the fd stays open for lazy reads. */
function openShard(file: string): OpenShard {
  let fd: number;
  try {
    // without blocking: a FIFO put in a shard's place is refused by the fstat below, not awaited
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    fail('RT100', [file, describeError(e)], { file }, e);
  }
  try {
    let size: number;
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) fail('RT100', [file, 'not a regular file'], { file });
      size = st.size;
    } catch (e) {
      if (e instanceof RuntimeError) throw e;
      fail('RT100', [file, describeError(e)], { file }, e);
    }
    const prefix = new Uint8Array(8);
    if (size < 8 || readInto(fd, prefix, 0) < 8) fail('RT110', [file, size], { file });
    const n = readHeaderLength(prefix, size, file);
    const headerBytes = new Uint8Array(n);
    if (readInto(fd, headerBytes, 8) < n) fail('RT112', [file, n, size - 8], { file });
    return { fd, header: parseSafetensorsHeader(headerBytes, size, file) };
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
}

class SafetensorsCheckpoint implements Checkpoint {
  readonly path: string;
  readonly files: readonly string[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly totalBytes: number;
  private readonly fds: Map<string, number>;
  private closed = false;

  constructor(p: string, fds: Map<string, number>, infos: readonly TensorInfo[], metadata: Record<string, string>) {
    this.path = p;
    this.fds = fds;
    this.files = [...fds.keys()];
    this.tensors = new Map(infos.map((t) => [t.name, t]));
    this.metadata = metadata;
    this.totalBytes = infos.reduce((s, t) => s + (t.end - t.begin), 0);
  }

  read(name: string, alloc?: TensorAlloc): Tensor {
    if (this.closed) fail('RT141', [this.path], { file: this.path, tensor: name });
    const info = this.tensors.get(name);
    if (!info) fail('RT140', [this.path, name], { file: this.path, tensor: name });
    return readTensor(this.fds.get(info.file)!, info, alloc);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.fds.values()) closeQuietly(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading one tensor

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads exactly one tensor's byte range into freshly allocated (hence aligned) memory. */
function readTensor(fd: number, info: TensorInfo, alloc?: TensorAlloc): Tensor {
  const ctx = { file: info.file, tensor: info.name };
  return decodeTensor(info, alloc, (bytes) => {
    const got = readInto(fd, bytes, info.begin, ctx);
    if (got < bytes.length) fail('RT142', [info.file, info.name, `file ended after ${info.begin + got} bytes, expected ${info.end} (truncated since it was opened?)`], ctx);
  });
}

/** One tensor from its stored bytes (`end - begin` of them), e.g. fetched by a byte range. */
export function tensorFromBytes(info: TensorInfo, stored: Uint8Array, alloc?: TensorAlloc): Tensor {
  if (stored.length !== info.end - info.begin) fail('RT142', [info.file, info.name, `${stored.length} bytes, expected ${info.end - info.begin}`], { file: info.file, tensor: info.name });
  return decodeTensor(info, alloc, (bytes) => bytes.set(stored));
}

/** A tensor of `info`'s dtype and shape whose stored bytes `fill` writes into aligned memory. */
function decodeTensor(info: TensorInfo, alloc: TensorAlloc | undefined, fill: (bytes: Uint8Array) => void): Tensor {
  const { file, name } = info;
  const ctx = { file, tensor: name };
  if (!LITTLE_ENDIAN) fail('RT142', [file, name, 'big-endian hosts are not supported'], ctx);
  const n = numel(info.shape);
  // What `read` allocates: the stored bytes, or 4 per element once widened to f32 / i32.
  const held = Math.max(info.end - info.begin, n * 4);
  const { tensorBytes } = RUNTIME_LIMITS;
  if (held > tensorBytes.value) fail('RT145', [file, name, fmtShape(info.shape), held, tensorBytes.name, tensorBytes.value], ctx);
  const load = <T extends ArrayBufferView>(make: (n: number) => T): T => {
    let arr: T;
    try {
      arr = make(n);
    } catch (e) {
      fail('RT142', [file, name, `cannot allocate ${info.end - info.begin} bytes: ${describeError(e)}`], ctx, e);
    }
    fill(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    return arr;
  };
  const shape = [...info.shape];
  const t = (data: TensorData): Tensor => ({ dtype: info.dtype, shape, data });
  switch (info.fileDtype) {
    case 'F32': return t(load((k) => (alloc ? new Float32Array(alloc(4 * k), 0, k) : new Float32Array(k))));
    case 'F16':
    case 'BF16': return t(load((k) => (alloc ? new Uint16Array(alloc(2 * k), 0, k) : new Uint16Array(k))));
    case 'I32': return t(load((k) => (alloc ? new Int32Array(alloc(4 * k), 0, k) : new Int32Array(k))));
    case 'F64': return t(new Float32Array(load((k) => new Float64Array(k))));
    case 'F8_E5M2': return t(widenF8(load((k) => new Uint8Array(k)), f8e5m2ToF32));
    case 'F8_E4M3': return t(widenF8(load((k) => new Uint8Array(k)), f8e4m3ToF32));
    case 'I64': return t(narrowToI32(load((k) => new BigInt64Array(k)), info));
    case 'U64': return t(narrowToI32(load((k) => new BigUint64Array(k)), info));
    case 'U32': return t(narrowToI32(load((k) => new Uint32Array(k)), info));
    case 'I16': return t(new Int32Array(load((k) => new Int16Array(k))));
    case 'U16': return t(new Int32Array(load((k) => new Uint16Array(k))));
    case 'I8': return t(new Int32Array(load((k) => new Int8Array(k))));
    case 'U8':
    case 'BOOL': return t(new Int32Array(load((k) => new Uint8Array(k))));
  }
}

function narrowToI32(src: BigInt64Array | BigUint64Array | Uint32Array, info: TensorInfo): Int32Array {
  const out = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = Number(src[i]!);
    if (v < -0x80000000 || v > 0x7fffffff) fail('RT143', [info.file, info.name, info.fileDtype, src[i], i], { file: info.file, tensor: info.name });
    out[i] = v;
  }
  return out;
}

function widenF8(src: Uint8Array, table: Float32Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

/** E5M2 is the top byte of an IEEE half. */
const f8e5m2ToF32 = Float32Array.from({ length: 256 }, (_, b) => f16ToF32(b << 8));

/** E4M3 "fn" (as in PyTorch float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN. */
const f8e4m3ToF32 = Float32Array.from({ length: 256 }, (_, b) => {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 0xf;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return s * (m / 8) * 2 ** -6;
  return s * (1 + m / 8) * 2 ** (e - 7);
});

/** Fills `into` from `position`; returns the bytes read (fewer only at end of file). */
function readInto(fd: number, into: Uint8Array, position: number, ctx: RuntimeErrorContext = {}): number {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < into.length) {
    let got: number;
    try {
      got = fs.readSync(fd, into, done, Math.min(CHUNK, into.length - done), position + done);
    } catch (e) {
      const file = ctx.file ?? '?';
      if (ctx.tensor !== undefined) fail('RT142', [file, ctx.tensor, describeError(e)], ctx, e);
      fail('RT100', [file, describeError(e)], ctx, e);
    }
    if (got === 0) break;
    done += got;
  }
  return done;
}

export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed or never valid: nothing to release
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `obj[key] = value` that stays data for every key, `__proto__` included (as in JSON.parse). */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A JSON value for a message: its kind and a short rendering. */
export function describeJson(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  const kind = Array.isArray(v) ? 'array' : typeof v;
  let s = shortJson(v, 60);
  if (s.length > 60) s = s.slice(0, 57) + '...';
  return `${kind} ${s}`;
}

/** JSON text of `v`, stopping once `max` characters are written; nesting is walked with an explicit
 *  stack, so a value of any depth is safe to describe. */
function shortJson(v: unknown, max: number): string {
  let out = '';
  const stack: unknown[] = [v];
  const CLOSE = Symbol('close');
  while (stack.length && out.length <= max) {
    const x = stack.pop();
    if (typeof x === 'object' && x !== null && (x as { [CLOSE]?: string })[CLOSE] !== undefined) {
      out += (x as { [CLOSE]: string })[CLOSE];
    } else if (Array.isArray(x)) {
      out += '[';
      stack.push({ [CLOSE]: ']' });
      for (let i = Math.min(x.length, max) - 1; i >= 0; i--) {
        stack.push(x[i]);
        if (i > 0) stack.push({ [CLOSE]: ',' });
      }
    } else if (typeof x === 'object' && x !== null) {
      out += '{';
      stack.push({ [CLOSE]: '}' });
      const keys = Object.keys(x).slice(0, max);
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push((x as Record<string, unknown>)[keys[i]!]);
        stack.push({ [CLOSE]: `${JSON.stringify(keys[i])}:` });
        if (i > 0) stack.push({ [CLOSE]: ',' });
      }
    } else {
      out += JSON.stringify(x) ?? String(x);
    }
  }
  return out;
}
