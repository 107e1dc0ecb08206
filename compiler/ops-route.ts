// The routing ops of a mixture of experts (records as in ops.ts): softmax over the last dim, top-k
// with indices, and the grouped expert product. Indices are i32 in the graph (only `experts` reads
// them); the kernels hold them as integer-valued floats in the f32 arena (exact below 2^24).

import type { Attrs, Dim, OpDef, TensorType } from './ops.ts';
import { OpError } from './ops.ts';

const fmt = (s: readonly Dim[]) => `[${s.join(', ')}]`;
const need = (t: TensorType | null, what: string): TensorType => t ?? fail(`missing ${what}`);
const lastOf = (t: TensorType) => t.shape[t.shape.length - 1] as number;
const rowSize = (t: TensorType) => t.shape.reduce<number>((n, d) => (d === 'T' ? n : n * d), 1);
const fail = (msg: string): never => { throw new OpError(msg); };
/** Integers the arena's floats hold exactly. */
const MAX_INDEX = 2 ** 24;

export const ROUTE_OPS: readonly OpDef[] = [
  {
    name: 'softmax', doc: 'e^(x − max) / Σ e^(x − max) over the last dim (any rank)',
    inputs: [{ name: 'x' }], attrs: {},
    infer: ([x]) => [{ shape: need(x, 'x').shape, dtype: 'f32' }],
    flops: ([x]) => 4 * rowSize(x!),
    lower(c) {
      const x = c.types[0]!;
      c.emit({ family: 'softmax', sizes: { W: rowSize(x), D: lastOf(x) }, inputs: { x: c.in(0)! }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'topk', doc: 'the k largest of each row [T, n], largest first, ties to the lower index: (values [T, k], indices i32 [T, k])',
    inputs: [{ name: 'x' }],
    attrs: {
      k: { type: 'int', doc: 'how many to keep' },
      normalize: { type: 'bool', default: false, doc: 'divide the kept values by their sum (a router renormalising its top-k probabilities)' },
    },
    infer([x], a) {
      const X = need(x, 'x');
      if (X.shape.length !== 2) fail(`topk input must be [T, n], got ${fmt(X.shape)}`);
      const k = a.k as number, n = lastOf(X);
      if (!Number.isInteger(k) || k < 1 || k > n) fail(`topk k ${k} must be an integer from 1 to the row's ${n}`);
      if (n > MAX_INDEX) fail(`topk over ${n} values: indices are exact below ${MAX_INDEX} (2^24)`);
      return [{ shape: [X.shape[0]!, k], dtype: 'f32' }, { shape: [X.shape[0]!, k], dtype: 'i32' }];
    },
    flops: ([x], _o, a) => rowSize(x!) * (a.k as number),
    lower(c) {
      const D = lastOf(c.types[0]!), K = c.attrs.k as number;
      c.emit({ family: 'topk', sizes: { D, K }, inputs: { x: c.in(0)! }, attrs: { normalize: c.attrs.normalize === true }, outputs: { values: c.out(0), indices: c.out(1) } });
    },
  },
  {
    name: 'experts', doc: 'mixture-of-experts SwiGLU: Σ_j gates[t, j] · down_e(silu(gate_e(x)) · up_e(x)), e = idx[t, j]; w_in [E, 2·I, H] (gate rows, then up rows), w_out [E, H, I]',
    inputs: [{ name: 'x' }, { name: 'idx', int: true }, { name: 'gates' }, { name: 'w_in', weight: true }, { name: 'w_out', weight: true }],
    attrs: {},
    infer([x, idx, gates, wIn, wOut]) {
      const X = need(x, 'x'), Ix = need(idx, 'idx'), G = need(gates, 'gates'), A = need(wIn, 'w_in'), B = need(wOut, 'w_out');
      if (X.shape.length !== 2) fail(`experts input must be [T, width], got ${fmt(X.shape)}`);
      if (Ix.shape.length !== 2 || fmt(Ix.shape) !== fmt(G.shape) || Ix.shape[0] !== X.shape[0]) fail(`experts idx ${fmt(Ix.shape)} and gates ${fmt(G.shape)} must both be [${X.shape[0]}, k]`);
      if (A.shape.length !== 3 || B.shape.length !== 3) fail(`experts weights must be w_in [E, 2·I, H] and w_out [E, H, I], got ${fmt(A.shape)} and ${fmt(B.shape)}`);
      const [E, I2, H] = A.shape as number[];
      if (H !== X.shape[1] || I2! % 2 !== 0) fail(`experts w_in ${fmt(A.shape)} must be [E, 2·I, ${X.shape[1]}]`);
      if (fmt(B.shape) !== fmt([E!, H!, I2! / 2])) fail(`experts w_out ${fmt(B.shape)} must be [${E}, ${H}, ${I2! / 2}] (w_in is ${fmt(A.shape)})`);
      if (lastOf(Ix) > E!) fail(`experts picks ${lastOf(Ix)} of ${E} experts per token`);
      return [{ shape: X.shape, dtype: 'f32' }];
    },
    // k of E experts per token: gate/up and down products of the chosen ones, silu·up, the weighting
    flops([x, idx, , wIn]) {
      const K = lastOf(idx!), H = lastOf(x!), I = (wIn!.shape[1] as number) / 2;
      return K * (2 * 2 * I * H + 2 * H * I + 5 * I + 2 * H);
    },
    active: ([, idx, , wIn]) => lastOf(idx!) / (wIn!.shape[0] as number),
    lower(c) {
      const [E, I2, H] = c.types[3]!.shape as number[];
      const K = lastOf(c.types[1]!);
      c.emit({ family: 'experts', sizes: { E: E!, H: H!, I: I2! / 2, K },
        inputs: { x: c.in(0)!, idx: c.in(1)!, gates: c.in(2)!, w_in: c.in(3)!, w_out: c.in(4)! }, outputs: { y: c.out(0) } });
    },
  },
];

export type { Attrs };
