// Granite-4.0-H (models/granite4h.arch), tiny, as CUDA kernels run on the CPU through the emulation
// header: a packed ragged prefill, two decode steps of every sequence and a forward of every token
// match the CPU backend within 2e-2 of the logits' scale, the tolerance of the bf16 products (the
// routing kernels alone: 1e-5, test/codegen/cuda-route.test.ts). A router that picked another
// expert would move the logits by far more. With nvcc on the PATH, its embedding (with the scale in
// its epilogue) and routing kernels compile for sm_80 and sm_90 without spills.

import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { compileFile } from '../../compiler/compile.ts';
import { initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { Backend, RunBatch, StatePool } from '../../runtime/backend.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { EntryName, Program } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { ROOT } from '../helpers/checkpoints.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';

const V = 48;
const c = compileFile(join(ROOT, 'models', 'granite4h.arch'), { set: ['vocab=48', 'd_model=32', 'n_layers=2', 'layer_types=["mamba", "attention"]', 'n_heads=4',
  'n_kv_heads=2', 'mamba_heads=8', 'd_state=4', 'chunk=4', 'd_ff=16', 'd_shared=24', 'n_experts=6', 'k_experts=2', 'rope="rope"', 'embedding_mult=2.0', 'residual_mult=0.6'] });
const program = lowerToProgram(c.graph, c.bindings);

/** Every kernel of an entry, yielding between them (the emulator's processes would stall the worker). */
async function run(b: Backend, p: Program, name: EntryName, batch: RunBatch, pool: StatePool): Promise<Float32Array> {
  const inv = b.begin(p.entries[name], batch, pool);
  for (const k of p.entries[name].kernels) {
    inv.dispatch(k);
    await new Promise((r) => setImmediate(r));
  }
  return inv.read(p.entries[name].outputs.logits!);
}

function close(got: Float32Array, want: Float32Array, rtol: number, what: string): void {
  let err = 0, scale = 0;
  for (let i = 0; i < want.length; i++) { scale = Math.max(scale, Math.abs(want[i]!)); err = Math.max(err, Math.abs(got[i]! - want[i]!)); }
  expect(err / scale, `${what}: max error ${err} of max |logit| ${scale}`).toBeLessThan(rtol);
  expect(scale, `${what}: the logits carry signal`).toBeGreaterThan(0.1);
}

describe('Granite-4.0-H on CUDA (emulated) = the CPU backend', () => {
  it('packed prefill, decode steps, forward', async () => {
    const bin = await buildEmulator(programSources(program));
    const tensors = initWeights(c.graph, createRng(5), 'bf16');
    const backends = [new CpuBackend(program), new EmuCudaBackend(program, bin)];
    for (const b of backends) for (const w of program.weights) b.uploadWeight(w, tensors.find((t) => t.name === w.name)!.tensor);
    const lens = [5, 9, 2];
    let start = 0;
    const seqs = lens.map((len) => { const s = { start, len }; start += len; return s; });
    const tokens = Int32Array.from({ length: start }, (_, i) => (i * 7 + 3) % V);
    const positions = Int32Array.from(seqs.flatMap((s) => Array.from({ length: s.len }, (_, i) => i)));
    const runs: Float32Array[][] = [];
    for (const b of backends) {
      const pool = b.createStatePool(32);
      const slots = seqs.map(() => pool.acquire());
      const out = [await run(b, program, 'prefill', { tokens, positions, seqs, slots, lengths: seqs.map(() => 0) }, pool)];
      for (let step = 0; step < 2; step++) {
        out.push(await run(b, program, 'decode', { tokens: Int32Array.from(lens.map((_, i) => (5 * i + step) % V)), positions: Int32Array.from(lens.map((l) => l + step)),
          seqs: lens.map((_, i) => ({ start: i, len: 1 })), slots, lengths: lens.map((l) => l + step) }, pool));
      }
      const fresh = b.createStatePool(32);
      out.push(await run(b, program, 'forward', { tokens, positions, seqs, slots: seqs.map(() => fresh.acquire()), lengths: seqs.map(() => 0) }, fresh));
      runs.push(out);
    }
    ['prefill', 'decode step 1', 'decode step 2', 'forward'].forEach((what, i) => close(runs[1]![i]!, runs[0]![i]!, 2e-2, what));
  }, 900_000);
});

it('its kernels compile with nvcc for sm_80 and sm_90 without spills (the embedding with its scale among them)', async () => {
  const { buildCuda } = await import('../../codegen/cuda/build.ts');
  const { tmpdir } = await import('node:os');
  const b = await buildCuda(program, { archs: ['sm_80', 'sm_90'], cacheDir: join(tmpdir(), 'archc-cuda-test-cache') });
  expect(b.report.nvcc, 'nvcc is on the PATH').not.toBeNull();
  expect(program.entries.forward.kernels[0]!.epilogue?.length, 'the embedding carries the scale').toBe(1);
  for (const id of new Set(b.kernels.filter((k) => ['embedding', 'softmax', 'topk', 'experts'].includes(k.family)).map((k) => k.id))) {
    for (const arch of ['sm_80', 'sm_90']) {
      for (const [f, u] of Object.entries(b.report.usage[arch]![id]!)) expect({ f, arch, spills: u.spillStores + u.spillLoads }).toEqual({ f, arch, spills: 0 });
    }
  }
}, 900_000);
