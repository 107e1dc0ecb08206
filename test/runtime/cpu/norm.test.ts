// rmsnorm, gated rmsnorm (HF BambaRMSNorm / BambaRMSNormGated) and layernorm against naive loops.

import { describe, expect, it } from 'vitest';
import { layernorm, rmsnorm, rmsnormGated } from '../../../runtime/cpu/norm.ts';
import { expectClose, F32, prng, uniform } from './check.ts';

/** Row by row, group by group: v / sqrt(mean(v²) + eps) · w, with v = x · silu(z) when z is given. */
function naive(x: Float32Array, z: Float32Array | null, T: number, D: number, w: Float32Array, eps: number, groups: number): Float64Array {
  const out = new Float64Array(T * D);
  const gs = D / groups;
  for (let t = 0; t < T; t++) {
    for (let g = 0; g < groups; g++) {
      const v: number[] = [];
      for (let i = 0; i < gs; i++) {
        const at = t * D + g * gs + i;
        v.push(z ? x[at] * (z[at] / (1 + Math.exp(-z[at]))) : x[at]);
      }
      const ms = v.reduce((s, e) => s + e * e, 0) / gs;
      v.forEach((e, i) => { out[t * D + g * gs + i] = (e / Math.sqrt(ms + eps)) * w[g * gs + i]; });
    }
  }
  return out;
}

describe('rmsnorm', () => {
  it('matches x·rsqrt(mean(x²)+eps)·w', () => {
    const rand = prng(31);
    for (const [T, D, eps] of [[1, 1, 1e-6], [3, 8, 1e-6], [5, 37, 1e-5], [2, 256, 1e-6]] as const) {
      const x = uniform(rand, T * D, -3, 3), w = uniform(rand, D, 0.5, 1.5);
      expectClose(rmsnorm(x, T, D, w, eps), naive(x, null, T, D, w, eps, 1), F32, `rmsnorm T=${T} D=${D}`);
    }
  });

  it('eps dominates an all-zero row', () => {
    const y = rmsnorm(new Float32Array(4), 1, 4, new Float32Array(4).fill(1), 1e-6);
    expect([...y]).toEqual([0, 0, 0, 0]);
  });
});

describe('rmsnormGated', () => {
  for (const groups of [1, 2, 4]) {
    it(`normalises x·silu(z) over ${groups} group(s)`, () => {
      const rand = prng(32 + groups);
      for (const [T, D] of [[1, 8], [4, 16], [3, 64]] as const) {
        const x = uniform(rand, T * D, -2, 2), z = uniform(rand, T * D, -4, 4), w = uniform(rand, D, 0.5, 1.5);
        expectClose(rmsnormGated(x, z, T, D, w, 1e-6, groups), naive(x, z, T, D, w, 1e-6, groups), F32, `gated T=${T} D=${D} groups=${groups}`);
      }
    });
  }

  it('groups change the result (per-group statistics)', () => {
    const rand = prng(39);
    const x = uniform(rand, 8), z = uniform(rand, 8), w = new Float32Array(8).fill(1);
    x.fill(10, 0, 4); // the first half is much larger than the second
    const one = rmsnormGated(x, z, 1, 8, w, 1e-6, 1), two = rmsnormGated(x, z, 1, 8, w, 1e-6, 2);
    expect(Math.abs(one[7] - two[7])).toBeGreaterThan(1e-2);
  });

  it('rejects groups that do not divide D', () => {
    expect(() => rmsnormGated(new Float32Array(6), new Float32Array(6), 1, 6, new Float32Array(6), 1e-6, 4)).toThrow(/4 groups do not divide D=6/);
  });
});

/** PyTorch LayerNorm, row by row: mean, biased variance, (v − mean) / sqrt(var + eps) · w + b. */
function naiveLayerNorm(x: Float32Array, T: number, D: number, w: Float32Array, b: Float32Array | null, eps: number): Float64Array {
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    const v = Array.from(x.subarray(t * D, (t + 1) * D));
    const mean = v.reduce((s, e) => s + e, 0) / D;
    const variance = v.reduce((s, e) => s + (e - mean) ** 2, 0) / D;
    v.forEach((e, i) => { out[t * D + i] = ((e - mean) / Math.sqrt(variance + eps)) * w[i] + (b ? b[i] : 0); });
  }
  return out;
}

describe('layernorm', () => {
  it('matches (x − mean)/sqrt(var + eps)·w + b, with and without bias', () => {
    const rand = prng(41);
    for (const [T, D, eps] of [[1, 1, 1e-5], [3, 8, 1e-5], [5, 37, 1e-6], [2, 256, 1e-5]] as const) {
      const x = uniform(rand, T * D, -3, 5), w = uniform(rand, D, 0.5, 1.5), b = uniform(rand, D, -0.5, 0.5);
      expectClose(layernorm(x, T, D, w, b, eps), naiveLayerNorm(x, T, D, w, b, eps), F32, `layernorm T=${T} D=${D}`);
      expectClose(layernorm(x, T, D, w, null, eps), naiveLayerNorm(x, T, D, w, null, eps), F32, `layernorm (no bias) T=${T} D=${D}`);
    }
  });

  it('a large common offset does not cost precision (two-pass variance)', () => {
    const rand = prng(42);
    const [T, D] = [4, 64];
    const x = uniform(rand, T * D, -1, 1).map((v) => v + 1000);
    const w = new Float32Array(D).fill(1);
    expectClose(layernorm(x, T, D, w, null, 1e-5), naiveLayerNorm(x, T, D, w, null, 1e-5), F32, 'layernorm offset 1000');
  });

  it('a constant row gives the bias', () => {
    const y = layernorm(new Float32Array(4).fill(3), 1, 4, new Float32Array(4).fill(2), Float32Array.of(1, 2, 3, 4), 1e-5);
    expect([...y]).toEqual([1, 2, 3, 4]);
  });

  it('rejects a bias of the wrong width', () => {
    expect(() => layernorm(new Float32Array(8), 2, 4, new Float32Array(4), new Float32Array(3), 1e-5)).toThrow(/bias has 3 elements, expected 4/);
  });
});
