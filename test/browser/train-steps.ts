// The training steps the WebGPU page and Node both take (test/browser/train.test.ts): the same
// packed batch each step, the gradients from `grad` (the train entry on WebGPU in the page, on the
// CPU backend in Node), clipping by global norm 1 and AdamW at a constant lr (runtime/train/optim.ts,
// which bundles for the browser). Returns the loss of every step and, last, the loss after them.

import type { TrainBatch, TrainResult } from '../../runtime/cpu/train.ts';
import { ADAMW_DEFAULTS, adamwStep, clipFactor, globalNorm, newParam } from '../../runtime/train/optim.ts';

export const LR = 1e-2;

/** The train entry's loss and gradients at `weights` (every weight of the program, f32). */
export type Grad = (weights: ReadonlyMap<string, Float32Array>, batch: TrainBatch) => Promise<TrainResult>;

export async function trainSteps(init: readonly { name: string; shape: readonly number[]; value: ArrayLike<number> }[], batch: TrainBatch, steps: number, grad: Grad): Promise<number[]> {
  const params = init.map((w) => newParam(w.name, w.shape, w.value));
  const weights = () => new Map(params.map((p) => [p.name, p.value]));
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const r = await grad(weights(), batch);
    losses.push(r.loss);
    const scale = clipFactor(globalNorm(r.grads.values()), 1);
    for (const p of params) adamwStep(p, r.grads.get(p.name)!, s + 1, LR, { ...ADAMW_DEFAULTS, lr: LR }, scale);
  }
  losses.push((await grad(weights(), batch)).loss);
  return losses;
}
