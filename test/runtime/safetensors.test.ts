// Safetensors reading and writing: round trips, lazy reads, every corruption case with its code,
// sharded checkpoints, shape checks, and a memory bound on reading a large file tensor by tensor.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  type NamedTensor,
  openCheckpoint,
  writeSafetensors,
  writeShardedSafetensors,
} from '../../runtime/safetensors.ts';
import { assertShapes, checkShapes } from '../../runtime/checkpoint-shapes.ts';
import { type Tensor, f32ToBf16, f32ToF16, f32Tensor } from '../../runtime/tensor.ts';
import { expectRuntimeError } from '../helpers/errors.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmpDir = useTmpDirs('archc-st-');

// ---------------------------------------------------------------------------------------------
// helpers

/** A hand-made safetensors file: u64 length (default: the header's), header, data bytes. */
function rawFile(file: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: number): string {
  const h = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  fs.writeFileSync(file, out);
  return file;
}

function entry(dtype: string, shape: unknown[], begin: number, end: number) {
  return { dtype, shape, data_offsets: [begin, end] };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

const f32 = (shape: number[], values: number[]): Tensor => f32Tensor(shape, Float32Array.from(values));
const u16 = (dtype: 'f16' | 'bf16', shape: number[], values: number[]): Tensor => ({
  dtype,
  shape,
  data: Uint16Array.from(values, dtype === 'bf16' ? f32ToBf16 : f32ToF16),
});
const i32 = (shape: number[], values: number[]): Tensor => ({ dtype: 'i32', shape, data: Int32Array.from(values) });

function sample(): NamedTensor[] {
  return [
    { name: 'model.embed.weight', tensor: f32([2, 3], [1, -2.5, 3, 1e-8, Infinity, -0]) },
    { name: 'model.norm.weight', tensor: u16('f16', [3], [0.5, -65504, 6e-8]) },
    { name: 'model.proj.weight', tensor: u16('bf16', [2, 2], [1.5, -3, 1e30, NaN]) },
    { name: 'model.ids', tensor: i32([4], [0, -1, 2147483647, -2147483648]) },
    { name: 'model.scalar', tensor: f32([], [42]) },
    { name: 'model.empty', tensor: f32([0, 5], []) },
  ];
}

function expectSameTensor(got: Tensor, want: Tensor): void {
  expect(got.dtype).toBe(want.dtype);
  expect(got.shape).toEqual(want.shape);
  expect(got.data.constructor).toBe(want.data.constructor);
  expect(Array.from(bytesOf(got.data))).toEqual(Array.from(bytesOf(want.data)));
}

// ---------------------------------------------------------------------------------------------


/** A tensor whose data fails on its last read: `failLastRead()` after one good write arms it. */
function flakyTensor(): { flaky: Tensor; failLastRead: () => void } {
  let reads = 0;
  let limit = Infinity;
  const data = Float32Array.from([1, 2]);
  const flaky: Tensor = {
    dtype: 'f32',
    shape: [2],
    get data() {
      if (++reads > limit) throw new Error('disk on fire');
      return data;
    },
  };
  return { flaky, failLastRead: () => { limit = reads - 1; reads = 0; } };
}

describe('round trips', () => {
  it('writes and reads f32, f16, bf16 and i32 tensors, a scalar and an empty tensor', () => {
    const file = path.join(tmpDir(), 'model.safetensors');
    const entries = sample();
    writeSafetensors(file, entries, { format: 'pt', note: 'ünïcode' });
    const ckpt = openCheckpoint(file);
    try {
      expect([...ckpt.tensors.keys()]).toEqual(entries.map((e) => e.name));
      expect(ckpt.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
      expect(ckpt.files).toEqual([file]);
      expect(ckpt.totalBytes).toBe(entries.reduce((s, e) => s + e.tensor.data.byteLength, 0));
      for (const e of entries) expectSameTensor(ckpt.read(e.name), e.tensor);
      const info = ckpt.tensors.get('model.norm.weight')!;
      expect(info).toMatchObject({ dtype: 'f16', fileDtype: 'F16', shape: [3], file });
      expect(info.end - info.begin).toBe(6);
    } finally {
      ckpt.close();
    }
  });

  it('lays out the file as the reference writer does: space-padded header, offsets in order', () => {
    const file = path.join(tmpDir(), 'x.safetensors');
    writeSafetensors(file, [
      { name: 'b', tensor: f32([2], [1, 2]) },
      { name: 'a', tensor: u16('bf16', [1], [1]) },
    ]);
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const json = '{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}';
    expect(bytes.subarray(8, 8 + n).toString('utf8')).toBe(json.padEnd(n, ' '));
    expect(bytes.length).toBe(8 + n + 10);
    // Golden: the bytes Python's safetensors 0.8 (safetensors.numpy.save_file) writes for
    // {"w": np.array([1, 2], np.float32)} with metadata {"format": "np"}.
    const golden = path.join(tmpDir(), 'golden.safetensors');
    writeSafetensors(golden, [{ name: 'w', tensor: f32([2], [1, 2]) }], { format: 'np' });
    expect(fs.readFileSync(golden).toString('hex')).toBe(GOLDEN_HEX);
  });

  it('keeps odd tensor names as data: "__proto__", dots, unicode', () => {
    const dir = tmpDir();
    const entries = [
      { name: '__proto__', tensor: f32([1], [1]) },
      { name: 'constructor', tensor: f32([1], [2]) },
      { name: 'ünï.çødé', tensor: f32([1], [3]) },
    ];
    writeSafetensors(path.join(dir, 'model.safetensors'), entries, { __proto__x: 'y' });
    writeShardedSafetensors(path.join(dir, 'sharded'), entries, 4);
    for (const where of [dir, path.join(dir, 'sharded')]) {
      const ckpt = openCheckpoint(where);
      expect([...ckpt.tensors.keys()]).toEqual(entries.map((e) => e.name));
      for (const e of entries) expectSameTensor(ckpt.read(e.name), e.tensor);
      ckpt.close();
    }
  });

  it('reads a file in a directory as model.safetensors', () => {
    const dir = tmpDir();
    writeSafetensors(path.join(dir, 'model.safetensors'), sample());
    const ckpt = openCheckpoint(dir);
    expect(ckpt.path).toBe(path.join(dir, 'model.safetensors'));
    expectSameTensor(ckpt.read('model.ids'), sample()[3]!.tensor);
    ckpt.close();
  });

  it('reads stored dtypes it does not write: F64, I64, U8, BOOL, I16, F8_E5M2, F8_E4M3', () => {
    const data = new Uint8Array(43); // exactly the tensors: bytes after the last one are refused (RT126)
    const dv = new DataView(data.buffer);
    dv.setFloat64(0, 1.25, true);
    dv.setFloat64(8, -1e300, true); // narrows to -Infinity
    dv.setBigInt64(16, -7n, true);
    dv.setBigInt64(24, 2147483647n, true);
    data.set([255, 0, 1, 0], 32); // U8 [255, 0], BOOL [1, 0]
    dv.setInt16(36, -300, true);
    data.set([0x3c, 0xc0], 38); // E5M2: 1.0, -2.0
    data.set([0x38, 0x7f, 0x01], 40); // E4M3: 1.0, NaN, 2^-9
    const file = rawFile(path.join(tmpDir(), 'm.safetensors'), {
      f64: entry('F64', [2], 0, 16),
      i64: entry('I64', [2], 16, 32),
      u8: entry('U8', [2], 32, 34),
      bool: entry('BOOL', [2], 34, 36),
      i16: entry('I16', [1], 36, 38),
      e5: entry('F8_E5M2', [2], 38, 40),
      e4: entry('F8_E4M3', [3], 40, 43),
    }, data);
    const ckpt = openCheckpoint(file);
    const read = (n: string) => ckpt.read(n);
    expect(read('f64')).toMatchObject({ dtype: 'f32', data: Float32Array.from([1.25, -Infinity]) });
    expect(read('i64')).toMatchObject({ dtype: 'i32', data: Int32Array.from([-7, 2147483647]) });
    expect(read('u8').data).toEqual(Int32Array.from([255, 0]));
    expect(read('bool').data).toEqual(Int32Array.from([1, 0]));
    expect(read('i16').data).toEqual(Int32Array.from([-300]));
    expect(read('e5').data).toEqual(Float32Array.from([1, -2]));
    expect(Array.from(read('e4').data)).toEqual([1, NaN, 2 ** -9]);
    expect(ckpt.tensors.get('i64')).toMatchObject({ dtype: 'i32', fileDtype: 'I64' });
    ckpt.close();
  });

  it('refuses an I64 value that does not fit in i32, naming tensor and index', () => {
    const data = new Uint8Array(16);
    new DataView(data.buffer).setBigInt64(8, 1n << 40n, true);
    const file = rawFile(path.join(tmpDir(), 'm.safetensors'), { pos: entry('I64', [2], 0, 16) }, data);
    const ckpt = openCheckpoint(file);
    const e = expectRuntimeError(() => ckpt.read('pos'), 'RT143', file, 'pos', String(1n << 40n), 'index 1');
    expect(e.tensor).toBe('pos');
    ckpt.close();
  });
});

describe('lazy reads', () => {
  it('reads one tensor at a time, from the file as it is when read', () => {
    const file = path.join(tmpDir(), 'model.safetensors');
    writeSafetensors(file, [
      { name: 'a', tensor: f32([3], [1, 2, 3]) },
      { name: 'b', tensor: f32([2], [4, 5]) },
      { name: 'c', tensor: i32([2], [6, 7]) },
    ]);
    const ckpt = openCheckpoint(file);
    // Rewrite b's bytes in place after opening: read() must fetch them now, not from a cache.
    const b = ckpt.tensors.get('b')!;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, bytesOf(Float32Array.from([40, 50])), 0, 8, b.begin);
    fs.closeSync(fd);
    expect(ckpt.read('b').data).toEqual(Float32Array.from([40, 50]));
    expect(ckpt.read('c').data).toEqual(Int32Array.from([6, 7]));
    expect(ckpt.read('a').data).toEqual(Float32Array.from([1, 2, 3]));
    // Each read is a fresh, aligned array that owns its buffer.
    const t = ckpt.read('a');
    expect(t.data.byteOffset).toBe(0);
    expect(t.data.buffer.byteLength).toBe(12);
    ckpt.close();
  });

  it('names the tensor and checkpoint for an unknown tensor, and refuses reads after close', () => {
    const file = path.join(tmpDir(), 'model.safetensors');
    writeSafetensors(file, [{ name: 'a', tensor: f32([1], [1]) }]);
    const ckpt = openCheckpoint(file);
    expectRuntimeError(() => ckpt.read('nope'), 'RT140', 'nope', file);
    ckpt.close();
    ckpt.close(); // twice is fine
    expectRuntimeError(() => ckpt.read('a'), 'RT141', file);
  });

  it('reports a file truncated after opening when the tensor is read', () => {
    const file = path.join(tmpDir(), 'model.safetensors');
    writeSafetensors(file, [{ name: 'a', tensor: f32([1], [1]) }, { name: 'b', tensor: f32([4], [1, 2, 3, 4]) }]);
    const ckpt = openCheckpoint(file);
    fs.truncateSync(file, fs.statSync(file).size - 4);
    expectRuntimeError(() => ckpt.read('b'), 'RT142', file, 'b', 'truncated');
    ckpt.close();
  });
});

// ---------------------------------------------------------------------------------------------

interface CorruptCase {
  readonly what: string;
  readonly make: (file: string) => void;
  readonly code: string;
  readonly tensor?: string;
  readonly mentions?: readonly string[];
}

const F4 = bytesOf(Float32Array.from([1, 2, 3]));

const CORRUPT: readonly CorruptCase[] = [
  { what: 'file shorter than 8 bytes', code: 'RT110', make: (f) => fs.writeFileSync(f, new Uint8Array([1, 2, 3])), mentions: ['3 bytes'] },
  { what: 'header length 0', code: 'RT111', make: (f) => rawFile(f, '{}', F4, 0) },
  { what: 'header length larger than the file', code: 'RT112', make: (f) => rawFile(f, '{}', F4, 1000), mentions: ['1000', '14 bytes'] },
  {
    what: 'header length over 100 MB',
    code: 'RT113',
    make: (f) => {
      rawFile(f, '{}', new Uint8Array(0), 150_000_000);
      fs.truncateSync(f, 160_000_000); // sparse: no real disk use
    },
    mentions: ['150000000', '100000000'],
  },
  { what: 'header not UTF-8', code: 'RT114', make: (f) => rawFile(f, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])) },
  { what: 'header not JSON', code: 'RT115', make: (f) => rawFile(f, '{"w": {"dtype": ', F4) },
  { what: 'header not an object', code: 'RT116', make: (f) => rawFile(f, '[1, 2]', F4), mentions: ['array'] },
  { what: '__metadata__ with a non-string value', code: 'RT117', make: (f) => rawFile(f, { __metadata__: { format: 1 } }), mentions: ['format'] },
  { what: 'entry not an object', code: 'RT120', tensor: 'w', make: (f) => rawFile(f, { w: 3 }, F4) },
  { what: 'entry without dtype', code: 'RT120', tensor: 'w', make: (f) => rawFile(f, { w: { shape: [1], data_offsets: [0, 4] } }, F4), mentions: ['dtype'] },
  { what: 'shape not an array', code: 'RT120', tensor: 'w', make: (f) => rawFile(f, { w: entry('F32', 3 as never, 0, 4) }, F4), mentions: ['shape'] },
  { what: 'data_offsets reversed', code: 'RT120', tensor: 'w', make: (f) => rawFile(f, { w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, F4), mentions: ['data_offsets'] },
  { what: 'data_offsets missing', code: 'RT120', tensor: 'w', make: (f) => rawFile(f, { w: { dtype: 'F32', shape: [1] } }, F4), mentions: ['data_offsets'] },
  { what: 'unknown dtype', code: 'RT121', tensor: 'w', make: (f) => rawFile(f, { w: entry('F33', [1], 0, 4) }, F4), mentions: ['F33'] },
  { what: 'negative shape entry', code: 'RT122', tensor: 'w', make: (f) => rawFile(f, { w: entry('F32', [-1, 3], 0, 12) }, F4), mentions: ['[-1,3]'] },
  { what: 'non-integer shape entry', code: 'RT122', tensor: 'w', make: (f) => rawFile(f, { w: entry('F32', [1.5], 0, 4) }, F4), mentions: ['[1.5]'] },
  { what: 'string shape entry', code: 'RT122', tensor: 'w', make: (f) => rawFile(f, { w: entry('F32', ['3'], 0, 12) }, F4) },
  {
    what: 'shape × dtype size ≠ byte range',
    code: 'RT123',
    tensor: 'w',
    make: (f) => rawFile(f, { w: entry('F32', [2, 2], 0, 12) }, F4),
    mentions: ['[0, 12]', '12 bytes', '[2, 2]', 'F32', 'needs 16'],
  },
  {
    what: 'offsets past the end of the data',
    code: 'RT124',
    tensor: 'v',
    make: (f) => rawFile(f, { w: entry('F32', [1], 0, 4), v: entry('F32', [2], 8, 16) }, F4),
    mentions: ['[8, 16]', '12 bytes'],
  },
  {
    what: 'overlapping ranges',
    code: 'RT125',
    tensor: 'b',
    make: (f) => rawFile(f, { a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }, F4),
    mentions: ['a [0, 8]', 'b [4, 12]'],
  },
  {
    what: 'truncated file',
    code: 'RT124',
    tensor: 'last',
    make: (f) => {
      writeSafetensors(f, [{ name: 'first', tensor: f32([2], [1, 2]) }, { name: 'last', tensor: f32([64], new Array(64).fill(1)) }]);
      fs.truncateSync(f, fs.statSync(f).size - 100);
    },
    mentions: ['truncated'],
  },
];

describe('corrupt files', () => {
  it.each(CORRUPT)('$what → $code', ({ make, code, tensor, mentions = [] }) => {
    const file = path.join(tmpDir(), 'model.safetensors');
    make(file);
    const e = expectRuntimeError(() => openCheckpoint(file), code, file, ...(tensor ? [tensor] : []), ...mentions);
    expect(e.file).toBe(file);
    if (tensor) expect(e.tensor).toBe(tensor);
  });

  it('accepts empty tensors sharing an offset, and gaps between tensors', () => {
    const file = rawFile(path.join(tmpDir(), 'm.safetensors'), {
      e1: entry('F32', [0], 4, 4),
      e2: entry('F32', [0, 7], 4, 4),
      a: entry('F32', [1], 0, 4),
      b: entry('F32', [1], 8, 12),
    }, F4);
    const ckpt = openCheckpoint(file);
    expect(ckpt.read('b').data).toEqual(Float32Array.from([3]));
    expect(ckpt.read('e2').shape).toEqual([0, 7]);
    ckpt.close();
  });

  it('names the path when there is no file or no checkpoint', () => {
    const dir = tmpDir();
    expectRuntimeError(() => openCheckpoint(path.join(dir, 'absent.safetensors')), 'RT100', path.join(dir, 'absent.safetensors'), 'ENOENT');
    expectRuntimeError(() => openCheckpoint(dir), 'RT101', dir, 'model.safetensors.index.json');
  });
});

// ---------------------------------------------------------------------------------------------

function manyTensors(): NamedTensor[] {
  return Array.from({ length: 7 }, (_, i) => ({
    name: `layers.${i}.weight`,
    tensor: i % 2 ? u16('bf16', [4, 8], Array.from({ length: 32 }, (_, k) => i + k / 8)) : f32([5, 4], Array.from({ length: 20 }, (_, k) => i * 100 + k)),
  }));
}

describe('sharded checkpoints', () => {
  it('splits by size, writes an index, and reads back through the directory or the index', () => {
    const dir = path.join(tmpDir(), 'ckpt');
    const entries = manyTensors(); // 80-byte f32 and 64-byte bf16 tensors
    const out = writeShardedSafetensors(dir, entries, 160, { format: 'pt' });
    expect(out.files.map((f) => path.basename(f))).toEqual([
      'model-00001-of-00004.safetensors',
      'model-00002-of-00004.safetensors',
      'model-00003-of-00004.safetensors',
      'model-00004-of-00004.safetensors',
    ]);
    expect(fs.readdirSync(dir).sort()).toEqual([...out.files.map((f) => path.basename(f)), 'model.safetensors.index.json'].sort());
    const index = JSON.parse(fs.readFileSync(out.indexFile, 'utf8'));
    expect(index.metadata).toEqual({ total_size: 80 * 4 + 64 * 3 });
    expect(index.weight_map['layers.0.weight']).toBe('model-00001-of-00004.safetensors');
    expect(index.weight_map['layers.6.weight']).toBe('model-00004-of-00004.safetensors');

    for (const where of [dir, out.indexFile]) {
      const ckpt = openCheckpoint(where);
      expect(ckpt.path).toBe(out.indexFile);
      expect(ckpt.files).toEqual(out.files);
      expect(ckpt.totalBytes).toBe(index.metadata.total_size);
      expect(ckpt.metadata).toEqual({ format: 'pt' });
      expect(ckpt.tensors.get('layers.5.weight')!.file).toBe(out.files[2]);
      for (const e of [...entries].reverse()) expectSameTensor(ckpt.read(e.name), e.tensor);
      ckpt.close();
    }
  });

  it('gives a tensor larger than the shard size a shard of its own', () => {
    const dir = tmpDir();
    const out = writeShardedSafetensors(dir, [
      { name: 'small', tensor: f32([1], [1]) },
      { name: 'big', tensor: f32([100], new Array(100).fill(2)) },
      { name: 'small2', tensor: f32([1], [3]) },
    ], 16);
    expect(out.files.length).toBe(3);
    const ckpt = openCheckpoint(dir);
    expect(ckpt.read('big').data[99]).toBe(2);
    ckpt.close();
  });

  it('reports a missing shard, naming the index, the shard and a tensor in it', () => {
    const dir = tmpDir();
    const out = writeShardedSafetensors(dir, manyTensors(), 160);
    fs.unlinkSync(out.files[2]!);
    const e = expectRuntimeError(() => openCheckpoint(dir), 'RT131', out.indexFile, out.files[2]!, 'layers.4.weight');
    expect(e.tensor).toBe('layers.4.weight');
  });

  it('reports a tensor that the index puts in a shard that lacks it', () => {
    const dir = tmpDir();
    const out = writeShardedSafetensors(dir, manyTensors(), 160);
    const index = JSON.parse(fs.readFileSync(out.indexFile, 'utf8'));
    index.weight_map['layers.0.weight'] = 'model-00002-of-00004.safetensors';
    fs.writeFileSync(out.indexFile, JSON.stringify(index));
    expectRuntimeError(() => openCheckpoint(dir), 'RT132', out.indexFile, 'layers.0.weight', out.files[1]!);
  });

  it('validates every shard it opens', () => {
    const dir = tmpDir();
    const out = writeShardedSafetensors(dir, manyTensors(), 160);
    fs.truncateSync(out.files[3]!, fs.statSync(out.files[3]!).size - 1);
    expectRuntimeError(() => openCheckpoint(dir), 'RT124', out.files[3]!, 'layers.6.weight');
  });

  it.each([
    ['not JSON', '{"weight_map": ', 'not valid JSON'],
    ['no weight_map', '{"metadata": {}}', 'weight_map must be an object'],
    ['a non-string shard', '{"weight_map": {"w": 3}}', 'weight_map entry w'],
  ])('reports an invalid index: %s', (_, text, mention) => {
    const dir = tmpDir();
    const index = path.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(index, text);
    expectRuntimeError(() => openCheckpoint(dir), 'RT130', index, mention);
  });

  it('refuses a shard path that leaves the checkpoint directory', () => {
    const dir = tmpDir();
    const index = path.join(dir, 'model.safetensors.index.json');
    fs.writeFileSync(index, JSON.stringify({ weight_map: { w: '../elsewhere.safetensors' } }));
    expectRuntimeError(() => openCheckpoint(dir), 'RT133', index, '../elsewhere.safetensors', 'w');
  });
});

// ---------------------------------------------------------------------------------------------

describe('atomic writes', () => {
  it('rejects bad entries before writing anything', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    expectRuntimeError(() => writeSafetensors(file, [{ name: 'a', tensor: f32([1], [1]) }, { name: 'a', tensor: f32([1], [2]) }]), 'RT150', file, 'a', 'twice');
    expectRuntimeError(() => writeSafetensors(file, [{ name: 'w', tensor: f32Tensor([2, 2], new Float32Array(3)) }]), 'RT150', 'w', '4 elements', 'has 3');
    expectRuntimeError(() => writeSafetensors(file, [{ name: 'w', tensor: { dtype: 'bf16', shape: [1], data: new Float32Array(1) } }]), 'RT150', 'w', 'Uint16Array');
    expectRuntimeError(() => writeShardedSafetensors(dir, [{ name: 'a', tensor: f32([1], [1]) }, { name: 'a', tensor: f32([1], [2]) }], 4), 'RT150', 'a', 'twice');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('leaves the old file and no temp file when writing fails midway', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    fs.writeFileSync(file, 'old');
    const { flaky, failLastRead } = flakyTensor();
    writeSafetensors(path.join(dir, 'probe.safetensors'), [{ name: 'w', tensor: flaky }]);
    fs.unlinkSync(path.join(dir, 'probe.safetensors'));
    failLastRead();
    expect(() => writeSafetensors(file, [{ name: 'w', tensor: flaky }])).toThrow('disk on fire');
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
  });

  it('leaves no shard, index or temp file when a sharded write fails midway', () => {
    const dir = tmpDir();
    const { flaky, failLastRead } = flakyTensor();
    const entries = [...manyTensors(), { name: 'last', tensor: flaky }];
    writeShardedSafetensors(path.join(dir, 'probe'), entries, 160);
    failLastRead();
    const target = path.join(dir, 'ckpt');
    expect(() => writeShardedSafetensors(target, entries, 160)).toThrow('disk on fire');
    expect(fs.readdirSync(target)).toEqual([]);
  });

  it('reports an unwritable target with RT151 and cleans up', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'model.safetensors');
    fs.mkdirSync(path.join(target, 'sub'), { recursive: true }); // rename onto a non-empty directory fails
    expectRuntimeError(() => writeSafetensors(target, [{ name: 'w', tensor: f32([1], [1]) }]), 'RT151', target);
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('checkShapes', () => {
  function ckptWith(entries: NamedTensor[]) {
    const file = path.join(tmpDir(), 'model.safetensors');
    writeSafetensors(file, entries);
    return openCheckpoint(file);
  }
  const entries = (): NamedTensor[] => [
    { name: 'embed.weight', tensor: f32([10, 4], new Array(40).fill(0)) },
    { name: 'norm.weight', tensor: u16('bf16', [4], [1, 1, 1, 1]) },
    { name: 'rotary.inv_freq', tensor: f32([2], [1, 2]) },
  ];
  const expected = [
    { name: 'embed.weight', shape: [10, 4] },
    { name: 'norm.weight', shape: [4], dtype: 'bf16' as const },
  ];

  it('finds nothing wrong when shapes match and extras are allowed', () => {
    const ckpt = ckptWith(entries());
    expect(checkShapes(ckpt, expected, { allowExtra: true })).toEqual([]);
    assertShapes(ckpt, expected, { allowExtra: true });
    ckpt.close();
  });

  it('reports a wrong shape with expected and found shapes', () => {
    const ckpt = ckptWith(entries());
    const want = [{ name: 'embed.weight', shape: [4, 10] }, expected[1]!];
    const [p, ...rest] = checkShapes(ckpt, want, { allowExtra: true });
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ code: 'RT160', tensor: 'embed.weight', file: ckpt.path });
    expect(p!.message).toContain('embed.weight has shape [10, 4], expected [4, 10]');
    expectRuntimeError(() => assertShapes(ckpt, want, { allowExtra: true }), 'RT160', ckpt.path, 'embed.weight', '[4, 10]', '[10, 4]');
    ckpt.close();
  });

  it('reports a wrong dtype', () => {
    const ckpt = ckptWith(entries());
    expectRuntimeError(() => assertShapes(ckpt, [{ name: 'norm.weight', shape: [4], dtype: 'f32' }], { allowExtra: true }), 'RT161', 'norm.weight', 'bf16', 'f32');
    ckpt.close();
  });

  it('reports a missing tensor', () => {
    const ckpt = ckptWith(entries());
    const want = [...expected, { name: 'lm_head.weight', shape: [10, 4] }];
    expectRuntimeError(() => assertShapes(ckpt, want, { allowExtra: true }), 'RT162', ckpt.path, 'lm_head.weight', '[10, 4]');
    ckpt.close();
  });

  it('reports an extra tensor unless extras are allowed', () => {
    const ckpt = ckptWith(entries());
    expectRuntimeError(() => assertShapes(ckpt, expected), 'RT163', ckpt.path, 'rotary.inv_freq', '[2]');
    expect(checkShapes(ckpt, expected, { allowExtra: true })).toEqual([]);
    ckpt.close();
  });

  it('collects every problem and throws them together', () => {
    const ckpt = ckptWith(entries());
    const want = [{ name: 'embed.weight', shape: [3] }, { name: 'gone', shape: [1] }];
    const problems = checkShapes(ckpt, want);
    expect(problems.map((p) => [p.code, p.tensor])).toEqual([
      ['RT160', 'embed.weight'],
      ['RT162', 'gone'],
      ['RT163', 'norm.weight'],
      ['RT163', 'rotary.inv_freq'],
    ]);
    const e = expectRuntimeError(() => assertShapes(ckpt, want), 'RT164', '4 problems', 'embed.weight', 'gone', 'norm.weight', 'rotary.inv_freq');
    expect(e.problems?.length).toBe(4);
    ckpt.close();
  });
});

// ---------------------------------------------------------------------------------------------

/** The gc function, if V8 lets us have it (it does via --expose-gc set at run time). */
function getGc(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

describe('memory', () => {
  it('reads a ~200 MB checkpoint tensor by tensor without holding the file in memory', () => {
    const file = path.join(tmpDir(), 'big.safetensors');
    const count = 50;
    const per = 1 << 20; // 4 MiB of f32 per tensor
    // One 4 MiB buffer serves every tensor (shifted views), so writing needs no 200 MB either.
    const base = Float32Array.from({ length: per + count }, (_, i) => i);
    writeSafetensors(file, Array.from({ length: count }, (_, i) => ({ name: `t${i}`, tensor: f32Tensor([per], base.subarray(i, i + per)) })));
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(200_000_000);

    const gc = getGc();
    gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    const ckpt = openCheckpoint(file);
    for (let i = 0; i < count; i++) {
      const t = ckpt.read(`t${i}`);
      expect(t.data[0]).toBe(i);
      expect(t.data[per - 1]).toBe(i + per - 1);
      gc?.();
      peak = Math.max(peak, process.memoryUsage().rss - rss0);
    }
    ckpt.close();
    expect(peak, `rss grew ${(peak / 2 ** 20).toFixed(1)} MiB reading a ${(size / 2 ** 20).toFixed(0)} MiB file`).toBeLessThan(size / 4);
  }, 30_000);
});

const GOLDEN_HEX =
  '58000000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a226e70227d2c2277223a7b226474797065223a22463332222c227368617065223a5b325d2c22646174615f6f666673657473223a5b302c385d7d7d2020200000803f00000040';
