// The CPU's implementation of the train entry's own families (runtime/families.ts
// BACKWARD_FAMILIES): the loss, the weight-gradient product, the reductions and the backwards of
// the norms, embedding, conv, rope, attention, SSD and a mixture's experts, in f32 storage with
// double accumulators. Each sequence of a packed batch is its own: no gradient crosses a boundary. The float64
// functions of backward.ts and backward-seq.ts are what these are tested against.

import { RuntimeError } from '../errors.ts';
import type { BackwardFamily } from '../families.ts';
import type { BackwardKernelOf, View } from '../program.ts';
import { rope } from './attention.ts';
import type { CpuBackend } from './backend.ts';
import { erf } from './elementwise.ts';
import type { Ctx } from './families.ts';
import type { SeqSlice } from './seq.ts';
import { ssdBackward } from './ssd-backward.ts';

type F32 = Float32Array;
type Impl<F extends BackwardFamily> = (k: BackwardKernelOf<F>, c: Ctx) => void;
export type BackwardTable = { readonly [F in BackwardFamily]: Impl<F> };

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
/** Rows of `k`'s operand `name` as rows of `width` floats (a [T, heads, width] view has T·heads). */
export const rowsOf = (k: BackwardKernelOf<BackwardFamily>, c: Ctx, name: string, width: number) => (c.rows(k.inputs[name] as View) * (k.inputs[name] as View).width) / width;

/** Row t predicts labels[t + 1] (skipped where that is -100): the mean of −log softmax, and its
 *  cotangent (softmax − onehot) / rows counted. */
const causalLmLoss: Impl<'causal_lm_loss'> = (k, c) => {
  const V = k.sizes.V, logits = c.operand(k, 'logits'), labels = c.labels ?? fail(`${k.name} needs the batch's labels`);
  const T = c.T, d = new Float32Array(T * V);
  let counted = 0, sum = 0;
  for (let t = 0; t + 1 < T; t++) if (labels[t + 1] !== -100) counted++;
  for (let t = 0; t + 1 < T; t++) {
    const y = labels[t + 1]!;
    if (y === -100) continue;
    const row = logits.subarray(t * V, (t + 1) * V);
    let max = -Infinity, s = 0;
    for (let v = 0; v < V; v++) max = Math.max(max, row[v]!);
    for (let v = 0; v < V; v++) s += Math.exp(row[v]! - max);
    const lse = max + Math.log(s);
    sum += lse - row[y]!;
    for (let v = 0; v < V; v++) d[t * V + v] = Math.exp(row[v]! - lse) / counted;
    d[t * V + y] = (Math.exp(row[y]! - lse) - 1) / counted;
  }
  c.write(k.outputs.loss!, Float32Array.of(sum / counted, counted));
  c.write(k.outputs.dlogits!, d);
};

/** dw[n, k] = Σ_r dy[r, n] · x[r, k], stored [N, K] (or [K, N] transposed). */
const matmulWgrad: Impl<'matmul_wgrad'> = (k, c) => {
  const { K, N } = k.sizes, dy = c.operand(k, 'dy'), x = c.operand(k, 'x'), rows = rowsOf(k, c, 'x', K);
  const acc = new Float64Array(N * K);
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * K, (r + 1) * K);
    for (let n = 0; n < N; n++) {
      const g = dy[r * N + n]!;
      if (g === 0) continue;
      for (let i = 0, o = n * K; i < K; i++) acc[o + i] += g * xr[i]!;
    }
  }
  const dw = new Float32Array(N * K);
  if (k.attrs.transposed) for (let n = 0; n < N; n++) for (let i = 0; i < K; i++) dw[i * N + n] = acc[n * K + i]!;
  else dw.set(acc);
  c.write(k.outputs.dw!, dw);
};

const reduceRows: Impl<'reduce_rows'> = (k, c) => {
  const x = c.operand(k, 'x'), N = k.sizes.N, acc = new Float64Array(N);
  for (let i = 0; i < x.length; i++) acc[i % N] += x[i]!;
  c.write(k.outputs.y!, Float32Array.from(acc));
};

const clampBackward: Impl<'clamp_backward'> = (k, c) => {
  const x = c.operand(k, 'x'), dy = c.operand(k, 'dy'), lo = k.attrs.min as number, hi = k.attrs.max as number;
  c.write(k.outputs.dx!, dy.map((g, i) => (x[i]! >= lo && x[i]! <= hi ? g : 0)));
};

/**
 * RMSNorm's backward over runs of `gs` features of the rows of h (the norm's input): with
 * inv = 1/√(mean(h²) + eps) and g = dy·w: dh = inv·(g − h·inv²·mean(g·h)); dw += dy·h·inv.
 */
function rmsBack(h: ArrayLike<number>, dy: Float32Array, w: Float32Array, D: number, gs: number, eps: number, dw: Float64Array): Float64Array {
  const dh = new Float64Array(dy.length);
  for (let g0 = 0; g0 < dy.length; g0 += gs) {
    let ss = 0, gh = 0;
    for (let i = g0; i < g0 + gs; i++) {
      ss += h[i]! * h[i]!;
      gh += dy[i]! * w[i % D]! * h[i]!;
    }
    const inv = 1 / Math.sqrt(ss / gs + eps), m = (inv * inv * gh) / gs;
    for (let i = g0; i < g0 + gs; i++) {
      dh[i] = inv * (dy[i]! * w[i % D]! - h[i]! * m);
      dw[i % D] += dy[i]! * h[i]! * inv;
    }
  }
  return dh;
}

const rmsnormBackward: Impl<'rmsnorm_backward'> = (k, c) => {
  const D = k.sizes.D, dw = new Float64Array(D);
  const dx = rmsBack(c.operand(k, 'x'), c.operand(k, 'dy'), c.operand(k, 'w'), D, D, k.attrs.eps as number, dw);
  c.write(k.outputs.dx!, Float32Array.from(dx));
  c.write(k.outputs.dw!, Float32Array.from(dw));
};

/** h = x · silu(z) (as the forward rounds it), normed; dx = dh · silu(z), dz = dh · x · silu'(z). */
const rmsnormGatedBackward: Impl<'rmsnorm_gated_backward'> = (k, c) => {
  const D = k.sizes.D, x = c.operand(k, 'x'), z = c.operand(k, 'z'), dw = new Float64Array(D);
  const h = x.map((v, i) => v * Math.fround(z[i]! * sigmoid(z[i]!)));
  const dh = rmsBack(h, c.operand(k, 'dy'), c.operand(k, 'w'), D, D / (k.attrs.groups as number), k.attrs.eps as number, dw);
  const dx = new Float32Array(x.length), dz = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const s = sigmoid(z[i]!);
    dx[i] = dh[i]! * z[i]! * s;
    dz[i] = dh[i]! * x[i]! * s * (1 + z[i]! * (1 - s));
  }
  c.write(k.outputs.dx!, dx);
  c.write(k.outputs.dz!, dz);
  c.write(k.outputs.dw!, Float32Array.from(dw));
};

/** With xhat = (x − mean)·inv and g = dy·w: dx = inv·(g − mean(g) − xhat·mean(g·xhat)); dw += dy·xhat; db += dy. */
const layernormBackward: Impl<'layernorm_backward'> = (k, c) => {
  const D = k.sizes.D, x = c.operand(k, 'x'), w = c.operand(k, 'w'), dy = c.operand(k, 'dy'), eps = k.attrs.eps as number;
  const dx = new Float32Array(x.length), dw = new Float64Array(D), db = new Float64Array(D), xhat = new Float64Array(D);
  for (let r0 = 0; r0 < x.length; r0 += D) {
    let mean = 0, v = 0, mg = 0, mgx = 0;
    for (let i = 0; i < D; i++) mean += x[r0 + i]! / D;
    for (let i = 0; i < D; i++) v += (x[r0 + i]! - mean) ** 2 / D;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < D; i++) {
      xhat[i] = (x[r0 + i]! - mean) * inv;
      mg += (dy[r0 + i]! * w[i]!) / D;
      mgx += (dy[r0 + i]! * w[i]! * xhat[i]!) / D;
    }
    for (let i = 0; i < D; i++) {
      dx[r0 + i] = inv * (dy[r0 + i]! * w[i]! - mg - xhat[i]! * mgx);
      dw[i] += dy[r0 + i]! * xhat[i]!;
      db[i] += dy[r0 + i]!;
    }
  }
  c.write(k.outputs.dx!, dx);
  c.write(k.outputs.dw!, Float32Array.from(dw));
  c.write(k.outputs.db!, Float32Array.from(db));
};

const GELU_K = Math.sqrt(2 / Math.PI);
/** gelu'(v) = Φ(v) + v·φ(v); of the tanh form, with t = tanh(k(v + 0.044715v³)):
 *  ½(1 + t) + ½v(1 − t²)·k(1 + 3·0.044715v²). */
const geluBackward: Impl<'gelu_backward'> = (k, c) => {
  const x = c.operand(k, 'x'), dy = c.operand(k, 'dy');
  const d = k.attrs.tanh
    ? (v: number) => { const t = Math.tanh(GELU_K * (v + 0.044715 * v ** 3)); return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_K * (1 + 3 * 0.044715 * v * v); }
    : (v: number) => 0.5 * (1 + erf(v * Math.SQRT1_2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI);
  c.write(k.outputs.dx!, dy.map((g, i) => g * d(x[i]!)));
};

const softmaxBackward: Impl<'softmax_backward'> = (k, c) => {
  const y = c.operand(k, 'y'), dy = c.operand(k, 'dy'), D = k.sizes.D, dx = new Float32Array(y.length);
  for (let o = 0; o < y.length; o += D) {
    let s = 0;
    for (let i = o; i < o + D; i++) s += dy[i]! * y[i]!;
    for (let i = o; i < o + D; i++) dx[i] = y[i]! * (dy[i]! - s);
  }
  c.write(k.outputs.dx!, dx);
};

/** v_j = x[p_j] (/ S, S = Σ_j x[p_j], with normalize): dx[p_j] += dv_j (/ S − Σ_m dv_m · x[p_m] / S²). */
const topkBackward: Impl<'topk_backward'> = (k, c) => {
  const { D, K } = k.sizes, x = c.operand(k, 'x'), idx = c.operand(k, 'indices'), dv = c.operand(k, 'dy'), dx = new Float32Array(x.length);
  for (let r = 0; r * D < x.length; r++) {
    let sum = 0, dot = 0;
    for (let j = 0; j < K; j++) {
      const v = x[r * D + idx[r * K + j]!]!;
      sum += v;
      dot += dv[r * K + j]! * v;
    }
    for (let j = 0; j < K; j++) dx[r * D + idx[r * K + j]!] += k.attrs.normalize ? dv[r * K + j]! / sum - dot / (sum * sum) : dv[r * K + j]!;
  }
  c.write(k.outputs.dx!, dx);
};

/** Scatter-add: each row of dy into the table row of its id. */
const embeddingBackward: Impl<'embedding_backward'> = (k, c) => {
  const { V, D } = k.sizes, ids = (k.inputs.ids as { input: string }).input === 'tokens' ? c.tokens : c.positions;
  const dy = c.operand(k, 'dy'), dw = new Float64Array(V * D);
  ids.forEach((id, t) => {
    for (let i = 0; i < D; i++) dw[id * D + i] += dy[t * D + i]!;
  });
  c.write(k.outputs.dw!, Float32Array.from(dw));
};

/** The transposed causal conv per sequence: dx[src] += w·dy[t]; dw[ch, j] += dy[t]·x[src]; db += dy. */
const convBackward: Impl<'conv_backward'> = (k, c) => {
  const { C, K } = k.sizes, x = c.operand(k, 'x'), w = c.operand(k, 'w'), dy = c.operand(k, 'dy');
  const dx = new Float64Array(x.length), dw = new Float64Array(C * K), db = new Float64Array(C);
  for (const { start, len } of c.seqs) {
    for (let t = start; t < start + len; t++) {
      for (let ch = 0; ch < C; ch++) {
        const g = dy[t * C + ch]!;
        db[ch] += g;
        for (let j = Math.max(0, start - t + K - 1); j < K; j++) {
          const src = (t - (K - 1) + j) * C + ch;
          dx[src] += w[ch * K + j]! * g;
          dw[ch * K + j] += g * x[src]!;
        }
      }
    }
  }
  c.write(k.outputs.dx!, Float32Array.from(dx));
  c.write(k.outputs.dw!, Float32Array.from(dw));
  c.write(k.outputs.db!, Float32Array.from(db));
};

/** The inverse rotation is the rotation at the negated positions: fround, cos and sin are all odd or
 *  even exactly, so the angles are the forward's negated bit for bit. */
const ropeBackward: Impl<'rope_backward'> = (k, c) => {
  const { H, Dh, R } = k.sizes;
  c.write(k.outputs.dx!, rope(c.operand(k, 'dy'), c.T, H, Dh, c.positions.map((p) => -p), R, k.attrs.theta as number));
};

interface Heads {
  readonly H: number;
  readonly KV: number;
  readonly Dh: number;
  readonly scale: number;
  readonly window: number;
}
const heads = (k: BackwardKernelOf<'attention_train' | 'attention_backward'>): Heads =>
  ({ ...k.sizes, scale: k.attrs.scale as number, window: (k.attrs.window as number | undefined) ?? 0 });

/** Calls f(i, h, first) for every query row i and head h, `first` its first visible key row. */
function eachQuery(seqs: readonly SeqSlice[], d: Heads, f: (i: number, h: number, first: number) => void): void {
  for (const { start, len } of seqs) {
    for (let i = start; i < start + len; i++) for (let h = 0; h < d.H; h++) f(i, h, d.window ? Math.max(start, i - d.window + 1) : start);
  }
}

/** q·k of query row i, head h and key row j (its KV head's), scaled. */
function score(q: Float32Array, kk: Float32Array, d: Heads, i: number, h: number, j: number): number {
  const qo = (i * d.H + h) * d.Dh, ko = (j * d.KV + Math.floor(h / (d.H / d.KV))) * d.Dh;
  let dot = 0;
  for (let e = 0; e < d.Dh; e++) dot += q[qo + e]! * kk[ko + e]!;
  return dot * d.scale;
}

/** Causal attention within each sequence, saving each query row's logsumexp. */
const attentionTrain: Impl<'attention_train'> = (k, c) => {
  const d = heads(k), [q, kk, v] = ['q', 'k', 'v'].map((n) => c.operand(k, n)) as [Float32Array, Float32Array, Float32Array];
  const y = new Float32Array(c.T * d.H * d.Dh), lse = new Float32Array(c.T * d.H), acc = new Float64Array(d.Dh);
  let s = new Float64Array(0);
  eachQuery(c.seqs, d, (i, h, first) => {
    if (s.length < i - first + 1) s = new Float64Array(i - first + 1);
    let max = -Infinity, sum = 0;
    for (let j = first; j <= i; j++) max = Math.max(max, (s[j - first] = score(q, kk, d, i, h, j)));
    for (let j = first; j <= i; j++) sum += Math.exp(s[j - first]! - max);
    const l = max + Math.log(sum), kh = Math.floor(h / (d.H / d.KV));
    acc.fill(0);
    for (let j = first; j <= i; j++) {
      const p = Math.exp(s[j - first]! - l), vo = (j * d.KV + kh) * d.Dh;
      for (let e = 0; e < d.Dh; e++) acc[e] += p * v[vo + e]!;
    }
    y.set(acc, (i * d.H + h) * d.Dh);
    lse[i * d.H + h] = l;
  });
  c.write(k.outputs.y!, y);
  c.write(k.outputs.lse!, lse);
};

/** P from the saved logsumexp; dV += Pᵀ·dO, dS = P·(dO·V − dO·O), dQ = scale·dS·K, dK = scale·dSᵀ·Q. */
const attentionBackward: Impl<'attention_backward'> = (k, c) => {
  const d = heads(k), [q, kk, v, y, lse, dy] = ['q', 'k', 'v', 'y', 'lse', 'dy'].map((n) => c.operand(k, n)) as Float32Array[];
  const dq = new Float64Array(q!.length), dk = new Float64Array(kk!.length), dv = new Float64Array(v!.length), Dh = d.Dh;
  eachQuery(c.seqs, d, (i, h, first) => {
    const qo = (i * d.H + h) * Dh, kh = Math.floor(h / (d.H / d.KV));
    let rowDot = 0;
    for (let e = 0; e < Dh; e++) rowDot += dy![qo + e]! * y![qo + e]!;
    for (let j = first; j <= i; j++) {
      const ko = (j * d.KV + kh) * Dh, p = Math.exp(score(q!, kk!, d, i, h, j) - lse![i * d.H + h]!);
      let dp = 0;
      for (let e = 0; e < Dh; e++) dp += dy![qo + e]! * v![ko + e]!;
      const ds = p * (dp - rowDot) * d.scale;
      for (let e = 0; e < Dh; e++) {
        dv[ko + e] += p * dy![qo + e]!;
        dq[qo + e] += ds * kk![ko + e]!;
        dk[ko + e] += ds * q![qo + e]!;
      }
    }
  });
  c.write(k.outputs.dq!, Float32Array.from(dq));
  c.write(k.outputs.dk!, Float32Array.from(dk));
  c.write(k.outputs.dv!, Float32Array.from(dv));
};

const ssdBackwardImpl: Impl<'ssd_backward'> = (k, c) => {
  const { H, P, G, N, chunk } = k.sizes;
  const [x, dt, A, B, C, D, dy] = ['x', 'dt', 'A', 'B', 'C', 'D', 'dy'].map((n) => c.operand(k, n)) as Float32Array[];
  const g = ssdBackward(x!, dt!, A!, B!, C!, D!, dy!, { H, P, G, N }, chunk, c.seqs);
  for (const n of ['dx', 'ddt', 'dA', 'dB', 'dC', 'dD'] as const) c.write(k.outputs[n]!, g[n]);
};

/** The expert a token's choice names (an integer-valued float of idx), checked. */
export function expertOf(v: number, E: number, t: number): number {
  if (!(v >= 0 && v < E && Number.isInteger(v))) throw new RangeError(`experts_backward: token ${t} routed to expert ${v}, outside 0..${E - 1}`);
  return v;
}

/**
 * The grouped experts' backward, per token t over its chosen q = (t, j), e = idx[q]: a = gate_e·x[t]
 * and b = up_e·x[t] recomputed, h = silu(a)·b, u = W_out[e]ᵀ·dy[t]; dgates[q] = h·u, dh = gates[q]·u,
 * da = dh·b·silu'(a), db = dh·silu(a); dx[t] += W_in[e]ᵀ·[da; db], dw_in[e] += [da; db] ⊗ x[t],
 * dw_out[e] += gates[q]·dy[t] ⊗ h.
 */
const expertsBackward: Impl<'experts_backward'> = (k, c) => {
  const { E, H, I, K } = k.sizes, [x, idx, gates, wIn, wOut, dy] = ['x', 'idx', 'gates', 'w_in', 'w_out', 'dy'].map((n) => c.operand(k, n)) as F32[];
  const T = x!.length / H, dx = new Float64Array(T * H), dg = new Float32Array(T * K), dwIn = new Float64Array(E * 2 * I * H), dwOut = new Float64Array(E * H * I);
  const dab = new Float64Array(2 * I), h = new Float64Array(I);
  for (let q = 0; q < T * K; q++) {
    const t = Math.floor(q / K), e = expertOf(idx![q]!, E, t), g = gates![q]!, xo = t * H;
    let dgq = 0;
    for (let i = 0; i < I; i++) {
      const gi = (e * 2 * I + i) * H, ui = gi + I * H;
      let a = 0, b = 0, u = 0;
      for (let col = 0; col < H; col++) {
        a += x![xo + col]! * wIn![gi + col]!;
        b += x![xo + col]! * wIn![ui + col]!;
        u += dy![xo + col]! * wOut![(e * H + col) * I + i]!;
      }
      const sg = sigmoid(a), dh = g * u;
      h[i] = a * sg * b;
      dgq += h[i]! * u;
      dab[i] = dh * b * sg * (1 + a * (1 - sg));
      dab[I + i] = dh * a * sg;
    }
    dg[q] = dgq;
    for (let r = 0; r < 2 * I; r++) {
      const o = (e * 2 * I + r) * H, d = dab[r]!;
      for (let col = 0; col < H; col++) { dx[xo + col] += d * wIn![o + col]!; dwIn[o + col] += d * x![xo + col]!; }
    }
    for (let col = 0; col < H; col++) {
      const gd = g * dy![xo + col]!, o = (e * H + col) * I;
      for (let i = 0; i < I; i++) dwOut[o + i] += gd * h[i]!;
    }
  }
  c.write(k.outputs.dx!, Float32Array.from(dx));
  c.write(k.outputs.dgates!, dg);
  c.write(k.outputs.dw_in!, Float32Array.from(dwIn));
  c.write(k.outputs.dw_out!, Float32Array.from(dwOut));
};

export const CPU_BACKWARD: BackwardTable = {
  ssd_backward: ssdBackwardImpl,
  causal_lm_loss: causalLmLoss, matmul_wgrad: matmulWgrad, reduce_rows: reduceRows, clamp_backward: clampBackward,
  rmsnorm_backward: rmsnormBackward, rmsnorm_gated_backward: rmsnormGatedBackward, layernorm_backward: layernormBackward,
  gelu_backward: geluBackward, softmax_backward: softmaxBackward, topk_backward: topkBackward, embedding_backward: embeddingBackward,
  conv_backward: convBackward, rope_backward: ropeBackward, attention_train: attentionTrain, attention_backward: attentionBackward,
  experts_backward: expertsBackward,
};

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}

/** A packed batch for the train entry: tokens, positions and labels [T], the rows of each sequence. */
export interface TrainBatch {
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqs: readonly SeqSlice[];
  readonly labels: Int32Array;
}

export interface TrainResult {
  /** The mean loss and the rows it counts. */
  readonly loss: number;
  readonly tokens: number;
  /** Every weight's gradient by name, in the weight's layout. */
  readonly grads: ReadonlyMap<string, Float32Array>;
}

/** RT322 for labels of another length than the tokens, RT320 for a label out of [0, V) but -100,
 *  RT301 when no row is counted. */
export function checkLabels(batch: TrainBatch, V: number): void {
  const T = batch.tokens.length;
  if (batch.labels.length !== T) throw new RuntimeError('RT322', [batch.labels.length, T]);
  batch.labels.forEach((y, t) => {
    if (y !== -100 && !(y >= 0 && y < V)) throw new RuntimeError('RT320', [y, t, t === 0 ? 'no logits row predicts it' : `the target of logits row ${t - 1}`, V]);
  });
  if (batch.labels.every((y, t) => t === 0 || y === -100)) throw new RuntimeError('RT301', ['no label to predict: every label after the first is -100, so the mean loss has no gradient']);
}

/** Runs the program's train entry on `batch` (each sequence from a fresh state): the loss and every
 *  weight's gradient (with `views`, windows of the arena where they can be, valid until the
 *  backend's next run: no copy of every gradient out). RT322 for labels of another length, RT320 for
 *  a label out of range, RT301 when no row is counted. */
export function runTrain(backend: CpuBackend, batch: TrainBatch, views = false): TrainResult {
  const { program } = backend, entry = program.train ?? fail('the program has no train entry (lower it with { train: true })');
  checkLabels(batch, entry.outputs.logits!.width);
  const pool = backend.createStatePool(Math.max(...batch.seqs.map((s) => s.len)));
  const slots = batch.seqs.map(() => pool.acquire());
  const inv = backend.beginTrain(entry, { ...batch, slots, lengths: slots.map(() => 0) }, pool);
  for (const k of entry.kernels) inv.dispatch(k);
  const [loss, tokens] = inv.read(entry.outputs.loss!);
  const grads = new Map<string, Float32Array>();
  for (const [name, v] of Object.entries(entry.outputs)) if (name.startsWith('grad:')) grads.set(name.slice(5), (views && inv.out(v)) || inv.read(v));
  return { loss: loss!, tokens: tokens!, grads };
}
