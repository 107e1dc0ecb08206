// The prefill's per-head work, shared by the products' threads (runtime/wasm/split.ts): the chunked
// SSD's heads (runtime/wasm/ssd.ts: each head's chunks in order, its state its own) and prefill
// attention's query heads (runtime/wasm/attention.ts: each head's blocks of rows). A head is
// computed by the same routine whichever thread takes it: its products through the kernel module's
// gemm_f32 on that thread's instance, its steps between them through the program module's glue, its
// operands packed into that thread's own scratch; so the results are bit for bit those of one thread.
// The routines are part of the workers' program (their source is shipped, as split.ts' claimChunks),
// so they name no outer binding: the helper `product` and the instances come as arguments, and
// inner functions are avoided (a bundler's name-keeping would reach for a helper the worker lacks).
// Their arguments follow the program module's fixed ones (T, S, seq, rows, scr, ldy, y0, u0, u1):
// scr is the thread's scratch, [u0, u1) its heads.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Ex = Record<string, any>;

/**
 * Y [T, N] = X·Wᵀ in memory 0 on this thread's kernel instance `kex`: X[t, k] = mem[xo + t·xt + k·xk],
 * W[n, k] = mem[wo + n·wn + k·wk] (float indices), copied by the program module's `put` (strided
 * rows of floats) into panels at byte wAt and row tiles at xAt (a run of a panel's or tile's columns
 * at a time where they lie side by side, else one column; padding rows and columns keep whatever is
 * there: their results are never read), Y at yAt; returns Y's row stride (floats).
 */
export function headProduct(kex: Ex, put: (...a: number[]) => void, m64: number, xo: number, xt: number, xk: number, T: number, K: number,
  wo: number, wn: number, wk: number, N: number, MR: number, NR: number, wAt: number, xAt: number, yAt: number): number {
  const panels = Math.ceil(N / NR);
  if (wn === 1) for (let p = 0; p < panels; p++) put(4 * (wo + p * NR), wk, wAt + 4 * p * K * NR, NR, K, Math.min(NR, N - p * NR));
  else for (let n = 0; n < N; n++) put(4 * (wo + n * wn), wk, wAt + 4 * (((n / NR) | 0) * K * NR + (n % NR)), NR, K, 1);
  if (xt === 1) for (let t = 0; t < T; t += MR) put(4 * (xo + t), xk, xAt + 4 * t * K, MR, K, Math.min(MR, T - t));
  else for (let t = 0; t < T; t++) put(4 * (xo + t * xt), xk, xAt + 4 * ((t - (t % MR)) * K + (t % MR)), MR, K, 1);
  if (m64) kex.gemm_f32(xAt, wAt, yAt, T, K, panels * NR, 0, panels, 0n);
  else kex.gemm_f32(xAt, wAt, yAt, T, K, panels * NR, 0, panels);
  return panels * NR;
}

/** Bytes of headProduct's scratch for products whose T, K and N are at most L: panels [L/NR][L][NR],
 *  tiles [L/MR][L][MR] and Y [L/MR·MR, L/NR·NR] (the routines lay them out in this order). */
const productBytes = (L: number, MR: number, NR: number) => 4 * (L * Math.ceil(L / NR) * NR + (L + Math.ceil(L / NR) * NR) * Math.ceil(L / MR) * MR) + 64;

/** Bytes of one thread's scratch for ssdHeads (chunks of up to Q rows), a multiple of 16. */
export const ssdHeadBytes = (Q: number, P: number, N: number, MR: number, NR: number) =>
  Math.ceil((8 * 3 * Q + 4 * (Q * Q + P * Q) + productBytes(Math.max(Q, P, N), MR, NR)) / 16) * 16;

/**
 * Heads [u0, u1) of one sequence's chunked SSD (runtime/wasm/ssd.ts ssdChunkedAt's steps, per head
 * over the sequence's chunks): x, dt, B, C and y at their byte addresses, rows `ld` floats apart;
 * st the sequence's states [H, P, N]; consts A [H] then D [H] (f32); cb the chunks' C_g·B_gᵀ,
 * [chunk][G][Q][Q]. Scratch at scr: a, decayIn, decayOut (f64 [Q]), M [Q, Q], (decayOut ∘ X_h)ᵀ [P, Q],
 * then headProduct's.
 */
export function ssdHeads(kex: Ex, pex: Ex, memory: WebAssembly.Memory, product: typeof headProduct,
  _T: number, _S: number, _seq: number, _rows: number, scr: number, _ldy: number, _y0: number, u0: number, u1: number,
  xAt: number, xld: number, dtAt: number, dtld: number, bAt: number, bld: number, cAt: number, cld: number, yAt: number, yld: number,
  H: number, P: number, G: number, N: number, start: number, len: number, Q: number, st: number, consts: number, cbAt: number,
  MR: number, NR: number, m64: number): void {
  const f = new Float32Array(memory.buffer), d64 = new Float64Array(memory.buffer);
  const a = scr >>> 0, din = a + 8 * Q, dout = din + 8 * Q, m = dout + 8 * Q, xw = m + 4 * Q * Q, L = Math.max(Q, P, N);
  const wP = xw + 4 * P * Q, xT = wP + 4 * L * Math.ceil(L / NR) * NR, yP = xT + 4 * L * Math.ceil(L / MR) * MR;
  const put = pex['ssd.put'], decays = pex['ssd.decays'], mask = pex['ssd.mask'], out = pex['ssd.out'], xwf = pex['ssd.xw'], state = pex['ssd.state'];
  const hpg = H / G, c0 = consts >>> 2;
  for (let h = u0; h < Math.min(u1, H); h++) {
    const g = (h / hpg) | 0, so = (st >>> 0) + 4 * h * P * N;
    for (let t0 = start, ci = 0; t0 < start + len; t0 += Q, ci++) {
      const q = Math.min(Q, start + len - t0);
      const cb = (cbAt >>> 0) + 4 * (ci * G + g) * Q * Q;
      const bc = (bAt >>> 0) + 4 * (t0 * bld + g * N), cc = (cAt >>> 0) + 4 * (t0 * cld + g * N);
      const dth = (dtAt >>> 0) + 4 * (t0 * dtld + h), xh = (xAt >>> 0) + 4 * (t0 * xld + h * P), yh = (yAt >>> 0) + 4 * (t0 * yld + h * P);
      decays(dth, dtld, f[c0 + h], q, a, din, dout);
      mask(cb, Q, dth, dtld, a, q, m, Q);
      // 1. Y = M · X_h: W[p, j] = X_h[j, p]
      let ld = product(kex, put, m64, m >>> 2, Q, 1, q, q, xh >>> 2, 1, xld, P, MR, NR, wP, xT, yP);
      put(yP, ld, yh, yld, q, P);
      // 4. + decayIn ∘ (C_g · S_inᵀ) + D·x
      ld = product(kex, put, m64, cc >>> 2, cld, 1, q, N, so >>> 2, N, 1, P, MR, NR, wP, xT, yP);
      out(yh, yld, yP, ld, din, xh, xld, f[c0 + H + h], q, P);
      // 2 + 3. S_out = total · S_in + (decayOut ∘ X_h)ᵀ · B_g
      xwf(xh, xld, dout, q, P, xw, Q);
      const total = d64[(din >>> 3) + q - 1]!;
      ld = product(kex, put, m64, xw >>> 2, Q, 1, P, q, bc >>> 2, 1, bld, N, MR, NR, wP, xT, yP);
      state(so, total, yP, ld, P, N);
    }
  }
}

/** Query rows per block of prefill attention (runtime/wasm/attention.ts). */
export const BLOCK = 64;

/** Bytes of one thread's scratch for attnHeads over up to `maxKeys` keys, a multiple of 16. */
export const attnHeadBytes = (maxKeys: number, Dh: number, MR: number, NR: number) =>
  Math.ceil((8 * BLOCK + 4 * BLOCK * maxKeys + productBytes(Math.max(BLOCK, maxKeys, Dh), MR, NR)) / 16) * 16;

/**
 * Query heads [u0, u1) of one sequence's causal attention (runtime/wasm/attention.ts attentionAt's
 * steps, per head over the sequence's blocks of rows), its keys and values already in the cache
 * (`before` rows before the sequence's): q and y at their byte addresses, rows `ld` floats apart;
 * the cache's k and v [capacity, KV, Dh]; `consts` the scale (f64). Scratch at scr: the row sums
 * (f64 [BLOCK]), the weights [BLOCK, keys], then headProduct's.
 */
export function attnHeads(kex: Ex, pex: Ex, memory: WebAssembly.Memory, product: typeof headProduct,
  _T: number, _S: number, _seq: number, _rows: number, scr: number, _ldy: number, _y0: number, u0: number, u1: number,
  qAt: number, qld: number, yAt: number, yld: number, kc: number, vc: number, H: number, KV: number, Dh: number,
  start: number, len: number, before: number, consts: number, block: number, MR: number, NR: number, m64: number): void {
  const scale = new Float64Array(memory.buffer)[(consts >>> 3)]!;
  const sums = scr >>> 0, p = sums + 8 * block, L = Math.max(block, before + len, Dh);
  const wP = p + 4 * block * (before + len), xT = wP + 4 * L * Math.ceil(L / NR) * NR, yP = xT + 4 * L * Math.ceil(L / MR) * MR;
  const put = pex['attn.put'], softmax = pex['attn.softmax'], out = pex['attn.out'];
  const rowLen = KV * Dh, group = H / KV;
  for (let h = u0; h < Math.min(u1, H); h++) {
    const kvo = ((h / group) | 0) * Dh;
    for (let r0 = 0; r0 < len; r0 += block) {
      const rows = Math.min(block, len - r0), keys = before + r0 + rows; // the block's last row sees keys [0, keys)
      const qh = (qAt >>> 0) + 4 * ((start + r0) * qld + h * Dh);
      let ld = product(kex, put, m64, qh >>> 2, qld, 1, rows, Dh, ((kc >>> 0) >>> 2) + kvo, rowLen, 1, keys, MR, NR, wP, xT, yP);
      softmax(yP, ld, rows, keys, before + r0, scale, p, keys, sums);
      ld = product(kex, put, m64, p >>> 2, keys, 1, rows, keys, ((vc >>> 0) >>> 2) + kvo, 1, rowLen, Dh, MR, NR, wP, xT, yP);
      out((yAt >>> 0) + 4 * ((start + r0) * yld + h * Dh), yld, yP, ld, sums, rows, Dh);
    }
  }
}

/** The routines as the workers' program builds them (split.ts PROGRAM_WORKER), in HEADS' order. */
export const HEADS = { ssd: ssdHeads, attn: attnHeads } as const;
export type HeadName = keyof typeof HEADS;
