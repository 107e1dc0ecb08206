// The train entry of the kernel program (compiler/kernel/train.ts) run by the CPU backend
// (runtime/cpu/train.ts) against the float64 reference (compiler/grad.ts lossGradients): the tiny
// random Bamba, tied and untied, on packed ragged sequences crossing chunk boundaries (GQA, partial
// RoPE); every other shipped model at its tiny preset; Granite-4.0-H's and the std block's mixtures of
// experts; models of the lowerings no shipped one reaches (the routing ops among them); the
// trained tiny-bamba-a on a packed batch whose first sequence crosses its 64-token chunk.
// Measures: the loss's relative error; the gradient's ‖got − ref‖₂ / ‖ref‖₂ over all weights at once
// and per weight, both < 1e-5. Also: the memory plan reuses the train entry's buffers, and an op
// whose VJP record has no kernel lowering (a record stripped of it here) is refused with AC412.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompileError } from '../../dsl/diagnostics.ts';
import { type Compiled, compileFile } from '../../compiler/compile.ts';
import { type GradBatch, lossGradients } from '../../compiler/grad.ts';
import { initWeights } from '../../compiler/init.ts';
import { arenaBytes } from '../../compiler/kernel/memory.ts';
import { printProgram } from '../../compiler/kernel/printer.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type OpVjp, VJP } from '../../compiler/vjp.ts';
import { presetSets } from '../../compiler/presets.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { runTrain } from '../../runtime/cpu/train.ts';
import { createRng } from '../../runtime/rng.ts';
import { compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { MODELS } from '../helpers/compile.ts';
import { SINK, compareGrads, evalTextBatch, packed, packedVsSeparate, small, tinyGranite, tinyMoE, trainedTinyBamba } from './helpers.ts';

/** The train entry's loss and gradients on the CPU backend against lossGradients, f32 weights. */
/** A CPU backend holding the model's program with its train entry and the weights `w32`. */
function backendOf(c: Compiled, w32: ReadonlyMap<string, Float32Array>): CpuBackend {
  const be = new CpuBackend(lowerToProgram(c.graph, c.bindings, { train: true }));
  for (const w of be.program.weights) be.uploadWeight(w, { dtype: 'f32', shape: w.shape, data: w32.get(w.name)! });
  return be;
}

function check(what: string, c: Compiled, w32: ReadonlyMap<string, Float32Array>, b: GradBatch): void {
  const be = backendOf(c, w32), p = be.program;
  const got = runTrain(be, b);
  const ref = lossGradients(c.graph, new Map([...w32].map(([n, v]) => [n, Float64Array.from(v)])), b);
  expect(got.tokens).toBe(ref.tokens);
  expect(Math.abs(got.loss - ref.loss) / ref.loss, `${what}: loss ${got.loss} vs ${ref.loss}`).toBeLessThan(1e-6);
  expect([...got.grads.keys()].sort()).toEqual([...ref.grads!.keys()].sort());
  const e = compareGrads(got.grads, ref.grads!);
  const T = b.tokens.length, S = b.seqs.length;
  console.log(`${what}: loss ${got.loss.toFixed(6)} (ref ${ref.loss.toFixed(6)}); gradient rel L2 ${e.all.toExponential(2)}, worst weight ${e.name} ${e.worst.toExponential(2)}; `
    + `${p.train!.kernels.length} kernels, arena ${arenaBytes(p.train!, T, S)} bytes at T=${T}, S=${S}`);
  expect(e.all, `${what}: all weights`).toBeLessThan(1e-5);
  expect(e.worst, `${what}: ${e.name}`).toBeLessThan(1e-5);
}

const f32Of = (c: Compiled, seed: number) => new Map(randomTensors(c, { seed }).map((t) => [t.name, t.tensor.data as Float32Array]));
/** initWeights' f32 weights (any model's: randomTensors' SSM changes are Bamba's). */
const initOf = (c: Compiled, seed: number) => new Map(initWeights(c.graph, createRng(seed), 'f32').map((t) => [t.name, t.tensor.data as Float32Array]));

describe('the train entry on the CPU backend against the float64 reference', () => {
  for (const tie of [true, false]) it(`tiny random Bamba${tie ? '' : ', untied head'}, packed [6, 3, 9] over chunk 4`, () => {
    const c = compileTiny({ tie });
    check(`tiny Bamba${tie ? '' : ' untied'}`, c, f32Of(c, 5), packed([6, 3, 9], 96, 12));
  });

  // the golden listings' shapes (test/compiler/kernel/program.test.ts) at the tiny preset: LayerNorm,
  // GELU, Conv1D weights and learned positions (GPT-2), QK-norm (Qwen3), relu2 (Nemotron-H), µP scales (Falcon-H1)
  const MODELS_SET: Record<string, string[]> = {
    gpt2: ['n_layers=2'], llama: ['n_layers=2'], qwen3: ['n_layers=2'], mamba2: ['n_layers=2'], nemotron_h: ['layer_pattern=M*-'],
    falcon_h1: ['n_layers=1', 'embedding_mult=2.0', 'ssm_mults=[0.5, 1.5, 0.75, 1.25, 0.6]'],
  };
  for (const [model, set] of Object.entries(MODELS_SET)) it(`${model} (tiny preset), packed [5, 3, 6]`, () => {
    const file = join(MODELS, `${model}.arch`);
    const c = compileFile(file, { set: [...presetSets(file, 'tiny'), ...set] });
    check(model, c, initOf(c, 3), packed([5, 3, 6], c.graph.values[c.graph.outputs[0]!.value]!.type.shape.at(-1) as number, 4));
  });

  it('the lowerings no shipped model reaches: a product by a broadcast weight, sigmoid, exact GELU, clamp, LayerNorm with a bias, a biased linear, exp', () => {
    const c = small(SINK);
    expect(new Set(c.graph.nodes.map((n) => n.op))).toEqual(new Set(['embedding', 'mul', 'sigmoid', 'gelu', 'add', 'clamp', 'layernorm', 'linear', 'split', 'relu2', 'neg', 'exp', 'scale', 'head']));
    check('sink', c, initOf(c, 5), packed([5, 3, 6], 16, 8));
  });

  it('the routing ops: softmax, a normalized topk, rows gathered and scattered back by its indices', () => {
    const c = small(`  gates, idx = topk(softmax(router: Linear(d, 4)(x)), k: 2, normalize: true)
  back = scatter(gather(reshape(proj: Linear(d, 4 * d)(x), dims: [4, d]), idx), idx, rows: 4)
  y = out: Linear(4 * d, d)(reshape(back, dims: [4 * d])) + gl: Linear(2, d)(gates)
  return head(y, e.weight)
`);
    check('routing', c, initOf(c, 6), packed([5, 3, 6], 16, 9));
  });

  // the grouped experts' backward (experts_backward) behind each router: top-k then softmax (Granite,
  // with a shared expert), softmax over all then top-k, sigmoid renormalised
  it('tiny Granite-4.0-H (Mamba-2 and attention layers, 2 of 6 experts), packed [11, 3, 20] over chunk 8', () => {
    const c = tinyGranite();
    check('tiny Granite-4.0-H', c, initOf(c, 4), packed([11, 3, 20], 256, 10));
  });

  for (const [gating, renorm] of [['softmax', false], ['sigmoid', true]] as const) it(`the std MoE block, ${gating} gating${renorm ? ' renormalised' : ''}, packed [7, 2, 9]`, () => {
    const c = tinyMoE(gating, renorm);
    check(`MoE ${gating}`, c, initOf(c, 8), packed([7, 2, 9], 40, 11));
  });

  it('packed = separate: the packed gradient is Σ (n_s / N) ∇L_s over its sequences alone (rel L2 < 1e-6)', () => {
    const c = compileTiny(), w = f32Of(c, 7), be = backendOf(c, w);
    const r = packedVsSeparate((b) => runTrain(be, b), packed([7, 2, 10, 5], 96, 21));
    console.log(`train entry, packed = separate: rel L2 ${r.all.toExponential(2)} (worst weight ${r.name} ${r.worst.toExponential(2)})`);
    expect(r.all).toBeLessThan(1e-6);
  });

  it('trained tiny-bamba-a, eval text packed as [66, 14] (the first across its 64-token chunk)', () => {
    const { c, w } = trainedTinyBamba();
    check('tiny-bamba-a', c, w, evalTextBatch());
  }, 60_000);
});

describe('the train entry as a program', () => {
  const c = compileTiny();
  const p = lowerToProgram(c.graph, c.bindings, { train: true });
  const t = p.train!;

  it('is produced only when asked: inference programs are unchanged', () => {
    const plain = lowerToProgram(c.graph, c.bindings);
    expect(plain.train).toBeUndefined();
    expect(printProgram(plain)).toBe(printProgram({ ...p, train: undefined }));
  });

  it('outputs the loss, the logits and a gradient for every weight; saved activations and cotangents share the arena', () => {
    expect(Object.keys(t.outputs).sort()).toEqual(['logits', 'loss', ...c.graph.weights.map((w) => `grad:${w.name}`)].sort());
    // the plan, in floats: every buffer apart against the arena that reuses them
    const T = 18, S = 3;
    const apart = 4 * t.buffers.reduce((n, b) => n + b.width * (b.rows === 'T' ? T : b.rows === 'S' ? S : 1), 0);
    const planned = arenaBytes(t, T, S), rowFloats = t.buffers.reduce((n, b) => n + (b.rows === 'T' ? b.width : 0), 0);
    console.log(`tiny Bamba train entry: ${t.kernels.length} kernels, ${t.buffers.length} buffers; arena ${planned} bytes at T=${T}, S=${S} (${apart} unplanned); `
      + `${t.arena.T} floats per token for ${rowFloats} of token rows`);
    expect(planned).toBeLessThan(apart);
    // activations and cotangents, a row per token: most of them share floats with others
    expect(t.arena.T).toBeLessThan(rowFloats / 2);
    // the weight gradients are constant rows of their own region: they do not grow with S
    expect(t.arena.S).toBe(0);
    expect(arenaBytes(t, T, 100)).toBe(planned);
  });

  it('lowers the backward of every op (an op added without one fails here)', () => {
    expect(Object.keys(VJP).filter((op) => !VJP[op]!.lowerBackward)).toEqual([]);
  });

  it('refuses an op whose VJP record has no kernel lowering with AC412, naming the op and its place', () => {
    const moe = tinyGranite(), table = VJP as Record<string, OpVjp>, rec = table.experts!;
    let err: unknown;
    // the experts' record without its lowering: the mechanism every op without one goes through
    table.experts = { forward: rec.forward, backward: rec.backward };
    try { lowerToProgram(moe.graph, moe.bindings, { train: true }); } catch (e) { err = e; } finally { table.experts = rec; }
    expect(err).toBeInstanceOf(CompileError);
    const d = (err as CompileError).diagnostics[0]!;
    expect(d.code).toBe('AC412');
    expect(d.message).toMatch(/cannot differentiate experts \(in model\.layers\.1\.block_sparse_moe\)/);
    expect(d.span?.file).toMatch(/\.arch$/);
    expect(lowerToProgram(moe.graph, moe.bindings, { train: true }).train!.kernels.filter((k) => k.family === 'experts_backward')).toHaveLength(2);
  });
});
