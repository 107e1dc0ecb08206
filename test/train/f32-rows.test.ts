// The f32 engine's row-wise kernels on WebAssembly SIMD (runtime/train/f32/rows.ts): the bytes the
// runtime ships are the assembled text of codegen/wasm/train-rows.ts, and each record with the kernels
// equals the record in JS on widths with and without a tail of fewer than four floats, and
// attention's rows of every length up to 25 (rel L2 < 1e-6), and the small products run beside them
// equal WasmKernels.product bit for bit (the records against the float64 VJP records are
// test/train/f32-ops.test.ts, whose wasm cases run these kernels).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assemble, wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { openWasmGemm } from '../../runtime/train/f32/engine.ts';
import { renderTrainRows, trainRowsModuleSource } from '../../codegen/wasm/train-rows.ts';
import { jsGemm } from '../../runtime/train/f32/gemm.ts';
import type { Ctx32 } from '../../runtime/train/f32/graph.ts';
import { OPS32 } from '../../runtime/train/f32/ops.ts';
import { rowKernels, rowKernelsWithProducts } from '../../runtime/train/f32/rows.ts';
import { randomF64 } from '../grad/helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

const rand = (n: number, seed: number, scale = 1) => Float32Array.from(randomF64(n, seed, scale));

describe('the row-wise kernels in WebAssembly SIMD', () => {
  it('ships the module its text assembles to (ARCHC_UPDATE_GOLDEN=1 rewrites it)', async () => {
    const file = join(ROOT, 'runtime', 'train', 'f32', 'rows-module.ts');
    const text = trainRowsModuleSource(await assemble(renderTrainRows(), 'archc-train-rows.wat'));
    if (process.env.ARCHC_UPDATE_GOLDEN) writeFileSync(file, text);
    expect(readFileSync(file, 'utf8')).toBe(text);
    expect(rowKernels(), 'this engine runs WebAssembly SIMD').not.toBeNull();
  });

  it('small products on the row kernels\' memory equal WasmKernels.product bit for bit (the same micro-kernels), strided operands', async () => {
    const { gemm, kernels } = await openWasmGemm(await wasmKernelVariants(), 1);
    try {
      expect(gemm.rows?.products, 'the engine runs the small products on the row kernels').toBe(true);
      // [T, K, N, x by columns, W by columns, padding between rows]
      for (const [T, K, N, xT, wT, pad] of [[64, 64, 64, false, false, 0], [13, 7, 29, true, true, 3], [1, 32, 9, false, true, 0], [37, 5, 1, true, false, 2]] as const) {
        const ld = (xT ? T : K) + pad, wld = (wT ? N : K) + pad;
        const x = rand((xT ? K : T) * ld + 4, T + K), w = rand((wT ? K : N) * wld + 4, N + 1);
        const args = [x, 3, xT ? 1 : ld, xT ? ld : 1, T, K, w, 2, wT ? 1 : wld, wT ? wld : 1, N] as const;
        const a = gemm.mm(...args), b = kernels.product(...args);
        for (let t = 0; t < T; t++) {
          const ra = a.y.slice(t * a.ld, t * a.ld + N), rb = b.y.slice(t * b.ld, t * b.ld + N);
          expect(Buffer.from(ra.buffer).equals(Buffer.from(rb.buffer)), `[${T}, ${K}, ${N}] row ${t}`).toBe(true);
        }
      }
    } finally {
      kernels.close();
    }
  });

  it('attention over a 700-row sequence on the wasm products (the row memory grows between a product and its softmax)', async () => {
    const { gemm, kernels } = await openWasmGemm(await wasmKernelVariants(), 1);
    try {
      const n = 700, seqs1 = [{ start: 0, len: n }];
      const ins = [rand(n * 16, 21, 2), rand(n * 8, 22, 2), rand(n * 8, 23)];
      const ctx = (g: typeof gemm): Ctx32 => ({ ins, shapes: [[n, 2, 8], [n, 1, 8], [n, 1, 8]], outShapes: [[n, 2, 8]], attrs: { scale: 8 ** -0.5 }, seqs: seqs1, gemm: g });
      const a = OPS32.attention!.forward(ctx(gemm)), b = OPS32.attention!.forward(ctx(jsGemm));
      expect(relL2(a.outs[0]!, b.outs[0]!)).toBeLessThan(1e-5);
      const dy = rand(n * 16, 24);
      const da = OPS32.attention!.backward(ctx(gemm), a.saved, [dy]), db = OPS32.attention!.backward(ctx(jsGemm), b.saved, [dy]);
      da.forEach((d, i) => expect(relL2(d!, db[i]!), `d input ${i}`).toBeLessThan(1e-5));
    } finally {
      kernels.close();
    }
  });

  // each record with the wasm kernels (`rows` on the Gemm) against the same record in JS
  const T = 37, lens = [11, 1, 25];
  const seqs = lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
  const cases: { name: string; op: string; ins: (Float32Array | null)[]; shapes: number[][]; attrs: Record<string, number> }[] = [];
  for (const D of [16, 7]) {
    cases.push({ name: `silu, width ${D}`, op: 'silu', ins: [rand(T * D, 1, 6)], shapes: [[T, D]], attrs: {} });
    cases.push({ name: `mul, width ${D}`, op: 'mul', ins: [rand(T * D, 2), rand(T * D, 3)], shapes: [[T, D], [T, D]], attrs: {} });
    cases.push({ name: `add, width ${D}`, op: 'add', ins: [rand(T * D, 4), rand(T * D, 5)], shapes: [[T, D], [T, D]], attrs: {} });
    cases.push({ name: `rmsnorm, width ${D}`, op: 'rmsnorm', ins: [rand(T * D, 6, 3), rand(D, 7)], shapes: [[T, D], [D]], attrs: { eps: 1e-5 } });
    cases.push({ name: `rmsnorm_gated, width ${2 * D} in 2 groups`, op: 'rmsnorm_gated', ins: [rand(T * 2 * D, 8), rand(T * 2 * D, 9, 4), rand(2 * D, 10)], shapes: [[T, 2 * D], [T, 2 * D], [2 * D]], attrs: { eps: 1e-5, groups: 2 } });
    for (const bias of [true, false]) {
      cases.push({ name: `causal_conv1d, ${D} channels, packed${bias ? '' : ', no bias'}`, op: 'causal_conv1d', ins: [rand(T * D, 11), rand(D * 4, 12), bias ? rand(D, 13) : null], shapes: [[T, D], [D, 1, 4], [D]], attrs: {} });
    }
  }
  for (const window of [0, 5]) {
    cases.push({ name: `attention's softmax rows, GQA 4 heads on 2, packed${window ? `, window ${window}` : ''}`, op: 'attention', ins: [rand(T * 32, 14, 2), rand(T * 16, 15, 2), rand(T * 16, 16)],
      shapes: [[T, 4, 8], [T, 2, 8], [T, 2, 8]], attrs: { scale: 8 ** -0.5, window } });
  }
  const rows = rowKernels()!;
  for (const k of cases) it(k.name, () => {
    const ctx = (withRows: boolean): Ctx32 => ({ ins: k.ins, shapes: k.shapes, outShapes: [k.shapes[0]!], attrs: k.attrs, seqs, gemm: withRows ? { ...jsGemm, rows } : jsGemm });
    const a = OPS32[k.op]!.forward(ctx(true)), b = OPS32[k.op]!.forward(ctx(false));
    expect(relL2(a.outs[0]!, b.outs[0]!), 'forward').toBeLessThan(1e-6);
    const dy = rand(a.outs[0]!.length, 99);
    const da = OPS32[k.op]!.backward(ctx(true), a.saved, [dy]), db = OPS32[k.op]!.backward(ctx(false), b.saved, [dy]);
    expect(da.length).toBe(db.length);
    da.forEach((d, i) => {
      if (!db[i]) return expect(d, `input ${i}`).toBeNull();
      expect(relL2(d!, db[i]!), `d input ${i}`).toBeLessThan(1e-6);
    });
  });
});

describe('the row kernels over an arena in their shared memory (the train entry\'s: RowKernels.arena)', () => {
  it('read operands and write results in place, equal bit for bit to the copies in and out, also where a result overlaps its operands', async () => {
    const shared = (await rowKernelsWithProducts(await wasmKernelVariants(), 2))!, plain = rowKernels()!;
    try {
      const n = 1030, arena = shared.arena(8 * n)!;
      expect(arena, 'a shared memory holds the arena').not.toBeNull();
      const a = rand(n, 1), b = rand(n, 2), w = rand(10, 3), bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
      // the operands at [0, n) and [n, 2n), results apart (3n), on the first operand (0: it is read
      // whole first) and half over both (n/2)
      for (const at of [3 * n, 0, n / 2]) {
        arena.set(a, 0);
        arena.set(b, n);
        const into = arena.subarray(at, at + n);
        const cases: [string, () => Float32Array, () => Float32Array][] = [
          ['add', () => shared.addF(arena.subarray(0, n), arena.subarray(n, 2 * n), into), () => plain.addF(a, b)],
          ['silu', () => shared.siluF(arena.subarray(0, n), into), () => plain.siluF(a)],
          ['rms', () => shared.rmsF(arena.subarray(0, n), null, w, 10, 10, 1e-5, into).y, () => plain.rmsF(a, null, w, 10, 10, 1e-5).y],
        ];
        for (const [what, got, want] of cases) {
          arena.set(a, 0);
          arena.set(b, n);
          const y = got();
          expect(y, `${what} at ${at}: into the arena`).toBe(into);
          expect(bits(y).equals(bits(want())), `${what} at ${at}`).toBe(true);
        }
      }
      // a product whose operand lies in the arena: packed from where it lies
      arena.set(a, 0);
      const wm = rand(7 * 10, 4), p = shared.mm(arena, 0, 10, 1, 103, 10, wm, 0, 10, 1, 7);
      const want = await openWasmGemm(await wasmKernelVariants(), 1);
      try {
        const r = want.gemm.mm(a, 0, 10, 1, 103, 10, wm, 0, 10, 1, 7);
        for (let t = 0; t < 103; t++) expect(bits(p.y.slice(t * p.ld, t * p.ld + 7)).equals(bits(r.y.slice(t * r.ld, t * r.ld + 7))), `mm row ${t}`).toBe(true);
      } finally {
        want.kernels.close();
      }
    } finally {
      shared.close();
    }
  });
});

describe('a product split over the row kernels\' threads', () => {
  it('equals one thread bit for bit where the short last tile pairs panels (14 rows over 20 panels: chunks of an even count)', async () => {
    const two = (await rowKernelsWithProducts(await wasmKernelVariants(), 2))!, one = (await rowKernelsWithProducts(await wasmKernelVariants(), 1))!;
    try {
      const [T, K, N] = [14, 64, 160], x = rand(T * K, 5), w = rand(N * K, 6);
      const a = one.mm(x, 0, K, 1, T, K, w, 0, K, 1, N, true), b = two.mm(x, 0, K, 1, T, K, w, 0, K, 1, N, true);
      for (let t = 0; t < T; t++) expect(Buffer.from(b.y.slice(t * b.ld, t * b.ld + N).buffer).equals(Buffer.from(a.y.slice(t * a.ld, t * a.ld + N).buffer)), `row ${t}`).toBe(true);
    } finally {
      two.close();
      one.close();
    }
  });
});
