// The Mamba-2 SSD forward and backward in f32, chunked, with the work as small matrix products on
// the engine's Gemm (`mm`: the wasm micro-kernels on the calling thread; a chunk's rows of B, C and
// of a head's X, dY gathered contiguous first, so the products pack them by blocks), the scalars between them
// (decays, segment sums, M) in double, as runtime/wasm/ssd.ts does the inference forward. Per
// sequence, chunk of q rows (counted from the sequence's first row) and group g:
//   CB = C·Bᵀ [q, q] (shared by the group's heads); per head, with cum_i = Σ_{k≤i} dt_k·A,
//   M_ij = exp(cum_i − cum_j)·CB_ij·dt_j (j ≤ i), e_i = exp(cum_i), w_j = exp(cum_last − cum_j)·dt_j:
//   y  = M·X + diag(e)·(C·S0ᵀ) + D·X,    S1 = e_last·S0 + (diag(w)·X)ᵀ·B.
// The forward saves each chunk's entering state S0 [H, P, N]; the backward walks the chunks in
// reverse with dS1 (zero past a sequence's last chunk), the block form of runtime/cpu/backward-seq.ts
// ssdChunkedB (its oracle): dM = dY·Xᵀ → dX += Mᵀ·dY, dCB → dC += dCB·B, dB += dCBᵀ·C (dCB summed
// over the group's heads first), ddt, dcum; the entering state's output → dC, dS0, dcum; the chunk
// state from dS1 → dX, dB, ddt, dcum; dS0 = e_last·dS1 + (diag(e)·dY)ᵀ·C; dcum → dt, A by a reverse
// cumulative sum.

import type { SeqSlice } from '../../cpu/seq.ts';
import { type Gemm, copyRows } from './gemm.ts';
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

/** Per-chunk scratch for one head: cum, e = exp(cum), and M [q, q] (zero above the diagonal). */
function decays(s: SsdIn32, d: SsdDims32, t0: number, q: number, h: number, cb: F32, cum: Float64Array, e: Float64Array, m: F32, L: F32 | null): void {
  const { H } = d, Ah = s.A[h]!;
  for (let i = 0, run = 0; i < q; i++) { run += s.dt[(t0 + i) * H + h]! * Ah; cum[i] = run; e[i] = Math.exp(run); }
  m.fill(0, 0, q * q);
  // row i's decays exp(cum_i − cum_j), j ≤ i, as row i − 1's times exp(cum_i − cum_{i−1}): one
  // multiply each in double instead of an exp (q exps a chunk, not q²/2; the same to ~1e-15)
  const row = new Float64Array(q), dt = new Float64Array(q);
  for (let j = 0; j < q; j++) dt[j] = s.dt[(t0 + j) * H + h]!;
  for (let i = 0; i < q; i++) {
    const a = i ? Math.exp(cum[i]! - cum[i - 1]!) : 1;
    for (let j = 0; j < i; j++) row[j]! *= a;
    row[i] = 1;
    for (let j = 0, o = i * q; j <= i; j++) {
      const l = row[j]!;
      if (L) L[o + j] = l;
      m[o + j] = l * cb[o + j]! * dt[j]!;
    }
  }
}

/** q rows of w floats, `ld` apart from offset o, gathered into dst [q, w]: the products then read
 *  contiguous operands (the block copies of WasmKernels.product), not strided ones. */
function gather(src: F32, o: number, ld: number, q: number, w: number, dst: F32): F32 {
  return copyRows(src, o, ld, dst, 0, w, q, w);
}

/** Group g's rows [t0, t0 + q) of B and C gathered into bg, cg [q, N], and CB = C·Bᵀ into cb [q, q]. */
function cbOf(gm: Gemm, s: SsdIn32, d: SsdDims32, t0: number, q: number, g: number, bg: F32, cg: F32, cb: F32): void {
  const GN = d.G * d.N, o = (t0 * d.G + g) * d.N;
  gather(s.B, o, GN, q, d.N, bg);
  const r = gm.mm(gather(s.C, o, GN, q, d.N, cg), 0, d.N, 1, q, d.N, bg, 0, d.N, 1, q);
  for (let i = 0; i < q; i++) for (let j = 0; j < q; j++) cb[i * q + j] = r.y[i * r.ld + j]!;
}

/** y and the state entering each chunk; `withY` false: the states alone (the chunk-state pass that
 *  the wasm backend's ssd_backward recomputes them by), y left zero. */
export function ssdForward32(gm: Gemm, s: SsdIn32, d: SsdDims32, chunk: number, seqs: readonly SeqSlice[], withY = true): { y: F32; entering: F32[] } {
  const { H, P, G, N } = d, T = s.dt.length / H, hpg = H / G, PN = P * N, HP = H * P;
  const y = f32(withY ? T * HP : 0), entering: F32[] = [];
  const Q = chunk, cb = f32(Q * Q), m = f32(Q * Q), xw = f32(P * Q);
  const bg = f32(Q * N), cg = f32(Q * N), xh = f32(Q * P);
  const cum = new Float64Array(Q), e = new Float64Array(Q);
  let st = f32(H * PN);
  for (const [t0, q, first] of chunksOf(seqs, chunk)) {
    if (first) st = f32(H * PN);
    entering.push(st.slice());
    for (let g = 0; g < G; g++) {
      cbOf(gm, s, d, t0, q, g, bg, cg, cb);
      for (let h = g * hpg; h < (g + 1) * hpg; h++) {
        decays(s, d, t0, q, h, cb, cum, e, m, null);
        const xo = (t0 * H + h) * P, Dh = s.D[h]!;
        let r: { y: F32; ld: number };
        if (withY) {
          // y = M·X + D·X
          r = gm.mm(m, 0, q, 1, q, q, gather(s.x, xo, HP, q, P, xh), 0, 1, P, P);
          for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) y[xo + i * HP + p] = r.y[i * r.ld + p]! + Dh * s.x[xo + i * HP + p]!;
          // + diag(e)·(C·S0ᵀ)
          r = gm.mm(cg, 0, N, 1, q, N, st, h * PN, N, 1, P);
          for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) y[xo + i * HP + p] += e[i]! * r.y[i * r.ld + p]!;
        }
        // S1 = e_last·S0 + (diag(w)·X)ᵀ·B
        const cl = cum[q - 1]!, el = e[q - 1]!;
        for (let j = 0; j < q; j++) {
          const w = Math.exp(cl - cum[j]!) * s.dt[(t0 + j) * H + h]!;
          for (let p = 0; p < P; p++) xw[p * q + j] = w * s.x[xo + j * HP + p]!;
        }
        r = gm.mm(xw, 0, q, 1, P, q, bg, 0, 1, N, N);
        const sh = st.subarray(h * PN, (h + 1) * PN);
        for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) sh[p * N + n] = el * sh[p * N + n]! + r.y[p * r.ld + n]!;
      }
    }
  }
  return { y, entering };
}

export function ssdBackward32(gm: Gemm, dy: F32, s: SsdIn32, d: SsdDims32, chunk: number, seqs: readonly SeqSlice[], entering: readonly F32[]): { [K in keyof SsdIn32]: F32 } {
  const { H, P, G, N } = d, T = s.dt.length / H, hpg = H / G, PN = P * N, HP = H * P, GN = G * N;
  const gx = f32(s.x.length), gdt = new Float64Array(T * H), gB = f32(s.B.length), gC = f32(s.C.length);
  const gA = new Float64Array(H), gD = new Float64Array(H);
  const Q = chunk, cb = f32(Q * Q), m = f32(Q * Q), L = f32(Q * Q), dcb = f32(Q * Q);
  const bg = f32(Q * N), cg = f32(Q * N), xh = f32(Q * P), gh = f32(Q * P);
  const ey = f32(P * Q), cum = new Float64Array(Q), e = new Float64Array(Q), dcum = new Float64Array(Q), w = new Float64Array(Q);
  const dtj = new Float64Array(Q), gdtj = new Float64Array(Q);
  const dS = f32(H * PN), next = f32(PN);
  const chunks = chunksOf(seqs, chunk);
  for (let c = chunks.length - 1; c >= 0; c--) {
    const [t0, q] = chunks[c]!;
    if (c === chunks.length - 1 || chunks[c + 1]![2]) dS.fill(0);
    const S0all = entering[c]!;
    for (let g = 0; g < G; g++) {
      cbOf(gm, s, d, t0, q, g, bg, cg, cb);
      dcb.fill(0, 0, q * q);
      const bo = (t0 * G + g) * N;
      for (let h = g * hpg; h < (g + 1) * hpg; h++) {
        decays(s, d, t0, q, h, cb, cum, e, m, L);
        const xo = (t0 * H + h) * P, Ah = s.A[h]!, Dh = s.D[h]!;
        for (let j = 0; j < q; j++) dtj[j] = s.dt[(t0 + j) * H + h]!;
        const S0 = S0all.subarray(h * PN, (h + 1) * PN), dS1 = dS.subarray(h * PN, (h + 1) * PN);
        const cl = cum[q - 1]!, el = e[q - 1]!;
        dcum.fill(0, 0, q);
        // 1. diagonal block: dM = dY·Xᵀ
        gather(s.x, xo, HP, q, P, xh);
        let r = gm.mm(gather(dy, xo, HP, q, P, gh), 0, P, 1, q, P, xh, 0, P, 1, q);
        // (row i's dcum and each column's ddt summed apart, then added)
        gdtj.fill(0, 0, q);
        for (let i = 0, yv = r.y, ld = r.ld; i < q; i++) {
          let di = 0;
          for (let j = 0, o = i * q, row = i * ld; j <= i; j++) {
            const dm = yv[row + j]!, z = dm * m[o + j]!, dl = dm * L[o + j]!;
            di += z;
            dcum[j] -= z;
            gdtj[j] += dl * cb[o + j]!;
            dcb[o + j] += dl * dtj[j]!;
          }
          dcum[i] += di;
        }
        for (let j = 0; j < q; j++) gdt[(t0 + j) * H + h] += gdtj[j]!;
        // dX += Mᵀ·dY
        r = gm.mm(m, 0, 1, q, q, q, gh, 0, 1, P, P);
        for (let j = 0; j < q; j++) for (let p = 0; p < P; p++) gx[xo + j * HP + p] += r.y[j * r.ld + p]! + Dh * dy[xo + j * HP + p]!;
        // 2. the entering state's output and the skip: dcum_i += e_i·⟨dy_i, C_i·S0ᵀ⟩, dC += diag(e)·dY·S0
        r = gm.mm(cg, 0, N, 1, q, N, S0, 0, N, 1, P);
        let dd = 0;
        for (let i = 0; i < q; i++) {
          let acc = 0;
          for (let p = 0; p < P; p++) {
            const gy = dy[xo + i * HP + p]!;
            acc += gy * r.y[i * r.ld + p]!;
            dd += gy * s.x[xo + i * HP + p]!;
          }
          dcum[i] += e[i]! * acc;
        }
        gD[h] += dd;
        r = gm.mm(gh, 0, P, 1, q, P, S0, 0, 1, N, N);
        for (let i = 0; i < q; i++) for (let n = 0; n < N; n++) gC[bo + i * GN + n] += e[i]! * r.y[i * r.ld + n]!;
        // 3. the chunk state from dS1: SB = B·dS1ᵀ → dX, dw; dB += diag(w)·X·dS1
        for (let j = 0; j < q; j++) w[j] = Math.exp(cl - cum[j]!) * dtj[j]!;
        r = gm.mm(bg, 0, N, 1, q, N, dS1, 0, N, 1, P);
        for (let j = 0; j < q; j++) {
          let dw = 0;
          for (let p = 0; p < P; p++) {
            const sb = r.y[j * r.ld + p]!;
            gx[xo + j * HP + p] += w[j]! * sb;
            dw += sb * s.x[xo + j * HP + p]!;
          }
          gdt[(t0 + j) * H + h] += dw * Math.exp(cl - cum[j]!);
          dcum[q - 1] += dw * w[j]!;
          dcum[j] -= dw * w[j]!;
        }
        r = gm.mm(xh, 0, P, 1, q, P, dS1, 0, 1, N, N);
        for (let j = 0; j < q; j++) for (let n = 0; n < N; n++) gB[bo + j * GN + n] += w[j]! * r.y[j * r.ld + n]!;
        let ss = 0;
        for (let k = 0; k < PN; k++) ss += S0[k]! * dS1[k]!;
        dcum[q - 1] += el * ss;
        // dS0 = e_last·dS1 + (diag(e)·dY)ᵀ·C, the chunk before's dS1
        for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) ey[p * q + i] = e[i]! * dy[xo + i * HP + p]!;
        r = gm.mm(ey, 0, q, 1, P, q, cg, 0, 1, N, N);
        for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) next[p * N + n] = el * dS1[p * N + n]! + r.y[p * r.ld + n]!;
        dS1.set(next);
        // 4. dcum → da (reverse cumulative sum) → dt, A
        for (let i = q - 1, da = 0; i >= 0; i--) {
          da += dcum[i]!;
          gdt[(t0 + i) * H + h] += da * Ah;
          gA[h] += da * dtj[i]!;
        }
      }
      // the group's dCB: dC += dCB·B, dB += dCBᵀ·C
      let r = gm.mm(dcb, 0, q, 1, q, q, bg, 0, 1, N, N);
      for (let i = 0; i < q; i++) for (let n = 0; n < N; n++) gC[bo + i * GN + n] += r.y[i * r.ld + n]!;
      r = gm.mm(dcb, 0, 1, q, q, q, cg, 0, 1, N, N);
      for (let j = 0; j < q; j++) for (let n = 0; n < N; n++) gB[bo + j * GN + n] += r.y[j * r.ld + n]!;
    }
  }
  return { x: gx, dt: Float32Array.from(gdt), A: Float32Array.from(gA), B: gB, C: gC, D: Float32Array.from(gD) };
}
