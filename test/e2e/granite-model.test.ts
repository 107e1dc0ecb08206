// Granite-4.0-H (models/granite4h.arch), tiny, on a random checkpoint in its Hugging Face layout: on
// the CPU engine, wasm and WebGPU (SwiftShader), a packed batch equals the float64 transcription of
// GraniteMoeHybridForCausalLM (test/reference/granite4h-hf.ts) run on each sequence alone, within
// 1e-5 of the logits' scale (WebGPU 1e-4); two tokens of prefill and then one token at a time equal
// the full forward within the same bound (the router choosing per token in decode as in prefill);
// RoPE and nope (WebGPU: RoPE).

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
import { readHfConfig } from '../../runtime/hfconfig.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import { wasmFallbacks } from '../../runtime/wasm/plan.ts';
import { ROOT, expectLogitsClose, randomIds, rows } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { graniteReference } from '../reference/granite4h-hf.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';
import { packed } from '../grad/helpers.ts';

const tmp = useTmpDirs('archc-granite-');
const FILE = join(ROOT, 'models', 'granite4h.arch');
const V = 48;
const SETS = ['vocab=48', 'd_model=32', 'n_layers=3', 'layer_types=["mamba", "attention", "mamba"]', 'n_heads=4', 'n_kv_heads=2',
  'mamba_heads=8', 'd_state=4', 'chunk=4', 'd_ff=16', 'd_shared=24', 'n_experts=6', 'k_experts=2', 'dtype=f32',
  'embedding_mult=2.0', 'attention_mult=0.3', 'residual_mult=0.6', 'logits_scaling=1.5'];

function build(rope: string) {
  const c = compileFile(FILE, { set: [...SETS, `rope="${rope}"`] });
  return { c, program: lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices }) };
}

describe('Granite-4.0-H, tiny', () => {
  for (const rope of ['rope', 'nope']) {
    for (const [backend, tol] of [['cpu', 1e-5], ['wasm', 1e-5], ['webgpu', 1e-4]] as const) {
      // WebGPU (SwiftShader compiles every pipeline on the CPU) with RoPE only
      if (backend === 'webgpu' && rope === 'nope') continue;
      it(`${rope}, ${backend}: packed = the float64 reference per sequence; prefill then decode = full`, async () => {
        const { c, program } = build(rope);
        const dir = tmp();
        writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
        writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(21), 'f32'), { format: 'pt' });
        if (backend === 'webgpu') useSwiftShader();
        const m = await Model.loadProgram(program, dir, backend === 'cpu' ? { backend, capacity: 32 } : backend === 'webgpu' ? { backend, capacity: 32, wgsl: renderProgram(program) }
          : { backend, capacity: 32, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 2 });
        const a = randomIds(11, V, 1), s = randomIds(6, V, 2);
        const both = (await m.forwardAsync({ ids: [...a, ...s], positions: [...a.keys(), ...s.keys()] })).logits;
        const config = readHfConfig(join(dir, 'config.json')), ckpt = openCheckpoint(dir);
        expectLogitsClose(rows(both, V, 0, 11), graniteReference(config, ckpt, a), tol, 'first sequence vs the reference', V);
        expectLogitsClose(rows(both, V, 11, 17), graniteReference(config, ckpt, s), tol, 'second sequence vs the reference', V);
        ckpt.close();
        expect(Math.max(...Array.from(both).map(Math.abs)), 'the logits carry signal').toBeGreaterThan(0.5);
        const state = m.newSequence();
        const stepped = new Float32Array(11 * V);
        stepped.set(await m.stepAsync([a.slice(0, 2)], [state]), 0);
        for (let t = 2; t < 11; t++) stepped.set(await m.decodeAsync([a[t]!], [state]), t * V);
        expectLogitsClose(stepped, rows(both, V, 0, 11), tol, 'prefill, then decode, vs the full forward', V);
        m.dispose();
      }, 360_000);
    }
  }

  it('the float64 graph (compiler/grad.ts, the training path) = the reference; every weight gets a gradient, the experts a sparse one', () => {
    const { c } = build('rope');
    const dir = tmp();
    writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
    const tensors = initWeights(c.graph, createRng(21), 'f32');
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const b = packed([7, 5], V, 4);
    const r = lossGradients(c.graph, new Map(tensors.map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)])), b, { grads: true });
    const config = readHfConfig(join(dir, 'config.json')), ckpt = openCheckpoint(dir);
    const want = [...graniteReference(config, ckpt, Array.from(b.tokens.subarray(0, 7))), ...graniteReference(config, ckpt, Array.from(b.tokens.subarray(7)))];
    ckpt.close();
    expectLogitsClose(r.logits, want, 1e-9, 'float64 graph vs the reference', V);
    const grads = r.grads!;
    for (const t of tensors) expect(grads.has(t.name), t.name).toBe(true);
    // 12 tokens × 2 of 6 experts: expert rows no token chose get no gradient; the router's rows all do
    const wIn = grads.get('model.layers.0.block_sparse_moe.input_linear.weight')!;
    const per = wIn.length / 6, touched = Array.from({ length: 6 }, (_, e) => wIn.subarray(e * per, (e + 1) * per).some((v) => v !== 0));
    expect(touched.filter(Boolean).length).toBeGreaterThan(1);
    expect(Array.from(grads.get('model.layers.0.block_sparse_moe.router.layer.weight')!).some((v) => v !== 0)).toBe(true);
  });

  it('wasm runs every kernel in its program module: the routers\' softmax and topk as its functions, the experts on its products', () => {
    for (const rope of ['rope', 'nope']) {
      const { program } = build(rope);
      expect(wasmFallbacks(program), rope).toEqual([]);
      const fams = new Set(Object.values(program.entries).flatMap((e) => e.kernels.map((k) => k.family)));
      for (const f of ['softmax', 'topk', 'experts'] as const) expect(fams.has(f), `${rope} has ${f} kernels`).toBe(true);
    }
  });
});
