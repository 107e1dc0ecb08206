// Random checkpoints: each weight's initialisation follows how the graph reads it (compiler/init.ts),
// checked on models/gpt2.arch, whose Conv1D weights are stored [in, out] and whose LayerNorms have biases.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { initRules, initWeights, initWeightsLazily } from '../../compiler/init.ts';
import { createRng } from '../../runtime/rng.ts';
import { openCheckpoint, writeShardedSafetensors } from '../../runtime/safetensors.ts';
import { MODELS } from '../helpers/compile.ts';

describe('init rules', () => {
  const c = compileFile(join(MODELS, 'gpt2.arch'), { set: ['vocab=50', 'd_model=32', 'd_ff=96', 'n_layers=1', 'n_heads=4', 'context=16'] });
  const rules = initRules(c.graph);
  const tensors = new Map(initWeights(c.graph, createRng(3), 'f32').map((t) => [t.name, t.tensor.data as Float32Array]));
  const maxAbs = (name: string) => Math.max(...Array.from(tensors.get(name)!, Math.abs));
  const mean = (name: string) => tensors.get(name)!.reduce((s, v) => s + v, 0) / tensors.get(name)!.length;

  it('GPT-2: fan-in of a transposed ([in, out]) weight is its first dim', () => {
    expect(rules.get('transformer.h.0.attn.c_attn.weight')).toBe('fan_in_rows');
    expect(rules.get('transformer.h.0.mlp.c_proj.weight')).toBe('fan_in_rows');
    // c_attn [32, 96]: U(±1/√32); c_proj of the MLP [96, 32]: U(±1/√96)
    expect(maxAbs('transformer.h.0.attn.c_attn.weight')).toBeLessThanOrEqual(1 / Math.sqrt(32));
    expect(maxAbs('transformer.h.0.attn.c_attn.weight')).toBeGreaterThan(0.9 / Math.sqrt(32));
    expect(maxAbs('transformer.h.0.mlp.c_proj.weight')).toBeLessThanOrEqual(1 / Math.sqrt(96));
    expect(maxAbs('transformer.h.0.mlp.c_proj.weight')).toBeGreaterThan(0.9 / Math.sqrt(96));
  });

  it('GPT-2: layernorm weight ≈ 1, biases ≈ 0, both embeddings random', () => {
    for (const ln of ['transformer.h.0.ln_1', 'transformer.h.0.ln_2', 'transformer.ln_f']) {
      expect(rules.get(`${ln}.weight`)).toBe('norm');
      expect(rules.get(`${ln}.bias`)).toBe('bias');
      expect(Math.abs(mean(`${ln}.weight`) - 1)).toBeLessThan(0.02);
      expect(maxAbs(`${ln}.bias`)).toBeLessThanOrEqual(0.02);
      expect(maxAbs(`${ln}.bias`)).toBeGreaterThan(0);
    }
    expect(rules.get('transformer.h.0.attn.c_attn.bias')).toBe('bias');
    expect(rules.get('transformer.wte.weight')).toBe('embedding');
    expect(rules.get('transformer.wpe.weight')).toBe('embedding');
  });
});

describe('init-weights written one tensor at a time', () => {
  const c = compileFile(join(MODELS, 'bamba.arch'), { set: ['vocab=64', 'd_model=32', 'd_ff=48', 'n_layers=2', 'attn_layers=[1]', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=4', 'd_state=8', 'chunk=8', 'context=16'] });

  it('sharded lazily, the checkpoint holds exactly the tensors initWeights makes, bit for bit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'archc-lazy-'));
    try {
      const eager = initWeights(c.graph, createRng(11), 'bf16');
      const lazy = initWeightsLazily(c.graph, createRng(11), 'bf16');
      const made: string[] = [];
      const w = writeShardedSafetensors(dir, lazy.map((l) => ({ ...l, make: () => { made.push(l.name); return l.make(); } })), 4096);
      expect(w.files.length).toBeGreaterThan(2);
      expect(made).toEqual(eager.map((e) => e.name));
      const ck = openCheckpoint(join(dir, 'model.safetensors.index.json'));
      for (const e of eager) {
        const t = ck.read(e.name);
        expect(t.dtype, e.name).toBe('bf16');
        expect(Array.from(t.data), e.name).toEqual(Array.from(e.tensor.data));
      }
      ck.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a lazy weight made out of order is an error, not a silently different checkpoint', () => {
    const lazy = initWeightsLazily(c.graph, createRng(1));
    expect(() => lazy[1]!.make()).toThrow(/out of order/);
  });
});
