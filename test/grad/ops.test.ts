// Each op's backward against central finite differences of its float64 forward: for a fixed random
// probe r of the outputs, backward(dy = r) must equal d(Σ r · forward(x)) / dx for every float input
// (tiny random shapes; packed ragged sequences, chunk boundaries inside and across sequences, GQA,
// partial RoPE). Tolerance: 1e-6 relative, with an absolute floor of 1e-9 for zero gradients.

import { describe, expect, it } from 'vitest';
import { type Data, VJP, type VjpCtx } from '../../compiler/vjp.ts';
import { ssdChunkedB, ssdRecurrentB } from '../../runtime/cpu/backward-seq.ts';
import { OPS, OP_BY_NAME, type Attrs, type Dim } from '../../compiler/ops.ts';
import type { SeqSlice } from '../../runtime/cpu/seq.ts';
import { centralDiff, probe, randomF64, relErr, sample } from './helpers.ts';

interface Case {
  readonly name: string;
  readonly op: string;
  readonly ins: readonly (Data | null)[];
  /** With 'T' for the token dim, as the shape rules take them. */
  readonly shapes: readonly (readonly Dim[] | null)[];
  readonly attrs?: Attrs;
  readonly seqs?: readonly SeqSlice[];
}

const T = 11, LENS = [5, 2, 4]; // packed ragged: 3 sequences over 11 rows
const resolve = (shape: readonly Dim[]) => shape.map((d) => (d === 'T' ? T : d));
const rnd = (shape: readonly Dim[], seed: number, scale = 1) => randomF64(resolve(shape).reduce((a, b) => a * b, 1), seed, scale);
/** A float operand: the array and its shape. */
const F = (shape: Dim[], seed: number, scale = 1) => ({ d: rnd(shape, seed, scale) as Data, s: shape });
const I = (values: number[], s: Dim[] = [values.length]) => ({ d: Int32Array.from(values) as Data, s });
/** Values in [lo, hi): away from a kink (softplus' threshold, clamp's bounds). */
const inRange = (shape: Dim[], seed: number, lo: number, hi: number) => ({ d: rnd(shape, seed).map((v) => lo + ((v + 1) / 2) * (hi - lo)) as Data, s: shape });
const slices = (lens: number[]): SeqSlice[] => lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
const posOf = (lens: number[]) => I(lens.flatMap((n) => Array.from({ length: n }, (_, j) => 4 * j)), ['T']);

function c(name: string, op: string, ins: ({ d: Data; s: Dim[] } | null)[], attrs: Attrs = {}, lens?: number[]): Case {
  return { name, op, ins: ins.map((x) => x?.d ?? null), shapes: ins.map((x) => x?.s ?? null), attrs, seqs: lens ? slices(lens) : [{ start: 0, len: 1 }] };
}

const CASES: Case[] = [
  c('embedding', 'embedding', [I([3, 0, 3, 5, 1]), F([6, 4], 1)]),
  c('linear', 'linear', [F(['T', 5], 2), F([3, 5], 3), null], { transposed: false }),
  c('linear with bias', 'linear', [F(['T', 2, 5], 4), F([3, 5], 5), F([3], 6)], { transposed: false }),
  c('linear transposed (Conv1D)', 'linear', [F(['T', 5], 7), F([5, 3], 8), F([3], 9)], { transposed: true }),
  c('head', 'head', [F(['T', 4], 10), F([7, 4], 11)]),
  c('add', 'add', [F(['T', 3], 12), F(['T', 3], 13)]),
  c('add broadcast', 'add', [F(['T', 2, 3], 14), F([3], 15)]),
  c('mul', 'mul', [F(['T', 3], 16), F(['T', 3], 17)]),
  c('mul broadcast', 'mul', [F(['T', 4], 18), F([4], 19)]),
  c('split', 'split', [F(['T', 7], 20)], { sizes: [2, 4, 1] }),
  c('reshape', 'reshape', [F(['T', 6], 21)], { dims: [2, 3] }),
  c('silu', 'silu', [F(['T', 5], 22, 4)]),
  c('gelu', 'gelu', [F(['T', 5], 23, 3)], { tanh: false }),
  c('gelu tanh', 'gelu', [F(['T', 5], 24, 3)], { tanh: true }),
  c('softplus', 'softplus', [F(['T', 5], 25, 6)]),
  c('softplus above the threshold', 'softplus', [inRange([4], 26, 21, 30)]),
  c('exp', 'exp', [F(['T', 3], 27)]),
  c('neg', 'neg', [F(['T', 3], 28)]),
  c('relu2', 'relu2', [F(['T', 6], 60, 3)]),
  c('scale', 'scale', [F(['T', 3], 61)], { by: -0.375 }),
  c('scale by parts', 'scale', [F(['T', 2, 7], 62)], { by: 2, sizes: [3, 1, 3], factors: [0.5, -1.25, 3] }),
  c('sigmoid', 'sigmoid', [F(['T', 5], 80, 4)]),
  c('scale over [T, 2, 3]', 'scale', [F(['T', 2, 3], 81)], { by: -0.7 }),
  c('softmax over [T, 2, 4]', 'softmax', [F(['T', 2, 4], 82, 3)]),
  c('topk 2 of 5', 'topk', [F(['T', 5], 83)], { k: 2 }),
  c('topk 3 of 6, normalised', 'topk', [inRange(['T', 6], 84, 0.2, 1)], { k: 3, normalize: true }),
  // 11 tokens' 2 experts of 4 (expert 3 chosen by none), [4, 2·3, 5] and [4, 5, 3] matrices
  c('experts, 2 of 4', 'experts', [F(['T', 5], 85), I(Array.from({ length: 22 }, (_, i) => (Math.floor(i / 2) + (i % 2)) % 3), ['T', 2]), inRange(['T', 2], 86, 0.1, 1),
    F([4, 6, 5], 87), F([4, 5, 3], 88)]),
  // 11 tokens' 2 indices in [-1, 5): rows 0..3 of 4, some repeated, some outside (no cotangent there)
  c('gather [T, 4, 3] by [T, 2]', 'gather', [F(['T', 4, 3], 89), I(Array.from({ length: 22 }, (_, i) => ((i * 7) % 6) - 1), ['T', 2])]),
  c('scatter [T, 2, 3] into 4 rows', 'scatter', [F(['T', 2, 3], 90), I(Array.from({ length: 22 }, (_, i) => ((i * 5) % 6) - 1), ['T', 2])], { rows: 4 }),
  c('clamp', 'clamp', [inRange(['T', 4], 29, -2, 2)], { min: -1.5, max: 0.5 }),
  c('rmsnorm', 'rmsnorm', [F(['T', 6], 30), F([6], 31)], { eps: 1e-5 }),
  c('rmsnorm over heads (QK-norm)', 'rmsnorm', [F(['T', 2, 4], 32), F([4], 33)], { eps: 1e-6 }),
  c('rmsnorm_gated', 'rmsnorm_gated', [F(['T', 6], 34), F(['T', 6], 35, 2), F([6], 36)], { eps: 1e-5, groups: 1 }),
  c('rmsnorm_gated in 2 groups', 'rmsnorm_gated', [F(['T', 6], 37), F(['T', 6], 38, 2), F([6], 39)], { eps: 1e-5, groups: 2 }),
  c('layernorm', 'layernorm', [F(['T', 5], 40), F([5], 41), F([5], 42)], { eps: 1e-5 }),
  c('layernorm without bias', 'layernorm', [F(['T', 5], 43), F([5], 44), null], { eps: 1e-5 }),
  c('causal_conv1d, packed (a sequence shorter than the taps)', 'causal_conv1d', [F(['T', 3], 45), F([3, 1, 4], 46), F([3], 47)], {}, LENS),
  c('causal_conv1d without bias', 'causal_conv1d', [F(['T', 2], 48), F([2, 1, 3], 49), null], {}, LENS),
  c('rope, partial (4 of 6 dims), packed positions', 'rope', [F(['T', 2, 6], 50), posOf(LENS)], { rotary_dim: 4, theta: 10000 }),
  c('rope, full', 'rope', [F(['T', 1, 4], 51), posOf(LENS)], { rotary_dim: 4, theta: 500 }),
  c('attention, GQA 4 heads on 2, packed', 'attention', [F(['T', 4, 3], 52), F(['T', 2, 3], 53), F(['T', 2, 3], 54)], { scale: 3 ** -0.5 }, LENS),
  c('attention, MHA', 'attention', [F(['T', 2, 2], 55), F(['T', 2, 2], 56), F(['T', 2, 2], 57)], { scale: 0.9 }, [T]),
  c('attention, sliding window 2, GQA, packed', 'attention', [F(['T', 4, 3], 58), F(['T', 2, 3], 59), F(['T', 2, 3], 60)], { scale: 3 ** -0.5, window: 2 }, LENS),
  c('attention, sliding window 4 over a sequence of 11', 'attention', [F(['T', 2, 2], 61), F(['T', 1, 2], 62), F(['T', 1, 2], 63)], { scale: 0.9, window: 4 }, [T]),
  ...[3, 2, 100].map((chunk) => ssdCase(`ssd, 2 groups, chunk ${chunk}, packed`, chunk, LENS, 60 + chunk)),
  ssdCase('ssd, one group, chunk 4 across a sequence of 11', 4, [T], 70, 1),
];

/** x ['T', 4, 2], dt > 0, A < 0, B and C ['T', G, 3], D: one sequence set, Mamba-2's shapes. */
function ssdCase(name: string, chunk: number, lens: number[], seed: number, G = 2): Case {
  return c(name, 'ssd', [F(['T', 4, 2], seed), inRange(['T', 4], seed + 1, 0.1, 1.2), inRange([4], seed + 2, -2, -0.3),
    F(['T', G, 3], seed + 3), F(['T', G, 3], seed + 4), F([4], seed + 5)], { chunk }, lens);
}

function ctxOf(k: Case): VjpCtx {
  const types = k.shapes.map((s, i) => (s ? { shape: s, dtype: k.ins[i] instanceof Int32Array ? 'i32' as const : 'f32' as const } : null));
  const outShapes = OP_BY_NAME.get(k.op)!.infer(types, { ...defaults(k.op), ...k.attrs }).map((t) => t.shape);
  return { ins: k.ins, shapes: k.shapes.map((s) => (s ? resolve(s) : null)), outShapes: outShapes.map(resolve), attrs: { ...defaults(k.op), ...k.attrs }, seqs: k.seqs! };
}
const defaults = (op: string): Attrs => Object.fromEntries(Object.entries(OP_BY_NAME.get(op)!.attrs).flatMap(([n, a]) => (a.default === undefined ? [] : [[n, a.default]])));

describe('op backwards against finite differences', () => {
  it('every op has a VJP record and a case here', () => {
    expect(Object.keys(VJP).sort()).toEqual(OPS.map((o) => o.name).sort());
    expect(new Set(CASES.map((k) => k.op))).toEqual(new Set(OPS.map((o) => o.name)));
  });

  for (const k of CASES) {
    it(k.name, () => {
      const ctx = ctxOf(k), rec = VJP[k.op]!;
      const { outs, saved } = rec.forward(ctx);
      const probes = outs.map((o, i) => probe(o.length, 900 + i));
      const scalar = () => rec.forward(ctx).outs.reduce((s, o, i) => s + probes[i]!.dot(o), 0);
      const dIns = rec.backward(ctx, saved, probes.map((p) => p.r));
      let checked = 0;
      k.ins.forEach((x, i) => {
        if (!(x instanceof Float64Array)) {
          expect(dIns[i] ?? null, `input ${i} is integer or absent: no cotangent`).toBeNull();
          return;
        }
        const g = dIns[i]!;
        expect(g.length).toBe(x.length);
        for (const j of sample(x.length, 40, i + 1)) {
          const fd = centralDiff(x, j, scalar);
          expect(relErr(g[j]!, fd, 1e-3), `input ${i} [${j}]: backward ${g[j]}, finite differences ${fd}`).toBeLessThan(1e-6);
          checked++;
        }
      });
      expect(checked).toBeGreaterThan(0);
    });
  }

  it('the SSD forward and its gradients do not depend on the chunk length (f64)', () => {
    const [a, b] = [2, 100].map((chunk) => {
      const k = ssdCase('', chunk, LENS, 80);
      const ctx = ctxOf(k), r = VJP.ssd!.forward(ctx);
      return { y: r.outs[0]!, g: VJP.ssd!.backward(ctx, r.saved, [probe(r.outs[0]!.length, 5).r]) };
    });
    a!.y.forEach((v, i) => expect(Math.abs(v - b!.y[i]!)).toBeLessThan(1e-12));
    a!.g.forEach((g, s) => g!.forEach((v, i) => expect(Math.abs(v - b!.g[s]![i]!), `input ${s} [${i}]`).toBeLessThan(1e-12)));
  });

  it('the chunked SSD backward equals the token-by-token one (f64, 1e-12 of the largest entry)', () => {
    for (const chunk of [1, 3, 4, 100]) {
      const k = ssdCase('', chunk, LENS, 90);
      const ctx = ctxOf(k), r = VJP.ssd!.forward(ctx), dy = probe(r.outs[0]!.length, 6).r;
      const [x, dt, A, B, C, D] = ctx.ins as Float64Array[];
      const dims = { H: 4, P: 2, G: 2, N: 3 }, s = { x: x!, dt: dt!, A: A!, B: B!, C: C!, D: D! };
      const a = ssdChunkedB(dy, s, dims, chunk, ctx.seqs, r.saved as Float64Array[]);
      const b = ssdRecurrentB(dy, s, dims, chunk, ctx.seqs, r.saved as Float64Array[]);
      for (const key of ['x', 'dt', 'A', 'B', 'C', 'D'] as const) {
        const m = b[key].reduce((mx, v) => Math.max(mx, Math.abs(v)), 0);
        a[key].forEach((v, i) => expect(Math.abs(v - b[key][i]!), `chunk ${chunk}: d${key}[${i}]`).toBeLessThan(1e-12 * m));
      }
    }
  });
});
