// Row tiles for the training engine's products (runtime/wasm/kernels.ts product, shared): x [T, K]
// into the GEMM's tiles [ceil(T/MR)][K][MR] in the order they are written (each tile's MR rows
// side by side), from x stored by rows or, for dW = dYᵀ·X, by columns (x[t, k] at so + t + k·ld: the
// tile's MR values of one k are then consecutive). Rows past T are left as they are (never read).

/** x[t, k] = src[so + t·ld + k]. `at`: the tiles' first float in dst. */
export function rowTiles(src: Float32Array, so: number, ld: number, dst: Float32Array, at: number, T: number, K: number, MR: number): void {
  for (let t0 = 0; t0 < T; t0 += MR) {
    const m = Math.min(MR, T - t0), base = at + t0 * K;
    for (let r = 0; r < m; r++) {
      for (let k = 0, s = so + (t0 + r) * ld, o = base + r; k < K; k++, o += MR) dst[o] = src[s + k]!;
    }
  }
}

/** x[t, k] = src[so + t + k·ld]. */
export function colTiles(src: Float32Array, so: number, ld: number, dst: Float32Array, at: number, T: number, K: number, MR: number): void {
  for (let t0 = 0; t0 < T; t0 += MR) {
    const m = Math.min(MR, T - t0);
    let o = at + t0 * K;
    if (m === MR) {
      for (let k = 0, s = so + t0; k < K; k++, s += ld) for (let r = 0; r < MR; r++) dst[o++] = src[s + r]!;
    } else {
      for (let k = 0, s = so + t0; k < K; k++, s += ld, o += MR) for (let r = 0; r < m; r++) dst[o + r] = src[s + r]!;
    }
  }
}
