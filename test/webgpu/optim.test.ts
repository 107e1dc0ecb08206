// Training steps whole on WebGPU (runtime/webgpu/optim.ts: the train entry, the gradients' norm,
// clipping and AdamW in one command buffer, the weights the forward reads made again on the device)
// against the same steps on the CPU (runtime/train/trainer.ts trainStep over the CPU backend's train
// entry and runtime/train/optim.ts in JS): a tiny random Bamba, packed ragged batches over chunk 4
// (two batches taken in turn), clip 1, weight decay 0.1, warmup 1 and the cosine decay. Every step's
// loss and gradient norm within 1e-4 relative, and after the steps every master and both moments
// within 1e-4 rel L2 per weight (and 2 steps of the untied model in the rendering for GPUs). A step
// whose loss is not finite changes nothing.

import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { TrainBatch } from '../../runtime/cpu/train.ts';
import type { PackedBatch } from '../../runtime/train/data.ts';
import { TrainEntryEngine } from '../../runtime/train/entry-engine.ts';
import { ADAMW_DEFAULTS, type ParamState, newParam, scheduledLr } from '../../runtime/train/optim.ts';
import { type TrainConfig, type TrainState, trainStep } from '../../runtime/train/trainer.ts';
import { WebGpuOptimizer } from '../../runtime/webgpu/optim.ts';
import type { Compiled } from '../../compiler/compile.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { compareGrads, packed } from '../grad/helpers.ts';
import { TOL, backends, disposeBackends } from './train-helpers.ts';

afterAll(disposeBackends);

const STEPS = 4;
const config: TrainConfig = { ...ADAMW_DEFAULTS, lr: 1e-2, steps: STEPS, warmup: 1, clip: 1 };
const asPacked = (b: TrainBatch): PackedBatch => ({ ...b, seqIdx: new Int32Array(0), cuSeqLens: new Int32Array(0), maxLength: 0, rows: 1, bytes: 0, epoch: 0 }) as PackedBatch;
const fresh = (init: ReadonlyMap<string, Float32Array>, names: readonly { name: string; shape: readonly number[] }[]): ParamState[] =>
  names.map((w) => newParam(w.name, w.shape, init.get(w.name)!));
const byName = (ps: readonly ParamState[], f: (p: ParamState) => Float32Array) => new Map(ps.map((p) => [p.name, f(p)]));

/** `steps` steps on the device and on the CPU from the same weights, compared step by step and at
 *  the end; returns what further checks need (the optimizer is the caller's to dispose). */
async function stepsAgainstCpu(what: string, c: Compiled, steps: number, profile?: WgslProfile) {
  const init = new Map(randomTensors(c, { seed: 5 }).map((t) => [t.name, t.tensor.data as Float32Array]));
  const batches = [packed([6, 3, 9], 96, 12), packed([5, 8, 2, 4], 96, 13)];
  const { gpu, program } = await backends(c, init, profile);
  const engine = new TrainEntryEngine(new CpuBackend(program));
  const opt = new WebGpuOptimizer(gpu);
  await opt.checkShaders();
  const want: TrainState = { step: 0, tokens: 0, params: fresh(init, program.weights) };
  const got = fresh(init, program.weights);
  opt.load(got);
  const cfg = { ...config, steps };
  for (let s = 0; s < steps; s++) {
    const b = batches[s % 2]!;
    const m = trainStep(engine, cfg, want, asPacked(b));
    const r = await opt.step(b, { ...cfg, lr: scheduledLr(cfg.lr, s, cfg.warmup, cfg.steps), t: s + 1 });
    console.log(`${what}, step ${s + 1}: loss ${r.loss.toFixed(6)} (CPU ${m.loss.toFixed(6)}), norm ${r.norm.toFixed(6)} (CPU ${m.grad_norm.toFixed(6)})`);
    expect(r.updated).toBe(true);
    expect(r.tokens).toBe(b.labels.filter((y, t) => t > 0 && y !== -100).length);
    expect(Math.abs(r.loss - m.loss) / m.loss, `step ${s + 1} loss`).toBeLessThan(TOL);
    expect(Math.abs(r.norm - m.grad_norm) / m.grad_norm, `step ${s + 1} norm`).toBeLessThan(TOL);
  }
  await opt.read(got);
  for (const [name, f] of [['masters', (p: ParamState) => p.value], ['exp_avg', (p: ParamState) => p.expAvg], ['exp_avg_sq', (p: ParamState) => p.expAvgSq]] as const) {
    const e = compareGrads(byName(got, f), byName(want.params, f));
    console.log(`${what}, after ${steps} steps, ${name}: rel L2 ${e.all.toExponential(2)}, worst weight ${e.name} ${e.worst.toExponential(2)}`);
    expect(e.worst, `${name}: ${e.name}`).toBeLessThan(TOL);
  }
  return { opt, engine, want, init, batches, program };
}

describe('training steps whole on WebGPU against the CPU train entry and optim.ts', () => {
  it(`${STEPS} steps of a tiny Bamba on packed ragged batches: losses, norms, masters and moments; a step that is not finite changes nothing`, async () => {
    const { opt, engine, want, init, batches, program } = await stepsAgainstCpu('tiny Bamba', compileTiny(), STEPS);
    try {
      // the weights the forward reads are the masters: the loss after the steps is the CPU's there
      const after = await opt.evaluate(batches[0]!), cpuAfter = engine.evaluate(byName(want.params, (p) => p.value), asPacked(batches[0]!));
      expect(Math.abs(after.loss - cpuAfter.loss) / cpuAfter.loss, 'loss after the steps').toBeLessThan(TOL);
      expect(after.loss).toBeLessThan(engine.evaluate(init, asPacked(batches[0]!)).loss);

      // a step whose loss is not finite updates nothing
      const bad = fresh(init, program.weights);
      bad.find((p) => p.name.includes('embed'))!.value.fill(NaN);
      opt.load(bad);
      const r = await opt.step(batches[0]!, { ...config, lr: 1e-2, t: 1 });
      expect(r.updated).toBe(false);
      const back = fresh(init, program.weights);
      await opt.read(back);
      for (const p of back) expect(Array.from(p.expAvg).every((v) => v === 0), `${p.name}: moments untouched`).toBe(true);
    } finally {
      opt.dispose();
    }
  }, 180_000);

  it('2 steps of a tiny Bamba with an untied head, in the rendering for GPUs', async () => {
    const { opt } = await stepsAgainstCpu('tiny Bamba untied, gpu profile', compileTiny({ tie: false }), 2, 'gpu');
    opt.dispose();
  }, 180_000);
});
