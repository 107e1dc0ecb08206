// Reverse mode, one record per graph op (keyed like OP_BY_NAME, to move into each op's record):
// `forward` computes the op in float64 and returns what its backward saves; `backward` maps the
// outputs' cotangents to the inputs' (null: no cotangent, an integer slot or an absent one).
// `lowerBackward` emits the same backward as kernels for the train entry (compiler/kernel/train.ts):
// products as matmul kernels, pointwise derivatives as elementwise bodies, the rest as the
// backward families of runtime/families.ts. The float64 kernels are runtime/cpu/backward.ts and
// backward-seq.ts; docs/TRAINING.md.

import {
  type F64, type Pointwise, POINTWISE, causalLmLossB, embeddingB, embeddingF, gate, gateB,
  layernormB, layernormF, linearB, linearF, pointwiseB, pointwiseF, rmsnormB, rmsnormF, scaleFactors,
} from '../runtime/cpu/backward.ts';
import { attentionB, attentionF, convB, convF, ropeF, ssdChunkedB, ssdF, type SsdIn } from '../runtime/cpu/backward-seq.ts';
import type { SeqSlice } from '../runtime/cpu/seq.ts';
import type { Expr, View } from '../runtime/program.ts';
import type { BackwardCtx } from './kernel/train.ts';
import type { LowerCtx, TrainSpec } from './kernel/lower.ts';
import { type Attrs, type Dim, OP_BY_NAME } from './ops.ts';
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
  /** The train entry's forward where it differs from the op's lowering (attention saves its logsumexp). */
  lowerForward?(c: LowerCtx<TrainSpec>): void;
  /** The backward as kernels; absent: the train entry refuses the op (AC412). */
  lowerBackward?(c: BackwardCtx): void;
}

const f = (c: VjpCtx, i: number) => c.ins[i] as F64;
const lastDim = (s: readonly number[]) => s[s.length - 1]!;
const num = (c: VjpCtx, k: string) => c.attrs[k] as number;
/** The one output's cotangent (a node whose output is unused gets no backward call). */
const d0 = (d: readonly (F64 | null)[]) => d[0]!;

// Expression builders for the derivative bodies
const E = {
  k: (value: number): Expr => ({ op: 'const', value }),
  mul: (a: Expr, b: Expr): Expr => ({ op: 'mul', a, b }),
  add: (a: Expr, b: Expr): Expr => ({ op: 'add', a, b }),
  neg: (a: Expr): Expr => ({ op: 'neg', a }),
  sigmoid: (a: Expr): Expr => ({ op: 'sigmoid', a }),
};
/** An elementwise derivative: dx from the input x (a leaf made when called) and the cotangent dy.
 *  Never from the output: a weight-only one may be folded into a derived weight by the kernel rules. */
type Derivative = (x: () => Expr, dy: Expr) => Expr;

/** A pointwise op; `grad` its backward as an elementwise body (absent: refused by the train entry). */
function pointwise(p: (c: VjpCtx) => Pointwise, grad?: Derivative): OpVjp {
  return {
    forward: (c) => ({ outs: [pointwiseF(p(c), f(c, 0))] }),
    backward: (c, _s, d) => [pointwiseB(p(c), d0(d), f(c, 0))],
    ...(grad ? { lowerBackward: (c: BackwardCtx) => c.elementwise(c.dx(0), (leaf) => grad(() => leaf(c.in(0)!), leaf(c.dy(0)))) } : {}),
  };
}

/** The rows of a value's buffers in the train entry. */
const rowsOf = (shape: readonly Dim[]) => (shape[0] === 'T' ? 'T' : 'C');

/** dy summed into `into` over rows and repeated columns (a broadcast operand's cotangent). */
function reduceRows(c: BackwardCtx, dy: View, into: View): void {
  c.emit({ family: 'reduce_rows', part: 'reduce', sizes: { W: dy.width, N: into.width }, inputs: { x: dy }, outputs: { y: into } });
}

/** a ∘ b where b repeats over a's leading dims; db sums over the repeats. `mul`: the product's
 *  lowering (else the sum's, whose cotangents are dy itself). */
function broadcasting(op: (a: number, b: number) => number, da: (g: number, a: number, b: number) => number, db: (g: number, a: number, b: number) => number, mul = false): OpVjp {
  return {
    lowerBackward(c) {
      const dy = c.dy(0), full = c.types[1]!.shape.join() === c.outTypes[0]!.shape.join();
      if (!mul) {
        c.pass(0, dy);
        if (full) c.pass(1, dy);
        else reduceRows(c, dy, c.dx(1));
        return;
      }
      const [a, b] = [c.in(0)!, c.in(1)!];
      c.elementwise(c.dx(0), (leaf) => E.mul(leaf(dy), leaf(b)));
      const db = full ? c.dx(1) : c.temp(dy.width, rowsOf(c.outTypes[0]!.shape));
      c.elementwise(db, (leaf) => E.mul(leaf(dy), leaf(a)));
      if (!full) reduceRows(c, db, c.dx(1));
    },
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
    // dX = dY·W (W read the other way round), dW = dYᵀ·X in W's layout, db = dY summed over rows
    lowerBackward(c) {
      const t = c.attrs.transposed === true, [a, b0] = c.types[1]!.shape as [number, number];
      const [K, N] = t ? [a, b0] : [b0, a];
      const x = c.in(0)!, w = c.in(1)!, dy = c.dy(0);
      if (!('buf' in x)) return c.refuse('a product of weights alone');
      c.emit({ family: 'matmul', part: 'dx', sizes: { K: N, N: K }, inputs: { x: dy, w }, ...(t ? {} : { attrs: { transposed: true } }), outputs: { y: c.dx(0) } });
      c.emit({ family: 'matmul_wgrad', part: 'dw', sizes: { K, N }, inputs: { dy, x }, ...(t ? { attrs: { transposed: true } } : {}), outputs: { dw: c.dx(1) } });
      if (hasBias && c.in(2)) reduceRows(c, dy, c.dx(2));
    },
  };
}

export const VJP: Readonly<Record<string, OpVjp>> = {
  ...ROUTE_VJP,
  embedding: {
    forward: (c) => ({ outs: [embeddingF(c.ins[0] as Int32Array, f(c, 1), c.shapes[1]![1]!)] }),
    backward: (c, _s, d) => [null, embeddingB(d0(d), c.ins[0] as Int32Array, c.shapes[1]![0]!, c.shapes[1]![1]!)],
    lowerBackward(c) {
      const ids = c.in(0)!, [V, D] = c.types[1]!.shape as [number, number];
      if (!('input' in ids)) return c.refuse('rows looked up by a computed value');
      c.emit({ family: 'embedding_backward', sizes: { V, D }, inputs: { ids, dy: c.dy(0) }, outputs: { dw: c.dx(1) } });
    },
  },
  linear: product(true, (c) => c.attrs.transposed === true),
  head: product(false, () => false),
  add: broadcasting((a, b) => a + b, (g) => g, (g) => g),
  mul: broadcasting((a, b) => a * b, (g, _a, b) => g * b, (g, a) => g * a, true),
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
    // each part's cotangent copied into its columns of dx (per row of W within a token's, as the forward)
    lowerBackward(c) {
      const dx = c.dx(0), t = c.types[0]!, W = t.shape.at(-1) as number, rows = dx.width / W;
      let col = 0;
      (c.attrs.sizes as number[]).forEach((n, i) => {
        const d = c.dy(i);
        for (let s = 0; s < rows; s++) {
          c.emit({ family: 'copy', part: `d${i}.${s}`, sizes: { W: n }, inputs: { x: { buf: d.buf, col: d.col + s * n, width: n } },
            outputs: { y: { buf: dx.buf, col: dx.col + s * W + col, width: n } } });
        }
        col += n;
      });
    },
  },
  reshape: { forward: (c) => ({ outs: [f(c, 0).slice()] }), backward: (_c, _s, d) => [d0(d)], lowerBackward: (c) => c.pass(0, c.dy(0)) },
  // silu' = σ(x)·(1 + x·(1 − σ(x)))
  silu: pointwise(() => POINTWISE.silu, (x, dy) => {
    const s = E.sigmoid(x());
    return E.mul(dy, E.mul(s, E.add(E.k(1), E.mul(x(), E.add(E.k(1), E.neg(s))))));
  }),
  sigmoid: pointwise(() => POINTWISE.sigmoid, (x, dy) => { const s = E.sigmoid(x()); return E.mul(dy, E.mul(s, E.add(E.k(1), E.neg(s)))); }),
  gelu: {
    ...pointwise((c) => (c.attrs.tanh === true ? POINTWISE.gelu_tanh : POINTWISE.gelu)),
    // erf is no expression: a family of its own
    lowerBackward(c) {
      const x = c.in(0)!;
      if (!('buf' in x)) return c.refuse('a gelu of a weight');
      c.emit({ family: 'gelu_backward', sizes: { W: x.width }, inputs: { x, dy: c.dy(0) }, attrs: { tanh: c.attrs.tanh === true }, outputs: { dx: c.dx(0) } });
    },
  },
  // above 20 softplus is x and σ(x) rounds to 1 in f32: the same derivative
  softplus: pointwise(() => POINTWISE.softplus, (x, dy) => E.mul(dy, E.sigmoid(x()))),
  exp: pointwise(() => POINTWISE.exp, (x, dy) => E.mul(dy, { op: 'exp', a: x() })),
  neg: pointwise(() => POINTWISE.neg, (_x, dy) => E.neg(dy)),
  relu2: pointwise(() => POINTWISE.relu2, (x, dy) => E.mul(dy, E.mul(E.k(2), { op: 'clamp', a: x(), min: 0, max: Infinity }))),
  // x · the factor of its column: by, times factors[i] over part i of sizes
  scale: {
    forward: (c) => { const m = scaleFactors(c.attrs); return { outs: [f(c, 0).map((v, i) => v * m[i % m.length]!)] }; },
    backward: (c, _s, d) => { const m = scaleFactors(c.attrs); return [d0(d).map((v, i) => v * m[i % m.length]!)]; },
    // linear: its backward is its own lowering applied to dy
    lowerBackward(c) {
      const dy = c.dy(0), dx = c.dx(0);
      OP_BY_NAME.get('scale')!.lower({
        mode: 'forward', attrs: c.attrs, types: c.types, in: () => dy, out: () => dx, temp: c.temp, emit: c.emit,
        elementwise: (body) => c.elementwise(dx, (leaf) => body(() => leaf(dy))),
      });
    },
  },
  // torch's clamp passes the gradient where min <= x <= max
  clamp: {
    ...pointwise((c) => {
      const lo = num(c, 'min'), hi = num(c, 'max');
      return { f: (v) => Math.min(Math.max(v, lo), hi), df: (v) => (v >= lo && v <= hi ? 1 : 0) };
    }),
    lowerBackward(c) {
      const x = c.in(0)!;
      if (!('buf' in x)) return c.refuse('a clamp of a weight');
      c.emit({ family: 'clamp_backward', sizes: { W: x.width }, inputs: { x, dy: c.dy(0) }, attrs: { min: c.attrs.min as number, max: c.attrs.max as number }, outputs: { dx: c.dx(0) } });
    },
  },
  rmsnorm: {
    forward(c) {
      const D = lastDim(c.shapes[0]!), r = rmsnormF(f(c, 0), f(c, 0).length / D, D, D, f(c, 1), num(c, 'eps'));
      return { outs: [r.y], saved: r.inv };
    },
    backward(c, inv, d) {
      const D = lastDim(c.shapes[0]!), r = rmsnormB(d0(d), f(c, 0), inv as F64, f(c, 0).length / D, D, D, f(c, 1));
      return [r.dx, r.dw];
    },
    lowerBackward(c) {
      const x = c.in(0)!;
      if (!('buf' in x)) return c.refuse('a norm of a weight');
      c.emit({ family: 'rmsnorm_backward', sizes: { W: x.width, D: c.types[0]!.shape.at(-1) as number }, inputs: { x, w: c.in(1)!, dy: c.dy(0) },
        attrs: { eps: num2(c.attrs, 'eps') }, outputs: { dx: c.dx(0), dw: c.dx(1) } });
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
    lowerBackward(c) {
      const x = c.in(0)!, z = c.in(1)!;
      if (!('buf' in x) || !('buf' in z)) return c.refuse('a norm of a weight');
      c.emit({ family: 'rmsnorm_gated_backward', sizes: { W: x.width, D: c.types[0]!.shape.at(-1) as number }, inputs: { x, z, w: c.in(2)!, dy: c.dy(0) },
        attrs: { eps: num2(c.attrs, 'eps'), groups: num2(c.attrs, 'groups') }, outputs: { dx: c.dx(0), dz: c.dx(1), dw: c.dx(2) } });
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
    lowerBackward(c) {
      const x = c.in(0)!, D = c.types[0]!.shape.at(-1) as number;
      if (!('buf' in x)) return c.refuse('a norm of a weight');
      c.emit({ family: 'layernorm_backward', sizes: { W: x.width, D }, inputs: { x, w: c.in(1)!, dy: c.dy(0) },
        attrs: { eps: num2(c.attrs, 'eps') }, outputs: { dx: c.dx(0), dw: c.dx(1), db: c.in(2) ? c.dx(2) : c.temp(D, 'C') } });
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
    lowerBackward(c) {
      const [C, , K] = c.types[1]!.shape as [number, number, number];
      c.emit({ family: 'conv_backward', sizes: { C, K }, inputs: { x: c.in(0)!, w: c.in(1)!, dy: c.dy(0) },
        outputs: { dx: c.dx(0), dw: c.dx(1), db: c.in(2) ? c.dx(2) : c.temp(C, 'C') } });
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
    lowerBackward(c) {
      const [, H, Dh] = c.types[0]!.shape as [Dim, number, number];
      c.emit({ family: 'rope_backward', sizes: { H, Dh, R: num2(c.attrs, 'rotary_dim') }, inputs: { dy: c.dy(0), positions: c.in(1)! },
        attrs: { theta: num2(c.attrs, 'theta') }, outputs: { dx: c.dx(0) } });
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
    // the train entry's forward keeps no KV cache and saves each query row's logsumexp
    lowerForward(c) {
      const [, H, Dh] = c.types[0]!.shape as [Dim, number, number];
      c.emit({ family: 'attention_train', sizes: { H, KV: c.types[1]!.shape[1] as number, Dh }, inputs: { q: c.in(0)!, k: c.in(1)!, v: c.in(2)! },
        attrs: attnAttrs(c.attrs), outputs: { y: c.out(0), lse: c.temp(H, 'T') } });
    },
    lowerBackward(c) {
      const [, H, Dh] = c.types[0]!.shape as [Dim, number, number];
      const lse = c.forward.find((k) => k.family === 'attention_train')!.outputs.lse!;
      c.emit({ family: 'attention_backward', sizes: { H, KV: c.types[1]!.shape[1] as number, Dh },
        inputs: { q: c.in(0)!, k: c.in(1)!, v: c.in(2)!, y: c.out(0), lse, dy: c.dy(0) }, attrs: attnAttrs(c.attrs),
        outputs: { dq: c.dx(0), dk: c.dx(1), dv: c.dx(2) } });
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
    lowerBackward(c) {
      const [, H, P] = c.types[0]!.shape as [Dim, number, number], [, G, N] = c.types[3]!.shape as [Dim, number, number];
      c.emit({ family: 'ssd_backward', sizes: { H, P, G, N, chunk: num2(c.attrs, 'chunk') },
        inputs: { x: c.in(0)!, dt: c.in(1)!, A: c.in(2)!, B: c.in(3)!, C: c.in(4)!, D: c.in(5)!, dy: c.dy(0) },
        outputs: { dx: c.dx(0), ddt: c.dx(1), dA: c.dx(2), dB: c.dx(3), dC: c.dx(4), dD: c.dx(5) } });
    },
  },
};

const num2 = (a: Attrs, k: string) => a[k] as number;
const attnAttrs = (a: Attrs) => ({ scale: num2(a, 'scale'), ...(a.window ? { window: num2(a, 'window') } : {}) });

function attnDims(c: VjpCtx) {
  const [T, H, Dh] = c.shapes[0]! as [number, number, number];
  return { T, H, KV: c.shapes[1]![1]!, Dh, scale: num(c, 'scale'), window: (c.attrs.window as number | undefined) ?? 0 };
}
const ssdDims = (c: VjpCtx) => ({ H: c.shapes[0]![1]!, P: c.shapes[0]![2]!, G: c.shapes[3]![1]!, N: c.shapes[3]![2]! });
const ssdIn = (c: VjpCtx): SsdIn => ({ x: f(c, 0), dt: f(c, 1), A: f(c, 2), B: f(c, 3), C: f(c, 4), D: f(c, 5) });
