// Dense projection y = x·Wᵀ + b (the CPU hot loop) and embedding lookup, for f32/f16/bf16 weights
// and the q8/q4 group formats (runtime/quant.ts: rows dequantised exactly as its definition says).

import { type HostWeight, type QuantTensor, dequantizeRows, isQuant } from '../quant.ts';
import { f16ToF32, readF32, type Tensor } from '../tensor.ts';
import { checkLen } from './seq.ts';

// f16 bits -> f32, all 65536 patterns (256 KiB), built on first use: widening a row becomes a lookup.
let f16Table: Float32Array | null = null;
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/**
 * y[t, n] = sum_k x[t, k] * W[n, k] + bias[n].  x: [T, K] f32; W: [N, K] f32, f16 or bf16;
 * bias: [N] or null. Returns y: [T, N] f32 (written into `out` when given, which must hold T*N).
 */
export function linear(x: Float32Array, T: number, K: number, w: HostWeight, bias: Tensor | null, out?: Float32Array): Float32Array {
  const N = checkLinear(x, T, K, w, bias);
  const y = out ?? new Float32Array(T * N);
  checkLen('linear', 'out', y, T * N);
  const bv = bias ? readF32(bias, 0, N, new Float32Array(N)) : null;
  const q = isQuant(w);
  linearRows(x, T, K, q ? w.codes : w.data as Float32Array | Uint16Array, WEIGHT_CODE[w.dtype], w.dtype === 'f16' || q ? f16Lut() : null, bv, y, N, 0, N, q ? w.scales : null);
  return y;
}

/** Checks the operands of `linear`; returns N. */
export function checkLinear(x: Float32Array, T: number, K: number, w: HostWeight, bias: Tensor | null): number {
  if (w.shape.length !== 2 || w.shape[1] !== K) throw new RangeError(`linear: weight shape [${w.shape}] does not match K=${K}`);
  if (w.dtype === 'i32') throw new RangeError('linear: weight dtype i32 is not a float type');
  const N = w.shape[0];
  checkLen('linear', 'x', x, T * K);
  if (isQuant(w)) {
    checkLen('linear', 'weight codes', w.codes, w.dtype === 'q8' ? N * K : (N * K) / 2);
    checkLen('linear', 'weight scales', w.scales, (N * K) / 32);
  } else checkLen('linear', 'weight', w.data, N * K);
  if (bias) checkLen('linear', 'bias', bias.data, N);
  return N;
}

/** How `linearRows` reads W: 0 f32, 1 bf16 bits, 2 f16 bits (through the lookup table), 3 q8 and
 *  4 q4 codes (their f16 scales through the lookup table). */
export const WEIGHT_CODE = { f32: 0, bf16: 1, f16: 2, q8: 3, q4: 4, i32: -1 } as const;

/** The f16 -> f32 lookup table `linearRows` needs for f16 weights. */
export { f16Lut };

/**
 * Output columns [n0, n1) of y = x·Wᵀ + b, y: [T, N]. Self-contained — it reads nothing outside its
 * arguments — so worker threads can be made from its source text (runtime/cpu/pool.ts); every
 * output element is computed the same way whichever thread and column range computes it.
 *
 * Schedule: 2 rows of W × 4 rows of x per step, 8 independent accumulators, so each loaded weight
 * serves 4 tokens and each loaded activation 2 outputs. 16-bit rows are widened once per pair of
 * output rows into a scratch and then reused over all T rows. Sums, bias included, run in double
 * (JS numbers) and are rounded to f32 once, on store.
 */
export function linearRows(x: Float32Array, T: number, K: number, wData: Float32Array | Uint16Array | Int8Array | Uint8Array, wCode: number,
  lut: Float32Array | null, bias: Float32Array | null, y: Float32Array, N: number, n0: number, n1: number, scales: Uint16Array | null = null): void {
  const scratch = wCode !== 0 ? new Float32Array(2 * K) : null;
  const scratchBits = scratch ? new Uint32Array(scratch.buffer) : null;
  const T4 = T - (T % 4);
  for (let n = n0; n < n1; n += 2) {
    const pair = n + 1 < n1; // the last row of an odd range runs alone (its partner reads row n again)
    let W: Float32Array;
    let wa: number;
    let wb: number;
    if (scratch && wCode >= 3) {
      // q8/q4: value = code · f16(scale), groups of 32 along K (runtime/quant.ts; 32 written out
      // here because this function's source text runs alone in the worker threads)
      const G = K >> 5;
      for (let r = 0; r < (pair ? 2 : 1); r++) {
        for (let g = 0; g < G; g++) {
          const s = lut![scales![(n + r) * G + g]];
          const at = (n + r) * K + g * 32, o = r * K + g * 32;
          if (wCode === 3) for (let i = 0; i < 32; i++) scratch[o + i] = wData[at + i] * s;
          else {
            for (let i = 0; i < 32; i += 2) {
              const b = wData[(at + i) >> 1];
              scratch[o + i] = ((b & 15) - 8) * s;
              scratch[o + i + 1] = ((b >> 4) - 8) * s;
            }
          }
        }
      }
      W = scratch;
      wa = 0;
      wb = pair ? K : 0;
    } else if (scratch) {
      const src = wData as Uint16Array;
      const off = n * K;
      const count = (pair ? 2 : 1) * K;
      if (wCode === 1) {
        // bf16 -> f32 is a 16-bit shift; two values per 32-bit load (little-endian) when the row starts aligned
        const s32 = (src.byteOffset + off * 2) % 4 === 0 ? new Uint32Array(src.buffer, src.byteOffset + off * 2, count >> 1) : null;
        let i = 0;
        if (s32) {
          for (const half = count >> 1; i < half; i++) {
            const v = s32[i];
            scratchBits![2 * i] = v << 16;
            scratchBits![2 * i + 1] = v & 0xffff0000;
          }
          i *= 2;
        }
        for (; i < count; i++) scratchBits![i] = src[off + i] << 16;
      }
      else for (let i = 0; i < count; i++) scratch[i] = lut![src[off + i]];
      W = scratch;
      wa = 0;
      wb = pair ? K : 0;
    } else {
      W = wData as Float32Array;
      wa = n * K;
      wb = pair ? wa + K : wa;
    }
    const bn = bias ? bias[n] : 0, bm = bias && pair ? bias[n + 1] : 0;
    for (let t = 0; t < T4; t += 4) {
      const o0 = t * K, o1 = o0 + K, o2 = o1 + K, o3 = o2 + K;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let k = 0; k < K; k++) {
        const u = W[wa + k], v = W[wb + k];
        const x0 = x[o0 + k], x1 = x[o1 + k], x2 = x[o2 + k], x3 = x[o3 + k];
        a0 += x0 * u; a1 += x1 * u; a2 += x2 * u; a3 += x3 * u;
        b0 += x0 * v; b1 += x1 * v; b2 += x2 * v; b3 += x3 * v;
      }
      const r = t * N + n;
      y[r] = a0 + bn; y[r + N] = a1 + bn; y[r + 2 * N] = a2 + bn; y[r + 3 * N] = a3 + bn;
      if (pair) { y[r + 1] = b0 + bm; y[r + N + 1] = b1 + bm; y[r + 2 * N + 1] = b2 + bm; y[r + 3 * N + 1] = b3 + bm; }
    }
    for (let t = T4; t < T; t++) {
      // Leftover tokens: a 4-way unrolled dot product against both rows.
      const o = t * K;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      let k = 0;
      for (; k + 4 <= K; k += 4) {
        const x0 = x[o + k], x1 = x[o + k + 1], x2 = x[o + k + 2], x3 = x[o + k + 3];
        a0 += x0 * W[wa + k]; a1 += x1 * W[wa + k + 1]; a2 += x2 * W[wa + k + 2]; a3 += x3 * W[wa + k + 3];
        b0 += x0 * W[wb + k]; b1 += x1 * W[wb + k + 1]; b2 += x2 * W[wb + k + 2]; b3 += x3 * W[wb + k + 3];
      }
      for (; k < K; k++) { a0 += x[o + k] * W[wa + k]; b0 += x[o + k] * W[wb + k]; }
      y[t * N + n] = a0 + a1 + (a2 + a3) + bn;
      if (pair) y[t * N + n + 1] = b0 + b1 + (b2 + b3) + bm;
    }
  }
}

/**
 * y[t, n] = sum_k x[t, k] * W[k, n] + bias[n] for a weight stored [K, N] (GPT-2's Conv1D layout).
 * x: [T, K] f32; W: [K, N] f32, f16 or bf16; bias: [N] or null. Returns y: [T, N] f32.
 * Schedule: k outer (each weight row widened once), then rows, then n over a double accumulator,
 * so every sum runs in double in the order k = 0, 1, … and is rounded to f32 once.
 */
export function linearIn(x: Float32Array, T: number, K: number, w: Tensor, bias: Tensor | null): Float32Array {
  if (w.shape.length !== 2 || w.shape[0] !== K) throw new RangeError(`linearIn: weight shape [${w.shape}] does not match K=${K} (weight is [in, out])`);
  if (w.dtype === 'i32') throw new RangeError('linearIn: weight dtype i32 is not a float type');
  const N = w.shape[1];
  checkLen('linearIn', 'x', x, T * K);
  checkLen('linearIn', 'weight', w.data, K * N);
  if (bias) checkLen('linearIn', 'bias', bias.data, N);
  const acc = new Float64Array(T * N);
  if (bias) {
    const bv = readF32(bias, 0, N, new Float32Array(N));
    for (let t = 0; t < T; t++) acc.set(bv, t * N);
  }
  const row = new Float32Array(N);
  for (let k = 0; k < K; k++) {
    readF32(w, k * N, N, row);
    for (let t = 0; t < T; t++) {
      const xv = x[t * K + k];
      const o = t * N;
      for (let n = 0; n < N; n++) acc[o + n] += xv * row[n];
    }
  }
  return Float32Array.from(acc);
}

/** out[t, :] = W[ids[t], :] widened (or dequantised) to f32.  ids: [T]; W: [V, D]. Returns [T, D]. */
export function embedding(ids: Int32Array, w: HostWeight): Float32Array {
  if (w.shape.length !== 2) throw new RangeError(`embedding: weight shape [${w.shape}] is not [V, D]`);
  if (w.dtype === 'i32') throw new RangeError('embedding: weight dtype i32 is not a float type');
  const [V, D] = w.shape;
  const out = new Float32Array(ids.length * D);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id < 0 || id >= V) throw new RangeError(`embedding: token id ${id} at row ${t} is out of range for a vocabulary of ${V}`);
    if (isQuant(w)) dequantizeRows(w as QuantTensor, id, 1, out, t * D);
    else readF32(w, id * D, D, out, t * D);
  }
  return out;
}
