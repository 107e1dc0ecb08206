// The wasm backend's weight packing loops (runtime/wasm/kernels.ts `pack`, `packQuant` place the
// results in the memory): plain typed-array loops, one per element width, each a small monomorphic
// function writing its panels in order (the load's hot path: every product weight passes here once).

import { QUANT_GROUP } from '../quant.ts';

/** W [N, K] (`transposed`: given as [K, N]) into panels [P][K][NR]: panel p holds W[p·NR + c, k] at
 *  p·K·NR + k·NR + c. Elements are copied as bits (u32 for f32, u16 for bf16); padding columns past
 *  N are left as they are. */
export function packPanels(dst: Uint32Array | Uint16Array, src: Uint32Array | Uint16Array, N: number, K: number, NR: number, transposed: boolean): void {
  if (dst instanceof Uint32Array) (transposed ? panelsT32 : panels32)(dst, src as Uint32Array, N, K, NR);
  else (transposed ? panelsT16 : panels16)(dst, src as Uint16Array, N, K, NR);
}

// panel by panel, k by k: the writes run in order, the reads along NR rows at once
function panels32(dst: Uint32Array, src: Uint32Array, N: number, K: number, NR: number): void {
  for (let n0 = 0, o = 0; n0 < N; n0 += NR) {
    const m = Math.min(NR, N - n0);
    if (m < NR) return tail(dst, src, n0, m, K, NR);
    for (let k = 0, i = n0 * K; k < K; k++, i++) {
      for (let c = 0, j = i; c < NR; c++, j += K) dst[o++] = src[j]!;
    }
  }
}

function panels16(dst: Uint16Array, src: Uint16Array, N: number, K: number, NR: number): void {
  for (let n0 = 0, o = 0; n0 < N; n0 += NR) {
    const m = Math.min(NR, N - n0);
    if (m < NR) return tail(dst, src, n0, m, K, NR);
    for (let k = 0, i = n0 * K; k < K; k++, i++) {
      for (let c = 0, j = i; c < NR; c++, j += K) dst[o++] = src[j]!;
    }
  }
}

/** The last panel's m < NR columns (its padding columns left as they are). */
function tail(dst: Uint32Array | Uint16Array, src: Uint32Array | Uint16Array, n0: number, m: number, K: number, NR: number): void {
  for (let k = 0; k < K; k++) {
    for (let c = 0; c < m; c++) dst[n0 * K + k * NR + c] = src[(n0 + c) * K + k]!;
  }
}

/** Transposed: row k of the [K, N] source spreads over the panels in runs of NR columns. */
function panelsT32(dst: Uint32Array, src: Uint32Array, N: number, K: number, NR: number): void {
  for (let k = 0; k < K; k++) {
    for (let n = 0, i = k * N; n < N; n += NR) {
      const o = n * K + k * NR, m = Math.min(NR, N - n);
      for (let c = 0; c < m; c++) dst[o + c] = src[i + n + c]!;
    }
  }
}

function panelsT16(dst: Uint16Array, src: Uint16Array, N: number, K: number, NR: number): void {
  for (let k = 0; k < K; k++) {
    for (let n = 0, i = k * N; n < N; n += NR) {
      const o = n * K + k * NR, m = Math.min(NR, N - n);
      for (let c = 0; c < m; c++) dst[o + c] = src[i + n + c]!;
    }
  }
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
