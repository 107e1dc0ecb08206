// The wasm products over q8/q4 weights against the CPU reference of the same format
// (runtime/cpu/linear.ts, which dequantises exactly per runtime/quant.ts and sums in double), on
// random weights and activations, with the memory past the packed weight poisoned (NaN bytes) before
// each product: K of an odd number of groups, N leaving a partial panel, 1/2/3/7/64 rows (the
// integer-dot GEMV up to `quantDotRows`, then panels dequantised per cache block), one and three
// threads, both module variants. Also: the dequantising path alone equals the reference bit for
// bit in its weights (an f32 weight of the dequantised values gives the same products), a row that
// is not finite takes the dequantising path (NaN and infinities as the reference has them).

import { beforeAll, describe, expect, it } from 'vitest';
import { wasmKernels } from '../../../codegen/wasm/assemble.ts';
import { WASM_TARGETS, type WasmTarget } from '../../../codegen/wasm/target.ts';
import { linear } from '../../../runtime/cpu/linear.ts';
import { type QuantTensor, dequantizeRows } from '../../../runtime/quant.ts';
import { spreadQuantWeight } from '../../helpers/quant.ts';
import { WasmKernels } from '../../../runtime/wasm/kernels.ts';
import { wasmModule } from '../../../runtime/wasm/module.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

const modules = new Map<WasmTarget, WebAssembly.Module>();
beforeAll(async () => {
  for (const t of WASM_TARGETS) modules.set(t, await wasmModule(await wasmKernels(t)));
});
const variantName = (t: WasmTarget) => (t.fma ? 'fma' : 'plain');

/** `wk.linear` run once (so its scratch exists), then again with every byte of the memory past
 *  the packed weight (x, y, the threads' panel scratch) set to 0xff, a NaN, first. */
function poisonedLinear(wk: WasmKernels, q: QuantTensor, x: Float32Array, T: number): Float32Array {
  const p = wk.packQuant(q);
  const top = wk.allocate(64);
  wk.linear(p, x, T, null);
  new Uint8Array(wk.memory.buffer, top).fill(0xff);
  return wk.linear(p, x, T, null);
}

/**
 * Within 1e-5 of the output's scale (its largest |value|): f32 sums in k order against the
 * reference's double ones err in proportion to the row's terms, not to each result; the
 * integer-dot GEMV also rounds x to 20 bits of its group's maximum (relative 2^-20 ≈ 1e-6). A
 * wrong code, scale, column or group is off by far more.
 */
function expectNear(got: Float32Array, want: Float32Array, what: string): void {
  let scale = 0;
  for (const v of want) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const bad = Array.from(want).findIndex((v, i) => (Number.isFinite(v) ? false : !(Object.is(v, got[i]) || (Number.isNaN(v) && Number.isNaN(got[i])))));
  if (bad >= 0) throw new Error(`${what}: at [${bad}] got ${got[bad]}, want ${want[bad]}`);
  const fin = (a: Float32Array) => a.map((v, i) => (Number.isFinite(want[i]) ? v : 0));
  expectClose(fin(got), fin(want), { atol: 1e-5 * scale, rtol: 0 }, `${what} (scale ${scale})`);
}

for (const t of WASM_TARGETS) describe(`the ${variantName(t)} module`, () => {
  const CASES: [number, number, number][] = [
    [1, 96, 13], [2, 160, 37], [3, 224, 8], [7, 96, 21], [64, 160, 50], [1, 32, 5], [t.quantDotRows || 1, 288, 19], [t.quantDotRows + 1, 96, 11],
  ];
  for (const dtype of ['q8', 'q4'] as const) {
    for (const [T, K, N] of CASES) {
      for (const threads of [1, 3]) {
        it(`${dtype} T=${T} K=${K} N=${N}, ${threads} thread(s) = CPU reference`, () => {
          const rand = prng(T * 1000 + K * 10 + N + (dtype === 'q4' ? 7 : 0));
          const q = spreadQuantWeight(rand, N, K, dtype);
          const x = uniform(rand, T * K, -2, 2);
          const want = linear(x, T, K, q, null);
          const wk = new WasmKernels(modules.get(t)!, threads);
          try {
            expectNear(poisonedLinear(wk, q, x, T), want, `${dtype} T=${T} K=${K} N=${N}`);
          } finally {
            wk.close();
          }
        });
      }
    }

    it(`${dtype}: products large enough to split, three threads equal one bit for bit (1 and 40 rows)`, () => {
      const rand = prng(5);
      const [K, N] = [480, 330];
      const q = spreadQuantWeight(rand, N, K, dtype);
      const one = new WasmKernels(modules.get(t)!, 1), three = new WasmKernels(modules.get(t)!, 3);
      try {
        const [p1, p3] = [one.packQuant(q), three.packQuant(q)];
        for (const T of [1, 40, 1, 3]) {
          expect(T * K * N).toBeGreaterThanOrEqual(t.splitFrom);
          const x = uniform(rand, T * K, -3, 3);
          const a = one.linear(p1, x, T, null), b = three.linear(p3, x, T, null);
          expect(Array.from(b)).toEqual(Array.from(a));
          expectNear(a, linear(x, T, K, q, null), `${dtype} T=${T}`);
        }
      } finally {
        one.close();
        three.close();
      }
    });

    it(`${dtype}: panels dequantised per cache block give what the same values as f32 weights give, bit for bit`, () => {
      const rand = prng(9);
      const [T, K, N] = [t.quantDotRows + 9, 224, 29];
      const q = spreadQuantWeight(rand, N, K, dtype);
      const f: Float32Array = dequantizeRows(q, 0, N);
      const wk = new WasmKernels(modules.get(t)!, 1);
      try {
        const x = uniform(rand, T * K, -2, 2);
        const a = wk.linear(wk.packQuant(q), x, T, null), b = wk.linear(wk.pack({ dtype: 'f32', shape: [N, K], data: f }), x, T, null);
        expect(Array.from(a)).toEqual(Array.from(b));
      } finally {
        wk.close();
      }
    });

    it(`${dtype}: a row holding NaN or an infinity gives what the reference gives`, () => {
      const rand = prng(10);
      const [K, N] = [96, 16];
      const q = spreadQuantWeight(rand, N, K, dtype);
      const wk = new WasmKernels(modules.get(t)!, 1);
      try {
        for (const bad of [NaN, Infinity]) {
          const x = uniform(rand, 2 * K);
          x[K + 40] = bad;
          const got = wk.linear(wk.packQuant(q), x, 2, null), want = linear(x, 2, K, q, null);
          expect(want.slice(N).some((v) => !Number.isFinite(v)), 'the bad row\'s results are not finite').toBe(true);
          expectNear(got, want, `x holding ${bad}`);
        }
      } finally {
        wk.close();
      }
    });
  }
});

it('the fma variant has the integer-dot GEMV; the plain one dequantises for every row count', () => {
  const [fma, plain] = WASM_TARGETS;
  expect(fma!.fma && fma!.quantDotRows).toBeGreaterThan(0);
  expect(plain!.fma || plain!.quantDotRows).toBe(0);
});
