// Checkpoint names fall out of the program's nesting.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { MODELS } from '../helpers/compile.ts';

const names = (model: string, set: string[] = []) =>
  new Map(compileFile(join(MODELS, `${model}.arch`), { set }).graph.weights.map((w) => [w.name, w.shape]));

describe('checkpoint tensor names', () => {
  it('match BambaForCausalLM', () => {
    const w = names('bamba');
    expect(w.get('model.embed_tokens.weight')).toEqual([128256, 4096]);
    expect(w.get('model.layers.0.mamba.in_proj.weight')).toEqual([8192 + 8448 + 128, 4096]);
    expect(w.get('model.layers.0.mamba.conv1d.weight')).toEqual([8448, 1, 4]);
    expect(w.get('model.layers.0.mamba.conv1d.bias')).toEqual([8448]);
    expect(w.get('model.layers.0.mamba.A_log')).toEqual([128]);
    expect(w.get('model.layers.0.mamba.dt_bias')).toEqual([128]);
    expect(w.get('model.layers.0.mamba.D')).toEqual([128]);
    expect(w.get('model.layers.0.mamba.norm.weight')).toEqual([8192]);
    expect(w.get('model.layers.0.mamba.out_proj.weight')).toEqual([4096, 8192]);
    expect(w.get('model.layers.9.self_attn.q_proj.weight')).toEqual([4096, 4096]);
    expect(w.get('model.layers.9.self_attn.k_proj.weight')).toEqual([1024, 4096]);
    expect(w.get('model.layers.9.self_attn.o_proj.weight')).toEqual([4096, 4096]);
    expect(w.get('model.layers.31.feed_forward.gate_proj.weight')).toEqual([14336, 4096]);
    expect(w.get('model.layers.31.feed_forward.down_proj.weight')).toEqual([4096, 14336]);
    expect(w.get('model.layers.5.input_layernorm.weight')).toEqual([4096]);
    expect(w.get('model.layers.5.pre_ff_layernorm.weight')).toEqual([4096]);
    expect(w.get('model.final_layernorm.weight')).toEqual([4096]);
    expect(w.has('lm_head.weight')).toBe(false);
    expect(w.has('model.layers.9.mamba.in_proj.weight')).toBe(false);
    expect(w.size).toBe(1 + 29 * 8 + 3 * 4 + 32 * 5 + 1); // embedding, 8 per mixer, 4 per attention, 5 per layer (2 norms, 3 MLP), final norm
  });

  it('give an lm_head.weight when embeddings are untied', () => {
    expect(names('bamba', ['tie=false']).get('lm_head.weight')).toEqual([128256, 4096]);
  });

  it('match Mamba2ForCausalLM and LlamaForCausalLM', () => {
    const m = names('mamba2');
    expect(m.get('backbone.embeddings.weight')).toEqual([50288, 768]);
    expect(m.get('backbone.layers.23.mixer.in_proj.weight')).toEqual([2 * 1536 + 2 * 128 + 24, 768]);
    expect(m.get('backbone.layers.0.norm.weight')).toEqual([768]);
    expect(m.get('backbone.norm_f.weight')).toEqual([768]);
    const l = names('llama');
    expect(l.get('model.layers.31.self_attn.v_proj.weight')).toEqual([4096, 4096]);
    expect(l.get('model.layers.0.mlp.up_proj.weight')).toEqual([11008, 4096]);
    expect(l.get('model.layers.0.post_attention_layernorm.weight')).toEqual([4096]);
    expect(l.get('model.norm.weight')).toEqual([4096]);
    expect(l.get('lm_head.weight')).toEqual([32000, 4096]);
  });
});
