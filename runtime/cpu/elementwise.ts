// Elementwise CPU kernels on f32 activations: activations (SiLU, softplus, GELU), clamp, and
// broadcasting add/mul.

/** x * sigmoid(x), written as x / (1 + e^-x) (for x -> -inf this gives -0, as torch does). */
export function silu(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    out[i] = v / (1 + Math.exp(-v));
  }
  return out;
}

/** torch softplus with beta 1, threshold 20: x where x > 20, else log1p(exp(x)). */
export function softplus(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    out[i] = v > 20 ? v : Math.log1p(Math.exp(v));
  }
  return out;
}

/**
 * erf(z) in double to a few ulps: 2/√π · e^(−z²) · Σₙ (2z²)ⁿ · |z| / (1·3·…·(2n+1)), a series whose
 * terms are all positive (no cancellation), for |z| < 6; beyond, 1 − erf(|z|) < 3e-17 rounds to ±1.
 */
export function erf(z: number): number {
  const a = Math.abs(z);
  if (!(a < 6)) return Number.isNaN(z) ? NaN : Math.sign(z);
  const z2 = 2 * a * a;
  let term = a;
  let sum = a;
  for (let n = 1; term > sum * 1e-17; n++) {
    term *= z2 / (2 * n + 1);
    sum += term;
  }
  const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
  return z === 0 ? z : z < 0 ? -r : r; // erf(−0) = −0
}

/**
 * GELU, x · Φ(x): exact, 0.5·x·(1 + erf(x/√2)) (torch gelu, HF "gelu"), or with `tanh` the
 * approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (torch approximate="tanh", HF "gelu_new",
 * "gelu_pytorch_tanh"). Computed in double, rounded once.
 */
export function gelu(x: Float32Array, tanh: boolean): Float32Array {
  const out = new Float32Array(x.length);
  const c = Math.sqrt(2 / Math.PI);
  if (tanh) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      out[i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    }
  } else {
    for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i] * (1 + erf(x[i] * Math.SQRT1_2));
  }
  return out;
}

export function exp(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.exp(x[i]);
  return out;
}

export function neg(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = -x[i];
  return out;
}

/** min(max(x, lo), hi); either bound may be infinite; NaN stays NaN (as torch.clamp). */
export function clamp(x: Float32Array, lo: number, hi: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.min(Math.max(x[i], lo), hi);
  return out;
}

function checkBroadcast(kernel: string, a: Float32Array, b: Float32Array): void {
  const ok = b.length === 0 ? a.length === 0 : a.length % b.length === 0;
  if (!ok) throw new RangeError(`${kernel}: cannot broadcast ${b.length} elements over ${a.length}`);
}

/** a + b, where b is a.length long or repeats over a's leading dims (a.length % b.length == 0). */
export function add(a: Float32Array, b: Float32Array): Float32Array {
  checkBroadcast('add', a, b);
  const out = new Float32Array(a.length);
  const m = b.length;
  for (let base = 0; base < a.length; base += m) {
    for (let j = 0; j < m; j++) out[base + j] = a[base + j] + b[j];
  }
  return out;
}

/** a * b with the same broadcasting as `add`. */
export function mul(a: Float32Array, b: Float32Array): Float32Array {
  checkBroadcast('mul', a, b);
  const out = new Float32Array(a.length);
  const m = b.length;
  for (let base = 0; base < a.length; base += m) {
    for (let j = 0; j < m; j++) out[base + j] = a[base + j] * b[j];
  }
  return out;
}
