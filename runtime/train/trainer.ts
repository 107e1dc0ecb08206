// The training loop around a gradient engine (runtime/train/engine.ts): per step one packed batch,
// its loss and gradients, clipping by global norm, the scheduled learning rate and AdamW
// (runtime/train/optim.ts; on WebAssembly SIMD, the same bits, ./optim-wasm.ts). Its whole state is
// the f32 masters and moments, the step and the token count: the data are replayed from the seed, so
// a run saved after k steps and resumed continues bit for bit as if it had never stopped. Saving and loading: runtime/train/checkpoint.ts.

import { fail } from '../errors.ts';
import type { PackedBatch } from './data.ts';
import type { TrainEngine } from './engine.ts';
import { type AdamWConfig, type ParamState, adamwStep, clipFactor, globalNorm, scheduledLr } from './optim.ts';
import { WasmAdamW } from './optim-wasm.ts';

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
  /** The masters and moments. trainStep moves them into its optimizer's memory at the state's first
   *  step (./optim-wasm.ts: the same values, now views of that memory), so read them through the
   *  state, not through arrays kept from before a step. */
  params: readonly ParamState[];
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
  // f32 gradients go through the wasm optimizer (the same bits as optim.ts in JS, which runs the rest:
  // the reference engine's float64 gradients, no WebAssembly SIMD, a state past one memory)
  const opt = [...grads.values()].every((g) => g instanceof Float32Array) ? wasmOptimizer(s) : null;
  const norm = opt ? opt.load(grads as ReadonlyMap<string, Float32Array>) : globalNorm(grads.values());
  checkFinite(s, r.loss, norm);
  const lr = scheduledLr(c.lr, s.step, c.warmup, c.steps);
  const scale = clipFactor(norm, c.clip);
  if (opt) opt.step(s.step + 1, lr, c, scale);
  else for (const p of s.params) adamwStep(p, grads.get(p.name)!, s.step + 1, lr, c, scale);
  return stepped(s, r.tokens, { loss: r.loss, lr, grad_norm: norm }, batch, t0);
}

/** Each state's wasm optimizer (null: the state stays on optim.ts in JS). */
const OPTIMIZERS = new WeakMap<TrainState, WasmAdamW | null>();

/** The wasm optimizer of `s`, its masters and moments moved into the optimizer's memory the first
 *  time (s.params then holds views of it), again if s.params was replaced since. */
function wasmOptimizer(s: TrainState): WasmAdamW | null {
  let o = OPTIMIZERS.get(s);
  if (o === undefined || (o && o.params !== s.params)) {
    o = WasmAdamW.open(s.params);
    OPTIMIZERS.set(s, o);
    if (o) s.params = o.params;
  }
  return o;
}

/** trainStep, or on an engine with a device optimizer (engine.device) the whole step on the device:
 *  the same metric, RT602 the same way (the device then updated nothing). */
export async function trainStepAsync(engine: TrainEngine, c: TrainConfig, s: TrainState, batch: PackedBatch): Promise<Metric> {
  if (!engine.device) return trainStep(engine, c, s, batch);
  const t0 = performance.now();
  const lr = scheduledLr(c.lr, s.step, c.warmup, c.steps);
  const r = await engine.device.step(s, c, lr, batch);
  checkFinite(s, r.loss, r.norm);
  return stepped(s, r.tokens, { loss: r.loss, lr, grad_norm: r.norm }, batch, t0);
}

function checkFinite(s: TrainState, loss: number, norm: number): void {
  if (!Number.isFinite(loss) || !Number.isFinite(norm)) fail('RT602', [s.step + 1, `loss ${loss}, gradient norm ${norm}`]);
}

/** The state moved on by one step, and the step's metric. */
function stepped(s: TrainState, tokens: number, m: Pick<Metric, 'loss' | 'lr' | 'grad_norm'>, batch: PackedBatch, t0: number): Metric {
  s.step += 1;
  s.tokens += tokens;
  const secs = (performance.now() - t0) / 1000;
  return { step: s.step, tokens: s.tokens, ...m, tokens_per_s: batch.tokens.length / Math.max(secs, 1e-9), epoch: batch.epoch };
}

/** Mean loss and bits per byte over every batch of `batches` (one pass over an eval file). */
export function evaluate(engine: TrainEngine, s: TrainState, batches: Iterable<PackedBatch>): { loss: number; tokens: number; bitsPerByte: number } {
  const w = weightsOf(s), sum = evalSum();
  for (const b of batches) sum.add(engine.evaluate(w, b), b);
  return sum.total();
}

/** evaluate, on the device of an engine that has one (at the masters there). */
export async function evaluateAsync(engine: TrainEngine, s: TrainState, batches: Iterable<PackedBatch>): Promise<{ loss: number; tokens: number; bitsPerByte: number }> {
  if (!engine.device) return evaluate(engine, s, batches);
  const sum = evalSum();
  for (const b of batches) sum.add(await engine.device.evaluate(s, b), b);
  return sum.total();
}

function evalSum() {
  let nats = 0, tokens = 0, bytes = 0;
  return {
    add(r: { loss: number; tokens: number }, b: PackedBatch) { nats += r.loss * r.tokens; tokens += r.tokens; bytes += b.bytes; },
    total: () => ({ loss: nats / Math.max(tokens, 1), tokens, bitsPerByte: nats / Math.LN2 / Math.max(bytes, 1) }),
  };
}
