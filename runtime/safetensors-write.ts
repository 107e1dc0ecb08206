// Writing safetensors checkpoints, atomically: one file, or shards with their index
// (model.safetensors.index.json), each written to a temp file beside its target and renamed into
// place only once every part is whole. The layout is the reader's (safetensors.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DType, type Tensor, type TensorData, DTYPE_BYTES, numel } from './tensor.ts';
import { RuntimeError, describeError, fail } from './errors.ts';
import { type FileDType, closeQuietly, describeJson, fmtShape, setOwn } from './safetensors.ts';
/** The stored dtype that `writeSafetensors` uses for each host dtype. */
const WRITE_DTYPES: Readonly<Record<DType, FileDType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32' };

export interface NamedTensor {
  readonly name: string;
  readonly tensor: Tensor;
}

/** A tensor made only when its bytes are written (`make` is called once, in the entries' order), so
 *  a checkpoint larger than memory is written holding one tensor at a time. */
export interface LazyNamedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  make(): Tensor;
}

type Entry = NamedTensor | LazyNamedTensor;

const specOf = (e: Entry): { name: string; dtype: DType; shape: readonly number[] } =>
  'tensor' in e ? { name: e.name, dtype: e.tensor.dtype, shape: e.tensor.shape } : e;
const bytesOf = (e: Entry): number => numel(specOf(e).shape) * DTYPE_BYTES[specOf(e).dtype];

/** Writes one safetensors file atomically (temp file in the same directory, then rename).
 *  Tensors are laid out in the given order; the header is space-padded to a multiple of 8. */
export function writeSafetensors(file: string, entries: readonly Entry[], metadata?: Readonly<Record<string, string>>): void {
  const header = buildHeader(file, entries, metadata);
  const tmp = writeTemp(file, (fd) => writeBody(fd, file, header, entries));
  commit([[tmp, file]]);
}

export interface ShardedWrite {
  /** The shard files, in order. */
  readonly files: readonly string[];
  readonly indexFile: string;
  readonly totalBytes: number;
}

/** Writes `model-0000i-of-0000N.safetensors` shards of at most `maxShardBytes` of tensor data each
 *  (a larger tensor gets a shard of its own) and `model.safetensors.index.json`. All files go to
 *  temp names first and are renamed only once every one is written. `metadata` goes in each shard. */
export function writeShardedSafetensors(
  dir: string,
  entries: readonly Entry[],
  maxShardBytes: number,
  metadata?: Readonly<Record<string, string>>,
): ShardedWrite {
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (!(maxShardBytes > 0)) fail('RT151', [indexFile, `maxShardBytes must be positive, got ${maxShardBytes}`], { file: indexFile });
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail('RT151', [dir, describeError(e)], { file: dir }, e);
  }

  const groups: Entry[][] = [[]];
  let groupBytes = 0;
  for (const e of entries) {
    const b = bytesOf(e);
    if (groups.at(-1)!.length > 0 && groupBytes + b > maxShardBytes) {
      groups.push([]);
      groupBytes = 0;
    }
    groups.at(-1)!.push(e);
    groupBytes += b;
  }
  const count = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const names = groups.map((_, i) => `model-${pad(i + 1)}-of-${pad(count)}.safetensors`);
  const files = names.map((n) => path.join(dir, n));
  // Validate everything before the first byte is written.
  const headers = groups.map((g, i) => buildHeader(files[i]!, g, metadata));
  assertUniqueNames(indexFile, entries);

  const weightMap: Record<string, string> = {};
  groups.forEach((g, i) => g.forEach((e) => setOwn(weightMap, e.name, names[i]!)));
  const totalBytes = entries.reduce((s, e) => s + bytesOf(e), 0);
  const indexText = JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n';

  const temps: string[] = [];
  try {
    groups.forEach((g, i) => temps.push(writeTemp(files[i]!, (fd) => writeBody(fd, files[i]!, headers[i]!, g))));
    temps.push(writeTemp(indexFile, (fd) => writeAll(fd, new TextEncoder().encode(indexText), indexFile)));
  } catch (e) {
    for (const t of temps) unlinkQuietly(t);
    throw e;
  }
  // Shards first, the index last: a reader never sees an index whose shards are not in place.
  commit([...files.map((f, i): [string, string] => [temps[i]!, f]), [temps.at(-1)!, indexFile]]);
  return { files, indexFile, totalBytes };
}

const HOST_ARRAYS: Readonly<Record<DType, { new (length: number): TensorData; readonly name: string }>> = { f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array };

/** The 8-byte length prefix plus the space-padded JSON header, after checking every entry. */
function buildHeader(file: string, entries: readonly Entry[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const bad = (name: string, what: string): never => fail('RT150', [file, name, what], { file, tensor: name });
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail('RT151', [file, `metadata value for ${k} must be a string, got ${describeJson(v)}`], { file, key: k });
    }
    header['__metadata__'] = metadata;
  }
  let offset = 0;
  for (const e of entries) {
    const { name, dtype: host, shape } = specOf(e);
    if (typeof name !== 'string' || name === '__metadata__') bad(String(name), 'invalid tensor name');
    if (Object.hasOwn(header, name)) bad(name, 'name is used twice');
    const dtype = WRITE_DTYPES[host];
    if (!dtype) bad(name, `unknown dtype ${describeJson(host)}`);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(name, `shape entries must be non-negative integers, got ${JSON.stringify(shape)}`);
    if ('tensor' in e) checkData(file, name, e.tensor);
    const bytes = numel(shape) * DTYPE_BYTES[host];
    setOwn(header, name, { dtype, shape: [...shape], data_offsets: [offset, offset + bytes] });
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = (json.length + 7) & ~7;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** RT150 unless `t`'s data is the host array of its dtype, of its shape's length. */
function checkData(file: string, name: string, t: Tensor): void {
  const bad = (what: string): never => fail('RT150', [file, name, what], { file, tensor: name });
  if (!(t.data instanceof HOST_ARRAYS[t.dtype])) bad(`${t.dtype} data must be a ${HOST_ARRAYS[t.dtype].name}, got ${t.data?.constructor?.name}`);
  const n = numel(t.shape);
  if (t.data.length !== n) bad(`shape ${fmtShape(t.shape)} has ${n} elements but data has ${t.data.length}`);
}

function assertUniqueNames(file: string, entries: readonly Entry[]): void {
  const seen = new Set<string>();
  for (const { name } of entries) {
    if (seen.has(name)) fail('RT150', [file, name, 'name is used twice'], { file, tensor: name });
    seen.add(name);
  }
}

function writeBody(fd: number, file: string, header: Uint8Array, entries: readonly Entry[]): void {
  writeAll(fd, header, file);
  for (const e of entries) {
    let tensor: Tensor;
    if ('tensor' in e) tensor = e.tensor;
    else {
      tensor = e.make();
      // the header was written from the entry's dtype and shape: the made tensor must be them
      if (tensor.dtype !== e.dtype || fmtShape(tensor.shape) !== fmtShape(e.shape)) {
        fail('RT150', [file, e.name, `made as ${tensor.dtype} ${fmtShape(tensor.shape)}, declared ${e.dtype} ${fmtShape(e.shape)}`], { file, tensor: e.name });
      }
      checkData(file, e.name, tensor);
    }
    const d = tensor.data;
    writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength), file);
  }
}

function writeAll(fd: number, bytes: Uint8Array, file: string): void {
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(fd, bytes, done, Math.min(1 << 30, bytes.length - done));
    } catch (e) {
      fail('RT151', [file, describeError(e)], { file }, e);
    }
  }
}

/** Writes `target`'s contents to a fresh temp file beside it (fsynced); on failure removes it. */
function writeTemp(target: string, body: (fd: number) => void): string {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'wx');
  } catch (e) {
    fail('RT151', [target, describeError(e)], { file: target }, e);
  }
  try {
    body(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    closeQuietly(fd);
    unlinkQuietly(tmp);
    if (e instanceof RuntimeError) throw e;
    fail('RT151', [target, describeError(e)], { file: target }, e);
  }
  return tmp;
}

/** Renames temp files onto their targets; if one rename fails, removes the temps not yet renamed. */
function commit(pairs: readonly (readonly [string, string])[]): void {
  for (let i = 0; i < pairs.length; i++) {
    const [tmp, target] = pairs[i]!;
    try {
      fs.renameSync(tmp, target);
    } catch (e) {
      for (const [t] of pairs.slice(i)) unlinkQuietly(t);
      fail('RT151', [target, describeError(e)], { file: target }, e);
    }
  }
}

function unlinkQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // already gone
  }
}

