// `split` and `scale` by parts of a tensor with several rows per token ([T, 2, 24] into [T, 2, 12]
// twice: each part is one kernel per row, since an arena view holds one row per token) against the graph evaluated op by op in
// float64 (compiler/grad.ts, whose split cuts every row): the CPU engine and wasm within 1e-5 of the
// logits' scale, WebGPU (SwiftShader) within 1e-4, packed over two sequences and prefill then decode.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lossGradients } from '../../compiler/grad.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { ROOT, expectLogitsClose, randomIds } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { prng, uniform } from '../runtime/cpu/check.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';

const tmp = useTmpDirs('archc-split-rows-');
const V = 40;

describe('split of a tensor with several rows per token', () => {
  const c = compileFile(join(ROOT, 'test', 'fixtures', 'split', 'rows-split.arch'));
  const program = lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices });
  // uniform numbers in [-0.5, 0.5] rather than the init's small ones, for a signal in the logits
  const r = prng(5);
  const weights = initWeights(c.graph, createRng(5), 'f32').map((w) => ({ name: w.name, tensor: { ...w.tensor, data: uniform(r, w.tensor.data.length, -0.5, 0.5) } }));
  const a = randomIds(7, V, 1), s = randomIds(4, V, 2);
  const ids = [...a, ...s], positions = [...a.keys(), ...s.keys()];
  // the float64 graph evaluation of the packed batch (its loss unused)
  const ref = Float32Array.from(lossGradients(c.graph, new Map(weights.map((w) => [w.name, Float64Array.from(w.tensor.data as Float32Array)])), {
    tokens: Int32Array.from(ids), positions: Int32Array.from(positions),
    seqs: [{ start: 0, len: a.length }, { start: a.length, len: s.length }], labels: Int32Array.from(ids),
  }, { grads: false }).logits);

  it('lowers each part to one copy per row', () => {
    const copies = program.entries.forward.kernels.filter((k) => k.family === 'copy' && k.name.includes('split'));
    expect(copies.length).toBe(4);
  });

  for (const [backend, tol] of [['cpu', 1e-5], ['wasm', 1e-5], ['webgpu', 1e-4]] as const) {
    it(`${backend}: equals the float64 graph, packed and prefill then decode`, async () => {
      const dir = tmp();
      writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
      writeSafetensors(join(dir, 'model.safetensors'), weights, { format: 'pt' });
      if (backend === 'webgpu') useSwiftShader();
      const m = await Model.loadProgram(program, dir, backend === 'cpu' ? { backend, capacity: 16 } : backend === 'webgpu' ? { backend, capacity: 16, wgsl: renderProgram(program) }
        : { backend, capacity: 16, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 1 });
      const packed = (await m.forwardAsync({ ids, positions })).logits;
      const state = m.newSequence(), stepped = new Float32Array(a.length * V);
      stepped.set(await m.stepAsync([a.slice(0, 3)], [state]), 0);
      for (let t = 3; t < a.length; t++) stepped.set(await m.decodeAsync([a[t]!], [state]), t * V);
      m.dispose();
      expect(Math.max(...Array.from(ref, Math.abs)), 'the logits carry signal').toBeGreaterThan(0.5);
      expectLogitsClose(packed, ref, tol, `${backend}: packed vs float64 graph`, V);
      expectLogitsClose(stepped, ref.slice(0, a.length * V), tol, `${backend}: prefill then decode vs float64 graph`, V);
    }, 120_000);
  }
});
