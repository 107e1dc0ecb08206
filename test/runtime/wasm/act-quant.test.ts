// 8-bit activations (LoadOptions.activations 'q8', runtime/act-quant.ts): the rounding's definition
// against an independent float64 statement of it (ties, zero and tiny groups, subnormals, the largest
// finite values, non-finite groups), then the wasm products that use it against the CPU reference
// (runtime/cpu/linear.ts over the rounded rows): bit for bit where every sum is exact in f32 (power-of-
// two weight scales, two groups: the integer-dot GEMV's digits and scale then cannot differ from the
// definition unseen), within 1e-5 of the scale on random weights, for the integer-dot GEMV (one and
// two digits), the integer GEMM and the dequantising path, one and three threads, both module variants.

import { beforeAll, describe, expect, it } from 'vitest';
import { wasmKernels } from '../../../codegen/wasm/assemble.ts';
import { WASM_TARGETS, type WasmTarget } from '../../../codegen/wasm/target.ts';
import { quantizeActivations } from '../../../runtime/act-quant.ts';
import { linear } from '../../../runtime/cpu/linear.ts';
import { type QuantDType, type QuantTensor, packNibbles } from '../../../runtime/quant.ts';
import { spreadQuantWeight } from '../../helpers/quant.ts';
import { A8_DOT_ROWS, WasmKernels } from '../../../runtime/wasm/kernels.ts';
import { wasmModule } from '../../../runtime/wasm/module.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

const modules = new Map<WasmTarget, WebAssembly.Module>();
beforeAll(async () => {
  for (const t of WASM_TARGETS) modules.set(t, await wasmModule(await wasmKernels(t)));
});

/** The definition in float64, written apart from the implementation: s the least power of two with
 *  m <= 127·s (searched, not computed from bits), q = x / s rounded half to even. */
function reference(x: readonly number[]): number[] {
  const m = Math.max(...x.map(Math.abs));
  if (!Number.isFinite(m)) return [...x];
  if (m < 2 ** -96) return x.map(() => 0);  // +0
  let e = 0;
  while (m > 127 * 2 ** e) e++;
  while (m <= 127 * 2 ** (e - 1)) e--;
  const s = 2 ** e;
  return x.map((v) => {
    const r = v / s, f = Math.floor(r), d = r - f;
    const q = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
    return q * s + 0;
  });
}

function rounded(x: Float32Array, T: number, K: number): Float32Array {
  const out = new Float32Array(T * K);
  quantizeActivations(x, 0, K, T, K, out);
  return out;
}

describe('the rounding (runtime/act-quant.ts)', () => {
  const groups: [string, number[]][] = [];
  const rand = prng(1);
  for (let i = 0; i < 40; i++) {
    const mag = 2 ** Math.floor(rand() * 60 - 30);
    groups.push([`random, magnitude ${mag}`, Array.from(uniform(rand, 32, -mag, mag))]);
  }
  // ties: (k + 1/2)·s for a group whose scale is s = 1 (maximum 127), both signs, odd and even k
  groups.push(['ties', [127, ...Array.from({ length: 31 }, (_, i) => (i - 15) + 0.5)]]);
  groups.push(['ties at a small scale', [127 / 1024, ...Array.from({ length: 31 }, (_, i) => ((i - 15) + 0.5) / 1024)]]);
  // maxima at the binade edges: 127/64·2^E keeps e = E - 6, just above moves it up
  for (const m of [127 / 64, Math.fround(127 / 64 + 2 ** -22), 1, Math.fround(2 - 2 ** -23), 127, 128, 63.5, 63.75]) {
    groups.push([`maximum ${m}`, [m, ...Array.from(uniform(rand, 31, -m, m))]]);
  }
  groups.push(['zeros', Array(32).fill(0)]);
  groups.push(['tiny (below 2^-96)', [2 ** -97, ...Array(31).fill(2 ** -100)]]);
  groups.push(['just at 2^-96', [2 ** -96, 2 ** -100, ...Array(30).fill(-(2 ** -97))]]);
  groups.push(['subnormals beside a normal maximum', [2 ** -90, 1e-40, -1e-44, ...Array(29).fill(3e-39)]]);
  groups.push(['largest finite', [3.4028234663852886e38, -1e38, 1, ...Array(29).fill(2e37)]]);
  groups.push(['NaN', [1, NaN, ...Array(30).fill(0.5)]]);
  groups.push(['infinity', [1, -Infinity, ...Array(30).fill(0.5)]]);
  for (const [name, g] of groups) {
    it(`${name}: equals the float64 statement`, () => {
      const x = Float32Array.from(g);
      const got = rounded(x, 1, 32), want = Float32Array.from(reference(Array.from(x)));
      for (let i = 0; i < 32; i++) expect(Object.is(got[i], want[i]) || (Number.isNaN(got[i]!) && Number.isNaN(want[i]!)), `[${i}] x ${x[i]}: got ${got[i]}, want ${want[i]}`).toBe(true);
    });
  }

  it('rows and strides: each row and group by itself, in place too', () => {
    const r = prng(2);
    const [T, K, ld] = [3, 96, 100];
    const x = uniform(r, T * ld, -4, 4);
    const out = new Float32Array(T * K);
    quantizeActivations(x, 2, ld, T, K, out);
    const inPlace = new Float32Array(T * K);
    for (let t = 0; t < T; t++) inPlace.set(x.subarray(2 + t * ld, 2 + t * ld + K), t * K);
    quantizeActivations(inPlace, 0, K, T, K, inPlace);
    expect(Array.from(inPlace)).toEqual(Array.from(out));
    for (let t = 0; t < T; t++) {
      for (let g = 0; g < K; g += 32) {
        expect(Array.from(out.subarray(t * K + g, t * K + g + 32))).toEqual(Array.from(Float32Array.from(reference(Array.from(x.subarray(2 + t * ld + g, 2 + t * ld + g + 32))))));
      }
    }
  });
});

/** A [N, K] weight of random codes and power-of-two scales 2^-3..2^2 (so every product is exact). */
function exactWeight(rand: () => number, N: number, K: number, dtype: QuantDType): QuantTensor {
  const lim = dtype === 'q8' ? 127 : 7;
  const codes = Int8Array.from({ length: N * K }, () => Math.floor(rand() * (2 * lim + 1)) - lim + (dtype === 'q4' && rand() < 0.05 ? -1 : 0));
  // f16 bits of 2^p: (p + 15) << 10
  const scales = Uint16Array.from({ length: (N * K) / 32 }, () => (Math.floor(rand() * 6) - 3 + 15) << 10);
  return { dtype, shape: [N, K], codes: dtype === 'q8' ? codes : packNibbles(codes), scales };
}

/** Activations with ties at their groups' scales and a spread of group magnitudes (`sameScale`: every
 *  group's maximum 127·2^-3, so every rounded value is a multiple of 2^-3 and f32 sums in any order are exact). */
function activations(rand: () => number, T: number, K: number, sameScale = false): Float32Array {
  const x = uniform(rand, T * K, -2, 2);
  for (let i = 0; i < x.length; i += 32) {
    const p = sameScale ? -3 : Math.floor(rand() * 20) - 10;
    for (let j = i; j < i + 32; j++) x[j] = Math.fround(x[j]! * 2 ** p);
    // a tie: a maximum of 127·2^p... and one value half-way between two steps
    if (sameScale || rand() < 0.5) { x[i] = 127 * 2 ** p; x[i + 1] = (Math.floor(rand() * 100) - 50 + 0.5) * 2 ** p; }
    if (sameScale) for (let j = i + 2; j < i + 32; j++) x[j] = Math.fround(x[j]! * 30);
  }
  return x;
}

function scaleOf(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

for (const t of WASM_TARGETS) describe(`the ${t.fma ? 'fma' : 'plain'} module with 8-bit activations`, () => {
  for (const dtype of ['q8', 'q4'] as const) {
    for (const T of [1, 2, t.quantDotRows || 1, t.quantDotRows + 3, 15]) {
      // the integer-dot GEMV sums each group exactly and adds two groups with one rounding, as the
      // reference rounds its exact double sum once; the dequantising path sums in k order in f32,
      // exactly where every rounded value is a multiple of one unit (one scale for every group).
      // The integer GEMM (codegen/wasm/gemm8.ts) does the GEMV's arithmetic. Which one runs:
      // runtime/wasm/kernels.ts A8_DOT_ROWS; the plain module dequantises
      const path = !t.quantDotRows ? 'rounded tiles' : T <= A8_DOT_ROWS[dtype] ? 'integer dot' : 'integer GEMM';
      it(`${dtype}, ${T} row(s), ${path}: exact sums equal the reference bit for bit`, () => {
        const rand = prng(T * 10 + (dtype === 'q4' ? 1 : 0));
        const [K, N] = [64, 24];
        const q = exactWeight(rand, N, K, dtype);
        const x = activations(rand, T, K, path === 'rounded tiles');
        const wk = new WasmKernels(modules.get(t)!, 1);
        wk.activations = 'q8';
        try {
          const got = wk.linear(wk.packQuant(q), x, T, null), want = linear(rounded(x, T, K), T, K, q, null);
          expect(Array.from(got)).toEqual(Array.from(want));
          // and the rounding is not a no-op here
          expect(Array.from(linear(x, T, K, q, null))).not.toEqual(Array.from(want));
        } finally {
          wk.close();
        }
      });

      for (const threads of [1, 3]) {
        it(`${dtype}, ${T} row(s), ${threads} thread(s): random weights within 1e-5 of the scale`, () => {
          const rand = prng(T * 100 + threads + (dtype === 'q4' ? 5 : 0));
          const [K, N] = [480, 333];
          const q = spreadQuantWeight(rand, N, K, dtype);
          const x = activations(rand, T, K);
          const wk = new WasmKernels(modules.get(t)!, threads);
          wk.activations = 'q8';
          try {
            const got = wk.linear(wk.packQuant(q), x, T, null), want = linear(rounded(x, T, K), T, K, q, null);
            expectClose(got, want, { atol: 1e-5 * scaleOf(want), rtol: 0 }, `${dtype} T=${T}`);
          } finally {
            wk.close();
          }
        });
      }
    }

    it(`${dtype}: a group holding NaN or an infinity reaches the product as it is`, () => {
      const rand = prng(11);
      const [K, N] = [96, 16];
      const q = spreadQuantWeight(rand, N, K, dtype);
      const wk = new WasmKernels(modules.get(t)!, 1);
      wk.activations = 'q8';
      try {
        for (const bad of [NaN, -Infinity]) {
          const x = uniform(rand, 2 * K);
          x[K + 40] = bad;
          const got = wk.linear(wk.packQuant(q), x, 2, null), want = linear(rounded(x, 2, K), 2, K, q, null);
          expect(want.slice(N).every((v) => !Number.isFinite(v)), 'the bad row\'s results are not finite').toBe(true);
          for (let i = 0; i < want.length; i++) {
            if (Number.isFinite(want[i]!)) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * scaleOf(want.slice(0, N)));
            else expect(Number.isNaN(got[i]!) ? Number.isNaN(want[i]!) : got[i] === want[i], `[${i}]`).toBe(true);
          }
        }
      } finally {
        wk.close();
      }
    });
  }
});
