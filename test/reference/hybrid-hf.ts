// Float64 pieces of the Hugging Face forwards of the Mamba-2 / attention hybrids (NemotronH*, FalconH1*),
// one sequence, no cache, plain loops, written from the modeling code; shared by nemotron-h-hf.ts and
// falcon-h1-hf.ts. Nothing here comes from the .arch models, the compiler or the CPU kernels.

import { type HfConfig, lookupKey } from '../../runtime/hfconfig.ts';
import type { Checkpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';

export type Mat = Float64Array;

/** config.json's value of `key` (null and "auto" count as absent), else `fallback`. */
export function configReader(config: HfConfig) {
  return <T = number>(key: string, fallback?: T): T => {
    const { found, value } = lookupKey(config, key);
    return (found && value !== null && value !== 'auto' ? value : fallback) as T;
  };
}

/** A checkpoint tensor in float64. */
export const reader = (ckpt: Checkpoint) => (name: string): Mat => Float64Array.from(toF32(ckpt.read(name)));

export const silu = (v: number) => v / (1 + Math.exp(-v));
export const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

/** T5-style RMSNorm of each row of n values, over `groups` equal parts (weight over the whole row). */
export function rmsnorm(x: Mat, w: Mat, n: number, eps: number, groups = 1): Mat {
  const out = new Float64Array(x.length), g = n / groups;
  for (let t = 0; t < x.length / n; t++) {
    for (let p = 0; p < groups; p++) {
      const o = t * n + p * g;
      let ss = 0;
      for (let i = 0; i < g; i++) ss += x[o + i]! ** 2;
      const r = 1 / Math.sqrt(ss / g + eps);
      for (let i = 0; i < g; i++) out[o + i] = w[p * g + i]! * x[o + i]! * r;
    }
  }
  return out;
}

/** nn.Linear: x [T, nIn] · Wᵀ (+ b), W [nOut, nIn]. */
export function linear(x: Mat, w: Mat, nIn: number, bias?: Mat): Mat {
  const nOut = w.length / nIn, T = x.length / nIn;
  const out = new Float64Array(T * nOut);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < nOut; o++) {
      let s = bias ? bias[o]! : 0;
      for (let i = 0; i < nIn; i++) s += x[t * nIn + i]! * w[o * nIn + i]!;
      out[t * nOut + o] = s;
    }
  }
  return out;
}

export const times = (x: Mat, m: number): Mat => x.map((v) => v * m);
export const plus = (a: Mat, b: Mat): Mat => a.map((v, i) => v + b[i]!);

/** apply_rotary_pos_emb on every head of m [T, heads, Dh] (in place), positions 0..T-1: x·cos + rotate_half(x)·sin. */
export function rope(m: Mat, T: number, heads: number, Dh: number, theta: number): void {
  const half = Dh / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * Dh;
      const x = Array.from(m.subarray(o, o + Dh));
      for (let i = 0; i < Dh; i++) {
        const ang = t / theta ** ((2 * (i % half)) / Dh);
        const rot = i < half ? -x[i + half]! : x[i - half]!;
        m[o + i] = x[i]! * Math.cos(ang) + rot * Math.sin(ang);
      }
    }
  }
}

/** Eager causal attention with repeat_kv: q [T, H, Dh], k and v [T, KV, Dh] -> [T, H·Dh]. */
export function attention(q: Mat, k: Mat, v: Mat, T: number, H: number, KV: number, Dh: number, scale: number): Mat {
  const out = new Float64Array(T * H * Dh);
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / KV));
    for (let t = 0; t < T; t++) {
      const s: number[] = [];
      for (let u = 0; u <= t; u++) {
        let d = 0;
        for (let i = 0; i < Dh; i++) d += q[(t * H + h) * Dh + i]! * k[(u * KV + g) * Dh + i]!;
        s.push(d * scale);
      }
      const mx = Math.max(...s);
      const e = s.map((z) => Math.exp(z - mx));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < Dh; i++) {
        let acc = 0;
        for (let u = 0; u <= t; u++) acc += (e[u]! / sum) * v[(u * KV + g) * Dh + i]!;
        out[(t * H + h) * Dh + i] = acc;
      }
    }
  }
  return out;
}

export interface MixerShape {
  readonly heads: number;
  readonly headDim: number;
  readonly groups: number;
  readonly state: number;
  readonly kernel: number;
  readonly dtMin: number;
  readonly dtMax: number;
}

/**
 * The Mamba-2 mixer after in_proj (torch_forward without cache): `proj` [T, inter + convDim + heads]
 * splits into gate, hidden_states_B_C and dt; the depthwise causal Conv1d (padding K−1, truncated to
 * T) and SiLU; dt = clamp(softplus(dt + dt_bias), limits); the recurrence h ← exp(dt·A)·h + dt·x⊗B,
 * y = C·h + D·x, heads grouped onto B and C by repeat_interleave. Returns y [T, inter] and the gate.
 */
export function ssmScan(proj: Mat, T: number, s: MixerShape, W: (suffix: string) => Mat, convBias: Mat | undefined): { y: Mat; gate: Mat } {
  const { heads: nH, headDim: P, groups: G, state: N, kernel: K } = s;
  const inter = nH * P, convDim = inter + 2 * G * N, width = inter + convDim + nH;
  const gate = new Float64Array(T * inter), hbc = new Float64Array(T * convDim), dtRaw = new Float64Array(T * nH);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < inter; i++) gate[t * inter + i] = proj[t * width + i]!;
    for (let i = 0; i < convDim; i++) hbc[t * convDim + i] = proj[t * width + inter + i]!;
    for (let i = 0; i < nH; i++) dtRaw[t * nH + i] = proj[t * width + inter + convDim + i]!;
  }
  const cw = W('conv1d.weight');
  const conv = new Float64Array(T * convDim);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < convDim; c++) {
      let acc = convBias ? convBias[c]! : 0;
      for (let j = 0; j < K; j++) {
        const src = t - (K - 1) + j;
        if (src >= 0) acc += cw[c * K + j]! * hbc[src * convDim + c]!;
      }
      conv[t * convDim + c] = silu(acc);
    }
  }
  const A = W('A_log').map((a) => -Math.exp(a));
  const dtBias = W('dt_bias'), Dskip = W('D');
  const state = new Float64Array(nH * P * N);
  const y = new Float64Array(T * inter);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / (nH / G));
      const dt = Math.min(Math.max(softplus(dtRaw[t * nH + h]! + dtBias[h]!), s.dtMin), s.dtMax);
      const dA = Math.exp(dt * A[h]!);
      for (let p = 0; p < P; p++) {
        const xv = conv[t * convDim + h * P + p]!;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const si = (h * P + p) * N + n;
          state[si] = dA * state[si]! + dt * xv * conv[t * convDim + inter + g * N + n]!;
          acc += state[si]! * conv[t * convDim + inter + G * N + g * N + n]!;
        }
        y[t * inter + h * P + p] = acc + Dskip[h]! * xv;
      }
    }
  }
  return { y, gate };
}
