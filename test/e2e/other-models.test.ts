// The engine is not Bamba-specific: models/llama.arch, mamba2.arch, qwen3.arch (QK-norm on
// [T, heads, head_dim]) and gpt2.arch, built from the same blocks, run on random checkpoints with prefill = step-by-step decode and packed = each
// alone (for GPT-2 this also checks the learned position embedding follows each sequence's positions).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { ROOT, expectLogitsClose, makeDir, randomIds, removeDir, rows } from '../helpers/checkpoints.ts';

const work = makeDir('archc-models-');
afterAll(() => removeDir(work));

const MODELS: Record<string, string[]> = {
  llama: ['vocab=80', 'd_model=32', 'n_layers=3', 'n_heads=4', 'n_kv_heads=2', 'd_ff=48', 'dtype=f32'],
  mamba2: ['vocab=80', 'd_model=32', 'n_layers=3', 'head_dim=8', 'n_groups=2', 'd_state=8', 'chunk=3', 'dtype=f32'],
  qwen3: ['vocab=80', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'head_dim=16', 'd_ff=48', 'dtype=f32'],
  gpt2: ['vocab=80', 'd_model=32', 'n_layers=3', 'n_heads=4', 'context=32', 'dtype=f32'],
};

async function load(name: string): Promise<Model> {
  const file = join(ROOT, 'models', `${name}.arch`);
  const dir = join(work, name);
  mkdirSync(dir);
  const c = compileFile(file, { set: MODELS[name] });
  writeFileSync(join(dir, 'config.json'), hfConfigText(c));
  writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(8)));
  const bound = compileFile(file, { hfConfig: join(dir, 'config.json') });
  return Model.loadProgram(lowerToProgram(bound.graph, bound.bindings), dir);
}

describe.each(Object.keys(MODELS))('models/%s.arch', (name) => {
  it('prefill = one token at a time through decode; packed = each sequence alone', async () => {
    const model = await load(name);
    const V = model.vocab;
    const a = randomIds(10, V, 1), b = randomIds(7, V, 2);
    const packed = model.forward({ ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] }).logits;
    const alone = model.forward({ ids: b }).logits;
    expectLogitsClose(rows(packed, V, 10, 17), alone, 1e-5, `${name}: packed second sequence vs alone`, V);
    const state = model.newSequence();
    const stepped = new Float32Array(10 * V);
    a.forEach((id, t) => stepped.set(model.decode([id], [state]), t * V));
    expectLogitsClose(stepped, rows(packed, V, 0, 10), 1e-5, `${name}: decode vs prefill`, V);
    expect(Math.max(...Array.from(packed).map(Math.abs))).toBeGreaterThan(0.1);
  });
});
