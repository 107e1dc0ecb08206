// The chunked SSD (runtime/cpu/ssd.ts, ssdChunked: same chunks, same four steps) with its work as
// matrix products on the wasm micro-kernels. Per sequence, chunk of q rows and group g:
//   CB = C_g · B_gᵀ                                   [q, q]  (shared by the group's heads)
// and per head h (M[i, j] = exp(seg(i, j)) · CB[i, j] · dt_j for j <= i, else 0):
//   1. diagonal block   Y  = M · X_h                  [q, P]
//   4. state -> output  Y += decayIn ∘ (C_g · S_inᵀ)  [q, P]
//   2+3. chunk state    S_out = total · S_in + (decayOut ∘ X_h)ᵀ · B_g   [P, N]
// ssdChunkedAt: the same over the shared memory, the steps between the products in the program
// module (codegen/wasm/program.ts, SSD_GLUE), the heads shared by the products' threads
// (runtime/wasm/heads.ts); ssdChunkedWasm: in JS, where there is no such module.
// The decays, segment sums and M are computed in double as in the reference; the products sum in
// f32 (the reference in double), so results agree to f32 rounding. The state is f32 between chunks
// in both.

import { checkSeqs, type SeqSlice } from '../cpu/seq.ts';
import type { SsdDims } from '../cpu/ssd.ts';
import type { WasmKernels } from './kernels.ts';
import { ssdHeadBytes } from './heads.ts';
import { roundBf16, widenBf16 } from '../tensor.ts';
import type { ProgramCalls } from './split.ts';

export function ssdChunkedWasm(wk: WasmKernels, x: Float32Array, dt: Float32Array, A: Float32Array, B: Float32Array, C: Float32Array, D: Float32Array,
  dims: SsdDims, chunk: number, seqs: readonly SeqSlice[], states: Float32Array[]): Float32Array {
  const { H, P, G, N } = dims;
  const T = x.length / (H * P);
  if (!Number.isInteger(T) || H % G !== 0 || dt.length !== T * H || B.length !== T * G * N || C.length !== T * G * N) {
    throw new RangeError(`ssdChunked: operand sizes do not match H=${H} P=${P} G=${G} N=${N} over ${T} rows`);
  }
  checkSeqs('ssdChunked', T, seqs, states.length);
  const hpg = H / G;
  let longest = 1;
  for (const sq of seqs) longest = Math.max(longest, sq.len);
  const Q = Math.min(chunk, longest);
  const y = new Float32Array(T * H * P);
  const cb = new Float32Array(Q * Q);
  const m = new Float32Array(Q * Q);
  const xw = new Float32Array(P * Q); // (decayOut ∘ X_h)ᵀ
  const diag = new Float32Array(Q * P);
  const a = new Float64Array(Q), decayIn = new Float64Array(Q), decayOut = new Float64Array(Q);

  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s]!;
    const st = states[s]!;
    for (let c0 = start; c0 < start + len; c0 += Q) {
      const q = Math.min(Q, start + len - c0);
      for (let g = 0; g < G; g++) {
        const bc0 = (c0 * G + g) * N; // row c0 of B_g and C_g; rows G·N apart
        {
          const r = wk.product(C, bc0, G * N, 1, q, N, B, bc0, G * N, 1, q);
          for (let i = 0; i < q; i++) for (let j = 0; j <= i; j++) cb[i * Q + j] = r.y[i * r.ld + j]!;
        }
        for (let h = g * hpg; h < (g + 1) * hpg; h++) {
          const Ah = A[h]!;
          for (let i = 0; i < q; i++) a[i] = dt[(c0 + i) * H + h]! * Ah;
          let run = 0;
          for (let i = 0; i < q; i++) { run += a[i]!; decayIn[i] = Math.exp(run); }
          run = 0;
          for (let j = q - 1; j >= 0; j--) { decayOut[j] = Math.exp(run) * dt[(c0 + j) * H + h]!; run += a[j]!; }
          m.fill(0);
          for (let i = 0; i < q; i++) {
            let seg = 0;
            for (let j = i; j >= 0; j--) {
              m[i * Q + j] = Math.exp(seg) * cb[i * Q + j]! * dt[(c0 + j) * H + h]!;
              seg += a[j]!;
            }
          }
          const x0 = (c0 * H + h) * P; // row c0 of X_h; rows H·P apart
          // 1. Y = M · X_h: W[p, j] = X_h[j, p]
          {
            const r = wk.product(m, 0, Q, 1, q, q, x, x0, 1, H * P, P);
            for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) diag[i * P + p] = r.y[i * r.ld + p]!;
          }
          // 4. C_g · S_inᵀ, S_in = the state [P, N] entering the chunk
          const so = h * P * N;
          {
            const r = wk.product(C, bc0, G * N, 1, q, N, st, so, N, 1, P);
            for (let i = 0; i < q; i++) {
              const row = ((c0 + i) * H + h) * P;
              for (let p = 0; p < P; p++) y[row + p] = diag[i * P + p]! + decayIn[i]! * r.y[i * r.ld + p]! + D[h]! * x[row + p]!;
            }
          }
          // 2 + 3. S_out[p, n] = total · S_in[p, n] + Σ_j decayOut_j · X_h[j, p] · B_g[j, n]
          for (let p = 0; p < P; p++) for (let j = 0; j < q; j++) xw[p * Q + j] = decayOut[j]! * x[x0 + j * H * P + p]!;
          const total = decayIn[q - 1]!;
          const r = wk.product(xw, 0, Q, 1, P, q, B, bc0, 1, G * N, N);
          for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) st[so + p * N + n] = total * st[so + p * N + n]! + r.y[p * r.ld + n]!;
        }
      }
    }
  }
  return y;
}

/** The program module's fixed steps of the chunked SSD (codegen/wasm/program.ts, SSD_GLUE). */
export interface SsdGlue {
  put(src: number, lds: number, dst: number, ldd: number, rows: number, cols: number): void;
  decays(dt: number, ldt: number, A: number, q: number, a: number, din: number, dout: number): void;
  mask(cb: number, ldcb: number, dt: number, ldt: number, a: number, q: number, m: number, ldm: number): void;
  out(y: number, ldy: number, r: number, ldr: number, din: number, x: number, ldx: number, D: number, q: number, P: number): void;
  xw(x: number, ldx: number, dout: number, q: number, P: number, xw: number, ldw: number): void;
  state(st: number, total: number, r: number, ldr: number, P: number, N: number): void;
}

/** Where a matrix lies in the shared memory: its byte address and floats per row. */
export interface At {
  readonly at: number;
  readonly ld: number;
}

/** Zeroes the rows of y ([T, width] at `y`) that no sequence covers, as the reference writes them. */
export function zeroUncovered(memory: WebAssembly.Memory, y: At, T: number, width: number, seqs: readonly SeqSlice[]): void {
  const covered = new Uint8Array(T);
  for (const sq of seqs) covered.fill(1, sq.start, sq.start + sq.len);
  const mem = new Float32Array(memory.buffer);
  for (let t = 0; t < T; t++) if (!covered[t]) mem.fill(0, (y.at >>> 2) + t * y.ld, (y.at >>> 2) + t * y.ld + width);
}

/** Bytes of work space ssdChunkedAt needs for T rows in chunks of up to Q rows on `threads`
 *  threads: the constants, every chunk's C_g·B_gᵀ and each thread's scratch (runtime/wasm/heads.ts),
 *  then for bf16 states a sequence's state widened to f32. */
export const ssdWorkBytes = (T: number, Q: number, dims: SsdDims, wk: { MR: number; NR: number; threads: number }, bf16 = false) =>
  32 + 8 * dims.H + 4 * Math.ceil(T / Q) * dims.G * Q * Q + wk.threads * ssdHeadBytes(Q, dims.P, dims.N, wk.MR, wk.NR) + (bf16 ? 4 * dims.H * dims.P * dims.N : 0);

/**
 * ssdChunkedWasm with every operand and the output in the shared memory: x [T, H·P], dt [T, H],
 * B, C [T, G·N] at their addresses, rows `ld` floats apart; y likewise (written whole, never
 * aliasing an operand); the states [H, P, N] at the byte addresses in `states`; `work` bytes of
 * ssdWorkBytes. Per sequence, every chunk's C_g·B_gᵀ on this thread (`glue.put` into `work`), then
 * the heads shared by the threads (`calls`: runtime/wasm/heads.ts ssdHeads, each head's chunks in
 * order; the steps between the products in the program module, codegen/wasm/program.ts SSD_GLUE).
 */
export function ssdChunkedAt(wk: WasmKernels, glue: SsdGlue, calls: ProgramCalls, memory: WebAssembly.Memory, x: At, dt: At, A: Float32Array, B: At, C: At, D: Float32Array, y: At,
  dims: SsdDims, T: number, chunk: number, seqs: readonly SeqSlice[], states: readonly number[], work: number, bf16 = false): void {
  const { H, P, G, N } = dims;
  if (H % G !== 0 || A.length !== H || D.length !== H) throw new RangeError(`ssdChunked: operand sizes do not match H=${H} P=${P} G=${G} N=${N}`);
  checkSeqs('ssdChunked', T, seqs, states.length);
  if (!calls.heads) throw new Error('ssdChunkedAt: the program calls have no head routines (no kernel instance)');
  let longest = 1;
  for (const sq of seqs) longest = Math.max(longest, sq.len);
  const Q = Math.min(chunk, longest);
  // the constants A, D (f32), the chunks' CB [chunk][G][Q][Q], then each thread's scratch
  const consts = Math.ceil(work / 16) * 16, cb = consts + 8 * H;
  const own = ssdHeadBytes(Q, P, N, wk.MR, wk.NR), scr = Math.ceil((cb + 4 * Math.ceil(longest / Q) * G * Q * Q) / 16) * 16;
  const cf = new Float32Array(memory.buffer, consts, 2 * H);
  cf.set(A);
  cf.set(D, H);
  zeroUncovered(memory, y, T, H * P, seqs);
  const f = (at: number) => at >>> 2;
  // bf16 states: each sequence's widened to f32 after the threads' scratch, and rounded back after its heads
  const n = H * P * N, wide = scr + wk.threads * own;
  for (let s = 0; s < seqs.length; s++) {
    if (bf16) widenBf16(new Uint16Array(memory.buffer, states[s]!, n), new Uint32Array(memory.buffer, wide, n));
    const { start, len } = seqs[s]!;
    for (let c0 = start, ci = 0; c0 < start + len; c0 += Q, ci++) {
      const q = Math.min(Q, start + len - c0);
      for (let g = 0; g < G; g++) {
        const bc = B.at + 4 * (c0 * B.ld + g * N), cc = C.at + 4 * (c0 * C.ld + g * N);
        const mem = new Float32Array(memory.buffer);
        const r = wk.product(mem, f(cc), C.ld, 1, q, N, mem, f(bc), B.ld, 1, q);
        glue.put(r.y.byteOffset, r.ld, cb + 4 * (ci * G + g) * Q * Q, Q, q, q);
      }
    }
    calls.run(calls.heads.ssd, [T, 0, 0, T, scr, 0, 0], [x.at, x.ld, dt.at, dt.ld, B.at, B.ld, C.at, C.ld, y.at, y.ld,
      H, P, G, N, start, len, Q, bf16 ? wide : states[s]!, consts, cb, wk.MR, wk.NR, wk.m64], H, true, own);
    if (bf16) roundBf16(new Uint32Array(memory.buffer, wide, n), new Uint16Array(memory.buffer, states[s]!, n));
  }
}
