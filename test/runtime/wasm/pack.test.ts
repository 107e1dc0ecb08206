// runtime/wasm/pack.ts' packing loops against their layouts written out element by element (the
// formula of runtime/wasm/kernels.ts `pack` and `packQuant`), on random weights with N not a
// multiple of the panel width, both orientations and both code widths: the same bytes.

import { describe, expect, it } from 'vitest';
import { QUANT_GROUP, quantize, type QuantTensor } from '../../../runtime/quant.ts';
import { fromF32 } from '../../../runtime/tensor.ts';
import { QUANT_LAYOUT } from '../../../runtime/wasm/layout.ts';
import { packPanels, packQuantPanels } from '../../../runtime/wasm/pack.ts';
import { prng, uniform } from '../cpu/check.ts';

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

describe('packPanels', () => {
  it('f32 bits and bf16, [N, K] and transposed [K, N]: W[n, k] at (n/NR)·K·NR + k·NR + n%NR', () => {
    const rand = prng(3);
    for (const [N, K] of [[21, 40], [8, 3], [1, 17], [67, 64]] as const) {
      const NR = 8, P = Math.ceil(N / NR);
      const w = new Uint32Array(uniform(rand, N * K).buffer);
      for (const transposed of [false, true]) {
        for (const wide of [true, false]) {
          const src = wide ? w : Uint16Array.from(w, (x) => x >>> 16);
          const dst = wide ? new Uint32Array(P * K * NR).fill(7) : new Uint16Array(P * K * NR).fill(7);
          const want = dst.slice();
          for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[Math.floor(n / NR) * K * NR + k * NR + (n % NR)] = src[transposed ? k * N + n : n * K + k]!;
          packPanels(dst, src, N, K, NR, transposed);
          const d = firstDiff(dst, want);
          expect(d, `[${N}, ${K}] transposed ${transposed} ${wide ? 'f32' : 'bf16'}: element ${d} is ${dst[d]}, want ${want[d]}`).toBe(-1);
        }
      }
    }
  });
});

describe('packQuantPanels', () => {
  it('q8 and q4 codes, scale bits and (q8) per-group sums as the layout places them (padding columns included), nothing past', () => {
    const rand = prng(5);
    for (const [N, K] of [[13, 64], [16, 32], [3, 96]] as const) {
      const t = fromF32(uniform(rand, N * K), [N, K], 'f32');
      for (const dtype of ['q8', 'q4'] as const) {
        const r = quantize(t, dtype);
        if ('reason' in r) throw new Error(r.reason);
        const q: QuantTensor = r.q, L = QUANT_LAYOUT[dtype], G = K / QUANT_GROUP, P = Math.ceil(N / 8);
        // a group's bytes as the layout's fields add up: codes (8 or 4 bits a weight), NR f16 scales, q8's NR i16 sums
        expect(L.group, dtype).toBe(32 * 8 * (dtype === 'q8' ? 1 : 0.5) + 16 + (dtype === 'q8' ? 16 : 0));
        const size = P * G * L.group;
        // one group more than the panels fill, poisoned, to catch a write past them
        const got = new Uint8Array(size + L.group).fill(0xa5), want = new Uint8Array(size + L.group);
        got.fill(0, 0, size);
        want.fill(0xa5, size);
        packQuantPanels(dtype === 'q4', q.codes, q.scales, N, K, L, got.subarray(0, size));
        // the layout, element by element
        const w16 = new Uint16Array(want.buffer), wi16 = new Int16Array(want.buffer);
        for (let n = 0; n < P * 8; n++) {
          const p = n >> 3, c = n & 7;
          for (let g = 0; g < G; g++) {
            const base = (p * G + g) * L.group;
            let sum = 0;
            for (let i = 0; i < QUANT_GROUP; i++) {
              const e = n * K + g * QUANT_GROUP + i;
              const code = n >= N ? 0 : dtype === 'q8' ? (q.codes as Int8Array)[e]! : ((q.codes[e >> 1]! >> (4 * (e & 1))) & 15) - 8;
              sum += code;
              if (dtype === 'q8') want[base + (i >> 2) * 32 + (c >> 2) * 16 + (c & 3) * 4 + (i & 3)] = code & 255;
              else want[base + (i >> 2) * 16 + (c & 3) * 4 + (i & 3)]! |= (code + 8) << (4 * (c >> 2));
            }
            if (n < N) {
              w16[(base + L.scales) / 2 + c] = q.scales[n * G + g]!;
              if (dtype === 'q8') wi16[(base + L.corr!) / 2 + c] = sum;
            }
          }
        }
        const d = firstDiff(got, want);
        expect(d, `${dtype} [${N}, ${K}]: byte ${d} is ${got[d]}, want ${want[d]}`).toBe(-1);
      }
    }
  });
});
