// archc train --engine kernels on a mixture of experts (a tiny Granite-4.0-H: a Mamba-2 and an
// attention layer, each with 2 of 8 experts beside a shared one): the train entry on the wasm
// backend takes the float64 reference engine's steps (loss and gradient norm within 1e-5 at each of
// 12: the weights move every step, so the experts' panels must be packed again), and its loss falls
// on a short text (the mean of the last 3 steps' under 0.9 of the first 3's).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-train-moe-');
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const GRANITE = join(ROOT, 'models', 'granite4h.arch');
const SETS = ['n_layers=2', 'layer_types=["mamba", "attention"]', 'rope="rope"', 'n_experts=8', 'k_experts=2', 'd_shared=32', 'vocab=264']
  .flatMap((s) => ['--set', s]);
const TEXT = 'The quick brown fox jumps over the lazy dog. <|endoftext|>A stitch in time saves nine. <|endoftext|>Pack my box with five dozen liquor jugs.';

const args = (data: string, out: string, ...extra: string[]) =>
  ['train', GRANITE, '--preset', 'tiny', ...SETS, '--tokenizer', TOKENIZER, '--data', data, '--seq-len', '24', '--batch', '2', '--lr', '1e-2', '--warmup', '0', '-o', out, ...extra];
const metrics = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);

describe('archc train --engine kernels on a mixture of experts', () => {
  it('takes the reference engine\'s 12 steps on a tiny Granite-4.0-H (loss and gradient norm within 1e-5), its loss falling', async () => {
    const dir = tmp(), data = join(dir, 'd.txt');
    writeFileSync(data, TEXT);
    for (const engine of ['reference', 'kernels']) {
      const r = await runCli(args(data, join(dir, engine), '--steps', '12', '--engine', engine), 120_000);
      expect(r.code, r.stderr).toBe(0);
    }
    const [r, k] = [metrics(join(dir, 'reference')), metrics(join(dir, 'kernels'))];
    expect(r).toHaveLength(12);
    r.forEach((m, i) => {
      const g = k[i]!;
      expect(Math.abs(g.loss! - m.loss!) / m.loss!, `step ${i + 1} loss ${g.loss} vs ${m.loss}`).toBeLessThan(1e-5);
      expect(Math.abs(g.grad_norm! - m.grad_norm!) / m.grad_norm!, `step ${i + 1} |g| ${g.grad_norm} vs ${m.grad_norm}`).toBeLessThan(1e-5);
    });
    console.log(`tiny Granite-4.0-H on the train entry: loss ${k.map((m) => m.loss!.toFixed(3)).join(', ')}`);
    expect(k).toHaveLength(12);
    const mean = (a: Record<string, number>[]) => a.reduce((s, m) => s + m.loss!, 0) / a.length;
    expect(mean(k.slice(-3))).toBeLessThan(0.9 * mean(k.slice(0, 3)));
  }, 240_000);
});
