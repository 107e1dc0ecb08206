// One training step and evaluation on the float64 reference engine, in process: the step's norm is
// the gradients' global norm and the update is AdamW's on them (clipped); evaluation's bits per byte
// are the batches' summed nats over their bytes; a non-finite loss is RT602 with nothing updated.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lossGradients } from '../../compiler/grad.ts';
import { referenceEngine } from '../../cli/train.ts';
import { initWeights } from '../../compiler/init.ts';
import { createRng } from '../../runtime/rng.ts';
import { loadTokenizer } from '../../runtime/tokenizer.ts';
import { packedBatches } from '../../runtime/train/data-rows.ts';
import { adamwStep, clipFactor, globalNorm, newParam } from '../../runtime/train/optim.ts';
import { type TrainState, evaluate, trainStep, weightsOf } from '../../runtime/train/trainer.ts';
import { ROOT, compileTiny } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-train-loop-');
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const C = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, steps: 4, warmup: 0, clip: 0.5 };

async function setup() {
  const g = compileTiny({ vocab: 264 }).graph;
  const fresh = (): TrainState => ({ step: 0, tokens: 0, params: initWeights(g, createRng(2), 'f32').map((w) => newParam(w.name, w.tensor.shape, w.tensor.data as Float32Array)) });
  const file = join(tmp(), 'd.txt');
  writeFileSync(file, 'one small text<|endoftext|>and another, a little longer<|endoftext|>the third');
  const tok = (await loadTokenizer(TOKENIZER))!;
  return { g, fresh, batches: () => packedBatches(file, tok, { seqLen: 16, batch: 2, seed: 1, once: true }) };
}

describe('the training step', () => {
  it('clips the reference gradients by their global norm and applies AdamW to them', async () => {
    const { g, fresh, batches } = await setup();
    const s = fresh(), want = fresh();
    const b = batches().next().value!;
    const ref = lossGradients(g, new Map([...weightsOf(want)].map(([k, v]) => [k, Float64Array.from(v)])), b);
    const m = trainStep(referenceEngine(g, lossGradients), C, s, b);
    const norm = globalNorm(ref.grads!.values());
    expect(m.grad_norm).toBe(norm);
    expect(m.loss).toBe(ref.loss);
    expect(m.tokens).toBe(ref.tokens);
    expect(clipFactor(norm, C.clip)).toBeLessThan(1); // the clipping is exercised
    for (const p of want.params) adamwStep(p, ref.grads!.get(p.name)!, 1, C.lr, C, clipFactor(norm, C.clip));
    s.params.forEach((p, i) => expect(Array.from(p.value), p.name).toEqual(Array.from(want.params[i]!.value)));
  });

  it('evaluates bits per byte as the summed nats over the bytes', async () => {
    const { g, fresh, batches } = await setup();
    const s = fresh();
    const e = evaluate(referenceEngine(g, lossGradients), s, batches());
    let nats = 0, bytes = 0, tokens = 0;
    for (const b of batches()) {
      const r = lossGradients(g, new Map([...weightsOf(s)].map(([k, v]) => [k, Float64Array.from(v)])), b, { grads: false });
      nats += r.loss * r.tokens;
      tokens += r.tokens;
      bytes += b.bytes;
    }
    expect(e.tokens).toBe(tokens);
    expect(Math.abs(e.bitsPerByte - nats / Math.LN2 / bytes)).toBeLessThan(1e-12 * e.bitsPerByte);
    expect(bytes).toBe(new TextEncoder().encode('one small textand another, a little longerthe third').length + 3 * '<|endoftext|>'.length);
  });

  it('refuses a step whose loss is not finite (RT602), updating nothing', async () => {
    const { g, fresh, batches } = await setup();
    const s = fresh();
    s.params[0]!.value.fill(NaN);
    const before = s.params.map((p) => Array.from(p.value));
    expect(() => trainStep(referenceEngine(g, lossGradients), C, s, batches().next().value!)).toThrowError(expect.objectContaining({ code: 'RT602' }));
    expect(s.step).toBe(0);
    s.params.forEach((p, i) => expect(Array.from(p.value)).toEqual(before[i]));
  });
});
