// Params: .arch default < config.json < --set, with config.json read the way Hugging Face writes it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { MODELS } from '../helpers/compile.ts';

const BAMBA = join(MODELS, 'bamba.arch');
const dir = mkdtempSync(join(tmpdir(), 'archc-params-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes config.json text (as given, so bare Infinity can be tested) and compiles Bamba with it. */
function withConfig(text: string, set: string[] = []) {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, text);
  return compileFile(BAMBA, { hfConfig: file, set });
}

describe('param precedence', () => {
  it('config.json overrides the default, --set overrides both', () => {
    expect(compileFile(BAMBA).graph.params.d_ff).toBe(14336);
    expect(withConfig('{"intermediate_size": 1024}').graph.params.d_ff).toBe(1024);
    expect(withConfig('{"intermediate_size": 1024}', ['d_ff=512']).graph.params.d_ff).toBe(512);
    expect(compileFile(BAMBA, { set: ['d_ff=256'] }).graph.params.d_ff).toBe(256);
  });

  it('defaults that are expressions see the bound values of other params', () => {
    const g = withConfig('{"hidden_size": 1024, "num_attention_heads": 8, "mamba_n_heads": 32}').graph;
    expect(g.params.head_dim).toBe(128);
    expect(g.params.mamba_head_dim).toBe(1024 * 2 / 32);
  });

  it('"auto" and null fall back to the default expression', () => {
    expect(withConfig('{"hidden_size": 1024, "mamba_n_heads": 32, "mamba_d_head": "auto"}').graph.params.mamba_head_dim).toBe(64);
    expect(withConfig('{"mamba_d_head": null}').graph.params.mamba_head_dim).toBe(64);
  });

  it('nested keys: rope_parameters.rope_theta (transformers 5) when rope_theta is absent', () => {
    expect(withConfig('{"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}').graph.params.rope_theta).toBe(500000);
    expect(withConfig('{"rope_theta": 1000.0, "rope_parameters": {"rope_theta": 500000.0}}').graph.params.rope_theta).toBe(1000);
  });

  it('Infinity as a bare literal and as {"__float__": "Infinity"}', () => {
    expect(withConfig('{"time_step_limit": [0.0, Infinity]}').graph.params.dt_limit).toEqual([0, Infinity]);
    expect(withConfig('{"time_step_limit": [0.001, {"__float__": "Infinity"}]}').graph.params.dt_limit).toEqual([0.001, Infinity]);
  });

  it('unknown keys are ignored; torch_dtype names the weight dtype', () => {
    const g = withConfig('{"torch_dtype": "float32", "some_future_key": {"a": [1, 2]}, "use_mamba_kernels": true}').graph;
    expect(g.params.dtype).toBe('f32');
    expect(new Set(g.weights.map((w) => w.dtype))).toEqual(new Set(['f32']));
  });

  it('--set takes JSON values, inf, and bare words', () => {
    const g = compileFile(BAMBA, { set: ['attn_layers=[0, 5]', 'dt_limit=[0.0, inf]', 'dtype=float16', 'tie=false'] }).graph;
    expect(g.params.attn_layers).toEqual([0, 5]);
    expect(g.params.dt_limit).toEqual([0, Infinity]);
    expect(g.params.dtype).toBe('f16');
    expect(g.weights.some((w) => w.name === 'lm_head.weight')).toBe(true);
    expect(g.weights.some((w) => w.name === 'model.layers.5.self_attn.q_proj.weight')).toBe(true);
  });

  it('a malformed config.json is a diagnostic that names the file and position', () => {
    expect(() => withConfig('{"hidden_size": 4096,\n  "vocab_size": }')).toThrow(/AC304: cannot read config .*config-.*\.json: .*:2:17/);
  });
});
