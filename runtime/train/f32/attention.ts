// Causal GQA attention forward and flash-style backward in f32, per sequence and query head, the
// score and value products on the wasm micro-kernels (or the Gemm's `mm`), the softmax rows on the
// row kernels (or in JS): ./heads.ts' routines, the forward's query heads and the backward's KV heads
// (each with its query heads in order) shared by the engine's threads, each whole on one thread. The
// forward saves each query row's logsumexp [T, H]; the backward recomputes
// P from it: dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O))·scale, dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO
// (a KV head summing over its query heads). Rows of another sequence are never read, so packed
// sequences stay separate. runtime/cpu/backward-seq.ts attentionF/attentionB are the oracle.

import type { AttnDims } from '../../cpu/backward-seq.ts';
import type { SeqSlice } from '../../cpu/seq.ts';
import type { Gemm } from './gemm.ts';
import { type HeadSpace, ROUTINE, mmFloats, put, spaceOf, take } from './heads.ts';

type F32 = Float32Array;

function longest(seqs: readonly SeqSlice[]): number {
  return seqs.reduce((m, s) => Math.max(m, s.len), 1);
}

/** The routines' arguments (./heads.ts, by position) with q, k, v and the sequences laid out in
 *  `sp`; y and lse given (the backward) or room for them, and the backward's operands. */
function layout(sp: HeadSpace, q: F32, k: F32, v: F32, d: AttnDims, seqs: readonly SeqSlice[], saved: { y: F32; lse: F32; dy: F32 } | null): { a: number[]; scratch: number } {
  const { T, H, KV, Dh, scale } = d, m = longest(seqs);
  const qkv = [q, k, v].map((x) => put(sp, x));
  const y = saved ? put(sp, saved.y) : sp.alloc(T * H * Dh), lse = saved ? put(sp, saved.lse) : sp.alloc(T * H);
  const sq = sp.alloc(2 * seqs.length), I = sp.env().i;
  seqs.forEach((s, i) => I.set([s.start, s.len], sq + 2 * i));
  const back = saved ? [put(sp, saved.dy), sp.alloc(q.length), sp.alloc(k.length), sp.alloc(v.length)] : [];
  // the rows' dO·O (f64), mm's room, P and dS, the rows' lse and stats
  const scratch = 2 * m + 8 + mmFloats(Math.max(m, Dh)) + 2 * m * m + 3 * m;
  return { a: [...qkv, y, lse, H, KV, Dh, scale, d.window ?? 0, seqs.length, sq, m, ...back], scratch };
}

/** q: [T, H, Dh]; k, v: [T, KV, Dh]. Returns y [T, H, Dh] and the row logsumexp [T, H]. */
export function attentionForward32(gm: Gemm, q: F32, k: F32, v: F32, d: AttnDims, seqs: readonly SeqSlice[]): { y: F32; lse: F32 } {
  const sp = spaceOf(gm), { a, scratch } = layout(sp, q, k, v, d, seqs, null);
  sp.run(ROUTINE.attnForward, d.H, scratch, a);
  return { y: take(sp, a[3]!, q.length), lse: take(sp, a[4]!, d.T * d.H) };
}

export function attentionBackward32(gm: Gemm, dy: F32, q: F32, k: F32, v: F32, y: F32, lse: F32, d: AttnDims, seqs: readonly SeqSlice[]): { dq: F32; dk: F32; dv: F32 } {
  const sp = spaceOf(gm), { a, scratch } = layout(sp, q, k, v, d, seqs, { y, lse, dy });
  sp.run(ROUTINE.attnBackward, d.KV, scratch, a);
  return { dq: take(sp, a[14]!, q.length), dk: take(sp, a[15]!, k.length), dv: take(sp, a[16]!, v.length) };
}
