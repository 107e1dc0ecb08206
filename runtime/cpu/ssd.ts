// Mamba-2 SSD scan over packed sequences: the chunked block algorithm and the token-by-token recurrence.
//
// Per sequence and head h (group g = floor(h / (H/G))), with a_t = dt[t,h] * A[h]:
//   state_t = exp(a_t) * state_{t-1} + dt[t,h] * x[t,h,:] ⊗ B[t,g,:]      state: [P, N]
//   y[t,h,:] = state_t · C[t,g,:] + D[h] * x[t,h,:]
// starting from states[s] and writing the final state back. dt arrives softplus'ed and clamped.

import { checkLen, checkSeqs, type SeqSlice } from './seq.ts';

/** H heads of P channels; G groups of B/C, each of N state dims. */
export interface SsdDims {
  readonly H: number;
  readonly P: number;
  readonly G: number;
  readonly N: number;
}

function checkSsd(kernel: string, x: Float32Array, dt: Float32Array, A: Float32Array, B: Float32Array, C: Float32Array, D: Float32Array,
  dims: SsdDims, seqs: readonly SeqSlice[], states: Float32Array[]): number {
  const { H, P, G, N } = dims;
  if (G < 1 || H % G !== 0) throw new RangeError(`${kernel}: ${G} groups do not divide ${H} heads`);
  const T = x.length / (H * P);
  if (!Number.isInteger(T)) throw new RangeError(`${kernel}: x has ${x.length} elements, not a multiple of H*P=${H * P}`);
  checkLen(kernel, 'dt', dt, T * H);
  checkLen(kernel, 'A', A, H);
  checkLen(kernel, 'B', B, T * G * N);
  checkLen(kernel, 'C', C, T * G * N);
  checkLen(kernel, 'D', D, H);
  checkSeqs(kernel, T, seqs, states.length);
  for (const st of states) checkLen(kernel, 'state', st, H * P * N);
  return T;
}

/**
 * The recurrence above, one token at a time (HF's decode path). The state stays f32 between
 * tokens, as in HF's cache. x: [T, H, P]; dt: [T, H]; A, D: [H]; B, C: [T, G, N];
 * states[s]: [H, P, N]. Returns y: [T, H, P].
 */
export function ssdSequential(x: Float32Array, dt: Float32Array, A: Float32Array, B: Float32Array, C: Float32Array, D: Float32Array,
  dims: SsdDims, seqs: readonly SeqSlice[], states: Float32Array[]): Float32Array {
  const T = checkSsd('ssdSequential', x, dt, A, B, C, D, dims, seqs, states);
  const { H, P, G, N } = dims;
  const hpg = H / G;
  const y = new Float32Array(T * H * P);
  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s];
    const st = states[s];
    for (let t = start; t < start + len; t++) {
      for (let h = 0; h < H; h++) {
        const d = dt[t * H + h];
        const decay = Math.exp(d * A[h]);
        const bc = (t * G + Math.floor(h / hpg)) * N;
        for (let p = 0; p < P; p++) {
          const xp = x[(t * H + h) * P + p];
          const dx = d * xp;
          const so = (h * P + p) * N;
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const v = Math.fround(st[so + n] * decay + dx * B[bc + n]);
            st[so + n] = v;
            acc += v * C[bc + n];
          }
          y[(t * H + h) * P + p] = acc + D[h] * xp;
        }
      }
    }
  }
  return y;
}

/**
 * The chunked SSD block algorithm (Mamba-2 §6; HF BambaMixer.torch_forward), per sequence, over
 * chunks of `chunk` tokens counted from the sequence's first row (the last chunk may be short,
 * which equals HF's zero padding: padded tokens have dt = 0). For chunk rows i, j (j <= i) and
 * seg(i, j) = a_{j+1} + ... + a_i:
 *   1. diagonal block:   y_i += sum_{j<=i} exp(seg(i,j)) * (C_i·B_j) * dt_j * x_j
 *   2. chunk state:      S_loc = sum_j exp(seg(last,j)) * dt_j * x_j ⊗ B_j
 *   3. state passing:    S_out = exp(seg(last, first-1)) * S_in + S_loc   (S_in: the state entering)
 *   4. state -> output:  y_i += exp(seg(i, first-1)) * (S_in · C_i)
 * plus the skip D * x. Segment sums are added directly rather than as differences of cumulative
 * sums (the stability reason HF's segment_sum masks before its cumsum). Chunk-internal work runs
 * in double; the state is rounded to f32 at each chunk boundary, as HF keeps it in f32.
 * Shapes as in ssdSequential; results agree with it to ~1e-6 relative.
 */
export function ssdChunked(x: Float32Array, dt: Float32Array, A: Float32Array, B: Float32Array, C: Float32Array, D: Float32Array,
  dims: SsdDims, chunk: number, seqs: readonly SeqSlice[], states: Float32Array[]): Float32Array {
  const T = checkSsd('ssdChunked', x, dt, A, B, C, D, dims, seqs, states);
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`ssdChunked: chunk size ${chunk} is not a positive integer`);
  const { H, P, G, N } = dims;
  const hpg = H / G;
  let longest = 1;
  for (const sq of seqs) longest = Math.max(longest, sq.len);
  const Q = Math.min(chunk, longest); // a chunk longer than every sequence is that sequence whole
  const y = new Float32Array(T * H * P);
  const cb = new Float64Array(Q * Q); // C_i·B_j of one group, lower triangle
  const decayIn = new Float64Array(Q); // exp(seg(i, first-1)): decay of the entering state at row i
  const decayOut = new Float64Array(Q); // exp(seg(last, j)) * dt_j: weight of token j in the chunk state
  const m = new Float64Array(Q * Q); // exp(seg(i, j)) * (C_i·B_j) * dt_j, one head
  const a = new Float64Array(Q);
  const sIn = new Float64Array(P * N); // state entering the chunk, then leaving it
  const yAcc = new Float64Array(P);

  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s];
    const st = states[s];
    for (let c0 = start; c0 < start + len; c0 += Q) {
      const q = Math.min(Q, start + len - c0);
      for (let g = 0; g < G; g++) {
        for (let i = 0; i < q; i++) {
          const ci = ((c0 + i) * G + g) * N;
          for (let j = 0; j <= i; j++) {
            const bj = ((c0 + j) * G + g) * N;
            let acc = 0;
            for (let n = 0; n < N; n++) acc += C[ci + n] * B[bj + n];
            cb[i * Q + j] = acc;
          }
        }
        for (let h = g * hpg; h < (g + 1) * hpg; h++) {
          const Ah = A[h];
          for (let i = 0; i < q; i++) a[i] = dt[(c0 + i) * H + h] * Ah;
          let run = 0;
          for (let i = 0; i < q; i++) { run += a[i]; decayIn[i] = Math.exp(run); }
          run = 0;
          for (let j = q - 1; j >= 0; j--) { decayOut[j] = Math.exp(run) * dt[(c0 + j) * H + h]; run += a[j]; }
          for (let i = 0; i < q; i++) {
            let seg = 0; // seg(i, j), grown as j walks down from i
            for (let j = i; j >= 0; j--) {
              m[i * Q + j] = Math.exp(seg) * cb[i * Q + j] * dt[(c0 + j) * H + h];
              seg += a[j];
            }
          }
          const so = h * P * N;
          for (let k = 0; k < P * N; k++) sIn[k] = st[so + k];
          const bBase = g * N;
          for (let i = 0; i < q; i++) {
            const row = (c0 + i) * H + h;
            const ci = (c0 + i) * G * N + bBase;
            // 1. diagonal block
            yAcc.fill(0);
            for (let j = 0; j <= i; j++) {
              const mij = m[i * Q + j];
              const xj = ((c0 + j) * H + h) * P;
              for (let p = 0; p < P; p++) yAcc[p] += mij * x[xj + p];
            }
            // 4. entering state -> output, plus the skip
            const din = decayIn[i];
            for (let p = 0; p < P; p++) {
              let off = 0;
              for (let n = 0; n < N; n++) off += sIn[p * N + n] * C[ci + n];
              y[row * P + p] = yAcc[p] + din * off + D[h] * x[row * P + p];
            }
          }
          // 2 + 3. chunk state and passing it on
          const total = decayIn[q - 1];
          for (let p = 0; p < P; p++) {
            for (let n = 0; n < N; n++) sIn[p * N + n] *= total;
          }
          for (let j = 0; j < q; j++) {
            const wj = decayOut[j];
            const xj = ((c0 + j) * H + h) * P;
            const bj = (c0 + j) * G * N + bBase;
            for (let p = 0; p < P; p++) {
              const f = wj * x[xj + p];
              for (let n = 0; n < N; n++) sIn[p * N + n] += f * B[bj + n];
            }
          }
          for (let k = 0; k < P * N; k++) st[so + k] = sIn[k];
        }
      }
    }
  }
  return y;
}
