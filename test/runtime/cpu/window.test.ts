// Sliding-window attention on the CPU reference (runtime/cpu/attention.ts with a window) against full
// attention with a band mask computed independently in float64 (test/reference/band-attention.ts):
// packed ragged sequences, GQA, windows smaller than, equal to and larger than the sequences, and
// prefill then step-by-step decode past the window, where the KV cache (a ring of min(window,
// capacity) rows, NaN-poisoned until written) wraps. Tolerance 1e-5 (F32), as the attention tests.

import { describe, expect, it } from 'vitest';
import { attention } from '../../../runtime/cpu/attention.ts';
import type { KvCache } from '../../../runtime/cpu/seq.ts';
import { packedBandAttention } from '../../reference/band-attention.ts';
import { expectClose, F32, prng, uniform } from './check.ts';

/** A ring cache of min(window, capacity) rows (capacity rows when window is 0), poisoned with NaN. */
function ring(capacity: number, window: number, KV: number, Dh: number): KvCache {
  const rows = window ? Math.min(window, capacity) : capacity;
  return { k: new Float32Array(rows * KV * Dh).fill(NaN), v: new Float32Array(rows * KV * Dh).fill(NaN), len: 0, capacity, rows };
}

const Dh = 8, scale = 1 / Math.sqrt(Dh);
const seqsOf = (lens: readonly number[]) => lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));

describe('sliding-window attention (CPU reference)', () => {
  const lens = [5, 1, 9, 3];
  const T = lens.reduce((a, b) => a + b, 0);
  // smaller than every sequence but one, equal to the first, equal to the longest, larger than all; 0 = full
  for (const window of [1, 3, 5, 9, 40, 0]) {
    for (const [H, KV] of [[4, 2], [4, 1], [2, 2]] as const) {
      it(`packed ragged prefill equals the band-masked reference (window ${window}, H=${H}, KV=${KV})`, () => {
        const rand = prng(300 + window * 7 + KV);
        const q = uniform(rand, T * H * Dh, -2, 2), k = uniform(rand, T * KV * Dh, -2, 2), v = uniform(rand, T * KV * Dh);
        const caches = lens.map(() => ring(16, window, KV, Dh));
        const got = attention(q, k, v, T, H, KV, Dh, scale, seqsOf(lens), caches, window);
        expectClose(got, packedBandAttention(q, k, v, lens, H, KV, Dh, scale, window), F32, `window ${window} H=${H} KV=${KV}`);
        expect(caches.map((c) => c.len)).toEqual(lens);
      });
    }
  }

  it('a window of at least the sequence is full attention', () => {
    const rand = prng(310), H = 4, KV = 2;
    const q = uniform(rand, T * H * Dh, -2, 2), k = uniform(rand, T * KV * Dh, -2, 2), v = uniform(rand, T * KV * Dh);
    const full = attention(q, k, v, T, H, KV, Dh, scale, seqsOf(lens), lens.map(() => ring(16, 0, KV, Dh)));
    const wide = attention(q, k, v, T, H, KV, Dh, scale, seqsOf(lens), lens.map(() => ring(16, 9, KV, Dh)), 9);
    expectClose(wide, full, { atol: 0, rtol: 0 }, 'window 9 vs full');
  });

  // prefill pieces, then the rest one token at a time: the ring (4 rows) wraps several times, and
  // a piece longer than the ring overwrites rows it has itself read
  for (const pieces of [[3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [6, 1, 1, 5], [1, 12], [13]]) {
    it(`prefill then decode past the window equals the packed forward (pieces ${pieces.join('+')})`, () => {
      const rand = prng(320 + pieces.length), H = 4, KV = 2, W = 4, L = 13;
      const q = uniform(rand, L * H * Dh, -2, 2), k = uniform(rand, L * KV * Dh, -2, 2), v = uniform(rand, L * KV * Dh);
      const whole = attention(q, k, v, L, H, KV, Dh, scale, [{ start: 0, len: L }], [ring(16, W, KV, Dh)], W);
      const cache = ring(16, W, KV, Dh);
      const stepped = new Float32Array(L * H * Dh);
      let at = 0;
      for (const n of pieces) {
        const part = (x: Float32Array, w: number) => x.subarray(at * w, (at + n) * w);
        stepped.set(attention(part(q, H * Dh), part(k, KV * Dh), part(v, KV * Dh), n, H, KV, Dh, scale, [{ start: 0, len: n }], [cache], W), at * H * Dh);
        at += n;
      }
      expectClose(stepped, whole, F32, 'stepped vs whole');
      expectClose(stepped, packedBandAttention(q, k, v, [L], H, KV, Dh, scale, W), F32, 'stepped vs band reference');
      // the ring holds positions 9..12, position p at row p % 4
      expect(cache.len).toBe(L);
      for (let p = L - W; p < L; p++) {
        expect(Array.from(cache.k.subarray((p % W) * KV * Dh, (p % W + 1) * KV * Dh)), `key of position ${p}`).toEqual(Array.from(k.subarray(p * KV * Dh, (p + 1) * KV * Dh)));
        expect(Array.from(cache.v.subarray((p % W) * KV * Dh, (p % W + 1) * KV * Dh)), `value of position ${p}`).toEqual(Array.from(v.subarray(p * KV * Dh, (p + 1) * KV * Dh)));
      }
    });
  }

  it('batched decode of sequences at different ring phases equals each one\'s band reference', () => {
    const rand = prng(330), H = 4, KV = 1, W = 3, L = [2, 7, 11];
    const q = L.map((n) => uniform(rand, (n + 1) * H * Dh, -2, 2)), k = L.map((n) => uniform(rand, (n + 1) * KV * Dh, -2, 2)), v = L.map((n) => uniform(rand, (n + 1) * KV * Dh));
    const caches = L.map(() => ring(12, W, KV, Dh));
    L.forEach((n, s) => attention(q[s]!.subarray(0, n * H * Dh), k[s]!.subarray(0, n * KV * Dh), v[s]!.subarray(0, n * KV * Dh), n, H, KV, Dh, scale, [{ start: 0, len: n }], [caches[s]!], W));
    const last = (a: Float32Array[], w: number) => {
      const out = new Float32Array(L.length * w);
      L.forEach((n, s) => out.set(a[s]!.subarray(n * w, (n + 1) * w), s * w));
      return out;
    };
    const dec = attention(last(q, H * Dh), last(k, KV * Dh), last(v, KV * Dh), L.length, H, KV, Dh, scale, L.map((_, s) => ({ start: s, len: 1 })), caches, W);
    L.forEach((n, s) => {
      const ref = packedBandAttention(q[s]!, k[s]!, v[s]!, [n + 1], H, KV, Dh, scale, W);
      expectClose(dec.subarray(s * H * Dh, (s + 1) * H * Dh), ref.subarray(n * H * Dh), F32, `sequence ${s} (${n} earlier tokens)`);
    });
  });

  it('refuses a ring smaller than the window, and a negative window', () => {
    const x = new Float32Array(2 * 2);
    const small: KvCache = { k: new Float32Array(2 * 2), v: new Float32Array(2 * 2), len: 0, capacity: 8, rows: 2 };
    expect(() => attention(x, x, x, 2, 1, 1, 2, 1, [{ start: 0, len: 2 }], [small], 3)).toThrow(/holds 2 rows, fewer than window 3/);
    expect(() => attention(x, x, x, 2, 1, 1, 2, 1, [{ start: 0, len: 2 }], [ring(8, 0, 1, 2)], -1)).toThrow(/window -1/);
  });
});
