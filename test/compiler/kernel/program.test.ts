// The kernel program of each model: golden listings (a change to lowering or a rule shows its exact
// effect here; regenerate with `ARCHC_UPDATE_GOLDEN=1 npx vitest run test/compiler/kernel`), and
// Bamba-9B's dispatch budget: at most 5 kernels per layer per decode step, Mamba and attention
// layers alike, at most 3 outside the layers, and no copy kernel anywhere.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../../compiler/compile.ts';
import { printProgram } from '../../../compiler/kernel/printer.ts';
import { programReport } from '../../../compiler/kernel/report.ts';
import { lowerToProgram } from '../../../compiler/lower.ts';
import { MODELS } from '../../helpers/compile.ts';

const GOLDEN = join(import.meta.dirname, '..', '..', 'golden');

describe('golden kernel programs', () => {
  // four layers of each model keep the listings readable; every layer kind occurs
  const CASES: Record<string, string[]> = {
    bamba: ['n_layers=4', 'attn_layers=[1]'], mamba2: ['n_layers=2'], llama: ['n_layers=2'], gpt2: ['n_layers=2'], qwen3: ['n_layers=2'],
    nemotron_h: ['layer_pattern=M*-'], falcon_h1: ['n_layers=1', 'embedding_mult=2.0', 'ssm_mults=[0.5, 1.5, 0.75, 1.25, 0.6]'],
    granite4h: ['n_layers=2', 'layer_types=["mamba", "attention"]', 'rope="rope"'],
  };
  for (const [model, set] of Object.entries(CASES)) {
    it(`${model}.arch (${set.join(' ')}) prints as test/golden/${model}.kernels.txt`, () => {
      const c = compileFile(join(MODELS, `${model}.arch`), { set });
      const text = printProgram(lowerToProgram(c.graph, c.bindings));
      const file = join(GOLDEN, `${model}.kernels.txt`);
      if (process.env.ARCHC_UPDATE_GOLDEN || !existsSync(file)) {
        if (process.env.CI) throw new Error(`golden file ${file} is missing`);
        writeFileSync(file, text);
      }
      expect(text).toBe(readFileSync(file, 'utf8'));
    });
  }
});

describe('Bamba-9B', () => {
  const c = compileFile(join(MODELS, 'bamba.arch'));
  const p = lowerToProgram(c.graph, c.bindings);
  const r = programReport(p, { prefillTokens: 4096, decodeBatch: 8, context: 4096 });

  it('decodes in at most 5 kernels per layer and 3 outside them', () => {
    expect(Object.keys(r.dispatches.perLayer).sort()).toEqual(['attention', 'ssd']);
    for (const n of Object.values(r.dispatches.perLayer)) expect(n).toBeLessThanOrEqual(5);
    expect(r.dispatches.outsideLayers).toBeLessThanOrEqual(3);
    expect(r.dispatches.decode).toBe(29 * r.dispatches.perLayer.ssd! + 3 * r.dispatches.perLayer.attention! + r.dispatches.outsideLayers);
  });

  it('has no copy kernel for any reshape or split, in any entry', () => {
    for (const e of Object.values(p.entries)) expect(e.kernels.filter((k) => k.family === 'copy' || k.family === 'elementwise')).toEqual([]);
  });

  it('reports every kernel with the ops it fused and its source lines', () => {
    expect(r.kernels.length).toBe(r.dispatches.prefill + r.dispatches.decode);
    const inProj = r.kernels.find((k) => k.entry === 'decode' && k.name === 'model.layers.0.mamba.in_proj:linear')!;
    expect(inProj.fused).toEqual(['rmsnorm', 'linear', 'causal_conv1d', 'silu']);
    expect(inProj.source.every((s) => /^models\/(std\/)?\w+\.arch:\d+$/.test(s))).toBe(true);
    // one state slot: 29 Mamba layers (conv window + SSM state) and 3 KV caches of 4096 tokens, f32
    const mamba = 29 * 4 * ((8192 + 2 * 128) * 3 + 128 * 64 * 128);
    const kv = 3 * 4 * 4096 * 2 * 8 * 128;
    expect(r.memory.stateBytesPerSlot).toBe(mamba + kv);
  });
});
