// The page of test/browser/train.test.ts: trains through the generated package, as an app would:
// its `Trainer` (the package's ./train, built with --train and bundled for the browser, served as
// /train.js) starts from the initial weights in data.json and takes its steps on WebGPU
// (navigator.gpu) with everything on the device: the package's train entry, the gradients' norm,
// clipping and AdamW; each step reads back its loss and norm only.

import type { TrainBatch } from '../../runtime/cpu/train.ts';
import type { Trainer, TrainerOptions } from '../../runtime/train/session.ts';
import { LR, packedBatch } from './train-steps.ts';

interface Data {
  readonly weights: { name: string; shape: number[]; value: number[] }[];
  readonly batch: { tokens: number[]; positions: number[]; seqs: { start: number; len: number }[]; labels: number[] };
  readonly steps: number;
}

/** The package's ./train, as a page sees it. */
interface PackageTrain {
  readonly Trainer: { start(weights: Data['weights'], options: TrainerOptions): Promise<Trainer> };
}

const w = window as unknown as { adapter(): Promise<string | null>; train(url: string, pkg: string): Promise<number[]> };
w.adapter = async () => {
  const a = navigator.gpu && await navigator.gpu.requestAdapter();
  return a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : null;
};
w.train = async (url, pkg) => {
  const [d, { Trainer }] = await Promise.all([(await fetch(url)).json() as Promise<Data>, import(pkg) as Promise<PackageTrain>]);
  const b: TrainBatch = { tokens: Int32Array.from(d.batch.tokens), positions: Int32Array.from(d.batch.positions), seqs: d.batch.seqs, labels: Int32Array.from(d.batch.labels) };
  const batch = packedBatch(b);
  const t = await Trainer.start(d.weights, { steps: d.steps, lr: LR, warmup: 0, clip: 1, backend: 'webgpu' });
  try {
    const losses: number[] = [];
    for (let s = 0; s < d.steps; s++) losses.push((await t.stepAsync(batch)).loss);
    losses.push((await t.evaluateAsync([batch])).loss);
    return losses;
  } finally {
    t.close();
  }
};
