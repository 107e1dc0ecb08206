// Broken checkpoints through the command line: `archc forward … --weights DIR --out FILE` must exit
// with status 1 (a user error, not 70 for a bug), name the file and the tensor or config key in
// stderr, print no stack trace, and leave no --out file behind.
// One random checkpoint is written by `archc init-weights`; each case is a copy with one defect.
// The CLI runs are spawned together in beforeAll (each costs about a second of tsx start-up).

import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { ARCHC, BAMBA, type CliResult, ROOT, TINY, inParallel, makeDir, removeDir, runCli, setsFor } from '../helpers/checkpoints.ts';

/** A parsed safetensors file: its header object and its data section. */
interface Parsed {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  data: Uint8Array;
}

function parse(file: string): Parsed {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

/** Writes a safetensors file from a (possibly edited) header and data section. */
function unparse(file: string, p: Parsed): void {
  const json = Buffer.from(JSON.stringify(p.header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  writeFileSync(file, Buffer.concat([len, padded, p.data]));
}

interface Case {
  readonly name: string;
  /** Damages the copy of the checkpoint in `dir`. */
  readonly damage: (dir: string) => void;
  /** Extra CLI arguments. */
  readonly args?: readonly string[];
  /** What stderr must contain (file, tensor or key names). */
  readonly mentions: readonly (string | RegExp | (() => string))[];
}

const ST = 'model.safetensors';
const IN_PROJ = 'model.layers.0.mamba.in_proj.weight';
const K_PROJ = 'model.layers.1.self_attn.k_proj.weight';
const NORM = 'model.final_layernorm.weight';
const CONV = 'model.layers.2.mamba.conv1d.weight';

/** The tensor the runtime will report for a file cut to `size` bytes: the first in header order
 *  whose data ends past the new end. Filled in by the truncation case. */
let truncatedTensor = '';
/** The line of the closing brace in the malformed config.json. */
let badConfigLine = 0;

const CASES: readonly Case[] = [
  {
    name: 'truncated model.safetensors',
    damage: (dir) => {
      const f = join(dir, ST);
      const bytes = readFileSync(f);
      const { header, data } = parse(f);
      const dataStart = bytes.length - data.length;
      const keep = Math.floor(data.length / 2);
      truncatedTensor = Object.entries(header).find(([k, v]) => k !== '__metadata__' && v.data_offsets[1] > keep)![0];
      writeFileSync(f, bytes.subarray(0, dataStart + keep));
    },
    mentions: [ST, /truncated/, () => truncatedTensor],
  },
  {
    name: 'header length larger than the file',
    damage: (dir) => {
      const f = join(dir, ST);
      const bytes = readFileSync(f);
      bytes.writeBigUInt64LE(BigInt(bytes.length * 2), 0);
      writeFileSync(f, bytes);
    },
    mentions: [ST, 'RT112', /header length \d+ is larger than/],
  },
  {
    name: 'data offsets out of range',
    damage: (dir) => {
      const f = join(dir, ST);
      const p = parse(f);
      const e = p.header[CONV]!;
      e.data_offsets = [e.data_offsets[0] + p.data.length, e.data_offsets[1] + p.data.length];
      unparse(f, p);
    },
    mentions: [ST, CONV, 'RT124'],
  },
  {
    name: 'wrong shape for one tensor',
    damage: (dir) => {
      const f = join(dir, ST);
      const p = parse(f);
      p.header[IN_PROJ]!.shape.reverse(); // same byte size, [in, out] instead of [out, in]
      unparse(f, p);
    },
    mentions: [ST, IN_PROJ, 'RT160', /has shape \[32, \d+\], expected \[\d+, 32\]/],
  },
  {
    name: 'missing tensor',
    damage: (dir) => {
      const f = join(dir, ST);
      const p = parse(f);
      delete p.header[K_PROJ];
      unparse(f, p);
    },
    mentions: [ST, K_PROJ, 'RT162', /missing tensor/],
  },
  {
    name: 'unknown dtype',
    damage: (dir) => {
      const f = join(dir, ST);
      const p = parse(f);
      p.header[NORM]!.dtype = 'F33';
      unparse(f, p);
    },
    mentions: [ST, NORM, 'F33', 'RT121'],
  },
  {
    name: 'malformed config.json',
    damage: (dir) => {
      const f = join(dir, 'config.json');
      // a trailing comma after the last entry (line and column are checked below)
      const text = readFileSync(f, 'utf8').replace(/\n}\s*$/, ',\n}\n');
      badConfigLine = text.split('\n').length - 1;
      writeFileSync(f, text);
    },
    mentions: ['AC304', () => `config.json:${badConfigLine}:1: invalid JSON: unexpected "}", expected a string key`],
  },
  {
    name: 'config.json that disagrees with the program (RT210)',
    damage: () => {},
    args: ['--set', 'chunk=8'],
    mentions: ['config.json', 'RT210', 'mamba_chunk_size = 4', 'chunk = 8'],
  },
  {
    name: 'config.json whose sizes disagree with the tensors',
    damage: (dir) => {
      const f = join(dir, 'config.json');
      writeFileSync(f, readFileSync(f, 'utf8').replace('"intermediate_size": 64', '"intermediate_size": 48'));
    },
    mentions: [ST, 'RT164', 'model.layers.0.feed_forward.gate_proj.weight', 'model.layers.3.feed_forward.down_proj.weight'],
  },
];

let root: string;
let results: CliResult[];

beforeAll(async () => {
  root = makeDir('archc-cli-corrupt-');
  const good = join(root, 'good');
  const init = await runCli(['init-weights', BAMBA, '-o', good, '--dtype', 'f32', '--seed', '4', ...setsFor(TINY).flatMap((s) => ['--set', s])]);
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
  // the undamaged checkpoint must load: otherwise every case below would pass for the wrong reason
  const jobs = [{ name: 'good', damage: () => {}, mentions: [] } as Case, ...CASES].map((c, i) => {
    const dir = join(root, `case${i}`);
    cpSync(good, dir, { recursive: true });
    c.damage(dir);
    mkdirSync(join(root, `out${i}`));
    return () => runCli(['forward', BAMBA, '--weights', dir, '--ids', '1,2,3;4,5', '--out', join(root, `out${i}`, 'logits.npy'), ...(c.args ?? [])]);
  });
  results = await inParallel(jobs, 3);
}, 180_000);
afterAll(() => removeDir(root));

describe('archc forward on a broken checkpoint', () => {
  it('(control) the undamaged copy runs and writes its --out file', () => {
    expect(results[0]!.stderr).toBe('');
    expect(results[0]!.code).toBe(0);
    expect(existsSync(join(root, 'out0', 'logits.npy'))).toBe(true);
  });

  it.each(CASES.map((c, i) => [c.name, i + 1] as const))('%s', (_name, i) => {
    const c = CASES[i - 1]!;
    const r = results[i]!;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr, 'a stack trace').not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/internal error|bug in archc/);
    for (const m of c.mentions) {
      const want = typeof m === 'function' ? m() : m;
      if (typeof want === 'string') expect(r.stderr).toContain(want);
      else expect(r.stderr).toMatch(want);
    }
    expect(readdirSync(join(root, `out${i}`)), 'the --out directory').toEqual([]);
  });
});

describe('under an address-space limit (ulimit -v 3000000, as some hosts set)', () => {
  /** `archc ARGS` in a shell that lowers its virtual-memory limit first. */
  const limited = (args: readonly string[]): Promise<CliResult> => new Promise((resolve) => {
    execFile('bash', ['-c', 'ulimit -v 3000000 && exec "$0" "$@"', process.execPath, ARCHC, ...args], { cwd: ROOT, timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });

  it('the wasm backend that cannot reserve its memory is RT309, naming the limit and --backend cpu; the cpu backend runs', async () => {
    const [wasm, cpu] = await inParallel([
      () => limited(['forward', BAMBA, '--weights', join(root, 'case0'), '--ids', '1,2,3']),
      () => limited(['forward', BAMBA, '--weights', join(root, 'case0'), '--ids', '1,2,3', '--backend', 'cpu']),
    ], 2);
    expect(wasm.code, wasm.stderr).toBe(1);
    expect(wasm.stderr).toMatch(/error RT309: the wasm backend could not reserve its memory .*ulimit -v.*--backend cpu/);
    expect(wasm.stderr).not.toMatch(/internal error|bug in archc|^\s+at /m);
    expect(cpu.code, cpu.stderr).toBe(0);
  });

  it('a corrupt checkpoint is named (its RT1xx) before any backend is made', async () => {
    const picked = CASES.map((c, i) => ({ c, i: i + 1 })).filter(({ c }) => /header length|data offsets|unknown dtype/.test(c.name));
    expect(picked.length).toBeGreaterThan(1);
    const runs = await inParallel(picked.map(({ i }) => () => limited(['forward', BAMBA, '--weights', join(root, `case${i}`), '--ids', '1,2,3'])), 2);
    runs.forEach((r, k) => {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/error RT1\d\d/);
      expect(r.stderr).not.toMatch(/RT309|internal error/);
      for (const m of picked[k]!.c.mentions) {
        const want = typeof m === 'function' ? m() : m;
        if (typeof want === 'string') expect(r.stderr).toContain(want);
        else expect(r.stderr).toMatch(want);
      }
    });
  });
});
