// The q8/q4 weight formats (runtime/quant.ts): the reference definition, error bounds of the scale
// rule on random and trained weights, packing order, edge cases and the compressed-tensors packing.

import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type QuantDType, type QuantTensor, QUANT_GROUP, codeAt, concatQuant, dequantizeRows, fromPackedInt32, quantBytes,
  quantTensorBytes, quantize, toPackedInt32,
} from '../../runtime/quant.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { type Tensor, f16ToF32, f32Tensor, fromF32, toF32 } from '../../runtime/tensor.ts';
import { prng, uniform } from './cpu/check.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32/model.safetensors');
const HI: Record<QuantDType, number> = { q8: 127, q4: 7 };

function quantOk(t: Tensor, dtype: QuantDType, divisors?: readonly number[]): QuantTensor {
  const r = quantize(t, dtype, divisors);
  if ('reason' in r) throw new Error(`not quantised: ${r.reason}`);
  return r.q;
}

/** Squared error of `q` against `w`, and the per-element bound check: an element whose code is not
 *  at the top of the range is within half a step; a clamped one within max|w| − hi·scale. */
function checkBounds(w: Float32Array, q: QuantTensor, what: string): number {
  const [N, K] = q.shape;
  const deq = dequantizeRows(q, 0, N);
  let sse = 0;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < K / QUANT_GROUP; g++) {
      const s = f16ToF32(q.scales[n * (K / QUANT_GROUP) + g]!);
      let amax = 0;
      for (let i = 0; i < QUANT_GROUP; i++) amax = Math.max(amax, Math.abs(w[n * K + g * QUANT_GROUP + i]!));
      for (let i = 0; i < QUANT_GROUP; i++) {
        const at = n * K + g * QUANT_GROUP + i;
        const err = Math.abs(w[at]! - deq[at]!);
        sse += err * err;
        const c = codeAt(q, at);
        // a scale that underflows f16 to 0 leaves every code 0: error up to max|w|
        const bound = s === 0 ? amax : c === HI[q.dtype] ? Math.max(s / 2, amax - HI[q.dtype] * s) : s / 2;
        if (err > bound * (1 + 1e-6) + 1e-30) throw new Error(`${what}: element ${at} error ${err} over bound ${bound} (code ${c}, scale ${s})`);
      }
    }
  }
  return sse;
}

describe('quantize / dequantizeRows', () => {
  it('follows the definition value = code · f16(scale) in f32, row ranges included', () => {
    const rand = prng(1);
    for (const dtype of ['q8', 'q4'] as const) {
      const [N, K] = [5, 96];
      const q = quantOk(f32Tensor([N, K], uniform(rand, N * K, -2, 2)), dtype);
      const part = dequantizeRows(q, 2, 2);
      for (let r = 0; r < 2; r++) {
        for (let k = 0; k < K; k++) {
          const i = (2 + r) * K + k;
          const ref = Math.fround(codeAt(q, i) * f16ToF32(q.scales[(2 + r) * (K / 32) + (k >> 5)]!));
          expect(part[r * K + k], `${dtype} element ${i}`).toBe(ref);
        }
      }
      expect(() => dequantizeRows(q, 4, 2)).toThrow(RangeError);
    }
  });

  it('keeps each element within half a step (clamped ones within max|w| − hi·scale), random weights', () => {
    const rand = prng(2);
    for (const dtype of ['q8', 'q4'] as const) {
      for (const [N, K, scale] of [[3, 32, 1], [7, 256, 1e-3], [4, 64, 300]] as const) {
        const w = uniform(rand, N * K, -scale, scale);
        // a few outliers so the rule's clamping is exercised
        w[5] = 9 * scale;
        w[N * K - 3] = -7 * scale;
        checkBounds(w, quantOk(f32Tensor([N, K], w), dtype), `${dtype} [${N}, ${K}]`);
      }
    }
  });

  it('q4 search: never worse than max|w|/7 alone, per tensor, on random and trained weights', () => {
    const rand = prng(3);
    const w = new Float32Array(64 * 128);
    for (let i = 0; i < w.length; i++) w[i] = (rand() - 0.5) * (rand() < 0.02 ? 20 : 1);
    const t = f32Tensor([64, 128], w);
    const searched = checkBounds(w, quantOk(t, 'q4'), 'q4 searched');
    const plain = checkBounds(w, quantOk(t, 'q4', [7]), 'q4 maxabs/7');
    expect(searched).toBeLessThan(plain);
    const ckpt = openCheckpoint(TINY_A);
    try {
      for (const name of ['model.layers.0.mamba.in_proj.weight', 'model.layers.2.self_attn.q_proj.weight', 'model.embed_tokens.weight']) {
        const tw = ckpt.read(name);
        const f = toF32(tw);
        for (const dtype of ['q8', 'q4'] as const) {
          const sse = checkBounds(f, quantOk(tw, dtype), `${name} ${dtype}`);
          const energy = f.reduce((a, v) => a + v * v, 0);
          // relative RMS error: q8 well under 1 %, q4 under 12 % on this trained model
          expect(Math.sqrt(sse / energy), `${name} ${dtype}`).toBeLessThan(dtype === 'q8' ? 0.01 : 0.12);
        }
        const plain4 = checkBounds(f, quantOk(tw, 'q4', [7]), `${name} q4 maxabs/7`);
        expect(checkBounds(f, quantOk(tw, 'q4'), name)).toBeLessThanOrEqual(plain4);
      }
    } finally {
      ckpt.close();
    }
  });

  it('reads bf16 and f16 tensors as their f32 values', () => {
    const rand = prng(4);
    const w = uniform(rand, 4 * 64, -1, 1);
    for (const dt of ['bf16', 'f16'] as const) {
      const t = fromF32(w, [4, 64], dt);
      for (const dtype of ['q8', 'q4'] as const) {
        expect(quantOk(t, dtype)).toEqual(quantOk(f32Tensor([4, 64], toF32(t)), dtype));
      }
    }
  });

  it('an all-zero group has scale 0 and code 0; tiny groups stay finite', () => {
    const w = new Float32Array(2 * 64);
    for (let i = 32; i < 64; i++) w[i] = 1e-12 * (i - 40);
    for (let i = 64; i < 128; i++) w[i] = i - 100;
    for (const dtype of ['q8', 'q4'] as const) {
      const q = quantOk(f32Tensor([2, 64], w), dtype);
      expect(q.scales[0]).toBe(0);
      for (let i = 0; i < 32; i++) expect(codeAt(q, i)).toBe(0);
      if (dtype === 'q4') expect(q.codes[0]).toBe(0x88);
      const deq = dequantizeRows(q, 0, 2);
      for (let i = 0; i < 32; i++) expect(deq[i]).toBe(0);
      for (let i = 32; i < 64; i++) expect(Math.abs(deq[i]! - w[i]!)).toBeLessThanOrEqual(32e-12);
      checkBounds(w, q, `${dtype} zero/tiny`);
    }
  });

  it('huge values: quantised while the scale fits f16, refused with the group named beyond it', () => {
    for (const dtype of ['q8', 'q4'] as const) {
      const fits = new Float32Array(32).fill(1);
      fits[3] = 60000 * HI[dtype];
      const q = quantOk(f32Tensor([1, 32], fits), dtype);
      checkBounds(fits, q, `${dtype} large`);
      expect(dequantizeRows(q, 0, 1)[3]).toBeCloseTo(60000 * HI[dtype], -2);
      const over = new Float32Array(64).fill(1);
      over[40] = -70000 * 128;
      const r = quantize(f32Tensor([1, 64], over), dtype);
      expect('reason' in r && r.reason).toMatch(/group \[0, 32\.\.63\].*f16/);
    }
  });

  it('keeps weights it cannot group, with the reason', () => {
    const why = (shape: number[], v = 0) => {
      const r = quantize(f32Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v)), 'q4');
      return 'reason' in r ? r.reason : null;
    };
    expect(why([4, 48])).toMatch(/K = 48 is not a multiple of 32/);
    expect(why([64])).toMatch(/rank 1/);
    expect(why([2, 32], NaN)).toMatch(/non-finite value NaN at \[0, 0\]/);
    expect(why([2, 32], 0)).toBeNull();
  });
});

describe('layout', () => {
  it('q4: four bytes read little-endian as a u32 hold 8 consecutive codes, element i at bits 4i..4i+3', () => {
    const codes = [-8, -7, -1, 0, 1, 3, 6, 7];
    // scale 1 exactly: max|w| = 8 and the search keeps the divisor 8 (zero error)
    const w = new Float32Array(32);
    for (let i = 0; i < 32; i++) w[i] = codes[i % 8]!;
    const q = quantOk(f32Tensor([1, 32], w), 'q4');
    expect(f16ToF32(q.scales[0]!)).toBe(1);
    const words = new DataView(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength);
    for (let word = 0; word < 4; word++) {
      const u = words.getUint32(word * 4, true);
      for (let i = 0; i < 8; i++) expect(((u >>> (4 * i)) & 15) - 8, `word ${word} element ${i}`).toBe(codes[i]);
    }
    expect(q.codes[0]).toBe((-8 + 8) | ((-7 + 8) << 4));
    expect(quantTensorBytes(q)).toBe(quantBytes('q4', 1, 32));
  });

  it('compressed-tensors packing: int32 words round-trip, q8 offset by 128, q4 bit-identical to the codes', () => {
    const rand = prng(5);
    for (const dtype of ['q8', 'q4'] as const) {
      const q = quantOk(f32Tensor([3, 64], uniform(rand, 192, -1, 1)), dtype);
      const packed = toPackedInt32(q);
      expect(packed.length).toBe((3 * 64 * (dtype === 'q8' ? 8 : 4)) / 32);
      for (let i = 0; i < 3 * 64; i++) {
        const per = dtype === 'q8' ? 4 : 8;
        const bits = 32 / per;
        const field = (packed[Math.floor(i / per)]! >>> (bits * (i % per))) & ((1 << bits) - 1);
        expect(field - (1 << (bits - 1)), `${dtype} element ${i}`).toBe(codeAt(q, i));
      }
      expect(fromPackedInt32(dtype, q.shape, packed, q.scales)).toEqual(q);
      expect(quantTensorBytes(q)).toBe(quantBytes(dtype, 3, 64));
    }
  });

  it('concatQuant along N equals quantising the concatenated weight', () => {
    const rand = prng(6);
    for (const dtype of ['q8', 'q4'] as const) {
      const a = uniform(rand, 2 * 64), b = uniform(rand, 5 * 64);
      const both = new Float32Array(7 * 64);
      both.set(a);
      both.set(b, a.length);
      const cat = concatQuant([quantOk(f32Tensor([2, 64], a), dtype), quantOk(f32Tensor([5, 64], b), dtype)]);
      expect(cat).toEqual(quantOk(f32Tensor([7, 64], both), dtype));
    }
    expect(() => concatQuant([quantOk(f32Tensor([1, 32], new Float32Array(32)), 'q8'), quantOk(f32Tensor([1, 64], new Float32Array(64)), 'q8')])).toThrow(RangeError);
  });
});
