// The f32 engine's per-head work of the SSD (./ssd.ts) and attention (./attention.ts), as routines
// over one memory that the product threads share (./split.ts: the workers run them beside the
// products, one pool): each unit (a head, a KV head, a chunk) is computed whole by one thread with
// the same routine and the same product kernels, so the results are bit for bit those of one
// thread; sums over heads are left to a later unit that adds per-head parts in head order.
// A routine is (E, u, scr, a): E the memory's views and its helpers (`mm`, a product into the
// thread's scratch; `decays`, the SSD's per-chunk scalars), u the unit, scr the thread's scratch (a
// float index), a the arguments (float indices of the operands, sizes). Their source is shipped to
// the workers (as runtime/wasm/heads.ts does the prefill's), so they name no outer binding and hold
// no inner function (a bundler's name-keeping would reach for a helper the worker lacks).
// Where the products are not on the row kernels' memory (JS products, the backend's own) a plain
// memory (`JsSpace`) runs the same routines on the calling thread over the Gemm's `mm`.

/* eslint-disable @typescript-eslint/no-explicit-any */
import type { Gemm } from './gemm.ts';
import { f32 } from './pool.ts';

type F32 = Float32Array;

/** What a routine reads: the memory's views (rebuilt per unit: the memory may grow between jobs),
 *  the product and the SSD's scalars, and the row kernels' and product kernels' exports (null: JS). */
export interface HeadEnv {
  f: F32;
  d: Float64Array;
  i: Int32Array;
  mm: typeof wasmMm;
  decays: typeof ssdDecays;
  attnProbs: typeof attnProbs;
  rex: Record<string, any> | null;
  kex: Record<string, any> | null;
  MR: number;
  NR: number;
  gm?: Gemm;
}

/** The memory the routines run over, and how a job of them runs. */
export interface HeadSpace {
  /** n floats (zeroed unless `zero` is false) at a float index that is a multiple of 4 (16 bytes),
   *  the memory grown to hold them; earlier views are stale after it (read `env()` again). */
  alloc(n: number, zero?: boolean): number;
  /** The memory's views as the calling thread's routines see them. */
  env(): HeadEnv;
  /** Runs ROUTINES[routine] over units [0, units), each thread with `scratch` floats of its own;
   *  `shared` false: on the calling thread alone (work too small to wake the others for). */
  run(routine: number, units: number, scratch: number, args: readonly number[], shared?: boolean): void;
}

/** Floats of `mm`'s result and packing room for products whose T, K and N are at most L (the
 *  routines spell it out: L rounded up to 4, a multiple of 4 floats). */
export const mmFloats = (L: number) => { const l = (L + 3) & ~3; return (l + 16) * (l + 16) + (2 * l + 24) * l + 8; };

/**
 * Y [T, N] = X·Wᵀ at float index y (rows `ld` apart, returned), X[t, k] = f[x + t·xt + k·xk], W[n, k]
 * = f[w + n·wn + k·wk]: packed into row tiles and panels at tmp by the row kernels' `pack`, then the
 * product kernels' gemm_f32 on this thread (the micro-kernels every product of the engine runs).
 */
export function wasmMm(E: HeadEnv, x: number, xt: number, xk: number, T: number, K: number, w: number, wn: number, wk: number, N: number, y: number, tmp: number): number {
  const MR = E.MR, NR = E.NR, panels = Math.ceil(N / NR), ld = panels * NR, pan = tmp + Math.ceil((Math.ceil(T / MR) * MR * K) / 4) * 4;
  E.rex!.pack(4 * x, xt, xk, T, K, 4 * tmp, MR);
  E.rex!.pack(4 * w, wn, wk, N, K, 4 * pan, NR);
  E.kex!.gemm_f32(4 * tmp, 4 * pan, 4 * y, T, K, ld, 0, panels);
  return ld;
}

/** wasmMm over any Gemm's `mm` (E.gm), on the calling thread: Y copied to y, rows N apart. */
function gemmMm(E: HeadEnv, x: number, xt: number, xk: number, T: number, K: number, w: number, wn: number, wk: number, N: number, y: number): number {
  const r = E.gm!.mm(E.f, x, xt, xk, T, K, E.f, w, wn, wk, N);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) E.f[y + t * N + n] = r.y[t * r.ld + n]!;
  return N;
}

/**
 * One head's scalars over a chunk of q rows (its dt at dtp, rows H apart; A_h): cum_i = Σ_{k≤i}
 * dt_k·A_h and e_i = exp(cum_i) (f64 at d indices cum, e), dt in f64 at dtv, and M_ij =
 * exp(cum_i − cum_j)·CB_ij·dt_j for j ≤ i, zero above (f32 [q, Q] at m; CB at cb, rows Q apart);
 * with L ≥ 0 the decays exp(cum_i − cum_j) too (at L). Row i's decays as row i − 1's times
 * exp(cum_i − cum_{i−1}): one multiply each in double instead of an exp (the same to ~1e-15).
 */
export function ssdDecays(E: HeadEnv, dtp: number, H: number, Ah: number, q: number, Q: number, cb: number, cum: number, e: number, row: number, dtv: number, m: number, L: number): void {
  const f = E.f, d = E.d;
  for (let i = 0, run = 0; i < q; i++) { run += f[dtp + i * H]! * Ah; d[cum + i] = run; d[e + i] = Math.exp(run); }
  for (let j = 0; j < q; j++) d[dtv + j] = f[dtp + j * H]!;
  f.fill(0, m, m + q * Q);
  for (let i = 0; i < q; i++) {
    const a = i ? Math.exp(d[cum + i]! - d[cum + i - 1]!) : 1;
    for (let j = 0; j < i; j++) d[row + j]! *= a;
    d[row + i] = 1;
    for (let j = 0, o = i * Q; j <= i; j++) {
      const l = d[row + j]!;
      if (L >= 0) f[L + o + j] = l;
      f[m + o + j] = l * f[cb + o + j]! * d[dtv + j]!;
    }
  }
}

// The SSD's arguments (./ssd.ts ssdArgs), by position: 0 x [T, H·P], 1 dt [T, H], 2 A [H], 3 B [T, G·N],
// 4 C [T, G·N], 5 D [H], 6 dy [T, H·P], 7 H, 8 P, 9 G, 10 N, 11 Q (the chunk), 12 chunks, 13 the
// chunks' (t0, q, first) (i32), 14 CB [chunks][G][Q][Q], 15 the entering states [chunks][H][P·N],
// 16 y or dx [T, H·P], 17 ddt (f64 [H, T], a d index: a head's own lines), 18 dA (f64 [H]), 19 dD (f64 [H]), 20 each head's dB part
// [H][T][N], 21 its dC part, 22 each head's dCB [chunks][H][Q][Q], 23 dB, 24 dC, 25 T, 26 with y (forward).
// A thread's scratch: f64 [8Q] (cum, e, row, dt, dcum, w, dt's gradient) first, then mm's, then f32.

/** CB = C_g·B_gᵀ of unit u = (chunk, group), rows Q apart. */
export function ssdCb(E: HeadEnv, u: number, scr: number, a: number[]): void {
  const B = a[3]!, C = a[4]!, G = a[9]!, N = a[10]!, Q = a[11]!, ch = a[13]!, cb = a[14]!, GN = G * N;
  const c = (u / G) | 0, g = u - c * G, t0 = E.i[ch + 3 * c]!, q = E.i[ch + 3 * c + 1]!, L = (Math.max(Q, N) + 3) & ~3;
  const y = scr + 16 * Q, tmp = y + (L + 16) * (L + 16);
  const ld = E.mm(E, C + t0 * GN + g * N, GN, 1, q, N, B + t0 * GN + g * N, GN, 1, q, y, tmp);
  const f = E.f, o = cb + u * Q * Q;
  for (let i = 0; i < q; i++) for (let j = 0; j < q; j++) f[o + i * Q + j] = f[y + i * ld + j]!;
}

/** Head u's forward over every chunk in order: y = M·X + diag(e)·(C·S0ᵀ) + D·X (with y), and the
 *  state entering each chunk, S1 = e_last·S0 + (diag(w)·X)ᵀ·B. */
export function ssdForwardHead(E: HeadEnv, h: number, scr: number, a: number[]): void {
  const x = a[0]!, dt = a[1]!, B = a[3]!, C = a[4]!, H = a[7]!, P = a[8]!, G = a[9]!, N = a[10]!, Q = a[11]!, nch = a[12]!, ch = a[13]!;
  const cbs = a[14]!, ent = a[15]!, y = a[16]!, withY = a[26]!;
  const f = E.f, d = E.d, I = E.i, HP = H * P, GN = G * N, PN = P * N, g = (h / (H / G)) | 0, Ah = f[a[2]! + h]!, Dh = f[a[5]! + h]!;
  const L = (Math.max(Q, P, N) + 3) & ~3, c64 = scr >> 1, cum = c64, e = c64 + Q, row = c64 + 2 * Q, dtv = c64 + 3 * Q;
  const yy = scr + 16 * Q, tmp = yy + (L + 16) * (L + 16), m = yy + ((L + 16) * (L + 16) + (2 * L + 24) * L + 8), xw = m + Q * Q, st = xw + P * Q;
  for (let c = 0; c < nch; c++) {
    const t0 = I[ch + 3 * c]!, q = I[ch + 3 * c + 1]!, xo = x + t0 * HP + h * P, yo = y + t0 * HP + h * P, bo = t0 * GN + g * N;
    if (I[ch + 3 * c + 2]) f.fill(0, st, st + PN);
    f.copyWithin(ent + (c * H + h) * PN, st, st + PN);
    E.decays(E, dt + t0 * H + h, H, Ah, q, Q, cbs + (c * G + g) * Q * Q, cum, e, row, dtv, m, -1);
    let ld: number;
    if (withY) {
      // y = M·X + D·X (W[p, j] = X[j, p]), then + diag(e)·(C·S0ᵀ)
      ld = E.mm(E, m, Q, 1, q, q, xo, 1, HP, P, yy, tmp);
      for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) f[yo + i * HP + p] = f[yy + i * ld + p]! + Dh * f[xo + i * HP + p]!;
      ld = E.mm(E, C + bo, GN, 1, q, N, st, N, 1, P, yy, tmp);
      for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) f[yo + i * HP + p] += d[e + i]! * f[yy + i * ld + p]!;
    }
    // S1 = e_last·S0 + (diag(w)·X)ᵀ·B
    const cl = d[cum + q - 1]!, el = d[e + q - 1]!;
    for (let j = 0; j < q; j++) {
      const w = Math.exp(cl - d[cum + j]!) * d[dtv + j]!;
      for (let p = 0; p < P; p++) f[xw + p * Q + j] = w * f[xo + j * HP + p]!;
    }
    ld = E.mm(E, xw, Q, 1, P, q, B + bo, 1, GN, N, yy, tmp);
    for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) f[st + p * N + n] = el * f[st + p * N + n]! + f[yy + p * ld + n]!;
  }
}

/** Head h's backward over every chunk in reverse, with dS1 (zero past a sequence's last chunk):
 *  its dx, ddt, dA, dD whole, its parts of dB, dC and its dCB (./ssd.ts's header gives the steps).
 *  dA and dD summed here and stored once (the heads' words share a cache line). */
export function ssdBackwardHead(E: HeadEnv, h: number, scr: number, a: number[]): void {
  const x = a[0]!, dt = a[1]!, B = a[3]!, C = a[4]!, dy = a[6]!, H = a[7]!, P = a[8]!, G = a[9]!, N = a[10]!, Q = a[11]!, nch = a[12]!, ch = a[13]!;
  const cbs = a[14]!, ent = a[15]!, gx = a[16]!, gdt = a[17]!, gA = a[18]!, gD = a[19]!, gBh = a[20]!, gCh = a[21]!, dcbs = a[22]!, T = a[25]!;
  const f = E.f, d = E.d, I = E.i, HP = H * P, GN = G * N, PN = P * N, g = (h / (H / G)) | 0, Ah = f[a[2]! + h]!, Dh = f[a[5]! + h]!;
  const L = (Math.max(Q, P, N) + 3) & ~3, c64 = scr >> 1, cum = c64, e = c64 + Q, row = c64 + 2 * Q, dtv = c64 + 3 * Q, dcum = c64 + 4 * Q, w = c64 + 5 * Q, gdtj = c64 + 6 * Q;
  const yy = scr + 16 * Q, tmp = yy + (L + 16) * (L + 16), m = yy + ((L + 16) * (L + 16) + (2 * L + 24) * L + 8), Lm = m + Q * Q, ey = Lm + Q * Q, dS = ey + P * Q;
  const gt = gdt + h * T;
  let ga = 0, gd = 0;
  for (let c = nch - 1; c >= 0; c--) {
    const t0 = I[ch + 3 * c]!, q = I[ch + 3 * c + 1]!, xo = x + t0 * HP + h * P, dyo = dy + t0 * HP + h * P, gxo = gx + t0 * HP + h * P, bo = t0 * GN + g * N;
    if (c === nch - 1 || I[ch + 3 * c + 5]) f.fill(0, dS, dS + PN);
    const S0 = ent + (c * H + h) * PN, cb = cbs + (c * G + g) * Q * Q, dcb = dcbs + (c * H + h) * Q * Q;
    E.decays(E, dt + t0 * H + h, H, Ah, q, Q, cb, cum, e, row, dtv, m, Lm);
    const cl = d[cum + q - 1]!, el = d[e + q - 1]!;
    d.fill(0, dcum, dcum + q);
    d.fill(0, gdtj, gdtj + q);
    // 1. diagonal block: dM = dY·Xᵀ → dcum, ddt, dCB (row i's dcum and each column's ddt summed apart)
    let ld = E.mm(E, dyo, HP, 1, q, P, xo, HP, 1, q, yy, tmp);
    for (let i = 0; i < q; i++) {
      let di = 0;
      for (let j = 0, o = i * Q, r = yy + i * ld; j <= i; j++) {
        const dm = f[r + j]!, z = dm * f[m + o + j]!, dl = dm * f[Lm + o + j]!;
        di += z;
        d[dcum + j]! -= z;
        d[gdtj + j]! += dl * f[cb + o + j]!;
        f[dcb + o + j] = dl * d[dtv + j]!;
      }
      d[dcum + i]! += di;
    }
    for (let j = 0; j < q; j++) d[gt + t0 + j]! += d[gdtj + j]!;
    // dX = Mᵀ·dY + D·dY (X[j, i] = M[i, j]; W[p, i] = dY[i, p])
    ld = E.mm(E, m, 1, Q, q, q, dyo, 1, HP, P, yy, tmp);
    for (let j = 0; j < q; j++) for (let p = 0; p < P; p++) f[gxo + j * HP + p] += f[yy + j * ld + p]! + Dh * f[dyo + j * HP + p]!;
    // 2. the entering state's output and the skip: dcum_i += e_i·⟨dy_i, C_i·S0ᵀ⟩, dC += diag(e)·dY·S0
    ld = E.mm(E, C + bo, GN, 1, q, N, S0, N, 1, P, yy, tmp);
    let dd = 0;
    for (let i = 0; i < q; i++) {
      let acc = 0;
      for (let p = 0; p < P; p++) {
        const gy = f[dyo + i * HP + p]!;
        acc += gy * f[yy + i * ld + p]!;
        dd += gy * f[xo + i * HP + p]!;
      }
      d[dcum + i]! += d[e + i]! * acc;
    }
    gd += dd;
    ld = E.mm(E, dyo, HP, 1, q, P, S0, 1, N, N, yy, tmp);
    for (let i = 0; i < q; i++) for (let n = 0; n < N; n++) f[gCh + (h * T + t0 + i) * N + n] += d[e + i]! * f[yy + i * ld + n]!;
    // 3. the chunk state from dS1: SB = B·dS1ᵀ → dX, dw; dB += diag(w)·X·dS1
    for (let j = 0; j < q; j++) d[w + j] = Math.exp(cl - d[cum + j]!) * d[dtv + j]!;
    ld = E.mm(E, B + bo, GN, 1, q, N, dS, N, 1, P, yy, tmp);
    for (let j = 0; j < q; j++) {
      let dw = 0;
      for (let p = 0; p < P; p++) {
        const sb = f[yy + j * ld + p]!;
        f[gxo + j * HP + p] += d[w + j]! * sb;
        dw += sb * f[xo + j * HP + p]!;
      }
      d[gt + t0 + j]! += dw * Math.exp(cl - d[cum + j]!);
      d[dcum + q - 1]! += dw * d[w + j]!;
      d[dcum + j]! -= dw * d[w + j]!;
    }
    ld = E.mm(E, xo, HP, 1, q, P, dS, 1, N, N, yy, tmp);
    for (let j = 0; j < q; j++) for (let n = 0; n < N; n++) f[gBh + (h * T + t0 + j) * N + n] += d[w + j]! * f[yy + j * ld + n]!;
    let ss = 0;
    for (let k = 0; k < PN; k++) ss += f[S0 + k]! * f[dS + k]!;
    d[dcum + q - 1]! += el * ss;
    // dS0 = e_last·dS1 + (diag(e)·dY)ᵀ·C, the chunk before's dS1
    for (let i = 0; i < q; i++) for (let p = 0; p < P; p++) f[ey + p * Q + i] = d[e + i]! * f[dyo + i * HP + p]!;
    ld = E.mm(E, ey, Q, 1, P, q, C + bo, 1, GN, N, yy, tmp);
    for (let p = 0; p < P; p++) for (let n = 0; n < N; n++) f[dS + p * N + n] = el * f[dS + p * N + n]! + f[yy + p * ld + n]!;
    // 4. dcum → da (reverse cumulative sum) → dt, A
    for (let i = q - 1, da = 0; i >= 0; i--) {
      da += d[dcum + i]!;
      d[gt + t0 + i]! += da * Ah;
      ga += da * d[dtv + i]!;
    }
  }
  d[gA + h] = ga;
  d[gD + h] = gd;
}

/** Unit u = (chunk, group): dCB summed over the group's heads in head order, then dC = Σ_h dC_h +
 *  dCB·B and dB = Σ_h dB_h + dCBᵀ·C over the chunk's rows and the group's columns. */
export function ssdSums(E: HeadEnv, u: number, scr: number, a: number[]): void {
  const B = a[3]!, C = a[4]!, H = a[7]!, G = a[9]!, N = a[10]!, Q = a[11]!, ch = a[13]!, gBh = a[20]!, gCh = a[21]!, dcbs = a[22]!, gB = a[23]!, gC = a[24]!, T = a[25]!;
  const f = E.f, GN = G * N, hpg = H / G, c = (u / G) | 0, g = u - c * G, t0 = E.i[ch + 3 * c]!, q = E.i[ch + 3 * c + 1]!, bo = t0 * GN + g * N;
  const L = (Math.max(Q, N) + 3) & ~3, yy = scr + 16 * Q, tmp = yy + (L + 16) * (L + 16), s = yy + ((L + 16) * (L + 16) + (2 * L + 24) * L + 8);
  f.fill(0, s, s + q * Q);
  for (let h = g * hpg; h < (g + 1) * hpg; h++) {
    const o = dcbs + (c * H + h) * Q * Q;
    for (let i = 0; i < q; i++) for (let j = 0; j <= i; j++) f[s + i * Q + j] += f[o + i * Q + j]!;
  }
  for (let i = 0; i < q; i++) for (let n = 0; n < N; n++) {
    const at = bo + i * GN + n;
    f[gC + at] = 0;
    f[gB + at] = 0;
    for (let h = g * hpg; h < (g + 1) * hpg; h++) {
      f[gC + at] += f[gCh + (h * T + t0 + i) * N + n]!;
      f[gB + at] += f[gBh + (h * T + t0 + i) * N + n]!;
    }
  }
  // dC += dCB·B (W[n, j] = B[j, n]), dB += dCBᵀ·C
  let ld = E.mm(E, s, Q, 1, q, q, B + bo, 1, GN, N, yy, tmp);
  for (let i = 0; i < q; i++) for (let n = 0; n < N; n++) f[gC + bo + i * GN + n] += f[yy + i * ld + n]!;
  ld = E.mm(E, s, 1, Q, q, q, C + bo, 1, GN, N, yy, tmp);
  for (let j = 0; j < q; j++) for (let n = 0; n < N; n++) f[gB + bo + j * GN + n] += f[yy + j * ld + n]!;
}

// Attention's arguments (./attention.ts attnArgs), by position: 0 q [T, H, Dh], 1 k [T, KV, Dh],
// 2 v, 3 y [T, H, Dh], 4 lse [T, H], 5 H, 6 KV, 7 Dh, 8 scale, 9 window (0: none), 10 sequences,
// 11 their (start, len) (i32), 12 the longest, 13 dy, 14 dq, 15 dk, 16 dv.
// A thread's scratch: f64 [m] (the rows' dO·O), mm's, P and dS [m, m], the rows' lse and stats [3m].

/** P [n, n] (rows n apart, zero outside each row's keys) of one sequence's query head from its
 *  scores at s (rows lds apart): the row logsumexp computed into lse (rows H apart) unless `given`
 *  (then read from it, as the backward does); on the row kernels where E has them, else in JS. */
export function attnProbs(E: HeadEnv, s: number, lds: number, n: number, start: number, scale: number, window: number, p: number, lse: number, H: number, given: number, l: number): void {
  const f = E.f;
  f.fill(0, p, p + n * n);
  if (E.rex) {
    if (given) for (let i = 0; i < n; i++) f[l + i] = f[lse + i * H]!;
    else {
      E.rex.attn_stats(4 * s, lds, n, scale, window, 4 * (l + n));
      for (let i = 0; i < n; i++) f[lse + i * H] = f[l + i] = f[l + n + 2 * i]! + Math.log(f[l + n + 2 * i + 1]!);
    }
    E.rex.attn_p(4 * s, lds, 4 * p, n, scale, window, 4 * l);
    return;
  }
  for (let i = 0; i < n; i++) {
    const j0 = window ? Math.max(0, i - window + 1) : 0, row = s + i * lds, o = p + i * n;
    let lv: number;
    if (given) lv = f[lse + i * H]!;
    else {
      let max = -Infinity, sum = 0;
      for (let j = j0; j <= i; j++) max = Math.max(max, f[row + j]! * scale);
      for (let j = j0; j <= i; j++) sum += Math.exp(f[row + j]! * scale - max);
      lv = max + Math.log(sum);
      f[lse + i * H] = lv;
    }
    for (let j = j0; j <= i; j++) f[o + j] = Math.exp(f[row + j]! * scale - lv);
  }
}

/** Query head h over every sequence: S = Q·Kᵀ, P and the row logsumexp, O = P·V. */
export function attnForwardHead(E: HeadEnv, h: number, scr: number, a: number[]): void {
  const q = a[0]!, k = a[1]!, v = a[2]!, y = a[3]!, lse = a[4]!, H = a[5]!, KV = a[6]!, Dh = a[7]!, scale = a[8]!, window = a[9]!, ns = a[10]!, sq = a[11]!, M = a[12]!;
  const f = E.f, HD = H * Dh, KD = KV * Dh, kvo = ((h / (H / KV)) | 0) * Dh, L = (Math.max(M, Dh) + 3) & ~3;
  const yy = scr + ((2 * M + 7) & ~3), tmp = yy + (L + 16) * (L + 16), p = yy + ((L + 16) * (L + 16) + (2 * L + 24) * L + 8), l = p + 2 * M * M;
  for (let s = 0; s < ns; s++) {
    const start = E.i[sq + 2 * s]!, n = E.i[sq + 2 * s + 1]!, qo = q + start * HD + h * Dh, ko = start * KD + kvo;
    let ld = E.mm(E, qo, HD, 1, n, Dh, k + ko, KD, 1, n, yy, tmp);
    E.attnProbs(E, yy, ld, n, start, scale, window, p, lse + start * H + h, H, 0, l);
    // O = P·V (W[e, j] = V[j, e])
    ld = E.mm(E, p, n, 1, n, n, v + ko, 1, KD, Dh, yy, tmp);
    for (let i = 0; i < n; i++) for (let e = 0; e < Dh; e++) f[y + (start + i) * HD + h * Dh + e] = f[yy + i * ld + e]!;
  }
}

/** KV head u over every sequence, its query heads in order: P again from the saved logsumexp,
 *  dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O))·scale, dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO. */
export function attnBackwardKv(E: HeadEnv, u: number, scr: number, a: number[]): void {
  const q = a[0]!, k = a[1]!, v = a[2]!, y = a[3]!, lse = a[4]!, H = a[5]!, KV = a[6]!, Dh = a[7]!, scale = a[8]!, window = a[9]!, ns = a[10]!, sq = a[11]!, M = a[12]!;
  const dy = a[13]!, dq = a[14]!, dk = a[15]!, dv = a[16]!;
  const f = E.f, d = E.d, HD = H * Dh, KD = KV * Dh, hpk = H / KV, L = (Math.max(M, Dh) + 3) & ~3, dot = scr >> 1;
  const yy = scr + ((2 * M + 7) & ~3), tmp = yy + (L + 16) * (L + 16), p = yy + ((L + 16) * (L + 16) + (2 * L + 24) * L + 8), ds = p + M * M, l = ds + M * M;
  for (let s = 0; s < ns; s++) {
    const start = E.i[sq + 2 * s]!, n = E.i[sq + 2 * s + 1]!, ko = start * KD + u * Dh;
    for (let h = u * hpk; h < (u + 1) * hpk; h++) {
      const qo = start * HD + h * Dh;
      let ld = E.mm(E, q + qo, HD, 1, n, Dh, k + ko, KD, 1, n, yy, tmp);
      E.attnProbs(E, yy, ld, n, start, scale, window, p, lse + start * H + h, H, 1, l);
      for (let i = 0; i < n; i++) {
        let t = 0;
        for (let e = 0; e < Dh; e++) t += f[dy + qo + i * HD + e]! * f[y + qo + i * HD + e]!;
        d[dot + i] = t;
      }
      // dP = dO·Vᵀ, then dS
      ld = E.mm(E, dy + qo, HD, 1, n, Dh, v + ko, KD, 1, n, yy, tmp);
      f.fill(0, ds, ds + n * n);
      for (let i = 0; i < n; i++) {
        for (let j = window ? Math.max(0, i - window + 1) : 0; j <= i; j++) f[ds + i * n + j] = f[p + i * n + j]! * (f[yy + i * ld + j]! - d[dot + i]!) * scale;
      }
      // dQ = dS·K (W[e, j] = K[j, e])
      ld = E.mm(E, ds, n, 1, n, n, k + ko, 1, KD, Dh, yy, tmp);
      for (let i = 0; i < n; i++) for (let e = 0; e < Dh; e++) f[dq + qo + i * HD + e] = f[yy + i * ld + e]!;
      // dK += dSᵀ·Q, dV += Pᵀ·dO
      ld = E.mm(E, ds, 1, n, n, n, q + qo, 1, HD, Dh, yy, tmp);
      for (let j = 0; j < n; j++) for (let e = 0; e < Dh; e++) f[dk + ko + j * KD + e] += f[yy + j * ld + e]!;
      ld = E.mm(E, p, 1, n, n, n, dy + qo, 1, HD, Dh, yy, tmp);
      for (let j = 0; j < n; j++) for (let e = 0; e < Dh; e++) f[dv + ko + j * KD + e] += f[yy + j * ld + e]!;
    }
  }
}

/** The causal conv's backward over sequence u (./seq.ts convBackward32's arguments: 0 x [T, C],
 *  1 the taps [K, C], 2 dy, 3 dx, 4 each sequence's dw [K, C] and db [C] parts (f64, a d index),
 *  5 the sequences' (start, len) (i32), 6 C, 7 K): its rows of dx, its parts of dw and db (summed
 *  in sequence order after). */
export function convBackwardSeq(E: HeadEnv, u: number, _scr: number, a: number[]): void {
  const C = a[6]!, K = a[7]!, part = 8 * (a[4]! + u * (K * C + C)), sq = a[5]!;
  E.rex!.conv_b(4 * a[0]!, 4 * a[1]!, 4 * a[2]!, 4 * a[3]!, part, part + 8 * K * C, E.i[sq + 2 * u]!, E.i[sq + 2 * u + 1]!, C, K);
}

/** The routines, by index (the workers list them in this order). */
export const ROUTINES = [ssdCb, ssdForwardHead, ssdBackwardHead, ssdSums, attnForwardHead, attnBackwardKv, convBackwardSeq] as const;
export const ROUTINE = { ssdCb: 0, ssdForward: 1, ssdBackward: 2, ssdSums: 3, attnForward: 4, attnBackward: 5, convBackward: 6 } as const;

/** The helpers E carries, as the workers' program builds them (./split.ts). */
export const HELPERS = { mm: wasmMm, decays: ssdDecays, attnProbs } as const;

/** Takes units of the posted job and runs them until none is left (the caller and the workers run
 *  this same code; its source is part of the workers' program). The control words: 3 the claim
 *  ((job << 16) | units claimed; its low half 0xffff while the job is written), 4 units done, 5 the
 *  routine, 6 units, 7 the scratch's float index, 8 floats of scratch per thread, 9 the argument
 *  count; the arguments are f64 from byte 64. E's views are made again for each unit (the memory may
 *  have grown since this thread last looked). */
export function claimUnits(ctl: Int32Array, argv: Float64Array, args: number[], routines: readonly ((...a: any[]) => void)[], E: HeadEnv, memory: WebAssembly.Memory | null, thread: number): void {
  for (;;) {
    const c = Atomics.load(ctl, 3), u = c & 0xffff, units = ctl[6]!;
    if (u === 0xffff || u >= units) return;
    const fn = routines[ctl[5]!]!, scr = ctl[7]! + thread * ctl[8]!, n = ctl[9]!;
    args.length = n;
    for (let i = 0; i < n; i++) args[i] = argv[i]!;
    // the job was rewritten since it was read: read it again
    if (Atomics.compareExchange(ctl, 3, c, c + 1) !== c) continue;
    if (memory && E.f.buffer.byteLength !== memory.buffer.byteLength) {
      E.f = new Float32Array(memory.buffer);
      E.d = new Float64Array(memory.buffer);
      E.i = new Int32Array(memory.buffer);
    }
    fn(E, u, scr, args);
    Atomics.add(ctl, 4, 1);
    Atomics.notify(ctl, 4);
  }
}

/** A plain memory for the routines where the products are not on the row kernels' memory: the
 *  Gemm's `mm` on the calling thread. */
export class JsSpace implements HeadSpace {
  private buf = new ArrayBuffer(1 << 16);
  private top = 0;
  private readonly E: HeadEnv;

  constructor(gm: Gemm) {
    this.E = { f: new Float32Array(0), d: new Float64Array(0), i: new Int32Array(0), mm: gemmMm as typeof wasmMm, decays: ssdDecays, attnProbs, rex: null, kex: null, MR: 1, NR: 1, gm };
  }

  alloc(n: number, zero = true): number {
    const at = this.top;
    this.top = at + Math.ceil(n / 4) * 4 + 4;
    if (4 * this.top > this.buf.byteLength) {
      const grown = new ArrayBuffer(Math.max(2 * this.buf.byteLength, 4 * this.top));
      new Uint8Array(grown).set(new Uint8Array(this.buf));
      this.buf = grown;
    }
    if (zero) new Float32Array(this.buf, 4 * at, n).fill(0);
    return at;
  }

  env(): HeadEnv {
    const E = this.E;
    if (E.f.buffer !== this.buf) Object.assign(E, { f: new Float32Array(this.buf), d: new Float64Array(this.buf), i: new Int32Array(this.buf) });
    return E;
  }

  run(routine: number, units: number, scratch: number, args: readonly number[]): void {
    const scr = this.alloc(scratch), E = this.env(), a = [...args];
    for (let u = 0; u < units; u++) (ROUTINES[routine] as (...x: unknown[]) => void)(E, u, scr, a);
  }
}

/** The memory the heads' routines run over: the row kernels' where they carry the products (the
 *  units shared by their threads), else a plain one over the Gemm's `mm`. */
export function spaceOf(gm: Gemm): HeadSpace {
  return gm.rows?.products ? gm.rows.space() : new JsSpace(gm);
}

/** `v` copied into the space; its float index. */
export function put(sp: HeadSpace, v: F32): number {
  const at = sp.alloc(v.length, false);
  sp.env().f.set(v, at);
  return at;
}

/** n floats of the space at `at`, copied into a pool array. */
export function take(sp: HeadSpace, at: number, n: number): F32 {
  const y = f32(n, false);
  y.set(sp.env().f.subarray(at, at + n));
  return y;
}
