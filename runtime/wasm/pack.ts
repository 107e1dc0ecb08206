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

/** Byte offsets within one packed q8/q4 group (codegen/wasm/kernels.ts QUANT_LAYOUT). */
export interface QuantGroupLayout {
  readonly group: number;
  readonly scales: number;
  readonly corr: number;
}

/**
 * q8/q4 codes [N, K] and f16 scale bits into panels of 8 columns of groups (runtime/wasm/kernels.ts
 * packQuant documents the layout): `bytes`, `f32`, `i32` view the zeroed destination; `f16` maps
 * scale bits to values; `offset` is XQ_OFFSET. q4 padding columns get code 0 (stored 8).
 */
export function packQuantPanels(q4: boolean, codes: Int8Array | Uint8Array, scales: Uint16Array, N: number, K: number,
  L: QuantGroupLayout, bytes: Uint8Array, f32: Float32Array, i32: Int32Array, f16: Float32Array, offset: number): void {
  const G = K / QUANT_GROUP, panels = Math.ceil(N / 8);
  if (q4) quantPanels4(codes as Uint8Array, scales, N, K, G, L, bytes, f32, i32, f16, offset);
  else quantPanels8(codes as Int8Array, scales, N, K, G, L, bytes, f32, i32, f16, offset);
  if (q4 && N % 8) {
    for (let g = 0; g < G; g++) {
      const base = ((panels - 1) * G + g) * L.group;
      for (let c = N % 8; c < 8; c++) {
        for (let i = 0; i < QUANT_GROUP; i++) bytes[base + (i >> 2) * 16 + (c & 3) * 4 + (i & 3)]! |= 8 << (4 * (c >> 2));
      }
    }
  }
}

/** q4: element i of a group at byte q·16 + (c&3)·4 + j (q = i>>2, j = i&3), column c's nibble half c>>2. */
function quantPanels4(codes: Uint8Array, scales: Uint16Array, N: number, K: number, G: number, L: QuantGroupLayout,
  bytes: Uint8Array, f32: Float32Array, i32: Int32Array, f16: Float32Array, offset: number): void {
  for (let n = 0; n < N; n++) {
    const p = n >> 3, c = n & 7, shift = 4 * (c >> 2), cc4 = (c & 3) * 4;
    for (let g = 0; g < G; g++) {
      const base = (p * G + g) * L.group;
      let sum = 0;
      // 16 bytes hold the group's 32 codes, element 2b in the low nibble of byte b
      for (let b = 0, e = (n * K + g * QUANT_GROUP) >> 1; b < 16; b++) {
        const v = codes[e + b]!, lo = v & 15, hi = v >> 4;
        sum += lo + hi - 16;
        const o = base + (b >> 1) * 16 + cc4 + ((b & 1) << 1);
        bytes[o] |= lo << shift;
        bytes[o + 1] |= hi << shift;
      }
      f32[((base + L.scales) >> 2) + c] = f16[scales[n * G + g]!]!;
      // the offset the GEMV's activation digits carry, taken off again per group (mvi)
      i32[((base + L.corr) >> 2) + c] = Math.imul(sum, offset);
    }
  }
}

/** q8: element i of a group at byte q·32 + half·16 + (c&3)·4 + j. */
function quantPanels8(codes: Int8Array, scales: Uint16Array, N: number, K: number, G: number, L: QuantGroupLayout,
  bytes: Uint8Array, f32: Float32Array, i32: Int32Array, f16: Float32Array, offset: number): void {
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
      f32[((base + L.scales) >> 2) + c] = f16[scales[n * G + g]!]!;
      i32[((base + L.corr) >> 2) + c] = Math.imul(sum, offset);
    }
  }
}
