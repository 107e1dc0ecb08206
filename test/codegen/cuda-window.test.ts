// Sliding-window attention in CUDA (codegen/cuda/templates/attention.cu.hbs and attention_decode.cu.hbs
// with a window: their ring written by a last phase), run on the CPU through the emulation header,
// = the CPU backend (itself checked against a float64 band-masked reference,
// test/runtime/cpu/window.test.ts) within 1e-5 for decode (f32) and 1e-2 for prefill (bf16 tensor-core
// tiles; outputs of magnitude below 1): prefill and decode over rings holding
// random earlier rows (before the window fills and past it, so the ring has wrapped), ragged packed
// sequences, a batch longer than the ring, GQA, a window larger than the capacity; every slot (the
// ring after the new rows) compared too. With nvcc on the PATH, the kernels compile for sm_80 and
// sm_90 without spills.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCuda } from '../../codegen/cuda/build.ts';
import { CUDA_TARGET, cudaSchedule } from '../../codegen/cuda/schedule.ts';
import type { EntryName } from '../../runtime/program.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { type OpInput, runOp } from '../helpers/kernels.ts';
import { expectClose, prng, uniform } from '../runtime/cpu/check.ts';

const act = (rand: () => number, T: number, shape: readonly number[], lo = -1, hi = 1): OpInput =>
  ({ act: uniform(rand, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
const TOL = { prefill: { atol: 1e-2, rtol: 1e-2 }, decode: { atol: 1e-5, rtol: 1e-5 } } as const;

const SHAPES = [
  { mode: 'prefill' as const, seqs: [5, 1, 9], before: [3, 0, 7], window: 4, H: 4, KV: 2, Dh: 16 },
  { mode: 'prefill' as const, seqs: [20, 2], before: [1, 9], window: 5, H: 2, KV: 1, Dh: 12 },
  { mode: 'prefill' as const, seqs: [4, 6], before: [2, 5], window: 500, H: 4, KV: 1, Dh: 5 },
  { mode: 'decode' as const, seqs: [1, 1, 1], before: [3, 0, 11], window: 4, H: 4, KV: 2, Dh: 16 },
  { mode: 'decode' as const, seqs: [1, 1], before: [5, 2], window: 2, H: 3, KV: 3, Dh: 5 },
];
const cases = SHAPES.map((c, n) => {
  const T = c.seqs.reduce((a, b) => a + b, 0);
  const r = prng(9500 + n);
  const inputs = [act(r, T, [c.H, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh])];
  const state = (bytes: number, seq: number) => new Uint8Array(uniform(prng(95 + 31 * seq + n), bytes / 4, -1, 1).buffer);
  return { c, T, inputs, attrs: { scale: 1 / Math.sqrt(c.Dh), window: c.window }, batch: { mode: c.mode as EntryName, seqs: c.seqs, before: c.before, state } };
});

let bin: string;
beforeAll(async () => {
  const sources = new Map<string, string>();
  for (const x of cases) for (const [id, s] of programSources(runOp('attention', x.inputs, x.attrs, x.T, x.batch).program)) sources.set(id, s);
  bin = await buildEmulator(sources, 1);
}, 600_000);

describe('sliding-window attention: CUDA (emulated) = the CPU backend', () => {
  cases.forEach(({ c, T, inputs, attrs, batch }) => {
    it(`${c.mode} sequences ${c.seqs.join('+')} after ${c.before.join('+')}, window ${c.window}, H=${c.H} KV=${c.KV} Dh=${c.Dh}`, () => {
      const cpu = runOp('attention', inputs, attrs, T, batch);
      const got = runOp('attention', inputs, attrs, T, { ...batch, backend: (p) => new EmuCudaBackend(p, bin) });
      const k = got.program.entries[c.mode].kernels.find((x) => x.family === (c.mode === 'decode' ? 'attention_decode' : 'attention'))!;
      const sched = cudaSchedule(k, CUDA_TARGET);
      expect(sched.phases?.map((p) => p.fn), 'the ring written by the last phase').toEqual(['main', c.mode === 'decode' ? 'combine' : 'ring']);
      expectClose(got.outputs[0]!, cpu.outputs[0]!, TOL[c.mode], `attention ${JSON.stringify(c)}`);
      for (const [i, slot] of got.slots.entries()) {
        const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
        expectClose(new Float32Array(got.pool.save(slot).slice().buffer), want, { atol: 0, rtol: 0 }, `attention ${JSON.stringify(c)} ring of sequence ${i}`);
      }
    });
  });
});

it('the windowed kernels compile with nvcc for sm_80 and sm_90 without spills', async () => {
  for (const x of [cases[0]!, cases[4]!]) {
    const program = runOp('attention', x.inputs, x.attrs, x.T, x.batch).program;
    const b = await buildCuda(program, { archs: ['sm_80', 'sm_90'], cacheDir: join(tmpdir(), 'archc-cuda-test-cache') });
    expect(b.report.nvcc, 'nvcc is on the PATH').not.toBeNull();
    const ids = [...new Set(b.kernels.filter((k) => k.family === (x.c.mode === 'decode' ? 'attention_decode' : 'attention')).map((k) => k.id))];
    expect(ids.length).toBe(1); // the same kernel in every entry of runOp's program
    for (const arch of ['sm_80', 'sm_90']) {
      for (const [f, u] of Object.entries(b.report.usage[arch]![ids[0]!]!)) expect({ f, arch, spills: u.spillStores + u.spillLoads }).toEqual({ f, arch, spills: 0 });
    }
  }
}, 600_000);
