// Attention-layer kernels: partial rotary embedding (HF rotate_half form) and causal GQA attention
// over per-sequence KV caches.

import { checkLen, checkSeqs, type KvCache, type SeqSlice } from './seq.ts';

/**
 * HF's inverse frequencies for rotary dim r, with its f32 roundings: 1 / theta^(2i/r), i < r/2,
 * each step rounded to f32 as torch computes it in float32.
 */
export function invFreqs(rotaryDim: number, theta: number): Float64Array {
  const half = rotaryDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const e = Math.fround((2 * i) / rotaryDim);
    inv[i] = Math.fround(1 / Math.fround(theta ** e));
  }
  return inv;
}

/**
 * Rotary position embedding on the first `rotaryDim` dims of each head; the rest pass through.
 * x: [T, Hn, Dh]; positions: [T]. With r2 = rotaryDim/2 and angle_i = pos * invFreq_i (i < r2):
 *   out[i]      = x[i] cos - x[i + r2] sin
 *   out[i + r2] = x[i + r2] cos + x[i] sin
 * which is HF's q*cos + rotate_half(q)*sin on the rotary slice.
 * Precision choice: the angle is rounded to f32 exactly as HF forms it (f32 inv_freq times the f32
 * position), so large positions land on the same angle; cos/sin of that angle and the rotation
 * itself are evaluated in double and rounded once on store (HF rounds cos/sin to f32 first, a
 * difference of at most ~1 ulp).
 */
export function rope(x: Float32Array, T: number, Hn: number, Dh: number, positions: Int32Array, rotaryDim: number, theta: number): Float32Array {
  checkLen('rope', 'x', x, T * Hn * Dh);
  checkLen('rope', 'positions', positions, T);
  if (!Number.isInteger(rotaryDim) || rotaryDim < 0 || rotaryDim % 2 !== 0 || rotaryDim > Dh) {
    throw new RangeError(`rope: rotary dim ${rotaryDim} must be even and at most the head dim ${Dh}`);
  }
  const half = rotaryDim / 2;
  const inv = invFreqs(rotaryDim, theta);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  const out = new Float32Array(x); // pass-through dims already in place
  for (let t = 0; t < T; t++) {
    const pos = positions[t];
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * inv[i]);
      cos[i] = Math.cos(angle);
      sin[i] = Math.sin(angle);
    }
    for (let hd = 0; hd < Hn; hd++) {
      const o = (t * Hn + hd) * Dh;
      for (let i = 0; i < half; i++) {
        const lo = x[o + i], hi = x[o + i + half];
        out[o + i] = lo * cos[i] - hi * sin[i];
        out[o + i + half] = hi * cos[i] + lo * sin[i];
      }
    }
  }
  return out;
}

/**
 * Causal grouped-query attention over packed sequences with per-sequence caches.
 * q: [T, H, Dh]; k, v: [T, KV, Dh]; caches[s] belongs to seqs[s].
 * For each sequence its k, v rows are first appended to its cache at cache.len (every cache is
 * checked for room before any is touched); query row r of the sequence then attends to cache rows
 * [0, lenBefore + r]. Query head h reads kv head floor(h / (H/KV)). Softmax subtracts the row max;
 * scores, weights and the weighted sum run in double. Returns [T, H, Dh]; rows outside every
 * slice are zero.
 */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, KV: number, Dh: number, scale: number,
  seqs: readonly SeqSlice[], caches: KvCache[]): Float32Array {
  if (KV < 1 || H % KV !== 0) throw new RangeError(`attention: ${KV} kv heads do not divide ${H} query heads`);
  checkLen('attention', 'q', q, T * H * Dh);
  checkLen('attention', 'k', k, T * KV * Dh);
  checkLen('attention', 'v', v, T * KV * Dh);
  checkSeqs('attention', T, seqs, caches.length);
  const rowLen = KV * Dh;
  for (let s = 0; s < seqs.length; s++) {
    const c = caches[s];
    if (c.k.length < c.capacity * rowLen || c.v.length < c.capacity * rowLen) {
      throw new RangeError(`attention: cache ${s} holds fewer than capacity ${c.capacity} rows of ${KV}x${Dh}`);
    }
    if (c.len + seqs[s].len > c.capacity) {
      throw new RangeError(`attention: cache ${s} has ${c.len} of ${c.capacity} rows; ${seqs[s].len} more do not fit`);
    }
  }

  const group = H / KV;
  const out = new Float32Array(T * H * Dh);
  let maxLen = 0;
  for (let s = 0; s < seqs.length; s++) maxLen = Math.max(maxLen, caches[s].len + seqs[s].len);
  const scores = new Float64Array(maxLen);
  const acc = new Float64Array(Dh);

  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s];
    const cache = caches[s];
    const before = cache.len;
    cache.k.set(k.subarray(start * rowLen, (start + len) * rowLen), before * rowLen);
    cache.v.set(v.subarray(start * rowLen, (start + len) * rowLen), before * rowLen);
    cache.len = before + len;
    const K = cache.k, V = cache.v;
    for (let r = 0; r < len; r++) {
      const nk = before + r + 1;
      for (let h = 0; h < H; h++) {
        const qo = ((start + r) * H + h) * Dh;
        const kvo = Math.floor(h / group) * Dh;
        let max = -Infinity;
        for (let j = 0; j < nk; j++) {
          const ko = j * rowLen + kvo;
          let dot = 0;
          for (let d = 0; d < Dh; d++) dot += q[qo + d] * K[ko + d];
          const sc = dot * scale;
          scores[j] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j < nk; j++) {
          const p = Math.exp(scores[j] - max);
          sum += p;
          const vo = j * rowLen + kvo;
          for (let d = 0; d < Dh; d++) acc[d] += p * V[vo + d];
        }
        for (let d = 0; d < Dh; d++) out[qo + d] = acc[d] / sum;
      }
    }
  }
  return out;
}
