// Float64 reference forwards and backwards of the row-wise ops (products, norms, activations,
// embedding, causal-LM loss): the oracle gradients are checked against (docs/TRAINING.md).
// Each forward computes what the f32 kernels of this folder compute, in double, with no rounding;
// each backward takes the output's cotangent `dy` and returns the inputs' cotangents.

import { erf } from './elementwise.ts';

export type F64 = Float64Array;

/** y[r, n] = Σ_k x[r, k] · W[n, k] (+ b[n]); W is [N, K], or [K, N] when `transposed`. */
export function linearF(x: F64, rows: number, K: number, N: number, w: F64, transposed: boolean, b: F64 | null): F64 {
  const y = new Float64Array(rows * N);
  // element (n, k) of W at n·sn + k·sk
  const sn = transposed ? 1 : K, sk = transposed ? N : 1;
  // one output column at a time, four rows together: W's row is read once per four rows
  for (let n = 0; n < N; n++) {
    const bias = b ? b[n]! : 0;
    let r = 0;
    for (; r + 4 <= rows; r += 4) {
      let a0 = bias, a1 = bias, a2 = bias, a3 = bias;
      for (let k = 0, x0 = r * K, wi = n * sn; k < K; k++, x0++, wi += sk) {
        const wv = w[wi]!;
        a0 += x[x0]! * wv;
        a1 += x[x0 + K]! * wv;
        a2 += x[x0 + 2 * K]! * wv;
        a3 += x[x0 + 3 * K]! * wv;
      }
      y[r * N + n] = a0;
      y[(r + 1) * N + n] = a1;
      y[(r + 2) * N + n] = a2;
      y[(r + 3) * N + n] = a3;
    }
    for (; r < rows; r++) {
      let acc = bias;
      for (let k = 0, xi = r * K, wi = n * sn; k < K; k++, xi++, wi += sk) acc += x[xi]! * w[wi]!;
      y[r * N + n] = acc;
    }
  }
  return y;
}

/** dX = dY · W, dW = dYᵀ · X (in W's layout), db = Σ_rows dY. */
export function linearB(dy: F64, x: F64, rows: number, K: number, N: number, w: F64, transposed: boolean): { dx: F64; dw: F64; db: F64 } {
  const dx = new Float64Array(rows * K), dw = new Float64Array(N * K), db = new Float64Array(N);
  const sn = transposed ? 1 : K, sk = transposed ? N : 1;
  for (let n = 0; n < N; n++) {
    for (let r = 0; r < rows; r++) {
      const g = dy[r * N + n]!;
      if (g === 0) continue;
      db[n] += g;
      for (let k = 0, xi = r * K, wi = n * sn; k < K; k++, xi++, wi += sk) {
        dx[xi] += g * w[wi]!;
        dw[wi] += g * x[xi]!;
      }
    }
  }
  return { dx, dw, db };
}

/** RMSNorm over runs of `gs` features (gs = D: the whole row): y = w · x · inv, inv = 1/√(mean(x²) + eps).
 *  x: [rows, D]; w: [D]. Returns y and inv per run (saved for the backward). */
export function rmsnormF(x: F64, rows: number, D: number, gs: number, w: F64, eps: number): { y: F64; inv: F64 } {
  const y = new Float64Array(rows * D), inv = new Float64Array((rows * D) / gs);
  for (let g0 = 0, run = 0; g0 < rows * D; g0 += gs, run++) {
    let ss = 0;
    for (let i = 0; i < gs; i++) ss += x[g0 + i]! * x[g0 + i]!;
    const r = 1 / Math.sqrt(ss / gs + eps);
    inv[run] = r;
    for (let i = 0; i < gs; i++) y[g0 + i] = w[(g0 + i) % D]! * x[g0 + i]! * r;
  }
  return { y, inv };
}

/** With g = dy · w: dx = inv · (g − x · inv² · mean(g · x)) per run; dw = Σ_rows dy · x · inv. */
export function rmsnormB(dy: F64, x: F64, inv: F64, rows: number, D: number, gs: number, w: F64): { dx: F64; dw: F64 } {
  const dx = new Float64Array(rows * D), dw = new Float64Array(D);
  for (let g0 = 0, run = 0; g0 < rows * D; g0 += gs, run++) {
    const r = inv[run]!;
    let gx = 0;
    for (let i = 0; i < gs; i++) gx += dy[g0 + i]! * w[(g0 + i) % D]! * x[g0 + i]!;
    const c = (r * r * gx) / gs;
    for (let i = 0; i < gs; i++) {
      const j = g0 + i;
      dx[j] = r * (dy[j]! * w[j % D]! - x[j]! * c);
      dw[j % D] += dy[j]! * x[j]! * r;
    }
  }
  return { dx, dw };
}

/** σ(v) and silu(v) = v · σ(v). */
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** The gated norm's input h = x · silu(z) (BambaRMSNormGated, norm after gate). */
export function gate(x: F64, z: F64): F64 {
  const h = new Float64Array(x.length);
  for (let i = 0; i < h.length; i++) h[i] = x[i]! * z[i]! * sigmoid(z[i]!);
  return h;
}

/** From dh (the cotangent of h = x · silu(z)): dx = dh · silu(z), dz = dh · x · silu'(z). */
export function gateB(dh: F64, x: F64, z: F64): { dx: F64; dz: F64 } {
  const dx = new Float64Array(x.length), dz = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const s = sigmoid(z[i]!);
    dx[i] = dh[i]! * z[i]! * s;
    dz[i] = dh[i]! * x[i]! * s * (1 + z[i]! * (1 - s));
  }
  return { dx, dz };
}

/** LayerNorm: xhat = (x − mean) · inv, y = xhat · w + b. Returns y, xhat and inv per row. */
export function layernormF(x: F64, rows: number, D: number, w: F64, b: F64 | null, eps: number): { y: F64; xhat: F64; inv: F64 } {
  const y = new Float64Array(rows * D), xhat = new Float64Array(rows * D), inv = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0, ss = 0;
    for (let i = 0; i < D; i++) sum += x[r * D + i]!;
    const mean = sum / D;
    for (let i = 0; i < D; i++) ss += (x[r * D + i]! - mean) ** 2;
    inv[r] = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) {
      xhat[r * D + i] = (x[r * D + i]! - mean) * inv[r]!;
      y[r * D + i] = xhat[r * D + i]! * w[i]! + (b ? b[i]! : 0);
    }
  }
  return { y, xhat, inv };
}

/** With g = dy · w: dx = inv · (g − mean(g) − xhat · mean(g · xhat)); dw = Σ dy · xhat; db = Σ dy. */
export function layernormB(dy: F64, xhat: F64, inv: F64, rows: number, D: number, w: F64): { dx: F64; dw: F64; db: F64 } {
  const dx = new Float64Array(rows * D), dw = new Float64Array(D), db = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    let mg = 0, mgx = 0;
    for (let i = 0; i < D; i++) {
      const g = dy[r * D + i]! * w[i]!;
      mg += g / D;
      mgx += (g * xhat[r * D + i]!) / D;
    }
    for (let i = 0; i < D; i++) {
      const j = r * D + i;
      dx[j] = inv[r]! * (dy[j]! * w[i]! - mg - xhat[j]! * mgx);
      dw[i] += dy[j]! * xhat[j]!;
      db[i] += dy[j]!;
    }
  }
  return { dx, dw, db };
}

/** A pointwise function and its derivative, as the f32 kernels define the function. */
export interface Pointwise {
  f(v: number): number;
  df(v: number): number;
}

const GELU_C = Math.sqrt(2 / Math.PI);
/** `scale`'s factor for each column of the last dim: by, times factors[i] over part i of sizes (one
 *  factor where there are no parts). The f64 VJP and the f32 training engine both read it. */
export function scaleFactors(attrs: Readonly<Record<string, unknown>>): number[] {
  const by = attrs.by as number, sizes = attrs.sizes as number[] | undefined, fs = attrs.factors as number[] | undefined;
  return sizes ? sizes.flatMap((n, i) => Array<number>(n).fill(by * fs![i]!)) : [by];
}

export const POINTWISE = {
  silu: { f: (v) => v * sigmoid(v), df: (v) => sigmoid(v) * (1 + v * (1 - sigmoid(v))) },
  sigmoid: { f: sigmoid, df: (v) => sigmoid(v) * (1 - sigmoid(v)) },
  // torch's threshold: the identity above 20
  softplus: { f: (v) => (v > 20 ? v : Math.log1p(Math.exp(v))), df: (v) => (v > 20 ? 1 : sigmoid(v)) },
  exp: { f: Math.exp, df: Math.exp },
  neg: { f: (v) => -v, df: () => -1 },
  // max(v, 0)²; its derivative 2·max(v, 0)
  relu2: { f: (v) => Math.max(v, 0) ** 2, df: (v) => 2 * Math.max(v, 0) },
  gelu: {
    f: (v) => 0.5 * v * (1 + erf(v * Math.SQRT1_2)),
    df: (v) => 0.5 * (1 + erf(v * Math.SQRT1_2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI),
  },
  gelu_tanh: {
    f: (v) => 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v ** 3))),
    df(v) {
      const t = Math.tanh(GELU_C * (v + 0.044715 * v ** 3));
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * v * v);
    },
  },
} satisfies Record<string, Pointwise>;

/** y = f(x) elementwise. */
export function pointwiseF(p: Pointwise, x: F64): F64 {
  return x.map((v) => p.f(v));
}

/** dx = dy · f'(x). */
export function pointwiseB(p: Pointwise, dy: F64, x: F64): F64 {
  return dy.map((g, i) => g * p.df(x[i]!));
}

/** Rows of table [V, D] by id. */
export function embeddingF(ids: Int32Array, table: F64, D: number): F64 {
  const y = new Float64Array(ids.length * D);
  ids.forEach((id, t) => y.set(table.subarray(id * D, (id + 1) * D), t * D));
  return y;
}

/** The table's cotangent: each row of dy added into the row of its id (scatter-add). */
export function embeddingB(dy: F64, ids: Int32Array, V: number, D: number): F64 {
  const dw = new Float64Array(V * D);
  ids.forEach((id, t) => {
    for (let i = 0; i < D; i++) dw[id * D + i] += dy[t * D + i]!;
  });
  return dw;
}

/**
 * The mean causal-LM loss of runtime/loss.ts (row t predicts labels[t + 1]; -100 ignored), in
 * double, and its cotangent: dlogits[t] = (softmax(row t) − onehot(target)) / N over the N counted
 * rows, zero elsewhere.
 */
export function causalLmLossB(logits: F64, T: number, V: number, labels: Int32Array): { loss: number; tokens: number; dlogits: F64 } {
  const dlogits = new Float64Array(T * V);
  let sum = 0, tokens = 0;
  for (let t = 0; t + 1 < T; t++) if (labels[t + 1] !== -100) tokens++;
  for (let t = 0; t + 1 < T; t++) {
    const y = labels[t + 1]!;
    if (y === -100) continue;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[t * V + v]! - max);
    const lse = max + Math.log(s);
    sum += lse - logits[t * V + y]!;
    for (let v = 0; v < V; v++) dlogits[t * V + v] = Math.exp(logits[t * V + v]! - lse) / tokens;
    dlogits[t * V + y] -= 1 / tokens;
  }
  return { loss: sum / tokens, tokens, dlogits };
}
