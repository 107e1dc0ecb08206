// The wasm backend with its weights spread over several WebAssembly memories (LoadOptions
// wasmMemoryBytes lowered so that a small model needs at least three): logits bit for bit those of
// the same backend in one memory (the same kernels over the same values, x copied into the weight's
// memory and y back), on a random tiny Bamba (f32, bf16, q8, q4) and the trained tiny-bamba-a (bf16,
// and q4), on 1 and 2 threads, the plain SIMD module once, and unshared memories (one thread): packed
// forward of two sequences, prefill then a batched decode and a multi-token continuation, and one
// token at a time. The memory report is checked against the limit; bad limits are refused.

import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { type LoadOptions, Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { MEMORY0_RESERVE, STAGING_RESERVE } from '../../runtime/wasm/memories.ts';
import { makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a');
const PAGE = 65536;
const work = makeDir('archc-wasm-memories-');
let kernels: Uint8Array[];
beforeAll(async () => { kernels = await wasmKernelVariants(); });
afterAll(() => removeDir(work));

/** A random Bamba whose products outweigh the rest (the arena, slots and embedding copy stay in
 *  memory 0); q4 needs more layers to fill three memories beside each one's staging. */
function randomBamba(name: string, dtype: 'f32' | 'bf16', layers = 4): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeCheckpoint(dir, { vocab: 64, d_model: 96, d_ff: 256, n_layers: layers }, { dtype, seed: 7 });
  return dir;
}

/** The first differing element, or where the lengths differ; null when a and b are bit for bit equal. */
function firstDiff(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `element ${i}: ${a[i]} vs ${b[i]} (of ${a.length})`;
  return null;
}

/** Every output of the three ways through the model. */
function outputs(m: Model, a: number[], b: number[]): Float32Array[] {
  const input = { ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] };
  const out = [m.forward(input).logits];
  const { states, logits } = m.prefill([a, b]);
  out.push(...logits, m.decode([a[0]!, b[0]!], states), m.step([a.slice(2, 6), b.slice(1, 3)], states));
  const s = m.newSequence();
  for (const id of a) out.push(m.decode([id], [s]));
  m.releaseSequence(s);
  return out;
}

async function compare(dir: string, what: string, seqs: [number[], number[]], quantize?: 'q8' | 'q4', threadCounts = [1, 2], variant: 'picked' | 'plain' = 'picked',
  activations: 'f32' | 'q8' = 'f32'): Promise<void> {
  const program: Program = programFor(dir);
  const own = await wasmProgram(program);
  for (const threads of threadCounts) {
    const wasmKernels = variant === 'plain' ? kernels.at(-1)! : kernels;
    const opts: LoadOptions = { backend: 'wasm', wasmKernels, wasmProgram: own, threads, ...(quantize ? { quantize, activations } : {}) };
    const one = await Model.loadProgram(program, dir, opts);
    const [single] = one.memories;
    expect(one.memories.length, `${what}: the default limit keeps one memory`).toBe(1);
    // three weight memories' worth of the packed weights per memory: memory 0 and at least two more
    const limit = Math.ceil(single!.weightBytes / 3 / (1 - STAGING_RESERVE) / PAGE) * PAGE;
    const many = await Model.loadProgram(program, dir, { ...opts, wasmMemoryBytes: limit });
    try {
      const want = outputs(one, ...seqs), got = outputs(many, ...seqs);
      const report = many.memories;
      expect(report.length, `${what}: memories at a limit of ${limit}`).toBeGreaterThanOrEqual(3);
      report.forEach((m, i) => {
        expect(m.memory).toBe(i);
        // memory 0 grows past the limit for the arena, state slots and scratch, never for weights
        if (i) expect(m.bytes, `${what}: memory ${i} within the limit`).toBeLessThanOrEqual(limit);
        expect(m.weightBytes, `${what}: memory ${i}'s weights leave its reserve`).toBeLessThanOrEqual(limit * (1 - (i ? STAGING_RESERVE : MEMORY0_RESERVE)));
        if (i) expect(m.weights, `${what}: weight memory ${i} holds weights`).toBeGreaterThan(0);
      });
      expect(report.reduce((a, m) => a + m.weightBytes, 0), `${what}: every packed byte is somewhere`).toBe(single!.weightBytes);
      expect(report.reduce((a, m) => a + m.weights, 0), `${what}: every packed weight is somewhere`).toBe(single!.weights);
      expect(got.length).toBe(want.length);
      want.forEach((w, i) => {
        expect(w.some((v) => v !== 0), `${what}: output ${i} is not all zeros`).toBe(true);
        expect(firstDiff(got[i]!, w), `${what}, ${threads} thread(s), ${report.length} memories: output ${i}`).toBeNull();
      });
    } finally {
      one.dispose();
      many.dispose();
    }
  }
}

describe('wasm weights over several memories = one memory, bit for bit', () => {
  const ids = (seed: number): [number[], number[]] => [randomIds(13, 64, seed), randomIds(8, 64, seed + 1)];
  it('random Bamba, f32 weights', async () => compare(randomBamba('f32', 'f32'), 'f32', ids(1)));
  it('random Bamba, bf16 weights', async () => compare(randomBamba('bf16', 'bf16'), 'bf16', ids(3)));
  it('random Bamba, q8', async () => compare(randomBamba('q8', 'f32'), 'q8', ids(5), 'q8'));
  it('random Bamba, q4', async () => compare(randomBamba('q4', 'bf16', 8), 'q4', ids(7), 'q4'));
  // the plain SIMD module: other tiles and cache blocks, q4 dequantised for every row count
  it('random Bamba, q4, plain SIMD module', async () => compare(randomBamba('q4-plain', 'bf16', 8), 'q4 plain', ids(9), 'q4', [2], 'plain'));

  const text = readFileSync(join(TINY_A, 'eval-A.txt'), 'utf8').slice(0, 400);
  const trained = (): [number[], number[]] => {
    const t = Array.from(new TextEncoder().encode(text));
    return [t.slice(0, 70), t.slice(70, 90)];
  };
  it('trained tiny-bamba-a, bf16', async () => compare(join(TINY_A, 'bf16'), 'tiny-bamba-a bf16', trained()));
  it('trained tiny-bamba-a, bf16 quantised to q4', async () => compare(join(TINY_A, 'bf16'), 'tiny-bamba-a q4', trained(), 'q4'));
  // 8-bit activations: the rows rounded in the weight memory's staging (digits8, or the rounded rows' tiles)
  it('random Bamba, q8 and q4 with 8-bit activations', async () => {
    await compare(randomBamba('q8a8', 'f32'), 'q8a8', ids(15), 'q8', [2], 'picked', 'q8');
    await compare(randomBamba('q4a8', 'bf16', 8), 'q4a8', ids(17), 'q4', [1, 2], 'picked', 'q8');
  });
});

describe('unshared memories (a page without cross-origin isolation), several = one, bit for bit', () => {
  // threads.ts reads crossOriginIsolated as a browser sets it: false makes every memory unshared, the
  // module's import rewritten, one thread, and the products run through WasmKernels.linear (the
  // program module is not used without shared memory)
  beforeAll(() => { (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated = false; });
  afterAll(() => { delete (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated; });
  const ids = (seed: number): [number[], number[]] => [randomIds(13, 64, seed), randomIds(8, 64, seed + 1)];
  it('random Bamba, bf16 weights', async () => compare(randomBamba('plain-bf16', 'bf16'), 'unshared bf16', ids(11), undefined, [1]));
  it('random Bamba, q8', async () => compare(randomBamba('plain-q8', 'f32'), 'unshared q8', ids(13), 'q8', [1]));
});

describe('wasmMemoryBytes', () => {
  it('refuses a limit that is not a size from 64 KiB to 4 GiB, naming the option', async () => {
    const dir = randomBamba('limits', 'f32');
    const program = programFor(dir);
    for (const bad of [0, 1000, 1.5 * PAGE + 0.5, 2 ** 32 + PAGE, Number.NaN]) {
      const err = await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: kernels, threads: 1, wasmMemoryBytes: bad }).then(() => null, (e: unknown) => e);
      expect(err, `limit ${bad}`).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe('RT303');
      expect((err as RuntimeError).key).toBe('wasmMemoryBytes');
    }
  });

  it('refuses a weight larger than a weight memory holds, naming its size and the option', async () => {
    const dir = randomBamba('small', 'f32');
    const err = await Model.loadProgram(programFor(dir), dir, { backend: 'wasm', wasmKernels: kernels, threads: 1, wasmMemoryBytes: PAGE }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RT303');
    expect((err as RuntimeError).message).toMatch(/a packed weight of [0-9.]+ MiB.*wasmMemoryBytes/);
  });

  it('refuses a prompt whose rows outgrow a weight memory\'s staging, naming the memory and the option', async () => {
    const dir = join(TINY_A, 'bf16');
    const m = await Model.loadProgram(programFor(dir), dir, { backend: 'wasm', wasmKernels: kernels, threads: 1, capacity: 512, wasmMemoryBytes: 4 << 20 });
    try {
      expect(m.memories.length).toBeGreaterThan(1);
      const err = (() => { try { m.forward({ ids: randomIds(400, 256, 3) }); return null; } catch (e) { return e; } })();
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe('RT303');
      expect((err as RuntimeError).key).toBe('wasmMemoryBytes');
      expect((err as RuntimeError).message).toMatch(/wasm memory [1-9][0-9]* of [0-9.]+ MiB .*prefill in shorter pieces/);
      // a shorter prompt then runs
      expect(m.forward({ ids: randomIds(40, 256, 4) }).logits.length).toBe(40 * m.vocab);
    } finally {
      m.dispose();
    }
  });
});
