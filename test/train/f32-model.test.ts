// The f32 training engine (runtime/train/f32/, products on the wasm GEMM with 2 threads) on whole
// models against the float64 reference (compiler/grad.ts lossGradients, itself checked against
// finite differences in test/grad/): the tiny random Bamba, tied and untied, on packed ragged
// sequences crossing chunk boundaries; the trained tiny-bamba-a on one short packed batch; and
// packed = separate (the packed gradient is the token-weighted sum of each sequence's alone).
// Measures: the loss's relative error; the gradient's ‖got − ref‖₂ / ‖ref‖₂ over all weights at
// once and per weight, both < 1e-5.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { type GradBatch, lossGradients } from '../../compiler/grad.ts';
import type { PackedBatch } from '../../runtime/train/data.ts';
import type { Gemm } from '../../runtime/train/f32/gemm.ts';
import { newParam } from '../../runtime/train/optim.ts';
import { evaluate } from '../../runtime/train/trainer.ts';
import { F32Engine, openWasmGemm } from '../../runtime/train/f32/engine.ts';
import type { WasmKernels } from '../../runtime/wasm/kernels.ts';
import { compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { compareGrads, evalTextBatch, packed, packedVsSeparate, trainedTinyBamba } from '../grad/helpers.ts';

let wasm: { gemm: Gemm; kernels: WasmKernels };
beforeAll(async () => { wasm = await openWasmGemm(await wasmKernelVariants(), 2); });
afterAll(() => wasm.kernels.close());

function check(what: string, graph: Parameters<typeof lossGradients>[0], w32: Map<string, Float32Array>, b: GradBatch): void {
  const ref = lossGradients(graph, new Map([...w32].map(([n, v]) => [n, Float64Array.from(v)])), b);
  const got = new F32Engine(graph, wasm.gemm).lossGradients(w32, b);
  expect(got.tokens).toBe(ref.tokens);
  expect(Math.abs(got.loss - ref.loss) / ref.loss, `${what}: loss ${got.loss} vs ${ref.loss}`).toBeLessThan(1e-6);
  const e = compareGrads(got.grads, ref.grads!);
  console.log(`${what}: loss ${got.loss.toFixed(6)} (ref ${ref.loss.toFixed(6)}); gradient rel L2 ${e.all.toExponential(2)}, worst weight ${e.name} ${e.worst.toExponential(2)}`);
  expect(e.all, `${what}: all weights`).toBeLessThan(1e-5);
  expect(e.worst, `${what}: ${e.name}`).toBeLessThan(1e-5);
}

describe('f32 engine whole-model gradients against the float64 reference', () => {
  for (const tie of [true, false]) it(`tiny random Bamba${tie ? '' : ', untied head'}, packed [6, 3, 9] over chunk 4`, () => {
    const c = compileTiny({ tie });
    const w = new Map(randomTensors(c, { seed: 5 }).map((t) => [t.name, Float32Array.from(t.tensor.data as Float32Array)]));
    check(`tiny Bamba${tie ? '' : ' untied'}`, c.graph, w, packed([6, 3, 9], 96, 12));
  });

  it('trained tiny-bamba-a, eval text packed as [66, 14] (the first across its 64-token chunk)', () => {
    const { c, w } = trainedTinyBamba();
    check('tiny-bamba-a', c.graph, w, evalTextBatch());
  }, 120_000);

  it('tiny-bamba-a\'s gradients are the same, bit for bit, on 1 and 2 threads (its large products split over them, its SSD\'s and attention\'s heads and conv backward\'s sequences shared)', async () => {
    const { c, w } = trainedTinyBamba();
    const b = packed([40, 25, 31], 264, 41);
    const one = await openWasmGemm(await wasmKernelVariants(), 1);
    try {
      const a = new F32Engine(c.graph, one.gemm).lossGradients(w, b), r = new F32Engine(c.graph, wasm.gemm).lossGradients(w, b);
      expect(r.loss).toBe(a.loss);
      for (const [n, g] of a.grads) expect(Buffer.from(r.grads.get(n)!.buffer).equals(Buffer.from(g.buffer)), n).toBe(true);
    } finally {
      one.kernels.close();
    }
  }, 60_000);

  it('an evaluation batch with nothing to predict (a file\'s 1-token tail) weighs nothing', () => {
    const c = compileTiny();
    const w = new Map(randomTensors(c, { seed: 9 }).map((t) => [t.name, Float32Array.from(t.tensor.data as Float32Array)]));
    const e = new F32Engine(c.graph, wasm.gemm), b = packed([5, 4], 96, 3);
    const one = { tokens: Int32Array.of(7), positions: Int32Array.of(0), seqs: [{ start: 0, len: 1 }], labels: Int32Array.of(-100) };
    expect(e.evaluate(w, one)).toMatchObject({ loss: 0, tokens: 0 });
    const s = { step: 0, tokens: 0, params: [...w].map(([name, v]) => newParam(name, c.graph.weights.find((x) => x.name === name)!.shape, v)) };
    const whole = evaluate(e, s, [{ ...b, bytes: 9 }, { ...one, bytes: 1 }] as unknown as PackedBatch[]);
    expect(whole.loss).toBeCloseTo(e.evaluate(w, b).loss, 12);
    expect(Number.isFinite(whole.bitsPerByte)).toBe(true);
  });

  it('an engine reused step after step (its arrays from the step pool) equals a fresh one, bit for bit', () => {
    const c = compileTiny();
    const w = new Map(randomTensors(c, { seed: 11 }).map((t) => [t.name, Float32Array.from(t.tensor.data as Float32Array)]));
    const e = new F32Engine(c.graph, wasm.gemm), batches = [packed([6, 3, 9], 96, 31), packed([4, 14], 96, 32), packed([18], 96, 33)];
    // every batch after a different one (pool arrays of the same lengths, stale contents), then alone
    const reused = [...batches, batches[0]!].map((b) => e.lossGradients(w, b));
    const first = reused[0]!;
    reused.slice(1).forEach((r, i) => {
      const fresh = new F32Engine(c.graph, wasm.gemm).lossGradients(w, [...batches, batches[0]!][i + 1]!);
      expect(r.loss).toBe(fresh.loss);
      for (const [n, g] of fresh.grads) expect(Buffer.from(r.grads.get(n)!.buffer).equals(Buffer.from(g.buffer)), n).toBe(true);
    });
    // what a step returned stays as it was after later steps
    expect(first.loss).toBe(reused[3]!.loss);
    for (const [n, g] of reused[3]!.grads) expect(Buffer.from(first.grads.get(n)!.buffer).equals(Buffer.from(g.buffer)), n).toBe(true);
  });

  it('packed = separate: the packed gradient is Σ (n_s / N) ∇L_s over its sequences alone (rel L2 < 1e-6)', () => {
    const c = compileTiny();
    const w = new Map(randomTensors(c, { seed: 7 }).map((t) => [t.name, Float32Array.from(t.tensor.data as Float32Array)]));
    const e = new F32Engine(c.graph, wasm.gemm);
    const r = packedVsSeparate((b) => e.lossGradients(w, b), packed([7, 2, 10, 5], 96, 21));
    console.log(`packed = separate: rel L2 ${r.all.toExponential(2)} (worst weight ${r.name} ${r.worst.toExponential(2)})`);
    expect(r.all).toBeLessThan(1e-6);
  });
});
