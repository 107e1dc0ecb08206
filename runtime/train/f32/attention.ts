// Causal GQA attention forward and flash-style backward in f32, per sequence and query head, the
// score and value products on the engine's Gemm (`mm`) over each head's rows of the sequence gathered
// contiguous first (the products' block copies then pack them; strided ones went element by element),
// the softmax rows in JS. The forward saves each query row's logsumexp [T, H]; the backward recomputes
// P from it: dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O))·scale, dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO
// (a KV head summing over its query heads). Rows of another sequence are never read, so packed
// sequences stay separate. runtime/cpu/backward-seq.ts attentionF/attentionB are the oracle.

import type { AttnDims } from '../../cpu/backward-seq.ts';
import type { SeqSlice } from '../../cpu/seq.ts';
import { type Gemm, copyRows } from './gemm.ts';
import { f32 } from './pool.ts';

type F32 = Float32Array;

/** First key row query row i (of a sequence starting at `start`) sees. */
const firstKey = (d: AttnDims, start: number, i: number) => (d.window ? Math.max(start, i - d.window + 1) : start);

/** Rows [start, start + n) of one head of a [T, heads, Dh] tensor (row stride ld = heads·Dh, from
 *  offset o) gathered into dst [n, Dh]: the products then read contiguous operands (the block
 *  copies of WasmKernels.product), not strided ones. */
function gather(src: F32, o: number, ld: number, n: number, Dh: number, dst: F32): F32 {
  return copyRows(src, o, ld, dst, 0, Dh, n, Dh);
}

/** P [n, n] of one sequence and query head from its gathered rows qh, kh [n, Dh]: the scores S =
 *  Q·Kᵀ (scaled) and the row logsumexp (`given`: read from `lse`, as the backward does; else
 *  computed and stored there). */
function probs(gm: Gemm, qh: F32, kh: F32, d: AttnDims, start: number, n: number, h: number, p: F32, lse: F32, given: boolean): void {
  const { H, Dh, scale } = d;
  const r = gm.mm(qh, 0, Dh, 1, n, Dh, kh, 0, Dh, 1, n);
  if (gm.rows) {
    // the rows' logsumexp [n] of this head, contiguous for the kernels
    const l = f32(n);
    if (given) for (let i = 0; i < n; i++) l[i] = lse[(start + i) * H + h]!;
    gm.rows.attnProbs(r.y, r.ld, n, scale, d.window ?? 0, l, given, p);
    if (!given) for (let i = 0; i < n; i++) lse[(start + i) * H + h] = l[i]!;
    return;
  }
  for (let i = 0; i < n; i++) {
    const j0 = firstKey(d, start, start + i) - start, row = i * r.ld, o = i * n;
    p.fill(0, o, o + n);
    let l: number;
    if (given) l = lse[(start + i) * H + h]!;
    else {
      let max = -Infinity, sum = 0;
      for (let j = j0; j <= i; j++) max = Math.max(max, r.y[row + j]! * scale);
      for (let j = j0; j <= i; j++) sum += Math.exp(r.y[row + j]! * scale - max);
      l = max + Math.log(sum);
      lse[(start + i) * H + h] = l;
    }
    for (let j = j0; j <= i; j++) p[o + j] = Math.exp(r.y[row + j]! * scale - l);
  }
}

function longest(seqs: readonly SeqSlice[]): number {
  return seqs.reduce((m, s) => Math.max(m, s.len), 1);
}

/** q: [T, H, Dh]; k, v: [T, KV, Dh]. Returns y [T, H, Dh] and the row logsumexp [T, H]. */
export function attentionForward32(gm: Gemm, q: F32, k: F32, v: F32, d: AttnDims, seqs: readonly SeqSlice[]): { y: F32; lse: F32 } {
  const { T, H, KV, Dh } = d, hpk = H / KV, y = f32(T * H * Dh), lse = f32(T * H);
  const m = longest(seqs), p = f32(m * m), qh = f32(m * Dh), kh = f32(m * Dh), vh = f32(m * Dh);
  for (const { start, len: n } of seqs) {
    for (let h = 0; h < H; h++) {
      if (h % hpk === 0) {
        gather(k, (start * KV + h / hpk) * Dh, KV * Dh, n, Dh, kh);
        gather(v, (start * KV + h / hpk) * Dh, KV * Dh, n, Dh, vh);
      }
      probs(gm, gather(q, (start * H + h) * Dh, H * Dh, n, Dh, qh), kh, d, start, n, h, p, lse, false);
      // O = P·V: V read as its transpose's rows
      const r = gm.mm(p, 0, n, 1, n, n, vh, 0, 1, Dh, Dh);
      copyRows(r.y, 0, r.ld, y, (start * H + h) * Dh, H * Dh, n, Dh);
    }
  }
  return { y, lse };
}

export function attentionBackward32(gm: Gemm, dy: F32, q: F32, k: F32, v: F32, y: F32, lse: F32, d: AttnDims, seqs: readonly SeqSlice[]): { dq: F32; dk: F32; dv: F32 } {
  const { T, H, KV, Dh, scale } = d, hpk = H / KV, HD = H * Dh, KD = KV * Dh;
  const dq = f32(T * H * Dh), dk = f32(T * KV * Dh), dv = f32(T * KV * Dh);
  const m = longest(seqs), p = f32(m * m), ds = f32(m * m), rowDot = new Float64Array(m);
  const [qh, kh, vh, gh] = [0, 1, 2, 3].map(() => f32(m * Dh)) as [F32, F32, F32, F32];
  for (const { start, len: n } of seqs) {
    for (let h = 0; h < H; h++) {
      const qo = (start * H + h) * Dh, ko = (start * KV + Math.floor(h / hpk)) * Dh;
      if (h % hpk === 0) { gather(k, ko, KD, n, Dh, kh); gather(v, ko, KD, n, Dh, vh); }
      probs(gm, gather(q, qo, HD, n, Dh, qh), kh, d, start, n, h, p, lse, true);
      gather(dy, qo, HD, n, Dh, gh);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let e = 0; e < Dh; e++) s += gh[i * Dh + e]! * y[qo + i * HD + e]!;
        rowDot[i] = s;
      }
      // dP = dO·Vᵀ, then dS
      let r = gm.mm(gh, 0, Dh, 1, n, Dh, vh, 0, Dh, 1, n);
      for (let i = 0; i < n; i++) {
        const o = i * n;
        ds.fill(0, o, o + n);
        for (let j = firstKey(d, start, start + i) - start; j <= i; j++) ds[o + j] = p[o + j]! * (r.y[i * r.ld + j]! - rowDot[i]!) * scale;
      }
      // dQ = dS·K
      r = gm.mm(ds, 0, n, 1, n, n, kh, 0, 1, Dh, Dh);
      copyRows(r.y, 0, r.ld, dq, qo, HD, n, Dh);
      // dK += dSᵀ·Q, dV += Pᵀ·dO
      r = gm.mm(ds, 0, 1, n, n, n, qh, 0, 1, Dh, Dh);
      for (let j = 0; j < n; j++) for (let e = 0; e < Dh; e++) dk[ko + j * KD + e] += r.y[j * r.ld + e]!;
      r = gm.mm(p, 0, 1, n, n, n, gh, 0, 1, Dh, Dh);
      for (let j = 0; j < n; j++) for (let e = 0; e < Dh; e++) dv[ko + j * KD + e] += r.y[j * r.ld + e]!;
    }
  }
  return { dq, dk, dv };
}
