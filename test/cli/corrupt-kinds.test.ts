// Broken checkpoints of many kinds (header, entries, offsets, dtypes, values, shards, files, config
// values), each through the real command line (`main`, in this process) with the exact error code
// it must give: exit status 1, the code in stderr, no stack trace, no --out file left behind.

import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { parseHfConfig } from '../../runtime/hfconfig.ts';
import { BAMBA, makeDir, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

const ST = 'model.safetensors';
const NORM = 'model.final_layernorm.weight';
const IN_PROJ = 'model.layers.0.mamba.in_proj.weight';

function read(file: string): { header: Record<string, any>; data: Buffer } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

/** Writes a file from a raw header text and data. */
function writeRaw(file: string, headerText: string | Buffer, data: Buffer = Buffer.alloc(0), length?: bigint): void {
  const h = Buffer.isBuffer(headerText) ? headerText : Buffer.from(headerText);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(h.length));
  writeFileSync(file, Buffer.concat([len, h, data]));
}

/** Edits the header object in place (offsets untouched). */
function editHeader(dir: string, edit: (h: Record<string, any>) => void): void {
  const f = join(dir, ST);
  const { header, data } = read(f);
  edit(header);
  writeRaw(f, JSON.stringify(header), data);
}

/** Rebuilds the file from entries (contiguous offsets), after `edit`. */
function editEntries(dir: string, edit: (es: Entry[]) => void): void {
  const f = join(dir, ST);
  const { header, data } = read(f);
  const es: Entry[] = Object.entries(header).filter(([k]) => k !== '__metadata__')
    .map(([name, v]) => ({ name, dtype: v.dtype, shape: v.shape, bytes: Buffer.from(data.subarray(v.data_offsets[0], v.data_offsets[1])) }));
  edit(es);
  const h: Record<string, unknown> = {};
  let at = 0;
  for (const e of es) {
    h[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + e.bytes.length] };
    at += e.bytes.length;
  }
  writeRaw(f, JSON.stringify(h), Buffer.concat(es.map((e) => e.bytes)));
}

const entry = (es: Entry[], name: string) => es.find((e) => e.name === name)!;
const config = (dir: string) => join(dir, 'config.json');
function editConfig(dir: string, edit: (c: Record<string, any>) => void, raw?: (text: string) => string): void {
  const c = parseHfConfig(readFileSync(config(dir), 'utf8'), 'config.json') as Record<string, any>;
  edit(c);
  // Python's json writes bare Infinity; so does this.
  const text = JSON.stringify(c, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? `@${v}` : v), 2).replace(/"@(-?Infinity|NaN)"/g, '$1');
  writeFileSync(config(dir), raw ? raw(text) : text);
}

/** Splits the checkpoint into two shards and an index; `edit` may change the index afterwards. */
function shard(dir: string, edit: (index: { weight_map: Record<string, string> }) => void = () => {}, raw?: string): void {
  const { header, data } = read(join(dir, ST));
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const halves = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const index = { metadata: {}, weight_map: {} as Record<string, string> };
  halves.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const h: Record<string, unknown> = {};
    const bufs: Buffer[] = [];
    let at = 0;
    for (const n of part) {
      const b = data.subarray(header[n].data_offsets[0], header[n].data_offsets[1]);
      h[n] = { ...header[n], data_offsets: [at, at + b.length] };
      bufs.push(b);
      at += b.length;
      index.weight_map[n] = file;
    }
    writeRaw(join(dir, file), JSON.stringify(h), Buffer.concat(bufs));
  });
  rmSync(join(dir, ST));
  edit(index);
  writeFileSync(join(dir, 'model.safetensors.index.json'), raw ?? JSON.stringify(index));
}

interface Kind {
  readonly name: string;
  readonly code: string;
  readonly damage: (dir: string) => void;
  /** Also in stderr. */
  readonly mentions?: readonly string[];
  /** --weights: the directory (default) or something inside it. */
  readonly weights?: (dir: string) => string;
}

const f32 = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);

const KINDS: readonly Kind[] = [
  // the 8-byte length and the header text
  { name: 'empty file', code: 'RT110', damage: (d) => writeFileSync(join(d, ST), '') },
  { name: 'five-byte file', code: 'RT110', damage: (d) => writeFileSync(join(d, ST), 'abcde') },
  { name: 'header length 0', code: 'RT111', damage: (d) => writeRaw(join(d, ST), '', Buffer.alloc(16)) },
  { name: 'header length past the end', code: 'RT112', damage: (d) => writeRaw(join(d, ST), '{}', Buffer.alloc(0), 1000n) },
  { name: 'header length over 100 MB', code: 'RT113', damage: (d) => { writeRaw(join(d, ST), '{}', Buffer.alloc(0), 200_000_000n); truncateSync(join(d, ST), 300_000_000); } },
  { name: 'header not UTF-8', code: 'RT114', damage: (d) => writeRaw(join(d, ST), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])) },
  { name: 'header not JSON', code: 'RT115', damage: (d) => writeRaw(join(d, ST), '{"a": ') },
  { name: 'header a JSON array', code: 'RT116', damage: (d) => writeRaw(join(d, ST), '[1, 2]') },
  { name: 'header a JSON string', code: 'RT116', damage: (d) => writeRaw(join(d, ST), '"x"') },
  { name: '__metadata__ not an object', code: 'RT117', damage: (d) => editHeader(d, (h) => (h.__metadata__ = [1])) },
  { name: '__metadata__ value not a string', code: 'RT117', damage: (d) => editHeader(d, (h) => (h.__metadata__ = { format: 1 })) },
  { name: 'header nesting 20,000 deep', code: 'RT118', damage: (d) => writeRaw(join(d, ST), `{"a":${'['.repeat(20_000)}${']'.repeat(20_000)}}`) },
  // one entry
  { name: 'entry not an object', code: 'RT120', damage: (d) => editHeader(d, (h) => (h[NORM] = 5)), mentions: [NORM] },
  { name: 'dtype not a string', code: 'RT120', damage: (d) => editHeader(d, (h) => (h[NORM].dtype = 7)), mentions: [NORM] },
  { name: 'unknown dtype', code: 'RT121', damage: (d) => editHeader(d, (h) => (h[NORM].dtype = 'F33')), mentions: [NORM, 'F33'] },
  { name: 'dtype named after a prototype member', code: 'RT121', damage: (d) => editHeader(d, (h) => (h[NORM].dtype = 'constructor')), mentions: [NORM] },
  { name: 'shape not an array', code: 'RT120', damage: (d) => editHeader(d, (h) => (h[NORM].shape = 32)), mentions: [NORM] },
  { name: 'negative dimension', code: 'RT122', damage: (d) => editHeader(d, (h) => (h[NORM].shape = [-32])), mentions: [NORM] },
  { name: 'fractional dimension', code: 'RT122', damage: (d) => editHeader(d, (h) => (h[NORM].shape = [31.5])), mentions: [NORM] },
  { name: 'data_offsets missing', code: 'RT120', damage: (d) => editHeader(d, (h) => delete h[NORM].data_offsets), mentions: [NORM] },
  { name: 'data_offsets reversed', code: 'RT120', damage: (d) => editHeader(d, (h) => h[NORM].data_offsets.reverse()), mentions: [NORM] },
  { name: 'offsets that disagree with the shape', code: 'RT123', damage: (d) => editHeader(d, (h) => (h[NORM].shape = [16])), mentions: [NORM] },
  { name: 'offsets past the data', code: 'RT124', damage: (d) => editHeader(d, (h) => (h[NORM].data_offsets = h[NORM].data_offsets.map((x: number) => x + 1e6))), mentions: [NORM] },
  { name: 'two tensors overlapping', code: 'RT125', damage: (d) => editHeader(d, (h) => {
    const other = Object.keys(h).find((k) => k !== NORM && k !== '__metadata__' && h[k].data_offsets[1] - h[k].data_offsets[0] >= 128)!;
    h[NORM].data_offsets = [h[other].data_offsets[0], h[other].data_offsets[0] + 128];
  }) },
  { name: 'junk after the tensor data', code: 'RT126', damage: (d) => writeFileSync(join(d, ST), Buffer.concat([readFileSync(join(d, ST)), Buffer.alloc(64, 7)])), mentions: ['after the last tensor'] },
  { name: 'junk after data the header does not list', code: 'RT126', damage: (d) => editEntries(d, (es) => es.push({ name: 'junk', dtype: 'F32', shape: [4], bytes: Buffer.alloc(16) })), weights: (d) => { editHeader(d, (h) => delete h.junk); return d; } },
  // dtypes and values
  { name: 'I32 where a float weight is expected', code: 'RT165', damage: (d) => editHeader(d, (h) => (h[NORM].dtype = 'I32')), mentions: [NORM, 'I32'] },
  { name: 'I64 where a float weight is expected', code: 'RT165', damage: (d) => editEntries(d, (es) => {
    const e = entry(es, NORM);
    e.dtype = 'I64';
    e.bytes = Buffer.from(new BigInt64Array(32).fill(1n).buffer);
  }), mentions: [NORM, 'I64'] },
  { name: 'NaN in an f32 weight', code: 'RT144', damage: (d) => editEntries(d, (es) => entry(es, NORM).bytes.set(f32([NaN]), 8)), mentions: [NORM, 'index 2'] },
  { name: 'infinity in a bf16 weight', code: 'RT144', damage: (d) => editEntries(d, (es) => {
    const e = entry(es, NORM);
    e.dtype = 'BF16';
    e.bytes = Buffer.from(new Uint16Array(32).fill(0x3f80).map((x, i) => (i === 5 ? 0x7f80 : x)).buffer);
  }), mentions: [NORM, 'Infinity'] },
  { name: 'wrong shape', code: 'RT160', damage: (d) => editHeader(d, (h) => h[IN_PROJ].shape.reverse()), mentions: [IN_PROJ] },
  { name: 'missing tensor', code: 'RT162', damage: (d) => editEntries(d, (es) => es.splice(es.indexOf(entry(es, NORM)), 1)), mentions: [NORM] },
  { name: 'unexpected tensor', code: 'RT163', damage: (d) => editEntries(d, (es) => es.push({ name: 'extra.weight', dtype: 'F32', shape: [2], bytes: Buffer.alloc(8) })), mentions: ['extra.weight'] },
  { name: 'most tensors missing', code: 'RT164', damage: (d) => editEntries(d, (es) => es.splice(3)), mentions: ['more'] },
  // shards
  { name: 'index not JSON', code: 'RT130', damage: (d) => shard(d, undefined, '{"weight_map": ') },
  { name: 'index without weight_map', code: 'RT130', damage: (d) => shard(d, undefined, '{"metadata": {}}') },
  { name: 'index weight_map an array', code: 'RT130', damage: (d) => shard(d, undefined, '{"weight_map": []}') },
  { name: 'index entry not a file name', code: 'RT130', damage: (d) => shard(d, (i) => ((i.weight_map as Record<string, unknown>)[NORM] = 3)) },
  { name: 'index nesting 20,000 deep', code: 'RT130', damage: (d) => shard(d, undefined, `{"weight_map": {}, "x": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`), mentions: ['header-depth'] },
  { name: 'shard file missing', code: 'RT131', damage: (d) => shard(d, (i) => (i.weight_map[NORM] = 'model-00009-of-00009.safetensors')) },
  { name: 'tensor not in its shard', code: 'RT132', damage: (d) => shard(d, (i) => (i.weight_map[NORM] = i.weight_map[NORM]!.replace(/0000(\d)-of/, (_, k) => `0000${3 - Number(k)}-of`))), mentions: [NORM] },
  { name: 'shard path leaving the directory', code: 'RT133', damage: (d) => shard(d, (i) => (i.weight_map[NORM] = '../x.safetensors')) },
  // files
  { name: 'no checkpoint files', code: 'RT101', damage: (d) => rmSync(join(d, ST)) },
  { name: 'model.safetensors a directory', code: 'RT100', damage: (d) => { rmSync(join(d, ST)); mkdirSync(join(d, ST)); }, mentions: ['directory'] },
  { name: 'model.safetensors a dangling link', code: 'RT100', damage: (d) => { rmSync(join(d, ST)); symlinkSync(join(d, 'gone'), join(d, ST)); }, mentions: ['does not exist'] },
  { name: 'model.safetensors a loop of links', code: 'RT100', damage: (d) => { rmSync(join(d, ST)); symlinkSync(join(d, 'b'), join(d, ST)); symlinkSync(join(d, ST), join(d, 'b')); }, mentions: ['loop'] },
  { name: '--weights a loop of links', code: 'RT100', damage: (d) => symlinkSync(join(d, 'loop'), join(d, 'loop')), weights: (d) => join(d, 'loop'), mentions: ['loop'] },
  { name: '--weights missing', code: 'RT100', damage: () => {}, weights: (d) => join(d, 'nowhere') },
  { name: 'config.json missing', code: 'RT204', damage: (d) => rmSync(config(d)), mentions: ['config.json'] },
  { name: 'config.json a dangling link', code: 'RT200', damage: (d) => { rmSync(config(d)); symlinkSync(join(d, 'gone.json'), config(d)); }, mentions: ['does not exist'] },
  // config values
  { name: 'config.json not JSON', code: 'AC304', damage: (d) => writeFileSync(config(d), '{"a": 1,}') },
  { name: 'config.json an array', code: 'AC304', damage: (d) => writeFileSync(config(d), '[1]') },
  { name: 'config.json nesting 600 deep', code: 'AC304', damage: (d) => editConfig(d, () => {}, (t) => t.replace(/}\s*$/, `, "x": ${'['.repeat(600)}${']'.repeat(600)}}`)) },
  { name: 'rms_norm_eps NaN', code: 'AC301', damage: (d) => editConfig(d, () => {}, (t) => t.replace(/"rms_norm_eps": [^,\n]+/, '"rms_norm_eps": NaN')), mentions: ['rms_norm_eps', 'NaN'] },
  { name: 'rms_norm_eps negative', code: 'AC406', damage: (d) => editConfig(d, (c) => (c.rms_norm_eps = -1e-5)), mentions: ['rms_norm_eps'] },
  { name: 'time_step_limit [NaN, NaN]', code: 'AC301', damage: (d) => editConfig(d, () => {}, (t) => t.replace(/"time_step_limit": \[[^\]]*\]/, '"time_step_limit": [NaN, NaN]')), mentions: ['time_step_limit'] },
  { name: 'time_step_limit reversed', code: 'AC406', damage: (d) => editConfig(d, (c) => (c.time_step_limit = [1, 0])), mentions: ['time_step_limit'] },
  { name: 'rope_theta 0', code: 'AC406', damage: (d) => editConfig(d, (c) => (c.rope_theta = 0)), mentions: ['rope_theta'] },
  { name: 'num_hidden_layers a string', code: 'AC301', damage: (d) => editConfig(d, (c) => (c.num_hidden_layers = 'four')), mentions: ['num_hidden_layers'] },
  { name: 'torch_dtype "toString"', code: 'AC301', damage: (d) => editConfig(d, (c) => (c.torch_dtype = 'toString')), mentions: ['torch_dtype'] },
  { name: 'num_hidden_layers missing (9B default)', code: 'RT164', damage: (d) => editConfig(d, (c) => delete c.num_hidden_layers), mentions: ['AC408', 'num_hidden_layers', 'default 32'] },
];

let good: string;
const out: { code: number; stderr: string; outFile: string }[] = [];

beforeAll(async () => {
  good = makeDir();
  writeCheckpoint(good);
  const write = { out: process.stdout.write, err: process.stderr.write };
  for (const [i, k] of KINDS.entries()) {
    const dir = join(good, `case${i}`);
    mkdirSync(dir);
    for (const f of ['config.json', ST]) cpSync(join(good, f), join(dir, f));
    k.damage(dir);
    const weights = k.weights ? k.weights(dir) : dir;
    const outFile = join(dir, 'logits.npy');
    let stderr = '';
    process.stdout.write = (() => true) as never;
    process.stderr.write = ((s: string) => ((stderr += s), true)) as never;
    let code: number;
    try {
      code = await main(['forward', BAMBA, '--weights', weights, '--ids', '1,2,3;4,5', '--out', outFile]);
    } finally {
      process.stdout.write = write.out;
      process.stderr.write = write.err;
    }
    out.push({ code, stderr, outFile });
    await new Promise((r) => setImmediate(r));
  }
}, 300_000);

afterAll(() => {
  if (good) {
    try {
      chmodSync(good, 0o755);
    } catch {
      // already gone
    }
    removeDir(good);
  }
});

describe(`corrupted checkpoints: ${KINDS.length} kinds, each with its code`, () => {
  it('has at least 40 kinds', () => expect(KINDS.length).toBeGreaterThanOrEqual(40));
  it.each(KINDS.map((k, i) => [k.name, k.code, i] as const))('%s: %s', (_name, code, i) => {
    const r = out[i]!;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr, r.stderr).toMatch(new RegExp(`error ${code}\\b`));
    expect(r.stderr).not.toMatch(/\n\s+at /);
    for (const m of KINDS[i]!.mentions ?? []) expect(r.stderr).toContain(m);
    expect(existsSync(r.outFile)).toBe(false);
  });
});
