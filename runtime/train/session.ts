// Training from the generated package (`<package>/train`, Node): fine-tuning a Hugging Face
// checkpoint with the f32 engine (./f32/) on the package's own wasm kernels, the loop of
// ./trainer.ts (clipping, the warmup + cosine schedule, AdamW) and the run files `archc train`
// writes (./checkpoint.ts: config.json and the tokenizer copied, model.safetensors,
// optimizer.safetensors, trainer_state.json), so a saved run loads as a checkpoint anywhere and
// continues bit for bit with `resume`. The graph is the package's graph.json (the model as built);
// random initialisation needs the compiler and stays with `archc train`.

import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { assertShapes } from '../checkpoint-shapes.ts';
import { describeError, fail } from '../errors.ts';
import { openCheckpoint } from '../safetensors.ts';
import { toF32 } from '../tensor.ts';
import { type Tokenizer, loadTokenizer } from '../tokenizer.ts';
import { defaultThreads } from '../wasm/threads.ts';
import { STATE_FILE, readTrainSettings, readTrainState, writeTrainState } from './checkpoint.ts';
import { type PackedBatch, collate } from './data.ts';
import { type BatchOptions, packedBatches } from './data-rows.ts';
import { F32Engine, openWasmGemm } from './f32/engine.ts';
import type { TrainGraph } from './f32/graph.ts';
import { ADAMW_DEFAULTS, newParam } from './optim.ts';
import { type Metric, type TrainConfig, type TrainState, evaluate, trainStep } from './trainer.ts';

export type { Metric, PackedBatch };

/** The optimizer's settings; `steps` is the schedule's length (warmup, then cosine decay to 0). */
export interface TrainerOptions {
  readonly steps: number;
  readonly lr?: number;
  readonly warmup?: number;
  /** Clip the gradients' global norm to this (0: off; default 1). */
  readonly clip?: number;
  readonly weightDecay?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  /** Threads of the wasm products (default: the cores, as the model's backend). */
  readonly threads?: number;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** Reads graph.json text back (its infinities are strings). */
export function trainGraphFromJson(text: string): TrainGraph {
  return JSON.parse(text, (_k, v) => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v)) as TrainGraph;
}

export class Trainer {
  private constructor(
    private readonly engine: F32Engine,
    private readonly closeKernels: () => void,
    /** The f32 masters and moments, the step and the tokens trained on. */
    readonly state: TrainState,
    readonly config: TrainConfig,
    /** Where the weights came from: its config.json and tokenizer files go with every save. */
    readonly source: string,
    readonly tokenizer: Tokenizer | null,
  ) {}

  /** A trainer of `graph` starting from the checkpoint in `dir` (safetensors, one file or sharded,
   *  any float dtype; every weight of the graph present with its shape, else RT1xx naming the
   *  tensor), or, with `resume: true`, continuing a run a trainer or `archc train` saved in `dir`
   *  (its optimizer state and step; `options` then only changes the schedule's length). */
  static async open(graph: TrainGraph, kernels: readonly Uint8Array[], dir: string, options: TrainerOptions & { resume?: boolean }): Promise<Trainer> {
    const config = trainConfig(options, options.resume ? readTrainSettings(dir).settings : undefined);
    const { gemm, kernels: k } = await openWasmGemm(kernels, options.threads ?? defaultThreads());
    try {
      const engine = new F32Engine(graph, gemm);
      const state = options.resume ? readTrainState(dir, engine.weights) : startingState(dir, engine);
      if (state.step >= config.steps) fail('RT604', ['steps', `the run in ${dir} has taken ${state.step} steps already; give a larger total`], { key: 'steps' });
      return new Trainer(engine, () => k.close(), state, config, resolve(dir), await loadTokenizer(dir));
    } catch (e) {
      k.close();
      throw e;
    }
  }

  /** One optimizer step on `batch` (a packed batch from `batches`, or `Trainer.pack`): the loss
   *  before the update, the learning rate, the gradient norm, tokens/s. */
  step(batch: PackedBatch): Metric {
    if (this.state.step >= this.config.steps) fail('RT604', ['steps', `the schedule's ${this.config.steps} steps are done; save, then open the run with \`resume\` and a larger total`], { key: 'steps' });
    return trainStep(this.engine, this.config, this.state, batch);
  }

  /** Mean loss and bits per byte of the current weights over `batches`. */
  evaluate(batches: Iterable<PackedBatch>): { loss: number; tokens: number; bitsPerByte: number } {
    return evaluate(this.engine, this.state, batches);
  }

  /** Packed batches of a text or JSONL file tokenised with the checkpoint's tokenizer, as `archc
   *  train --data` makes them (`seqLen` 256, `batch` 8, `seed` 0 unless given; `once` for one pass). */
  batches(file: string, o: Partial<BatchOptions> = {}): Generator<PackedBatch> {
    if (!this.tokenizer) fail('RT100', [join(this.source, 'tokenizer.json'), 'no tokenizer beside the weights: pack token ids with Trainer.pack'], { file: join(this.source, 'tokenizer.json') });
    return packedBatches(file, this.tokenizer, { seqLen: 256, batch: 8, seed: 0, ...o });
  }

  /** One packed batch of these sequences of token ids (each its own document: positions restart,
   *  no label crosses into the next); each token counts as a byte, so `evaluate`'s bits per byte
   *  over such batches are bits per token. */
  static pack(sequences: readonly (readonly number[])[]): PackedBatch {
    return collate([sequences.map((ids) => ({ ids, bytes: ids.length }))]);
  }

  /** Writes the run into `dir` whole (a temp directory renamed into place): a checkpoint in Hugging
   *  Face layout (config.json and the tokenizer files of the source) plus the optimizer state.
   *  An existing `dir` is replaced only if it holds a saved run. */
  save(dir: string): void {
    const out = resolve(dir);
    if (existsSync(out) && !existsSync(join(out, STATE_FILE))) fail('RT605', [out, 'it exists and holds no saved run; give a new directory'], { file: out });
    const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      for (const f of ['config.json', ...TOKENIZER_FILES]) if (existsSync(join(this.source, f))) copyFileSync(join(this.source, f), join(tmp, f));
      writeTrainState(tmp, this.state, { ...this.config, source: this.source });
      const old = existsSync(out) ? `${tmp}-old` : null;
      if (old) renameSync(out, old);
      renameSync(tmp, out);
      if (old) rmSync(old, { recursive: true, force: true });
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      fail('RT605', [out, describeError(e)], { file: out });
    }
  }

  /** Ends the kernels' threads. */
  close(): void {
    this.closeKernels();
  }
}

/** The checkpoint's weights as fresh f32 masters (zero moments). */
function startingState(dir: string, engine: F32Engine): TrainState {
  const ckpt = openCheckpoint(dir);
  try {
    assertShapes(ckpt, engine.weights, { allowExtra: true });
    return { step: 0, tokens: 0, params: engine.weights.map((w) => newParam(w.name, w.shape, toF32(ckpt.read(w.name)))) };
  } finally {
    ckpt.close();
  }
}

/** The loop's settings: the options over the saved run's (resuming) over the defaults of `archc train`. */
function trainConfig(o: TrainerOptions, saved?: Record<string, unknown>): TrainConfig {
  const num = (k: keyof TrainConfig, dflt: number, min: number): number => {
    const v = (o as unknown as Record<string, unknown>)[k] ?? saved?.[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (k === 'steps' || k === 'warmup' ? !Number.isInteger(v) : false)) {
      fail('RT604', [k, `must be ${k === 'steps' || k === 'warmup' ? 'an integer' : 'a number'} ≥ ${min}, not ${JSON.stringify(v)}`], { key: k });
    }
    return v;
  };
  return {
    steps: num('steps', 0, 1), lr: num('lr', 1e-3, 0), warmup: num('warmup', 0, 0), clip: num('clip', 1, 0), weightDecay: num('weightDecay', ADAMW_DEFAULTS.weightDecay, 0),
    beta1: num('beta1', ADAMW_DEFAULTS.beta1, 0), beta2: num('beta2', ADAMW_DEFAULTS.beta2, 0), eps: num('eps', ADAMW_DEFAULTS.eps, 0),
  };
}

/** graph.json beside a built package's dist/ (Node). */
export function packageGraph(distUrl: string): TrainGraph {
  return trainGraphFromJson(readFileSync(new URL('../graph.json', distUrl), 'utf8'));
}
