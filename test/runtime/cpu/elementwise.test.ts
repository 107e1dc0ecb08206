// Elementwise kernels, broadcasting and split against direct formulas.

import { describe, expect, it } from 'vitest';
import { add, clamp, erf, exp, gelu, mul, neg, silu, softplus } from '../../../runtime/cpu/elementwise.ts';
import { split } from '../../../runtime/cpu/layout.ts';
import { expectClose, F32, prng, uniform } from './check.ts';

const EXACT = { atol: 0, rtol: 0 };
const map = (x: Float32Array, f: (v: number) => number) => Float64Array.from(x, f);

describe('activations', () => {
  const x = uniform(prng(21), 257, -30, 30);

  it('silu is x·sigmoid(x)', () => {
    expectClose(silu(x), map(x, (v) => v * (1 / (1 + Math.exp(-v)))), F32, 'silu');
    expect(Object.is(silu(Float32Array.of(-1000))[0], -0)).toBe(true);
  });

  it('softplus is log(1+e^x), and x itself above the threshold 20 (torch semantics)', () => {
    expectClose(softplus(x), map(x, (v) => (v > 20 ? v : Math.log(1 + Math.exp(v)))), F32, 'softplus');
    const at = Float32Array.of(19.5, 20, 20.25, 100, 1e30, -100);
    const got = softplus(at);
    expect(got[0]).toBe(Math.fround(Math.log1p(Math.exp(19.5)))); // below: the formula
    expect(got[1]).toBe(Math.fround(Math.log1p(Math.exp(20)))); // 20 itself is not above the threshold
    expect(got[2]).toBe(20.25); // above: identity, exactly
    expect(got[3]).toBe(100);
    expect(got[4]).toBe(Math.fround(1e30)); // no overflow to Infinity
    expect(got[5]).toBe(Math.fround(Math.log1p(Math.exp(-100)))); // tiny but not zero
    expect(got[5]).toBeGreaterThan(0);
  });

  it('exp and neg', () => {
    expectClose(exp(x), map(x, Math.exp), F32, 'exp');
    expectClose(neg(x), map(x, (v) => -v), EXACT, 'neg');
  });

  it('clamp with finite and infinite bounds; NaN stays NaN', () => {
    expectClose(clamp(x, -2, 3), map(x, (v) => (v < -2 ? -2 : v > 3 ? 3 : v)), EXACT, 'clamp');
    expectClose(clamp(x, -Infinity, 0.5), map(x, (v) => (v > 0.5 ? 0.5 : v)), EXACT, 'clamp(-inf, .5)');
    expectClose(clamp(x, 0, Infinity), map(x, (v) => (v < 0 ? 0 : v)), EXACT, 'clamp(0, inf)');
    expect(clamp(Float32Array.of(NaN), 0, 1)[0]).toBeNaN();
  });
});

/** erf by composite Simpson integration of 2/√π·e^(−t²) over [0, z] (2000 panels: error < 1e-13). */
function erfBySimpson(z: number): number {
  const n = 2000, h = z / n;
  const g = (t: number) => Math.exp(-t * t);
  let s = g(0) + g(z);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * g(i * h);
  return (2 / Math.sqrt(Math.PI)) * (h / 3) * s;
}

describe('gelu', () => {
  it('erf matches numerical integration to 1e-12, and is odd and saturating', () => {
    const zs = [0, 1e-8, 0.1, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 5.99, 6, 8, 30];
    for (const z of zs) {
      expect(Math.abs(erf(z) - erfBySimpson(z)), `erf(${z})`).toBeLessThan(1e-12);
      expect(erf(-z)).toBe(-erf(z));
    }
    expect(erf(Infinity)).toBe(1);
    expect(erf(NaN)).toBeNaN();
  });

  it('exact: 0.5·x·(1 + erf(x/√2)); tanh: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))', () => {
    const x = uniform(prng(23), 513, -12, 12);
    expectClose(gelu(x, false), map(x, (v) => 0.5 * v * (1 + erfBySimpson(v / Math.SQRT2))), F32, 'gelu exact');
    const c = Math.sqrt(2 / Math.PI);
    expectClose(gelu(x, true), map(x, (v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3)))), F32, 'gelu tanh');
  });

  it('the two forms differ (by up to ~5e-4 near |x| = 2), so the attribute matters', () => {
    const x = Float32Array.of(-2.5, -2, -1, 1, 2, 3);
    const d = gelu(x, true).map((v, i) => Math.abs(v - gelu(x, false)[i]));
    expect(Math.max(...d)).toBeGreaterThan(1e-4);
    expect(Math.max(...d)).toBeLessThan(1e-3);
  });
});

describe('add and mul', () => {
  const rand = prng(22);
  it('same length', () => {
    const a = uniform(rand, 24), b = uniform(rand, 24);
    expectClose(add(a, b), a.map((v, i) => v + b[i]), EXACT, 'add');
    expectClose(mul(a, b), a.map((v, i) => v * b[i]), EXACT, 'mul');
  });

  it('broadcast b over the leading dims of a', () => {
    const [R, W] = [5, 6];
    const a = uniform(rand, R * W), b = uniform(rand, W);
    const refAdd = new Float32Array(R * W), refMul = new Float32Array(R * W);
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < W; c++) {
        refAdd[r * W + c] = a[r * W + c] + b[c];
        refMul[r * W + c] = a[r * W + c] * b[c];
      }
    }
    expectClose(add(a, b), refAdd, EXACT, 'add broadcast');
    expectClose(mul(a, b), refMul, EXACT, 'mul broadcast');
    const one = Float32Array.of(2);
    expectClose(mul(a, one), a.map((v) => v * 2), EXACT, 'mul scalar');
  });

  it('rejects lengths that do not divide', () => {
    expect(() => add(new Float32Array(6), new Float32Array(4))).toThrow(/cannot broadcast 4 elements over 6/);
    expect(() => mul(new Float32Array(3), new Float32Array(0))).toThrow(RangeError);
  });
});

describe('split', () => {
  it('cuts the last dim into consecutive parts', () => {
    const x = Float32Array.from({ length: 3 * 6 }, (_, i) => i);
    const [a, b, c] = split(x, [2, 3, 1]);
    expect([...a]).toEqual([0, 1, 6, 7, 12, 13]);
    expect([...b]).toEqual([2, 3, 4, 8, 9, 10, 14, 15, 16]);
    expect([...c]).toEqual([5, 11, 17]);
    expect(() => split(x, [4, 3])).toThrow(RangeError);
  });
});
