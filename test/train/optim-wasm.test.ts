// AdamW and the global norm on WebAssembly SIMD (runtime/train/optim-wasm.ts) against optim.ts in JS
// doubles: the same masters, moments and norm bit for bit over random values of every kind (decay and
// none, clipping on and off, the first step and later ones, lengths that are not a multiple of four,
// magnitudes from 1e-9 to 1e3); and trainStep over an engine of f32 gradients takes them, its state's
// arrays moved into the optimizer's memory once.

import { describe, expect, it } from 'vitest';
import type { TrainEngine } from '../../runtime/train/engine.ts';
import { type ParamState, adamwStep, clipFactor, globalNorm, newParam } from '../../runtime/train/optim.ts';
import { WasmAdamW } from '../../runtime/train/optim-wasm.ts';
import { type TrainState, trainStep } from '../../runtime/train/trainer.ts';
import type { PackedBatch } from '../../runtime/train/data.ts';
import { prng } from '../helpers/random.ts';

const C = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
const SHAPES: readonly (readonly number[])[] = [[1], [3], [4], [7, 1], [13], [4, 16], [1029], [5, 7, 3], [2, 2]];

/** Values of every magnitude and sign from 1e-9 to 1e3, some exact zeros. */
function values(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => (r() < 0.05 ? 0 : (r() < 0.5 ? -1 : 1) * 10 ** (-9 + 12 * r())));
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
function expectSame(got: readonly ParamState[], want: readonly ParamState[], what: string): void {
  got.forEach((p, i) => {
    const q = want[i]!;
    for (const k of ['value', 'expAvg', 'expAvgSq'] as const) expect(bits(p[k]).equals(bits(q[k])), `${what}: ${p.name} [${p.shape}] ${k}`).toBe(true);
  });
}

describe('AdamW on WebAssembly SIMD', () => {
  it('gives the masters, moments and norm of optim.ts bit for bit', () => {
    const r = prng(20);
    const init = SHAPES.map((shape, i) => newParam(`w${i}`, shape, values(shape.reduce((a, b) => a * b, 1), r)));
    const js = init.map((p) => newParam(p.name, p.shape, p.value));
    const opt = WasmAdamW.open(init)!;
    expect(opt, 'this engine runs WebAssembly SIMD').not.toBeNull();
    // steps 1-5 at changing rates, with clipping (max norm far under the norm), without (over it), and off
    for (const [t, lr, maxNorm] of [[1, 1e-2, 1e-3], [2, 3e-3, 1e9], [3, 0, 0], [4, 5e-2, 0.5], [5, 1e-3, 1e-6]] as const) {
      const grads = new Map(init.map((p) => [p.name, values(p.value.length, r)]));
      const norm = opt.load(grads);
      expect(norm, `step ${t}: the norm`).toBe(globalNorm(grads.values()));
      const scale = clipFactor(norm, maxNorm);
      opt.step(t, lr, C, scale);
      for (const p of js) adamwStep(p, grads.get(p.name)!, t, lr, C, scale);
      expectSame(opt.params, js, `step ${t}, scale ${scale}`);
    }
    // the moments and masters moved, not shared with the arrays given
    expect(opt.params[0]!.value).not.toBe(init[0]!.value);
  });

  it('refuses gradients that do not match the parameters, naming the weight', () => {
    const opt = WasmAdamW.open([newParam('a', [3], [1, 2, 3])])!;
    expect(() => opt.load(new Map([['a', new Float32Array(4)]]))).toThrow(/gradient of 4 floats for a, whose weight has 3/);
    expect(() => opt.load(new Map([['b', new Float32Array(3)]]))).toThrow(/for b, which is no parameter/);
  });

  it('is what trainStep runs for f32 gradients: the state moved into its memory once, the steps those of optim.ts', () => {
    const r = prng(7);
    const shapes = [[6, 5], [5], [17]];
    const start = shapes.map((shape, i) => newParam(`p${i}`, shape, values(shape.reduce((a, b) => a * b, 1), r)));
    const steps = [0, 1, 2].map(() => new Map(start.map((p) => [p.name, values(p.value.length, r)])));
    let call = 0;
    const engine: TrainEngine = {
      weights: start.map((p) => ({ name: p.name, shape: p.shape })),
      step: () => ({ loss: 1, tokens: 4, grads: steps[call++]! }),
      evaluate: () => ({ loss: 1, tokens: 4 }),
    };
    const s: TrainState = { step: 0, tokens: 0, params: start.map((p) => newParam(p.name, p.shape, p.value)) };
    const want = start.map((p) => newParam(p.name, p.shape, p.value));
    const c = { ...C, steps: 10, warmup: 0, clip: 1 }, batch = { tokens: new Int32Array(5), epoch: 0 } as unknown as PackedBatch;
    const given = s.params, moved: (readonly ParamState[])[] = [];
    for (const [i, g] of steps.entries()) {
      const m = trainStep(engine, c, s, batch);
      moved.push(s.params);
      expect(m.grad_norm).toBe(globalNorm(g.values()));
      for (const p of want) adamwStep(p, g.get(p.name)!, i + 1, m.lr, c, clipFactor(m.grad_norm, c.clip));
      expectSame(s.params, want, `step ${i + 1}`);
    }
    expect(moved[0], 'the state\'s arrays moved into the optimizer\'s memory').not.toBe(given);
    expect(moved[1], 'moved once').toBe(moved[0]);
    expect(moved[2]).toBe(moved[0]);
  });
});
