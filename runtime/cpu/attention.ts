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
 * q: [T, H, Dh]; k, v: [T, KV, Dh]; caches[s] belongs to seqs[s]. Query row r of a sequence sits at
 * position p = lenBefore + r and attends to positions [max(0, p - window + 1), p] (window 0: [0, p]),
 * earlier positions read from the cache (position j at row j % rows), this call's from k and v;
 * then the sequence's rows are written to its cache (the last `rows` of them where they wrap the
 * ring). Every cache is checked for room before any is touched. Query head h reads kv head
 * floor(h / (H/KV)). Softmax subtracts the row max; scores, weights and the weighted sum run in
 * double. Returns [T, H, Dh]; rows outside every slice are zero.
 */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, KV: number, Dh: number, scale: number,
  seqs: readonly SeqSlice[], caches: KvCache[], window = 0): Float32Array {
  if (KV < 1 || H % KV !== 0) throw new RangeError(`attention: ${KV} kv heads do not divide ${H} query heads`);
  if (!Number.isInteger(window) || window < 0) throw new RangeError(`attention: window ${window} must be 0 (all keys) or a positive integer`);
  checkLen('attention', 'q', q, T * H * Dh);
  checkLen('attention', 'k', k, T * KV * Dh);
  checkLen('attention', 'v', v, T * KV * Dh);
  checkSeqs('attention', T, seqs, caches.length);
  const rowLen = KV * Dh;
  for (let s = 0; s < seqs.length; s++) {
    const c = caches[s], rows = c.rows ?? c.capacity;
    if (rows < (window ? Math.min(window, c.capacity) : c.capacity)) throw new RangeError(`attention: cache ${s} holds ${rows} rows, fewer than window ${window} of capacity ${c.capacity} needs`);
    if (c.k.length < rows * rowLen || c.v.length < rows * rowLen) {
      throw new RangeError(`attention: cache ${s} holds fewer than ${rows} rows of ${KV}x${Dh}`);
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
    const cache = caches[s], rows = cache.rows ?? cache.capacity;
    const before = cache.len;
    // key/value row of position j: this call's rows from k, v; earlier ones from the cache's ring
    const src = (j: number) => (j >= before ? k : cache.k);
    const vsrc = (j: number) => (j >= before ? v : cache.v);
    const at = (j: number) => (j >= before ? start + j - before : j % rows) * rowLen;
    for (let r = 0; r < len; r++) {
      const p = before + r, first = window ? Math.max(0, p - window + 1) : 0, nk = p + 1 - first;
      for (let h = 0; h < H; h++) {
        const qo = ((start + r) * H + h) * Dh;
        const kvo = Math.floor(h / group) * Dh;
        let max = -Infinity;
        for (let i = 0; i < nk; i++) {
          const K = src(first + i), ko = at(first + i) + kvo;
          let dot = 0;
          for (let d = 0; d < Dh; d++) dot += q[qo + d] * K[ko + d];
          const sc = dot * scale;
          scores[i] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        acc.fill(0);
        for (let i = 0; i < nk; i++) {
          const pr = Math.exp(scores[i] - max);
          sum += pr;
          const V = vsrc(first + i), vo = at(first + i) + kvo;
          for (let d = 0; d < Dh; d++) acc[d] += pr * V[vo + d];
        }
        for (let d = 0; d < Dh; d++) out[qo + d] = acc[d] / sum;
      }
    }
    // append: positions before + i, i < len, to rows (before + i) % rows; only the last `rows` survive
    for (let i = Math.max(0, len - rows); i < len; i++) {
      const o = ((before + i) % rows) * rowLen, from = (start + i) * rowLen;
      cache.k.set(k.subarray(from, from + rowLen), o);
      cache.v.set(v.subarray(from, from + rowLen), o);
    }
    cache.len = before + len;
  }
  return out;
}
