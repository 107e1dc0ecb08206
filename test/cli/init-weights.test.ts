// init-weights presets (every size scaled together, for each model family), the marking of the
// configs it writes as archc's own, and `run`'s checks of the tokenizer.

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type HfConfig, otherModel, readHfConfig } from '../../runtime/hfconfig.ts';
import { BAMBA, ROOT, inParallel, runCli, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-init-');
const MODEL = (name: string) => join(ROOT, 'models', `${name}.arch`);
/** model_type values of real Hugging Face models that an archc model could be mistaken for. */
const HF_TYPES = ['bamba', 'mamba2', 'llama', 'hymba', 'mamba', 'jamba', 'granitemoehybrid'];

describe('init-weights --preset', () => {
  it('tiny and small scale vocab, width, depth and d_ff together for bamba, mamba2 and llama', async () => {
    const dir = tmp();
    const jobs = ['bamba', 'mamba2', 'llama'].flatMap((m) => ['tiny', 'small'].map((p) => ({ m, p, out: join(dir, `${m}-${p}`) })));
    const results = await inParallel(jobs.map((j) => () => runCli(['init-weights', MODEL(j.m), '-o', j.out, '--preset', j.p])), 2);
    results.forEach((r, i) => expect(r.code, `${jobs[i]!.m} ${jobs[i]!.p}: ${r.stderr}`).toBe(0));
    for (const [i, j] of jobs.entries()) {
      const cfg = readHfConfig(join(j.out, 'config.json')) as Record<string, unknown>;
      const params = Number(/([\d,]+) parameters/.exec(results[i]!.stdout)![1]!.replaceAll(',', ''));
      expect(cfg.vocab_size, `${j.m} ${j.p}`).toBe(j.p === 'tiny' ? 256 : 4096);
      expect(cfg.hidden_size ?? cfg.d_model, `${j.m} ${j.p}`).toBe(j.p === 'tiny' ? 64 : 256);
      expect(cfg.num_hidden_layers, `${j.m} ${j.p}`).toBe(j.p === 'tiny' ? 4 : 8);
      if (j.m !== 'mamba2') expect(cfg.intermediate_size, `${j.m} ${j.p}`).toBe(j.p === 'tiny' ? 128 : 768);
      if (j.p === 'tiny') expect(params, `${j.m} tiny`).toBeLessThan(300_000);
      else expect(params, `${j.m} small`).toBeLessThan(10_000_000);
    }
  });

  it('--set still overrides a preset param, and an unknown preset is refused', async () => {
    const dir = tmp();
    const [ok, bad] = await inParallel([
      () => runCli(['init-weights', BAMBA, '-o', join(dir, 'a'), '--preset', 'tiny', '--set', 'vocab=300']),
      () => runCli(['init-weights', BAMBA, '-o', join(dir, 'b'), '--preset', 'huge']),
    ], 2);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readHfConfig(join(dir, 'a', 'config.json')).vocab_size).toBe(300);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--preset.*huge.*tiny, small/s);
  });

  it('a preset that would replace values a config sets is refused, naming the keys (AC315); one that agrees with it is not', async () => {
    const dir = tmp();
    // a variant's config: Bamba-9B's sizes, and one at the tiny preset's values but for its context
    const agrees = join(dir, 'agrees.json');
    writeFileSync(agrees, JSON.stringify({ hidden_size: 64, num_hidden_layers: 4, attn_layer_indices: [1, 3] }));
    const differs = join(dir, 'differs.json');
    writeFileSync(differs, JSON.stringify({ hidden_size: 64, num_hidden_layers: 4, attn_layer_indices: [1, 3], max_position_embeddings: 512 }));
    const nine = join(ROOT, 'test', 'fixtures', 'configs', 'bamba-9b.json');
    const [clash, partial, alone] = await inParallel([
      () => runCli(['check', BAMBA, '--preset', 'tiny', '--hf-config', nine]),
      () => runCli(['check', BAMBA, '--preset', 'tiny', '--hf-config', differs]),
      () => runCli(['check', BAMBA, '--preset', 'tiny', '--hf-config', agrees]),
    ], 2);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/^error AC315: invalid --preset: tiny would replace \d+ values that .*bamba-9b\.json sets: vocab_size = 128256 \(param vocab; the preset sets 256\), hidden_size = 4096 /);
    expect(clash.stderr).toMatch(/hint: leave out --preset/);
    // only the context differs: that one key is named (the list [1, 3] agrees with the preset's)
    expect(partial.code).toBe(1);
    expect(partial.stderr).toMatch(/tiny would replace 1 value that .*differs\.json sets: max_position_embeddings = 512 \(param context; the preset sets 256\)\n/);
    expect(alone.code, alone.stderr).toBe(0);
  });
});

describe('configs written by init-weights', () => {
  it('are marked as archc\'s, not a real Hugging Face model, and still load', async () => {
    const dir = tmp();
    const ckpt = join(dir, 'ckpt');
    const init = await runCli(['init-weights', MODEL('bamba'), '-o', ckpt, '--preset', 'tiny']);
    expect(init.code, init.stderr).toBe(0);
    const cfg = readHfConfig(join(ckpt, 'config.json')) as unknown as { model_type: string; architectures: string[]; archc?: { model: string } };
    expect(cfg.model_type).toBe('archc-bamba');
    expect(HF_TYPES).not.toContain(cfg.model_type);
    expect(cfg.architectures).toEqual(['ArchcBamba']);
    expect(cfg.archc?.model).toBe('Bamba');
    const [fwd, real] = await inParallel([
      () => runCli(['forward', MODEL('bamba'), '--weights', ckpt, '--ids', '1,2,3', '--loss']),
      // a real Hugging Face Bamba config still binds the params
      () => runCli(['stats', MODEL('bamba'), '--hf-config', join(ROOT, 'test', 'fixtures', 'configs', 'bamba-9b.json')]),
    ], 2);
    expect(fwd.code, fwd.stderr).toBe(0);
    expect(Number.isFinite(JSON.parse(fwd.stdout).loss)).toBe(true);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/at context 262144/); // the fixture's max_position_embeddings
  });
});

describe('run and the tokenizer', () => {
  it('--prompt without tokenizer.json fails before the weights load, naming --ids (RT400)', async () => {
    const dir = tmp();
    writeCheckpoint(dir);
    // no weights at all: an error about them would mean they were read first
    const noWeights = join(dir, 'config-only');
    mkdirSync(noWeights);
    copyFileSync(join(dir, 'config.json'), join(noWeights, 'config.json'));
    const r = await runCli(['run', BAMBA, '--weights', noWeights, '--prompt', 'Hello']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error RT400: cannot load tokenizer .*config-only\/tokenizer\.json: .*--ids/);
  });

  it('warns when the tokenizer knows more ids than the model\'s vocabulary', async () => {
    const dir = tmp();
    writeCheckpoint(dir); // vocab 96
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(dir, f));
    const r = await runCli(['run', BAMBA, '--weights', dir, '--ids', '1,2,3', '--max-tokens', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*tokenizer\.json has ids up to \d+, but the model's vocabulary has 96 entries/);

    const fits = tmp();
    writeCheckpoint(fits, { vocab: 368 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(fits, f));
    writeFileSync(join(fits, 'unused.txt'), '');
    const ok = await runCli(['run', BAMBA, '--weights', fits, '--prompt', 'hi', '--max-tokens', '2']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).not.toMatch(/warning/);
  });
});

describe('a checkpoint of another model', () => {
  it('is named as such (RT166), with one warning line instead of one per config key it lacks', async () => {
    const dir = tmp();
    const ckpt = join(dir, 'bamba');
    expect((await runCli(['init-weights', MODEL('bamba'), '-o', ckpt, '--preset', 'tiny'])).code).toBe(0);
    const r = await runCli(['forward', MODEL('mamba2'), '--weights', ckpt, '--ids', '1,2,3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error RT166: .*looks like a checkpoint of another model: its config.json says model_type "archc-bamba".*this program is Mamba2LM.*missing tensor/);
    expect(r.stderr.trim().split('\n')).toHaveLength(2);
    expect(r.stderr).not.toMatch(/AC408/);
  });

  it('a family is known by its model_type or architectures in any of their spellings', () => {
    const same: [Record<string, unknown>, string][] = [[{ model_type: 'mamba2', architectures: ['Mamba2ForCausalLM'] }, 'Mamba2LM'], [{ model_type: 'archc-mamba2lm' }, 'Mamba2LM'],
      [{ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }, 'GPT2'], [{ architectures: ['BambaForCausalLM'] }, 'Bamba'], [{ model_type: 'llama' }, 'Llama'], [{}, 'Bamba']];
    for (const [c, m] of same) expect(otherModel(c as HfConfig, m), JSON.stringify(c)).toBeNull();
    expect(otherModel({ model_type: 'archc-bamba' } as HfConfig, 'Mamba2LM')).toBe('model_type "archc-bamba"');
    expect(otherModel({ model_type: 'llama', architectures: ['LlamaForCausalLM'] } as HfConfig, 'Bamba')).toBe('model_type "llama", architectures ["LlamaForCausalLM"]');
  });
});
