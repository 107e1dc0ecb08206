// Shared by bench/llama/check.ts and compare.ts: where llama.cpp and the GGUF files live, making
// the GGUFs of a checkpoint (to_gguf.py, then llama-quantize), archc's and llama.cpp's logits as
// .npy, and the numbers compared between them.
//
// Everything generated stays outside the repository, in $ARCHC_BENCH_CACHE (default
// ~/.cache/archc-bench): llama.cpp/ (bench/llama/build.sh), gguf/<checkpoint>-<hash>/<format>.gguf.
// A GGUF is remade when its checkpoint's config.json or weights are newer than it.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
export const BAMBA = join(ROOT, 'models', 'bamba.arch');
export const CACHE = process.env.ARCHC_BENCH_CACHE ?? join(homedir(), '.cache', 'archc-bench');
export const LLAMA_BIN = join(CACHE, 'llama.cpp', 'build', 'bin');
export const tool = (name: string): string => {
  const p = join(LLAMA_BIN, name);
  if (!existsSync(p)) die(`${p} is missing: run bench/llama/build.sh first`);
  return p;
};

export function die(msg: string): never {
  process.stderr.write(`${msg}\n`);
  process.exit(1);
}

export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) die(`${name}: expected a value`);
  return v;
}
export function numArg(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  if (!/^\d+(\.\d+)?(e-?\d+)?$/.test(v)) die(`${name}: expected a number, got ${v}`);
  return Number(v);
}

/** Runs a command, its output shown only when it fails (then the process exits 1). */
export function run(cmd: string, args: readonly string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) die(`${what} failed (${[cmd, ...args].join(' ')}):\n${r.stderr || r.stdout || r.error}`);
  return r.stdout;
}

// ---- GGUF files of a checkpoint -----------------------------------------------------------------

/** The llama.cpp formats made here: floats by to_gguf.py; quantised ones by llama-quantize from the
 *  bf16 file (exact for a bf16 checkpoint). `pure`: every product and the embedding in that format
 *  (as archc's q8/q4 load does); the default mix gives the head and some tensors wider types. */
export type GgufFormat = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_0-mix' | 'Q8_0-mix';

function newest(dir: string): number {
  return Math.max(...readdirSync(dir).filter((f) => f.endsWith('.json') || f.endsWith('.safetensors')).map((f) => statSync(join(dir, f)).mtimeMs));
}

/** A checkpoint's short name: its directory's, with the parent's when that is only a dtype (f32/). */
export function ckptName(ckpt: string): string {
  const abs = resolve(ckpt);
  const b = basename(abs);
  return /^(f32|f16|bf16)$/.test(b) ? `${basename(dirname(abs))}-${b}` : b;
}

export function ggufDir(ckpt: string): string {
  const tag = createHash('sha256').update(resolve(ckpt)).digest('hex').slice(0, 8);
  const d = join(CACHE, 'gguf', `${ckptName(ckpt)}-${tag}`);
  mkdirSync(d, { recursive: true });
  return d;
}

export function gguf(ckpt: string, format: GgufFormat): string {
  if (!existsSync(join(ckpt, 'config.json'))) die(`${ckpt}: no config.json (expected a checkpoint directory)`);
  const out = join(ggufDir(ckpt), `${format}.gguf`);
  if (existsSync(out) && statSync(out).mtimeMs >= newest(ckpt)) return out;
  if (format === 'F32' || format === 'F16' || format === 'BF16') {
    process.stderr.write(`making ${out}\n`);
    run('python3', [join(ROOT, 'bench', 'llama', 'to_gguf.py'), ckpt, out, '--type', format.toLowerCase()], 'to_gguf.py');
    return out;
  }
  const src = gguf(ckpt, 'BF16');
  const [type, mix] = format.split('-') as [string, string | undefined];
  const tmp = `${out}.tmp${process.pid}`;
  process.stderr.write(`making ${out}\n`);
  try {
    run(tool('llama-quantize'), [...(mix ? [] : ['--pure']), src, tmp, type, '2'], 'llama-quantize');
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
  }
  return out;
}

// ---- logits ---------------------------------------------------------------------------------------

/** A float32 .npy [rows, cols] (what `archc forward --out` and logits.cpp write). */
export function readNpy(path: string): { rows: number; cols: number; data: Float32Array } {
  const b = readFileSync(path);
  if (b.readUInt32BE(0) !== 0x934e554d || b[6] !== 1) die(`${path}: not a version 1 .npy`);
  const hlen = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + hlen).toString('latin1');
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header);
  if (!header.includes("'descr': '<f4'") || !shape) die(`${path}: expected float32 [rows, cols], header ${header.trim()}`);
  const rows = Number(shape[1]), cols = Number(shape[2]);
  const off = 10 + hlen;
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + off + rows * cols * 4));
  return { rows, cols, data };
}

/** archc's logits for `ids` on one backend (`cpu`: the reference), optionally quantised at load. */
export function archcLogits(ckpt: string, ids: readonly number[], out: string, opts: { backend?: string; quantize?: string; step?: boolean } = {}) {
  run(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'forward', BAMBA, '--weights', ckpt, '--ids', ids.join(','), '--out', out,
    '--backend', opts.backend ?? 'cpu', ...(opts.quantize ? ['--quantize', opts.quantize] : []), ...(opts.step ? ['--step'] : [])], 'archc forward');
  return readNpy(out);
}

/** llama.cpp's logits for `ids` (bench/llama/logits.cpp): all at once, or one token a call. */
export function llamaLogits(model: string, ids: readonly number[], out: string, step = false, threads = 2) {
  run(tool('archc-llama-logits'), [model, ids.join(','), out, ...(step ? ['--step'] : []), '--threads', String(threads)], 'llama.cpp logits');
  return readNpy(out);
}

// ---- comparisons ----------------------------------------------------------------------------------

type Logits = { rows: number; cols: number; data: Float32Array };

/** Max |a - b| over every logit, relative to the reference's largest |logit|; and the RMS of the
 *  difference relative to the reference's RMS. */
export function relDiff(ref: Logits, b: Logits): { maxAbs: number; scale: number; maxRel: number; rmsRel: number } {
  if (ref.rows !== b.rows || ref.cols !== b.cols) die(`logits shapes differ: [${ref.rows}, ${ref.cols}] vs [${b.rows}, ${b.cols}]`);
  let maxAbs = 0, scale = 0, se = 0, sr = 0, nan = false;
  for (let i = 0; i < ref.data.length; i++) {
    const r = ref.data[i]!, d = Math.abs(r - b.data[i]!);
    if (Number.isNaN(d)) nan = true;
    else if (d > maxAbs) maxAbs = d;
    scale = Math.max(scale, Math.abs(r));
    se += d * d;
    sr += r * r;
  }
  if (nan) return { maxAbs: NaN, scale, maxRel: NaN, rmsRel: NaN };
  return { maxAbs, scale, maxRel: maxAbs / scale, rmsRel: Math.sqrt(se / sr) };
}

/** Per-position agreement of two distributions: share of positions with the same argmax, and the
 *  mean KL(p || q) in nats of their softmaxes (p the reference). */
export function agreement(p: Logits, q: Logits): { top1: number; kl: number } {
  let same = 0, kl = 0;
  const V = p.cols;
  const logSoftmax = (x: Float32Array) => {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    const ls = Math.log(s) + m;
    return Float64Array.from(x, (v) => v - ls);
  };
  for (let t = 0; t < p.rows; t++) {
    const a = p.data.subarray(t * V, (t + 1) * V), b = q.data.subarray(t * V, (t + 1) * V);
    let ia = 0, ib = 0;
    for (let i = 1; i < V; i++) {
      if (a[i]! > a[ia]!) ia = i;
      if (b[i]! > b[ib]!) ib = i;
    }
    if (ia === ib) same++;
    const la = logSoftmax(a), lb = logSoftmax(b);
    for (let i = 0; i < V; i++) kl += Math.exp(la[i]!) * (la[i]! - lb[i]!);
  }
  return { top1: same / p.rows, kl: kl / p.rows };
}

export function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ')).join('\n');
}
