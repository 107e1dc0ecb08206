// A model laid out by a layer pattern runs: examples/bamba-pattern.arch with a pattern that puts every
// kind of layer after every other (a mixer straight after a mixer, attention after Mamba-2, feed-forwards
// in a row), on a random checkpoint. Its fused kernel program on the CPU and wasm backends against the
// float64 forward of its graph (compiler/grad.ts, unfused), within 1e-4 of the logits' scale; prefill
// equal to step-by-step decode and a packed sequence equal to it alone, within 1e-5.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lossGradients } from '../../compiler/grad.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { ROOT, expectLogitsClose, randomIds, rows } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { packed } from '../grad/helpers.ts';

const tmp = useTmpDirs('archc-pattern-');
const FILE = join(ROOT, 'examples', 'bamba-pattern.arch');
/** M after M, * after M, - after *, - after -, M after -, * after -, * last. */
const PATTERN = 'MM*--M-*M*';
const SETS = [`layer_pattern=${PATTERN}`, 'vocab=96', 'd_model=32', 'n_heads=4', 'n_kv_heads=2', 'd_ff=48', 'mamba_heads=4',
  'd_state=8', 'chunk=4', 'dtype=f32'];

describe('a model laid out by a layer pattern', () => {
  it('cpu and wasm programs equal the float64 graph; decode equals prefill; packed equals alone', async () => {
    const c = compileFile(FILE, { set: SETS });
    expect(c.graph.params.n_layers).toBe(PATTERN.length);
    const dir = tmp();
    writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
    writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(5), 'f32'), { format: 'pt' });
    const V = 96;
    const b = packed([6, 3, 9], V, 7);
    const w = new Map(initWeights(c.graph, createRng(5), 'f32').map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
    const ref = lossGradients(c.graph, w, b, { grads: false }).logits;
    const program = lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices });
    for (const backend of ['cpu', 'wasm'] as const) {
      const m = await Model.loadProgram(program, dir, backend === 'cpu' ? { backend }
        : { backend, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 2 });
      const got = m.forward({ ids: Array.from(b.tokens), cuSeqlens: [0, 6, 9, 18] }).logits;
      expectLogitsClose(got, ref, 1e-4, `${backend}: program vs the float64 graph`, V);
      // step by step through decode, and the second sequence of a packed batch alone
      const a = randomIds(9, V, 1), s = randomIds(5, V, 2);
      const both = m.forward({ ids: [...a, ...s], positions: [...a.keys(), ...s.keys()] }).logits;
      expectLogitsClose(rows(both, V, 9, 14), m.forward({ ids: s }).logits, 1e-5, `${backend}: packed vs alone`, V);
      const state = m.newSequence();
      const stepped = new Float32Array(9 * V);
      a.forEach((id, t) => stepped.set(m.decode([id], [state]), t * V));
      expectLogitsClose(stepped, rows(both, V, 0, 9), 1e-5, `${backend}: decode vs prefill`, V);
      expect(Math.max(...Array.from(got).map(Math.abs))).toBeGreaterThan(0.1);
    }
  }, 120_000);
});
