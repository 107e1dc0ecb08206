// Test helpers for end-to-end runs: tiny random Bamba checkpoints written in Hugging Face layout
// (config.json + safetensors, single or sharded), loading them the way `archc forward` does,
// comparing logits with a stated tolerance, and running the CLI as a child process.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Compiled, compileFile, loadConfig } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type LoadOptions, Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { type NamedTensor, writeSafetensors, writeShardedSafetensors } from '../../runtime/safetensors.ts';
import { type DType, fromF32 } from '../../runtime/tensor.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BAMBA = join(ROOT, 'models', 'bamba.arch');
export const ARCHC = join(ROOT, 'bin', 'archc.js');

export type ParamValue = number | boolean | string | readonly number[];
export type Params = Readonly<Record<string, ParamValue>>;

/** A Bamba small enough that a forward pass takes milliseconds: 4 layers, attention at 1 and 3,
 *  4 Mamba heads of 16 dims (d_model 32 · expand 2 / 4), state 8, chunk 4, head_dim 8 (rotary 4). */
export const TINY: Params = {
  vocab: 96, d_model: 32, n_layers: 4, attn_layers: [1, 3], n_heads: 4, n_kv_heads: 2,
  mamba_heads: 4, mamba_groups: 1, d_state: 8, d_ff: 64, chunk: 4, context: 64,
};

/** `--set` strings for params (lists as `[1,3]`). */
export function setsFor(params: Params): string[] {
  return Object.entries(params).map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(',')}]` : String(v)}`);
}

/** Compiles models/bamba.arch with TINY overridden by `params`. */
export function compileTiny(params: Params = {}): Compiled {
  return compileFile(BAMBA, { set: setsFor({ ...TINY, ...params }) });
}

export interface CheckpointOptions {
  readonly dtype?: DType;
  readonly seed?: number;
  /** Write shards of at most this many bytes and an index instead of one model.safetensors. */
  readonly shardSize?: number;
  /** The tensors to write (default: `randomTensors` of the compiled graph with `seed` and `dtype`). */
  readonly tensors?: readonly NamedTensor[];
  /** Keep initWeights' slow SSM (dt in [1e-3, 1e-1]) instead of `vividSsm` (default false). */
  readonly plainInit?: boolean;
  /** Edits the config.json object before it is written. */
  readonly editConfig?: (cfg: Record<string, unknown>) => void;
}

export interface WrittenCheckpoint {
  readonly dir: string;
  readonly compiled: Compiled;
  readonly tensors: readonly NamedTensor[];
}

/** Writes a random checkpoint for TINY + `params` into `dir` (which must exist). */
export function writeCheckpoint(dir: string, params: Params = {}, opts: CheckpointOptions = {}): WrittenCheckpoint {
  const compiled = compileTiny(params);
  const dtype = opts.dtype ?? 'f32';
  const tensors = opts.tensors ?? randomTensors(compiled, opts);
  writeFileSync(join(dir, 'config.json'), hfConfigText(compiled, dtype, opts.editConfig));
  if (opts.shardSize) writeShardedSafetensors(dir, tensors, opts.shardSize, { format: 'pt' });
  else writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return { dir, compiled, tensors };
}

/** initWeights for the compiled graph, made vivid unless `plainInit`, in `dtype`. */
export function randomTensors(compiled: Compiled, opts: { dtype?: DType; seed?: number; plainInit?: boolean } = {}): NamedTensor[] {
  const f32 = initWeights(compiled.graph, createRng(opts.seed ?? 0), 'f32');
  const t = opts.plainInit ? f32 : vividSsm(f32, opts.seed ?? 0);
  const dtype = opts.dtype ?? 'f32';
  return t.map(({ name, tensor }) => ({ name, tensor: fromF32(tensor.data as Float32Array, tensor.shape, dtype) }));
}

/**
 * initWeights draws dt in [1e-3, 1e-1] (Mamba's init), so in a few tokens a tiny model's SSM moves
 * little and its share of the logits is small (scaling A by 1.5 moves them by ~0.04). For the
 * invariant tests the SSM should carry more: dt = softplus(dt_bias) in [0.2, 1.2] and
 * A = −exp(A_log) in [−3, −0.5], so a token's state decays by e^−0.1 … e^−3.6 per step (the same
 * scaling of A then moves the logits by ~0.15). Returns new f32 tensors.
 */
export function vividSsm(tensors: readonly NamedTensor[], seed: number): NamedTensor[] {
  const rng = createRng(seed + 7919);
  return tensors.map(({ name, tensor }) => {
    const data = Float32Array.from(tensor.data as Float32Array);
    if (name.endsWith('.dt_bias')) {
      for (let i = 0; i < data.length; i++) {
        const dt = 0.2 + rng.next();
        data[i] = dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹
      }
    } else if (name.endsWith('.A_log')) {
      for (let i = 0; i < data.length; i++) data[i] = Math.log(0.5 + 2.5 * rng.next());
    }
    return { name, tensor: { ...tensor, data } };
  });
}

/** The program for a checkpoint directory, compiled from its config.json (as `archc forward` does). */
export function programFor(dir: string, set: readonly string[] = []): Program {
  const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')), set });
  return lowerToProgram(c.graph, c.bindings);
}

/** Loads a checkpoint directory the way the CLI does. */
export function loadModel(dir: string, opts: LoadOptions & { set?: readonly string[] } = {}): Promise<Model> {
  return Model.loadProgram(programFor(dir, opts.set), dir, opts);
}

/** A fresh directory under os.tmpdir(); remove it with `removeDir`. */
export function makeDir(prefix = 'archc-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

// ---- comparing logits ----------------------------------------------------------------------

/**
 * Throws unless max|got − ref| ≤ rtol · (1 + max|ref|) (one bound for the whole array: logits are
 * compared as a tensor, so tiny entries are not held to a relative error of their own). The
 * message names the first element over the bound, both values, and the max error with its place.
 */
export function expectLogitsClose(got: ArrayLike<number>, ref: ArrayLike<number>, rtol: number, what: string, vocab?: number): number {
  if (got.length !== ref.length) throw new Error(`${what}: ${got.length} values, expected ${ref.length}`);
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]!));
  const bound = rtol * (1 + scale);
  let maxErr = 0;
  let maxAt = 0;
  let first = -1;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i]! - ref[i]!);
    if (!(e <= bound)) {
      if (first < 0) first = i;
      if (!(e <= maxErr)) {
        maxErr = Number.isNaN(e) ? Infinity : e;
        maxAt = i;
      }
    } else if (e > maxErr) {
      maxErr = e;
      maxAt = i;
    }
  }
  if (first >= 0) {
    const at = (i: number) => (vocab ? `[row ${Math.floor(i / vocab)}, col ${i % vocab}]` : `[${i}]`);
    throw new Error(
      `${what}: max |got − ref| = ${maxErr} at ${at(maxAt)} (got ${got[maxAt]}, want ${ref[maxAt]}) is over ` +
      `${rtol}·(1 + max|ref| = ${scale}) = ${bound}; first over the bound at ${at(first)}: got ${got[first]}, want ${ref[first]}`,
    );
  }
  return maxErr;
}

/** max |a − b| over all elements. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Rows [from, to) of a row-major [T, V] array. */
export function rows(x: Float32Array, V: number, from: number, to: number): Float32Array {
  return x.slice(from * V, to * V);
}

/** Index of the largest value (the lowest index on ties), as greedy decoding picks it. */
export function argmax(x: ArrayLike<number>, from = 0, to = x.length): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (x[i]! > x[best]!) best = i;
  return best - from;
}

/** n token ids in [0, vocab) from a seeded generator. */
export function randomIds(n: number, vocab: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => Math.floor(rng.next() * vocab));
}

// ---- the CLI -----------------------------------------------------------------------------

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node bin/archc.js …args` in the repository root (with `extraEnv` set); never rejects. */
export function runCli(args: readonly string[], timeoutMs = 60_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extraEnv };
  delete env.ARCHC_DEBUG; // the stack traces it adds are what the tests look for
  return new Promise((resolve) => {
    execFile(process.execPath, [ARCHC, ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 << 20, env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

/** Runs `jobs` with at most `limit` in flight; results in input order. */
export async function inParallel<T>(jobs: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}
