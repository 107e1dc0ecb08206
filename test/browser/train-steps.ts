// The training steps the WebGPU page and Node both take (test/browser/train.test.ts): the same
// packed batch each step (clipping by global norm 1, AdamW, lr 1e-2 with the cosine decay over the
// steps): in the page the package's `Trainer` on WebGPU (the train entry and the optimizer whole on
// the device), in Node runtime/train/trainer.ts's loop over the CPU backend's train entry and
// runtime/train/optim.ts in JS. Returns the loss of every step and, last, the loss after them.

import type { TrainBatch } from '../../runtime/cpu/train.ts';
import type { PackedBatch } from '../../runtime/train/data.ts';
import type { TrainEngine } from '../../runtime/train/engine.ts';
import { ADAMW_DEFAULTS, newParam } from '../../runtime/train/optim.ts';
import { type TrainConfig, type TrainState, evaluateAsync, trainStepAsync } from '../../runtime/train/trainer.ts';

export const LR = 1e-2;

/** `b` as the loop takes a batch (one row, no bytes: evaluation's bits per byte unused). */
export const packedBatch = (b: TrainBatch): PackedBatch => ({ ...b, seqIdx: new Int32Array(0), cuSeqLens: new Int32Array(0), maxLength: 0, rows: 1, bytes: 0, epoch: 0 });

export async function trainSteps(engine: TrainEngine, init: readonly { name: string; shape: readonly number[]; value: ArrayLike<number> }[], b: TrainBatch, steps: number): Promise<number[]> {
  const state: TrainState = { step: 0, tokens: 0, params: init.map((w) => newParam(w.name, w.shape, w.value)) };
  const config: TrainConfig = { ...ADAMW_DEFAULTS, lr: LR, warmup: 0, steps, clip: 1 };
  const batch = packedBatch(b);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push((await trainStepAsync(engine, config, state, batch)).loss);
  losses.push((await evaluateAsync(engine, state, [batch])).loss);
  return losses;
}
