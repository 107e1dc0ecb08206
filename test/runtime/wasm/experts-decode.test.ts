// Issue 21's claim for a whole model: Granite-4.0-H (tiny, bf16 experts) decoding one sequence on the
// wasm backend reads, per step, exactly the active experts' weight bytes — the bytes of the parameters
// `archc stats` counts as active per token, restricted to the experts (k of E per layer) — and
// not the total's: `WasmBackend.experts.read`, counted by the backend as its products read panels.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleWith, loadWabt, wasmKernels } from '../../../codegen/wasm/assemble.ts';
import { renderWasmProgram } from '../../../codegen/wasm/program.ts';
import { compileFile } from '../../../compiler/compile.ts';
import { initWeights } from '../../../compiler/init.ts';
import { lowerToProgram } from '../../../compiler/lower.ts';
import { computeStats } from '../../../compiler/stats.ts';
import type { EntryName } from '../../../runtime/program.ts';
import { createRng } from '../../../runtime/rng.ts';
import { WasmBackend } from '../../../runtime/wasm/backend.ts';
import { ROOT } from '../../helpers/checkpoints.ts';

let backend: WasmBackend;
afterAll(() => backend?.dispose());

const SETS = ['vocab=48', 'd_model=32', 'n_layers=3', 'layer_types=["mamba", "attention", "mamba"]', 'n_heads=4', 'n_kv_heads=2',
  'mamba_heads=8', 'd_state=4', 'chunk=4', 'd_ff=16', 'd_shared=24', 'n_experts=8', 'k_experts=2', 'dtype=bf16'];

describe('Granite-4.0-H decode on wasm reads only the chosen experts', () => {
  const c = compileFile(join(ROOT, 'models', 'granite4h.arch'), { set: SETS });
  const program = lowerToProgram(c.graph, c.bindings);
  const stats = computeStats(c.graph, 64, 1);
  // the experts' weights (w_in, w_out of every `experts` node) and the share of them one token reads
  const expertNodes = c.graph.nodes.filter((n) => n.op === 'experts');
  const numel = (v: number) => (c.graph.values[v]!.type.shape as number[]).reduce((a, b) => a * b, 1);
  const expertParams = expertNodes.reduce((s, n) => s + numel(n.inputs[3]!) + numel(n.inputs[4]!), 0);
  const activeExpertParams = expertParams - (stats.parameters.total - stats.parameters.active);

  beforeAll(async () => {
    const kernels = new WebAssembly.Module(await wasmKernels() as Uint8Array<ArrayBuffer>);
    const own = new WebAssembly.Module(assembleWith(await loadWabt(), renderWasmProgram(program), 'test-program.wat') as Uint8Array<ArrayBuffer>);
    backend = new WasmBackend(program, kernels, 1, own);
    const tensors = new Map(initWeights(c.graph, createRng(9), 'bf16').map((t) => [t.name, t.tensor] as const));
    for (const w of program.weights) backend.uploadWeight(w, tensors.get(w.name)!);
  });

  it('per decode step: k of E experts\' bf16 bytes in every layer = the active parameters\' share', () => {
    expect(expertNodes.length, 'a mixture in every layer').toBe(3);
    expect(activeExpertParams, 'stats: 2 of 8 experts active').toBe(expertParams / 4);
    const pool = backend.createStatePool(16), slot = pool.acquire();
    const run = (entry: EntryName, tokens: number[], before: number) => {
      const inv = backend.begin(program.entries[entry], { tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, t) => before + t),
        seqs: [{ start: 0, len: tokens.length }], slots: [slot], lengths: [before] }, pool);
      for (const k of program.entries[entry].kernels) inv.dispatch(k);
    };
    run('prefill', [5, 17, 30, 2], 0);
    const steps: number[] = [];
    for (let t = 0; t < 6; t++) {
      const before = backend.experts.read;
      run('decode', [(7 * t + 3) % 48], 4 + t);
      steps.push(backend.experts.read - before);
    }
    expect(steps, 'bytes read per step').toEqual(steps.map(() => activeExpertParams * 2));
    expect(activeExpertParams * 2, 'not the total').toBeLessThan(expertParams * 2);
  });
});
