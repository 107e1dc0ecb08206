// rope (partial and full rotary) and causal GQA attention over KV caches, against naive versions.

import { describe, expect, it } from 'vitest';
import { attention, rope } from '../../../runtime/cpu/attention.ts';
import type { KvCache } from '../../../runtime/cpu/seq.ts';
import { expectClose, F32, prng, uniform } from './check.ts';

/**
 * Dim d < r of a head is paired with d ± r/2 and uses frequency index d mod r/2:
 *   out[d] = x[d]·cos + sign·x[partner]·sin,  sign = -1 in the first half, +1 in the second.
 * The angle is pos · theta^(-2i/r), all in double (fine for small positions).
 */
function naiveRope(x: Float32Array, T: number, Hn: number, Dh: number, pos: Int32Array, r: number, theta: number): Float64Array {
  const out = Float64Array.from(x);
  for (let t = 0; t < T; t++) {
    for (let hd = 0; hd < Hn; hd++) {
      const o = (t * Hn + hd) * Dh;
      for (let d = 0; d < r; d++) {
        const first = d < r / 2;
        const i = first ? d : d - r / 2;
        const angle = pos[t] * Math.pow(theta, (-2 * i) / r);
        const partner = first ? d + r / 2 : d - r / 2;
        out[o + d] = x[o + d] * Math.cos(angle) + (first ? -1 : 1) * x[o + partner] * Math.sin(angle);
      }
    }
  }
  return out;
}

describe('rope', () => {
  for (const [Dh, r] of [[16, 8], [16, 16], [8, 2], [6, 4]]) {
    it(`Dh=${Dh}, rotary dim ${r} matches the naive rotation`, () => {
      const rand = prng(90 + Dh + r);
      const T = 7, Hn = 3;
      const x = uniform(rand, T * Hn * Dh, -2, 2);
      const pos = Int32Array.from({ length: T }, () => Math.floor(rand() * 50));
      expectClose(rope(x, T, Hn, Dh, pos, r, 10000), naiveRope(x, T, Hn, Dh, pos, r, 10000), F32, `rope Dh=${Dh} r=${r}`);
    });
  }

  it('pairs dim i with i + r/2 and leaves dims >= r untouched', () => {
    const Dh = 16, r = 8, theta = 10000;
    for (let i = 0; i < Dh; i++) {
      const x = new Float32Array(Dh);
      x[i] = 1;
      const y = rope(x, 1, 1, Dh, Int32Array.of(3), r, theta);
      const touched = [...y].map((v, d) => (v !== 0 ? d : -1)).filter((d) => d >= 0);
      if (i >= r) {
        expect([...y].map((v) => v + 0)).toEqual([...x]); // (+0 folds the -0 of 0·cos < 0)
        continue;
      }
      const k = i % (r / 2);
      const angle = 3 * Math.pow(theta, (-2 * k) / r);
      if (i < r / 2) {
        expect(touched).toEqual([i, i + r / 2]);
        expect(y[i]).toBeCloseTo(Math.cos(angle), 6);
        expect(y[i + r / 2]).toBeCloseTo(Math.sin(angle), 6); // out[i + r/2] = x[i+r/2] cos + x[i] sin
      } else {
        expect(touched).toEqual([i - r / 2, i]);
        expect(y[i - r / 2]).toBeCloseTo(-Math.sin(angle), 6); // out[i] = x[i] cos - x[i+r/2] sin
        expect(y[i]).toBeCloseTo(Math.cos(angle), 6);
      }
    }
  });

  it('position 0 is the identity', () => {
    const x = uniform(prng(95), 2 * 16);
    expectClose(rope(x, 1, 2, 16, Int32Array.of(0), 8, 10000), x, { atol: 0, rtol: 0 }, 'rope at 0');
  });

  it('at large positions uses the angle HF forms in float32 (f32 inv_freq × f32 position)', () => {
    const Dh = 8, r = 8, theta = 10000;
    const pos = Int32Array.of(4097, 100003, 1 << 20);
    const x = uniform(prng(96), pos.length * Dh, -1, 1);
    const ref = new Float64Array(x.length);
    for (let t = 0; t < pos.length; t++) {
      for (let i = 0; i < r / 2; i++) {
        const invFreq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / r))));
        const angle = Math.fround(invFreq * pos[t]);
        const a = x[t * Dh + i], b = x[t * Dh + i + r / 2];
        ref[t * Dh + i] = a * Math.cos(angle) - b * Math.sin(angle);
        ref[t * Dh + i + r / 2] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
    expectClose(rope(x, pos.length, 1, Dh, pos, r, theta), ref, F32, 'rope at large positions');
  });

  it('rejects an odd or too-large rotary dim', () => {
    expect(() => rope(new Float32Array(8), 1, 1, 8, Int32Array.of(0), 3, 10000)).toThrow(RangeError);
    expect(() => rope(new Float32Array(8), 1, 1, 8, Int32Array.of(0), 10, 10000)).toThrow(RangeError);
  });
});

/**
 * One sequence, all queries at once against its whole key history (hist rows, the last `L` of
 * which are the new tokens): repeat kv heads to H, mask by position, softmax without shifting.
 */
function naiveAttention(q: Float32Array, kHist: Float32Array, vHist: Float32Array, L: number, hist: number, H: number, KV: number, Dh: number, scale: number): Float64Array {
  const rep = H / KV;
  const out = new Float64Array(L * H * Dh);
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / rep);
    for (let i = 0; i < L; i++) {
      const visible = hist - L + i + 1;
      const w: number[] = [];
      for (let j = 0; j < visible; j++) {
        let s = 0;
        for (let d = 0; d < Dh; d++) s += q[(i * H + h) * Dh + d] * kHist[(j * KV + kvh) * Dh + d];
        w.push(Math.exp(s * scale));
      }
      const z = w.reduce((a, b) => a + b, 0);
      for (let d = 0; d < Dh; d++) {
        let s = 0;
        for (let j = 0; j < visible; j++) s += w[j] * vHist[(j * KV + kvh) * Dh + d];
        out[(i * H + h) * Dh + d] = s / z;
      }
    }
  }
  return out;
}

function emptyCache(capacity: number, KV: number, Dh: number): KvCache {
  return { k: new Float32Array(capacity * KV * Dh), v: new Float32Array(capacity * KV * Dh), len: 0, capacity };
}

describe('attention', () => {
  const H = 4, KV = 2, Dh = 8, scale = 1 / Math.sqrt(Dh);

  for (const [h, kv] of [[4, 2], [4, 4], [4, 1]]) {
    it(`packed prefill equals each sequence alone and the naive version (H=${h}, KV=${kv})`, () => {
      const rand = prng(100 + kv);
      const lens = [5, 1, 9, 3];
      const T = lens.reduce((a, b) => a + b, 0);
      const seqs = lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
      const q = uniform(rand, T * h * Dh, -2, 2), k = uniform(rand, T * kv * Dh, -2, 2), v = uniform(rand, T * kv * Dh);
      const caches = lens.map(() => emptyCache(16, kv, Dh));
      const packed = attention(q, k, v, T, h, kv, Dh, scale, seqs, caches);
      seqs.forEach(({ start, len }, s) => {
        const qs = q.slice(start * h * Dh, (start + len) * h * Dh);
        const ks = k.slice(start * kv * Dh, (start + len) * kv * Dh), vs = v.slice(start * kv * Dh, (start + len) * kv * Dh);
        const got = packed.subarray(start * h * Dh, (start + len) * h * Dh);
        expectClose(got, naiveAttention(qs, ks, vs, len, len, h, kv, Dh, scale), F32, `seq ${s} packed vs naive`);
        const alone = attention(qs, ks, vs, len, h, kv, Dh, scale, [{ start: 0, len }], [emptyCache(16, kv, Dh)]);
        expectClose(got, alone, { atol: 0, rtol: 0 }, `seq ${s} packed vs alone`);
        expect(caches[s].len).toBe(len);
        expectClose(caches[s].k.subarray(0, len * kv * Dh), ks, { atol: 0, rtol: 0 }, `seq ${s} cached keys`);
      });
    });
  }

  it('prefill then one decode step equals prefill of the longer sequence (batched decode)', () => {
    const rand = prng(110);
    const lens = [6, 3];
    const q = lens.map((L) => uniform(rand, (L + 1) * H * Dh, -2, 2));
    const k = lens.map((L) => uniform(rand, (L + 1) * KV * Dh, -2, 2));
    const v = lens.map((L) => uniform(rand, (L + 1) * KV * Dh));
    const caches = lens.map(() => emptyCache(8, KV, Dh));
    lens.forEach((L, s) => {
      attention(q[s].subarray(0, L * H * Dh), k[s].subarray(0, L * KV * Dh), v[s].subarray(0, L * KV * Dh), L, H, KV, Dh, scale, [{ start: 0, len: L }], [caches[s]]);
    });
    // One decode batch: the next token of both sequences, T = 2 sequences of length 1.
    const pick = (a: Float32Array[], w: number) => {
      const out = new Float32Array(2 * w);
      lens.forEach((L, s) => out.set(a[s].subarray(L * w, (L + 1) * w), s * w));
      return out;
    };
    const dec = attention(pick(q, H * Dh), pick(k, KV * Dh), pick(v, KV * Dh), 2, H, KV, Dh, scale, [{ start: 0, len: 1 }, { start: 1, len: 1 }], caches);
    lens.forEach((L, s) => {
      const full = attention(q[s], k[s], v[s], L + 1, H, KV, Dh, scale, [{ start: 0, len: L + 1 }], [emptyCache(8, KV, Dh)]);
      expectClose(dec.subarray(s * H * Dh, (s + 1) * H * Dh), full.subarray(L * H * Dh), F32, `seq ${s} decode vs longer prefill`);
      expect(caches[s].len).toBe(L + 1);
    });
  });

  it('is stable for large scores (max subtraction)', () => {
    const q = new Float32Array(2 * 1 * 2).fill(100), k = new Float32Array(2 * 2).fill(100), v = Float32Array.of(1, 2, 3, 4);
    const y = attention(q, k, v, 2, 1, 1, 2, 1, [{ start: 0, len: 2 }], [emptyCache(2, 1, 2)]);
    expect([...y]).toEqual([1, 2, 2, 3]);
  });

  it('throws when a cache would overflow, before touching any cache', () => {
    const caches = [emptyCache(4, 1, 2), emptyCache(2, 1, 2)];
    caches[1].len = 1;
    const q = new Float32Array(4 * 2), kv = new Float32Array(4 * 2);
    expect(() => attention(q, kv, kv, 4, 1, 1, 2, 1, [{ start: 0, len: 2 }, { start: 2, len: 2 }], caches)).toThrow(/cache 1 has 1 of 2 rows; 2 more do not fit/);
    expect(caches.map((c) => c.len)).toEqual([0, 1]);
  });
});
