// archc train a.arch b.arch: variants trained on the same batches (same ids and positions, step by
// step), each into a run directory equal to a run of its own, with a comparison whose stats are
// `archc stats`'s and a loss plot with one curve per variant; refusals name the place, writing nothing.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../runtime/tokenizer.ts';
import type { PackedBatch } from '../../runtime/train/data.ts';
import { packedBatches } from '../../runtime/train/data-rows.ts';
import type { Variant } from '../../runtime/train/compare.ts';
import { BAMBA, ROOT, TINY, runCli, setsFor } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-compare-');
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const SETS = setsFor({ ...TINY, vocab: 264 }).flatMap((s) => ['--set', s]);
const TEXT = 'The quick brown fox jumps over the lazy dog. <|endoftext|>A stitch in time saves nine. <|endoftext|>Pack my box with five dozen liquor jugs. ' +
  '<|endoftext|>How vexingly quick daft zebras jump! <|endoftext|>Sphinx of black quartz, judge my vow.';
const STEPS = 3;
const flags = (data: string, out: string, ...extra: string[]) =>
  [...SETS, '--tokenizer', TOKENIZER, '--data', data, '--seq-len', '24', '--batch', '2', '--lr', '1e-2', '--steps', String(STEPS), '-o', out, ...extra];
const jsonl = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);

/** A variant of Bamba: the same file with a narrower causal conv (d_conv 2, not 4). */
function narrowBamba(dir: string): string {
  const text = readFileSync(BAMBA, 'utf8');
  const narrow = text.replace(/param d_conv( +)= 4 /, 'param d_conv$1= 2 ');
  expect(narrow).not.toBe(text);
  writeFileSync(join(dir, 'narrow.arch'), narrow);
  return join(dir, 'narrow.arch');
}

describe('archc train with several models', () => {
  it('trains each variant on the same batches into a run of its own and compares them with archc stats\'s figures', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), run = join(dir, 'run'), alone = join(dir, 'alone');
    writeFileSync(data, TEXT);
    const narrow = narrowBamba(dir);
    const r = await runCli(['train', BAMBA, narrow, ...flags(data, run, '--eval', data)], 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(run).sort()).toEqual(['.archc-output.json', 'bamba', 'compare.json', 'compare.md', 'loss.svg', 'narrow']);
    const cmp = JSON.parse(readFileSync(join(run, 'compare.json'), 'utf8')) as { settings: Record<string, unknown>; variants: Variant[] };
    expect(cmp.variants.map((v) => v.name)).toEqual(['bamba', 'narrow']);

    // the batches, as the data loader makes them from the same file, seed and shapes
    const tok = (await loadTokenizer(TOKENIZER))!;
    const want = createHash('sha256'), counted: number[] = [];
    const batches = packedBatches(data, tok, { seqLen: 24, batch: 2, seed: 0 });
    for (let k = 0; k < STEPS; k++) {
      const b = batches.next().value as PackedBatch;
      for (const a of [b.tokens, b.positions]) want.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      counted.push((counted.at(-1) ?? 0) + b.labels.filter((l) => l !== -100).length);
    }
    const digest = want.digest('hex');
    for (const v of cmp.variants) {
      expect(v.batches_sha256, `${v.name}: the ids and positions of every step`).toBe(digest);
      const m = jsonl(join(run, v.name, 'metrics.jsonl'));
      expect(m.map((x) => x.tokens), `${v.name}: counted tokens after each step`).toEqual(counted);
      expect(v.tokens).toBe(counted.at(-1));
      expect(v.final_loss).toBe(m.at(-1)!.loss);
      expect(v.eval_bits_per_byte).toBe(jsonl(join(run, v.name, 'eval.jsonl')).at(-1)!.eval_bits_per_byte);
      expect(v.tokens_per_s).toBeGreaterThan(0);
      expect(Number.isFinite(v.tokens_per_s)).toBe(true);
      // the figures archc stats gives for the same file and sets at the row length
      const st = await runCli(['stats', v.file, ...SETS, '--context', '24', '--json'], 60_000);
      expect(st.code, st.stderr).toBe(0);
      const s = JSON.parse(st.stdout) as { parameters: { total: number }; flopsPerToken: { prefill: number }; state: { totalBytes: number } };
      expect([v.parameters, v.flops_per_token, v.state_bytes], v.name).toEqual([s.parameters.total, s.flopsPerToken.prefill, s.state.totalBytes]);
    }
    expect(cmp.variants[1]!.parameters, 'a narrower conv has fewer parameters').toBeLessThan(cmp.variants[0]!.parameters);
    expect(cmp.variants[1]!.state_bytes).toBeLessThan(cmp.variants[0]!.state_bytes);

    // one curve per variant, STEPS points each, labelled with its name
    const svg = readFileSync(join(run, 'loss.svg'), 'utf8');
    const lines = [...svg.matchAll(/<polyline[^>]*points="([^"]*)"/g)].map((x) => x[1]!.split(' '));
    expect(lines.map((l) => l.length)).toEqual([STEPS, STEPS]);
    expect(lines[0]).not.toEqual(lines[1]);
    for (const v of cmp.variants) expect(svg).toContain(`>${v.name}</text>`);
    const md = readFileSync(join(run, 'compare.md'), 'utf8');
    for (const v of cmp.variants) expect(md).toMatch(new RegExp(`^\\| ${v.name} \\| .* \\| ${v.final_loss.toFixed(4)} \\| ${v.eval_bits_per_byte!.toFixed(4)} \\|$`, 'm'));

    // a variant's directory is the run the model trains alone, byte for byte, and resumes as one
    const a = await runCli(['train', narrow, ...flags(data, alone, '--eval', data)], 120_000);
    expect(a.code, a.stderr).toBe(0);
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'trainer_state.json', 'config.json']) {
      expect(readFileSync(join(run, 'narrow', f)).equals(readFileSync(join(alone, f))), f).toBe(true);
    }
    const more = await runCli(['train', '--resume', join(run, 'narrow'), '--steps', String(STEPS + 1)], 120_000);
    expect(more.code, more.stderr).toBe(0);
    expect(jsonl(join(run, 'narrow', 'metrics.jsonl')).map((x) => x.step)).toEqual([1, 2, 3, 4]);
  }, 300_000);

  it('names variants after their files, made unique by their folder, never a hidden one', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), run = join(dir, 'run');
    writeFileSync(data, TEXT);
    mkdirSync(join(dir, 'other'));
    writeFileSync(join(dir, 'other', 'bamba.arch'), readFileSync(BAMBA, 'utf8'));
    writeFileSync(join(dir, '..arch'), readFileSync(BAMBA, 'utf8'));
    const r = await runCli(['train', BAMBA, join(dir, 'other', 'bamba.arch'), join(dir, '..arch'), ...flags(data, run, '--steps', '1')], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const cmp = JSON.parse(readFileSync(join(run, 'compare.json'), 'utf8')) as { variants: Variant[] };
    expect(cmp.variants.map((v) => v.name)).toEqual(['bamba', 'other-bamba', 'model']);
    // the same model from two files: the same run
    expect(readFileSync(join(run, 'bamba', 'model.safetensors')).equals(readFileSync(join(run, 'other-bamba', 'model.safetensors')))).toBe(true);
  }, 120_000);

  it('refuses the same file twice, a variant that does not compile, and flags a comparison cannot take, writing nothing', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), run = join(dir, 'run');
    writeFileSync(data, TEXT);
    const broken = join(dir, 'broken.arch');
    writeFileSync(broken, readFileSync(BAMBA, 'utf8').replace(/param d_conv( +)= 4 /, 'param d_conv$1= oops '));
    const rows: [string[], string][] = [
      [['train', BAMBA, `${ROOT}/models/../models/bamba.arch`, ...flags(data, run)], `error AC315: invalid train: ${ROOT}/models/../models/bamba.arch is the file of variant bamba again`],
      [['train', BAMBA, broken, ...flags(data, run)], `${broken}:24:`],
      [['train', BAMBA, join(dir, 'absent.arch'), ...flags(data, run)], `error AC100: cannot read file ${join(dir, 'absent.arch')}`],
      [['train', BAMBA, broken, ...flags(data, run, '--save-every', '1')], 'error AC315: invalid --save-every: a comparison is written once, at the end'],
      [['train', BAMBA, broken, ...flags(data, run, '--resume', run)], 'error AC315: invalid --resume: a comparison cannot be resumed'],
    ];
    for (const [argv, said] of rows) {
      const r = await runCli(argv, 60_000);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stderr.startsWith(said), r.stderr).toBe(true);
      expect(r.stderr).not.toContain('    at ');
    }
    expect(existsSync(run)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['broken.arch', 'd.txt']);
  }, 120_000);
});
