// Normalisations over the last dim: RMSNorm (BambaRMSNorm; also QK-norm over [T, heads, head_dim]
// as rows = T·heads), the gated BambaRMSNormGated that closes each Mamba mixer, and LayerNorm.

import { checkLen } from './seq.ts';

/**
 * For each row of h: [rows, D] and each run of `groupSize` features in it, writes
 * w * f32(part * rsqrt(mean(part^2) + eps)) into `out` (HF rounds to the input dtype before the
 * weight). Sums of squares run in double.
 */
function rmsRows(h: Float32Array, rows: number, D: number, groupSize: number, w: Float32Array, eps: number, out: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    for (let g0 = r * D; g0 < (r + 1) * D; g0 += groupSize) {
      let ss = 0;
      for (let i = 0; i < groupSize; i++) ss += h[g0 + i] * h[g0 + i];
      const inv = 1 / Math.sqrt(ss / groupSize + eps);
      const w0 = g0 - r * D;
      for (let i = 0; i < groupSize; i++) out[g0 + i] = w[w0 + i] * Math.fround(h[g0 + i] * inv);
    }
  }
}

/** HF BambaRMSNorm: x * rsqrt(mean(x^2) + eps) * w over each row.  x: [rows, D]; w: [D]. */
export function rmsnorm(x: Float32Array, rows: number, D: number, w: Float32Array, eps: number): Float32Array {
  checkLen('rmsnorm', 'x', x, rows * D);
  checkLen('rmsnorm', 'weight', w, D);
  const out = new Float32Array(rows * D);
  rmsRows(x, rows, D, D, w, eps, out);
  return out;
}

/**
 * HF BambaRMSNormGated (norm after gate): h = x * silu(z), rounded to f32; then RMSNorm over each
 * of `groups` equal parts of the D features (groups = 1: the whole row, which is what HF's
 * torch path does), times w.  x, z: [rows, D]; w: [D].
 */
export function rmsnormGated(x: Float32Array, z: Float32Array, rows: number, D: number, w: Float32Array, eps: number, groups = 1): Float32Array {
  checkLen('rmsnormGated', 'x', x, rows * D);
  checkLen('rmsnormGated', 'z', z, rows * D);
  checkLen('rmsnormGated', 'weight', w, D);
  if (!Number.isInteger(groups) || groups < 1 || D % groups !== 0) throw new RangeError(`rmsnormGated: ${groups} groups do not divide D=${D}`);
  const h = new Float32Array(rows * D);
  for (let i = 0; i < h.length; i++) {
    const g = z[i];
    h[i] = x[i] * Math.fround(g / (1 + Math.exp(-g)));
  }
  const out = new Float32Array(rows * D);
  rmsRows(h, rows, D, D / groups, w, eps, out);
  return out;
}

/**
 * PyTorch LayerNorm over each row: (x − mean) / sqrt(var + eps) · w + b, with the biased variance
 * (divided by D). Mean and variance run in double, the variance from the centred values (two
 * passes, no cancellation).  x: [rows, D]; w: [D]; b: [D] or null (no bias).
 */
export function layernorm(x: Float32Array, rows: number, D: number, w: Float32Array, b: Float32Array | null, eps: number): Float32Array {
  checkLen('layernorm', 'x', x, rows * D);
  checkLen('layernorm', 'weight', w, D);
  if (b) checkLen('layernorm', 'bias', b, D);
  const out = new Float32Array(rows * D);
  for (let r0 = 0; r0 < rows * D; r0 += D) {
    let sum = 0;
    for (let i = 0; i < D; i++) sum += x[r0 + i];
    const mean = sum / D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += (x[r0 + i] - mean) * (x[r0 + i] - mean);
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) out[r0 + i] = (x[r0 + i] - mean) * inv * w[i] + (b ? b[i] : 0);
  }
  return out;
}
