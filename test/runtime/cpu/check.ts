// Test helpers for the CPU kernels: a seeded PRNG, random f32 inputs and a tolerance check whose
// failure names the first differing index, both values and the max error.

import { expect } from 'vitest';
import { prng } from '../../helpers/random.ts';

export { prng };

/** n values uniform in [lo, hi), as f32. */
export function uniform(rand: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

export interface Tol {
  readonly atol: number;
  readonly rtol: number;
}

/** fp32 kernels against double references: |got - ref| <= 1e-5 * (1 + |ref|). */
export const F32: Tol = { atol: 1e-5, rtol: 1e-5 };

/**
 * Passes when every |got[i] - ref[i]| <= atol + rtol * |ref[i]| (NaN only matches NaN). On failure
 * the message gives the count, the first offending index with both values, and the max error.
 */
export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tol, what: string): void {
  expect(got.length, `${what}: length`).toBe(ref.length);
  let bad = 0;
  let first = -1;
  let maxErr = 0;
  let maxAt = -1;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i], r = ref[i];
    const err = Number.isNaN(r) ? (Number.isNaN(g) ? 0 : Infinity) : Math.abs(g - r);
    const ok = Number.isNaN(r) ? Number.isNaN(g) : err <= tol.atol + tol.rtol * Math.abs(r);
    const e = Number.isNaN(err) ? Infinity : err;
    if (maxAt < 0 || e > maxErr) { maxErr = e; maxAt = i; }
    if (!ok) {
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad > 0) {
    throw new Error(
      `${what}: ${bad} of ${ref.length} elements outside atol ${tol.atol} + rtol ${tol.rtol}·|ref|; ` +
      `first at [${first}]: got ${got[first]}, want ${ref[first]}; max abs err ${maxErr} at [${maxAt}] ` +
      `(got ${got[maxAt]}, want ${ref[maxAt]})`,
    );
  }
}

/** Copies of every array in a list (states are updated in place by the kernels). */
export function clones(xs: readonly Float32Array[]): Float32Array[] {
  return xs.map((x) => new Float32Array(x));
}

/** max |got − ref| / (max |ref| + 1e-6), returned; beyond `rtol` it throws with the worst values. */
export function relError(got: Float32Array, ref: Float32Array, rtol: number, what: string): number {
  expect(got.length, what).toBe(ref.length);
  let err = 0, scale = 0, at = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]!));
    const d = Math.abs(got[i]! - ref[i]!);
    if (!(d <= err)) { err = d; at = i; }
  }
  const rel = err / (scale + 1e-6);
  if (!(rel <= rtol)) throw new Error(`${what}: max error ${err} (${rel.toExponential(2)} of max |ref| ${scale}) at ${at}: got ${got[at]}, want ${ref[at]}`);
  return rel;
}
