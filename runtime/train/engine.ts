// What the training loop asks of a gradient engine: a packed batch in, the mean loss and every
// weight's gradient out. The reference engine evaluates the graph in float64 on the CPU
// (compiler/grad.ts lossGradients; slow, every activation kept); a lowered engine (wasm) will
// implement the same interface.

import { lossGradients } from '../../compiler/grad.ts';
import type { Graph } from '../../compiler/ir.ts';
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

/** The float64 reference: the f32 masters widened exactly, the graph evaluated by lossGradients. */
export function referenceEngine(g: Graph): TrainEngine {
  const widen = (w: ReadonlyMap<string, Float32Array>) => new Map([...w].map(([k, v]) => [k, Float64Array.from(v)]));
  return {
    weights: g.weights.map((w) => ({ name: w.name, shape: w.shape })),
    step: (w, b) => lossGradients(g, widen(w), b),
    evaluate: (w, b) => lossGradients(g, widen(w), b, { grads: false }),
  };
}
