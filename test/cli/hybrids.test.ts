// `archc stats` and `archc compare` on the hybrids (models/nemotron_h.arch, models/falcon_h1.arch) at
// their default sizes (Nemotron-H-8B; FalconH1Config's defaults): parameters are the checkpoint
// tensors' elements, the KV cache per token and the conv + SSM state per sequence are what their
// configs give by hand, and compare's sides are each file's stats.

import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Comparison } from '../../cli/compare.ts';
import { compileFile, loadConfig } from '../../compiler/compile.ts';
import type { Stats } from '../../compiler/stats.ts';
import { type CliResult, ROOT, inParallel, runCli } from '../helpers/checkpoints.ts';

const NEMOTRON = join(ROOT, 'models', 'nemotron_h.arch');
const FALCON = join(ROOT, 'models', 'falcon_h1.arch');
const r: Record<string, CliResult> = {};

beforeAll(async () => {
  const jobs: Record<string, string[]> = {
    nemotron: ['stats', NEMOTRON, '--json'],
    falcon: ['stats', FALCON, '--json'],
    cmp: ['compare', NEMOTRON, FALCON, '--json'],
    text: ['compare', NEMOTRON, FALCON],
    moe: ['check', NEMOTRON, '--set', 'layer_pattern=ME*-'],
    normFirst: ['check', FALCON, '--set', 'mamba_rms_norm=true', '--set', 'norm_before_gate=true'],
  };
  const names = Object.keys(jobs);
  const results = await inParallel(names.map((n) => () => runCli(jobs[n]!, 120_000)), 2);
  names.forEach((n, i) => (r[n] = results[i]!));
}, 300_000);

const json = <T>(res: CliResult): T => {
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as T;
};
const elements = (file: string) => compileFile(file).graph.weights.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);

describe('archc stats and compare on the hybrids', () => {
  it('Nemotron-H-8B: its tensors, 4 attention layers of KV, 24 Mamba-2 layers of state', () => {
    const s = json<Stats>(r.nemotron!);
    expect(s.parameters.total).toBe(elements(NEMOTRON));
    // f32 state: 4 attention layers × K and V × 8 kv heads × head dim 128
    expect(s.state.kvBytesPerToken).toBe(4 * 4 * 2 * 8 * 128);
    // 24 mixers × (conv window: (8192 + 2·8·128 channels) × 3 taps, SSM: 128 heads × 64 × 128)
    expect(s.state.convSsmBytesPerSequence).toBe(4 * 24 * ((8192 + 2 * 8 * 128) * 3 + 128 * 64 * 128));
  });

  it('Falcon-H1: attention and a Mamba-2 mixer in each of its 32 layers', () => {
    const s = json<Stats>(r.falcon!);
    expect(s.parameters.total).toBe(elements(FALCON));
    expect(s.state.kvBytesPerToken).toBe(4 * 32 * 2 * 8 * 128);
    // d_ssm = 2 × 4096, 1 group of state 256, conv kernel 4; 128 heads of 64
    expect(s.state.convSsmBytesPerSequence).toBe(4 * 32 * ((8192 + 2 * 256) * 3 + 128 * 64 * 256));
  });

  it('compare: each side is that file\'s stats, the ratios b / a', () => {
    const c = json<Comparison>(r.cmp!);
    expect(c.a.stats).toEqual(json<Stats>(r.nemotron!));
    expect(c.b.stats).toEqual(json<Stats>(r.falcon!));
    const kv = c.rows.find((x) => x.figure === 'KV cache per token')!;
    expect(kv.ratio).toBe(8);
    expect(r.text!.code).toBe(0);
    expect(r.text!.stdout).toMatch(/a: models\/nemotron_h\.arch \(model NemotronH\)\nb: models\/falcon_h1\.arch \(model FalconH1\)/);
  });

  it('binds Nemotron-H-8B\'s config.json keys (its head dim as attention_head_dim): the defaults are that model', () => {
    const fixture = join(ROOT, 'test', 'fixtures', 'configs', 'nemotron-h-8b.json');
    const bound = compileFile(NEMOTRON, { hfConfig: fixture }).graph;
    expect(bound.params).toEqual(compileFile(NEMOTRON).graph.params);
    // the keys are read: another head dim, group count and pattern in the same file
    const { file, config } = loadConfig(fixture);
    const other = compileFile(NEMOTRON, { hfConfigData: { file, config: { ...config, attention_head_dim: 96, n_groups: 4, hybrid_override_pattern: 'M*-', num_hidden_layers: 3 } } }).graph;
    expect([other.params.head_dim, other.params.mamba_groups, other.params.n_layers]).toEqual([96, 4, 3]);
    expect(other.weights.find((w) => w.name === 'backbone.layers.1.mixer.q_proj.weight')!.shape).toEqual([32 * 96, 4096]);
  });

  it('refuses what it does not build yet, by code, at the place: a MoE layer (E), the norm before the gate', () => {
    expect(r.moe!.code).toBe(1);
    expect(r.moe!.stderr).toMatch(/nemotron_h\.arch:\d+:\d+: error AC316: layer pattern symbol "E" at position 1/);
    expect(r.moe!.stderr).toContain('waits for the moe block');
    expect(r.normFirst!.code).toBe(1);
    expect(r.normFirst!.stderr).toMatch(/falcon_h1\.arch:\d+:\d+: error AC406: assertion failed: mamba_rms_norm with mamba_norm_before_gate/);
    for (const x of [r.moe!, r.normFirst!]) expect(x.stderr).not.toMatch(/^\s+at /m);
  });
});
