// What the training loop asks of a gradient engine: a packed batch in, the mean loss and every
// weight's gradient out. The reference engine (cli/train.ts referenceEngine) evaluates the graph in
// float64 on the CPU (compiler/grad.ts lossGradients; slow, every activation kept); a lowered
// engine (wasm) will implement the same interface.

import type { PackedBatch } from './data.ts';

export interface StepResult {
  /** Mean loss over the counted tokens (nats). */
  readonly loss: number;
  /** Tokens the loss counts (labels not -100). */
  readonly tokens: number;
  /** d loss / d weight per weight name (absent for evaluation). */
  readonly grads?: ReadonlyMap<string, ArrayLike<number>>;
}

export interface TrainEngine {
  /** The weights the engine reads and differentiates, in checkpoint order. */
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Loss and gradients of `batch` at `weights` (f32 masters, by name). */
  step(weights: ReadonlyMap<string, Float32Array>, batch: PackedBatch): StepResult;
  /** Loss only. */
  evaluate(weights: ReadonlyMap<string, Float32Array>, batch: PackedBatch): StepResult;
}
