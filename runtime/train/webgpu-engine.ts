// A TrainEngine whose steps run whole on WebGPU (runtime/webgpu/optim.ts): the kernel program's
// train entry, the gradients' norm, clipping and AdamW in one command buffer, the masters and moments
// kept on the device; a step reads back its loss and norm only (trainer.ts trainStepAsync drives it
// through `device`). `archc train --engine kernels --backend webgpu` in Node (Dawn), and a page's
// training loop in a browser (navigator.gpu): nothing here needs Node.

import { RuntimeError } from '../errors.ts';
import type { Program } from '../program.ts';
import { type WebGpuBackend, type WebGpuOptions, createWebGpuBackend } from '../webgpu/backend.ts';
import { WebGpuOptimizer, f32Weights } from '../webgpu/optim.ts';
import type { WgslProgram } from '../webgpu/shaders.ts';
import type { DeviceSteps, StepResult, TrainEngine } from './engine.ts';
import type { TrainState } from './trainer.ts';

export class WebGpuTrainEngine implements TrainEngine {
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly device: DeviceSteps;
  /** The state whose masters and moments are on the device. */
  private on: TrainState | null = null;

  private constructor(private readonly gpu: WebGpuBackend, private readonly opt: WebGpuOptimizer) {
    this.weights = gpu.program.weights.map((w) => ({ name: w.name, shape: w.shape }));
    const load = (s: TrainState) => {
      if (this.on !== s) { this.opt.load(s.params); this.on = s; }
    };
    this.device = {
      step: async (s, c, lr, batch) => {
        load(s);
        return this.opt.step(batch, { ...c, lr, t: s.step + 1 });
      },
      evaluate: async (s, batch) => {
        load(s);
        // a batch with nothing to predict (an eval file's 1-token tail) weighs nothing
        return batch.labels.every((y, t) => t === 0 || y === -100) ? { loss: 0, tokens: 0 } : this.opt.evaluate(batch);
      },
      sync: async (s) => {
        if (this.on === s) await this.opt.read(s.params);
      },
    };
  }

  /** `program` (lowered with { train: true }) and its WGSL on a WebGPU device (`opts` as a model's
   *  load takes them); every weight f32 on the device. */
  static async open(program: Program, wgsl: WgslProgram, opts: WebGpuOptions = {}): Promise<WebGpuTrainEngine> {
    const p = f32Weights(program);
    const gpu = await createWebGpuBackend(p, wgsl, opts);
    try {
      // the weights' buffers (and the derived weights') made once; the masters fill them at the first step
      for (const w of p.weights) gpu.uploadWeight(w, { dtype: 'f32', shape: w.shape, data: new Float32Array(w.shape.reduce((a, b) => a * b, 1)) });
      const opt = new WebGpuOptimizer(gpu);
      await opt.checkShaders();
      return new WebGpuTrainEngine(gpu, opt);
    } catch (e) {
      gpu.dispose();
      throw e;
    }
  }

  /** The adapter the steps run on. */
  get adapter(): string {
    return this.gpu.adapter;
  }

  step(): StepResult {
    throw new RuntimeError('RT504', ['webgpu', 'trainStepAsync (runtime/train/trainer.ts), which steps through `device`']);
  }

  evaluate(): StepResult {
    throw new RuntimeError('RT504', ['webgpu', 'evaluateAsync (runtime/train/trainer.ts)']);
  }

  close(): void {
    this.opt.dispose();
    this.gpu.dispose();
  }
}

