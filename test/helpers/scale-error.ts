// The kernels' tolerance against the CPU reference, relative to the output's scale.

import { expect } from 'vitest';

/** max |got − ref| / (max |ref| + 1e-6), returned; beyond `rtol` it throws with the first largest
 *  difference. */
export function scaleError(got: Float32Array, ref: Float32Array, rtol: number, what: string): number {
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
