// Training steps whole on WebGPU: the train entry (train.ts), then AdamW with clipping by global norm
// (codegen/wgsl/optim.ts renders its passes; runtime/train/optim.ts is the oracle) in the same command
// buffer, then the weights the forward reads made again from the masters on the device (the masters
// copied into the weights' buffers, concatenations such as the merged q/k/v part by part, expressions
// such as −exp(A_log) by their passes). A step reads back the loss and the gradients' norm only; the
// masters and moments come back when asked (a save). Every weight is f32 on the device (`f32Weights`).

import { RuntimeError } from '../errors.ts';
import { type Program, weightsRead } from '../program.ts';
import { type AdamWConfig, type ParamState, decays } from '../train/optim.ts';
import type { TrainBatch } from '../cpu/train.ts';
import { type WebGpuBackend, shaderProblem } from './backend.ts';
import { OPTIM_SCALARS, type Pass, type WgslOptimizer, shaderCode } from './shaders.ts';
import { SplitBuffer } from './split.ts';
import { WebGpuTrainer } from './train.ts';

/** `p` with every weight, checkpoint and derived, stored as f32 masters (as training keeps them). */
export function f32Weights(p: Program): Program {
  return { ...p, weights: p.weights.map((x) => ({ ...x, dtype: 'f32' })), derived: p.derived.map((x) => ({ ...x, dtype: 'f32' })) };
}

/** One step's settings: AdamW's, the learning rate of this step, its number t (from 1) and the clip
 *  (0 or Infinity: none). */
export interface DeviceStepSettings extends AdamWConfig {
  readonly t: number;
  readonly clip: number;
}

/** What a step reads back: the loss (before the update), the tokens it counts, the gradients' global
 *  norm before clipping; `updated` false when the loss or the norm is not finite (nothing changed). */
export interface DeviceStepResult {
  readonly loss: number;
  readonly tokens: number;
  readonly norm: number;
  readonly updated: boolean;
}

export class WebGpuOptimizer {
  private readonly shaders: WgslOptimizer;
  private readonly trainer: WebGpuTrainer;
  private readonly buffer: SplitBuffer;
  private loaded = false;
  /** The weights the kernels read, whose buffers the device keeps. */
  private readonly kept: Set<string>;

  /** RT506 when the backend's WGSL has no optimizer, or a weight is not f32 on the device. */
  constructor(private readonly gpu: WebGpuBackend) {
    this.trainer = new WebGpuTrainer(gpu);
    this.kept = weightsRead({ ...gpu.program.entries, train: gpu.program.train! });
    this.shaders = gpu.shaders.optimizer ?? refuse('its WGSL was rendered without the optimizer (render the program lowered with { train: true })');
    const notF32 = [...gpu.program.weights, ...gpu.program.derived].find((w) => w.dtype !== 'f32') ?? [...gpu.formats.keys()].map((name) => ({ name }))[0];
    if (notF32) refuse(`weight ${notF32.name} is not f32 on the device; the optimizer updates f32 masters (load the program through f32Weights)`);
    const s = this.shaders;
    const floats = Math.max(s.scalars + OPTIM_SCALARS.count, ...s.derived.map((d) => (d.at ?? 0) + d.length));
    this.buffer = new SplitBuffer(gpu, 'optim', { parts: 1, partBytes: gpu.plan.partLimit, bytes: 4 * floats });
    if (!this.buffer.ensure(4 * floats, false)) {
      throw new RuntimeError('RT505', ['the optimizer\'s masters, moments and partial sums', 4 * floats, gpu.plan.partLimit, 'train a smaller model on this device']);
    }
    const kinds = new Float32Array(s.size);
    for (const p of s.params) kinds.fill(decays(gpu.program.weights.find((w) => w.name === p.name)!.shape) ? 2 : 1, p.at, p.at + p.length);
    gpu.flush();
    this.buffer.write(4 * 3 * s.size, kinds);
  }

  /** Compiles the train entry's passes and the optimizer's; RT503 with the source around the first error. */
  async checkShaders(): Promise<void> {
    await this.trainer.checkShaders();
    for (const p of this.passes()) {
      const problem = await shaderProblem(this.gpu.device, shaderCode(p));
      if (problem) throw new RuntimeError('RT503', ['optimizer', p.name, problem]);
    }
  }

  private passes(): Pass[] {
    return [...this.shaders.passes, ...this.shaders.derived.flatMap((d) => (d.pass ? [d.pass] : []))];
  }

  /** Stores the masters and moments (a fresh run's zero moments, or a resumed run's) and makes the
   *  weights the forward reads from them. */
  load(params: readonly ParamState[]): void {
    const by = new Map(params.map((p) => [p.name, p]));
    this.gpu.flush();
    for (const q of this.shaders.params) {
      const p = by.get(q.name) ?? refuse(`no master for weight ${q.name}`);
      if (p.value.length !== q.length) refuse(`the master of ${q.name} holds ${p.value.length} floats, not ${q.length}`);
      [p.value, p.expAvg, p.expAvgSq].forEach((a, i) => this.buffer.write(4 * (i * this.shaders.size + q.at), a));
    }
    const run = this.trainer.begin(nothing());
    try {
      this.refresh(run.record);
      this.gpu.flush();
    } finally {
      run.end();
    }
    this.loaded = true;
  }

  /** One training step on `batch`: the train entry, the norm, clipping and AdamW, the weights made
   *  again; only the loss and the norm come back. */
  async step(batch: TrainBatch, c: DeviceStepSettings): Promise<DeviceStepResult> {
    if (!this.loaded) refuse('the masters were not loaded (WebGpuOptimizer.load)');
    const S = new Float32Array(OPTIM_SCALARS.count);
    S[OPTIM_SCALARS.decay] = 1 - c.lr * c.weightDecay;
    S[OPTIM_SCALARS.stepSize] = c.lr / (1 - c.beta1 ** c.t);
    S[OPTIM_SCALARS.bc2Sqrt] = Math.sqrt(1 - c.beta2 ** c.t);
    S[OPTIM_SCALARS.beta1] = c.beta1;
    S[OPTIM_SCALARS.beta2] = c.beta2;
    S[OPTIM_SCALARS.oneMinusBeta1] = 1 - c.beta1;
    S[OPTIM_SCALARS.oneMinusBeta2] = 1 - c.beta2;
    S[OPTIM_SCALARS.eps] = c.eps;
    S[OPTIM_SCALARS.clip] = c.clip > 0 && c.clip !== Infinity ? c.clip : 0;
    const run = this.trainer.begin(batch);
    try {
      this.buffer.write(4 * this.shaders.scalars, S);
      for (const k of this.gpu.program.train!.kernels) run.dispatch(k);
      run.record(this.shaders.passes, this.buffer.part(0));
      this.refresh(run.record);
      const r = new Float32Array(await this.gpu.readBytes(this.buffer, 4 * this.shaders.scalars, 4 * OPTIM_SCALARS.count));
      return { loss: r[OPTIM_SCALARS.loss]!, tokens: r[OPTIM_SCALARS.tokens]!, norm: r[OPTIM_SCALARS.norm]!, updated: r[OPTIM_SCALARS.ok]! === 1 };
    } finally {
      run.end();
    }
  }

  /** The loss of `batch` at the masters (the train entry run, its gradients not read). */
  async evaluate(batch: TrainBatch): Promise<{ loss: number; tokens: number }> {
    if (!this.loaded) refuse('the masters were not loaded (WebGpuOptimizer.load)');
    const run = this.trainer.begin(batch);
    try {
      for (const k of this.gpu.program.train!.kernels) run.dispatch(k);
      const [loss, tokens] = await run.read(this.gpu.program.train!.outputs.loss!);
      return { loss: loss!, tokens: tokens! };
    } finally {
      run.end();
    }
  }

  /** The masters and moments as they stand on the device, into `params` (by name). */
  async read(params: readonly ParamState[]): Promise<void> {
    const { size } = this.shaders;
    const all = new Float32Array(await this.gpu.readBytes(this.buffer, 0, 4 * 3 * size));
    const at = new Map(this.shaders.params.map((q) => [q.name, q.at]));
    for (const p of params) {
      const o = at.get(p.name) ?? refuse(`no master for weight ${p.name}`);
      [p.value, p.expAvg, p.expAvgSq].forEach((a, i) => a.set(all.subarray(i * size + o, i * size + o + a.length)));
    }
  }

  /** Records the weights the kernels read made from the masters: each weight's buffer a copy of its
   *  master, a concatenation its parts' masters one after another, an expression its pass's values. */
  private refresh(record: (ps: readonly Pass[], optim: GPUBuffer) => void): void {
    const src = this.buffer.part(0), master = new Map(this.shaders.params.map((q) => [q.name, q]));
    for (const d of this.shaders.derived) if (d.pass) record([d.pass], src);
    const enc = this.gpu.commands();
    // the device keeps the weights the kernels read (a part only a concatenation reads is dropped once joined)
    for (const q of this.shaders.params) {
      if (this.kept.has(q.name)) enc.copyBufferToBuffer(src, 4 * q.at, this.gpu.weight(q.name).part(0), 0, 4 * q.length);
    }
    for (const d of this.shaders.derived) {
      if (!this.kept.has(d.name)) continue;
      const dst = this.gpu.weight(d.name);
      if (d.at !== undefined) enc.copyBufferToBuffer(src, 4 * d.at, dst.part(0), 0, 4 * d.length);
      let to = 0;
      for (const p of d.parts ?? []) {
        const q = master.get(p)!;
        enc.copyBufferToBuffer(src, 4 * q.at, dst.part(0), 4 * to, 4 * q.length);
        to += q.length;
      }
    }
  }

  dispose(): void {
    this.buffer.destroy();
    this.trainer.dispose();
  }
}

/** A batch of two tokens, for a run whose buffers the optimizer's own passes bind (nothing dispatched). */
const nothing = (): TrainBatch => ({ tokens: Int32Array.of(0, 0), positions: Int32Array.of(0, 1), seqs: [{ start: 0, len: 2 }], labels: Int32Array.of(-100, 0) });

function refuse(why: string): never {
  throw new RuntimeError('RT506', [why]);
}
