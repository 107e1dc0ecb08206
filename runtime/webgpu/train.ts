// The train entry on WebGPU (runtime/cpu/train.ts `runTrain` is the oracle): the forward kernels as
// inference runs them, the loss and the backward families as codegen/wgsl/train.ts renders them,
// all recorded into one command buffer; then the loss and every weight's gradient (the arena's
// constant region) come back in one read. The labels follow the rotary table in the integer buffer.
// Every buffer is bound whole: a device or a model whose buffers the load's plan splits over
// several bindings is refused (RT506), as is a program rendered without a train entry.

import { type RunBatch, viewColumns } from '../backend.ts';
import { RuntimeError } from '../errors.ts';
import { type TrainBatch, type TrainResult, checkLabels } from '../cpu/train.ts';
import type { TrainKernel, View } from '../program.ts';
import { type WebGpuBackend, shaderProblem } from './backend.ts';
import { batchInts, recordPasses } from './record.ts';
import type { WebGpuStatePool } from './pool.ts';
import { type BindingKind, type Pass, type RunCount, type WgslEntry, shaderCode } from './shaders.ts';
import { type BoundPass, SplitBuffer } from './split.ts';

type Own = 'arena' | 'ints' | 'scratch0' | 'scratch1' | 'scratch2';

/** One run of the train entry (WebGpuTrainer.begin). */
export interface TrainRun {
  readonly T: number;
  readonly S: number;
  write(v: View, data: Float32Array): void;
  dispatch(k: TrainKernel): void;
  /** Records passes of the train entry's run that bind `optim` besides its buffers (the optimizer's). */
  record(passes: readonly Pass[], optim: GPUBuffer): void;
  read(v: View): Promise<Float32Array>;
  end(): void;
}

/** The train entry's buffers on one backend, kept from step to step. */
export class WebGpuTrainer {
  private readonly shaders: WgslEntry;
  private readonly buffers = new Map<Own, SplitBuffer>();
  private readonly bound = new Map<Pass, BoundPass>();
  private readonly passes: Map<TrainKernel, readonly Pass[]>;

  constructor(private readonly gpu: WebGpuBackend) {
    const entry = gpu.program.train;
    if (!entry) refuse('the program has no train entry (lower it with { train: true })');
    this.shaders = gpu.shaders.train?.[gpu.profile] ?? refuse('its WGSL was rendered without the train entry (render the program lowered with { train: true })');
    if (this.shaders.kernels.length !== entry.kernels.length) refuse('its WGSL was rendered for another train entry');
    this.passes = new Map(entry.kernels.map((k, i) => [k, this.shaders.kernels[i]!.passes]));
    const split = [...gpu.plan.buffers].filter(([kind, s]) => s.parts > 1 && (kind === 'state' || kind.startsWith('w:'))).map(([kind]) => kind);
    if (split.length) refuse(`this device binds ${split.slice(0, 3).join(', ')} in parts; the train entry binds every buffer whole`);
  }

  /** Compiles every pass of the train entry; RT503 with the source around the first error. */
  async checkShaders(): Promise<void> {
    for (const k of this.shaders.kernels) {
      for (const p of k.passes) {
        const problem = await shaderProblem(this.gpu.device, this.boundPass(p).code);
        if (problem) throw new RuntimeError('RT503', [k.kernel, `train, pass ${p.name}`, problem]);
      }
    }
  }

  /** The loss and every weight's gradient of `batch` (each sequence from a fresh state), all the
   *  entry's kernels in one command buffer. */
  async run(batch: TrainBatch): Promise<TrainResult> {
    const entry = this.gpu.program.train!, inv = this.begin(batch);
    try {
      for (const k of entry.kernels) inv.dispatch(k);
      // the constant region holds the loss and every gradient: one read
      const { T, S } = inv, constants = entry.arena.T * T + entry.arena.S * S;
      const all = new Float32Array(await this.gpu.readBytes(this.buffer('arena'), 4 * constants, 4 * Math.max(1, entry.arena.C ?? 0)));
      const at = (v: View) => {
        const b = entry.buffers[v.buf]!;
        if (b.rows !== 'C') throw new Error(`archc runtime: train output of buffer ${v.buf} is not a constant row`);
        return all.slice(b.offset + v.col, b.offset + v.col + v.width);
      };
      const [loss, tokens] = at(entry.outputs.loss!);
      const grads = new Map<string, Float32Array>();
      for (const [name, v] of Object.entries(entry.outputs)) if (name.startsWith('grad:')) grads.set(name.slice(5), at(v));
      return { loss: loss!, tokens: tokens!, grads };
    } finally {
      inv.end();
    }
  }

  /** A run of the train entry on `batch` (its integer inputs, labels and buffers set): `dispatch`
   *  records a kernel's passes; `write` and `read` reach the arena (the family tests run kernels one
   *  at a time on inputs they put there); `end` frees the state slots. */
  begin(batch: TrainBatch): TrainRun {
    const entry = this.gpu.program.train!;
    checkLabels(batch, entry.outputs.logits!.width);
    const pool = this.gpu.createStatePool(Math.max(...batch.seqs.map((s) => s.len))) as WebGpuStatePool;
    const slots = batch.seqs.map(() => pool.acquire());
    if (pool.buffer().split.parts > 1) { pool.dispose(); refuse('the state slots of this batch are split over bindings'); }
    const T = batch.tokens.length, S = batch.seqs.length;
    const { ints, chunks } = batchInts(this.gpu, { ...batch, slots, lengths: slots.map(() => 0) } as RunBatch, pool.capacity, this.shaders.chunk, T);
    ints.set(batch.labels, ints.length - T);
    const n = (r: RunCount['rows']) => (r === 'T' ? T : r === 'S' ? S : r === 'C' ? 1 : chunks);
    const need: Record<Own, number> = { arena: 4 * (entry.arena.T * T + entry.arena.S * S + (entry.arena.C ?? 0)), ints: ints.byteLength, scratch0: 0, scratch1: 0, scratch2: 0 };
    for (const ps of this.passes.values()) {
      for (const p of ps) for (const [role, c] of Object.entries(p.scratch ?? {})) need[role as Own] = Math.max(need[role as Own], 4 * Math.ceil((n(c!.rows) * c!.times) / c!.per));
    }
    for (const [role, bytes] of Object.entries(need) as [Own, number][]) {
      if (this.buffer(role).ensure(Math.max(16, bytes), false)) continue;
      pool.dispose();
      throw new RuntimeError('RT505', [`the train entry on ${T} tokens: the ${role}`, bytes, this.gpu.plan.partLimit, 'train on fewer tokens at once']);
    }
    this.gpu.flush();
    this.buffer('ints').write(0, ints);
    const place = (v: View) => {
      const b = entry.buffers[v.buf] ?? refuse(`a view of buffer ${v.buf}, which the train entry does not have`);
      const rows = b.rows === 'T' ? T : b.rows === 'S' ? S : 1;
      const base = b.rows === 'T' ? b.offset * T : entry.arena.T * T + (b.rows === 'C' ? entry.arena.S * S + b.offset : b.offset * S);
      return { base, rows, stride: b.width };
    };
    const buffer = (b: { kind: BindingKind }): GPUBuffer =>
      b.kind === 'state' ? pool.buffer().part(0) : b.kind.startsWith('w:') ? this.gpu.weight(b.kind.slice(2)).part(0) : this.buffer(b.kind as Own).part(0);
    return {
      T, S,
      write: (v, data) => {
        const { base, rows, stride } = place(v);
        this.gpu.flush();
        for (let r = 0; r < rows; r++) this.buffer('arena').write(4 * (base + r * stride + v.col), data.subarray(r * v.width, (r + 1) * v.width));
      },
      dispatch: (k) => recordPasses(this.gpu, this.passes.get(k) ?? refuse(`${k.name} is not a kernel of the train entry`), n, (p) => this.boundPass(p), buffer),
      record: (ps, optim) => recordPasses(this.gpu, ps, n, (p) => this.boundPass(p), (b) => (b.kind === 'optim' ? optim : buffer(b))),
      read: async (v) => {
        const { base, rows, stride } = place(v);
        return viewColumns(new Float32Array(await this.gpu.readBytes(this.buffer('arena'), 4 * base, 4 * rows * stride)), rows, stride, v);
      },
      end: () => pool.dispose(),
    };
  }

  private buffer(role: Own): SplitBuffer {
    let b = this.buffers.get(role);
    if (!b) this.buffers.set(role, b = new SplitBuffer(this.gpu, role, { parts: 1, partBytes: this.gpu.plan.partLimit, bytes: 0 }));
    return b;
  }

  /** A pass with every binding whole. */
  private boundPass(p: Pass): BoundPass {
    let b = this.bound.get(p);
    if (!b) this.bound.set(p, b = { pass: p, code: shaderCode(p), bindings: p.bindings.map((kind) => ({ kind, part: 0 })) });
    return b;
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.destroy();
    this.buffers.clear();
  }
}

const trainers = new WeakMap<WebGpuBackend, WebGpuTrainer>();

/** The train entry of the backend's program on `batch`: the loss and every weight's gradient
 *  (runtime/cpu/train.ts `runTrain` on WebGPU). RT506 when this backend cannot run it. */
export async function runTrainAsync(gpu: WebGpuBackend, batch: TrainBatch): Promise<TrainResult> {
  let t = trainers.get(gpu);
  if (!t) {
    t = new WebGpuTrainer(gpu);
    await t.checkShaders();
    trainers.set(gpu, t);
  }
  return t.run(batch);
}

function refuse(why: string): never {
  throw new RuntimeError('RT506', [why]);
}

