// causalLmLoss against hand-computed cases and a direct computation written differently:
// softmax probabilities by explicit exponentials of the unshifted logits, then -log p.

import { describe, expect, it } from 'vitest';
import { causalLmLoss } from '../../runtime/loss.ts';
import { createRng } from '../../runtime/rng.ts';
import { expectRuntimeError } from '../helpers/errors.ts';

const LN2 = Math.log(2);

/** Direct: p = exp(x_y) / Σ exp(x) per counted row (fine for the small logits used here). */
function direct(logits: Float32Array, T: number, V: number, labels: Int32Array, coef: number): { loss: number; tokens: number; zLoss: number } {
  const rows = Array.from({ length: T }, (_, t) => Array.from(logits.subarray(t * V, (t + 1) * V)));
  const z = rows.map((r) => Math.log(r.reduce((s, x) => s + Math.exp(x), 0)));
  const pairs = rows.slice(0, -1).map((r, t) => [r, labels[t + 1]] as const).filter(([, y]) => y !== -100);
  const ce = pairs.map(([r, y]) => -Math.log(Math.exp(r[y]) / r.reduce((s, x) => s + Math.exp(x), 0)));
  const mean = ce.reduce((a, b) => a + b, 0) / ce.length;
  const zLoss = z.reduce((a, b) => a + b * b, 0) / T;
  return { loss: mean + coef * zLoss, tokens: ce.length, zLoss };
}

describe('causalLmLoss', () => {
  it('shifts labels: row t predicts labels[t + 1] (hand-computed)', () => {
    // V = 2. Row 0 = [0, 0] predicts labels[1] = 0: -log(1/2) = ln 2.
    // Row 1 = [ln 3, 0] predicts labels[2] = 1: -log(1/4) = 2 ln 2. Row 2 predicts nothing.
    const logits = Float32Array.of(0, 0, Math.log(3), 0, 9, -9);
    const r = causalLmLoss(logits, 3, 2, Int32Array.of(1, 0, 1));
    expect(r.tokens).toBe(2);
    expect(r.loss).toBeCloseTo(1.5 * LN2, 6);
    expect(r.zLoss).toBeUndefined();
  });

  it('ignores -100 labels, including the first (which no row uses anyway)', () => {
    const logits = Float32Array.of(0, 0, Math.log(3), 0, 1, 2);
    const r = causalLmLoss(logits, 3, 2, Int32Array.of(-100, -100, 1));
    expect(r.tokens).toBe(1);
    expect(r.loss).toBeCloseTo(2 * LN2, 6);
    // labels[0] never counts: changing it changes nothing.
    expect(causalLmLoss(logits, 3, 2, Int32Array.of(0, -100, 1))).toEqual(r);
  });

  it('adds coef × mean over all rows of logsumexp² (hand-computed)', () => {
    // Rows [0, 0] and [ln 3, 0]: logsumexp ln 2 and ln 4; zLoss = (ln²2 + 4 ln²2) / 2 = 2.5 ln²2.
    // Only row 0 is counted (labels[1] = 1): CE = ln 2; the ignored last row still enters zLoss.
    const logits = Float32Array.of(0, 0, Math.log(3), 0);
    const r = causalLmLoss(logits, 2, 2, Int32Array.of(-100, 1), 0.1);
    expect(r.tokens).toBe(1);
    expect(r.zLoss!).toBeCloseTo(2.5 * LN2 * LN2, 6);
    expect(r.loss).toBeCloseTo(LN2 + 0.1 * 2.5 * LN2 * LN2, 6);
  });

  it('matches a direct computation on random inputs', () => {
    const rng = createRng(3);
    for (let trial = 0; trial < 20; trial++) {
      const T = 1 + (rng.nextU32() % 12);
      const V = 2 + (rng.nextU32() % 50);
      const logits = Float32Array.from({ length: T * V }, () => 6 * (rng.next() - 0.5));
      const labels = Int32Array.from({ length: T }, () => (rng.next() < 0.2 ? -100 : rng.nextU32() % V));
      for (const coef of [0, 1e-4, 0.5]) {
        const got = causalLmLoss(logits, T, V, labels, coef);
        const want = direct(logits, T, V, labels, coef);
        expect(got.tokens).toBe(want.tokens);
        if (want.tokens === 0) expect(got.loss).toBeNaN();
        else expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-10 * Math.max(1, want.loss));
        if (coef > 0) expect(Math.abs(got.zLoss! - want.zLoss)).toBeLessThan(1e-10 * Math.max(1, want.zLoss));
      }
    }
  });

  it('is stable for large logits (log-softmax in f64)', () => {
    const logits = Float32Array.of(1000, 0, 0, 1000, -1000, 2000);
    const r = causalLmLoss(logits, 3, 2, Int32Array.of(0, 0, 0));
    // Row 0 predicts 0: ≈ 0. Row 1 = [0, 1000] predicts 0: ≈ 1000.
    expect(r.loss).toBeCloseTo(500, 6);
    expect(Number.isFinite(causalLmLoss(logits, 3, 2, Int32Array.of(0, 1, 1), 1e-4).loss)).toBe(true);
  });

  it('is NaN with no counted token, like torch mean over an empty set', () => {
    const logits = Float32Array.of(0, 1, 2, 3);
    expect(causalLmLoss(logits, 2, 2, Int32Array.of(0, -100))).toEqual({ loss: NaN, tokens: 0 });
    expect(causalLmLoss(logits, 1, 4, Int32Array.of(3)).tokens).toBe(0); // one row predicts nothing
    expect(causalLmLoss(new Float32Array(0), 0, 4, new Int32Array(0)).loss).toBeNaN();
    const z = causalLmLoss(logits, 2, 2, Int32Array.of(0, -100), 0.5);
    expect(z.loss).toBeNaN();
    expect(z.zLoss).toBeGreaterThan(0);
  });

  it.each([
    ['label ≥ V', () => causalLmLoss(new Float32Array(6), 3, 2, Int32Array.of(0, 1, 2)), 'RT320', 'label 2 at position 2 (the target of logits row 1)'],
    ['negative label', () => causalLmLoss(new Float32Array(6), 3, 2, Int32Array.of(0, -1, 0)), 'RT320', 'label -1 at position 1 (the target of logits row 0)'],
    ['bad first label', () => causalLmLoss(new Float32Array(6), 3, 2, Int32Array.of(7, 0, 0)), 'RT320', 'label 7 at position 0 (no logits row predicts it)'],
    ['logits size', () => causalLmLoss(new Float32Array(5), 3, 2, Int32Array.of(0, 0, 0)), 'RT321', 'logits hold 5 values, expected T × V = 3 × 2 = 6'],
    ['labels size', () => causalLmLoss(new Float32Array(6), 3, 2, Int32Array.of(0, 0)), 'RT322', 'labels hold 2 values, expected T = 3'],
    ['bad V', () => causalLmLoss(new Float32Array(0), 0, 0, new Int32Array(0)), 'RT323', 'V = 0'],
    ['bad coefficient', () => causalLmLoss(new Float32Array(2), 1, 2, Int32Array.of(0), -1), 'RT324', 'got -1'],
  ] as [string, () => unknown, string, string][])('rejects %s', (_name, f, code, text) => {
    expectRuntimeError(f, code, text);
  });
});
