// Every WGSL kernel family against the CPU backend (the oracle), through the kernel harness: the op
// is lowered, its kernels rendered to WGSL and run on Dawn (SwiftShader here), outputs poisoned with
// NaN first; random inputs at several token counts, ragged ones included, in prefill and decode mode,
// in both profiles (the GPU-shaped and the CPU-adapter-shaped rendering).
// Tolerance: |gpu − cpu| ≤ 2e-4 · (1 + |cpu|) per element (f32 on the GPU against the CPU's double
// sums; the chunked scan sums exponentials of segment sums in f32).

import { beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { WebGpuBackend, adapterProfile } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { runOp, runOpAsync } from '../helpers/kernels.ts';
import { type Case, act, weight } from './cases.ts';
import { expectClose, prng, uniform } from '../runtime/cpu/check.ts';
import { expectShadersValid, testDevice } from './gpu.ts';

const TOL = { atol: 2e-4, rtol: 2e-4 };
/** Both renderings of every kernel: for GPUs and for CPU adapters (run here on SwiftShader alike). */
const PROFILES: readonly WgslProfile[] = ['gpu', 'cpu'];

let device: GPUDevice;
beforeAll(async () => { ({ device } = await testDevice()); });

const CASES: Case[] = [
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [37]), weight(r, [29, 37], 'bf16'), weight(r, [29])], Ts: [1, 3, 21], modes: ['forward', 'decode'] },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [40]), weight(r, [18, 40], 'f16')], Ts: [2, 17] },
  // packed weights read a pair per u32 (even K) or one at a time (odd K), over 1, 3 and 5 rows
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [44]), weight(r, [30, 44], 'bf16'), weight(r, [30])], Ts: [1, 3, 5], modes: ['forward', 'decode'] },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [39]), weight(r, [21, 39], 'f16')], Ts: [1, 3, 5] },
  { op: 'linear', attrs: { transposed: true }, inputs: (T, r) => [act(r, T, [16]), weight(r, [16, 24]), weight(r, [24])], Ts: [1, 19] },
  { op: 'head', inputs: (T, r) => [act(r, T, [32]), weight(r, [50, 32], 'bf16')], Ts: [1, 6] },
  { op: 'rmsnorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [3, 24]), weight(r, [24])], Ts: [1, 7] },
  { op: 'rmsnorm_gated', attrs: { eps: 1e-5, groups: 2 }, inputs: (T, r) => [act(r, T, [40]), act(r, T, [40]), weight(r, [40])], Ts: [1, 9] },
  { op: 'layernorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [300]), weight(r, [300]), weight(r, [300])], Ts: [1, 4] },
  { op: 'silu', inputs: (T, r) => [act(r, T, [33], -6, 6)], Ts: [1, 10] },
  { op: 'softplus', inputs: (T, r) => [act(r, T, [33], -25, 25)], Ts: [3] },
  { op: 'sigmoid', inputs: (T, r) => [act(r, T, [19], -30, 30)], Ts: [1, 6] },
  { op: 'scale', attrs: { by: 0.22 }, inputs: (T, r) => [act(r, T, [2, 9])], Ts: [3] },
  { op: 'softmax', inputs: (T, r) => [act(r, T, [3, 7], -20, 20)], Ts: [1, 5], modes: ['forward', 'decode'] },
  { op: 'topk', attrs: { k: 3, normalize: false }, inputs: (T, r) => [act(r, T, [9])], Ts: [1, 6] },
  { op: 'topk', attrs: { k: 2, normalize: true }, inputs: (T, r) => [act(r, T, [8], 0.05, 1)], Ts: [4], modes: ['forward', 'decode'] },
  // each token's two distinct experts of 5 (expert 4 unused), bf16 expert weights
  {
    op: 'experts', Ts: [1, 7], modes: ['forward', 'decode'],
    inputs: (T, r) => [act(r, T, [12]), { act: Float32Array.from({ length: 2 * T }, (_, i) => (i % 2 ? (Math.floor(i / 2) + 1) % 4 : Math.floor(i / 2) % 4)), shape: ['T', 2], dtype: 'i32' },
      act(r, T, [2], 0.1, 1), weight(r, [5, 16, 12], 'bf16'), weight(r, [5, 12, 8])],
  },
  // rows by index, indices in [-2, rows + 2): outside ones read zeros (gather) or are skipped (scatter); repeats add up
  { op: 'gather', inputs: (T, r) => [act(r, T, [6, 5]), { act: Float32Array.from({ length: 3 * T }, () => Math.floor(r() * 10) - 2), shape: ['T', 3], dtype: 'i32' }], Ts: [1, 7], modes: ['forward', 'decode'] },
  { op: 'scatter', attrs: { rows: 4 }, inputs: (T, r) => [act(r, T, [5, 3]), { act: Float32Array.from({ length: 5 * T }, () => Math.floor(r() * 8) - 2), shape: ['T', 5], dtype: 'i32' }], Ts: [1, 6], modes: ['forward', 'decode'] },
  { op: 'gelu', attrs: { tanh: false }, inputs: (T, r) => [act(r, T, [20], -4, 4)], Ts: [5] },
  { op: 'gelu', attrs: { tanh: true }, inputs: (T, r) => [act(r, T, [20], -4, 4)], Ts: [5] },
  { op: 'relu2', inputs: (T, r) => [act(r, T, [19], -5, 5)], Ts: [1, 6] },
  { op: 'scale', attrs: { by: 0.3 }, inputs: (T, r) => [act(r, T, [13])], Ts: [3] },
  { op: 'scale', attrs: { by: 2, sizes: [5, 1, 7], factors: [0.5, -1.25, 3] }, inputs: (T, r) => [act(r, T, [13])], Ts: [1, 4] },
  { op: 'add', inputs: (T, r) => [act(r, T, [12]), act(r, T, [12])], Ts: [1, 6] },
  { op: 'mul', inputs: (T, r) => [act(r, T, [12]), weight(r, [12])], Ts: [6] },
  { op: 'clamp', attrs: { min: -0.5, max: 0.25 }, inputs: (T, r) => [act(r, T, [12])], Ts: [4] },
  { op: 'split', attrs: { sizes: [5, 7] }, inputs: (T, r) => [act(r, T, [12])], Ts: [3] },
  { op: 'rope', attrs: { rotary_dim: 4, theta: 10000 }, inputs: (T, r) => [act(r, T, [3, 8]), { act: new Float32Array(T), shape: ['T'], dtype: 'i32' }], Ts: [1, 9] },
  { op: 'causal_conv1d', inputs: (T, r) => [act(r, T, [10]), weight(r, [10, 1, 4]), weight(r, [10])], Ts: [1, 7], modes: ['forward', 'decode'] },
  {
    op: 'ssd', attrs: { chunk: 4 }, Ts: [1, 4, 11], modes: ['forward', 'decode'],
    inputs: (T, r) => [act(r, T, [4, 6]), act(r, T, [4], 0.05, 0.8), weight(r, [4], 'f32', -2, -0.2), act(r, T, [2, 5]), act(r, T, [2, 5]), weight(r, [4])],
  },
  { op: 'attention', attrs: { scale: 0.3 }, inputs: (T, r) => [act(r, T, [4, 8]), act(r, T, [2, 8]), act(r, T, [2, 8])], Ts: [1, 6], modes: ['forward', 'decode'] },
];

describe('WGSL kernels = the CPU backend', () => {
  CASES.forEach((c, n) => {
    it(`${c.op} ${JSON.stringify(c.attrs ?? {})}`, async () => {
      for (const mode of c.modes ?? ['forward']) {
        for (const T of c.Ts) {
          const inputs = c.inputs(T, prng(1000 + 17 * n + T));
                    const cpu = runOp(c.op, inputs, c.attrs ?? {}, T, { mode });
          for (const profile of PROFILES) {
            let backend: WebGpuBackend | undefined;
            const gpu = await runOpAsync(c.op, inputs, c.attrs ?? {}, T, { mode, backend: (p) => (backend = new WebGpuBackend(p, renderProgram(p), device, 'test', false, {}, profile)) });
            await expectShadersValid(backend!, profile);
            gpu.outputs.forEach((y, i) => expectClose(y, cpu.outputs[i]!, TOL, `${c.op} ${profile} ${mode} T=${T} output ${i}`));
          }
        }
      }
    });
  });
});

/** Random floats in [-1, 1) as a state slot's bytes (a cache or state to continue). */
const randomSlot = (seed: number) => (bytes: number, seq: number): Uint8Array => {
  const f = uniform(prng(seed + 31 * seq), bytes / 4, -1, 1);
  return new Uint8Array(f.buffer);
};

describe('chunked SSD over packed sequences = the CPU backend', () => {
  // chunk 4: sequences that end inside a chunk, a one-token sequence, states continued from the slots
  it.each([[[11]], [[5, 2]], [[1, 9, 4]], [[3, 4, 6]]] as const)('sequences %j', async (seqs) => {
    const T = seqs.reduce((a, b) => a + b, 0);
    const r = prng(6000 + T);
    const inputs = [act(r, T, [4, 6]), act(r, T, [4], 0.05, 0.8), weight(r, [4], 'f32', -2, -0.2), act(r, T, [2, 5]), act(r, T, [2, 5]), weight(r, [4])];
    const batch = { mode: 'prefill' as const, seqs, state: randomSlot(99 + T) };
    const cpu = runOp('ssd', inputs, { chunk: 4 }, T, batch);
    for (const profile of PROFILES) {
      const gpu = await runOpAsync('ssd', inputs, { chunk: 4 }, T, { ...batch, backend: (p) => new WebGpuBackend(p, renderProgram(p), device, 'test', false, {}, profile) });
      expectClose(gpu.outputs[0]!, cpu.outputs[0]!, TOL, `ssd ${profile} ${seqs.join('+')}`);
      for (const [i, slot] of gpu.slots.entries()) {
        const got = new Float32Array((await gpu.pool.saveAsync!(slot)).slice().buffer);
        expectClose(got, new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer), TOL, `ssd ${profile} state of sequence ${i}`);
      }
    }
  });
});

describe('flash attention (prefill) = the CPU backend', () => {
  // (heads, kv heads, head dim, sequence lengths, tokens each held before): ragged, packed, GQA,
  // lengths that are no multiple of a K/V tile or of a workgroup's rows, caches continued
  const SHAPES: readonly { H: number; KV: number; Dh: number; seqs: readonly number[]; before: readonly number[] }[] = [
    { H: 4, KV: 2, Dh: 8, seqs: [5, 1, 7], before: [0, 0, 0] },
    { H: 4, KV: 2, Dh: 64, seqs: [37], before: [0] },
    { H: 4, KV: 2, Dh: 64, seqs: [20, 33, 18], before: [3, 0, 11] },
    { H: 6, KV: 2, Dh: 16, seqs: [1, 70, 2], before: [0, 5, 40] },
  ];
  SHAPES.forEach((c, n) => {
    it(`heads ${c.H}/${c.KV}, dim ${c.Dh}, sequences ${c.seqs.join('+')} after ${c.before.join(',')}`, async () => {
      const T = c.seqs.reduce((a, b) => a + b, 0);
      const r = prng(5000 + n);
      const inputs = [act(r, T, [c.H, c.Dh]), act(r, T, [c.KV, c.Dh]), act(r, T, [c.KV, c.Dh])];
      const attrs = { scale: 1 / Math.sqrt(c.Dh) };
      const batch = { mode: 'prefill' as const, seqs: c.seqs, before: c.before, state: randomSlot(77 + n) };
      const cpu = runOp('attention', inputs, attrs, T, batch);
      for (const profile of PROFILES) {
        let backend: WebGpuBackend | undefined;
        const gpu = await runOpAsync('attention', inputs, attrs, T, { ...batch, backend: (p) => (backend = new WebGpuBackend(p, renderProgram(p), device, 'test', false, {}, profile)) });
        const passes = backend!.shaders.profiles[profile].prefill.kernels.flatMap((k) => k.passes.map((p) => p.name));
        if (!passes.includes('flash attention')) throw new Error(`${profile}: the prefill attention is not the flash kernel (passes ${passes.join(', ')})`);
        expectClose(gpu.outputs[0]!, cpu.outputs[0]!, TOL, `attention ${profile} ${JSON.stringify(c)}`);
        // the K/V rows appended to each sequence's cache (and the rest of the slot untouched)
        for (const [i, slot] of gpu.slots.entries()) {
          const got = new Float32Array((await gpu.pool.saveAsync!(slot)).slice().buffer);
          const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
          expectClose(got, want, { atol: 0, rtol: 0 }, `attention ${profile} slot of sequence ${i}`);
        }
      }
    });
  });
});

describe('softplus where it is small = the CPU backend, relatively', () => {
  // dt = softplus(x + dt_bias) of a slow head is small; the reference takes log1p(exp(x)) in double,
  // so the shader must be relative-accurate there too (log(1 + exp(x)) in f32 is 1e-3 off at x = -10
  // and 0 below -17): within 1e-5 · |ref|, no absolute slack
  it('x in [-25, -3) and [-3, 20)', async () => {
    for (const [lo, hi] of [[-25, -3], [-3, 20]] as const) {
      const T = 8;
      const inputs = [act(prng(7100 + lo), T, [64], lo, hi)];
      const cpu = runOp('softplus', inputs, {}, T);
      for (const profile of PROFILES) {
        const gpu = await runOpAsync('softplus', inputs, {}, T, { backend: (p) => new WebGpuBackend(p, renderProgram(p), device, 'test', false, {}, profile) });
        expectClose(gpu.outputs[0]!, cpu.outputs[0]!, { atol: 0, rtol: 1e-5 }, `softplus ${profile} on [${lo}, ${hi})`);
      }
    }
  });
});

describe('rope at large positions = the CPU backend', () => {
  // the rotary table (runtime/webgpu/rotary.ts) holds the reference's cos/sin, so the rotation is the
  // reference's but for f32 arithmetic: within 1e-6 · (1 + |x|) where angles are thousands of
  // radians (a device's own sin/cos miss by 3.7e-4 at 4000 rad and 2.8e-3 at 3·10^4 on SwiftShader)
  const ROPE_TOL = { atol: 1e-6, rtol: 1e-6 };
  const CASES = [
    { attrs: { rotary_dim: 16, theta: 10000 }, mode: 'prefill', seqs: [5, 7], before: [2000, 32_000] },
    { attrs: { rotary_dim: 4, theta: 500_000 }, mode: 'decode', seqs: [1, 1, 1], before: [4095, 16_000, 32_767] },
  ] as const;
  CASES.forEach((c, n) => {
    it(`${JSON.stringify(c.attrs)} ${c.mode}, sequences ${c.seqs.join('+')} after ${c.before.join(',')}`, async () => {
      const T = c.seqs.reduce((a, b) => a + b, 0);
      const inputs = [act(prng(7000 + n), T, [3, 32]), { act: new Float32Array(T), shape: ['T'] as const, dtype: 'i32' as const }];
      const batch = { mode: c.mode, seqs: c.seqs, before: c.before };
      const cpu = runOp('rope', inputs, c.attrs, T, batch);
      for (const profile of PROFILES) {
        const gpu = await runOpAsync('rope', inputs, c.attrs, T, { ...batch, backend: (p) => new WebGpuBackend(p, renderProgram(p), device, 'test', false, {}, profile) });
        expectClose(gpu.outputs[0]!, cpu.outputs[0]!, ROPE_TOL, `rope ${profile} ${JSON.stringify(c)}`);
      }
    });
  });
});

describe('the profile an adapter gets', () => {
  const adapter = (info: Partial<GPUAdapterInfo>) => ({ info: { vendor: '', architecture: '', device: '', description: '', ...info } }) as unknown as GPUAdapter;
  it.each([
    [{ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader driver 5.0.0' }, 'cpu'],
    [{ vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }, 'cpu'],
    [{ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' }, 'cpu'],
    [{ vendor: 'intel', architecture: 'gen-12lp', isFallbackAdapter: true }, 'cpu'],
    [{ vendor: 'nvidia', architecture: 'ampere', description: 'NVIDIA GeForce RTX 3080' }, 'gpu'],
    [{ vendor: 'apple', architecture: 'metal-3' }, 'gpu'],
  ] as const)('%j -> %s', (info, want) => expect(adapterProfile(adapter(info))).toBe(want));
});
