// Training from the generated package (`<package>/train`, Node): fine-tuning a Hugging Face
// checkpoint with the f32 engine (./f32/) on the package's own wasm kernels, the loop of
// ./trainer.ts (clipping, the warmup + cosine schedule, AdamW) and the run files `archc train`
// writes (./checkpoint.ts: config.json and the tokenizer copied, model.safetensors,
// optimizer.safetensors, trainer_state.json), so a saved run loads as a checkpoint anywhere and
// continues bit for bit with `resume`. The graph is the package's graph.json (the model as built);
// random initialisation needs the compiler and stays with `archc train`. On `backend: 'webgpu'` (a
// package built with `--train`) the steps run whole on the device (./webgpu-engine.ts) from the train
// program and WGSL the package ships: stepAsync, evaluateAsync, saveAsync (masters and moments read back).

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
import type { TrainEngine } from './engine.ts';
import type { Program } from '../program.ts';
import type { WebGpuOptions } from '../webgpu/options.ts';
import type { WgslProgram } from '../webgpu/shaders.ts';
import { ADAMW_DEFAULTS, newParam } from './optim.ts';
import { type Metric, type TrainConfig, type TrainState, evaluate, evaluateAsync, trainStep, trainStepAsync } from './trainer.ts';

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
  /** Where the steps run: `wasm` (the default) or `webgpu` (a package built with `--train`; then
   *  stepAsync, evaluateAsync and saveAsync). */
  readonly backend?: keyof typeof ENGINES;
  /** Where WebGPU comes from (default: navigator.gpu, else the `webgpu` package), as Model.load's. */
  readonly webgpu?: WebGpuOptions;
}

/** What the Trainer trains with on WebGPU: the program with its train entry (every weight f32) and its WGSL. */
export interface WebGpuTraining {
  readonly program: Program;
  readonly wgsl: WgslProgram;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** Reads graph.json text back (its infinities are strings). */
export function trainGraphFromJson(text: string): TrainGraph {
  return JSON.parse(text, (_k, v) => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v)) as TrainGraph;
}

export class Trainer {
  /** Steps taken on the device since its masters and moments were last read into `state`. */
  private unsynced = false;

  private constructor(
    private readonly engine: TrainEngine,
    private readonly closeKernels: () => void,
    /** The f32 masters and moments, the step and the tokens trained on. */
    readonly state: TrainState,
    readonly config: TrainConfig,
    /** Where the weights came from: its config.json and tokenizer files go with every save (null:
     *  weights given in memory, `start`). */
    readonly source: string | null,
    readonly tokenizer: Tokenizer | null,
  ) {}

  /** A trainer of `graph` starting from the checkpoint in `dir` (safetensors, one file or sharded,
   *  any float dtype; every weight of the graph present with its shape, else RT1xx naming the
   *  tensor), or, with `resume: true`, continuing a run a trainer or `archc train` saved in `dir`
   *  (its optimizer state and step; `options` then only changes the schedule's length). On
   *  `backend: 'webgpu'`, `webgpu` gives what it trains with there (RT606 without it). */
  static async open(graph: TrainGraph, kernels: readonly Uint8Array[], dir: string, options: TrainerOptions & { resume?: boolean },
    webgpu?: () => Promise<WebGpuTraining>): Promise<Trainer> {
    const config = trainConfig(options, options.resume ? readTrainSettings(dir).settings : undefined);
    const { engine, close } = await openEngine(() => graph, kernels, options, webgpu);
    try {
      const state = options.resume ? readTrainState(dir, engine.weights) : startingState(dir, engine);
      if (state.step >= config.steps) fail('RT604', ['steps', `the run in ${dir} has taken ${state.step} steps already; give a larger total`], { key: 'steps' });
      return new Trainer(engine, close, state, config, resolve(dir), await loadTokenizer(dir));
    } catch (e) {
      close();
      throw e;
    }
  }

  /** A trainer starting from `weights` in memory (every weight of the model with its shape, as f32
   *  masters; RT604 naming one that is missing or of another shape): no file is read, so a page
   *  trains this way (on WebGPU, `webgpu` giving what it trains with). Its saves carry no config.json. */
  static async start(weights: readonly { readonly name: string; readonly shape: readonly number[]; readonly value: ArrayLike<number> }[],
    graph: () => TrainGraph, kernels: readonly Uint8Array[], options: TrainerOptions, webgpu?: () => Promise<WebGpuTraining>): Promise<Trainer> {
    const config = trainConfig(options);
    const { engine, close } = await openEngine(graph, kernels, options, webgpu);
    try {
      const by = new Map(weights.map((w) => [w.name, w]));
      const params = engine.weights.map((w) => {
        const x = by.get(w.name);
        if (!x || x.shape.join() !== w.shape.join() || x.value.length !== x.shape.reduce((a, b) => a * b, 1)) {
          fail('RT604', ['weights', `${w.name} ${x ? `has shape [${x.shape}] and ${x.value.length} values` : 'is missing'}; the model's is [${w.shape}]`], { key: 'weights' });
        }
        return newParam(w.name, w.shape, x.value);
      });
      return new Trainer(engine, close, { step: 0, tokens: 0, params }, config, null, null);
    } catch (e) {
      close();
      throw e;
    }
  }

  /** One optimizer step on `batch` (a packed batch from `batches`, or `Trainer.pack`): the loss
   *  before the update, the learning rate, the gradient norm, tokens/s. */
  step(batch: PackedBatch): Metric {
    this.checkSteps();
    this.synchronous('stepAsync');
    return trainStep(this.engine, this.config, this.state, batch);
  }

  /** `step` on any backend; on WebGPU the whole step on the device (`state` is brought up to date by
   *  `sync` or `saveAsync`). */
  async stepAsync(batch: PackedBatch): Promise<Metric> {
    this.checkSteps();
    const m = await trainStepAsync(this.engine, this.config, this.state, batch);
    if (this.engine.device) this.unsynced = true;
    return m;
  }

  /** Mean loss and bits per byte of the current weights over `batches`. */
  evaluate(batches: Iterable<PackedBatch>): { loss: number; tokens: number; bitsPerByte: number } {
    this.synchronous('evaluateAsync');
    return evaluate(this.engine, this.state, batches);
  }

  /** `evaluate` on any backend (on WebGPU at the masters on the device). */
  evaluateAsync(batches: Iterable<PackedBatch>): Promise<{ loss: number; tokens: number; bitsPerByte: number }> {
    return evaluateAsync(this.engine, this.state, batches);
  }

  /** The device's masters and moments read back into `state` (nothing to do on wasm). */
  async sync(): Promise<void> {
    await this.engine.device?.sync(this.state);
    this.unsynced = false;
  }

  /** `save` after `sync`: on any backend. */
  async saveAsync(dir: string): Promise<void> {
    await this.sync();
    this.save(dir);
  }

  private checkSteps(): void {
    if (this.state.step >= this.config.steps) fail('RT604', ['steps', `the schedule's ${this.config.steps} steps are done; save, then open the run with \`resume\` and a larger total`], { key: 'steps' });
  }

  /** RT504 on a backend whose steps are asynchronous. */
  private synchronous(instead: string): void {
    if (this.engine.device) fail('RT504', ['webgpu', `Trainer.${instead}`]);
  }

  /** Packed batches of a text or JSONL file tokenised with the checkpoint's tokenizer, as `archc
   *  train --data` makes them (`seqLen` 256, `batch` 8, `seed` 0 unless given; `once` for one pass). */
  batches(file: string, o: Partial<BatchOptions> = {}): Generator<PackedBatch> {
    const json = join(this.source ?? '.', 'tokenizer.json');
    if (!this.tokenizer) fail('RT100', [json, 'no tokenizer beside the weights: pack token ids with Trainer.pack'], { file: json });
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
    if (this.unsynced) fail('RT504', ['webgpu', 'Trainer.saveAsync (the masters and moments are on the device)']);
    const out = resolve(dir);
    if (existsSync(out) && !existsSync(join(out, STATE_FILE))) fail('RT605', [out, 'it exists and holds no saved run; give a new directory'], { file: out });
    const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      for (const f of this.source ? ['config.json', ...TOKENIZER_FILES] : []) if (existsSync(join(this.source!, f))) copyFileSync(join(this.source!, f), join(tmp, f));
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

type Opened = Promise<{ engine: TrainEngine; close: () => void }>;

/** How a Trainer opens its engine on each backend it steps on: the f32 engine over the wasm kernels,
 *  or steps whole on WebGPU from what `webgpu` gives (RT606 without it). `graph` is read by the first only. */
const ENGINES = {
  async wasm(graph: () => TrainGraph, kernels: readonly Uint8Array[], o: TrainerOptions): Opened {
    const { gemm, kernels: k } = await openWasmGemm(kernels, o.threads ?? defaultThreads());
    try {
      return { engine: new F32Engine(graph(), gemm), close: () => k.close() };
    } catch (e) {
      k.close();
      throw e;
    }
  },
  async webgpu(_graph: () => TrainGraph, _kernels: readonly Uint8Array[], o: TrainerOptions, webgpu?: () => Promise<WebGpuTraining>): Opened {
    if (!webgpu) fail('RT606', ['webgpu', 'this package was built without its train program; rebuild it with `archc build --train`']);
    const [{ program, wgsl }, { WebGpuTrainEngine }] = await Promise.all([webgpu(), import('./webgpu-engine.ts')]);
    const engine = await WebGpuTrainEngine.open(program, wgsl, o.webgpu);
    return { engine, close: () => engine.close() };
  },
};

function openEngine(graph: () => TrainGraph, kernels: readonly Uint8Array[], o: TrainerOptions, webgpu?: () => Promise<WebGpuTraining>): Opened {
  const backend = o.backend ?? 'wasm';
  if (!Object.hasOwn(ENGINES, backend)) fail('RT604', ['backend', `must be one of ${Object.keys(ENGINES).join(', ')}, not ${JSON.stringify(backend)}`], { key: 'backend' });
  return ENGINES[backend](graph, kernels, o, webgpu);
}

/** The checkpoint's weights as fresh f32 masters (zero moments). */
function startingState(dir: string, engine: TrainEngine): TrainState {
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
