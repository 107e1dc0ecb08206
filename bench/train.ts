// Training speed of tiny-bamba-a's shape (../shared/models/tiny-bamba-a: 5.1M parameters, 6
// layers, hidden 256), batch 4 × 256 tokens packed from ../shared/corpus, on 2 threads: archc's
// f32 engine on the wasm backend (runtime/train/f32/) — a whole training step: gradients, clipping,
// AdamW — and, in the same run, the same model written plainly in PyTorch (bench/train_torch.py,
// torch.set_num_threads(2), the same batches). Prints tokens/s of both and their ratio; --profile adds
// archc's time per op (forward and backward), --steps N (default 6; the first is left out). Each side
// also counts tokens per CPU-second of its process (all its threads): on a shared machine the wall
// clock measures the load as much as the engine.
//
// --kernels adds, in the same run, the kernel program's train entry on the wasm backend (archc train
// --engine kernels: runtime/wasm/train.ts) over the same batches, the two engines taking turns step
// by step, with its arena's bytes (with --profile, its time per kernel family).
//
// Run: nice -n 19 npx tsx bench/train.ts [--steps N] [--threads 2] [--profile] [--no-torch] [--kernels]

import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { openCheckpoint } from '../runtime/safetensors.ts';
import { toF32 } from '../runtime/tensor.ts';
import { loadTokenizer } from '../runtime/tokenizer.ts';
import { packedBatches } from '../runtime/train/data-rows.ts';
import { F32Engine, openWasmGemm } from '../runtime/train/f32/engine.ts';
import { OPS32 } from '../runtime/train/f32/ops.ts';
import { newParam } from '../runtime/train/optim.ts';
import { trainStep } from '../runtime/train/trainer.ts';
import type { TrainEngine } from '../runtime/train/engine.ts';
import { TrainEntryEngine } from '../runtime/train/entry-engine.ts';
import { arenaBytes } from '../compiler/kernel/memory.ts';
import { trainEntryBackend } from '../cli/train-entry.ts';
import { CpuInvocation } from '../runtime/cpu/backend.ts';
import type { TrainKernel } from '../runtime/program.ts';

const ROOT = resolve(import.meta.dirname, '..');
const MODEL = resolve(ROOT, '../shared/models/tiny-bamba-a/f32');
const DATA = resolve(ROOT, '../shared/corpus/train.txt');
const arg = (k: string, d: string) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1]! : d; };
const steps = Number(arg('--steps', '6')), threads = Number(arg('--threads', '2'));
const profile = process.argv.includes('--profile');

const c = compileFile(join(ROOT, 'models/bamba.arch'), { hfConfigData: loadConfig(join(MODEL, 'config.json')) });
const ckpt = openCheckpoint(MODEL);
const params = c.graph.weights.map((w) => newParam(w.name, w.shape, toF32(ckpt.read(w.name))));
ckpt.close();
const tok = (await loadTokenizer(MODEL))!;
const batches = [...take(packedBatches(DATA, tok, { seqLen: 256, batch: 4, seed: 0 }), steps)];

// per-op times, wrapping each record's forward and backward: wall ms and CPU ms of the process (all
// threads: on a loaded machine the CPU time is the steadier figure; with --threads 1 it is the op's own)
const times = new Map<string, number>(), cpus = new Map<string, number>();
if (profile) {
  for (const [op, rec] of Object.entries(OPS32)) {
    const f = rec.forward.bind(rec), b = rec.backward.bind(rec);
    const timed = <A extends unknown[], R>(key: string, fn: (...a: A) => R) => (...a: A): R => {
      const t0 = performance.now(), c0 = process.cpuUsage(), r = fn(...a), c1 = process.cpuUsage(c0);
      times.set(key, (times.get(key) ?? 0) + performance.now() - t0);
      cpus.set(key, (cpus.get(key) ?? 0) + (c1.user + c1.system) / 1000);
      return r;
    };
    Object.assign(rec, { forward: timed(`${op} fwd`, f), backward: timed(`${op} bwd`, b) });
  }
}

const { gemm, kernels } = await openWasmGemm(await wasmKernelVariants(), threads);
if (profile) {
  // the small products of attention and the SSD (Gemm.mm), counted apart inside their ops' times
  const mm = gemm.mm;
  Object.assign(gemm, { mm: (...a: Parameters<typeof mm>) => {
    const t0 = performance.now(), r = mm(...a);
    times.set('  (their small products)', (times.get('  (their small products)') ?? 0) + performance.now() - t0);
    return r;
  } });
}
const engine = new F32Engine(c.graph, gemm);
// a constant lr (a schedule far longer than the run), as the PyTorch side's
const config = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, steps: 1e9, warmup: 0, clip: 1 };
// the machine is shared: the load average beside each side's figure says what it ran against
const load = () => `load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;

/** Tokens/s, tokens and CPU seconds (all threads; `sys` in the kernel) of an engine's timed steps. */
interface Rate { rate: number; tokens: number; cpu: number; sys: number }

/** Whole steps of each engine from the checkpoint's weights over the batches, the engines taking
 *  turns step by step (a load that comes and goes falls on each alike): each one's tokens/s, the
 *  first step left out. */
function timeSteps(engines: readonly (readonly [string, TrainEngine])[]): Rate[] {
  console.log(`start: ${load()}`);
  const runs = engines.map(() => ({ state: { step: 0, tokens: 0, params: params.map((p) => newParam(p.name, p.shape, p.value.slice())) }, secs: 0, tokens: 0, cpu: 0, sys: 0 }));
  for (const [i, b] of batches.entries()) {
    engines.forEach(([what, e], j) => {
      const r = runs[j]!, t0 = performance.now(), c0 = process.cpuUsage();
      const m = trainStep(e, config, r.state, b);
      const dt = (performance.now() - t0) / 1000, c1 = process.cpuUsage(c0);
      if (i > 0) { r.secs += dt; r.tokens += b.tokens.length; r.cpu += (c1.user + c1.system) / 1e6; r.sys += c1.system / 1e6; }
      console.log(`${what} step ${i + 1}: ${b.tokens.length} tokens, loss ${m.loss.toFixed(4)}, ${dt.toFixed(3)} s`);
    });
    if (i === 0) for (const m of [times, cpus, ktimes, kcpus]) m.clear();
  }
  return runs.map((r) => ({ rate: r.tokens / r.secs, tokens: r.tokens, cpu: r.cpu, sys: r.sys }));
}

// the kernel program's train entry on the wasm backend (archc train --engine kernels), the same batches
process.env.ARCHC_THREADS = String(threads);
const be = process.argv.includes('--kernels') ? await trainEntryBackend(c, 'wasm') : null;
// its time per kernel family (a transposed product apart), as the f32 engine's per op
const ktimes = new Map<string, number>(), kcpus = new Map<string, number>();
/** `fn` timed into ktimes and kcpus under `key`. */
const timed = <R>(key: string, fn: () => R): R => {
  const t0 = performance.now(), c0 = process.cpuUsage(), r = fn(), c1 = process.cpuUsage(c0);
  ktimes.set(key, (ktimes.get(key) ?? 0) + performance.now() - t0);
  kcpus.set(key, (kcpus.get(key) ?? 0) + (c1.user + c1.system) / 1000);
  return r;
};
const entryEngine = be ? new TrainEntryEngine(be) : null;
if (profile && be && entryEngine) {
  const dispatch = CpuInvocation.prototype.dispatch;
  CpuInvocation.prototype.dispatch = function (this: CpuInvocation, k: TrainKernel) {
    timed(`${k.family}${k.family === 'matmul' && k.attrs.transposed ? ' (dX)' : ''}`, () => dispatch.call(this, k));
  };
  // the step outside the kernels (keys with a leading space stay out of the kernels' sum): the
  // masters stored into the backend, the whole step, the engine's step (the rest is the optimizer)
  const update = be.updateWeights.bind(be), step = entryEngine.step.bind(entryEngine);
  Object.assign(be, { updateWeights: (w: ReadonlyMap<string, Float32Array>) => timed(' updateWeights', () => update(w)) });
  Object.assign(entryEngine, { step: (...a: Parameters<typeof step>) => timed(' engine step', () => step(...a)) });
}
const [f32, k] = timeSteps([['archc', engine], ...(entryEngine ? [['kernels', entryEngine] as const] : [])]) as [Rate, Rate | undefined];
kernels.close();
const archc = f32.rate, { tokens, cpu, sys } = f32;
console.log(`archc f32 engine (wasm ${kernels.fma ? 'relaxed-SIMD FMA' : 'SIMD'} kernels, ${threads} threads): ${archc.toFixed(0)} tokens/s over ${batches.length - 1} steps; ${(tokens / cpu).toFixed(0)} tokens per CPU-second (all threads, ${(100 * sys / cpu).toFixed(0)} % in the kernel); ${load()}`);
printProfile('the f32 engine per op', times, cpus);
if (be && k) {
  const t = be.program.train!, b0 = batches[0]!;
  be.dispose();
  console.log(`archc train entry on the wasm backend (${be.threads} threads): ${k.rate.toFixed(0)} tokens/s over ${batches.length - 1} steps (${(k.rate / archc).toFixed(2)}x the f32 engine); `
    + `${(k.tokens / k.cpu).toFixed(0)} tokens per CPU-second; arena ${(arenaBytes(t, b0.tokens.length, b0.seqs.length) / 1e6).toFixed(1)} MB at T=${b0.tokens.length}, S=${b0.seqs.length} `
    + `(${t.kernels.length} kernels); ${load()}`);
  printProfile('the train entry per kernel family', ktimes, kcpus);
  if (profile) {
    // the step's wall time beside its kernels': where the rest goes
    const n = batches.length - 1, kernel = ([key]: [string, number]) => !key.startsWith(' ');
    const part = (step: number, engine: number, update: number, kernels: number) =>
      `${(step - kernels).toFixed(1)} of ${step.toFixed(1)} (kernels ${kernels.toFixed(1)}): updateWeights ${update.toFixed(1)}, `
      + `the entry's run beside its kernels (setup, gradients read out) ${(engine - update - kernels).toFixed(1)}, norm + clip + AdamW ${(step - engine).toFixed(1)}`;
    const of = (m: Map<string, number>, step: number) => part(step, (m.get(' engine step') ?? 0) / n, (m.get(' updateWeights') ?? 0) / n, [...m].filter(kernel).reduce((a, [, v]) => a + v, 0) / n);
    console.log(`the step outside the kernels, ms/step: ${of(ktimes, (1000 * k.tokens / k.rate) / n)}`);
    console.log(`  CPU ms/step (all threads): ${of(kcpus, (1000 * k.cpu) / n)}`);
  }
}

/** Times gathered per op or per kernel family. */
function printProfile(what: string, times: Map<string, number>, cpus: Map<string, number>): void {
  if (!profile) return;
  console.log(`${what}:`);
  const total = [...times].filter(([k]) => !k.startsWith(' ')).reduce((a, [, b]) => a + b, 0);
  const per = (v: number) => (v / (batches.length - 1)).toFixed(1).padStart(8);
  for (const [k, v] of [...times].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(24)} ${per(v)} ms/step ${(100 * v / total).toFixed(1).padStart(5)} %${cpus.has(k) ? `, ${per(cpus.get(k)!)} CPU ms/step` : ''}`);
  console.log(`  ${'all'.padEnd(24)} ${per(total)} ms/step, ${per([...cpus].filter(([k]) => !k.startsWith(' ')).reduce((a, [, b]) => a + b, 0))} CPU ms/step`);
}
if (!process.argv.includes('--no-torch')) {
  const r = spawnSync('/usr/bin/python3', [join(ROOT, 'bench/train_torch.py'), MODEL, String(steps), String(threads)], {
    input: JSON.stringify(batches.map((b) => ({ tokens: [...b.tokens], positions: [...b.positions], labels: [...b.labels], cu: [...b.cuSeqLens] }))),
    encoding: 'utf8', maxBuffer: 1 << 26,
  });
  process.stdout.write(r.stdout);
  console.log(`torch end: ${load()}`);
  if (r.status !== 0) { process.stderr.write(r.stderr); process.exit(1); }
  const torch = Number(/torch tokens\/s (\S+)/.exec(r.stdout)?.[1]), torchCpu = Number(/ (\S+) tokens per CPU-second/.exec(r.stdout)?.[1]);
  console.log(`ratio archc / torch: ${(archc / torch).toFixed(2)}x wall, ${(tokens / cpu / torchCpu).toFixed(2)}x per CPU-second`);
  if (k) console.log(`ratio train entry / torch: ${(k.rate / torch).toFixed(2)}x wall, ${(k.tokens / k.cpu / torchCpu).toFixed(2)}x per CPU-second`);
}

function* take<T>(it: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return;
  for (const x of it) { yield x; if (--n === 0) return; }
}
