// The page of test/browser/train.test.ts: fetches the program (with its train entry), its WGSL, the
// initial weights and the batch, and trains on WebGPU (navigator.gpu) with everything on the device:
// the train entry, the gradients' norm, clipping and AdamW (runtime/train/webgpu-engine.ts); each
// step reads back its loss and norm only.

import type { TrainBatch } from '../../runtime/cpu/train.ts';
import type { Program } from '../../runtime/program.ts';
import { WebGpuTrainEngine } from '../../runtime/train/webgpu-engine.ts';
import type { WgslProgram } from '../../runtime/webgpu/shaders.ts';
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
  const engine = await WebGpuTrainEngine.open(d.program, d.wgsl);
  try {
    return { losses: await trainSteps(engine, d.weights, batch, d.steps), adapter: engine.adapter };
  } finally {
    engine.close();
  }
};
