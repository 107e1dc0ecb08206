// AdamW with decoupled weight decay, clipping by global norm and a linear-warmup + cosine schedule,
// with PyTorch's formulas (torch.optim.AdamW, amsgrad off; torch.nn.utils.clip_grad_norm_;
// transformers' get_cosine_schedule_with_warmup). Master weights and both moments are f32
// (Float32Array); each update is computed in float64 from them and rounded once when stored.
// Weight decay applies to matrices only (weights of rank ≥ 2: linear, head, embedding, conv),
// not to vectors (norm weights, biases, A_log, D, dt_bias), as is usual.

export interface AdamWConfig {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

export const ADAMW_DEFAULTS: Omit<AdamWConfig, 'lr'> = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** One parameter: its f32 master weight and moments, flat, in the weight's row-major order. */
export interface ParamState {
  readonly name: string;
  readonly shape: readonly number[];
  readonly value: Float32Array;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
}

/** Decay applies to rank ≥ 2 weights only. */
export const decays = (shape: readonly number[]): boolean => shape.length >= 2;

/** A fresh parameter (zero moments) holding a copy of `value`. */
export function newParam(name: string, shape: readonly number[], value: ArrayLike<number>): ParamState {
  return { name, shape, value: Float32Array.from(value), expAvg: new Float32Array(value.length), expAvgSq: new Float32Array(value.length) };
}

/** Global L2 norm of every gradient, in float64: √ of the gradients' sumSquares added in order. */
export function globalNorm(grads: Iterable<ArrayLike<number>>): number {
  let ss = 0;
  for (const g of grads) ss += sumSquares(g);
  return Math.sqrt(ss);
}

/** Σ g² of one gradient in float64, in the order the wasm kernel sums (codegen/wasm/train-rows.ts
 *  sumsq): four lanes, element i in lane i mod 4, over the whole fours; then (lane0 + lane2) +
 *  (lane1 + lane3); then the tail (fewer than four) one by one. A square of an f32 is exact in f64,
 *  so the two agree bit for bit. */
export function sumSquares(g: ArrayLike<number>): number {
  let a0 = 0, a1 = 0, a2 = 0, a3 = 0, i = 0;
  for (; i + 4 <= g.length; i += 4) {
    a0 += g[i]! * g[i]!;
    a1 += g[i + 1]! * g[i + 1]!;
    a2 += g[i + 2]! * g[i + 2]!;
    a3 += g[i + 3]! * g[i + 3]!;
  }
  let ss = (a0 + a2) + (a1 + a3);
  for (; i < g.length; i++) ss += g[i]! * g[i]!;
  return ss;
}

/** clip_grad_norm_: the factor min(1, maxNorm / (norm + 1e-6)) every gradient is multiplied by
 *  (1 when maxNorm is Infinity or 0 = off). Returns the norm before clipping and the factor. */
export function clipFactor(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || maxNorm === Infinity) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/** The learning rate of optimizer step `step` (0 for the first), as LambdaLR over
 *  get_cosine_schedule_with_warmup(warmup, total) sets it before that step: step/warmup · lr during
 *  warmup (so the first step of a warmup has lr 0, as in transformers), then
 *  lr · ½(1 + cos(π · progress)), progress = (step − warmup) / (total − warmup). */
export function scheduledLr(lr: number, step: number, warmup: number, total: number): number {
  if (step < warmup) return lr * step / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** One AdamW step on `p` with gradient `g` (already clipped); `t` counts steps from 1. PyTorch's
 *  order: p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
 *  p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps). */
export function adamwStep(p: ParamState, g: ArrayLike<number>, t: number, lr: number, c: AdamWConfig, scale = 1): void {
  const decay = decays(p.shape) ? 1 - lr * c.weightDecay : 1;
  const bc1 = 1 - c.beta1 ** t, bc2Sqrt = Math.sqrt(1 - c.beta2 ** t);
  const stepSize = lr / bc1;
  const { value: w, expAvg: m, expAvgSq: v } = p;
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]! * scale;
    m[i] = c.beta1 * m[i]! + (1 - c.beta1) * gi;
    v[i] = c.beta2 * v[i]! + (1 - c.beta2) * gi * gi;
    // the moments as stored (f32) feed the update, as they would in PyTorch
    w[i] = w[i]! * decay - stepSize * m[i]! / (Math.sqrt(v[i]!) / bc2Sqrt + c.eps);
  }
}
