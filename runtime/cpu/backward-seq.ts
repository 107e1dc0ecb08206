// Float64 reference forwards and backwards of the ops over packed sequences: causal conv, rope,
// causal GQA attention and the Mamba-2 SSD scan. Every loop walks the forward's sequence slices,
// each sequence from a zero state (a forward pass's fresh slots), so no gradient crosses a boundary.

import type { F64 } from './backward.ts';
import { invFreqs } from './attention.ts';
import type { SeqSlice } from './seq.ts';
import type { SsdDims } from './ssd.ts';

/** y[t, c] = b[c] + Σ_j w[c, j] · x[t − (K−1) + j, c], taps before the sequence's first row zero.
 *  x: [T, C]; w: [C, 1, K]; b: [C] or null. */
export function convF(x: F64, T: number, C: number, K: number, w: F64, b: F64 | null, seqs: readonly SeqSlice[]): F64 {
  const y = new Float64Array(T * C);
  for (const { start, len } of seqs) {
    for (let t = start; t < start + len; t++) {
      for (let c = 0; c < C; c++) {
        let acc = b ? b[c]! : 0;
        for (let j = 0; j < K; j++) {
          const src = t - (K - 1) + j;
          if (src >= start) acc += w[c * K + j]! * x[src * C + c]!;
        }
        y[t * C + c] = acc;
      }
    }
  }
  return y;
}

/** The transposed conv: dx[src] += w · dy[t]; dw[c, j] = Σ dy[t] · x[src]; db = Σ dy. */
export function convB(dy: F64, x: F64, T: number, C: number, K: number, w: F64, seqs: readonly SeqSlice[]): { dx: F64; dw: F64; db: F64 } {
  const dx = new Float64Array(T * C), dw = new Float64Array(C * K), db = new Float64Array(C);
  for (const { start, len } of seqs) {
    for (let t = start; t < start + len; t++) {
      for (let c = 0; c < C; c++) {
        const g = dy[t * C + c]!;
        db[c] += g;
        for (let j = 0; j < K; j++) {
          const src = t - (K - 1) + j;
          if (src < start) continue;
          dx[src * C + c] += w[c * K + j]! * g;
          dw[c * K + j] += g * x[src * C + c]!;
        }
      }
    }
  }
  return { dx, dw, db };
}

/** Rotary embedding of the first R dims of each head (cpu/attention.ts' angles), or with `inverse`
 *  the transposed rotation, which is its backward. x: [T, Hn, Dh]. */
export function ropeF(x: F64, T: number, Hn: number, Dh: number, positions: Int32Array, R: number, theta: number, inverse = false): F64 {
  const half = R / 2, inv = invFreqs(R, theta), out = new Float64Array(x);
  const sign = inverse ? -1 : 1;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[t]! * inv[i]!);
      const cos = Math.cos(angle), sin = sign * Math.sin(angle);
      for (let h = 0; h < Hn; h++) {
        const o = (t * Hn + h) * Dh;
        const lo = x[o + i]!, hi = x[o + i + half]!;
        out[o + i] = lo * cos - hi * sin;
        out[o + i + half] = hi * cos + lo * sin;
      }
    }
  }
  return out;
}

export interface AttnDims {
  readonly T: number;
  readonly H: number;
  readonly KV: number;
  readonly Dh: number;
  readonly scale: number;
  /** Sliding window: row i sees rows [i - window + 1, i] of its sequence (0 or absent: all earlier). */
  readonly window?: number;
}

/** The first row query row i of a sequence starting at `start` sees. */
const firstKey = (d: AttnDims, start: number, i: number) => (d.window ? Math.max(start, i - d.window + 1) : start);

/** Causal attention within each sequence; query head h reads KV head floor(h / (H/KV)).
 *  q: [T, H, Dh]; k, v: [T, KV, Dh]. Returns y and each query row's logsumexp [T, H] (saved). */
export function attentionF(q: F64, k: F64, v: F64, d: AttnDims, seqs: readonly SeqSlice[]): { y: F64; lse: F64 } {
  const { T, H, KV, Dh, scale } = d;
  const y = new Float64Array(T * H * Dh), lse = new Float64Array(T * H), hpk = H / KV;
  for (const { start, len } of seqs) {
    const s = new Float64Array(len);
    for (let i = start; i < start + len; i++) {
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / hpk), qo = (i * H + h) * Dh;
        let max = -Infinity;
        for (let j = firstKey(d, start, i); j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < Dh; e++) dot += q[qo + e]! * k[(j * KV + kh) * Dh + e]!;
          s[j - start] = dot * scale;
          max = Math.max(max, s[j - start]!);
        }
        let sum = 0;
        for (let j = firstKey(d, start, i); j <= i; j++) sum += Math.exp(s[j - start]! - max);
        lse[i * H + h] = max + Math.log(sum);
        for (let j = firstKey(d, start, i); j <= i; j++) {
          const p = Math.exp(s[j - start]! - lse[i * H + h]!);
          for (let e = 0; e < Dh; e++) y[qo + e] += p * v[(j * KV + kh) * Dh + e]!;
        }
      }
    }
  }
  return { y, lse };
}

/** Flash-style backward: P recomputed from the saved logsumexp; dV += Pᵀ dO; dP = dO · V;
 *  dS = P (dP − dO · O); dQ = scale · dS K, dK = scale · dSᵀ Q, summed over a KV head's query heads. */
export function attentionB(dy: F64, q: F64, k: F64, v: F64, y: F64, lse: F64, d: AttnDims, seqs: readonly SeqSlice[]): { dq: F64; dk: F64; dv: F64 } {
  const { T, H, KV, Dh, scale } = d;
  const dq = new Float64Array(T * H * Dh), dk = new Float64Array(T * KV * Dh), dv = new Float64Array(T * KV * Dh), hpk = H / KV;
  for (const { start, len } of seqs) {
    for (let i = start; i < start + len; i++) {
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / hpk), qo = (i * H + h) * Dh;
        let rowDot = 0; // dO_i · O_i
        for (let e = 0; e < Dh; e++) rowDot += dy[qo + e]! * y[qo + e]!;
        for (let j = firstKey(d, start, i); j <= i; j++) {
          const ko = (j * KV + kh) * Dh;
          let dot = 0, dp = 0;
          for (let e = 0; e < Dh; e++) {
            dot += q[qo + e]! * k[ko + e]!;
            dp += dy[qo + e]! * v[ko + e]!;
          }
          const p = Math.exp(dot * scale - lse[i * H + h]!);
          const ds = p * (dp - rowDot) * scale;
          for (let e = 0; e < Dh; e++) {
            dv[ko + e] += p * dy[qo + e]!;
            dq[qo + e] += ds * k[ko + e]!;
            dk[ko + e] += ds * q[qo + e]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** The SSD inputs: x [T, H, P], dt [T, H] (after softplus and clamp), A [H], B and C [T, G, N], D [H]. */
export interface SsdIn {
  readonly x: F64;
  readonly dt: F64;
  readonly A: F64;
  readonly B: F64;
  readonly C: F64;
  readonly D: F64;
}

/** Calls `f(t0, q)` for each chunk of each sequence: chunks of `chunk` rows counted from the
 *  sequence's first row (cpu/ssd.ts' chunking), so no chunk spans two sequences. */
function eachChunk(seqs: readonly SeqSlice[], chunk: number, f: (t0: number, q: number, first: boolean) => void): void {
  for (const { start, len } of seqs) for (let t0 = start; t0 < start + len; t0 += chunk) f(t0, Math.min(chunk, start + len - t0), t0 === start);
}

/** One token of the recurrence for head h: st ← exp(dt·A) · st + dt · x ⊗ B; y = st · C + D · x. */
function ssdToken(s: SsdIn, d: SsdDims, t: number, h: number, st: F64, y: F64 | null): void {
  const { H, P, G, N } = d, g = Math.floor(h / (H / G));
  const dt = s.dt[t * H + h]!, decay = Math.exp(dt * s.A[h]!), bc = (t * G + g) * N;
  for (let p = 0; p < P; p++) {
    const xp = s.x[(t * H + h) * P + p]!;
    let acc = 0;
    for (let n = 0; n < N; n++) {
      const v = st[p * N + n]! * decay + dt * xp * s.B[bc + n]!;
      st[p * N + n] = v;
      acc += v * s.C[bc + n]!;
    }
    if (y) y[(t * H + h) * P + p] = acc + s.D[h]! * xp;
  }
}

/** The scan in double, each sequence from a zero state. Returns y and, for every chunk of every
 *  sequence, the state [H, P, N] entering it (the backward recomputes the chunk from it). */
export function ssdF(s: SsdIn, d: SsdDims, chunk: number, seqs: readonly SeqSlice[]): { y: F64; entering: F64[] } {
  const { H, P, N } = d, T = s.dt.length / H;
  const y = new Float64Array(T * H * P), entering: F64[] = [];
  let st = new Float64Array(H * P * N);
  eachChunk(seqs, chunk, (t0, q, first) => {
    if (first) st = new Float64Array(H * P * N);
    entering.push(st.slice());
    for (let t = t0; t < t0 + q; t++) for (let h = 0; h < H; h++) ssdToken(s, d, t, h, st.subarray(h * P * N, (h + 1) * P * N), y);
  });
  return { y, entering };
}

/**
 * The SSD backward token by token (the oracle ssdChunkedB is tested against): per sequence, chunks
 * in reverse, heads apart: recompute the chunk's states from the entering
 * state, then walk its tokens backwards carrying dS (the state's cotangent, zero after the
 * sequence's last token): dS += dy ⊗ C; dC = S_t · dy; dD += dy · x; dx = D·dy + dt · dS·B;
 * dB = dt · dSᵀx; with a = exp(dt·A): da = ⟨S_{t−1}, dS⟩ → ddt += da·a·A + ⟨dS, x⊗B⟩, dA += da·a·dt;
 * then dS ← a · dS for the token before. dS leaving a chunk's first row enters the chunk before.
 */
export function ssdRecurrentB(dy: F64, s: SsdIn, d: SsdDims, chunk: number, seqs: readonly SeqSlice[], entering: readonly F64[]): SsdIn {
  const { H, P, G, N } = d, T = s.dt.length / H, hpg = H / G, PN = P * N;
  const g: { [K in keyof SsdIn]: F64 } = { x: new Float64Array(s.x.length), dt: new Float64Array(T * H), A: new Float64Array(H),
    B: new Float64Array(s.B.length), C: new Float64Array(s.C.length), D: new Float64Array(H) };
  const chunks: [number, number, boolean][] = [];
  eachChunk(seqs, chunk, (t0, q, first) => chunks.push([t0, q, first]));
  const dS = new Float64Array(H * PN);
  for (let c = chunks.length - 1; c >= 0; c--) {
    const [t0, q] = chunks[c]!;
    if (c === chunks.length - 1 || chunks[c + 1]![2]) dS.fill(0); // the sequence's last chunk
    for (let h = 0; h < H; h++) {
      const gi = Math.floor(h / hpg), ds = dS.subarray(h * PN, (h + 1) * PN);
      const states = new Float64Array((q + 1) * PN); // states[i] = state after row t0 + i − 1
      states.set(entering[c]!.subarray(h * PN, (h + 1) * PN));
      for (let i = 0; i < q; i++) {
        const st = states.slice(i * PN, (i + 1) * PN);
        ssdToken(s, d, t0 + i, h, st, null);
        states.set(st, (i + 1) * PN);
      }
      for (let i = q - 1; i >= 0; i--) {
        const t = t0 + i, bc = (t * G + gi) * N, xo = (t * H + h) * P;
        const dt = s.dt[t * H + h]!, a = Math.exp(dt * s.A[h]!);
        let da = 0, dxb = 0;
        for (let p = 0; p < P; p++) {
          const gy = dy[xo + p]!, xp = s.x[xo + p]!;
          g.D[h] += gy * xp;
          g.x[xo + p] += s.D[h]! * gy;
          let dxp = 0;
          for (let n = 0; n < N; n++) {
            const k = p * N + n;
            g.C[bc + n] += states[(i + 1) * PN + k]! * gy;
            ds[k] += gy * s.C[bc + n]!;
            da += states[i * PN + k]! * ds[k]!;
            dxb += ds[k]! * xp * s.B[bc + n]!;
            dxp += ds[k]! * s.B[bc + n]!;
            g.B[bc + n] += dt * ds[k]! * xp;
            ds[k] *= a;
          }
          g.x[xo + p] += dt * dxp;
        }
        g.dt[t * H + h] += da * a * s.A[h]! + dxb;
        g.A[h] += da * a * dt;
      }
    }
  }
  return g;
}

/**
 * The same gradients in the chunked block form, the split mamba-ssm's backward kernels use, per
 * sequence and chunk in reverse, per group and head. With cum_i = Σ_{k≤i} dt_k·A (inclusive, within
 * the chunk), L_ij = exp(cum_i − cum_j) (j ≤ i), S0 the entering state and S1 the leaving one:
 *   y_i = Σ_j L_ij (C_i·B_j) dt_j x_j + exp(cum_i) S0·C_i + D x_i,
 *   S1  = exp(cum_last) S0 + Σ_j exp(cum_last − cum_j) dt_j x_j ⊗ B_j.
 * 1. chunk scan (diagonal block): dM_ij = dy_i·x_j → dx_j, d(C_i·B_j) → dC, dB; ddt_j; dcum_i, −dcum_j.
 * 2. state → output: dC_i += e^cum_i S0ᵀdy_i; dS0 += e^cum_i dy_i ⊗ C_i; dcum_i.
 * 3. chunk state (from dS1): dx_j, dB_j, ddt_j, dcum; state passing: dS0 += e^cum_last dS1, which is
 *    the chunk before's dS1 (zero past a sequence's last chunk).
 * Then dcum → da by a reverse cumulative sum; a = dt·A gives ddt += da·A, dA += da·dt.
 */
export function ssdChunkedB(dy: F64, s: SsdIn, d: SsdDims, chunk: number, seqs: readonly SeqSlice[], entering: readonly F64[]): SsdIn {
  const { H, P, G, N } = d, T = s.dt.length / H, hpg = H / G, PN = P * N;
  const g: { [K in keyof SsdIn]: F64 } = { x: new Float64Array(s.x.length), dt: new Float64Array(T * H), A: new Float64Array(H),
    B: new Float64Array(s.B.length), C: new Float64Array(s.C.length), D: new Float64Array(H) };
  const chunks: [number, number, boolean][] = [];
  eachChunk(seqs, chunk, (t0, q, first) => chunks.push([t0, q, first]));
  const dS1 = new Float64Array(H * PN);
  for (let c = chunks.length - 1; c >= 0; c--) {
    const [t0, q] = chunks[c]!;
    if (c === chunks.length - 1 || chunks[c + 1]![2]) dS1.fill(0); // the sequence's last chunk
    const cum = new Float64Array(q), dcum = new Float64Array(q);
    for (let h = 0; h < H; h++) {
      const gi = Math.floor(h / hpg), S0 = entering[c]!.subarray(h * PN, (h + 1) * PN), dS = dS1.subarray(h * PN, (h + 1) * PN);
      const row = (i: number) => (t0 + i) * H + h, bc = (i: number) => ((t0 + i) * G + gi) * N;
      for (let i = 0, run = 0; i < q; i++) cum[i] = run += s.dt[row(i)]! * s.A[h]!;
      dcum.fill(0);
      // 1. diagonal block
      for (let i = 0; i < q; i++) {
        for (let j = 0; j <= i; j++) {
          let dm = 0, cb = 0;
          for (let p = 0; p < P; p++) dm += dy[row(i) * P + p]! * s.x[row(j) * P + p]!;
          for (let n = 0; n < N; n++) cb += s.C[bc(i) + n]! * s.B[bc(j) + n]!;
          const L = Math.exp(cum[i]! - cum[j]!), dtj = s.dt[row(j)]!, m = L * cb * dtj;
          for (let p = 0; p < P; p++) g.x[row(j) * P + p] += m * dy[row(i) * P + p]!;
          const dcb = dm * L * dtj;
          for (let n = 0; n < N; n++) {
            g.C[bc(i) + n] += dcb * s.B[bc(j) + n]!;
            g.B[bc(j) + n] += dcb * s.C[bc(i) + n]!;
          }
          g.dt[row(j)] += dm * L * cb;
          dcum[i] += dm * m;
          dcum[j] -= dm * m;
        }
      }
      // 2. entering state → output, and the skip
      for (let i = 0; i < q; i++) {
        const e = Math.exp(cum[i]!);
        for (let p = 0; p < P; p++) {
          const gy = dy[row(i) * P + p]!, xp = s.x[row(i) * P + p]!;
          g.D[h] += gy * xp;
          g.x[row(i) * P + p] += s.D[h]! * gy;
          let sc = 0;
          for (let n = 0; n < N; n++) {
            sc += S0[p * N + n]! * s.C[bc(i) + n]!;
            g.C[bc(i) + n] += e * S0[p * N + n]! * gy;
          }
          dcum[i] += e * gy * sc;
        }
      }
      // 3. chunk state and state passing, from dS1; then dS0 (kept in dS) for the chunk before
      const last = q - 1, eLast = Math.exp(cum[last]!);
      for (let j = 0; j < q; j++) {
        const w = Math.exp(cum[last]! - cum[j]!) * s.dt[row(j)]!;
        let dw = 0;
        for (let p = 0; p < P; p++) {
          const xp = s.x[row(j) * P + p]!;
          let sb = 0;
          for (let n = 0; n < N; n++) {
            sb += dS[p * N + n]! * s.B[bc(j) + n]!;
            g.B[bc(j) + n] += w * dS[p * N + n]! * xp;
          }
          g.x[row(j) * P + p] += w * sb;
          dw += sb * xp;
        }
        g.dt[row(j)] += dw * Math.exp(cum[last]! - cum[j]!);
        dcum[last] += dw * w;
        dcum[j] -= dw * w;
      }
      let ss = 0;
      for (let k = 0; k < PN; k++) ss += S0[k]! * dS[k]!;
      dcum[last] += eLast * ss;
      for (let i = 0; i < q; i++) {
        const e = Math.exp(cum[i]!), bi = bc(i);
        for (let p = 0; p < P; p++) {
          const gy = dy[row(i) * P + p]!;
          for (let n = 0; n < N; n++) dS[p * N + n] = (i === 0 ? eLast * dS[p * N + n]! : dS[p * N + n]!) + e * gy * s.C[bi + n]!;
        }
      }
      // dcum → da (reverse cumulative sum) → dt, A
      for (let i = q - 1, da = 0; i >= 0; i--) {
        da += dcum[i]!;
        g.dt[row(i)] += da * s.A[h]!;
        g.A[h] += da * s.dt[row(i)]!;
      }
    }
  }
  return g;
}
