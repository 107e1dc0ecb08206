// An embedding's epilogue in CUDA (codegen/cuda/templates/embedding.cu.hbs), run on the CPU through the
// emulation header, = the CPU backend within 1e-6: token rows times a µP factor (Falcon-H1's
// embedding_multiplier, a `scale` stage) and position rows plus them (GPT-2's wte + wpe, a stage
// reading another operand), in the forward, prefill and decode entries.

import { beforeAll, expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { Backend } from '../../runtime/backend.ts';
import type { EntryName } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { fromF32 } from '../../runtime/tensor.ts';
import { compileText } from '../helpers/compile.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { expectClose } from '../runtime/cpu/check.ts';

const c = compileText(`import std.{Embedding}
model M(tokens: i32[T], positions: i32[T]) {
  x = scale(wte: Embedding(50, 12)(tokens), by: 1.7) + wpe: Embedding(16, 12)(positions)
  return x
}`);
const program = lowerToProgram(c.graph, c.bindings);
const rng = createRng(41);
const weights = new Map(program.weights.map((w) => [w.name, fromF32(Float32Array.from({ length: w.shape.reduce((a, b) => a * b, 1) }, () => rng.next() - 0.5), w.shape, 'bf16')]));

let bin: string;
beforeAll(async () => {
  bin = await buildEmulator(programSources(program), 1);
}, 600_000);

function run(b: Backend, entry: EntryName, lens: readonly number[]): Float32Array {
  for (const w of program.weights) b.uploadWeight(w, weights.get(w.name)!);
  let start = 0;
  const seqs = lens.map((len) => { const s = { start, len }; start += len; return s; });
  const tokens = Int32Array.from({ length: start }, (_, i) => (7 * i + 3) % 50);
  const positions = Int32Array.from(seqs.flatMap((s) => Array.from({ length: s.len }, (_, i) => (entry === 'decode' ? 5 + s.start : i))));
  const pool = b.createStatePool(16);
  const slots = seqs.map(() => pool.acquire());
  const e = program.entries[entry];
  const inv = b.begin(e, { tokens, positions, seqs, slots, lengths: seqs.map(() => (entry === 'decode' ? 5 : 0)) }, pool);
  for (const k of e.kernels) inv.dispatch(k);
  return inv.read(e.outputs.logits!);
}

it('the embedding kernels carry the epilogues (scale; plus the other embedding)', () => {
  const ks = program.entries.forward.kernels;
  expect(ks.map((k) => k.family)).toEqual(['embedding', 'embedding']);
  expect(ks.map((k) => (k.epilogue ?? []).length)).toEqual([1, 1]);
});

it('CUDA (emulated) = the CPU backend, every entry', () => {
  for (const [entry, lens] of [['forward', [3, 5]], ['prefill', [4, 1]], ['decode', [1, 1, 1]]] as const) {
    const want = run(new CpuBackend(program), entry, lens);
    const got = run(new EmuCudaBackend(program, bin), entry, lens);
    expect(Math.max(...Array.from(want, Math.abs))).toBeGreaterThan(0.3);
    expectClose(got, want, { atol: 1e-6, rtol: 1e-6 }, `${entry}: embedding epilogues`);
  }
});
