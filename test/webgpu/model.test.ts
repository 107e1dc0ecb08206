// End to end on a random tiny Bamba (Mamba-2 + attention layers, bf16 weights): the WebGPU backend's
// logits equal the CPU engine's within 1e-4 · (1 + max|logit|) for a forward pass, a packed batch of
// ragged sequences, step-by-step decode, batched decode over state slots, and greedy generation
// gives the same tokens. Every shader of the program is validated by Dawn first. Then a tiny Bamba
// whose attention is layer 0 (f32, chunk 5, 4 groups: the rotary embedding acts on the embeddings
// and every Mamba layer after it carries its error to the logits), within the same bound at
// positions 0.., past 2000 (a sequence continued by decode) and past 32000 (explicit positions,
// where a device's own sin/cos of the angles miss by ~3e-3: runtime/webgpu/rotary.ts).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { Model } from '../../runtime/model.ts';
import { withSsmState } from '../../runtime/program.ts';
import type { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import { expectLogitsClose, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { expectShadersValid, useSwiftShader } from './gpu.ts';

/** The bound of every WebGPU-vs-CPU comparison of logits here: 1e-4 · (1 + max|logit|). */
const RTOL = 1e-4;
/** SwiftShader on two busy cores: a generous bound per test (budgets are by count, not time). */
const TIMEOUT = 180_000;
let dir: string;
let cpu: Model;
let gpu: Model;

beforeAll(async () => {
  useSwiftShader();
  dir = makeDir();
  writeCheckpoint(dir, {}, { dtype: 'bf16', seed: 3 });
  const program = programFor(dir);
  cpu = await Model.loadProgram(program, dir, { threads: 1 });
  gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program) });
}, 120_000);

afterAll(() => {
  cpu?.dispose();
  gpu?.dispose();
  if (dir) removeDir(dir);
});

describe('WebGPU = CPU on a tiny Bamba', () => {
  it('runs the rendering for CPU adapters on SwiftShader (chosen by its adapter)', async () => {
    const backend = (gpu as unknown as { backend: WebGpuBackend }).backend;
    if (/swiftshader/i.test(backend.adapter)) expect(backend.profile).toBe('cpu');
  }, TIMEOUT);

  it('every shader compiles', async () => {
    const n = await expectShadersValid((gpu as unknown as { backend: WebGpuBackend }).backend);
    expect(n).toBeGreaterThan(60);
  }, TIMEOUT);

  it('forward and a packed batch of ragged sequences', async () => {
    const ids = randomIds(9, 96, 1);
    expectLogitsClose((await gpu.forwardAsync({ ids })).logits, cpu.forward({ ids }).logits, RTOL, 'forward T=9', 96);
    const packed = { ids: randomIds(13, 96, 2), cuSeqlens: [0, 5, 6, 13] };
    expectLogitsClose((await gpu.forwardAsync(packed)).logits, cpu.forward(packed).logits, RTOL, 'packed 5+1+7', 96);
  }, TIMEOUT);

  it('prefill then step-by-step decode, and batched decode over slots', async () => {
    const prompts = [randomIds(6, 96, 3), randomIds(3, 96, 4)];
    const c = cpu.prefill(prompts);
    const g = await gpu.prefillAsync(prompts);
    g.logits.forEach((l, i) => expectLogitsClose(l, c.logits[i]!, RTOL, `prefill ${i}`, 96));
    for (let step = 0; step < 4; step++) {
      const next = randomIds(2, 96, 10 + step);
      expectLogitsClose(await gpu.decodeAsync(next, g.states), cpu.decode(next, c.states), RTOL, `decode step ${step}`, 96);
    }
    // one sequence alone, after the batch
    const one = randomIds(1, 96, 20);
    expectLogitsClose(await gpu.decodeAsync(one, [g.states[1]!]), cpu.decode(one, [c.states[1]!]), RTOL, 'decode one slot', 96);
  }, TIMEOUT);

  it('greedy generation gives the same tokens', async () => {
    const prompt = randomIds(5, 96, 5);
    const take = async (m: Model) => { const out: number[] = []; for await (const t of m.generate(prompt, { maxTokens: 8, temperature: 0, stop: [] })) out.push(t.id); return out; };
    const want = await take(cpu);
    expect(want.length).toBe(8);
    expect(await take(gpu)).toEqual(want);
  }, TIMEOUT);

  it('SSM states kept in bf16 are refused with RT178 (the cpu and wasm backends keep them)', async () => {
    const program = withSsmState(programFor(dir), 'bf16');
    await expect(Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program) })).rejects.toMatchObject({ code: 'RT178', message: expect.stringMatching(/the webgpu backend does not keep SSM states in bf16/) });
  }, TIMEOUT);

  it('the synchronous methods say to use the async ones', () => {
    expect(() => gpu.forward({ ids: [1, 2] })).toThrow(/RT504.*forwardAsync/);
    const s = gpu.newSequence();
    expect(() => gpu.saveSequence(s)).toThrow(/RT504.*saveSequenceAsync/);
    gpu.releaseSequence(s);
  });

  it('saveSequenceAsync holds the CPU\'s state; restoreSequenceAsync resumes it', async () => {
    const prompt = randomIds(6, 96, 40);
    const c = cpu.prefill([prompt]);
    const g = await gpu.prefillAsync([prompt]);
    const saved = await gpu.saveSequenceAsync(g.states[0]!);
    const want = cpu.saveSequence(c.states[0]!);
    expect(saved.length).toBe(6);
    expect(saved.bytes.byteLength).toBe(want.bytes.byteLength);
    const f32 = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    expectLogitsClose(f32(saved.bytes), f32(want.bytes), RTOL, 'saved state');
    const next = randomIds(1, 96, 41);
    const first = await gpu.decodeAsync(next, g.states);
    const restored = await gpu.restoreSequenceAsync(saved);
    expectLogitsClose(await gpu.decodeAsync(next, [restored]), first, 1e-6, 'decode after restore');
    gpu.releaseSequence(restored);
    gpu.releaseSequence(g.states[0]!);
  }, TIMEOUT);

  it('forwardAsync frees the state pool it made', async () => {
    const pools = (gpu as unknown as { backend: WebGpuBackend }).backend.pools;
    const before = pools.size;
    for (let i = 0; i < 3; i++) await gpu.forwardAsync({ ids: randomIds(3, 96, 50 + i) });
    expect(pools.size).toBe(before);
  }, TIMEOUT);

  // the last test of the file on `gpu`: its device is lost from here on (a second model would
  // compile every pipeline again on a device of its own)
  it('a lost device fails the next call with RT502, naming the reason', async () => {
    const backend = (gpu as unknown as { backend: WebGpuBackend }).backend;
    expect((await gpu.forwardAsync({ ids: [1, 2, 3] })).logits.length).toBe(3 * 96);
    backend.device.destroy();
    await backend.device.lost;
    await expect(gpu.forwardAsync({ ids: [1, 2, 3] })).rejects.toMatchObject({ code: 'RT502', message: expect.stringMatching(/device was lost/) });
  }, TIMEOUT);
});

describe('WebGPU = CPU on a tiny Bamba with attention at layer 0, at large positions', () => {
  /** Large enough for explicit positions past 32000 (the slots are made as sequences need them). */
  const CAPACITY = 32_768;
  let dir0: string;
  let cpu0: Model;
  let gpu0: Model;
  beforeAll(async () => {
    dir0 = makeDir();
    writeCheckpoint(dir0, { attn_layers: [0], chunk: 5, mamba_groups: 4 }, { dtype: 'f32', seed: 3 });
    const program = programFor(dir0);
    cpu0 = await Model.loadProgram(program, dir0, { threads: 1, capacity: CAPACITY });
    gpu0 = await Model.loadProgram(program, dir0, { backend: 'webgpu', wgsl: renderProgram(program), capacity: CAPACITY });
  }, 120_000);

  afterAll(() => {
    cpu0?.dispose();
    gpu0?.dispose();
    if (dir0) removeDir(dir0);
  });

  it('forward, a packed batch, prefill and decode from position 0', async () => {
    const ids = randomIds(9, 96, 1);
    expectLogitsClose((await gpu0.forwardAsync({ ids })).logits, cpu0.forward({ ids }).logits, RTOL, 'forward T=9', 96);
    const packed = { ids: randomIds(13, 96, 2), cuSeqlens: [0, 5, 6, 13] };
    expectLogitsClose((await gpu0.forwardAsync(packed)).logits, cpu0.forward(packed).logits, RTOL, 'packed 5+1+7', 96);
    const prompts = [randomIds(7, 96, 3), randomIds(2, 96, 4)];
    const c = cpu0.prefill(prompts);
    const g = await gpu0.prefillAsync(prompts);
    g.logits.forEach((l, i) => expectLogitsClose(l, c.logits[i]!, RTOL, `prefill ${i}`, 96));
    for (let step = 0; step < 3; step++) {
      const next = randomIds(2, 96, 10 + step);
      expectLogitsClose(await gpu0.decodeAsync(next, g.states), cpu0.decode(next, c.states), RTOL, `decode step ${step}`, 96);
    }
    for (const s of g.states) gpu0.releaseSequence(s);
    for (const s of c.states) cpu0.releaseSequence(s);
  }, TIMEOUT);

  it('a sequence continued past position 2000 by decode steps', async () => {
    const prompt = randomIds(2050, 96, 60);
    const c = cpu0.prefill([prompt]);
    const g = await gpu0.prefillAsync([prompt]);
    expectLogitsClose(g.logits[0]!, c.logits[0]!, RTOL, 'prefill of 2050 tokens', 96);
    for (let step = 0; step < 3; step++) {
      const next = randomIds(1, 96, 61 + step);
      expectLogitsClose(await gpu0.decodeAsync(next, g.states), cpu0.decode(next, c.states), RTOL, `decode at position ${2050 + step}`, 96);
    }
    gpu0.releaseSequence(g.states[0]!);
    cpu0.releaseSequence(c.states[0]!);
  }, TIMEOUT);

  it('positions past 32000: the product-then-epilogue path (128 rows) and the matrix-vector path (3 rows)', async () => {
    for (const [T, from, seed] of [[128, 32_600, 70], [128, 32_600, 71], [3, 32_760, 72]] as const) {
      const ids = randomIds(T, 96, seed);
      const positions = ids.map((_, i) => from + i);
      expectLogitsClose((await gpu0.forwardAsync({ ids, positions })).logits, cpu0.forward({ ids, positions }).logits, RTOL, `forward of ${T} tokens at positions ${from}..`, 96);
    }
  }, TIMEOUT);
});
