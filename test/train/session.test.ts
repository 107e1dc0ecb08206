// The training API the generated package exports (runtime/train/session.ts `Trainer`): from a
// checkpoint and the graph as graph.json holds it, the same steps as `archc train --weights` bit for
// bit (weights and both moments); saved and resumed equals straight through; the saved run loads as
// a checkpoint; bad options, WebGPU without the train program and a save over files it did not
// write are refused, naming them.

import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { graphToJson } from '../../compiler/schema.ts';
import { type Trainer, trainGraphFromJson } from '../../runtime/train/session.ts';
import { Trainer as Session } from '../../runtime/train/session.ts';
import type { TrainGraph } from '../../runtime/train/f32/graph.ts';
import { BAMBA, ROOT, TINY, compileTiny, loadModel, makeDir, removeDir, runCli, setsFor, writeCheckpoint } from '../helpers/checkpoints.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-session-');
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const PARAMS = { ...TINY, vocab: 264 };
const TEXT = 'The quick brown fox jumps over the lazy dog. <|endoftext|>A stitch in time saves nine. <|endoftext|>Pack my box with five dozen liquor jugs.';
const OPTS = { steps: 4, lr: 1e-2, warmup: 2 };
const BATCHES = { seqLen: 24, batch: 2 };

let graph: TrainGraph, kernels: Uint8Array[], ckpt: string, data: string;
const opened: Trainer[] = [];
const open = async (dir: string, o: Parameters<typeof Session.open>[3]) => {
  const t = await Session.open(graph, kernels, dir, { threads: 2, ...o });
  opened.push(t);
  return t;
};
const bytes = (f: string) => readFileSync(f);

let dir: string;
beforeAll(async () => {
  dir = makeDir('archc-session-ckpt-');
  ckpt = join(dir, 'ckpt');
  data = join(dir, 'd.txt');
  mkdirSync(ckpt);
  writeCheckpoint(ckpt, PARAMS, { seed: 5 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(ckpt, f));
  writeFileSync(data, TEXT);
  // the graph as a package holds it: graph.json's text, read back
  graph = trainGraphFromJson(graphToJson(compileTiny({ vocab: 264 }).graph));
  kernels = await wasmKernelVariants();
}, 120_000);
afterAll(() => {
  for (const t of opened) t.close();
  removeDir(dir);
});

describe('Trainer (the package\'s training API)', () => {
  it('takes the steps `archc train --weights --engine wasm` takes, bit for bit; saved and resumed equals straight through', async () => {
    const dir = tmp(), cli = join(dir, 'cli'), straight = join(dir, 'straight'), half = join(dir, 'half'), resumed = join(dir, 'resumed');
    // the Trainer runs the f32 engine (a package carries no train entry), archc train's `--engine wasm`
    const r = await runCli(['train', BAMBA, ...setsFor(PARAMS).flatMap((s) => ['--set', s]), '--weights', ckpt, '--data', data, '--seq-len', '24', '--batch', '2',
      '--lr', '1e-2', '--warmup', '2', '--steps', '4', '--engine', 'wasm', '-o', cli], 120_000);
    expect(r.code, r.stderr).toBe(0);

    const t = await open(ckpt, OPTS);
    const losses: number[] = [];
    for (const b of t.batches(data, BATCHES)) {
      losses.push(t.step(b).loss);
      if (t.state.step === 4) break;
    }
    t.save(straight);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) expect(bytes(join(straight, f)).equals(bytes(join(cli, f))), f).toBe(true);
    expect(bytes(join(straight, 'config.json')).equals(bytes(join(ckpt, 'config.json')))).toBe(true);
    expect(losses.every(Number.isFinite)).toBe(true);

    // two steps, saved, then the run opened again from its files for the other two
    const a = await open(ckpt, OPTS);
    const batches = a.batches(data, BATCHES);
    for (let k = 0; k < 2; k++) a.step(batches.next().value!);
    a.save(half);
    const b = await open(half, { steps: 4, resume: true });
    expect(b.state.step).toBe(2);
    for (let k = 0; k < 2; k++) b.step(batches.next().value!);
    b.save(resumed);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) expect(bytes(join(resumed, f)).equals(bytes(join(straight, f))), f).toBe(true);
    // a fifth step is past the schedule
    expect(() => b.step(batches.next().value!)).toThrow(/RT604.*steps.*4 steps are done/);

    // the run is a checkpoint: its logits on the model's own runtime
    const m = await loadModel(straight, { backend: 'cpu', set: setsFor(PARAMS) });
    const cliModel = await loadModel(cli, { backend: 'cpu', set: setsFor(PARAMS) });
    expect(Array.from(m.forward({ ids: [84, 104, 101] }).logits)).toEqual(Array.from(cliModel.forward({ ids: [84, 104, 101] }).logits));
  }, 300_000);

  it('starts from weights in memory as from their checkpoint (Trainer.start reads no file)', async () => {
    const c = openCheckpoint(ckpt);
    const weights = [...c.tensors.keys()].map((name) => ({ name, shape: c.tensors.get(name)!.shape, value: toF32(c.read(name)) }));
    c.close();
    const a = await open(ckpt, { steps: 2 });
    const b = await Session.start(weights, () => graph, kernels, { steps: 2, threads: 2 });
    opened.push(b);
    const batch = Session.pack([[3, 1, 4, 1, 5, 9], [2, 6, 5]]);
    for (let k = 0; k < 2; k++) expect(b.step(batch).loss).toBe(a.step(batch).loss);
    b.state.params.forEach((p, i) => expect(p.value, p.name).toEqual(a.state.params[i]!.value));
    await expect(Session.start(weights.slice(1), () => graph, kernels, { steps: 2 })).rejects.toThrow(/RT604: Trainer option weights: \S+ is missing/);
  }, 120_000);

  it('Trainer.pack keeps sequences apart: positions restart and no label crosses', () => {
    const b = Session.pack([[5, 6, 7], [8, 9]]);
    expect(Array.from(b.tokens)).toEqual([5, 6, 7, 8, 9]);
    expect(Array.from(b.positions)).toEqual([0, 1, 2, 0, 1]);
    expect(Array.from(b.labels)).toEqual([-100, 6, 7, -100, 9]);
  });

  it('refuses bad options and a save over a directory it did not write, naming them', async () => {
    await expect(open(ckpt, { steps: 0 })).rejects.toThrow(/RT604: Trainer option steps: must be an integer ≥ 1, not 0/);
    await expect(open(ckpt, { steps: 3, lr: -1 })).rejects.toThrow(/RT604: Trainer option lr: must be a number ≥ 0, not -1/);
    await expect(open(join(tmp(), 'none'), { steps: 3 })).rejects.toThrow(/RT100/);
    // WebGPU needs the train program a package built with --train ships
    await expect(open(ckpt, { steps: 3, backend: 'webgpu' })).rejects.toThrow(/RT606: the Trainer cannot train on webgpu: .*archc build --train/);
    await expect(open(ckpt, { steps: 3, backend: 'cuda' as 'wasm' })).rejects.toThrow(/RT604: Trainer option backend: must be one of wasm, webgpu, not "cuda"/);
    const t = await open(ckpt, { steps: 3 });
    const mine = tmp();
    writeFileSync(join(mine, 'notes.txt'), 'keep');
    expect(() => t.save(mine)).toThrow(/RT605: cannot save the run to .*holds no saved run/);
    expect(readFileSync(join(mine, 'notes.txt'), 'utf8')).toBe('keep');
  }, 120_000);
});
