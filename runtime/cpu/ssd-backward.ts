// The chunked SSD backward of the train entry (family ssd_backward) in f32 storage with double
// accumulators, per sequence and head, chunks in reverse, in the block form mamba-ssm's backward
// kernels split it into. Within a chunk of q rows, cum_i = Σ_{k≤i} dt_k·A (inclusive) and
// L_ij = exp(cum_i − cum_j) for j ≤ i; with S0 the state entering the chunk and S1 the one leaving:
//   y_i = Σ_j L_ij (C_i·B_j) dt_j x_j + exp(cum_i) S0·C_i + D x_i
//   S1  = exp(cum_last) S0 + Σ_j exp(cum_last − cum_j) dt_j x_j ⊗ B_j
// The entering states are recomputed first by a pass of the chunk-state recurrence (nothing is
// saved from the forward but its inputs); then, from dS1 = 0 after a sequence's last chunk: the
// diagonal block (chunk scan), the entering state's read (state → output), the chunk state, and
// state passing (dS0 is the chunk before's dS1). d cum goes to dt and A by a reverse cumulative sum.

import type { SsdDims } from './ssd.ts';
import type { SeqSlice } from './seq.ts';

export interface SsdGrads {
  readonly dx: Float32Array;
  readonly ddt: Float32Array;
  readonly dA: Float32Array;
  readonly dB: Float32Array;
  readonly dC: Float32Array;
  readonly dD: Float32Array;
}

/** x [T, H, P], dt [T, H] (after softplus and clamp), A [H], B and C [T, G, N], D [H], dy [T, H, P]. */
export function ssdBackward(x: Float32Array, dt: Float32Array, A: Float32Array, B: Float32Array, C: Float32Array, D: Float32Array,
  dy: Float32Array, d: SsdDims, chunk: number, seqs: readonly SeqSlice[]): SsdGrads {
  const { H, P, G, N } = d, PN = P * N;
  const gx = new Float64Array(x.length), gdt = new Float64Array(dt.length), gA = new Float64Array(H);
  const gB = new Float64Array(B.length), gC = new Float64Array(C.length), gD = new Float64Array(H);
  for (const { start, len } of seqs) {
    const starts: number[] = [];
    for (let t0 = start; t0 < start + len; t0 += chunk) starts.push(t0);
    const rowsIn = (ci: number) => Math.min(chunk, start + len - starts[ci]!);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G)), a = A[h]!;
      const xo = (t: number) => (t * H + h) * P, bo = (t: number) => (t * G + g) * N, dtOf = (t: number) => dt[t * H + h]!;
      const cumOf = (t0: number, q: number) => {
        const cum = new Float64Array(q);
        for (let i = 0, run = 0; i < q; i++) cum[i] = run += dtOf(t0 + i) * a;
        return cum;
      };
      // the state entering each chunk, by the chunk-state recurrence from zero
      const enter = starts.map(() => new Float64Array(PN));
      for (let ci = 0; ci + 1 < starts.length; ci++) {
        const t0 = starts[ci]!, q = rowsIn(ci), cum = cumOf(t0, q), S0 = enter[ci]!, S1 = enter[ci + 1]!, last = cum[q - 1]!;
        for (let k = 0; k < PN; k++) S1[k] = Math.exp(last) * S0[k]!;
        for (let j = 0; j < q; j++) {
          const w = Math.exp(last - cum[j]!) * dtOf(t0 + j), xj = xo(t0 + j), bj = bo(t0 + j);
          for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) S1[p * N + n] += w * x[xj + p]! * B[bj + n]!;
        }
      }
      let dS = new Float64Array(PN); // the cotangent of the state leaving the chunk
      for (let ci = starts.length - 1; ci >= 0; ci--) {
        const t0 = starts[ci]!, q = rowsIn(ci), cum = cumOf(t0, q), S0 = enter[ci]!, last = q - 1;
        const dcum = new Float64Array(q), dS0 = new Float64Array(PN);
        // chunk scan: the q × q block of C_i·B_j and dy_i·x_j
        const cb = new Float64Array(q * q), dm = new Float64Array(q * q);
        for (let i = 0; i < q; i++) {
          for (let j = 0; j <= i; j++) {
            let s = 0, m = 0;
            for (let n = 0; n < N; n++) s += C[bo(t0 + i) + n]! * B[bo(t0 + j) + n]!;
            for (let p = 0; p < P; p++) m += dy[xo(t0 + i) + p]! * x[xo(t0 + j) + p]!;
            cb[i * q + j] = s;
            dm[i * q + j] = m;
          }
        }
        for (let i = 0; i < q; i++) {
          const ti = t0 + i;
          for (let j = 0; j <= i; j++) {
            const tj = t0 + j, L = Math.exp(cum[i]! - cum[j]!), M = L * cb[i * q + j]! * dtOf(tj), dM = dm[i * q + j]!, dcb = dM * L * dtOf(tj);
            for (let p = 0; p < P; p++) gx[xo(tj) + p] += M * dy[xo(ti) + p]!;
            for (let n = 0; n < N; n++) {
              gC[bo(ti) + n] += dcb * B[bo(tj) + n]!;
              gB[bo(tj) + n] += dcb * C[bo(ti) + n]!;
            }
            gdt[tj * H + h] += dM * L * cb[i * q + j]!;
            dcum[i] += dM * M;
            dcum[j] -= dM * M;
          }
          // state → output, and the skip
          const e = Math.exp(cum[i]!);
          for (let p = 0; p < P; p++) {
            const gy = dy[xo(ti) + p]!, xp = x[xo(ti) + p]!;
            gD[h] += gy * xp;
            gx[xo(ti) + p] += D[h]! * gy;
            let sc = 0;
            for (let n = 0; n < N; n++) {
              sc += S0[p * N + n]! * C[bo(ti) + n]!;
              gC[bo(ti) + n] += e * S0[p * N + n]! * gy;
              dS0[p * N + n] += e * gy * C[bo(ti) + n]!;
            }
            dcum[i] += e * gy * sc;
          }
        }
        // chunk state, from dS
        const eLast = Math.exp(cum[last]!);
        for (let j = 0; j < q; j++) {
          const tj = t0 + j, decay = Math.exp(cum[last]! - cum[j]!), w = decay * dtOf(tj);
          let dw = 0;
          for (let p = 0; p < P; p++) {
            const xp = x[xo(tj) + p]!;
            let sb = 0;
            for (let n = 0; n < N; n++) {
              sb += dS[p * N + n]! * B[bo(tj) + n]!;
              gB[bo(tj) + n] += w * dS[p * N + n]! * xp;
            }
            gx[xo(tj) + p] += w * sb;
            dw += sb * xp;
          }
          gdt[tj * H + h] += dw * decay;
          dcum[last] += dw * w;
          dcum[j] -= dw * w;
        }
        // state passing
        let ss = 0;
        for (let k = 0; k < PN; k++) {
          ss += S0[k]! * dS[k]!;
          dS0[k] += eLast * dS[k]!;
        }
        dcum[last] += eLast * ss;
        dS = dS0;
        for (let i = q - 1, da = 0; i >= 0; i--) {
          da += dcum[i]!;
          gdt[(t0 + i) * H + h] += da * a;
          gA[h] += da * dtOf(t0 + i);
        }
      }
    }
  }
  const f = (a: Float64Array) => Float32Array.from(a);
  return { dx: f(gx), ddt: f(gdt), dA: f(gA), dB: f(gB), dC: f(gC), dD: f(gD) };
}
