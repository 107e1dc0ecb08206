// A mixture of experts written with `gather` and `scatter` (test/fixtures/moe/gather-moe.arch) against
// the same mixture through the grouped `experts` op (experts-moe.arch), on one random checkpoint laid
// out for each (input_linear's gate rows and up rows each stacked [E·I, H], the down products side by side [H, E·I], the
// spreading weight all ones; random uniform numbers, for a signal): on the CPU engine and wasm the
// logits agree within 1e-5 of their scale (WebGPU on SwiftShader: 1e-4), packed over two sequences and
// prefill-then-decode; on wasm
// the routing kernels (topk, softmax, gather, scatter) run in the program module.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import type { Tensor } from '../../runtime/tensor.ts';
import { wasmFallbacks } from '../../runtime/wasm/plan.ts';
import { ROOT, expectLogitsClose, randomIds } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { prng, uniform } from '../runtime/cpu/check.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';

const tmp = useTmpDirs('archc-gather-moe-');
const V = 40, H = 16, I = 12, E = 5;

function build(file: string) {
  const c = compileFile(join(ROOT, 'test', 'fixtures', 'moe', file));
  return { c, program: lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices }) };
}

const f32 = (shape: number[], data: Float32Array): Tensor => ({ dtype: 'f32', shape, data });

/** Both models' checkpoint directories over the same numbers. */
function checkpoints() {
  const ex = build('experts-moe.arch'), ga = build('gather-moe.arch');
  const r = prng(31);
  const tensors = initWeights(ex.c.graph, createRng(31), 'f32').map((t) => ({ name: t.name, tensor: f32(t.tensor.shape as number[], uniform(r, (t.tensor.data as Float32Array).length, -0.5, 0.5)) }));
  const by = new Map(tensors.map((t) => [t.name, t.tensor.data as Float32Array]));
  const wIn = by.get('model.moe.input_linear.weight')!, wOut = by.get('model.moe.output_linear.weight')!;
  // expert e's gate rows [0, I) or up rows [I, 2I) of w_in [E, 2I, H], stacked: [E·I, H]
  const rowsOf = (w: Float32Array, from: number) => {
    const out = new Float32Array(E * I * H);
    for (let e = 0; e < E; e++) out.set(w.subarray((e * 2 * I + from) * H, (e * 2 * I + from + I) * H), e * I * H);
    return out;
  };
  const down = new Float32Array(H * E * I);
  for (let e = 0; e < E; e++) for (let h = 0; h < H; h++) for (let i = 0; i < I; i++) down[h * E * I + e * I + i] = wOut[(e * H + h) * I + i]!;
  const same = ['model.embed_tokens.weight', 'model.moe.router.layer.weight', 'lm_head.weight'];
  const gathered = [
    ...tensors.filter((t) => same.includes(t.name)),
    ...(['gate', 'up'] as const).map((part) => ({ name: `model.moe.${part}_linear.weight`, tensor: f32([E * I, H], rowsOf(wIn, part === 'gate' ? 0 : I)) })),
    { name: 'model.moe.ones.weight', tensor: f32([I, 1], new Float32Array(I).fill(1)) },
    { name: 'model.moe.output_linear.weight', tensor: f32([H, E * I], down) },
  ];
  const dirs = [[ex, tensors], [ga, gathered]].map(([m, ts]) => {
    const dir = tmp();
    writeFileSync(join(dir, 'config.json'), hfConfigText((m as typeof ex).c, 'f32'));
    writeSafetensors(join(dir, 'model.safetensors'), ts as typeof tensors, { format: 'pt' });
    return dir;
  });
  return { experts: { program: ex.program, dir: dirs[0]! }, gather: { program: ga.program, dir: dirs[1]! } };
}

async function load(program: Program, dir: string, backend: 'cpu' | 'wasm' | 'webgpu'): Promise<Model> {
  if (backend === 'webgpu') useSwiftShader();
  return Model.loadProgram(program, dir, backend === 'cpu' ? { backend, capacity: 32 } : backend === 'webgpu' ? { backend, capacity: 32, wgsl: renderProgram(program) }
    : { backend, capacity: 32, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 1 });
}

describe('a mixture of experts through gather and scatter = through experts', () => {
  for (const [backend, tol] of [['cpu', 1e-5], ['wasm', 1e-5], ['webgpu', 1e-4]] as const) {
    it(`${backend}: packed, and prefill then decode`, async () => {
      const { experts, gather } = checkpoints();
      const a = randomIds(9, V, 3), s = randomIds(5, V, 4);
      const logits: Float32Array[] = [], stepped: Float32Array[] = [];
      for (const { program, dir } of [experts, gather]) {
        const m = await load(program, dir, backend);
        logits.push((await m.forwardAsync({ ids: [...a, ...s], positions: [...a.keys(), ...s.keys()] })).logits);
        const state = m.newSequence(), out = new Float32Array(9 * V);
        out.set(await m.stepAsync([a.slice(0, 2)], [state]), 0);
        for (let t = 2; t < 9; t++) out.set(await m.decodeAsync([a[t]!], [state]), t * V);
        stepped.push(out);
        m.dispose();
      }
      expect(Math.max(...Array.from(logits[0]!, Math.abs)), 'the logits carry signal').toBeGreaterThan(0.5);
      expectLogitsClose(logits[1]!, logits[0]!, tol, `${backend}: gather/scatter vs experts, packed`, V);
      expectLogitsClose(stepped[1]!, logits[0]!.slice(0, 9 * V), tol, `${backend}: gather/scatter prefill then decode vs experts, packed`, V);
      expectLogitsClose(stepped[0]!, logits[0]!.slice(0, 9 * V), tol, `${backend}: experts prefill then decode vs packed`, V);
    }, 120_000);
  }

  it('wasm runs the gather model\'s routing kernels in its program module (only the spreading product falls back)', () => {
    const { program } = build('gather-moe.arch');
    // a product over the k rows of each token's [k, 1] gates: the wasm products take one row per token
    expect(wasmFallbacks(program).map((f) => `${f.entry} ${f.name}`)).toEqual(['forward', 'prefill', 'decode'].map((e) => `${e} model.moe.ones:linear`));
    const fams = new Set(Object.values(program.entries).flatMap((e) => e.kernels.map((k) => k.family)));
    for (const f of ['gather', 'scatter', 'topk', 'softmax'] as const) expect(fams.has(f), f).toBe(true);
  });
});
