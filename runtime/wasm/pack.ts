// The wasm backend's weight packing loops (runtime/wasm/kernels.ts `pack`, `packQuant` place the
// results in the memory; runtime/load-pool.ts packs a checkpoint's rows as they are read): plain
// typed-array loops, one per element width, each a small monomorphic function writing its panels in
// order (the load's hot path: every product weight passes here once).

import { QUANT_GROUP } from '../quant.ts';

/** W [N, K] (`transposed`: given as [K, N]) into panels [P][K][NR]: panel p holds W[p·NR + c, k] at
 *  p·K·NR + k·NR + c. Elements are copied as bits (u32 for f32, u16 for bf16); padding columns past
 *  N are left as they are. */
export function packPanels(dst: Uint32Array | Uint16Array, src: Uint32Array | Uint16Array, N: number, K: number, NR: number, transposed: boolean): void {
  if (transposed) panelRowsT(dst, src, 0, 0, K, N, K, NR, 0);
  else if (dst instanceof Uint32Array) panelRows32(dst, src as Uint32Array, 0, 0, N, K, NR, 0);
  else panelRows16(dst, src as Uint16Array, 0, 0, N, K, NR, 0);
}

// The row functions below take a block of the stored rows at a time (the loader's threads pack what
// they read: runtime/load-pool.ts) and test them finite on the way: `mask` is the dtype's exponent
// bits (0x7f800000 f32, 0x7f80 bf16, 0x7c00 f16; 0: no test); (x & mask) + its lowest bit carries
// into the sign bit (of each 16-bit half) only where the exponent is all ones (NaN or ±Infinity), so
// an OR of those sums says whether any element is. They return that, and are self-contained (the
// workers run their source text).

/** Rows [r, r + n) of W [N, K] (r a multiple of NR) from src[s0] on into their panels in dst:
 *  panel by panel, k by k (the writes in order, the reads along NR rows at once), a whole panel of
 *  8 unrolled; true where one is not finite. */
export function panelRows32(dst: Uint32Array, src: Uint32Array, s0: number, r: number, n: number, K: number, NR: number, mask: number): boolean {
  const inc = mask & -mask;
  let acc = 0;
  for (let n0 = 0; n0 < n; n0 += NR) {
    const m = Math.min(NR, n - n0), j0 = s0 + n0 * K;
    let o = (r + n0) * K;
    if (m === 8 && NR === 8) {
      const K2 = 2 * K, K3 = 3 * K, K4 = 4 * K, K5 = 5 * K, K6 = 6 * K, K7 = 7 * K;
      for (let j = j0, e = j0 + K; j < e; j++, o += 8) {
        const a0 = src[j]!, a1 = src[j + K]!, a2 = src[j + K2]!, a3 = src[j + K3]!, a4 = src[j + K4]!, a5 = src[j + K5]!, a6 = src[j + K6]!, a7 = src[j + K7]!;
        acc |= ((a0 & mask) + inc) | ((a1 & mask) + inc) | ((a2 & mask) + inc) | ((a3 & mask) + inc)
          | ((a4 & mask) + inc) | ((a5 & mask) + inc) | ((a6 & mask) + inc) | ((a7 & mask) + inc);
        dst[o] = a0; dst[o + 1] = a1; dst[o + 2] = a2; dst[o + 3] = a3;
        dst[o + 4] = a4; dst[o + 5] = a5; dst[o + 6] = a6; dst[o + 7] = a7;
      }
    } else {
      // a partial panel (its padding columns left as they are), or other panel widths
      for (let k = 0; k < K; k++, o += NR) {
        for (let c = 0, j = j0 + k; c < m; c++, j += K) {
          const a = src[j]!;
          acc |= (a & mask) + inc;
          dst[o + c] = a;
        }
      }
    }
  }
  return mask !== 0 && (acc & 0x80000000) !== 0;
}

/** panelRows32 for 16-bit elements: a whole panel of 8 with K even (and both arrays 4-byte aligned)
 *  moves two k at a time as u32 words (rows c and c + 1 at k and k + 1 regrouped into the words of
 *  row k and of row k + 1), testing both halves of each word at once. */
export function panelRows16(dst: Uint16Array, src: Uint16Array, s0: number, r: number, n: number, K: number, NR: number, mask: number): boolean {
  const inc = mask & -mask, mask2 = mask | (mask << 16), inc2 = inc | (inc << 16);
  const words = NR === 8 && K % 2 === 0 && s0 % 2 === 0 && dst.byteOffset % 4 === 0 && src.byteOffset % 4 === 0;
  const d32 = words ? new Uint32Array(dst.buffer, dst.byteOffset, dst.length >> 1) : null;
  const s32 = words ? new Uint32Array(src.buffer, src.byteOffset, src.length >> 1) : null;
  let acc = 0;
  for (let n0 = 0; n0 < n; n0 += NR) {
    const m = Math.min(NR, n - n0), j0 = s0 + n0 * K;
    let o = (r + n0) * K;
    if (m === 8 && d32 && s32) {
      const H = K >> 1, H2 = 2 * H, H3 = 3 * H, H4 = 4 * H, H5 = 5 * H, H6 = 6 * H, H7 = 7 * H;
      for (let j = j0 >> 1, e = (j0 >> 1) + H, w = o >> 1; j < e; j++, w += 8) {
        const a0 = s32[j]!, a1 = s32[j + H]!, a2 = s32[j + H2]!, a3 = s32[j + H3]!, a4 = s32[j + H4]!, a5 = s32[j + H5]!, a6 = s32[j + H6]!, a7 = s32[j + H7]!;
        acc |= ((a0 & mask2) + inc2) | ((a1 & mask2) + inc2) | ((a2 & mask2) + inc2) | ((a3 & mask2) + inc2)
          | ((a4 & mask2) + inc2) | ((a5 & mask2) + inc2) | ((a6 & mask2) + inc2) | ((a7 & mask2) + inc2);
        // row k: columns (0, 1), (2, 3), ... from the low halves; row k + 1 from the high ones
        d32[w] = (a0 & 0xffff) | (a1 << 16); d32[w + 1] = (a2 & 0xffff) | (a3 << 16);
        d32[w + 2] = (a4 & 0xffff) | (a5 << 16); d32[w + 3] = (a6 & 0xffff) | (a7 << 16);
        d32[w + 4] = (a0 >>> 16) | (a1 & 0xffff0000); d32[w + 5] = (a2 >>> 16) | (a3 & 0xffff0000);
        d32[w + 6] = (a4 >>> 16) | (a5 & 0xffff0000); d32[w + 7] = (a6 >>> 16) | (a7 & 0xffff0000);
      }
    } else {
      for (let k = 0; k < K; k++, o += NR) {
        for (let c = 0, j = j0 + k; c < m; c++, j += K) {
          const a = src[j]!;
          acc |= (a & mask) + inc;
          dst[o + c] = a;
        }
      }
    }
  }
  return mask !== 0 && (acc & 0x80008000) !== 0;
}

/** Transposed: rows [k0, k0 + n) of the [K, N] source (from src[s0] on) spread over the panels in
 *  runs of NR columns (either width: transposed products are few). */
export function panelRowsT(dst: Uint32Array | Uint16Array, src: Uint32Array | Uint16Array, s0: number, k0: number, n: number, N: number, K: number, NR: number, mask: number): boolean {
  const inc = mask & -mask;
  let acc = 0;
  for (let k = k0, i = s0; k < k0 + n; k++) {
    for (let c0 = 0; c0 < N; c0 += NR) {
      const o = c0 * K + k * NR, m = Math.min(NR, N - c0);
      for (let c = 0; c < m; c++, i++) {
        const a = src[i]!;
        acc |= (a & mask) + inc;
        dst[o + c] = a;
      }
    }
  }
  return mask !== 0 && (acc & (src instanceof Uint32Array ? 0x80000000 : 0x8000)) !== 0;
}

/** Whether any of the `n` elements of `eb` bytes from byte `at` of `buf` (4-byte aligned) is not
 *  finite by `mask` (as above): 16-bit ones two to a word. */
export function nonFinite(buf: ArrayBufferLike, at: number, n: number, eb: number, mask: number): boolean {
  if (!mask) return false;
  const inc = mask & -mask;
  if (at % 4) {
    // 16-bit elements at an odd half-word: one at a time
    const h = new Uint16Array(buf, at, n);
    let a = 0;
    for (let k = 0; k < n; k++) a |= (h[k]! & mask) + inc;
    return (a & 0x8000) !== 0;
  }
  const words = eb === 4 ? n : n >> 1, x = new Uint32Array(buf, at, words);
  const m = eb === 4 ? mask : mask | (mask << 16), i = eb === 4 ? inc : inc | (inc << 16);
  let acc = 0;
  for (let w = 0; w < words; w++) acc |= (x[w]! & m) + i;
  if (eb === 2 && n % 2) acc |= (new Uint16Array(buf, at, n)[n - 1]! & mask) + inc;
  return (acc & (eb === 4 ? 0x80000000 : 0x80008000)) !== 0;
}

/** Byte offsets within one packed q8/q4 group (runtime/wasm/layout.ts QUANT_LAYOUT). */
export interface QuantGroupLayout {
  readonly group: number;
  readonly scales: number;
  readonly corr?: number;
}

/**
 * q8/q4 codes [N, K] and f16 scale bits into panels of 8 columns of groups (runtime/wasm/layout.ts
 * QUANT_LAYOUT documents the layout) in `bytes`, zeroed where N leaves a partial panel: the scales
 * copied as bits, q8's per-column code sums as i16. q4 padding columns get code 0 (stored 8).
 */
export function packQuantPanels(q4: boolean, codes: Int8Array | Uint8Array, scales: Uint16Array, N: number, K: number,
  L: QuantGroupLayout, bytes: Uint8Array): void {
  const G = K / QUANT_GROUP;
  const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  if (q4) quantPanels4(codes as Uint8Array, scales, N, K, G, L, bytes, u16);
  else quantPanels8(codes as Int8Array, scales, N, K, G, L, bytes, u16);
}

/** q4: element i of a group at byte q·16 + (c&3)·4 + j (q = i>>2, j = i&3), column c's nibble half c>>2.
 *  Built a word at a time: the 4 codes of k-quad q of column cc (low nibbles) and of column cc + 4
 *  (high nibbles) are two 16-bit reads of the stored codes, spread a nibble to a byte; every byte of
 *  a whole panel is written once (a panel's missing columns read code 8, stored for 0). */
function quantPanels4(codes: Uint8Array, scales: Uint16Array, N: number, K: number, G: number, L: QuantGroupLayout,
  bytes: Uint8Array, u16: Uint16Array): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  const row = K >> 1, panels = Math.ceil(N / 8);
  const spread = (v: number) => (v & 0xf) | ((v & 0xf0) << 4) | ((v & 0xf00) << 8) | ((v & 0xf000) << 12);
  for (let p = 0; p < panels; p++) {
    for (let cc = 0; cc < 4; cc++) {
      const n0 = 8 * p + cc, n1 = n0 + 4, has0 = n0 < N, has1 = n1 < N;
      for (let g = 0; g < G; g++) {
        const base = (p * G + g) * L.group;
        const e0 = n0 * row + 16 * g, e1 = n1 * row + 16 * g;
        for (let q = 0; q < 8; q++) {
          const a = has0 ? codes[e0 + 2 * q]! | (codes[e0 + 2 * q + 1]! << 8) : 0x8888;
          const b = has1 ? codes[e1 + 2 * q]! | (codes[e1 + 2 * q + 1]! << 8) : 0x8888;
          words[((base + q * 16) >> 2) + cc] = spread(a) | (spread(b) << 4);
        }
        if (has0) u16[((base + L.scales) >> 1) + cc] = scales[n0 * G + g]!;
        if (has1) u16[((base + L.scales) >> 1) + cc + 4] = scales[n1 * G + g]!;
      }
    }
  }
}

/** q8: element i of a group at byte q·32 + half·16 + (c&3)·4 + j. */
function quantPanels8(codes: Int8Array, scales: Uint16Array, N: number, K: number, G: number, L: QuantGroupLayout,
  bytes: Uint8Array, u16: Uint16Array): void {
  const corr = L.corr!;
  for (let n = 0; n < N; n++) {
    const p = n >> 3, c = n & 7, at = (c >> 2) * 16 + (c & 3) * 4;
    for (let g = 0; g < G; g++) {
      const base = (p * G + g) * L.group;
      let sum = 0;
      for (let q = 0, e = n * K + g * QUANT_GROUP; q < 8; q++, e += 4) {
        const o = base + q * 32 + at;
        const c0 = codes[e]!, c1 = codes[e + 1]!, c2 = codes[e + 2]!, c3 = codes[e + 3]!;
        sum += c0 + c1 + c2 + c3;
        bytes[o] = c0 & 255;
        bytes[o + 1] = c1 & 255;
        bytes[o + 2] = c2 & 255;
        bytes[o + 3] = c3 & 255;
      }
      u16[((base + L.scales) >> 1) + c] = scales[n * G + g]!;
      // the offset the GEMV's unsigned digits carry, taken off again per group (mvi): |sum| <= 4096
      u16[((base + corr) >> 1) + c] = sum & 0xffff;
    }
  }
}
