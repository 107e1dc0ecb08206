// Decode on WebGPU runs each fused kernel as one dispatch: the matrix-vector product carries its
// norm prologue (folded into the product: inv_g · Σ w·nw·h) and its epilogue stages (conv step,
// rotary pairs, SwiGLU's paired columns, residual adds), so a decode step takes one dispatch per
// kernel, plus one for each attention kernel's cache append. Checked against the CPU engine (logits
// within 1e-4 · (1 + max|logit|)) on a tiny Bamba and on a tiny Mamba-2 LM whose gated norm has
// two groups, in both profiles (the GPU-shaped rendering and the one for CPU adapters).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import type { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import { ROOT, expectLogitsClose, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { sharedGpu, useSwiftShader } from './gpu.ts';

/** Logits within RTOL · (1 + max|logit|) of the CPU engine's. */
const RTOL = 1e-4;
let work: string;
let seq = 0;
beforeAll(() => { useSwiftShader(); work = makeDir(); });
afterAll(() => { if (work) removeDir(work); });

function bamba(): { dir: string; program: Program } {
  const dir = join(work, `bamba-${seq++}`);
  mkdirSync(dir);
  writeCheckpoint(dir, { n_layers: 2, attn_layers: [1] }, { dtype: 'bf16', seed: 12 });
  return { dir, program: programFor(dir) };
}

function mamba2(): { dir: string; program: Program } {
  const file = join(ROOT, 'models', 'mamba2.arch');
  const dir = join(work, `mamba2-${seq++}`);
  mkdirSync(dir);
  const c = compileFile(file, { set: ['vocab=96', 'd_model=32', 'n_layers=2', 'head_dim=8', 'n_groups=2', 'd_state=8', 'chunk=3', 'dtype=f32'] });
  writeFileSync(join(dir, 'config.json'), hfConfigText(c));
  writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(9)));
  const bound = compileFile(file, { hfConfig: join(dir, 'config.json') });
  return { dir, program: lowerToProgram(bound.graph, bound.bindings) };
}

const MODELS = [['a tiny Bamba', bamba], ['a tiny Mamba-2 with two norm groups', mamba2]] as const;
const CASES = (['gpu', 'cpu'] as const).flatMap((profile) => MODELS.map(([name, make]) => [name, profile, make] as const));

describe.each(CASES)('%s, %s profile', (_name, profile, make) => {
  it('a decode step is one dispatch per kernel (attention: two) and equals the CPU', async () => {
    const { dir, program } = make();
    const cpu = await Model.loadProgram(program, dir, { threads: 1 });
    const gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program), webgpu: { gpu: sharedGpu(), profile } });
    try {
      const backend = (gpu as unknown as { backend: WebGpuBackend }).backend;
      const kernels = program.entries.decode.kernels;
      const attention = kernels.filter((k) => k.family === 'attention_decode').length;
      expect(kernels.filter((k) => k.prologue?.length || k.epilogue?.length).length).toBeGreaterThan(3);
      const prompts = [randomIds(5, 96, 1), randomIds(2, 96, 2), randomIds(3, 96, 3), randomIds(1, 96, 4), randomIds(4, 96, 5)];
      const c = cpu.prefill(prompts);
      const g = await gpu.prefillAsync(prompts);
      g.logits.forEach((l, i) => expectLogitsClose(l, c.logits[i]!, RTOL, `prefill ${i}`, 96));
      // batches of 2, 3 and 1 sequences (the matrix-vector passes), then all 5 (the tiled products
      // on a CPU adapter, whose matrix-vector path takes at most 4 rows)
      for (const [step, n] of [[0, 2], [1, 3], [2, 1], [3, 5]] as const) {
        const next = randomIds(n, 96, 10 + step);
        const before = backend.dispatches;
        expectLogitsClose(await gpu.decodeAsync(next, g.states.slice(0, n)), cpu.decode(next, c.states.slice(0, n)), RTOL, `decode step ${step} (${n} sequences)`, 96);
        if (n <= 4) expect(backend.dispatches - before).toBe(kernels.length + attention);
      }
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  }, 120_000);
});
