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
import { type HostWeight, type QuantDType, QUANT_GROUP, quantBytes } from './quant.ts';
import { checkShapes } from './checkpoint-shapes.ts';
import { openCheckpoint } from './safetensors.ts';
import type { LoadableBackend } from './targets.ts';
import { DTYPE_BYTES, type Tensor, bf16ToF32, f16ToF32, numel } from './tensor.ts';
import { QUANT_LAYOUT } from './wasm/layout.ts';
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

/** The checkpoint's headers against the program's weights (names, shapes, integer dtypes), before
 *  anything is read or allocated: every problem at once (RT164), or the one. `quantised` holds the
 *  tensors a pre-quantised checkpoint stores as integer codes. */
export function checkCheckpoint(program: Program, ckpt: TensorSource, opts: LoadOptions, quantised: ReadonlySet<string>, tensorOf: (weight: string) => string): void {
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
}

/** Bytes the loaded weights hold on backend `backend`: each program weight as stored (f16 widened
 *  to f32 on wasm, which packs f32 or bf16), or in its format (`formats`, by weight or checkpoint
 *  name): q8/q4 codes and f16 scales on cpu, the packed groups (runtime/wasm/layout.ts) on wasm.
 *  Derived weights and a host copy a weight also read elsewhere keeps are not counted. */
export function loadedWeightBytes(program: Program, ckpt: TensorSource, formats: ReadonlyMap<string, QuantDType>, tensorOf: (weight: string) => string, backend: string): number {
  let total = 0;
  for (const w of program.weights) {
    const info = ckpt.tensors.get(tensorOf(w.name));
    const n = numel(w.shape);
    const f = formats.get(w.name) ?? formats.get(tensorOf(w.name));
    if (f) {
      const [N, K] = w.shape as [number, number];
      total += backend === 'wasm' ? Math.ceil(N / 8) * (K / QUANT_GROUP) * QUANT_LAYOUT[f].group : quantBytes(f, N, K);
    } else {
      const dtype = info?.dtype ?? 'f32';
      total += n * (backend === 'wasm' && dtype === 'f16' ? 4 : DTYPE_BYTES[dtype]);
    }
  }
  return total;
}

/** Memory this process may still take, and what says so: the machine's available memory
 *  (os.freemem: MemAvailable on Linux), or less where a cgroup v2 limit (memory.max, less the
 *  group's anonymous memory: page cache is reclaimed) leaves less; null outside Node. */
export async function availableMemory(): Promise<{ bytes: number; source: string } | null> {
  if (!onNode()) return null;
  const [os, fs] = await Promise.all([import('node:os'), import('node:fs')]);
  let out = { bytes: os.freemem(), source: 'available memory (os.freemem)' };
  try {
    const max = fs.readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(max)) {
      const anon = /^anon (\d+)$/m.exec(fs.readFileSync('/sys/fs/cgroup/memory.stat', 'utf8'));
      const used = anon ? Number(anon[1]) : Number(fs.readFileSync('/sys/fs/cgroup/memory.current', 'utf8').trim());
      const room = Math.max(0, Number(max) - used);
      if (room < out.bytes) out = { bytes: room, source: `the cgroup limit /sys/fs/cgroup/memory.max = ${max} less ${used} in use` };
    }
  } catch {
    // no cgroup v2 files here: the machine's figure stands
  }
  return out;
}

/** RT146 when the loaded weights need more than the memory available (`opts.memoryAvailable`
 *  overrides the machine's figure), naming both and a smaller format. */
export async function checkFits(needed: number, opts: LoadOptions, dir: string, backend: string, formats: ReadonlyMap<string, QuantDType>): Promise<void> {
  const avail = opts.memoryAvailable !== undefined ? { bytes: opts.memoryAvailable, source: 'the load option memoryAvailable' } : await availableMemory();
  if (!avail || needed <= avail.bytes) return;
  const used = [...new Set(formats.values())];
  const how = used.length ? ` with ${used.join(' and ')} weights` : ' as stored';
  const hint = used.length === 1 && used[0] === 'q4' ? 'use a machine with more memory, or a smaller model'
    : 'quantise them as they load: --quantize q4 (the load option quantize: \'q4\')';
  throw new RuntimeError('RT146', [dir, needed.toLocaleString('en-US'), backend, how, avail.bytes.toLocaleString('en-US'), avail.source, hint], { file: dir });
}

/** What a load has read so far (LoadOptions.onProgress): checkpoint bytes of the tensors read (a
 *  tensor two weights read counts once), out of all it will read, and the rate since the load began. */
export interface LoadProgress {
  readonly bytesRead: number;
  readonly totalBytes: number;
  /** Bytes per second since the first tensor was asked for. */
  readonly bytesPerSecond: number;
  readonly seconds: number;
}

/** Uploads every weight of `program` as `read` gives it (quantised or as stored), from the checkpoint
 *  tensor it reads (`tensorOf`: a tied head reads the embedding's), reporting each to `onProgress`.
 *  The checkpoint was checked already (checkCheckpoint). With `ahead`, weight i + 1 is asked for
 *  before weight i is awaited and uploaded (its read overlaps i's quantising on other threads): when
 *  `read` is called, every weight but the one before it has been uploaded. */
export async function loadWeights(program: Program, ckpt: TensorSource, read: (weight: string) => Promise<HostWeight>, opts: LoadOptions,
  backend: LoadableBackend, tensorOf: (weight: string) => string, ahead = false): Promise<void> {
  const bytesOf = (name: string) => { const t = ckpt.tensors.get(name); return t ? t.end - t.begin : 0; };
  const names = new Set(program.weights.map((w) => tensorOf(w.name)));
  const totalBytes = [...names].reduce((s, n) => s + bytesOf(n), 0);
  const seen = new Set<string>();
  let bytesRead = 0;
  const t0 = performance.now();
  const ws = program.weights;
  let next: Promise<HostWeight> | null = null;
  for (const [i, w] of ws.entries()) {
    const got = next ?? read(w.name);
    next = ahead && i + 1 < ws.length ? read(ws[i + 1]!.name) : null;
    next?.catch(() => {}); // its failure is met when awaited (after this one's)
    backend.uploadWeight(w, await got);
    const name = tensorOf(w.name);
    if (!seen.has(name)) {
      seen.add(name);
      bytesRead += bytesOf(name);
    }
    if (opts.onProgress) {
      const seconds = (performance.now() - t0) / 1000;
      opts.onProgress(i + 1, program.weights.length, w.name, { bytesRead, totalBytes, seconds, bytesPerSecond: seconds > 0 ? bytesRead / seconds : 0 });
    }
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
    // the exponent bits, as integers (faster than x − x on floats)
    const x = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < x.length; i++) {
      if ((x[i]! & 0x7f800000) === 0x7f800000) {
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
