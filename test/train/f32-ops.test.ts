// Every op record of the f32 training engine (runtime/train/f32/) against the float64 VJP record of
// compiler/vjp.ts (the oracle, itself checked against central finite differences in
// test/grad/ops.test.ts): the forward's outputs, and the backward's input cotangents for a random
// output cotangent, on random tiny shapes — packed ragged sequences, chunk boundaries inside and
// across sequences, GQA, partial RoPE, sliding windows — with the products on the wasm GEMM (2
// threads) and in JS. Measure: per output, ‖got − ref‖₂ / ‖ref‖₂ < 1e-5. Then the records whose
// heads (SSD, attention) or sequences (the conv's backward) the threads share: 1 and 2 threads bit
// for bit, forward and backward.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import type { Attrs, Dim } from '../../compiler/ops.ts';
import { type Data, VJP, type VjpCtx } from '../../compiler/vjp.ts';
import type { SeqSlice } from '../../runtime/cpu/seq.ts';
import type { WasmKernels } from '../../runtime/wasm/kernels.ts';
import { type Gemm, jsGemm } from '../../runtime/train/f32/gemm.ts';
import { F32Engine, openWasmGemm } from '../../runtime/train/f32/engine.ts';
import type { Ctx32 } from '../../runtime/train/f32/graph.ts';
import { NOT_YET32, OPS32 } from '../../runtime/train/f32/ops.ts';
import { randomF64 } from '../grad/helpers.ts';

const T = 23, LENS = [9, 1, 13]; // chunk 4: boundaries inside the 9 and the 13, and a 1-row sequence
const res = (s: readonly Dim[]) => s.map((d) => (d === 'T' ? T : d));
const size = (s: readonly Dim[]) => res(s).reduce((a, b) => a * b, 1);
const F = (s: Dim[], seed: number, scale = 1) => ({ d: randomF64(size(s), seed, scale) as Data, s });
const inRange = (s: Dim[], seed: number, lo: number, hi: number) => ({ d: randomF64(size(s), seed).map((v) => lo + ((v + 1) / 2) * (hi - lo)) as Data, s });
const I = (values: number[], s: Dim[] = [values.length]) => ({ d: Int32Array.from(values) as Data, s });
const slices = (lens: number[]): SeqSlice[] => lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
const posOf = (lens: number[]) => I(lens.flatMap((n) => Array.from({ length: n }, (_, j) => 3 * j)), ['T']);

interface Case { name: string; op: string; ins: ({ d: Data; s: Dim[] } | null)[]; attrs: Attrs; seqs: SeqSlice[] }
const c = (name: string, op: string, ins: Case['ins'], attrs: Attrs = {}, lens = [T]): Case => ({ name, op, ins, attrs, seqs: slices(lens) });
const ssd = (name: string, chunk: number, lens: number[], seed: number, G: number) => c(name, 'ssd', [F(['T', 4, 6], seed), inRange(['T', 4], seed + 1, 0.05, 1.2),
  inRange([4], seed + 2, -2, -0.3), F(['T', G, 5], seed + 3), F(['T', G, 5], seed + 4), F([4], seed + 5)], { chunk }, lens);

const CASES: Case[] = [
  c('embedding', 'embedding', [I(Array.from({ length: T }, (_, i) => (i * 7) % 9), ['T']), F([9, 6], 1)]),
  c('linear with bias', 'linear', [F(['T', 2, 19], 2), F([11, 19], 3), F([11], 4)], { transposed: false }),
  c('linear transposed', 'linear', [F(['T', 17], 5), F([17, 10], 6), null], { transposed: true }),
  c('head', 'head', [F(['T', 12], 7), F([29, 12], 8)]),
  c('add broadcast', 'add', [F(['T', 2, 3], 9), F([3], 10)]),
  c('mul', 'mul', [F(['T', 5], 11), F(['T', 5], 12)]),
  c('mul broadcast', 'mul', [F(['T', 4], 13), F([4], 14)]),
  c('split', 'split', [F(['T', 7], 15)], { sizes: [2, 4, 1] }),
  c('reshape', 'reshape', [F(['T', 6], 16)], { dims: [2, 3] }),
  c('silu', 'silu', [F(['T', 5], 17, 4)]),
  c('sigmoid', 'sigmoid', [F(['T', 5], 90, 4)]),
  c('relu2', 'relu2', [F(['T', 6], 91, 3)]),
  c('scale', 'scale', [F(['T', 3], 92)], { by: -0.375 }),
  c('scale by parts', 'scale', [F(['T', 2, 7], 93)], { by: 2, sizes: [3, 1, 3], factors: [0.5, -1.25, 3] }),
  c('gelu', 'gelu', [F(['T', 5], 18, 3)], { tanh: false }),
  c('gelu tanh', 'gelu', [F(['T', 5], 19, 3)], { tanh: true }),
  c('softplus', 'softplus', [F(['T', 5], 20, 6)]),
  c('exp', 'exp', [F(['T', 3], 21)]),
  c('neg', 'neg', [F(['T', 3], 22)]),
  c('clamp', 'clamp', [inRange(['T', 4], 23, -2, 2)], { min: -1.5, max: 0.5 }),
  c('rmsnorm', 'rmsnorm', [F(['T', 6], 24), F([6], 25)], { eps: 1e-5 }),
  c('rmsnorm over heads', 'rmsnorm', [F(['T', 2, 4], 26), F([4], 27)], { eps: 1e-6 }),
  c('rmsnorm_gated in 2 groups', 'rmsnorm_gated', [F(['T', 6], 28), F(['T', 6], 29, 2), F([6], 30)], { eps: 1e-5, groups: 2 }),
  c('rmsnorm_gated in 2 groups of 8 (whole f32x4 lanes)', 'rmsnorm_gated', [F(['T', 16], 94), F(['T', 16], 95, 2), F([16], 96)], { eps: 1e-5, groups: 2 }),
  c('layernorm', 'layernorm', [F(['T', 5], 31), F([5], 32), F([5], 33)], { eps: 1e-5 }),
  c('causal_conv1d, packed', 'causal_conv1d', [F(['T', 3], 34), F([3, 1, 4], 35), F([3], 36)], {}, LENS),
  c('causal_conv1d, 10 channels, packed', 'causal_conv1d', [F(['T', 10], 97), F([10, 1, 4], 98), F([10], 99)], {}, LENS),
  c('rope, partial (4 of 8 dims), packed positions', 'rope', [F(['T', 2, 8], 37), posOf(LENS)], { rotary_dim: 4, theta: 10000 }),
  c('attention, GQA 4 heads on 2, packed', 'attention', [F(['T', 4, 8], 38), F(['T', 2, 8], 39), F(['T', 2, 8], 40)], { scale: 8 ** -0.5 }, LENS),
  c('attention, sliding window 3, GQA, packed', 'attention', [F(['T', 4, 8], 41), F(['T', 2, 8], 42), F(['T', 2, 8], 43)], { scale: 8 ** -0.5, window: 3 }, LENS),
  ssd('ssd, 2 groups, chunk 4, packed', 4, LENS, 50, 2),
  ssd('ssd, 1 group, chunk 3, packed', 3, LENS, 60, 1),
  ssd('ssd, chunk longer than every sequence', 64, LENS, 70, 1),
];

/** ‖a − b‖₂ / ‖b‖₂ (0 when both are zero). */
function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

let wasm: { gemm: Gemm; kernels: WasmKernels };
beforeAll(async () => { wasm = await openWasmGemm(await wasmKernelVariants(), 2); });
afterAll(() => wasm.kernels.close());

describe('f32 engine op records equal the float64 VJP records (rel L2 < 1e-5)', () => {
  it('every op the VJP table has, the f32 table has, but those it names as not yet', () => {
    expect([...Object.keys(OPS32), ...Object.keys(NOT_YET32)].sort()).toEqual(Object.keys(VJP).sort());
  });
  it('a model with an op it has no record for is refused, naming the op (RT603)', () => {
    const node = (op: string) => ({ op, inputs: [0], outputs: [1], attrs: {} });
    const graph = { inputs: [], outputs: [], values: [], weights: [], nodes: [node('silu'), node('topk')] };
    expect(() => new F32Engine(graph, jsGemm)).toThrow(/RT603.*topk \(a mixture of experts' router\).*--engine kernels \(the default\) or --engine reference/);
  });
  for (const k of CASES) {
    for (const which of ['wasm', 'js'] as const) it(`${k.name} (${which} products)`, () => {
      const gemm = which === 'wasm' ? wasm.gemm : jsGemm;
      const shapes = k.ins.map((x) => (x ? res(x.s) : null));
      const base = { shapes, attrs: k.attrs, seqs: k.seqs };
      const ctx64 = (outShapes: number[][]): VjpCtx => ({ ...base, ins: k.ins.map((x) => x?.d ?? null), outShapes });
      const ins32 = k.ins.map((x) => (x === null ? null : x.d instanceof Int32Array ? x.d : Float32Array.from(x.d)));
      // the reference on the f32 operands widened exactly, so both see the same numbers
      const ins64 = ins32.map((x) => (x === null || x instanceof Int32Array ? x : Float64Array.from(x)));
      const lead = shapes[0]!.length > 1 ? shapes[0]!.slice(0, -1) : shapes[0]!;
      // a product's width is its weight's output dim; the other records' outputs tell theirs
      const product = k.op === 'linear' || k.op === 'head' ? [[...lead, shapes[1]![k.attrs.transposed === true ? 1 : 0]!]] : [];
      const probe = VJP[k.op]!.forward({ ...ctx64(product), ins: ins64 });
      // each output as [the first input's leading dims, the rest]: what the records read of it
      const outShapes = probe.outs.map((o) => [...lead, o.length / lead.reduce((a, b) => a * b, 1)]);
      const c64: VjpCtx = { ...base, ins: ins64, outShapes };
      const c32: Ctx32 = { ...base, ins: ins32, outShapes, gemm };
      const r64 = VJP[k.op]!.forward(c64), r32 = OPS32[k.op]!.forward(c32);
      let worst = 0;
      r64.outs.forEach((o, i) => {
        const e = relL2(r32.outs[i]!, o);
        worst = Math.max(worst, e);
        expect(e, `${k.name}: output ${i}`).toBeLessThan(1e-5);
      });
      const dOuts = r64.outs.map((o, i) => randomF64(o.length, 100 + i));
      const d64 = VJP[k.op]!.backward(c64, r64.saved, dOuts);
      const d32 = OPS32[k.op]!.backward(c32, r32.saved, dOuts.map((d) => Float32Array.from(d)));
      d64.forEach((g, i) => {
        if (g === null) return expect(d32[i], `${k.name}: input ${i} has no cotangent`).toBeNull();
        const e = relL2(d32[i]!, g);
        worst = Math.max(worst, e);
        expect(e, `${k.name}: d input ${i}`).toBeLessThan(1e-5);
      });
      expect(d64.some((g) => g !== null)).toBe(true);
      console.log(`${k.name} (${which}): worst rel L2 ${worst.toExponential(2)}`);
    });
  }
});

describe('the SSD\'s and attention\'s heads and the conv backward\'s sequences shared by the threads', () => {
  // 8 SSD heads in 2 groups and 8 query heads on 4 KV heads, long enough that the workers take units
  const R = 190, lens = [70, 1, 119];
  const big: Case[] = [
    c('ssd', 'ssd', [F([R, 8, 16], 80), inRange([R, 8], 81, 0.05, 1.2), inRange([8], 82, -2, -0.3), F([R, 2, 8], 83), F([R, 2, 8], 84), F([8], 85)], { chunk: 16 }, lens),
    c('attention', 'attention', [F([R, 8, 16], 86), F([R, 4, 16], 87), F([R, 4, 16], 88)], { scale: 0.25 }, lens),
    c('causal_conv1d', 'causal_conv1d', [F([1200, 256], 89), F([256, 1, 4], 90), F([256], 91)], {}, [150, 1, 149, 300, 100, 200, 150, 150]),
  ];
  let one: { gemm: Gemm; kernels: WasmKernels };
  beforeAll(async () => { one = await openWasmGemm(await wasmKernelVariants(), 1); });
  afterAll(() => one.kernels.close());
  for (const k of big) it(`${k.name}: 1 and 2 threads give the same outputs and cotangents bit for bit`, () => {
    const shapes = k.ins.map((x) => (x ? x.s as number[] : null)), ins = k.ins.map((x) => (x ? Float32Array.from(x.d) : null));
    const run = (gemm: Gemm) => {
      const c32: Ctx32 = { shapes, attrs: k.attrs, seqs: k.seqs, ins, outShapes: [], gemm };
      const f = OPS32[k.op]!.forward(c32), outs = f.outs.map((o) => (o as Float32Array).slice());
      const d = OPS32[k.op]!.backward(c32, f.saved, outs.map((o) => Float32Array.from(randomF64(o.length, 7))));
      return [...outs, ...d.filter((g) => g !== null)] as Float32Array[];
    };
    const a = run(one.gemm), b = run(wasm.gemm);
    expect(b.length).toBe(a.length);
    a.forEach((x, i) => expect(Buffer.from(b[i]!.buffer, b[i]!.byteOffset, b[i]!.byteLength).equals(Buffer.from(x.buffer, x.byteOffset, x.byteLength)), `${k.name}: result ${i}`).toBe(true));
  });
});
