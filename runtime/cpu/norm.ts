// RMS normalisations: BambaRMSNorm and the gated BambaRMSNormGated that closes each Mamba mixer.

import { checkLen } from './seq.ts';

/**
 * For each row of h: [T, D] and each run of `groupSize` features in it, writes
 * w * f32(part * rsqrt(mean(part^2) + eps)) into `out` (HF rounds to the input dtype before the
 * weight). Sums of squares run in double.
 */
function rmsRows(h: Float32Array, T: number, D: number, groupSize: number, w: Float32Array, eps: number, out: Float32Array): void {
  for (let r = 0; r < T; r++) {
    for (let g0 = r * D; g0 < (r + 1) * D; g0 += groupSize) {
      let ss = 0;
      for (let i = 0; i < groupSize; i++) ss += h[g0 + i] * h[g0 + i];
      const inv = 1 / Math.sqrt(ss / groupSize + eps);
      const w0 = g0 - r * D;
      for (let i = 0; i < groupSize; i++) out[g0 + i] = w[w0 + i] * Math.fround(h[g0 + i] * inv);
    }
  }
}

/** HF BambaRMSNorm: x * rsqrt(mean(x^2) + eps) * w over each row.  x: [T, D]; w: [D]. */
export function rmsnorm(x: Float32Array, T: number, D: number, w: Float32Array, eps: number): Float32Array {
  checkLen('rmsnorm', 'x', x, T * D);
  checkLen('rmsnorm', 'weight', w, D);
  const out = new Float32Array(T * D);
  rmsRows(x, T, D, D, w, eps, out);
  return out;
}

/**
 * HF BambaRMSNormGated (norm after gate): h = x * silu(z), rounded to f32; then RMSNorm over each
 * of `groups` equal parts of the D features (groups = 1: the whole row, which is what HF's
 * torch path does), times w.  x, z: [T, D]; w: [D].
 */
export function rmsnormGated(x: Float32Array, z: Float32Array, T: number, D: number, w: Float32Array, eps: number, groups = 1): Float32Array {
  checkLen('rmsnormGated', 'x', x, T * D);
  checkLen('rmsnormGated', 'z', z, T * D);
  checkLen('rmsnormGated', 'weight', w, D);
  if (!Number.isInteger(groups) || groups < 1 || D % groups !== 0) throw new RangeError(`rmsnormGated: ${groups} groups do not divide D=${D}`);
  const h = new Float32Array(T * D);
  for (let i = 0; i < h.length; i++) {
    const g = z[i];
    h[i] = x[i] * Math.fround(g / (1 + Math.exp(-g)));
  }
  const out = new Float32Array(T * D);
  rmsRows(h, T, D, D / groups, w, eps, out);
  return out;
}
