// The train entry on WebGPU from the CLI (Dawn on SwiftShader): `archc train --engine kernels
// --backend webgpu` takes its steps whole on the device (AdamW there too) and `archc forward --loss
// --grads FILE --engine kernels --backend webgpu` writes the entry's gradients. Against the same
// commands on the wasm backend (train: each step's loss and gradient norm, and the eval loss, within
// 1e-4 relative, the saved masters and moments within 1e-4 rel L2 per weight; a run resumed on WebGPU
// equals one that never stopped, bit for bit) and the CPU backend (grads: each weight's gradient
// within 1e-4 rel L2), on a tiny Bamba.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { runTrain } from '../../runtime/cpu/train.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { BAMBA, ROOT, TINY, runCli, setsFor, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { compareGrads } from '../grad/helpers.ts';
import { useSwiftShader } from './gpu.ts';

const TOL = 1e-4;
const tmp = useTmpDirs('archc-train-webgpu-');
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const SETS = setsFor({ ...TINY, vocab: 264 }).flatMap((s) => ['--set', s]);
const TEXT = 'The quick brown fox jumps over the lazy dog. <|endoftext|>A stitch in time saves nine. <|endoftext|>Pack my box with five dozen liquor jugs.';

beforeAll(useSwiftShader);

/** Every tensor of a safetensors file (one of the run's), as f32 by name. */
function tensors(file: string, prefix = ''): Map<string, Float32Array> {
  const c = openCheckpoint(file);
  try {
    return new Map([...c.tensors.keys()].filter((n) => n.startsWith(prefix)).map((n) => [n, toF32(c.read(n))]));
  } finally {
    c.close();
  }
}

describe('the train entry on WebGPU from the CLI', () => {
  it('archc train --engine kernels --backend webgpu: 2 steps equal the wasm backend\'s (loss, norm, eval, masters, moments); resumed = straight', async () => {
    const dir = tmp(), data = join(dir, 'd.txt');
    writeFileSync(data, TEXT);
    const read = (run: string, f = 'metrics.jsonl') => readFileSync(join(run, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);
    for (const [run, steps, extra] of [['w', '2', []], ['g', '2', ['--backend', 'webgpu']], ['g1', '1', ['--backend', 'webgpu']]] as const) {
      const r = await runCli(['train', BAMBA, ...SETS, '--tokenizer', TOKENIZER, '--data', data, '--eval', data, '--seq-len', '24', '--batch', '2', '--lr', '1e-2', '--warmup', '0',
        '--steps', steps, '--engine', 'kernels', ...extra, '-o', join(dir, run)], 120_000);
      expect(r.code, r.stderr).toBe(0);
    }
    const resumed = await runCli(['train', '--resume', join(dir, 'g1'), '--steps', '2'], 120_000);
    expect(resumed.code, resumed.stderr).toBe(0);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) expect(readFileSync(join(dir, 'g1', f)).equals(readFileSync(join(dir, 'g', f))), `resumed ${f}`).toBe(true);
    const [ew, eg] = [read(join(dir, 'w'), 'eval.jsonl').at(-1)!, read(join(dir, 'g'), 'eval.jsonl').at(-1)!];
    expect(Math.abs(eg.eval_loss! - ew.eval_loss!) / ew.eval_loss!, `eval loss ${eg.eval_loss} vs ${ew.eval_loss}`).toBeLessThan(TOL);
    const [w, g] = [read(join(dir, 'w')), read(join(dir, 'g'))];
    expect(g).toHaveLength(2);
    g.forEach((m, i) => {
      console.log(`step ${i + 1}: loss ${m.loss} (wasm ${w[i]!.loss}), |g| ${m.grad_norm} (wasm ${w[i]!.grad_norm})`);
      expect(Math.abs(m.loss! - w[i]!.loss!) / w[i]!.loss!, `step ${i + 1} loss`).toBeLessThan(TOL);
      expect(Math.abs(m.grad_norm! - w[i]!.grad_norm!) / w[i]!.grad_norm!, `step ${i + 1} |g|`).toBeLessThan(TOL);
    });
    for (const [file, prefix] of [['model.safetensors', ''], ['optimizer.safetensors', 'exp_avg.'], ['optimizer.safetensors', 'exp_avg_sq.']] as const) {
      const e = compareGrads(tensors(join(dir, 'g', file), prefix), tensors(join(dir, 'w', file), prefix));
      console.log(`${file} ${prefix}: rel L2 ${e.all.toExponential(2)}, worst ${e.name} ${e.worst.toExponential(2)}`);
      expect(e.worst, `${file} ${e.name}`).toBeLessThan(TOL);
    }
    expect(JSON.parse(readFileSync(join(dir, 'g', 'trainer_state.json'), 'utf8')).settings.backend).toBe('webgpu');
  }, 240_000);

  it('archc forward --loss --grads F --engine kernels --backend webgpu: the CPU backend\'s train entry\'s gradients', async () => {
    const dir = tmp(), ckpt = join(dir, 'ckpt'), out = join(dir, 'g.safetensors');
    mkdirSync(ckpt);
    const { compiled, tensors: w } = writeCheckpoint(ckpt, { tie: false }, { seed: 4 });
    const r = await runCli(['forward', BAMBA, '--weights', ckpt, '--ids', '5,9,2,7,7,1,3;4,8,8,2', '--loss', '--grads', out, '--engine', 'kernels', '--backend', 'webgpu'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    // the CPU backend's train entry on the same batch (the first token of each sequence predicts nothing)
    const cpu = new CpuBackend(lowerToProgram(compiled.graph, compiled.bindings, { train: true }));
    cpu.updateWeights(new Map(w.map((t) => [t.name, t.tensor.data as Float32Array])));
    const ids = Int32Array.of(5, 9, 2, 7, 7, 1, 3, 4, 8, 8, 2), labels = Int32Array.from(ids);
    labels[0] = labels[7] = -100;
    const want = runTrain(cpu, { tokens: ids, positions: Int32Array.of(0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3), seqs: [{ start: 0, len: 7 }, { start: 7, len: 4 }], labels });
    const e = compareGrads(tensors(out), want.grads);
    console.log(`forward --grads on WebGPU: rel L2 ${e.all.toExponential(2)}, worst ${e.name} ${e.worst.toExponential(2)} (the CPU train entry's)`);
    expect(e.worst, e.name).toBeLessThan(TOL);
    const norm = Math.sqrt([...want.grads.values()].reduce((a, g) => a + g.reduce((b, v) => b + v * v, 0), 0));
    expect(Math.abs((JSON.parse(r.stdout) as { grad_norm: number }).grad_norm - norm) / norm).toBeLessThan(TOL);
  }, 120_000);

  it('refuses --backend with another engine than kernels, and a backend the train entry does not train on', async () => {
    const dir = tmp(), data = join(dir, 'd.txt');
    writeFileSync(data, TEXT);
    const base = ['train', BAMBA, ...SETS, '--tokenizer', TOKENIZER, '--data', data, '--steps', '1', '-o', join(dir, 'run')];
    for (const [extra, said] of [[['--engine', 'wasm', '--backend', 'webgpu'], 'error AC315: invalid --backend: it is the backend of --engine kernels'],
      [['--engine', 'kernels', '--backend', 'cuda'], 'error AC315: invalid --backend: the train entry does not train on "cuda"']] as const) {
      const r = await runCli([...base, ...extra]);
      expect(r.code).toBe(1);
      expect(r.stderr.startsWith(said), r.stderr).toBe(true);
    }
  }, 60_000);
});
