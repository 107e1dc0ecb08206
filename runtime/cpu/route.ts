// Routing kernels for mixtures of experts on f32 rows: softmax over the last dim, top-k with
// indices, rows gathered and scattered by index, and the grouped expert product (tokens grouped by expert, each expert's rows through one
// gate/up product and one down product, the results scattered back weighted). Each rounds to f32
// where a kernel stores; sums are in double.

import { type Tensor, toF32 } from '../tensor.ts';

/** Softmax over each D-wide part of x: e^(v − max) / Σ e^(u − max). */
export function softmax(x: Float32Array, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += D) {
    let mx = -Infinity;
    for (let i = 0; i < D; i++) mx = Math.max(mx, x[o + i]!);
    let sum = 0;
    for (let i = 0; i < D; i++) sum += Math.exp(x[o + i]! - mx);
    for (let i = 0; i < D; i++) out[o + i] = Math.exp(x[o + i]! - mx) / sum;
  }
  return out;
}

/** The K largest of each D-wide row of x, largest first; equal values in index order (torch.topk
 *  on the CPU). A NaN counts as the largest, as in torch. Indices are returned as integer floats;
 *  with `normalize` the values are divided by their sum. */
export function topk(x: Float32Array, D: number, K: number, normalize: boolean): { values: Float32Array; indices: Float32Array } {
  const rows = x.length / D;
  const values = new Float32Array(rows * K), indices = new Float32Array(rows * K);
  const above = (a: number, b: number, ia: number, ib: number) => (Number.isNaN(a) ? !Number.isNaN(b) || ia < ib : a > b || (a === b && ia < ib));
  const pick = new Int32Array(K);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    // insertion into the K best so far (K is small: a router's experts per token)
    let n = 0;
    for (let i = 0; i < D; i++) {
      const v = x[o + i]!;
      let at = n;
      while (at > 0 && above(v, x[o + pick[at - 1]!]!, i, pick[at - 1]!)) at--;
      if (at >= K) continue;
      for (let j = Math.min(n, K - 1); j > at; j--) pick[j] = pick[j - 1]!;
      pick[at] = i;
      if (n < K) n++;
    }
    let sum = 0;
    for (let j = 0; j < K; j++) sum += x[o + pick[j]!]!;
    for (let j = 0; j < K; j++) {
      const v = x[o + pick[j]!]!;
      values[r * K + j] = normalize ? v / sum : v;
      indices[r * K + j] = pick[j]!;
    }
  }
  return { values, indices };
}

/** Whether an index (an integer float) picks one of n rows: an index outside [0, n) reads zeros
 *  (gather) or is skipped (scatter), never memory outside the tensor. */
export const inRows = (e: number, n: number) => e >= 0 && e < n;

/** Per token t, K rows of D from its N rows: y[t, j] = x[t, idx[t, j]], zeros outside [0, N). */
export function gatherRows(x: Float32Array, idx: Float32Array, N: number, K: number, D: number): Float32Array {
  const T = idx.length / K, y = new Float32Array(T * K * D);
  for (let q = 0; q < T * K; q++) {
    const e = idx[q]!, t = Math.floor(q / K);
    if (inRows(e, N)) y.set(x.subarray((t * N + e) * D, (t * N + e + 1) * D), q * D);
  }
  return y;
}

/** Per token t, its K rows of D added into N rows of zeros: y[t, idx[t, j]] += x[t, j] in j order,
 *  each sum rounded to f32 as stored; rows whose index is outside [0, N) skipped. */
export function scatterRows(x: Float32Array, idx: Float32Array, N: number, K: number, D: number): Float32Array {
  const T = idx.length / K, y = new Float32Array(T * N * D);
  for (let q = 0; q < T * K; q++) {
    const e = idx[q]!, t = Math.floor(q / K);
    if (!inRows(e, N)) continue;
    for (let d = 0; d < D; d++) y[(t * N + e) * D + d] += x[q * D + d]!;
  }
  return y;
}

/** Expert e's n elements of a stored [E, …] tensor, as f32 (a view of f32 data; bf16, f16 widened). */
export function expertRows(t: Tensor, e: number, n: number): Float32Array {
  return toF32({ dtype: t.dtype, shape: [n], data: (t.data as Float32Array).subarray(e * n, (e + 1) * n) });
}

export interface ExpertSizes {
  /** Experts, model width, expert hidden width, experts per token. */
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly K: number;
}

/**
 * y[t] = Σ_j gates[t, j] · down_e(silu(gate_e(x[t])) · up_e(x[t])) with e = idx[t, j], where
 * w_in [E, 2I, H] holds expert e's gate rows [0, I) then up rows [I, 2I), w_out [E, H, I] its down
 * product. Tokens are grouped by expert (in token order within a group), each group's rows go
 * through the expert's two products, and the weighted results are added back to their tokens in
 * expert order. Only the experts some token picked are read. `expert(e)` gives e's two matrices.
 */
export function expertsGrouped(x: Float32Array, idx: Float32Array, gates: Float32Array, s: ExpertSizes,
  expert: (e: number) => { wIn: Float32Array; wOut: Float32Array }): Float32Array {
  const { E, H, I, K } = s;
  const T = x.length / H;
  const rowsOf: number[][] = Array.from({ length: E }, () => []);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < K; j++) {
      const e = idx[t * K + j]!;
      if (!(e >= 0 && e < E && Number.isInteger(e))) throw new RangeError(`experts: token ${t} routed to expert ${e}, outside 0..${E - 1}`);
      rowsOf[e]!.push(t * K + j);
    }
  }
  const y = new Float64Array(T * H);
  const h = new Float32Array(I);
  for (let e = 0; e < E; e++) {
    const rows = rowsOf[e]!;
    if (!rows.length) continue;
    const { wIn, wOut } = expert(e);
    for (const tj of rows) {
      const t = Math.floor(tj / K), xo = t * H;
      for (let i = 0; i < I; i++) {
        let g = 0, u = 0;
        for (let c = 0; c < H; c++) {
          g += x[xo + c]! * wIn[i * H + c]!;
          u += x[xo + c]! * wIn[(I + i) * H + c]!;
        }
        const gf = Math.fround(g);
        h[i] = Math.fround(Math.fround(gf / (1 + Math.exp(-gf))) * Math.fround(u));
      }
      const gate = gates[tj]!;
      for (let c = 0; c < H; c++) {
        let d = 0;
        for (let i = 0; i < I; i++) d += h[i]! * wOut[c * I + i]!;
        y[xo + c] = Math.fround(y[xo + c]! + Math.fround(Math.fround(d) * gate));
      }
    }
  }
  return Float32Array.from(y);
}
