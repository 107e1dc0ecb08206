// End to end on a random tiny Bamba (Mamba-2 + attention layers, bf16 weights): the WebGPU backend's
// logits equal the CPU engine's within 1e-4 · (1 + max|logit|) for a forward pass, a packed batch of
// ragged sequences, step-by-step decode, batched decode over state slots, and greedy generation
// gives the same tokens. Every shader of the program is validated by Dawn first. With SSM states
// kept in bf16: logits within 2e-3 · (1 + max|logit|) of the CPU's, every state value within one bf16
// ulp of the CPU's (95 % equal), the saved state resumed by the CPU. Then a tiny Bamba
// whose attention is layer 0 (f32, chunk 5, 4 groups: the rotary embedding acts on the embeddings
// and every Mamba layer after it carries its error to the logits), within the same bound at
// positions 0.., past 2000 (a sequence continued by decode) and past 32000 (explicit positions,
// where a device's own sin/cos of the angles miss by ~3e-3: runtime/webgpu/rotary.ts).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { Model } from '../../runtime/model.ts';
import { type Program, withSsmState } from '../../runtime/program.ts';
import { SAVED_HEADER_BYTES, type SavedSequence, heldRuns } from '../../runtime/sequences.ts';
import type { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import { expectLogitsClose, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { expectShadersValid, useSwiftShader } from './gpu.ts';

/** The bound of every WebGPU-vs-CPU comparison of logits here: 1e-4 · (1 + max|logit|). */
const RTOL = 1e-4;
/** With SSM states kept in bf16 the two backends' f32 values may round to neighbouring bf16 values
 *  where they straddle a rounding boundary (one bf16 ulp, 2^-8 relative): a wider bound. */
const BF16_RTOL = 2e-3;
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

/** The bf16 SSM values of two saved sequences (runtime/sequences.ts heldRuns): each within one bf16
 *  ulp of the other, and at least 95 % of them equal (rounding the same f32 sums the same way; a
 *  different rounding, such as truncation, leaves about half equal). */
function expectBf16StatesClose(program: Program, got: SavedSequence, want: SavedSequence, what: string): void {
  expect(got.bytes.byteLength, what).toBe(want.bytes.byteLength);
  const capacity = new DataView(want.bytes.buffer, want.bytes.byteOffset).getUint32(20, true);
  let at = SAVED_HEADER_BYTES, n = 0, same = 0;
  for (const [, count, bf16] of heldRuns(program.states, capacity, want.length)) {
    if (bf16) {
      const a = new Uint16Array(got.bytes.slice(at, at + 4 * count).buffer), b = new Uint16Array(want.bytes.slice(at, at + 4 * count).buffer);
      for (let i = 0; i < a.length; i++) {
        n++;
        if (a[i] === b[i]) same++;
        else expect((a[i]! ^ b[i]!) < 0x8000 && Math.abs(a[i]! - b[i]!) === 1, `${what}: bf16 state value ${i}: ${a[i]!.toString(16)} against ${b[i]!.toString(16)}`).toBe(true);
      }
    }
    at += 4 * count;
  }
  expect(n, what).toBeGreaterThan(0);
  expect(same / n, `${what}: share of bf16 state values equal`).toBeGreaterThanOrEqual(0.95);
}

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

  it('SSM states kept in bf16: WebGPU = CPU over packed prefill and decode; the state saved on WebGPU resumes on the CPU', async () => {
    const program = withSsmState(programFor(dir), 'bf16');
    const wgsl = renderProgram(program);
    const cpu16 = await Model.loadProgram(program, dir, { threads: 1 });
    const gpu16 = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl });
    try {
      expect(await expectShadersValid((gpu16 as unknown as { backend: WebGpuBackend }).backend)).toBeGreaterThan(60);
      // 6 and 11 tokens: the chunked scan over two and three chunks of 4, then the decode scan
      const prompts = [randomIds(6, 96, 50), randomIds(11, 96, 51)];
      const c = cpu16.prefill(prompts);
      const g = await gpu16.prefillAsync(prompts);
      g.logits.forEach((l, i) => expectLogitsClose(l, c.logits[i]!, BF16_RTOL, `bf16 states: prefill ${i}`, 96));
      for (let i = 0; i < 2; i++) expectBf16StatesClose(program, await gpu16.saveSequenceAsync(g.states[i]!), cpu16.saveSequence(c.states[i]!), `prefill ${i}`);
      let last: Float32Array = new Float32Array();
      for (let step = 0; step < 4; step++) {
        const next = randomIds(2, 96, 60 + step);
        last = await gpu16.decodeAsync(next, g.states);
        expectLogitsClose(last, cpu16.decode(next, c.states), BF16_RTOL, `bf16 states: decode step ${step}`, 96);
      }
      expectBf16StatesClose(program, await gpu16.saveSequenceAsync(g.states[1]!), cpu16.saveSequence(c.states[1]!), 'after 4 decode steps');
      // a prompt read on from the states it left (the chunked scan entering a state of its own)
      const more = [randomIds(5, 96, 65), randomIds(9, 96, 66)];
      expectLogitsClose(await gpu16.stepAsync(more, g.states, true), cpu16.step(more, c.states, true), BF16_RTOL, 'bf16 states: a piece read on', 96);
      for (let i = 0; i < 2; i++) expectBf16StatesClose(program, await gpu16.saveSequenceAsync(g.states[i]!), cpu16.saveSequence(c.states[i]!), `a piece read on ${i}`);
      // the format is in effect: the f32 states' run of the same tokens differs
      const f = await gpu.prefillAsync(prompts);
      let f32Last: Float32Array = new Float32Array();
      for (let step = 0; step < 4; step++) f32Last = await gpu.decodeAsync(randomIds(2, 96, 60 + step), f.states);
      await gpu.stepAsync(more, f.states, true);
      expect(Math.max(...last.map((v, i) => Math.abs(v - f32Last[i]!)))).toBeGreaterThan(0);
      // half the SSM states' bytes, laid out as the CPU lays them out: the CPU resumes from them
      const saved = await gpu16.saveSequenceAsync(g.states[1]!);
      const savedF = await gpu.saveSequenceAsync(f.states[1]!);
      const ssm = program.states.filter((st) => st.kind === 'ssm').reduce((a, st) => a + st.shape.reduce((x, y) => x * y, 1), 0);
      expect(savedF.bytes.byteLength - saved.bytes.byteLength).toBe(2 * ssm);
      const resumed = cpu16.restoreSequence(saved);
      const next = randomIds(1, 96, 70);
      expectLogitsClose(cpu16.decode(next, [resumed]), cpu16.decode(next, [c.states[1]!]), BF16_RTOL, 'bf16 states: the CPU resumed from WebGPU\'s state', 96);
      for (const st of g.states) gpu16.releaseSequence(st);
      for (const st of f.states) gpu.releaseSequence(st);
    } finally {
      cpu16.dispose();
      gpu16.dispose();
    }
  }, TIMEOUT);

  it('WGSL rendered for the other SSM state format is refused (RT303)', async () => {
    const f32 = programFor(dir), bf16 = withSsmState(f32, 'bf16');
    await expect(Model.loadProgram(bf16, dir, { backend: 'webgpu', wgsl: renderProgram(f32) })).rejects.toMatchObject({ code: 'RT303', message: expect.stringMatching(/WGSL rendered for SSM states in f32 with a program that keeps them in bf16/) });
    await expect(Model.loadProgram(f32, dir, { backend: 'webgpu', wgsl: renderProgram(bf16) })).rejects.toMatchObject({ code: 'RT303', message: expect.stringMatching(/WGSL rendered for SSM states in bf16 with a program that keeps them in f32/) });
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
