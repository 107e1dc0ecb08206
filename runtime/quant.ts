// Quantised weights: q8 and q4, symmetric integer codes in groups of 32 consecutive elements along K
// (the input dim, the last of an [out = N, in = K] weight), one f16 scale per group. The reference
// definition every backend must match: value = code · f16ToF32(scale), computed in f32 (exact: a
// code has at most 8 bits and a scale 11, so the product fits f32's 24).
//
// In memory (what a backend receives at upload):
//   scales: Uint16Array of f16 bits, [N, K/32]
//   q8 codes: Int8Array [N·K], codes in [-128, 127]
//   q4 codes: Uint8Array [N·K/2], two codes a byte, element 2i in the low nibble, each stored as
//     code + 8 (0..15): four bytes read little-endian as a u32 hold 8 consecutive codes, element i at
//     bits 4i..4i+3 — compressed-tensors' `pack-quantized` int32 order.
//
// Scale rule: q8 takes max|w|/127; q4 searches the scales max|w|/d for d in Q4_DIVISORS, each
// rounded to f16 first, and keeps the one with the smallest squared error over the group (ties: the
// first). Measured on tiny-bamba-a's product weights (relative RMS error of q4): max|w|/7 0.0982,
// max|w|/8 0.0949, the search over 7..8 in steps of 1/4 0.0890, over 6..8 or 5..8 0.0888 (not
// worth the extra candidates). A weight whose K is not a
// multiple of 32, or that holds a group whose scale overflows f16 (max|w| > 65504·qmax), or
// non-finite values, is not quantised: `quantize` returns the reason and the caller keeps the
// tensor as stored (and reports it).

import { type Tensor, f16ToF32, f32ToF16, numel, readF32 } from './tensor.ts';

export type QuantDType = 'q8' | 'q4';
export const QUANT_DTYPES: readonly QuantDType[] = ['q8', 'q4'];

/** Elements per group (one scale each), along K. */
export const QUANT_GROUP = 32;

export const QUANT_BITS: Readonly<Record<QuantDType, number>> = { q8: 8, q4: 4 };

/** A quantised [N, K] weight, as backends receive it. */
export interface QuantTensor {
  readonly dtype: QuantDType;
  readonly shape: readonly [number, number];
  /** q8: Int8Array [N·K]; q4: Uint8Array [N·K/2] (code + 8, element 2i in the low nibble). */
  readonly codes: Int8Array | Uint8Array;
  /** f16 bits, [N, K/32]. */
  readonly scales: Uint16Array;
}

/** A weight as a backend receives it: a float tensor as stored, or quantised. */
export type HostWeight = Tensor | QuantTensor;

export function isQuant(w: HostWeight): w is QuantTensor {
  return w.dtype === 'q8' || w.dtype === 'q4';
}

/** A tensor quantised, or the reason it stays as stored. */
export type QuantResult = { readonly q: QuantTensor } | { readonly reason: string };

/** q4 candidate divisors of max|w| (the search); q8 uses 127 alone. */
export const Q4_DIVISORS: readonly number[] = [7, 7.25, 7.5, 7.75, 8];

const RANGE: Readonly<Record<QuantDType, { lo: number; hi: number; divisors: readonly number[] }>> = {
  q8: { lo: -128, hi: 127, divisors: [127] },
  q4: { lo: -8, hi: 7, divisors: Q4_DIVISORS },
};

/** Why a weight of `shape` cannot take a group format, or null. */
export function shapeReason(shape: readonly number[]): string | null {
  if (shape.length !== 2) return `rank ${shape.length}, not a [N, K] matrix`;
  if (shape[1]! % QUANT_GROUP !== 0) return `K = ${shape[1]} is not a multiple of ${QUANT_GROUP}`;
  return null;
}

/** Bytes of a quantised [N, K] weight: codes plus scales. */
export function quantBytes(dtype: QuantDType, N: number, K: number): number {
  return (N * K * QUANT_BITS[dtype]) / 8 + (N * K / QUANT_GROUP) * 2;
}

/** Bits a weight costs on average (codes plus its share of the scale): q8 8.5, q4 4.5. */
export function quantBitsPerWeight(dtype: QuantDType): number {
  return QUANT_BITS[dtype] + 16 / QUANT_GROUP;
}

/**
 * Quantises a float tensor (f32, bf16 or f16) of shape [N, K]. `divisors` overrides the scale
 * candidates (for measuring rules); the default is the format's rule above.
 */
export function quantize(t: Tensor, dtype: QuantDType, divisors?: readonly number[]): QuantResult {
  if (t.dtype === 'i32') return { reason: 'an integer tensor' };
  const why = shapeReason(t.shape);
  if (why) return { reason: why };
  const [N, K] = t.shape as [number, number];
  const { lo, hi } = RANGE[dtype];
  const cands = Float64Array.from(divisors ?? RANGE[dtype].divisors);
  const G = K / QUANT_GROUP;
  const scales = new Uint16Array(N * G);
  const codes = new Int8Array(N * K);
  const row = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    readF32(t, n * K, K, row);
    const bad = quantizeRow(row, G, cands, lo, hi, codes, n * K, scales, n * G);
    if (bad < 0) continue;
    const base = bad * QUANT_GROUP, group = row.subarray(base, base + QUANT_GROUP);
    const i = group.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) return { reason: `non-finite value ${group[i]} at [${n}, ${base + i}]` };
    const amax = group.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    return { reason: `group [${n}, ${base}..${base + QUANT_GROUP - 1}] has max|w| = ${amax}, beyond an f16 scale's range` };
  }
  return { q: { dtype, shape: [N, K], codes: dtype === 'q8' ? codes : packNibbles(codes), scales } };
}

/** One row's G groups (the rule above) into `codes` at `at` and `scales` at `sAt`; returns -1, or
 *  the first group that holds a non-finite value or has no finite scale. Tight and monomorphic (the
 *  load's hot loop): each candidate's squared error is summed in order in f64, and a sum already
 *  past the best stops there (the terms are >= 0, so it could not win: the same choice as the full
 *  sums make); codes are written once, for the chosen scale. */
function quantizeRow(row: Float32Array, G: number, cands: Float64Array, lo: number, hi: number,
  codes: Int8Array, at: number, scales: Uint16Array, sAt: number): number {
  const C = cands.length;
  for (let g = 0; g < G; g++) {
    const base = g * QUANT_GROUP, end = base + QUANT_GROUP;
    let amax = 0;
    for (let i = base; i < end; i++) {
      const v = row[i]!;
      if (v - v !== 0) return g;
      const a = v < 0 ? -v : v;
      if (a > amax) amax = a;
    }
    if (amax === 0) continue; // scale 0, codes 0
    let bestBits = 0, bestS = 0, bestErr = Infinity;
    // one candidate (q8): it is the choice if its scale is finite, whatever its error
    if (C === 1) {
      bestBits = f32ToF16(amax / cands[0]!);
      bestS = F16_TO_F32[bestBits]!;
      if (bestS - bestS === 0) bestErr = 0;
    }
    for (let j = 0; j < C && C > 1; j++) {
      const bits = f32ToF16(amax / cands[j]!);
      const s = F16_TO_F32[bits]!;
      if (s - s !== 0) continue;
      let err = 0;
      if (s === 0) {
        for (let i = base; i < end; i++) err += row[i]! * row[i]!;
      } else {
        for (let i = base; i < end; i++) {
          const v = row[i]!;
          const x = v / s;
          const r = x < 0 ? -Math.floor(0.5 - x) : Math.floor(x + 0.5);
          const e = v - (r < lo ? lo : r > hi ? hi : r) * s;
          err += e * e;
          if (err >= bestErr) break;
        }
      }
      if (err < bestErr) {
        bestErr = err;
        bestBits = bits;
        bestS = s;
      }
    }
    if (bestErr === Infinity) return g;
    scales[sAt + g] = bestBits;
    if (bestS === 0) continue;
    for (let i = base; i < end; i++) {
      const x = row[i]! / bestS;
      const r = x < 0 ? -Math.floor(0.5 - x) : Math.floor(x + 0.5);
      codes[at + i] = r < lo ? lo : r > hi ? hi : r;
    }
  }
  return -1;
}

/** Every f16 bit pattern's value (f16ToF32, as a table: the scale search reads one per candidate). */
export const F16_TO_F32 = Float32Array.from({ length: 65536 }, (_, h) => f16ToF32(h));

/** Signed 4-bit codes (one a byte) → the q4 layout: code + 8, element 2i in the low nibble. */
export function packNibbles(codes: Int8Array): Uint8Array {
  const out = new Uint8Array(codes.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = ((codes[2 * i]! + 8) & 15) | (((codes[2 * i + 1]! + 8) & 15) << 4);
  return out;
}

/** The code of element `i` (row-major over [N, K]). */
export function codeAt(q: QuantTensor, i: number): number {
  if (q.dtype === 'q8') return (q.codes as Int8Array)[i]!;
  const b = (q.codes as Uint8Array)[i >>> 1]!;
  return ((i & 1 ? b >>> 4 : b) & 15) - 8;
}

/** Rows [row0, row0 + rows) of `q` as f32 [rows, K], written into `out` at `outOffset` when given. */
export function dequantizeRows(q: QuantTensor, row0: number, rows: number, out?: Float32Array, outOffset = 0): Float32Array {
  const [N, K] = q.shape;
  if (row0 < 0 || rows < 0 || row0 + rows > N) throw new RangeError(`dequantizeRows: rows [${row0}, ${row0 + rows}) outside [0, ${N})`);
  const y = out ?? new Float32Array(rows * K);
  if (y.length < outOffset + rows * K) throw new RangeError(`dequantizeRows: out holds ${y.length}, needs ${outOffset + rows * K}`);
  const G = K / QUANT_GROUP;
  for (let r = 0; r < rows; r++) {
    const n = row0 + r;
    for (let g = 0; g < G; g++) {
      const s = f16ToF32(q.scales[n * G + g]!);
      const at = n * K + g * QUANT_GROUP;
      const o = outOffset + r * K + g * QUANT_GROUP;
      if (q.dtype === 'q8') {
        const c = q.codes as Int8Array;
        for (let i = 0; i < QUANT_GROUP; i++) y[o + i] = c[at + i]! * s;
      } else {
        const c = q.codes as Uint8Array;
        for (let i = 0; i < QUANT_GROUP; i += 2) {
          const b = c[(at + i) >>> 1]!;
          y[o + i] = ((b & 15) - 8) * s;
          y[o + i + 1] = ((b >>> 4) - 8) * s;
        }
      }
    }
  }
  return y;
}

/** Concatenates quantised weights of one dtype and K along N (rows), without dequantising. */
export function concatQuant(parts: readonly QuantTensor[]): QuantTensor {
  const first = parts[0];
  if (!first) throw new RangeError('concatQuant: no parts');
  const K = first.shape[1];
  for (const p of parts) {
    if (p.dtype !== first.dtype || p.shape[1] !== K) throw new RangeError(`concatQuant: part ${p.dtype} [${p.shape}] does not match ${first.dtype} [${first.shape}]`);
  }
  const N = parts.reduce((a, p) => a + p.shape[0], 0);
  const codes = first.dtype === 'q8' ? new Int8Array(N * K) : new Uint8Array((N * K) / 2);
  const scales = new Uint16Array((N * K) / QUANT_GROUP);
  let c = 0;
  let s = 0;
  for (const p of parts) {
    codes.set(p.codes as never, c);
    scales.set(p.scales, s);
    c += p.codes.length;
    s += p.scales.length;
  }
  return { dtype: first.dtype, shape: [N, K], codes, scales };
}

/** The codes as compressed-tensors' `weight_packed`: int32 [N, K·bits/32], codes offset by
 *  2^(bits−1) to unsigned and packed from the low bits up (little-endian words). */
export function toPackedInt32(q: QuantTensor): Int32Array {
  const bytes = new Uint8Array(q.codes.length);
  if (q.dtype === 'q4') bytes.set(q.codes as Uint8Array);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = ((q.codes as Int8Array)[i]! + 128) & 255;
  return littleEndianWords(bytes);
}

/** The inverse of `toPackedInt32`: `packed` int32 [N, K·bits/32] and f16 `scales` [N, K/32]. */
export function fromPackedInt32(dtype: QuantDType, shape: readonly [number, number], packed: Int32Array, scales: Uint16Array): QuantTensor {
  const [N, K] = shape;
  const bytes = new Uint8Array(packed.length * 4);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < packed.length; i++) dv.setInt32(i * 4, packed[i]!, true);
  if (bytes.length !== (N * K * QUANT_BITS[dtype]) / 8) throw new RangeError(`fromPackedInt32: ${packed.length} words for ${dtype} [${N}, ${K}]`);
  if (scales.length !== (N * K) / QUANT_GROUP) throw new RangeError(`fromPackedInt32: ${scales.length} scales for [${N}, ${K}]`);
  const codes = dtype === 'q4' ? bytes : Int8Array.from(bytes, (b) => b - 128);
  return { dtype, shape: [N, K], codes, scales };
}

function littleEndianWords(bytes: Uint8Array): Int32Array {
  const out = new Int32Array(bytes.length / 4);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < out.length; i++) out[i] = dv.getInt32(i * 4, true);
  return out;
}

/** Bytes a quantised tensor holds. */
export function quantTensorBytes(q: QuantTensor): number {
  return q.codes.byteLength + q.scales.byteLength;
}

/** Elements of a quantised tensor. */
export function quantNumel(q: QuantTensor): number {
  return numel(q.shape);
}
