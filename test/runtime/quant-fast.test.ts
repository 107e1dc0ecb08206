// runtime/quant.ts' `quantize` (tight loops: a table for f16 scales, the error sums stopped once past
// the best, codes written once for the chosen scale) against the definition written out plainly
// (each candidate's full error sum, codes kept per candidate): the same codes and scales, bit for
// bit, on random weights of several magnitudes and dtypes, on trained ones, and on near-tie groups.

import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type QuantDType, Q4_DIVISORS, QUANT_GROUP, type QuantResult, packNibbles, quantize } from '../../runtime/quant.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { type Tensor, f16ToF32, f32ToF16, fromF32, readF32 } from '../../runtime/tensor.ts';
import { prng, uniform } from './cpu/check.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a');

/** The scale rule as runtime/quant.ts' header defines it, in the plainest form. */
function quantizePlain(t: Tensor, dtype: QuantDType, divisors?: readonly number[]): QuantResult {
  const [N, K] = t.shape as [number, number];
  const lo = dtype === 'q8' ? -128 : -8, hi = dtype === 'q8' ? 127 : 7;
  const cands = divisors ?? (dtype === 'q8' ? [127] : Q4_DIVISORS);
  const G = K / QUANT_GROUP;
  const scales = new Uint16Array(N * G);
  const codes = new Int8Array(N * K);
  const row = new Float32Array(K);
  const trial = new Int8Array(QUANT_GROUP);
  for (let n = 0; n < N; n++) {
    readF32(t, n * K, K, row);
    for (let g = 0; g < G; g++) {
      const base = g * QUANT_GROUP;
      let amax = 0;
      for (let i = 0; i < QUANT_GROUP; i++) {
        const v = row[base + i]!;
        if (!Number.isFinite(v)) return { reason: `non-finite value ${v} at [${n}, ${base + i}]` };
        amax = Math.max(amax, Math.abs(v));
      }
      let bestBits = 0;
      let bestErr = amax === 0 ? 0 : Infinity;
      for (const d of amax === 0 ? [] : cands) {
        const bits = f32ToF16(amax / d);
        const s = f16ToF32(bits);
        if (!Number.isFinite(s)) continue;
        let err = 0;
        for (let i = 0; i < QUANT_GROUP; i++) {
          const v = row[base + i]!;
          const x = s === 0 ? 0 : v / s;
          const r = x < 0 ? -Math.floor(0.5 - x) : Math.floor(x + 0.5);
          const c = Math.min(hi, Math.max(lo, r));
          trial[i] = c;
          const e = v - c * s;
          err += e * e;
        }
        if (err < bestErr) {
          bestErr = err;
          bestBits = bits;
          codes.set(trial, n * K + base);
        }
      }
      if (bestErr === Infinity) return { reason: `group [${n}, ${base}..${base + QUANT_GROUP - 1}] has max|w| = ${amax}, beyond an f16 scale's range` };
      scales[n * G + g] = bestBits;
    }
  }
  return { q: { dtype, shape: [N, K], codes: dtype === 'q8' ? codes : packNibbles(codes), scales } };
}

function expectSame(t: Tensor, dtype: QuantDType, what: string, divisors?: readonly number[]): void {
  const a = quantize(t, dtype, divisors), b = quantizePlain(t, dtype, divisors);
  if ('reason' in a || 'reason' in b) {
    expect('reason' in a && 'reason' in b ? a.reason : a, what).toEqual('reason' in b ? b.reason : b);
    return;
  }
  const diff = (x: ArrayLike<number>, y: ArrayLike<number>) => { for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i; return -1; };
  const dc = diff(a.q.codes, b.q.codes), ds = diff(a.q.scales, b.q.scales);
  expect(dc, `${what} ${dtype}: first differing code byte ${dc}: ${a.q.codes[dc]} vs ${b.q.codes[dc]}`).toBe(-1);
  expect(ds, `${what} ${dtype}: first differing scale ${ds}: ${a.q.scales[ds]} vs ${b.q.scales[ds]}`).toBe(-1);
  expect(a.q.codes.length).toBe(b.q.codes.length);
}

describe('quantize equals the plain definition bit for bit', () => {
  it('random weights, f32 / bf16 / f16, magnitudes 1e-9 to 1e4 (subnormal and zero scales included)', () => {
    const rand = prng(7);
    for (const mag of [1e-9, 1e-6, 0.02, 1, 1e4]) {
      const w = uniform(rand, 48 * 256, -mag, mag);
      for (let i = 0; i < w.length; i += 97) w[i] = 0; // some zeros, and one all-zero group
      w.fill(0, 32, 64);
      for (const dtype of ['f32', 'bf16', 'f16'] as const) {
        const t = fromF32(w, [48, 256], dtype);
        for (const q of ['q8', 'q4'] as const) expectSame(t, q, `${dtype} ±${mag}`);
      }
    }
  });

  it('near-tie groups (values on code boundaries, few distinct levels) and other divisors', () => {
    const rand = prng(11);
    const N = 64, K = 128, w = new Float32Array(N * K);
    for (let i = 0; i < w.length; i++) w[i] = (Math.floor(rand() * 17) - 8) * 0.125 + (rand() < 0.1 ? 0.0625 : 0);
    const t = fromF32(w, [N, K], 'f32');
    for (const q of ['q8', 'q4'] as const) expectSame(t, q, 'levels');
    expectSame(t, 'q4', 'divisors 5..8', [5, 6, 7, 8]);
  });

  it('refusals: non-finite values and scales beyond f16, with the same reason', () => {
    const w = new Float32Array(4 * 64).fill(0.5);
    w[70] = NaN;
    expectSame(fromF32(w, [4, 64], 'f32'), 'q4', 'NaN');
    w[70] = 1e9;
    expectSame(fromF32(w, [4, 64], 'f32'), 'q8', 'huge');
  });

  it('tiny-bamba-a, f32 and bf16: every candidate weight', () => {
    for (const dtype of ['f32', 'bf16']) {
      const ckpt = openCheckpoint(resolve(TINY_A, dtype));
      try {
        let n = 0;
        for (const info of ckpt.tensors.values()) {
          if (info.shape.length !== 2 || info.shape[1]! % QUANT_GROUP !== 0) continue;
          const t = ckpt.read(info.name);
          for (const q of ['q8', 'q4'] as const) expectSame(t, q, `${dtype} ${info.name}`);
          n++;
        }
        expect(n).toBeGreaterThan(5);
      } finally {
        ckpt.close();
      }
    }
  });
});
