// Training steps on WebGPU, the two ways a page can take them, on one device and the same batch:
// `host`: the train entry's gradients read back (runtime/webgpu/train.ts runTrainAsync), clipping and
// AdamW in JS (runtime/train/optim.ts) and the masters uploaded again through a backend made for the
// step (so the derived weights are made again), as test/browser/train-page.ts did before the optimizer
// moved to the device; `device`: the whole step on the device (runtime/webgpu/optim.ts), reading back
// the loss and the norm. Seconds per step (the first of each left out: it compiles the pipelines) and
// bytes read back per step; tiny-bamba-a's shape, random init, a packed batch [66, 14] by default.
// Run: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/train-webgpu.ts [STEPS [LEN,LEN...]]
// (another model's config.json: ARCHC_BENCH_CONFIG=path). Writes bench/results/train-webgpu.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { initWeights } from '../compiler/init.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { renderProgram } from '../codegen/wgsl/render.ts';
import type { TrainBatch } from '../runtime/cpu/train.ts';
import { positionsFor } from '../runtime/engine.ts';
import { createRng } from '../runtime/rng.ts';
import { ADAMW_DEFAULTS, adamwStep, clipFactor, globalNorm, newParam } from '../runtime/train/optim.ts';
import { WebGpuBackend, createWebGpuBackend } from '../runtime/webgpu/backend.ts';
import { WebGpuOptimizer, f32Weights } from '../runtime/webgpu/optim.ts';
import { runTrainAsync } from '../runtime/webgpu/train.ts';

const CONFIG = process.env.ARCHC_BENCH_CONFIG ?? join(import.meta.dirname, '..', '..', 'shared', 'models', 'tiny-bamba-a', 'f32', 'config.json');
const STEPS = Number(process.argv[2] ?? 3);
const LENS = (process.argv[3] ?? '66,14').split(',').map(Number);
const LR = 1e-3;

const c = compileFile(join(import.meta.dirname, '..', 'models', 'bamba.arch'), { hfConfigData: loadConfig(CONFIG) });
const program = f32Weights(lowerToProgram(c.graph, c.bindings, { train: true }));
const wgsl = renderProgram(program);
const vocab = program.train!.outputs.logits!.width;
const T = LENS.reduce((a, b) => a + b, 0);
const seqs = LENS.map((len, i) => ({ start: LENS.slice(0, i).reduce((a, b) => a + b, 0), len }));
const rng = createRng(7);
const tokens = Int32Array.from({ length: T }, () => rng.nextU32() % vocab);
const labels = Int32Array.from(tokens);
for (const s of seqs) labels[s.start] = -100;
const batch: TrainBatch = { tokens, positions: positionsFor(seqs, T), seqs, labels };
const init = initWeights(c.graph, createRng(1), 'f32').map((w) => ({ name: w.name, shape: w.tensor.shape, value: w.tensor.data as Float32Array }));

const first = await createWebGpuBackend(program, wgsl);
const upload = (gpu: WebGpuBackend, get: (name: string) => Float32Array) => {
  for (const w of program.weights) gpu.uploadWeight(w, { dtype: 'f32', shape: w.shape, data: get(w.name) });
};
const seconds = async (step: () => Promise<number>): Promise<{ secs: number[]; losses: number[] }> => {
  const secs: number[] = [], losses: number[] = [];
  for (let s = 0; s <= STEPS; s++) {
    const t0 = performance.now();
    losses.push(await step());
    if (s > 0) secs.push((performance.now() - t0) / 1000);
  }
  return { secs, losses };
};

// host: gradients read back, AdamW in JS, a backend per step over the same device
const params = init.map((w) => newParam(w.name, w.shape, w.value));
let t = 0;
const host = await seconds(async () => {
  const gpu = new WebGpuBackend(program, wgsl, first.device, first.adapter, false, {}, first.profile);
  try {
    upload(gpu, (n) => params.find((p) => p.name === n)!.value);
    const r = await runTrainAsync(gpu, batch);
    const scale = clipFactor(globalNorm(r.grads.values()), 1);
    t += 1;
    for (const p of params) adamwStep(p, r.grads.get(p.name)!, t, LR, { ...ADAMW_DEFAULTS, lr: LR }, scale);
    return r.loss;
  } finally {
    gpu.dispose();
  }
});

// device: the whole step there
upload(first, (n) => init.find((w) => w.name === n)!.value);
const opt = new WebGpuOptimizer(first);
await opt.checkShaders();
opt.load(init.map((w) => newParam(w.name, w.shape, w.value)));
let u = 0;
const device = await seconds(async () => (await opt.step(batch, { ...ADAMW_DEFAULTS, lr: LR, t: ++u, clip: 1 })).loss);
opt.dispose();
first.dispose();

const C = program.train!.arena.C ?? 0;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result = {
  config: CONFIG, adapter: first.adapter, tokens: T, sequences: LENS, steps: STEPS, constantFloats: C,
  host: { secondsPerStep: median(host.secs), all: host.secs, losses: host.losses, bytesReadPerStep: 4 * C },
  device: { secondsPerStep: median(device.secs), all: device.secs, losses: device.losses, bytesReadPerStep: 4 * 16 },
};
console.log(`${CONFIG} on ${first.adapter}, T = ${T} in [${LENS}], ${STEPS} steps after one (median s/step):`);
console.log(`  host optimizer:   ${result.host.secondsPerStep.toFixed(2)} s/step (${host.secs.map((s) => s.toFixed(2)).join(', ')}), ${result.host.bytesReadPerStep.toLocaleString('en-US')} bytes read back a step; losses ${host.losses.map((l) => l.toFixed(4)).join(', ')}`);
console.log(`  device optimizer: ${result.device.secondsPerStep.toFixed(2)} s/step (${device.secs.map((s) => s.toFixed(2)).join(', ')}), ${result.device.bytesReadPerStep} bytes read back a step; losses ${device.losses.map((l) => l.toFixed(4)).join(', ')}`);
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(join(import.meta.dirname, 'results', 'train-webgpu.json'), JSON.stringify(result, null, 2) + '\n');
