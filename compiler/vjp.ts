// Reverse mode, one record per graph op (keyed like OP_BY_NAME, to move into each op's record):
// `forward` computes the op in float64 and returns what its backward saves; `backward` maps the
// outputs' cotangents to the inputs' (null: no cotangent, an integer slot or an absent one).
// The float64 kernels are runtime/cpu/backward.ts and backward-seq.ts; docs/TRAINING.md.

import {
  type F64, type Pointwise, POINTWISE, causalLmLossB, embeddingB, embeddingF, gate, gateB,
  layernormB, layernormF, linearB, linearF, pointwiseB, pointwiseF, rmsnormB, rmsnormF, scaleFactors,
} from '../runtime/cpu/backward.ts';
import { attentionB, attentionF, convB, convF, ropeF, ssdChunkedB, ssdF, type SsdIn } from '../runtime/cpu/backward-seq.ts';
import type { SeqSlice } from '../runtime/cpu/seq.ts';
import type { Attrs } from './ops.ts';
import { ROUTE_VJP } from './vjp-route.ts';

export { causalLmLossB };

/** An operand: floats in double, or integer ids/positions. */
export type Data = F64 | Int32Array;

/** One node's evaluation: its operands (null for an absent slot), their shapes and the outputs'
 *  with T resolved, its attributes, and the packed batch's sequence slices. */
export interface VjpCtx {
  readonly ins: readonly (Data | null)[];
  readonly shapes: readonly (readonly number[] | null)[];
  readonly outShapes: readonly (readonly number[])[];
  readonly attrs: Attrs;
  readonly seqs: readonly SeqSlice[];
}

export interface OpVjp {
  forward(c: VjpCtx): { outs: F64[]; saved?: unknown };
  backward(c: VjpCtx, saved: unknown, dOuts: readonly (F64 | null)[]): (F64 | null)[];
}

const f = (c: VjpCtx, i: number) => c.ins[i] as F64;
const lastDim = (s: readonly number[]) => s[s.length - 1]!;
const num = (c: VjpCtx, k: string) => c.attrs[k] as number;
/** The one output's cotangent (a node whose output is unused gets no backward call). */
const d0 = (d: readonly (F64 | null)[]) => d[0]!;

/** scale's factor of each column of the last dim. */
function pointwise(p: (c: VjpCtx) => Pointwise): OpVjp {
  return {
    forward: (c) => ({ outs: [pointwiseF(p(c), f(c, 0))] }),
    backward: (c, _s, d) => [pointwiseB(p(c), d0(d), f(c, 0))],
  };
}

/** a ∘ b where b repeats over a's leading dims; db sums over the repeats. */
function broadcasting(op: (a: number, b: number) => number, da: (g: number, a: number, b: number) => number, db: (g: number, a: number, b: number) => number): OpVjp {
  return {
    forward: (c) => ({ outs: [f(c, 0).map((v, i) => op(v, f(c, 1)[i % f(c, 1).length]!))] }),
    backward(c, _s, d) {
      const a = f(c, 0), b = f(c, 1), g = d0(d), gb = new Float64Array(b.length);
      const ga = g.map((v, i) => da(v, a[i]!, b[i % b.length]!));
      g.forEach((v, i) => { gb[i % b.length] += db(v, a[i]!, b[i % b.length]!); });
      return [ga, gb];
    },
  };
}

function product(hasBias: boolean, transposed: (c: VjpCtx) => boolean): OpVjp {
  const dims = (c: VjpCtx) => {
    const K = lastDim(c.shapes[0]!), N = lastDim(c.outShapes[0]!);
    return { K, N, rows: f(c, 0).length / K, t: transposed(c) };
  };
  return {
    forward(c) {
      const { K, N, rows, t } = dims(c);
      return { outs: [linearF(f(c, 0), rows, K, N, f(c, 1), t, hasBias ? (c.ins[2] as F64 | null) : null)] };
    },
    backward(c, _s, d) {
      const { K, N, rows, t } = dims(c);
      const { dx, dw, db } = linearB(d0(d), f(c, 0), rows, K, N, f(c, 1), t);
      return hasBias ? [dx, dw, c.ins[2] ? db : null] : [dx, dw];
    },
  };
}

export const VJP: Readonly<Record<string, OpVjp>> = {
  ...ROUTE_VJP,
  embedding: {
    forward: (c) => ({ outs: [embeddingF(c.ins[0] as Int32Array, f(c, 1), c.shapes[1]![1]!)] }),
    backward: (c, _s, d) => [null, embeddingB(d0(d), c.ins[0] as Int32Array, c.shapes[1]![0]!, c.shapes[1]![1]!)],
  },
  linear: product(true, (c) => c.attrs.transposed === true),
  head: product(false, () => false),
  add: broadcasting((a, b) => a + b, (g) => g, (g) => g),
  mul: broadcasting((a, b) => a * b, (g, _a, b) => g * b, (g, a) => g * a),
  split: {
    forward(c) {
      const x = f(c, 0), W = lastDim(c.shapes[0]!), rows = x.length / W;
      let col = 0;
      const outs = (c.attrs.sizes as number[]).map((n) => {
        const y = new Float64Array(rows * n);
        for (let r = 0; r < rows; r++) y.set(x.subarray(r * W + col, r * W + col + n), r * n);
        col += n;
        return y;
      });
      return { outs };
    },
    backward(c, _s, d) {
      const W = lastDim(c.shapes[0]!), dx = new Float64Array(f(c, 0).length), rows = dx.length / W;
      let col = 0;
      (c.attrs.sizes as number[]).forEach((n, i) => {
        const g = d[i];
        if (g) for (let r = 0; r < rows; r++) dx.set(g.subarray(r * n, (r + 1) * n), r * W + col);
        col += n;
      });
      return [dx];
    },
  },
  reshape: { forward: (c) => ({ outs: [f(c, 0).slice()] }), backward: (_c, _s, d) => [d0(d)] },
  silu: pointwise(() => POINTWISE.silu),
  sigmoid: pointwise(() => POINTWISE.sigmoid),
  gelu: pointwise((c) => (c.attrs.tanh === true ? POINTWISE.gelu_tanh : POINTWISE.gelu)),
  softplus: pointwise(() => POINTWISE.softplus),
  exp: pointwise(() => POINTWISE.exp),
  neg: pointwise(() => POINTWISE.neg),
  relu2: pointwise(() => POINTWISE.relu2),
  // x · the factor of its column: by, times factors[i] over part i of sizes
  scale: {
    forward: (c) => { const m = scaleFactors(c.attrs); return { outs: [f(c, 0).map((v, i) => v * m[i % m.length]!)] }; },
    backward: (c, _s, d) => { const m = scaleFactors(c.attrs); return [d0(d).map((v, i) => v * m[i % m.length]!)]; },
  },
  // torch's clamp passes the gradient where min <= x <= max
  clamp: pointwise((c) => {
    const lo = num(c, 'min'), hi = num(c, 'max');
    return { f: (v) => Math.min(Math.max(v, lo), hi), df: (v) => (v >= lo && v <= hi ? 1 : 0) };
  }),
  rmsnorm: {
    forward(c) {
      const D = lastDim(c.shapes[0]!), r = rmsnormF(f(c, 0), f(c, 0).length / D, D, D, f(c, 1), num(c, 'eps'));
      return { outs: [r.y], saved: r.inv };
    },
    backward(c, inv, d) {
      const D = lastDim(c.shapes[0]!), r = rmsnormB(d0(d), f(c, 0), inv as F64, f(c, 0).length / D, D, D, f(c, 1));
      return [r.dx, r.dw];
    },
  },
  rmsnorm_gated: {
    forward(c) {
      const D = lastDim(c.shapes[0]!), h = gate(f(c, 0), f(c, 1));
      const r = rmsnormF(h, h.length / D, D, D / num(c, 'groups'), f(c, 2), num(c, 'eps'));
      return { outs: [r.y], saved: { h, inv: r.inv } };
    },
    backward(c, saved, d) {
      const { h, inv } = saved as { h: F64; inv: F64 };
      const D = lastDim(c.shapes[0]!), r = rmsnormB(d0(d), h, inv, h.length / D, D, D / num(c, 'groups'), f(c, 2));
      const { dx, dz } = gateB(r.dx, f(c, 0), f(c, 1));
      return [dx, dz, r.dw];
    },
  },
  layernorm: {
    forward(c) {
      const D = lastDim(c.shapes[0]!), r = layernormF(f(c, 0), f(c, 0).length / D, D, f(c, 1), c.ins[2] as F64 | null, num(c, 'eps'));
      return { outs: [r.y], saved: r };
    },
    backward(c, saved, d) {
      const { xhat, inv } = saved as { xhat: F64; inv: F64 };
      const D = lastDim(c.shapes[0]!), r = layernormB(d0(d), xhat, inv, xhat.length / D, D, f(c, 1));
      return [r.dx, r.dw, c.ins[2] ? r.db : null];
    },
  },
  causal_conv1d: {
    forward(c) {
      const [T, C] = c.shapes[0]! as [number, number], K = c.shapes[1]![2]!;
      return { outs: [convF(f(c, 0), T, C, K, f(c, 1), c.ins[2] as F64 | null, c.seqs)] };
    },
    backward(c, _s, d) {
      const [T, C] = c.shapes[0]! as [number, number], K = c.shapes[1]![2]!;
      const r = convB(d0(d), f(c, 0), T, C, K, f(c, 1), c.seqs);
      return [r.dx, r.dw, c.ins[2] ? r.db : null];
    },
  },
  rope: {
    forward(c) {
      const [T, Hn, Dh] = c.shapes[0]! as [number, number, number];
      return { outs: [ropeF(f(c, 0), T, Hn, Dh, c.ins[1] as Int32Array, num(c, 'rotary_dim'), num(c, 'theta'))] };
    },
    backward(c, _s, d) {
      const [T, Hn, Dh] = c.shapes[0]! as [number, number, number];
      return [ropeF(d0(d), T, Hn, Dh, c.ins[1] as Int32Array, num(c, 'rotary_dim'), num(c, 'theta'), true), null];
    },
  },
  attention: {
    forward(c) {
      const r = attentionF(f(c, 0), f(c, 1), f(c, 2), attnDims(c), c.seqs);
      return { outs: [r.y], saved: r };
    },
    backward(c, saved, d) {
      const { y, lse } = saved as { y: F64; lse: F64 };
      const r = attentionB(d0(d), f(c, 0), f(c, 1), f(c, 2), y, lse, attnDims(c), c.seqs);
      return [r.dq, r.dk, r.dv];
    },
  },
  ssd: {
    forward(c) {
      const r = ssdF(ssdIn(c), ssdDims(c), num(c, 'chunk'), c.seqs);
      return { outs: [r.y], saved: r.entering };
    },
    backward(c, entering, d) {
      const g = ssdChunkedB(d0(d), ssdIn(c), ssdDims(c), num(c, 'chunk'), c.seqs, entering as F64[]);
      return [g.x, g.dt, g.A, g.B, g.C, g.D];
    },
  },
};

function attnDims(c: VjpCtx) {
  const [T, H, Dh] = c.shapes[0]! as [number, number, number];
  return { T, H, KV: c.shapes[1]![1]!, Dh, scale: num(c, 'scale'), window: (c.attrs.window as number | undefined) ?? 0 };
}
const ssdDims = (c: VjpCtx) => ({ H: c.shapes[0]![1]!, P: c.shapes[0]![2]!, G: c.shapes[3]![1]!, N: c.shapes[3]![2]! });
const ssdIn = (c: VjpCtx): SsdIn => ({ x: f(c, 0), dt: f(c, 1), A: f(c, 2), B: f(c, 3), C: f(c, 4), D: f(c, 5) });
