// The training loop around a gradient engine (runtime/train/engine.ts): per step one packed batch,
// its loss and gradients, clipping by global norm, the scheduled learning rate and AdamW
// (runtime/train/optim.ts). Its whole state is the f32 masters and moments, the step and the
// token count: the data are replayed from the seed, so a run saved after k steps and resumed
// continues bit for bit as if it had never stopped. Saving and loading: runtime/train/checkpoint.ts.

import { fail } from '../errors.ts';
import type { PackedBatch } from './data.ts';
import type { TrainEngine } from './engine.ts';
import { type AdamWConfig, type ParamState, adamwStep, clipFactor, globalNorm, scheduledLr } from './optim.ts';

export interface TrainConfig extends AdamWConfig {
  /** Optimizer steps in the whole run (the schedule's length). */
  readonly steps: number;
  readonly warmup: number;
  /** Clip the gradients' global norm to this (0: no clipping). */
  readonly clip: number;
}

export interface TrainState {
  /** Steps taken. */
  step: number;
  /** Tokens the losses counted so far. */
  tokens: number;
  readonly params: readonly ParamState[];
}

/** One line of metrics.jsonl. */
export interface Metric {
  readonly step: number;
  readonly tokens: number;
  readonly loss: number;
  readonly lr: number;
  readonly grad_norm: number;
  readonly tokens_per_s: number;
  readonly epoch: number;
}

/** The masters by name, as engines read them. */
export const weightsOf = (s: TrainState): Map<string, Float32Array> => new Map(s.params.map((p) => [p.name, p.value]));

/** One optimizer step on `batch`: loss and gradients, the norm, the clip factor, the lr, AdamW. RT602
 *  when the loss or the norm is not finite (nothing is updated). */
export function trainStep(engine: TrainEngine, c: TrainConfig, s: TrainState, batch: PackedBatch): Metric {
  const t0 = performance.now();
  const r = engine.step(weightsOf(s), batch);
  const grads = r.grads!;
  const norm = globalNorm(grads.values());
  if (!Number.isFinite(r.loss) || !Number.isFinite(norm)) fail('RT602', [s.step + 1, `loss ${r.loss}, gradient norm ${norm}`]);
  const lr = scheduledLr(c.lr, s.step, c.warmup, c.steps);
  const scale = clipFactor(norm, c.clip);
  for (const p of s.params) adamwStep(p, grads.get(p.name)!, s.step + 1, lr, c, scale);
  s.step += 1;
  s.tokens += r.tokens;
  const secs = (performance.now() - t0) / 1000;
  return { step: s.step, tokens: s.tokens, loss: r.loss, lr, grad_norm: norm, tokens_per_s: batch.tokens.length / Math.max(secs, 1e-9), epoch: batch.epoch };
}

/** Mean loss and bits per byte over every batch of `batches` (one pass over an eval file). */
export function evaluate(engine: TrainEngine, s: TrainState, batches: Iterable<PackedBatch>): { loss: number; tokens: number; bitsPerByte: number } {
  const w = weightsOf(s);
  let nats = 0, tokens = 0, bytes = 0;
  for (const b of batches) {
    const r = engine.evaluate(w, b);
    nats += r.loss * r.tokens;
    tokens += r.tokens;
    bytes += b.bytes;
  }
  return { loss: nats / Math.max(tokens, 1), tokens, bitsPerByte: nats / Math.LN2 / Math.max(bytes, 1) };
}
