// Activation quantisation (W4A8 / W8A8): `LoadOptions.activations: 'q8'`. A product over q8/q4
// weights first rounds its input row to 8 bits per group of 32 along K, as llama.cpp's CPU kernels
// (Q8_0 activations) and ONNX Runtime's MatMulNBits at accuracy level 4 do, so that the fast kernels
// multiply integers only (wasm: one relaxed-SIMD dot per 16 weights). The rounding is part of the
// format's definition, and every target rounds the same way, bit for bit:
//
//   m = max |x_i| over the group (f32). m < 2^-96 (or 0): the group is zeros.
//   Else s = 2^e, the least power of two with m <= 127 · s, and q_i = x_i / s rounded to the nearest
//   integer, ties to even (|q_i| <= 127); the product reads x_i as q_i · s.
//
// A power-of-two scale makes each step exact on every target (no division: e comes from m's exponent
// bits, x_i / s is a multiplication by 2^-e, and q_i · s a product that rounds nothing), which a
// scale of m / 127 would not be in WGSL (whose division may be off by 2.5 ulp). It costs at most one
// bit against m / 127 (q spans 64..127 at a group's maximum). A group holding a non-finite value is
// not rounded (it reaches the product as it is: NaN and infinities propagate as in the f32 product).
// docs/QUANT.md gives the quality cost on the trained tiny-bamba-a.

import { RuntimeError } from './errors.ts';
import { QUANT_GROUP } from './quant.ts';
import type { QuantPlan } from './quantplan.ts';
import { RUN_TARGETS, type RunTarget } from './targets.ts';

/** What a product over quantised weights reads its input as: f32 (exact, the default) or 8-bit
 *  groups (see the header). */
export type ActivationFormat = 'f32' | 'q8';
export const ACTIVATION_FORMATS: readonly ActivationFormat[] = ['f32', 'q8'];

/** The largest |q|. */
export const ACT_QMAX = 127;
/** m below 2^-96 (its f32 bits below this) makes a zero group. */
export const ACT_ZERO_BITS = (127 - 96) << 23;

const f = new Float32Array(1);
const u = new Uint32Array(f.buffer);

/** The biased f32 exponent of s = 2^e for a group maximum m (f32 bits mBits >= ACT_ZERO_BITS, finite):
 *  e = exponent of m rounded up past 127/64 of its binade, less 6. */
export function actScaleExponent(mBits: number): number {
  // m's mantissa above 0x7e0000 (m > 127/64 · 2^E) carries into the exponent
  return ((mBits + 0x1ffff) >>> 23) - 6;
}

/** Nearest integer, ties to even (f32x4.nearest, WGSL round, rintf); zero as +0 (q is an integer). */
export function roundEven(v: number): number {
  const r = Math.round(v);
  return (r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r) + 0;
}

/**
 * x's T rows of K (row t at x[off + t·ld]) as the product reads them, written to out's rows (row t
 * at out[outOff + t·K]; out may be x with ld = K, in place). K a multiple of 32.
 */
export function quantizeActivations(x: Float32Array, off: number, ld: number, T: number, K: number, out: Float32Array, outOff = 0): void {
  for (let t = 0; t < T; t++) {
    const src = off + t * ld, dst = outOff + t * K;
    for (let g = 0; g < K; g += QUANT_GROUP) {
      let m = 0;
      for (let i = 0; i < QUANT_GROUP; i++) {
        const a = Math.abs(x[src + g + i]!);
        // NaN fails every comparison: caught below
        m = a > m || a !== a ? a : m;
      }
      f[0] = m;
      const bits = u[0]!;
      if (!(m < Infinity)) {
        for (let i = 0; i < QUANT_GROUP; i++) out[dst + g + i] = x[src + g + i]!;
        continue;
      }
      if (bits < ACT_ZERO_BITS) {
        out.fill(0, dst + g, dst + g + QUANT_GROUP);
        continue;
      }
      const eb = actScaleExponent(bits);
      u[0] = (254 - eb) << 23;
      const inv = f[0]!;
      u[0] = eb << 23;
      const s = f[0]!;
      // x · 2^-e and q · 2^e are exact in f32 (powers of two; |x · 2^-e| <= 127)
      for (let i = 0; i < QUANT_GROUP; i++) out[dst + g + i] = roundEven(Math.fround(x[src + g + i]! * inv)) * s;
    }
  }
}

/** LoadOptions.activations checked before anything is read: a format this backend runs, and only
 *  where some product's weights are quantised (it changes nothing else). */
export function checkActivations(opts: { readonly activations?: unknown }, target: RunTarget, plan: QuantPlan): void {
  const a = opts.activations;
  if (a === undefined || a === 'f32') return;
  if (!ACTIVATION_FORMATS.includes(a as ActivationFormat)) throw new RuntimeError('RT303', [`activations ${String(a)}`, `give one of: ${ACTIVATION_FORMATS.join(', ')}`]);
  if (!target.activations.includes(a as ActivationFormat)) {
    throw new RuntimeError('RT303', [`activations ${String(a)} on the ${target.name} backend`, `8-bit activations run on the ${RUN_TARGETS.filter((t) => (t.activations as readonly string[]).includes(String(a))).map((t) => t.name).join(' and ')} backends; leave activations at f32 here`]);
  }
  if (!plan.formats.size) throw new RuntimeError('RT303', [`activations ${String(a)} with no quantised weights`, 'it rounds the inputs of products over q8/q4 weights: quantise them too (quantize: \'q4\', --quantize q4), or load a quantised checkpoint']);
}
