// The optimizer's part of a training step alone, at tiny-bamba-a's parameters (5.07 M in 57 tensors,
// the shapes of bamba.arch at its config): the gradients' global norm and AdamW over every weight,
// in JS doubles (runtime/train/optim.ts) and on WebAssembly SIMD (runtime/train/optim-wasm.ts: the
// gradients copied in, then the kernels), the two taking turns step by step so that a load from
// other work falls on both alike. Prints the median ms and CPU ms a step of each, and checks that
// both ended with the same masters bit for bit.
//
// Run: nice -n 19 npx tsx bench/optim.ts [--steps N]

import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { adamwStep, clipFactor, globalNorm, newParam } from '../runtime/train/optim.ts';
import { WasmAdamW } from '../runtime/train/optim-wasm.ts';
import { createRng } from '../runtime/rng.ts';

const ROOT = resolve(import.meta.dirname, '..');
const MODEL = resolve(ROOT, '../shared/models/tiny-bamba-a/f32');
const steps = Number(process.argv[process.argv.indexOf('--steps') + 1] || 12);
const C = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

const { graph } = compileFile(join(ROOT, 'models/bamba.arch'), { hfConfigData: loadConfig(join(MODEL, 'config.json')) });
const rng = createRng(1), rand = (n: number, s: number) => Float32Array.from({ length: n }, () => s * (2 * rng.next() - 1));
const js = graph.weights.map((w) => newParam(w.name, w.shape, rand(w.shape.reduce((a, b) => a * b, 1), 0.05)));
const opt = WasmAdamW.open(js) ?? fail('no WebAssembly SIMD here');
const grads = [0, 1].map(() => new Map(js.map((p) => [p.name, rand(p.value.length, 1e-3)])));
console.log(`${js.reduce((a, p) => a + p.value.length, 0)} parameters in ${js.length} tensors; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

const times = { js: [] as number[][], wasm: [] as number[][] };
for (let t = 1; t <= steps; t++) {
  const g = grads[t % 2]!;
  for (const side of ['js', 'wasm'] as const) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    if (side === 'js') {
      const scale = clipFactor(globalNorm(g.values()), 1);
      for (const p of js) adamwStep(p, g.get(p.name)!, t, C.lr, C, scale);
    } else {
      opt.step(t, C.lr, C, clipFactor(opt.load(g), 1));
    }
    const c1 = process.cpuUsage(c0);
    if (t > 1) times[side].push([performance.now() - t0, (c1.user + c1.system) / 1000]);
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
for (const side of ['js', 'wasm'] as const) {
  console.log(`${side === 'js' ? 'optim.ts in JS doubles     ' : 'optim-wasm.ts (f64x2 SIMD)'}: ${median(times[side].map((x) => x[0]!)).toFixed(1)} ms, ${median(times[side].map((x) => x[1]!)).toFixed(1)} CPU ms a step (median of ${steps - 1})`);
}
const same = js.every((p, i) => Buffer.from(p.value.buffer).equals(Buffer.from(opt.params[i]!.value.slice().buffer)));
console.log(`the masters after ${steps} steps: ${same ? 'the same bit for bit' : 'DIFFERENT'}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

function fail(msg: string): never {
  throw new Error(msg);
}
