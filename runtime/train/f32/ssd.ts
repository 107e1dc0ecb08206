// The Mamba-2 SSD forward and backward in f32, chunked, with the work as small matrix products (the
// wasm micro-kernels, or the Gemm's `mm`), the scalars between them (decays, segment sums, M) in
// double, as runtime/wasm/ssd.ts does the inference forward; the heads shared by the engine's threads
// (./heads.ts: the routines, on the row kernels' memory; each head whole on one thread). Per
// sequence, chunk of q rows (counted from the sequence's first row) and group g:
//   CB = C·Bᵀ [q, q] (shared by the group's heads); per head, with cum_i = Σ_{k≤i} dt_k·A,
//   M_ij = exp(cum_i − cum_j)·CB_ij·dt_j (j ≤ i), e_i = exp(cum_i), w_j = exp(cum_last − cum_j)·dt_j:
//   y  = M·X + diag(e)·(C·S0ᵀ) + D·X,    S1 = e_last·S0 + (diag(w)·X)ᵀ·B.
// The forward saves each chunk's entering state S0 [H, P, N]; the backward walks the chunks in
// reverse with dS1 (zero past a sequence's last chunk), the block form of runtime/cpu/backward-seq.ts
// ssdChunkedB (its oracle): dM = dY·Xᵀ → dX += Mᵀ·dY, dCB, ddt, dcum; the entering state's output →
// dC, dS0, dcum; the chunk state from dS1 → dX, dB, ddt, dcum; dS0 = e_last·dS1 + (diag(e)·dY)ᵀ·C;
// dcum → dt, A by a reverse cumulative sum. Then per chunk and group: dCB summed over the group's
// heads, dC += dCB·B, dB += dCBᵀ·C, with the heads' own parts of dB and dC added in head order.
// Jobs: CB = C·Bᵀ per (chunk, group) (on the calling thread: small); the heads; (backward) the sums
// per (chunk, group).

import type { SeqSlice } from '../../cpu/seq.ts';
import type { Gemm } from './gemm.ts';
import { type HeadSpace, ROUTINE, mmFloats, put, spaceOf, take } from './heads.ts';
import { f32 } from './pool.ts';

type F32 = Float32Array;

export interface SsdDims32 { readonly H: number; readonly P: number; readonly G: number; readonly N: number }
export interface SsdIn32 { readonly x: F32; readonly dt: F32; readonly A: F32; readonly B: F32; readonly C: F32; readonly D: F32 }

/** [t0, q] of every chunk of every sequence, and whether it is its sequence's first. */
function chunksOf(seqs: readonly SeqSlice[], chunk: number): [number, number, boolean][] {
  const out: [number, number, boolean][] = [];
  for (const { start, len } of seqs) for (let t0 = start; t0 < start + len; t0 += chunk) out.push([t0, Math.min(chunk, start + len - t0), t0 === start]);
  return out;
}

/** The routines' arguments (./heads.ts, by position) with the operands laid out in `sp`; dy null:
 *  the forward's (y, with `withY`), else the backward's outputs, zeroed. CB computed. */
function layout(sp: HeadSpace, s: SsdIn32, dy: F32 | null, d: SsdDims32, Q: number, seqs: readonly SeqSlice[], entering: F32 | null, withY: boolean): { a: number[]; nch: number; scratch: number } {
  const { H, P, G, N } = d, T = s.dt.length / H, chunks = chunksOf(seqs, Q), nch = chunks.length;
  const ops = [s.x, s.dt, s.A, s.B, s.C, s.D].map((v) => put(sp, v));
  const ch = sp.alloc(3 * nch), I = sp.env().i;
  chunks.forEach(([t0, q, first], c) => I.set([t0, q, first ? 1 : 0], ch + 3 * c));
  const cb = sp.alloc(nch * G * Q * Q, false), ent = entering ? put(sp, entering) : sp.alloc(nch * H * P * N, false);
  const back = dy ? [sp.alloc(s.x.length), sp.alloc(2 * T * H) / 2, sp.alloc(2 * H) / 2, sp.alloc(2 * H) / 2, sp.alloc(H * T * N), sp.alloc(H * T * N),
    sp.alloc(nch * H * Q * Q, false), sp.alloc(s.B.length), sp.alloc(s.C.length)] : [sp.alloc(withY ? s.x.length : 0), 0, 0, 0, 0, 0, 0, 0, 0];
  const a = [...ops, dy ? put(sp, dy) : 0, H, P, G, N, Q, nch, ch, cb, ent, ...back, T, withY ? 1 : 0];
  // f64 [8Q], mm's room, then M, the decays or (diag(w)·X)ᵀ, (diag(e)·dY)ᵀ, the state
  const scratch = 16 * Q + mmFloats(Math.max(Q, P, N)) + 2 * Q * Q + P * Q + P * N;
  // CB: a 64×64×32 product per chunk and group (~20 µs), not worth waking the threads for
  sp.run(ROUTINE.ssdCb, nch * G, scratch, a, false);
  return { a, nch, scratch };
}

/** y and the states entering each chunk [chunks][H][P·N]; `withY` false: the states alone (the
 *  chunk-state pass that the wasm backend's ssd_backward recomputes them by), y empty. */
export function ssdForward32(gm: Gemm, s: SsdIn32, d: SsdDims32, chunk: number, seqs: readonly SeqSlice[], withY = true): { y: F32; entering: F32 } {
  const sp = spaceOf(gm), { a, nch, scratch } = layout(sp, s, null, d, chunk, seqs, null, withY);
  sp.run(ROUTINE.ssdForward, d.H, scratch, a);
  return { y: take(sp, a[16]!, withY ? s.x.length : 0), entering: take(sp, a[15]!, nch * d.H * d.P * d.N) };
}

export function ssdBackward32(gm: Gemm, dy: F32, s: SsdIn32, d: SsdDims32, chunk: number, seqs: readonly SeqSlice[], entering: F32): { [K in keyof SsdIn32]: F32 } {
  const sp = spaceOf(gm), { a, nch, scratch } = layout(sp, s, dy, d, chunk, seqs, entering, false), { H, G } = d, T = s.dt.length / H;
  sp.run(ROUTINE.ssdBackward, H, scratch, a);
  sp.run(ROUTINE.ssdSums, nch * G, scratch, a);
  const E = sp.env(), f64 = (at: number, n: number) => Float32Array.from(E.d.subarray(at, at + n)), dt = f32(T * H, false);
  // ddt from [H, T] (each head's own lines while the threads wrote them) to [T, H]
  for (let h = 0; h < H; h++) for (let t = 0, o = a[17]! + h * T; t < T; t++) dt[t * H + h] = E.d[o + t]!;
  return { x: take(sp, a[16]!, s.x.length), dt, A: f64(a[18]!, H), B: take(sp, a[23]!, s.B.length), C: take(sp, a[24]!, s.C.length), D: f64(a[19]!, H) };
}
