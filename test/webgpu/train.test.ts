// The train entry on WebGPU (runtime/webgpu/train.ts, codegen/wgsl/train.ts) against the CPU
// backend's (runtime/cpu/train.ts runTrain, the oracle), on Dawn over SwiftShader:
// - whole: the loss within 1e-4 relative and the gradient's rel L2 (‖gpu − cpu‖₂ / ‖cpu‖₂, over all
//   weights at once and per weight) < 1e-4, on the tiny random Bamba tied (the adapter's rendering)
//   and untied (the rendering for GPUs), packed ragged [6, 3, 9] over chunk 4 (GQA, partial RoPE), and
//   a tiny Granite-4.0-H (its mixtures of experts) on [11, 3, 20] over chunk 8
//   (the trained tiny-bamba-a: train-trained.test.ts);
// - per family: every train-entry kernel of the train's own families, run alone on WebGPU on the
//   CPU's inputs of that moment (its outputs poisoned with NaN first), against the CPU's outputs:
//   rel L2 < 1e-4 per output, on the tiny Bamba and on two small models of the families Bamba lacks
//   (LayerNorm, GELU, clamp, a bias's reduce_rows; softmax, topk), GPT-2 and the std MoE block.
// A test that finds no adapter fails.

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { presetSets } from '../../compiler/presets.ts';
import type { Compiled } from '../../compiler/compile.ts';
import { initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import type { TrainBatch } from '../../runtime/cpu/train.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { type View, isBackward } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import { WebGpuTrainer } from '../../runtime/webgpu/train.ts';
import { compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { MODELS } from '../helpers/compile.ts';
import { SINK, packed, small, tinyGranite, tinyMoE } from '../grad/helpers.ts';
import { testDevice } from './gpu.ts';
import { TOL, backends, disposeBackends, expectTrainClose } from './train-helpers.ts';

const TIMEOUT = 120_000;
afterAll(disposeBackends);

const f32Of = (c: Compiled, seed: number) => new Map(randomTensors(c, { seed }).map((t) => [t.name, t.tensor.data as Float32Array]));
const initOf = (c: Compiled, seed: number) => new Map(initWeights(c.graph, createRng(seed), 'f32').map((t) => [t.name, t.tensor.data as Float32Array]));

/** ‖a − b‖₂ / ‖b‖₂ (‖a − b‖₂ where b is zero; NaN anywhere in a fails it). */
function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Number.isNaN(num) ? Infinity : den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Each train-family kernel alone on WebGPU, on the CPU's inputs, against the CPU's outputs; the
 *  worst rel L2 per family. */
async function families(c: Compiled, w: ReadonlyMap<string, Float32Array>, b: TrainBatch): Promise<Map<string, number>> {
  const { cpu, gpu, program } = await backends(c, w);
  const entry = program.train!;
  const pool = cpu.createStatePool(Math.max(...b.seqs.map((s) => s.len)));
  const slots = b.seqs.map(() => pool.acquire());
  const inv = cpu.beginTrain(entry, { ...b, slots, lengths: slots.map(() => 0) }, pool);
  const trainer = new WebGpuTrainer(gpu);
  await trainer.checkShaders();
  const run = trainer.begin(b);
  const worst = new Map<string, number>();
  try {
    for (const k of entry.kernels) {
      if (isBackward(k)) {
        for (const o of Object.values(k.inputs)) if ('buf' in o) run.write(o, inv.read(o));
        const outs = Object.entries(k.outputs) as [string, View][];
        for (const [, v] of outs) run.write(v, new Float32Array(inv.read(v).length).fill(NaN));
        run.dispatch(k);
      }
      inv.dispatch(k);
      if (!isBackward(k)) continue;
      for (const [name, v] of Object.entries(k.outputs)) {
        const e = relL2(await run.read(v), inv.read(v));
        expect(e, `${k.name} (${k.family}) output ${name}`).toBeLessThan(TOL);
        worst.set(k.family, Math.max(worst.get(k.family) ?? 0, e));
      }
    }
  } finally {
    run.end();
  }
  return worst;
}

const show = (what: string, m: Map<string, number>) => console.log(`${what}, WGSL families against the CPU's (worst rel L2): ${[...m].map(([f, e]) => `${f} ${e.toExponential(1)}`).join(', ')}`);


describe('the train entry on WebGPU against the CPU backend\'s', () => {
  it('tiny random Bamba, packed [6, 3, 9] over chunk 4 (the rendering for the adapter)', async () => {
    const c = compileTiny();
    await expectTrainClose('tiny Bamba', c, f32Of(c, 5), packed([6, 3, 9], 96, 12));
  }, TIMEOUT);

  it('tiny random Bamba, untied head, packed [6, 3, 9], in the rendering for GPUs (forward kernels reducing over workgroups)', async () => {
    const c = compileTiny({ tie: false });
    await expectTrainClose('tiny Bamba untied, gpu profile', c, f32Of(c, 5), packed([6, 3, 9], 96, 12), 'gpu');
  }, TIMEOUT);

  it('tiny Granite-4.0-H (2 of 6 experts behind each layer), packed [11, 3, 20] over chunk 8', async () => {
    const c = tinyGranite();
    await expectTrainClose('tiny Granite-4.0-H', c, initOf(c, 4), packed([11, 3, 20], 256, 10));
  }, TIMEOUT);
});

describe('each WGSL train family against the CPU\'s, kernel by kernel on the same inputs', () => {
  it('tiny Bamba: the loss, weight gradients, norms, embedding, conv, rope, attention, SSD', async () => {
    const c = compileTiny();
    const m = await families(c, f32Of(c, 7), packed([7, 2, 10, 5], 96, 21));
    show('tiny Bamba', m);
    expect([...m.keys()].sort()).toEqual(['attention_backward', 'attention_train', 'causal_lm_loss', 'clamp_backward', 'conv_backward', 'embedding_backward',
      'matmul_wgrad', 'reduce_rows', 'rmsnorm_backward', 'rmsnorm_gated_backward', 'rope_backward', 'ssd_backward']);
  }, TIMEOUT);

  it('LayerNorm with a bias, exact GELU, clamp, a biased linear; softmax and a normalized topk', async () => {
    const sink = small(SINK);
    const a = await families(sink, initOf(sink, 5), packed([5, 3, 6], 16, 8));
    const routing = small(`  gates, idx = topk(softmax(router: Linear(d, 4)(x)), k: 2, normalize: true)
  y = gl: Linear(2, d)(gates) + x
  return head(y, e.weight)
`);
    const r = await families(routing, initOf(routing, 6), packed([5, 3, 6], 16, 9));
    show('small models', new Map([...a, ...r]));
    for (const f of ['layernorm_backward', 'gelu_backward', 'clamp_backward', 'reduce_rows']) expect(a.has(f), f).toBe(true);
    for (const f of ['softmax_backward', 'topk_backward']) expect(r.has(f), f).toBe(true);
  }, TIMEOUT);

  it('the std MoE block, sigmoid gating renormalised: the experts\' backward', async () => {
    const c = tinyMoE('sigmoid', true), w = initOf(c, 8);
    const m = await families(c, w, packed([7, 2, 9], 40, 11));
    show('MoE', m);
    expect([...m.keys()].sort()).toEqual(['causal_lm_loss', 'embedding_backward', 'experts_backward', 'matmul_wgrad', 'topk_backward']);
  }, TIMEOUT);

  it('GPT-2 at its tiny preset: weights stored [in, out] (transposed weight gradients), the tanh GELU, LayerNorm', async () => {
    const file = join(MODELS, 'gpt2.arch');
    const c = compileFile(file, { set: [...presetSets(file, 'tiny'), 'n_layers=1'] });
    const vocab = c.graph.values[c.graph.outputs[0]!.value]!.type.shape.at(-1) as number;
    const m = await families(c, initOf(c, 3), packed([5, 3, 6], vocab, 4));
    show('GPT-2', m);
    for (const f of ['layernorm_backward', 'gelu_backward', 'attention_backward', 'matmul_wgrad']) expect(m.has(f), f).toBe(true);
    expect(c.graph.nodes.some((n) => n.op === 'linear' && n.attrs.transposed)).toBe(true);
  }, TIMEOUT);

  it('refuses a program rendered without its train entry (RT506)', async () => {
    const c = compileTiny();
    const program = lowerToProgram(c.graph, c.bindings, { train: true });
    const plain = renderProgram(lowerToProgram(c.graph, c.bindings));
    const { device, adapter } = await testDevice();
    const gpu = new WebGpuBackend(program, plain, device, adapter, false, {}, 'cpu');
    try {
      expect(() => new WebGpuTrainer(gpu)).toThrowError(RuntimeError);
      expect(() => new WebGpuTrainer(gpu)).toThrowError(/RT506: the WebGPU backend cannot run the train entry: its WGSL was rendered without the train entry/);
    } finally {
      gpu.dispose();
    }
  });
});
