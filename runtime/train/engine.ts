// What the training loop asks of a gradient engine: a packed batch in, the mean loss and every
// weight's gradient out. The reference engine (cli/train.ts referenceEngine) evaluates the graph in
// float64 on the CPU (compiler/grad.ts lossGradients; slow, every activation kept); a lowered
// engine (wasm) will implement the same interface.

import type { PackedBatch } from './data.ts';
import type { TrainConfig, TrainState } from './trainer.ts';

export interface StepResult {
  /** Mean loss over the counted tokens (nats). */
  readonly loss: number;
  /** Tokens the loss counts (labels not -100). */
  readonly tokens: number;
  /** d loss / d weight per weight name (absent for evaluation); an engine may give views of its
   *  memory, valid until its next step or evaluation. */
  readonly grads?: ReadonlyMap<string, ArrayLike<number>>;
}

export interface TrainEngine {
  /** The weights the engine reads and differentiates, in checkpoint order. */
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Loss and gradients of `batch` at `weights` (f32 masters, by name). */
  step(weights: ReadonlyMap<string, Float32Array>, batch: PackedBatch): StepResult;
  /** Loss only. */
  evaluate(weights: ReadonlyMap<string, Float32Array>, batch: PackedBatch): StepResult;
  /** An engine whose optimizer runs on its device too (WebGPU) takes whole steps there instead
   *  (trainer.ts trainStepAsync): the masters and moments live on the device between steps. */
  readonly device?: DeviceSteps;
}

/** Whole optimizer steps on a device: `step` and `evaluate` load the state's masters and moments the
 *  first time they see it; the state's arrays hold the device's only after `sync`. */
export interface DeviceSteps {
  /** The loss before the update, the tokens it counts and the gradients' norm before clipping; the
   *  masters and moments updated by AdamW at `lr` unless the loss or the norm is not finite. */
  step(s: TrainState, c: TrainConfig, lr: number, batch: PackedBatch): Promise<{ loss: number; tokens: number; norm: number }>;
  /** Loss only, at the masters on the device. */
  evaluate(s: TrainState, batch: PackedBatch): Promise<StepResult>;
  /** The device's masters and moments into the state's arrays (before a save). */
  sync(s: TrainState): Promise<void>;
}
