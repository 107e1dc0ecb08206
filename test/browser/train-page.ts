// The page of test/browser/train.test.ts: fetches the program (with its train entry), its WGSL, the
// initial weights and the batch, and trains on WebGPU (navigator.gpu): each step a backend over one
// device takes the masters (its derived weights made from them at upload), the train entry gives the
// loss and gradients, AdamW runs in the page.

import type { TrainBatch } from '../../runtime/cpu/train.ts';
import type { Program } from '../../runtime/program.ts';
import { WebGpuBackend, createWebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProgram } from '../../runtime/webgpu/shaders.ts';
import { runTrainAsync } from '../../runtime/webgpu/train.ts';
import { trainSteps } from './train-steps.ts';

interface Data {
  readonly program: Program;
  readonly wgsl: WgslProgram;
  readonly weights: { name: string; shape: number[]; value: number[] }[];
  readonly batch: { tokens: number[]; positions: number[]; seqs: { start: number; len: number }[]; labels: number[] };
  readonly steps: number;
}

const w = window as unknown as { adapter(): Promise<boolean>; train(url: string): Promise<{ losses: number[]; adapter: string }> };
w.adapter = async () => !!(navigator.gpu && await navigator.gpu.requestAdapter());
w.train = async (url) => {
  const d = await (await fetch(url)).json() as Data;
  const batch: TrainBatch = { tokens: Int32Array.from(d.batch.tokens), positions: Int32Array.from(d.batch.positions), seqs: d.batch.seqs, labels: Int32Array.from(d.batch.labels) };
  const first = await createWebGpuBackend(d.program, d.wgsl);
  try {
    const losses = await trainSteps(d.weights, batch, d.steps, async (weights, b) => {
      const gpu = new WebGpuBackend(d.program, d.wgsl, first.device, first.adapter, false, {}, first.profile);
      try {
        for (const x of d.program.weights) gpu.uploadWeight(x, { dtype: 'f32', shape: x.shape, data: weights.get(x.name)! });
        return await runTrainAsync(gpu, b);
      } finally {
        gpu.dispose();
      }
    });
    return { losses, adapter: first.adapter };
  } finally {
    first.dispose();
  }
};
