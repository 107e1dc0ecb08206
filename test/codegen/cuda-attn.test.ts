// Attention and the conv in CUDA at Bamba-9B's shapes in small counts, run on the CPU through the
// emulation header, against the CPU backend: prefill on tensor cores (templates/attention.cu.hbs:
// head dim 128, 4 query heads on 1 KV head, ragged packed sequences over several 64-key tiles, some
// continuing a cache) within 2e-2 of the output's scale (bf16 Q, K, P and V, f32 sums); decode by
// flash-decoding (attention_decode.cu.hbs: contexts over several splits, f32) within 1e-5; the conv
// over token × channel tiles (conv.cu.hbs: sequences across tiles, shorter than the taps, continuing
// a state; decode's conv_step) within 1e-5; every KV cache and conv state after the batch exactly.
// The kernels compile for sm_80 and sm_90 without spills, and prefill's products are `mma` in the PTX.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePtxas } from '../../codegen/cuda/build.ts';
import { renderKernel } from '../../codegen/cuda/render.ts';
import { CUDA_TARGET, cudaSchedule } from '../../codegen/cuda/schedule.ts';
import type { EntryName } from '../../runtime/program.ts';
import { CompileError } from '../../dsl/diagnostics.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { BAMBA } from '../helpers/checkpoints.ts';
import { fromF32 } from '../../runtime/tensor.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { type OpInput, type OpRun, runOp } from '../helpers/kernels.ts';
import { prng, relError, uniform } from '../runtime/cpu/check.ts';

const run = promisify(execFile);
const act = (rand: () => number, T: number, shape: readonly number[], lo = -1, hi = 1): OpInput =>
  ({ act: uniform(rand, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

interface Case { readonly op: string; readonly mode: EntryName; readonly seqs: readonly number[]; readonly before: readonly number[]; readonly inputs: OpInput[]; readonly attrs: Record<string, number>; readonly tol: number; readonly what: string }

const attention = (n: number, mode: EntryName, seqs: number[], before: number[], H: number, KV: number, Dh: number): Case => {
  const r = prng(2300 + n), T = sum(seqs);
  return { op: 'attention', mode, seqs, before, inputs: [act(r, T, [H, Dh], -2, 2), act(r, T, [KV, Dh], -2, 2), act(r, T, [KV, Dh])], attrs: { scale: 1 / Math.sqrt(Dh) },
    tol: mode === 'decode' ? 1e-5 : 2e-2, what: `attention ${mode} sequences ${seqs.join('+')} after ${before.join('+')}, H=${H} KV=${KV} Dh=${Dh}` };
};
const conv = (n: number, mode: EntryName, seqs: number[], before: number[], C: number, K: number): Case => {
  const r = prng(2350 + n), T = sum(seqs);
  return { op: 'causal_conv1d', mode, seqs, before, inputs: [act(r, T, [C]), { weight: fromF32(uniform(r, C * K, -1, 1), [C, 1, K], 'f32') }, { weight: fromF32(uniform(r, C, -1, 1), [C], 'f32') }],
    attrs: {}, tol: 1e-5, what: `conv ${mode} sequences ${seqs.join('+')} after ${before.join('+')}, C=${C} K=${K}` };
};

const CASES: Case[] = [
  // 9B's head: dim 128, a group of 4 query heads a KV head; 315 rows in four 128-row tiles over 64-key tiles
  attention(0, 'prefill', [150, 128, 37], [0, 0, 0], 4, 1, 128),
  attention(1, 'prefill', [100, 1, 20], [90, 7, 200], 4, 1, 128),
  // head dim padded to 16, two KV heads
  attention(2, 'prefill', [70, 5], [3, 0], 6, 2, 20),
  // contexts of 301 and 65 keys: 5 and 2 splits of 64; a fresh one
  attention(3, 'decode', [1, 1, 1], [300, 64, 0], 4, 1, 128),
  attention(4, 'decode', [1, 2], [140, 9], 6, 2, 20),
  // 32 query heads of 64 on one KV head: two blocks of 16 heads a (token, piece)
  attention(8, 'decode', [1, 1], [70, 3], 32, 1, 64),
  // 9B's conv: 4 taps; 300 channels: three blocks, the last partial
  conv(5, 'prefill', [150, 2, 70, 1], [5, 1, 9, 0], 300, 4),
  conv(6, 'decode', [1, 1, 1], [4, 0, 2], 300, 4),
  conv(7, 'prefill', [9, 3], [2, 0], 40, 7),
];

const state = (n: number) => (bytes: number, seq: number) => new Uint8Array(uniform(prng(230 + 31 * seq + n), bytes / 4, -1, 1).buffer);
const runCase = (c: Case, n: number, bin?: string): OpRun =>
  runOp(c.op, c.inputs, c.attrs, sum(c.seqs), { mode: c.mode, seqs: c.seqs, before: c.before, state: state(n), ...(bin ? { backend: (p) => new EmuCudaBackend(p, bin) } : {}) });

let bin = '';
beforeAll(async () => {
  const sources = new Map<string, string>();
  for (const [n, c] of CASES.entries()) for (const [id, s] of programSources(runCase(c, n).program)) sources.set(id, s);
  bin = await buildEmulator(sources);
}, 600_000);

describe('CUDA attention and conv at Bamba-9B shapes = the CPU backend', () => {
  CASES.forEach((c, n) => {
    it(c.what, () => {
      const cpu = runCase(c, n), got = runCase(c, n, bin);
      const rel = relError(got.outputs[0]!, cpu.outputs[0]!, c.tol, c.what);
      for (const [i, slot] of got.slots.entries()) {
        const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
        relError(new Float32Array(got.pool.save(slot).slice().buffer), want, 0, `${c.what}: slot of sequence ${i}`);
      }
      console.log(`${c.what}: max error ${rel.toExponential(2)} of the output's scale`);
    });
  });
});

/** Bamba-9B's attention (prefill, decode) and conv kernels, rendered as the build renders them. */
const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
const NINE: [EntryName, string][] = [['prefill', 'attention'], ['decode', 'attention_decode'], ['prefill', 'conv']];

it('Bamba-9B\'s attention and conv compile for sm_80 and sm_90 without spills; prefill\'s products are mma', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'archc-attn-'));
  const jobs = NINE.flatMap(([entry, family]) => ['sm_80', 'sm_90'].map((arch) => ({ entry, family, arch })));
  const results = [];
  for (let i = 0; i < jobs.length; i += 2) {
    results.push(...await Promise.all(jobs.slice(i, i + 2).map(async ({ entry, family, arch }) => {
      const k = nine.entries[entry].kernels.find((x) => x.family === family)!;
      const base = join(dir, `${family}.${arch}`);
      writeFileSync(`${base}.cu`, renderKernel(nine, nine.entries[entry], k).source);
      const r = await run('nvcc', ['-cubin', `-arch=${arch}`, '-Xptxas', '-v', '-keep', '-keep-dir', dir, '-o', `${base}.cubin`, `${base}.cu`], { maxBuffer: 1 << 24 });
      return { family, arch, usage: parsePtxas(r.stderr), ptx: readFileSync(`${base}.ptx`, 'utf8'), phases: cudaSchedule(k, CUDA_TARGET).phases?.map((p) => p.fn) ?? ['main'] };
    })));
  }
  for (const { family, arch, usage, ptx, phases } of results) {
    expect(Object.keys(usage).sort(), `${family} ${arch}: its phases' functions`).toEqual(phases.map((f) => `archc_${f}`).sort());
    for (const [f, u] of Object.entries(usage)) {
      expect({ family, arch, f, spills: u.spillStores + u.spillLoads }).toEqual({ family, arch, f, spills: 0 });
      console.log(`${family} ${arch} ${f}: ${u.registers} registers, ${u.sharedBytes} bytes static shared`);
    }
    if (family === 'attention') expect(ptx.match(/mma\.sync\.aligned\.[a-z0-9.]*bf16/g)?.length ?? 0, `${family} ${arch}: mma in the PTX`).toBeGreaterThanOrEqual(2);
  }
}, 600_000);

it('a head dim past what a prefill tile holds is error AC500 naming the kernel, at build', () => {
  const x = attention(9, 'prefill', [3], [0], 2, 1, 144);
  const k = runOp('attention', x.inputs, x.attrs, 3).program.entries.prefill.kernels.find((k) => k.family === 'attention')!;
  expect(() => cudaSchedule(k, CUDA_TARGET)).toThrow(CompileError);
  expect(() => cudaSchedule(k, CUDA_TARGET)).toThrow(/AC500: limit cuda\.attention\.headDim exceeded: kernel attention\.0 \(attention\) has head dim 144 \(the limit is 128\)/);
});
