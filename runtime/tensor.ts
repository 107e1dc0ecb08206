// Host tensors: a dtype, a shape and a typed array. Weights keep their checkpoint dtype
// (bf16/f16 stay 16-bit in memory); kernels widen rows to f32 as they read them.

export type DType = 'f32' | 'f16' | 'bf16' | 'i32';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, bf16: 2, i32: 4 };

export type TensorData = Float32Array | Uint16Array | Int32Array;
/** Memory for a tensor read as stored: an ArrayBuffer (or SharedArrayBuffer) of at least `bytes`,
 *  which the tensor's typed array views from offset 0. */
export type TensorAlloc = (bytes: number) => ArrayBufferLike;

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function f32Tensor(shape: readonly number[], data?: Float32Array): Tensor {
  return { dtype: 'f32', shape, data: data ?? new Float32Array(numel(shape)) };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bf16 bits -> f32 (exact). */
export function bf16ToF32(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** f32 -> bf16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bf16 bits -> the bits of f32 values (exact), element by element. */
export function widenBf16(src: Uint16Array, dst: Uint32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = src[i]! << 16;
}

/** The bits of f32 values -> bf16 bits, to nearest with ties away from zero, element by element:
 *  one integer add a value (a wasm kernel's few instructions a quad; runtime/program.ts
 *  withSsmState's states). Nearest even (f32ToBf16) differs only on exact ties, one value in 65536;
 *  a NaN that arithmetic makes (quiet, its payload in the top bits) stays a NaN. */
export function roundBf16(src: Uint32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = (src[i]! + 0x8000) >>> 16;
}

/** IEEE half bits -> f32 (exact). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 -> IEEE half bits, round to nearest even. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** Widens `count` elements of a float tensor starting at `offset` into `out` (f32). */
export function readF32(t: Tensor, offset: number, count: number, out: Float32Array, outOffset = 0): Float32Array {
  const d = t.data;
  if (t.dtype === 'f32') {
    out.set((d as Float32Array).subarray(offset, offset + count), outOffset);
  } else if (t.dtype === 'bf16') {
    widenBf16((d as Uint16Array).subarray(offset, offset + count), new Uint32Array(out.buffer, out.byteOffset + outOffset * 4, count));
  } else if (t.dtype === 'f16') {
    const src = d as Uint16Array;
    for (let i = 0; i < count; i++) out[outOffset + i] = f16ToF32(src[offset + i]!);
  } else {
    const src = d as Int32Array;
    for (let i = 0; i < count; i++) out[outOffset + i] = src[offset + i]!;
  }
  return out;
}

/** The whole tensor as f32 (a copy unless it already is f32). */
export function toF32(t: Tensor): Float32Array {
  if (t.dtype === 'f32') return t.data as Float32Array;
  return readF32(t, 0, numel(t.shape), new Float32Array(numel(t.shape)));
}

/** Narrows f32 values to a tensor of `dtype`. */
export function fromF32(values: Float32Array, shape: readonly number[], dtype: DType): Tensor {
  if (dtype === 'f32') return { dtype, shape, data: values };
  if (dtype === 'i32') return { dtype, shape, data: Int32Array.from(values) };
  const out = new Uint16Array(values.length);
  const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]!);
  return { dtype, shape, data: out };
}
