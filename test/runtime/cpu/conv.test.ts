// causalConv1d: naive zero-padded convolution, packing, and carrying the window across calls.

import { describe, expect, it } from 'vitest';
import { causalConv1d } from '../../../runtime/cpu/conv.ts';
import { clones, expectClose, F32, prng, uniform } from './check.ts';

const EXACT = { atol: 0, rtol: 0 };

/**
 * One sequence: y[t, c] = bias[c] + sum_j w[c, j] * u[t + j - (K-1), c], where u is the inputs
 * with the initial state (K-1 earlier inputs per channel, oldest first) in front. Also returns the
 * last K-1 entries of u per channel.
 */
function naiveConv(x: Float32Array, L: number, C: number, K: number, w: Float32Array, bias: Float32Array | null, init: Float32Array) {
  const y = new Float64Array(L * C);
  const state = new Float64Array(C * (K - 1));
  for (let c = 0; c < C; c++) {
    const u: number[] = [];
    for (let i = 0; i < K - 1; i++) u.push(init[c * (K - 1) + i]);
    for (let t = 0; t < L; t++) u.push(x[t * C + c]);
    for (let t = 0; t < L; t++) {
      let s = bias ? bias[c] : 0;
      for (let j = 0; j < K; j++) s += w[c * K + j] * u[t + j]; // u[t + K-1] is token t
      y[t * C + c] = s;
    }
    for (let i = 0; i < K - 1; i++) state[c * (K - 1) + i] = u[u.length - (K - 1) + i];
  }
  return { y, state };
}

describe('causalConv1d', () => {
  for (const K of [4, 2]) {
    it(`K=${K}: packed sequences equal each run alone and the naive formula, states included`, () => {
      const rand = prng(40 + K);
      const C = 6;
      const lens = [5, 1, 9, 2];
      const T = lens.reduce((a, b) => a + b, 0);
      const seqs = lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
      const x = uniform(rand, T * C), w = uniform(rand, C * K), bias = uniform(rand, C);
      const init = lens.map(() => uniform(rand, C * (K - 1)));
      for (const b of [bias, null]) {
        const states = clones(init);
        const packed = causalConv1d(x, T, C, K, w, b, seqs, states);
        seqs.forEach(({ start, len }, s) => {
          const xs = x.subarray(start * C, (start + len) * C);
          const ref = naiveConv(xs, len, C, K, w, b, init[s]);
          expectClose(packed.subarray(start * C, (start + len) * C), ref.y, F32, `K=${K} seq ${s} packed vs naive`);
          expectClose(states[s], ref.state, EXACT, `K=${K} seq ${s} final state`);
          const alone = clones([init[s]]);
          expectClose(causalConv1d(xs, len, C, K, w, b, [{ start: 0, len }], alone), packed.subarray(start * C, (start + len) * C), EXACT, `K=${K} seq ${s} alone vs packed`);
          expectClose(alone[0], states[s], EXACT, `K=${K} seq ${s} alone state`);
        });
      }
    });

    it(`K=${K}: a sequence run in pieces (prefill, then single tokens) equals the whole`, () => {
      const rand = prng(50 + K);
      const C = 5, L = 11;
      const x = uniform(rand, L * C), w = uniform(rand, C * K), bias = uniform(rand, C);
      const whole = causalConv1d(x, L, C, K, w, bias, [{ start: 0, len: L }], [new Float32Array(C * (K - 1))]);
      const state = [new Float32Array(C * (K - 1))];
      const pieces: Float32Array[] = [];
      for (const [a, b] of [[0, 4], [4, 5], [5, 6], [6, 11]]) {
        pieces.push(causalConv1d(x.subarray(a * C, b * C), b - a, C, K, w, bias, [{ start: 0, len: b - a }], state));
      }
      const joined = new Float32Array(L * C);
      let at = 0;
      for (const p of pieces) { joined.set(p, at); at += p.length; }
      expectClose(joined, whole, EXACT, `K=${K} pieces vs whole`);
    });
  }

  it('the last tap multiplies the current token', () => {
    // w = [0, 0, 0, 1] passes the input through; w = [1, 0, 0, 0] delays it by K-1 = 3 rows.
    const x = Float32Array.of(1, 2, 3, 4, 5);
    const cur = causalConv1d(x, 5, 1, 4, Float32Array.of(0, 0, 0, 1), null, [{ start: 0, len: 5 }], [new Float32Array(3)]);
    expect([...cur]).toEqual([1, 2, 3, 4, 5]);
    const st = [Float32Array.of(-3, -2, -1)];
    const old = causalConv1d(x, 5, 1, 4, Float32Array.of(1, 0, 0, 0), null, [{ start: 0, len: 5 }], st);
    expect([...old]).toEqual([-3, -2, -1, 1, 2]);
    expect([...st[0]]).toEqual([3, 4, 5]);
  });

  it('a sequence shorter than K-1 keeps the older part of its window', () => {
    const st = [Float32Array.of(7, 8, 9)];
    causalConv1d(Float32Array.of(1), 1, 1, 4, new Float32Array(4), null, [{ start: 0, len: 1 }], st);
    expect([...st[0]]).toEqual([8, 9, 1]);
  });

  it('rejects a state count or size that does not match', () => {
    const x = new Float32Array(4 * 2), w = new Float32Array(2 * 4);
    expect(() => causalConv1d(x, 4, 2, 4, w, null, [{ start: 0, len: 4 }], [])).toThrow(RangeError);
    expect(() => causalConv1d(x, 4, 2, 4, w, null, [{ start: 0, len: 4 }], [new Float32Array(4)])).toThrow(/state has 4 elements, expected 6/);
    expect(() => causalConv1d(x, 4, 2, 4, w, null, [{ start: 2, len: 3 }], [new Float32Array(6)])).toThrow(/outside \[0, 4\)/);
  });
});
