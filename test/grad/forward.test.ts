// The float64 forwards the gradients differentiate are the CPU kernels' forwards: each sequence op
// of runtime/cpu/backward-seq.ts against its f32 kernel on the same packed inputs (fresh states),
// within 1e-5 of the result's scale (the f32 kernels round their activations and states).

import { describe, expect, it } from 'vitest';
import { attentionF, convF, ropeF, ssdF } from '../../runtime/cpu/backward-seq.ts';
import { attention, rope } from '../../runtime/cpu/attention.ts';
import { packedBandAttention } from '../reference/band-attention.ts';
import { causalConv1d } from '../../runtime/cpu/conv.ts';
import { ssdChunked } from '../../runtime/cpu/ssd.ts';
import { expectLogitsClose } from '../helpers/checkpoints.ts';
import { randomF64 } from './helpers.ts';

const LENS = [7, 1, 10];
const T = 18;
const seqs = LENS.map((len, i) => ({ start: LENS.slice(0, i).reduce((a, b) => a + b, 0), len }));
const f32 = (x: Float64Array) => Float32Array.from(x);
/** Random values rounded to f32 first, so both sides read the same inputs. */
const rnd = (n: number, seed: number, lo = -1, hi = 1) => Float64Array.from(f32(randomF64(n, seed).map((v) => lo + ((v + 1) / 2) * (hi - lo))));

describe('float64 forwards equal the f32 CPU kernels', () => {
  it('causal conv over packed sequences', () => {
    const C = 3, K = 4, x = rnd(T * C, 1), w = rnd(C * K, 2), b = rnd(C, 3);
    const ref = causalConv1d(f32(x), T, C, K, f32(w), f32(b), seqs, seqs.map(() => new Float32Array(C * (K - 1))));
    expectLogitsClose(convF(x, T, C, K, w, b, seqs), ref, 1e-5, 'conv');
  });

  it('partial rope at packed positions', () => {
    const pos = Int32Array.from(seqs.flatMap((s) => Array.from({ length: s.len }, (_, j) => 37 * j)));
    const x = rnd(T * 2 * 8, 4);
    expectLogitsClose(ropeF(x, T, 2, 8, pos, 4, 10000), rope(f32(x), T, 2, 8, pos, 4, 10000), 1e-5, 'rope');
  });

  it('causal GQA attention within each sequence', () => {
    const [H, KV, Dh] = [4, 2, 3], q = rnd(T * H * Dh, 5), k = rnd(T * KV * Dh, 6), v = rnd(T * KV * Dh, 7);
    const caches = seqs.map(() => ({ k: new Float32Array(T * KV * Dh), v: new Float32Array(T * KV * Dh), len: 0, capacity: T }));
    const ref = attention(f32(q), f32(k), f32(v), T, H, KV, Dh, 0.6, seqs, caches);
    expectLogitsClose(attentionF(q, k, v, { T, H, KV, Dh, scale: 0.6 }, seqs).y, ref, 1e-5, 'attention');
  });

  it('sliding-window attention equals the band-masked reference', () => {
    const [H, KV, Dh] = [4, 2, 3], q = rnd(T * H * Dh, 8), k = rnd(T * KV * Dh, 9), v = rnd(T * KV * Dh, 10);
    for (const window of [1, 2, 5]) {
      const ref = packedBandAttention(q, k, v, seqs.map((s) => s.len), H, KV, Dh, 0.6, window);
      expectLogitsClose(attentionF(q, k, v, { T, H, KV, Dh, scale: 0.6, window }, seqs).y, ref, 1e-12, `window ${window}`);
    }
  });

  for (const chunk of [3, 4, 64]) {
    it(`SSD, chunk ${chunk} (boundaries inside and at the ends of sequences)`, () => {
      const d = { H: 4, P: 2, G: 2, N: 3 };
      const s = { x: rnd(T * 8, 8), dt: rnd(T * 4, 9, 0.1, 1.2), A: rnd(4, 10, -2, -0.3), B: rnd(T * 6, 11), C: rnd(T * 6, 12), D: rnd(4, 13) };
      const ref = ssdChunked(f32(s.x), f32(s.dt), f32(s.A), f32(s.B), f32(s.C), f32(s.D), d, chunk, seqs, seqs.map(() => new Float32Array(4 * 2 * 3)));
      const { y, entering } = ssdF(s, d, chunk, seqs);
      expectLogitsClose(y, ref, 1e-5, 'ssd');
      // one saved state per chunk of each sequence, the first of each sequence zero
      expect(entering.length).toBe(LENS.reduce((n, l) => n + Math.ceil(l / chunk), 0));
    });
  }
});
