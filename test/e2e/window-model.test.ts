// A model with sliding-window attention runs: examples/mistral.arch, tiny, window 3, on a random
// checkpoint. On the CPU engine its fused program equals the float64 forward of its graph (compiler/
// grad.ts, unfused) within 1e-4 of the logits' scale, and differs from the same checkpoint with full
// attention (the window is not ignored); decode step by step past the window (every layer's ring
// wraps) equals prefill, a packed sequence equals it alone, a saved and restored sequence goes on
// where it was, within 1e-5 on the CPU engine and wasm, 1e-4 on WebGPU (SwiftShader); the state slot
// holds the window's rows whatever the capacity. A run target that lacked the window would refuse
// the program (RT177) rather than attend to every key; none does (CUDA: test/codegen/cuda-window.test.ts).

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
import { type Program, slotLayout } from '../../runtime/program.ts';
import { type Backend, RUN_TARGETS, type RunTarget, checkTargetRuns } from '../../runtime/targets.ts';
import { expectRuntimeError } from '../helpers/errors.ts';
import { wasmFallbacks } from '../../runtime/wasm/plan.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { ROOT, expectLogitsClose, maxAbsDiff, randomIds, rows } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';
import { packed } from '../grad/helpers.ts';

const tmp = useTmpDirs('archc-window-');
const FILE = join(ROOT, 'examples', 'mistral.arch');
const V = 96, W = 3;
const SETS = ['vocab=96', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'd_ff=48', 'dtype=f32', 'context=64'];

function build(window: number) {
  const c = compileFile(FILE, { set: [...SETS, `window=${window}`] });
  return { c, program: lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices }) };
}

async function load(program: Program, dir: string, backend: Backend): Promise<Model> {
  if (backend === 'webgpu') useSwiftShader();
  return Model.loadProgram(program, dir, backend === 'cpu' ? { backend, capacity: 32 } : backend === 'webgpu' ? { backend, capacity: 32, wgsl: renderProgram(program) }
    : { backend, capacity: 32, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 2 });
}

describe('a model with sliding-window attention', () => {
  for (const [backend, tol] of [['cpu', 1e-5], ['wasm', 1e-5], ['webgpu', 1e-4]] as const) it(`${backend}: equals the float64 graph; decode past the window equals prefill; packed equals alone; save and restore`, async () => {
    const { c, program } = build(W);
    expect(program.states.map((s) => s.window)).toEqual([W, W]);
    const dir = tmp();
    writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
    writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(9), 'f32'), { format: 'pt' });
    const b = packed([7, 2, 10], V, 3);
    const w = new Map(initWeights(c.graph, createRng(9), 'f32').map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
    const ref = lossGradients(c.graph, w, b, { grads: false }).logits;
    const m = await load(program, dir, backend);
    // the state pool's slots: 2 layers × K and V × 2 kv heads × head dim 8 × 4 bytes × the window's rows (capacity 32)
    expect(m.slotBytes).toBe(2 * 2 * 2 * 8 * 4 * W);
    const got = (await m.forwardAsync({ ids: Array.from(b.tokens), cuSeqlens: [0, 7, 9, 19] })).logits;
    expectLogitsClose(got, ref, 1e-4, 'program vs the float64 graph', V);
    expect(Math.max(...Array.from(got).map(Math.abs))).toBeGreaterThan(0.1);

    // the same checkpoint with full attention: equal on the first W tokens of each sequence, different after
    const fullDir = tmp(), f = build(0);
    writeFileSync(join(fullDir, 'config.json'), hfConfigText(f.c, 'f32'));
    writeSafetensors(join(fullDir, 'model.safetensors'), initWeights(f.c.graph, createRng(9), 'f32'), { format: 'pt' });
    const full = await load(f.program, fullDir, backend);
    const all = (await full.forwardAsync({ ids: Array.from(b.tokens), cuSeqlens: [0, 7, 9, 19] })).logits;
    expectLogitsClose(rows(got, V, 9, 9 + W), rows(all, V, 9, 9 + W), tol, 'inside the window: as full attention', V);
    expect(maxAbsDiff(rows(got, V, 9 + W, 19), rows(all, V, 9 + W, 19))).toBeGreaterThan(1e-3);

    const a = randomIds(11, V, 1), s = randomIds(5, V, 2);
    const both = (await m.forwardAsync({ ids: [...a, ...s], positions: [...a.keys(), ...s.keys()] })).logits;
    expectLogitsClose(rows(both, V, 11, 16), (await m.forwardAsync({ ids: s })).logits, tol, 'packed vs alone', V);
    // two tokens of prefill, then one at a time: the rings (3 rows) wrap three times
    const state = m.newSequence();
    const stepped = new Float32Array(11 * V);
    stepped.set(await m.stepAsync([a.slice(0, 2)], [state]), 0);
    let saved = null;
    for (let t = 2; t < 11; t++) {
      stepped.set(await m.decodeAsync([a[t]!], [state]), t * V);
      if (t === 6) saved = await m.saveSequenceAsync(state);
    }
    expectLogitsClose(stepped, rows(both, V, 0, 11), tol, 'prefill, then decode past the window, vs prefill', V);
    // restored after 7 tokens (ring wrapped), it decodes the rest as the original did
    const back = await m.restoreSequenceAsync(saved!);
    const resumed = new Float32Array(4 * V);
    for (let t = 7; t < 11; t++) resumed.set(await m.decodeAsync([a[t]!], [back]), (t - 7) * V);
    expectLogitsClose(resumed, rows(both, V, 7, 11), tol, 'restored past the wrap vs prefill', V);
  }, 120_000);

  it('holds the window\'s rows per slot, whatever the capacity', () => {
    const { program } = build(W);
    const { program: fullProgram } = build(0);
    const kvRow = 2 * 2 * (32 / 4) * 4; // K and V of 2 kv heads × head dim 8, f32
    for (const capacity of [2, 3, 64, 4096]) {
      expect(4 * slotLayout(program.states, capacity).floats, `capacity ${capacity}`).toBe(2 * kvRow * Math.min(W, capacity));
      expect(4 * slotLayout(fullProgram.states, capacity).floats, `capacity ${capacity}, full`).toBe(2 * kvRow * capacity);
    }
  });

  it('wasm runs every kernel of it in its program module (no fallback)', () => {
    expect(wasmFallbacks(build(W).program)).toEqual([]);
  });

  it('every run target takes it; one that did not would refuse it (RT177), naming the kernel and the window', () => {
    const { program } = build(W);
    expect(RUN_TARGETS.filter((t) => !t.slidingWindow).map((t) => t.name)).toEqual([]);
    for (const t of RUN_TARGETS) expect(() => checkTargetRuns(program, t)).not.toThrow();
    const lacking: RunTarget = { ...RUN_TARGETS[0], slidingWindow: false };
    const err = expectRuntimeError(() => checkTargetRuns(program, lacking), 'RT177', 'the wasm backend', 'model.layers.0.self_attn:attention, window 3');
    expect(err.message).toContain('--backend cpu');
    expect(() => checkTargetRuns(build(0).program, lacking)).not.toThrow();
  });
});
