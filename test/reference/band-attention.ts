// Sliding-window attention as HF's eager path computes it, in float64: one sequence's full score
// matrix [L, L] per head, a band mask (key j visible to query i iff j <= i and i - j < window; window 0:
// every j <= i) set to -inf, softmax over each row, times V. Written apart from the kernels (no ring,
// no caches) so that it cannot share their mistakes.

/** q: [L, H, Dh], k, v: [L, KV, Dh] of one sequence (f32 or f64); returns [L, H, Dh] in float64. */
export function bandAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, L: number, H: number, KV: number, Dh: number,
  scale: number, window: number): Float64Array {
  const out = new Float64Array(L * H * Dh);
  const group = H / KV;
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / group);
    // scores [L, L] with the band mask
    const s = new Float64Array(L * L);
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < L; j++) {
        const visible = j <= i && (window === 0 || i - j < window);
        if (!visible) { s[i * L + j] = -Infinity; continue; }
        let dot = 0;
        for (let d = 0; d < Dh; d++) dot += q[(i * H + h) * Dh + d]! * k[(j * KV + g) * Dh + d]!;
        s[i * L + j] = dot * scale;
      }
    }
    for (let i = 0; i < L; i++) {
      let max = -Infinity;
      for (let j = 0; j < L; j++) max = Math.max(max, s[i * L + j]!);
      let z = 0;
      for (let j = 0; j < L; j++) z += Math.exp(s[i * L + j]! - max);
      for (let d = 0; d < Dh; d++) {
        let acc = 0;
        for (let j = 0; j < L; j++) acc += (Math.exp(s[i * L + j]! - max) / z) * v[(j * KV + g) * Dh + d]!;
        out[(i * H + h) * Dh + d] = acc;
      }
    }
  }
  return out;
}

/** bandAttention on each sequence of a packed batch ([T, ...] rows, `lens` consecutive sequences). */
export function packedBandAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, lens: readonly number[], H: number, KV: number, Dh: number,
  scale: number, window: number): Float64Array {
  const T = lens.reduce((a, b) => a + b, 0);
  const out = new Float64Array(T * H * Dh);
  let start = 0;
  for (const L of lens) {
    const rows = (x: ArrayLike<number>, w: number) => Array.prototype.slice.call(x, start * w, (start + L) * w) as number[];
    out.set(bandAttention(rows(q, H * Dh), rows(k, KV * Dh), rows(v, KV * Dh), L, H, KV, Dh, scale, window), start * H * Dh);
    start += L;
  }
  return out;
}
