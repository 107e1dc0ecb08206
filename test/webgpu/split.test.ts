// Buffers split across bindings (runtime/webgpu/split.ts), forced with a small `maxBindingBytes`:
// the binding region (runtime/webgpu/shaders.ts) whole and in parts, and every rendered pass reaching
// its buffers through accessors alone; every kernel family with split operands against the CPU backend (tolerance
// as kernels.test.ts: |gpu − cpu| ≤ 2e-4 · (1 + |cpu|)); a tiny Bamba whose bf16 in_proj weights,
// arena, scratch and state pool are split, against the CPU engine (1e-4 · (1 + max|logit|), as
// model.test.ts) for forward, packed, prefill + step-by-step and batched decode over slots; the
// preflight naming the kernel and buffers when a pass needs more bindings than the adapter has;
// RT505 for a batch beyond the plan; a golden file of one specialised kernel.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { WebGpuBackend, shaderProblem } from '../../runtime/webgpu/backend.ts';
import { type BindingKind, WHOLE, bindingRegion, shaderCode } from '../../runtime/webgpu/shaders.ts';
import { type SplitOptions, type SplitPlan, planSplits, specialise } from '../../runtime/webgpu/split.ts';
import { compileTiny, expectLogitsClose, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { runOp, runOpAsync } from '../helpers/kernels.ts';
import { type Case, act, weight } from './cases.ts';
import { expectClose, prng } from '../runtime/cpu/check.ts';
import { expectShadersValid, testDevice } from './gpu.ts';

const TOL = { atol: 2e-4, rtol: 2e-4 };
/** Logits within RTOL · (1 + max|logit|) of the CPU engine's, as model.test.ts. */
const RTOL = 1e-4;
const TIMEOUT = 180_000;

let device: GPUDevice;
beforeAll(async () => { ({ device } = await testDevice()); });

/** The split buffers of a plan, as `kind: parts`. */
const splits = (plan: SplitPlan) => Object.fromEntries([...plan.buffers].filter(([, s]) => s.parts > 1).map(([k, s]) => [k, s.parts]));

describe('the binding region', () => {
  const kinds: BindingKind[] = ['arena', 'ints', 'w:x'];

  it('declares each buffer whole or in parts, bindings numbered in order, accessors by element', () => {
    const decls = (text: string) => text.split('\n').filter((l) => l.startsWith('@group'));
    expect(decls(bindingRegion(kinds))).toEqual([
      '@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;',
      '@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;',
      '@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;',
    ]);
    expect(bindingRegion(kinds)).toContain('fn arena_get(i: u32) -> f32 { return arena_p0[i]; }');
    expect(bindingRegion(kinds)).not.toContain('fn wb2_set');
    const split = bindingRegion(kinds, [{ parts: 3, per: 256 }, WHOLE, { parts: 2, per: 100 }]);
    expect(decls(split).map((l) => /binding\((\d+)\).* (\w+):/.exec(l)!.slice(1).join(' '))).toEqual(['0 arena_p0', '1 arena_p1', '2 arena_p2', '3 ints_p0', '4 wb2_p0', '5 wb2_p1']);
    expect(split).toContain('fn arena_set(i: u32, v: f32) {\n  if (i < 256u) { arena_p0[i] = v; return; }\n  if (i < 512u) { arena_p1[i - 256u] = v; return; }\n  arena_p2[i - 512u] = v;\n}');
    expect(split).toContain('fn wb2_get(i: u32) -> u32 {\n  if (i < 100u) { return wb2_p0[i]; }\n  return wb2_p1[i - 100u];\n}');
    expect(() => bindingRegion(kinds, [WHOLE])).toThrow(/1 binding layouts for 3 bindings/);
  });

  it('every pass of the tiny Bamba reaches its buffers only through accessors, and compiles with each in 3 parts', async () => {
    const c = compileTiny();
    const wgsl = renderProgram(lowerToProgram(c.graph, c.bindings));
    let n = 0;
    for (const [profile, entries] of Object.entries(wgsl.profiles)) {
      for (const [entry, e] of Object.entries(entries)) {
        for (const k of e.kernels) {
          for (const p of k.passes) {
            const where = `${profile} ${entry} ${k.kernel} (${p.name})`;
            expect(p.body, where).not.toMatch(/\b(arena|ints|state|scratch[0-2]|wb\d+)(_p\d+)?\s*\[/);
            const code = shaderCode(p, p.bindings.map(() => ({ parts: 3, per: 64 })));
            expect(code.startsWith(`${p.head}\n`) && code.endsWith(`\n${p.body}`), where).toBe(true);
            const problem = await shaderProblem(device, code);
            if (problem) throw new Error(`Dawn rejected ${where} with every buffer in 3 parts:\n${problem}`);
            n++;
          }
        }
      }
    }
    expect(n).toBeGreaterThan(100);
  }, TIMEOUT);
});

/** One case per kernel family (products on both paths and in every weight dtype, norms, elementwise
 *  with a weight, copy, rope, conv, both scans, attention). */
const CASES: Case[] = [
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [37]), weight(r, [29, 37], 'bf16'), weight(r, [29])], Ts: [1, 3, 21], modes: ['forward', 'decode'] },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [40]), weight(r, [18, 40], 'f16')], Ts: [2, 17] },
  { op: 'linear', attrs: { transposed: true }, inputs: (T, r) => [act(r, T, [16]), weight(r, [16, 24]), weight(r, [24])], Ts: [1, 19] },
  { op: 'head', inputs: (T, r) => [act(r, T, [32]), weight(r, [50, 32], 'bf16')], Ts: [1, 6] },
  { op: 'rmsnorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [3, 24]), weight(r, [24])], Ts: [1, 7] },
  { op: 'rmsnorm_gated', attrs: { eps: 1e-5, groups: 2 }, inputs: (T, r) => [act(r, T, [40]), act(r, T, [40]), weight(r, [40])], Ts: [1, 9] },
  { op: 'layernorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [300]), weight(r, [300]), weight(r, [300])], Ts: [1, 4] },
  { op: 'silu', inputs: (T, r) => [act(r, T, [33], -6, 6)], Ts: [10] },
  { op: 'mul', inputs: (T, r) => [act(r, T, [120]), weight(r, [120])], Ts: [6] },
  { op: 'split', attrs: { sizes: [5, 7] }, inputs: (T, r) => [act(r, T, [12])], Ts: [13] },
  { op: 'rope', attrs: { rotary_dim: 4, theta: 10000 }, inputs: (T, r) => [act(r, T, [3, 8]), { act: new Float32Array(T), shape: ['T'], dtype: 'i32' }], Ts: [9] },
  { op: 'causal_conv1d', inputs: (T, r) => [act(r, T, [10]), weight(r, [10, 1, 4]), weight(r, [10])], Ts: [1, 7], modes: ['forward', 'decode'] },
  {
    op: 'ssd', attrs: { chunk: 4 }, Ts: [1, 4, 11], modes: ['forward', 'decode'],
    inputs: (T, r) => [act(r, T, [4, 6]), act(r, T, [4], 0.05, 0.8), weight(r, [4], 'f32', -2, -0.2), act(r, T, [2, 5]), act(r, T, [2, 5]), weight(r, [4])],
  },
  { op: 'attention', attrs: { scale: 0.3 }, inputs: (T, r) => [act(r, T, [4, 8]), act(r, T, [2, 8]), act(r, T, [2, 8])], Ts: [1, 6], modes: ['forward', 'decode'] },
];

/** The smallest binding (a power of two from 64 bytes) the op's program fits the adapter with. */
function smallestFit(p: Program, opts: SplitOptions): { bytes: number; plan: SplitPlan } {
  const wgsl = renderProgram(p);
  for (let bytes = 64; ; bytes *= 2) {
    const { plan, problems } = planSplits(p, wgsl, device.limits, { ...opts, maxBindingBytes: bytes });
    if (!problems.length) return { bytes, plan };
  }
}

describe('WGSL kernels with split operands = the CPU backend', () => {
  CASES.forEach((c, n) => {
    it(`${c.op} ${JSON.stringify(c.attrs ?? {})}`, async () => {
      let splitSeen = false;
      for (const mode of c.modes ?? ['forward']) {
        for (const T of c.Ts) {
          const inputs = c.inputs(T, prng(2000 + 17 * n + T));
          const cpu = runOp(c.op, inputs, c.attrs ?? {}, T, { mode });
          // the pool holds T slots (decode) of T tokens each; the batch is T tokens
          const opts: SplitOptions = { maxBatchTokens: T, stateSlots: T, capacity: Math.max(1, T) };
          let backend: WebGpuBackend | undefined;
          let parts: Record<string, number> = {};
          const gpu = await runOpAsync(c.op, inputs, c.attrs ?? {}, T, {
            mode, backend: (p) => {
              const { bytes, plan } = smallestFit(p, opts);
              parts = splits(plan);
              return (backend = new WebGpuBackend(p, renderProgram(p), device, 'test', false, { ...opts, maxBindingBytes: bytes }));
            },
          });
          if (Object.keys(parts).length) splitSeen = true;
          await expectShadersValid(backend!);
          gpu.outputs.forEach((y, i) => expectClose(y, cpu.outputs[i]!, TOL, `${c.op} ${mode} T=${T} output ${i} (split: ${JSON.stringify(parts)})`));
          backend!.dispose();
        }
      }
      expect(splitSeen, `no operand of ${c.op} was split`).toBe(true);
    });
  });
});

/** The tiny Bamba's split: its bf16 in_proj weights (2 parts, whole rows), the arena (2 parts in
 *  forward and prefill; a decode step's fits one), the chunk-state scratch (2) and the state pool (2,
 *  a slot each); every pass within SwiftShader's 12 bindings. */
const SPLIT: SplitOptions = { maxBindingBytes: 9200, maxBatchTokens: 9, stateSlots: 2 };
const CAPACITY = 12;

describe('WebGPU = CPU on a tiny Bamba with split buffers', () => {
  let dir: string;
  let cpu: Model;
  let gpu: Model;
  let backend: WebGpuBackend;

  beforeAll(async () => {
    dir = makeDir();
    writeCheckpoint(dir, {}, { dtype: 'bf16', seed: 7 });
    const program = programFor(dir);
    cpu = await Model.loadProgram(program, dir, { threads: 1, capacity: CAPACITY });
    gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program), capacity: CAPACITY, webgpu: SPLIT });
    backend = (gpu as unknown as { backend: WebGpuBackend }).backend;
  }, 120_000);

  afterAll(() => {
    cpu?.dispose();
    gpu?.dispose();
    if (dir) removeDir(dir);
  });

  it('splits a bf16 weight, the arena and the state pool, and every shader compiles', async () => {
    const s = splits(backend.plan);
    expect(s['w:model.layers.0.mamba.in_proj.weight']).toBe(2);
    expect(s.arena).toBe(2);
    expect(backend.plan.entries.prefill.get('arena')).toBe(2);
    expect(s.state).toBe(2);
    expect(backend.plan.buffers.get('state')!.partBytes).toBe(backend.plan.slotBytes);
    expect(backend.program.weights.find((w) => w.name === 'model.layers.0.mamba.in_proj.weight')!.dtype).toBe('bf16');
    expect(await expectShadersValid(backend)).toBeGreaterThan(60);
  }, TIMEOUT);

  it('forward and a packed batch of ragged sequences', async () => {
    const ids = randomIds(9, 96, 1);
    expectLogitsClose((await gpu.forwardAsync({ ids })).logits, cpu.forward({ ids }).logits, RTOL, 'forward T=9', 96);
    // forwardAsync's own pool has slots of the longest sequence's tokens, so they straddle the parts
    const packed = { ids: randomIds(9, 96, 2), cuSeqlens: [0, 4, 9] };
    expectLogitsClose((await gpu.forwardAsync(packed)).logits, cpu.forward(packed).logits, RTOL, 'packed 4+5', 96);
  }, TIMEOUT);

  it('prefill, step-by-step decode and batched decode over slots in both parts of the pool', async () => {
    const prompts = [randomIds(6, 96, 3), randomIds(3, 96, 4)];
    const c = cpu.prefill(prompts);
    const g = await gpu.prefillAsync(prompts);
    expect(g.states.map((s) => s.slot).sort()).toEqual([0, 1]);
    g.logits.forEach((l, i) => expectLogitsClose(l, c.logits[i]!, RTOL, `prefill ${i}`, 96));
    for (let step = 0; step < 4; step++) {
      const next = randomIds(2, 96, 10 + step);
      expectLogitsClose(await gpu.decodeAsync(next, g.states), cpu.decode(next, c.states), RTOL, `decode step ${step}`, 96);
    }
    const one = randomIds(1, 96, 20);
    expectLogitsClose(await gpu.decodeAsync(one, [g.states[1]!]), cpu.decode(one, [c.states[1]!]), RTOL, 'decode one slot', 96);
    const saved = await gpu.saveSequenceAsync(g.states[1]!);
    const want = cpu.saveSequence(c.states[1]!);
    const f32 = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    expectLogitsClose(f32(saved.bytes), f32(want.bytes), RTOL, 'the second slot, read from the second part');
    for (const s of g.states) gpu.releaseSequence(s);
    for (const s of c.states) cpu.releaseSequence(s);
  }, TIMEOUT);

  it('a batch or a pool beyond the plan is RT505', async () => {
    await expect(gpu.forwardAsync({ ids: randomIds(20, 96, 30), cuSeqlens: [0, 10, 20] })).rejects.toThrow(/RT505: a batch of 20 tokens, 2 sequences: the arena needs \d+ bytes .*webgpu\.maxBatchTokens or webgpu\.maxBatchSequences/);
    const held = [gpu.newSequence(), gpu.newSequence()];
    expect(() => gpu.newSequence()).toThrow(/RT505: state slot 3 .*webgpu\.stateSlots/);
    for (const s of held) gpu.releaseSequence(s);
  }, TIMEOUT);
});

/** The trained tiny-bamba-a (../shared, bf16): its larger weights (in_proj, the MLP's), arena and
 *  state pool split at the smallest binding (a power of two) that fits SwiftShader's bindings, on
 *  held-out text, against the CPU engine (1e-4 · (1 + max|logit|), as above). */
describe('the trained tiny-bamba-a with split buffers', () => {
  const dir = join(import.meta.dirname, '..', '..', '..', 'shared', 'models', 'tiny-bamba-a', 'bf16');

  it('forward, prefill and decode steps equal the CPU engine', async () => {
    const text = [...readFileSync(join(dir, '..', 'eval-A.txt')).subarray(1000, 1040)];
    const program = programFor(dir);
    const opts: SplitOptions = { maxBatchTokens: text.length, stateSlots: 2, capacity: text.length + 8 };
    const { bytes, plan } = smallestFit(program, opts);
    const s = splits(plan);
    expect(s['w:model.layers.0.mamba.in_proj.weight'], JSON.stringify(s)).toBeGreaterThan(1);
    expect(s.arena, JSON.stringify(s)).toBeGreaterThan(1);
    expect(s.state, JSON.stringify(s)).toBeGreaterThan(1);
    const cpu = await Model.loadProgram(program, dir, { threads: 1, capacity: opts.capacity });
    const gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program), capacity: opts.capacity, webgpu: { ...opts, maxBindingBytes: bytes } });
    try {
      const V = cpu.vocab;
      expectLogitsClose((await gpu.forwardAsync({ ids: text })).logits, cpu.forward({ ids: text }).logits, RTOL, `forward of ${text.length} bytes (split: ${JSON.stringify(s)})`, V);
      const prompts = [text.slice(0, 30), text.slice(5, 17)];
      const c = cpu.prefill(prompts);
      const g = await gpu.prefillAsync(prompts);
      g.logits.forEach((l, i) => expectLogitsClose(l, c.logits[i]!, RTOL, `prefill ${i}`, V));
      for (let step = 0; step < 2; step++) {
        const next = [text[30 + step]!, text[17 + step]!];
        expectLogitsClose(await gpu.decodeAsync(next, g.states), cpu.decode(next, c.states), RTOL, `decode step ${step}`, V);
      }
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  }, 2 * TIMEOUT); // a 5M model's shaders for three entries on SwiftShader, on a shared machine
});

describe('the preflight', () => {
  const c = compileTiny();
  const program = lowerToProgram(c.graph, c.bindings);
  const wgsl = renderProgram(program);

  it('names the kernel, the pass and the split buffers when a pass needs more bindings than the adapter has', () => {
    let error: unknown;
    try {
      new WebGpuBackend(program, wgsl, device, 'test', false, { maxBindingBytes: 1024, maxBatchTokens: 16 });
    } catch (e) { error = e; }
    expect(String(error)).toMatch(new RegExp(`RT501: the model does not fit this WebGPU device \\(test\\):\\n  kernel model\\.embed_tokens:embedding \\(forward, pass lookup\\) binds \\d+ storage buffers \\(3 buffers; the arena in \\d+ parts of 1024 bytes, weight model\\.embed_tokens\\.weight in 6 parts of 1024 bytes\\); the adapter allows ${device.limits.maxStorageBuffersPerShaderStage} per shader stage`));
    expect(String(error)).toMatch(/… and \d+ more/);
  });

  it('through Model.load as well', async () => {
    const dir = makeDir();
    try {
      writeCheckpoint(dir, {}, { dtype: 'bf16', seed: 8 });
      const p = programFor(dir);
      await expect(Model.loadProgram(p, dir, { backend: 'webgpu', wgsl: renderProgram(p), webgpu: { maxBindingBytes: 2048 } }))
        .rejects.toThrow(/RT501: [^]*\n  kernel \S+ \(\w+, pass [\w -]+\) binds \d+ storage buffers .*in \d+ parts of 2048 bytes/);
    } finally { removeDir(dir); }
  }, TIMEOUT);
});

describe('golden WGSL of a specialised kernel', () => {
  it('prefill model.layers.0.mamba:ssd with the arena, chunk states and state pool split', () => {
    const c = compileTiny();
    const program = lowerToProgram(c.graph, c.bindings);
    const wgsl = renderProgram(program);
    const { plan } = planSplits(program, wgsl, { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30, maxStorageBuffersPerShaderStage: 12 }, { ...SPLIT, capacity: CAPACITY });
    expect(Object.fromEntries(plan.entries.prefill)).toEqual({ arena: 2, scratch0: 2, scratch1: 1, scratch2: 1 });
    expect(plan.buffers.get('state')!.parts).toBe(2);
    const k = wgsl.profiles.gpu.prefill.kernels.find((x) => x.kernel === 'model.layers.0.mamba:ssd')!;
    const text = k.passes.map((p) => { const b = specialise(p, plan, 'prefill'); return `// ==== pass ${p.name}: bindings ${b.bindings.map((x) => `${x.kind}#${x.part}`).join(', ')}\n${b.code}`; }).join('\n');
    const file = join(import.meta.dirname, '..', 'golden', 'wgsl', 'split.prefill.model.layers.0.mamba_ssd.wgsl');
    if (process.env.ARCHC_UPDATE_GOLDEN || !existsSync(file)) {
      if (process.env.CI) throw new Error(`golden file ${file} is missing`);
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, text);
    }
    expect(text).toBe(readFileSync(file, 'utf8'));
  });
});
