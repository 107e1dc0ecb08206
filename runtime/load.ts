// Loading a checkpoint for a program: config.json checked against the params the program was built
// with (and the load-time choices decided from it), the checkpoint's tensors checked for names,
// shapes and finite values, and every weight uploaded to the backend as it is read.

import { join } from 'node:path';
import { RuntimeError } from './errors.ts';
import type { CheckpointFiles, TensorSource } from './fetch.ts';
import { type HfConfig, lookupKey, readHfConfig } from './hfconfig.ts';
import { RUNTIME_LIMITS } from './limits.ts';
import type { LoadOptions } from './model.ts';
import { probePath } from './paths.ts';
import type { Program } from './program.ts';
import type { HostWeight } from './quant.ts';
import { checkShapes, openCheckpoint } from './safetensors.ts';
import type { LoadableBackend } from './targets.ts';
import { type Tensor, bf16ToF32, f16ToF32 } from './tensor.ts';
import { loadTokenizer } from './tokenizer.ts';

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}

/** The config.json values the program was built for must be the checkpoint's; the params decided
 *  at load take config.json's value (absent: the program's). Returns the checkpoint tensor each
 *  weight reads where that is not its own name (e.g. a tied head's `lm_head.weight`). */
export function checkConfig(program: Program, config: HfConfig, file: string): { reads: Map<string, string>; chosen: Record<string, unknown> } {
  const problems: string[] = [];
  /** The value of the first of `keys` config.json gives (null and "auto" give none). */
  const valueOf = (keys: readonly string[]): { key: string; value: unknown } | undefined => {
    for (const key of keys) {
      const { found, value } = lookupKey(config, key.split('.'));
      if (found && value !== null && value !== 'auto') return { key, value };
    }
    return undefined;
  };
  for (const b of program.bindings) {
    const got = valueOf(b.keys);
    if (got && !sameValue(got.value, b.value)) problems.push(`${got.key} = ${show(got.value)}, but this program was built with ${b.param} = ${show(b.value)}`);
  }
  const reads = new Map<string, string>();
  const chosen: Record<string, unknown> = {};
  for (const c of program.choices) {
    const got = valueOf(c.keys);
    const pick = c.reads.find((r) => sameValue(r.value, got ? got.value : c.value));
    if (!pick) problems.push(`${got!.key} = ${show(got!.value)}, but this program takes ${c.reads.map((r) => show(r.value)).join(' or ')} for ${c.param}`);
    else {
      chosen[c.param] = pick.value;
      for (const [weight, tensor] of Object.entries(pick.tensors)) reads.set(weight, tensor);
    }
  }
  if (problems.length) {
    throw new RuntimeError('RT210', [file, problems.join('\n  '), 'rebuild with `archc build <model.arch> --hf-config <checkpoint>/config.json`'], { file });
  }
  return { reads, chosen };
}

/** JSON-like text that keeps infinities readable. */
function show(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? `${x}` : x)).replace(/"(-?Infinity|NaN)"/g, '$1');
}

function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  return a === b;
}

/** A checkpoint directory on this machine (Node). */
export function nodeCheckpoint(dir: string): CheckpointFiles {
  const configPath = join(dir, 'config.json');
  return {
    configPath,
    config: probePath(configPath).kind === 'missing' ? {} : readHfConfig(configPath),
    tensors: async () => openCheckpoint(dir),
    tokenizer: () => loadTokenizer(dir),
    path: (name) => join(dir, name),
  };
}

export function onNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

/** Uploads every weight of `program` as `read` gives it (quantised or as stored), from the checkpoint
 *  tensor it reads (`tensorOf`: a tied head reads the embedding's); `quantised` holds the tensors a
 *  pre-quantised checkpoint stores as integer codes. */
export async function loadWeights(program: Program, ckpt: TensorSource, read: (weight: string) => Promise<HostWeight>, opts: LoadOptions,
  backend: LoadableBackend, quantised: ReadonlySet<string>, tensorOf: (weight: string) => string): Promise<void> {
  const wanted = new Map(program.weights.map((w) => [tensorOf(w.name), w.shape]));
  const problems = checkShapes(ckpt, [...wanted].map(([name, shape]) => ({ name, shape })), { allowExtra: opts.allowExtra });
  // Every weight of a program is read as floating point: integers are a wrong checkpoint.
  for (const name of wanted.keys()) {
    const got = ckpt.tensors.get(name);
    if (got?.dtype === 'i32' && !quantised.has(name)) problems.push(new RuntimeError('RT165', [ckpt.path, name, got.fileDtype], { file: ckpt.path, tensor: name }));
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    const shown = RUNTIME_LIMITS.shownProblems.value;
    const list = problems.slice(0, shown).map((p) => `  ${p.text}`);
    if (problems.length > shown) list.push(`  … and ${problems.length - shown} more`);
    throw new RuntimeError('RT164', [ckpt.path, problems.length, list.join('\n')], { file: ckpt.path, problems });
  }
  for (const [i, w] of program.weights.entries()) {
    backend.uploadWeight(w, await read(w.name));
    opts.onProgress?.(i + 1, program.weights.length, w.name);
  }
  if (!backend.complete()) fail('some weights the kernels read were not made at load');
}


/** RT144 when a float tensor holds NaN or ±Infinity: a broken checkpoint gives NaN logits. Looks at
 *  the exponent bits only (all ones means not finite), one pass. */
export function checkFinite(t: Tensor, file: string, name: string): void {
  const d = t.data;
  let bad = 0;
  let first = -1;
  if (t.dtype === 'f32') {
    const x = d as Float32Array;
    for (let i = 0; i < x.length; i++) {
      if (x[i]! - x[i]! !== 0) {
        if (bad++ === 0) first = i;
      }
    }
  } else if (t.dtype === 'bf16' || t.dtype === 'f16') {
    const mask = t.dtype === 'bf16' ? 0x7f80 : 0x7c00;
    const x = d as Uint16Array;
    for (let i = 0; i < x.length; i++) {
      if ((x[i]! & mask) === mask) {
        if (bad++ === 0) first = i;
      }
    }
  }
  if (bad > 0) {
    const v = t.dtype === 'f32' ? (d as Float32Array)[first]! : t.dtype === 'bf16' ? bf16ToF32(d[first]!) : f16ToF32(d[first]!);
    throw new RuntimeError('RT144', [file, name, bad, v, first], { file, tensor: name });
  }
}
