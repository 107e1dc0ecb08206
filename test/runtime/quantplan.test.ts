// Which weights a load quantises (runtime/quantplan.ts), on the programs of other models: GPT-2's
// [in, out] Conv1D products stay (a group runs along K, the input dim, which their rows are not),
// its learned position table and tied head are quantised; Llama's and Mamba-2's matrices are, their
// norms and Mamba-2's conv weight are not.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { planQuant, quantCandidates } from '../../runtime/quantplan.ts';
import { ROOT } from '../helpers/checkpoints.ts';

const program = (name: string, set: string[]) => {
  const c = compileFile(join(ROOT, 'models', `${name}.arch`), { set });
  return lowerToProgram(c.graph, c.bindings);
};

describe('quantCandidates', () => {
  it('GPT-2: embeddings (tokens, positions) and the tied head; not the transposed Conv1D products', () => {
    const p = program('gpt2', ['vocab=80', 'd_model=32', 'n_layers=2', 'n_heads=4', 'context=32', 'dtype=f32']);
    const names = [...quantCandidates(p).keys()].sort();
    expect(names).toEqual(['transformer.wpe.weight', 'transformer.wte.weight']);
    expect(p.weights.some((w) => w.name.endsWith('c_attn.weight'))).toBe(true);
  });

  it('Llama and Mamba-2: every projection and the embedding; norms, conv and SSM parameters stay', () => {
    for (const [name, set] of [
      ['llama', ['vocab=80', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'd_ff=64', 'dtype=f32']],
      ['mamba2', ['vocab=80', 'd_model=32', 'n_layers=2', 'head_dim=8', 'n_groups=2', 'd_state=8', 'chunk=3', 'dtype=f32']],
    ] as const) {
      const p = program(name, [...set]);
      const cands = quantCandidates(p);
      const matrices = p.weights.filter((w) => /(proj|embed_tokens|embeddings|lm_head)\.weight$/.test(w.name)).map((w) => w.name);
      expect([...cands.keys()].sort(), name).toEqual(matrices.sort());
      // merged parts list their group
      for (const [n, group] of cands) expect(group, n).toContain(n);
      // a plan over shapes that group: all quantised, none kept
      const shapes = new Map(p.weights.map((w) => [w.name, w.shape]));
      const plan = planQuant(p, 'q4', (n) => shapes.get(n)!);
      expect(plan.formats.size, name).toBe(cands.size);
      expect(plan.kept, name).toEqual([]);
    }
  });
});
