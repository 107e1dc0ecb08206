// The routing families of a mixture of experts in CUDA (templates/softmax, topk, experts.cu.hbs) and
// the sigmoid and scale expressions, run on the CPU through the emulation header, = the CPU backend
// (itself checked against float64 statements, test/runtime/cpu/route.test.ts) within 1e-5 of the
// output's scale: packed rows and decode, top-k with ties and normalised, experts chosen by no token,
// rows gathered and scattered by index (indices outside the rows among them).
// With nvcc on the PATH, the kernels compile for sm_80 and sm_90 without spills.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCuda } from '../../codegen/cuda/build.ts';
import type { Attrs } from '../../compiler/ops.ts';
import type { EntryName } from '../../runtime/program.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { type OpInput, runOp } from '../helpers/kernels.ts';
import { expectClose, prng, uniform } from '../runtime/cpu/check.ts';

const r = prng(4242);
const act = (T: number, shape: readonly number[], lo = -1, hi = 1): OpInput => ({ act: uniform(r, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
const weight = (shape: readonly number[]): OpInput => ({ weight: { dtype: 'f32', shape, data: uniform(r, shape.reduce((a, b) => a * b, 1), -0.5, 0.5) } });
/** Each of T tokens' k distinct experts of E (expert E − 1 chosen by none). */
const routes = (T: number, k: number, E: number): OpInput => ({ act: Float32Array.from({ length: T * k }, (_, i) => (Math.floor(i / k) + (i % k)) % (E - 1)), shape: ['T', k], dtype: 'i32' });
/** T·k indices in [-2, n + 2). */
const indices = (T: number, k: number, n: number): OpInput => ({ act: Float32Array.from({ length: T * k }, () => Math.floor(r() * (n + 4)) - 2), shape: ['T', k], dtype: 'i32' });
const ties = (T: number): OpInput => ({ act: Float32Array.from({ length: T * 8 }, (_, i) => [0.5, 0.25, 0.5, 0.5, 0.1, 0.5, 0.25, 0.1][i % 8]! + (i >= 8 ? r() : 0)), shape: ['T', 8] });

const CASES: { op: string; inputs: OpInput[]; attrs: Attrs; T: number; mode?: EntryName }[] = [
  { op: 'sigmoid', inputs: [act(5, [13], -30, 30)], attrs: {}, T: 5 },
  { op: 'scale', inputs: [act(3, [2, 7])], attrs: { by: 0.22 }, T: 3 },
  { op: 'softmax', inputs: [act(6, [3, 7], -20, 20)], attrs: {}, T: 6 },
  { op: 'softmax', inputs: [act(2, [40], -5, 5)], attrs: {}, T: 2, mode: 'decode' },
  { op: 'topk', inputs: [ties(4)], attrs: { k: 3, normalize: false }, T: 4 },
  // a NaN counts as the largest (torch.topk on the CPU), before the ties
  { op: 'topk', inputs: [{ act: Float32Array.from({ length: 24 }, (_, i) => [0.5, Number.NaN, 0.5, 0.25, Number.NaN, 0.1, 0.5, 0.25][i % 8]! + (i >= 8 && i % 8 !== 1 && i % 8 !== 4 ? r() : 0)), shape: ['T', 8] }], attrs: { k: 3, normalize: false }, T: 3 },
  { op: 'topk', inputs: [act(5, [8], 0.05, 1)], attrs: { k: 2, normalize: true }, T: 5, mode: 'decode' },
  { op: 'experts', inputs: [act(7, [12]), routes(7, 2, 5), act(7, [2], 0.1, 1), weight([5, 16, 12]), weight([5, 12, 8])], attrs: {}, T: 7 },
  { op: 'experts', inputs: [act(3, [16]), routes(3, 1, 4), act(3, [1], 0.1, 1), weight([4, 20, 16]), weight([4, 16, 10])], attrs: {}, T: 3, mode: 'decode' },
  // rows by index, indices in [-2, rows + 2): outside ones read zeros (gather) or are skipped (scatter)
  { op: 'gather', inputs: [act(6, [5, 3]), indices(6, 4, 5)], attrs: {}, T: 6 },
  { op: 'gather', inputs: [act(2, [7]), indices(2, 3, 7)], attrs: {}, T: 2, mode: 'decode' },
  { op: 'scatter', inputs: [act(5, [6, 2]), indices(5, 6, 4)], attrs: { rows: 4 }, T: 5 },
  { op: 'scatter', inputs: [act(3, [3]), indices(3, 3, 5)], attrs: { rows: 5 }, T: 3, mode: 'decode' },
];

let bin: string;
beforeAll(async () => {
  const sources = new Map<string, string>();
  for (const c of CASES) for (const [id, s] of programSources(runOp(c.op, c.inputs, c.attrs, c.T, { mode: c.mode }).program)) sources.set(id, s);
  bin = await buildEmulator(sources, 1);
}, 600_000);

describe('routing kernels: CUDA (emulated) = the CPU backend', () => {
  CASES.forEach((c) => {
    it(`${c.op} ${JSON.stringify(c.attrs)} T=${c.T} ${c.mode ?? 'forward'}`, () => {
      const cpu = runOp(c.op, c.inputs, c.attrs, c.T, { mode: c.mode });
      const got = runOp(c.op, c.inputs, c.attrs, c.T, { mode: c.mode, backend: (p) => new EmuCudaBackend(p, bin) });
      cpu.outputs.forEach((want, i) => expectClose(got.outputs[i]!, want, { atol: 1e-5, rtol: 1e-5 }, `${c.op} output ${i}`));
    });
  });
});

it('the routing kernels compile with nvcc for sm_80 and sm_90 without spills', async () => {
  for (const c of CASES.filter((x) => ['softmax', 'topk', 'experts', 'gather', 'scatter'].includes(x.op))) {
    const program = runOp(c.op, c.inputs, c.attrs, c.T, { mode: c.mode }).program;
    const b = await buildCuda(program, { archs: ['sm_80', 'sm_90'], cacheDir: join(tmpdir(), 'archc-cuda-test-cache') });
    expect(b.report.nvcc, 'nvcc is on the PATH').not.toBeNull();
    for (const id of new Set(b.kernels.filter((k) => k.family === c.op).map((k) => k.id))) {
      for (const arch of ['sm_80', 'sm_90']) {
        for (const [f, u] of Object.entries(b.report.usage[arch]![id]!)) expect({ f, arch, spills: u.spillStores + u.spillLoads }).toEqual({ f, arch, spills: 0 });
      }
    }
  }
}, 600_000);
