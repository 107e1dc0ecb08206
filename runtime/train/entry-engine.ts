// A TrainEngine over the kernel program's train entry (compiler/kernel/train.ts, docs/TRAINING.md
// "The train entry"): each step stores the f32 masters into the backend again (the wasm backend packs
// its products' panels into the same memory each time) and runs the entry (runtime/cpu/train.ts
// runTrain) on it — the CPU backend, or the wasm backend (runtime/wasm/train.ts). `archc train
// --engine kernels`.

import type { CpuBackend } from '../cpu/backend.ts';
import { runTrain } from '../cpu/train.ts';
import type { PackedBatch } from './data.ts';
import type { StepResult, TrainEngine } from './engine.ts';
import { StepPool, inPool } from './f32/pool.ts';

export class TrainEntryEngine implements TrainEngine {
  /** The arrays of a step, reused by the next (./f32/pool.ts). */
  private readonly pool = new StepPool();
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];

  /** `backend` holds a program lowered with { train: true }; its weights need not be in yet. */
  constructor(private readonly backend: CpuBackend) {
    if (!backend.program.train) throw new Error('archc runtime: TrainEntryEngine needs a program with a train entry (lower it with { train: true })');
    this.weights = backend.program.weights.map((w) => ({ name: w.name, shape: w.shape }));
  }

  step(weights: ReadonlyMap<string, Float32Array>, batch: PackedBatch): StepResult {
    this.backend.updateWeights(weights);
    // the kernels' scratch arrays from the step pool; the gradients windows of the arena (the loop
    // reads them before the next step)
    return inPool(this.pool, () => runTrain(this.backend, batch, true));
  }

  /** The loss of the same run, its gradients dropped (the program has no loss-only entry); a batch
   *  with nothing to predict (an eval file's 1-token tail) weighs nothing: loss 0 over 0 tokens. */
  evaluate(weights: ReadonlyMap<string, Float32Array>, batch: PackedBatch): StepResult {
    if (batch.labels.every((y, t) => t === 0 || y === -100)) return { loss: 0, tokens: 0 };
    const { loss, tokens } = this.step(weights, batch);
    return { loss, tokens };
  }
}
