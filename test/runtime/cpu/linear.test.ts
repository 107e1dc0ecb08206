// linear (weights [out, in] and [in, out]) and embedding against naive loops, for f32, f16 and bf16
// weights, and for the q8/q4 group formats.

import { describe, expect, it } from 'vitest';
import { embedding, linear, linearIn } from '../../../runtime/cpu/linear.ts';
import { type QuantTensor, codeAt, quantize } from '../../../runtime/quant.ts';
import { bf16ToF32, f16ToF32, fromF32, type DType, type Tensor } from '../../../runtime/tensor.ts';
import { expectClose, F32, prng, uniform } from './check.ts';

/** One weight element as f32, through tensor.ts's scalar converters (not the kernel's widening). */
function elem(w: Tensor, i: number): number {
  const d = w.data[i];
  return w.dtype === 'bf16' ? bf16ToF32(d) : w.dtype === 'f16' ? f16ToF32(d) : d;
}

function naiveLinear(x: Float32Array, T: number, K: number, w: Tensor, bias: Tensor | null): Float64Array {
  const N = w.shape[0];
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? elem(bias, n) : 0;
      for (let k = 0; k < K; k++) s += x[t * K + k] * elem(w, n * K + k);
      y[t * N + n] = s;
    }
  }
  return y;
}

const SHAPES: [number, number, number][] = [[1, 1, 1], [1, 16, 5], [3, 5, 7], [4, 8, 2], [7, 33, 9], [17, 64, 31], [8, 3, 1]];
const DTYPES: DType[] = ['f32', 'f16', 'bf16'];

describe('linear', () => {
  for (const dtype of DTYPES) {
    it(`matches a naive matmul with ${dtype} weights, with and without bias`, () => {
      const rand = prng(11);
      for (const [T, K, N] of SHAPES) {
        const x = uniform(rand, T * K);
        const w = fromF32(uniform(rand, N * K), [N, K], dtype);
        const b = fromF32(uniform(rand, N), [N], dtype);
        expectClose(linear(x, T, K, w, null), naiveLinear(x, T, K, w, null), F32, `linear ${dtype} T=${T} K=${K} N=${N}`);
        expectClose(linear(x, T, K, w, b), naiveLinear(x, T, K, w, b), F32, `linear+bias ${dtype} T=${T} K=${K} N=${N}`);
      }
    });
  }

  it('fills every element of a NaN-poisoned output buffer', () => {
    const rand = prng(12);
    for (const dtype of DTYPES) {
      const [T, K, N] = [6, 10, 5];
      const x = uniform(rand, T * K);
      const w = fromF32(uniform(rand, N * K), [N, K], dtype);
      const out = new Float32Array(T * N).fill(NaN);
      const y = linear(x, T, K, w, null, out);
      expect(y).toBe(out);
      expectClose(y, naiveLinear(x, T, K, w, null), F32, `linear into poisoned out (${dtype})`);
    }
  });

  it('rejects a weight whose width is not K', () => {
    const w = fromF32(new Float32Array(12), [3, 4], 'f32');
    expect(() => linear(new Float32Array(10), 2, 5, w, null)).toThrow(RangeError);
  });
});

/** y = x · W + b with W stored [K, N] (GPT-2's Conv1D), one dot product per output. */
function naiveLinearIn(x: Float32Array, T: number, K: number, w: Tensor, bias: Tensor | null): Float64Array {
  const N = w.shape[1];
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? elem(bias, n) : 0;
      for (let k = 0; k < K; k++) s += x[t * K + k] * elem(w, k * N + n);
      y[t * N + n] = s;
    }
  }
  return y;
}

describe('linearIn (weight stored [in, out])', () => {
  for (const dtype of DTYPES) {
    it(`matches a naive x·W with ${dtype} weights, with and without bias`, () => {
      const rand = prng(14);
      for (const [T, K, N] of SHAPES) {
        const x = uniform(rand, T * K);
        const w = fromF32(uniform(rand, K * N), [K, N], dtype);
        const b = fromF32(uniform(rand, N), [N], dtype);
        expectClose(linearIn(x, T, K, w, null), naiveLinearIn(x, T, K, w, null), F32, `linearIn ${dtype} T=${T} K=${K} N=${N}`);
        expectClose(linearIn(x, T, K, w, b), naiveLinearIn(x, T, K, w, b), F32, `linearIn+bias ${dtype} T=${T} K=${K} N=${N}`);
      }
    });
  }

  it('is not linear on the same data (the layouts differ) unless W is symmetric', () => {
    const rand = prng(15);
    const x = uniform(rand, 2 * 4), w = fromF32(uniform(rand, 16), [4, 4], 'f32');
    const a = linearIn(x, 2, 4, w, null), b = linear(x, 2, 4, w, null);
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i])))).toBeGreaterThan(1e-3);
  });

  it('rejects a weight whose first dim is not K', () => {
    const w = fromF32(new Float32Array(12), [3, 4], 'f32');
    expect(() => linearIn(new Float32Array(8), 2, 4, w, null)).toThrow(/weight shape \[3,4\] does not match K=4/);
  });
});

describe('embedding', () => {
  it('picks rows and widens them', () => {
    const rand = prng(13);
    for (const dtype of DTYPES) {
      const [V, D] = [11, 6];
      const w = fromF32(uniform(rand, V * D), [V, D], dtype);
      const ids = Int32Array.from([3, 0, 10, 3, 7]);
      const ref = new Float64Array(ids.length * D);
      ids.forEach((id, t) => { for (let d = 0; d < D; d++) ref[t * D + d] = elem(w, id * D + d); });
      expectClose(embedding(ids, w), ref, { atol: 0, rtol: 0 }, `embedding ${dtype}`);
    }
  });

  it('throws a RangeError naming the id, its row and the vocabulary size', () => {
    const w = fromF32(new Float32Array(4 * 3), [4, 3], 'f32');
    expect(() => embedding(Int32Array.from([0, 1, 4]), w)).toThrow(new RangeError('embedding: token id 4 at row 2 is out of range for a vocabulary of 4'));
    expect(() => embedding(Int32Array.from([-1]), w)).toThrow(/token id -1 at row 0 .* vocabulary of 4/);
  });
});

describe('linear and embedding over q8/q4 weights', () => {
  // the reference: a naive double product over the weights' values code · f16(scale), each element
  // taken through runtime/quant.ts' codeAt (not the kernel's row widening)
  const value = (q: QuantTensor, i: number) => codeAt(q, i) * f16ToF32(q.scales[Math.floor(i / 32)]!);
  for (const dtype of ['q8', 'q4'] as const) {
    it(`${dtype}: matches a naive matmul over the dequantised values, bias, odd N and T, into a poisoned buffer`, () => {
      const rand = prng(21);
      for (const [T, K, N] of [[1, 32, 1], [3, 64, 7], [9, 96, 10], [4, 32, 3]] as const) {
        const x = uniform(rand, T * K);
        const r = quantize(fromF32(uniform(rand, N * K, -2, 2), [N, K], 'f32'), dtype);
        if ('reason' in r) throw new Error(r.reason);
        const b = fromF32(uniform(rand, N), [N], 'f32');
        const ref = new Float64Array(T * N);
        for (let t = 0; t < T; t++) {
          for (let n = 0; n < N; n++) {
            let s = (b.data as Float32Array)[n]!;
            for (let k = 0; k < K; k++) s += x[t * K + k]! * value(r.q, n * K + k);
            ref[t * N + n] = s;
          }
        }
        const out = new Float32Array(T * N).fill(NaN);
        expectClose(linear(x, T, K, r.q, b, out), ref, F32, `linear ${dtype} T=${T} K=${K} N=${N}`);
        const ids = Int32Array.from({ length: T }, (_, t) => (t * 5) % N);
        const emb = embedding(ids, r.q);
        for (let t = 0; t < T; t++) for (let k = 0; k < K; k++) expect(emb[t * K + k], `embedding row ${ids[t]} col ${k}`).toBe(value(r.q, ids[t]! * K + k));
      }
    });
  }
});
