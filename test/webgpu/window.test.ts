// Sliding-window attention in WGSL (codegen/wgsl/window.ts) = the CPU backend (itself checked against
// a float64 band-masked reference, test/runtime/cpu/window.test.ts) within 1e-4 · (1 + |cpu|), in both
// profiles, on Dawn (SwiftShader here): prefill and decode over rings holding random earlier rows
// (before the window fills, at it and past it, so the ring has wrapped), ragged packed sequences, a
// batch longer than the ring, GQA, a window larger than the capacity; outputs poisoned with NaN first,
// and every slot (the ring after the new rows) compared exactly.

import { beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { runOp, runOpAsync } from '../helpers/kernels.ts';
import { act } from './cases.ts';
import { expectClose, prng, uniform } from '../runtime/cpu/check.ts';
import { testDevice } from './gpu.ts';

const TOL = { atol: 1e-4, rtol: 1e-4 };
const PROFILES: readonly WgslProfile[] = ['gpu', 'cpu'];

let device: GPUDevice;
beforeAll(async () => { ({ device } = await testDevice()); });

describe('sliding-window attention: WGSL = the CPU backend', () => {
  const SHAPES = [
    { mode: 'prefill' as const, seqs: [5, 1, 9], before: [3, 0, 7], window: 4, H: 4, KV: 2, Dh: 16 },
    { mode: 'prefill' as const, seqs: [20, 2], before: [1, 9], window: 5, H: 2, KV: 1, Dh: 12 },
    { mode: 'prefill' as const, seqs: [4, 6], before: [2, 5], window: 500, H: 4, KV: 1, Dh: 5 },
    { mode: 'decode' as const, seqs: [1, 1, 1], before: [3, 0, 11], window: 4, H: 4, KV: 2, Dh: 16 },
    { mode: 'decode' as const, seqs: [1, 1], before: [5, 2], window: 2, H: 3, KV: 3, Dh: 5 },
  ];
  SHAPES.forEach((c, n) => {
    it(`${c.mode} sequences ${c.seqs.join('+')} after ${c.before.join('+')}, window ${c.window}, H=${c.H} KV=${c.KV} Dh=${c.Dh}`, async () => {
      const T = c.seqs.reduce((a, b) => a + b, 0);
      const r = prng(9300 + n);
      const inputs = [act(r, T, [c.H, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh])];
      const attrs = { scale: 1 / Math.sqrt(c.Dh), window: c.window };
      const state = (bytes: number, seq: number) => new Uint8Array(uniform(prng(93 + 31 * seq + n), bytes / 4, -1, 1).buffer);
      const batch = { mode: c.mode, seqs: c.seqs, before: c.before, state };
      const cpu = runOp('attention', inputs, attrs, T, batch);
      for (const profile of PROFILES) {
        let backend: WebGpuBackend | undefined;
        const gpu = await runOpAsync('attention', inputs, attrs, T, { ...batch, backend: (p) => (backend = new WebGpuBackend(p, renderProgram(p), device, 'test', false, {}, profile)) });
        const passes = backend!.shaders.profiles[profile][c.mode].kernels.flatMap((k) => k.passes.map((p) => p.name)).filter((p) => p !== 'copy');
        expect(passes, profile).toEqual(['windowed attention', 'kv ring']);
        expectClose(gpu.outputs[0]!, cpu.outputs[0]!, TOL, `attention ${profile} ${JSON.stringify(c)}`);
        for (const [i, slot] of gpu.slots.entries()) {
          const got = new Float32Array((await gpu.pool.saveAsync!(slot)).slice().buffer);
          const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
          expectClose(got, want, { atol: 0, rtol: 0 }, `attention ${profile} ring of sequence ${i}`);
        }
      }
    });
  });
});
