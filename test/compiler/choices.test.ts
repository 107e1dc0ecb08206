// Load-time choices (compiler/choices.ts): a bool param whose values differ only in which weights the
// ops read is decided from config.json at load, not pinned into the program; one that changes a
// shape or an op stays a binding.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { weightReads } from '../../compiler/choices.ts';
import { compileFile } from '../../compiler/compile.ts';
import { compileModel } from '../../compiler/pipeline.ts';
import { computeStats } from '../../compiler/stats.ts';
import { MODELS } from '../helpers/compile.ts';
import { TINY, setsFor } from '../helpers/checkpoints.ts';

const BAMBA = join(MODELS, 'bamba.arch');
const CONFIG = join(import.meta.dirname, '..', 'fixtures', 'configs', 'bamba-9b.json');
const tiny = (more: Record<string, boolean> = {}) => setsFor({ ...TINY, ...more });

describe('load-time choices', () => {
  it.each(['bamba', 'gpt2', 'llama', 'mamba2', 'qwen3'])('models/%s.arch: tie_word_embeddings is decided at load, the bias flags stay bindings', (name) => {
    const c = compileFile(join(MODELS, `${name}.arch`));
    expect(c.forProgram.choices.map((x) => [x.param, x.keys])).toEqual([['tie', ['tie_word_embeddings']]]);
    const choice = c.forProgram.choices[0]!;
    expect(choice.value).toBe(c.graph.params.tie);
    // tied: the head's own weight reads the embedding; untied: every weight reads its own tensor
    const tied = choice.reads.find((r) => r.value === true)!.tensors;
    const untied = choice.reads.find((r) => r.value === false)!.tensors;
    expect(Object.keys(tied)).toEqual(['lm_head.weight']);
    expect(c.forProgram.graph.weights.map((w) => w.name)).toContain(tied['lm_head.weight']);
    expect(untied).toEqual({});
    expect(c.forProgram.bindings.map((b) => b.param)).not.toContain('tie');
    expect(c.bindings.map((b) => b.param)).toContain('tie');
    for (const b of ['attn_bias', 'conv_bias', 'proj_bias', 'mlp_bias', 'qkv_bias']) {
      if (c.bindings.some((x) => x.param === b)) expect(c.forProgram.bindings.map((x) => x.param), b).toContain(b);
    }
  });

  it('one program for both values: the same kernels and weights whichever value the build was given', () => {
    const a = compileModel(BAMBA, { set: tiny() }).program;
    const b = compileModel(BAMBA, { set: tiny({ tie: false }) }).program;
    expect(JSON.stringify(b.entries)).toBe(JSON.stringify(a.entries));
    expect(b.weights).toEqual(a.weights);
    expect(b.bindings).toEqual(a.bindings);
    // only the value taken when config.json has no tie_word_embeddings differs
    expect(a.choices[0]!.value).toBe(true);
    expect(b.choices[0]!.value).toBe(false);
    expect(a.params.tie).toBe(true);
    expect(b.params.tie).toBe(false);
  });

  it('weightReads: equal graphs map each weight to itself; a flag that adds weights or changes ops maps nothing', () => {
    const base = compileFile(BAMBA, { set: tiny() }).graph;
    const same = weightReads(base, base)!;
    expect([...same].every(([a, b]) => a === b)).toBe(true);
    expect(same.size).toBe(base.weights.length);
    const untied = compileFile(BAMBA, { set: tiny({ tie: false }) }).graph;
    expect(weightReads(untied, base)!.get('lm_head.weight')).toBe('model.embed_tokens.weight');
    // the narrow graph cannot stand for the wide one: lm_head.weight would have no slot
    expect(weightReads(base, untied)).toBeUndefined();
    for (const flag of ['attn_bias', 'proj_bias']) {
      const other = compileFile(BAMBA, { set: tiny({ [flag]: true }) }).graph;
      expect(weightReads(other, base), flag).toBeUndefined();
      expect(weightReads(base, other), flag).toBeUndefined();
    }
  });

  it('stats count both layouts of Bamba-9B: tied 9,254,898,816 (the .arch default), untied 9,780,235,392 (the published config)', () => {
    for (const [c, dflt] of [[compileFile(BAMBA), true], [compileFile(BAMBA, { hfConfig: CONFIG }), false]] as const) {
      const s = computeStats(c.graph, 4096, 1, c.forProgram);
      const tie = s.parameters.atLoad!.find((x) => x.param === 'tie')!;
      expect(tie.key).toBe('tie_word_embeddings');
      expect(tie.value).toBe(dflt);
      expect(Object.fromEntries(tie.totals.map((t) => [String(t.value), t.total]))).toEqual({ true: 9_254_898_816, false: 9_780_235_392 });
      // the configured total is the default's
      expect(s.parameters.total).toBe(tie.totals.find((t) => t.value === dflt)!.total);
    }
  });
});
