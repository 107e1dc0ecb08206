// The comparison of quant-q8.test.ts and quant-q4.test.ts (one file per format, so that neither is
// the suite's last long file): WebGPU with q8/q4 weights (Model.load's `quantize`) against the CPU reference engine loaded with
// the same `quantize` (the oracle of the format, runtime/quant.ts), in both renderings (`gpu` and
// `cpu`, both run on SwiftShader): a random tiny Bamba (f32 stored, the head tied to the embedding,
// so the quantised table is read by the lookup and the head's product) and the trained
// ../shared/models/tiny-bamba-a — packed forward of two sequences, prefill then step-by-step decode;
// and the random one with its weights (merged ones too), arena and state pool split over bindings.
// Logits agree within 1e-4 of their scale, |gpu − cpu| ≤ 1e-4 · (1 + max|logit|); the quantisation
// itself moves them by far more (checked, so the comparison is of quantised models). Every pass
// rendered for a quantised weight is validated by Dawn; the kernels' own cases are in
// quant-kernels.test.ts. The loads share one device (gpu.ts sharedGpu): a pass two cases render alike
// (the random model's, whole and split) compiles once.

import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { Model } from '../../runtime/model.ts';
import type { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import type { SplitOptions } from '../../runtime/webgpu/split.ts';
import { expectLogitsClose, makeDir, programFor, randomIds, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';
import { expectShadersValid, sharedGpu, useSwiftShader } from './gpu.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32');
const RTOL = 1e-4;
/** As split.test.ts: every buffer over 9200 bytes cut into parts. */
const SPLIT: SplitOptions = { maxBindingBytes: 9200, maxBatchTokens: 9, stateSlots: 2 };
const CAPACITY = 12;
/** SwiftShader on two busy cores: a generous bound per test. */
const TIMEOUT = 600_000;
let work: string;
let random: string;

const backendOf = (m: Model) => (m as unknown as { backend: WebGpuBackend }).backend;

/** The largest |a − b| over max|b| + 1: how far the quantisation moves the logits. */
function moved(a: Float32Array, b: Float32Array): number {
  let scale = 0, diff = 0;
  b.forEach((v, i) => { scale = Math.max(scale, Math.abs(v)); diff = Math.max(diff, Math.abs(a[i]! - v)); });
  return diff / (1 + scale);
}

/** Each comparison's max |gpu − cpu| / (1 + max|cpu|), printed at the end (the figures seen). */
const seen: string[] = [];

function close(got: Float32Array, ref: Float32Array, what: string, V: number): void {
  let scale = 0;
  ref.forEach((v) => { scale = Math.max(scale, Math.abs(v)); });
  seen.push(`${what}: ${(expectLogitsClose(got, ref, RTOL, what, V) / (1 + scale)).toExponential(2)}`);
}

async function compare(dir: string, quantize: 'q8' | 'q4', profile: WgslProfile, what: string, validate: boolean, split?: SplitOptions): Promise<void> {
  const program = programFor(dir);
  const cpu = await Model.loadProgram(program, dir, { threads: 1, quantize });
  const plain = await Model.loadProgram(program, dir, { threads: 1 });
  const gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program), quantize, webgpu: { gpu: sharedGpu(), profile, ...split }, ...(split ? { capacity: CAPACITY } : {}) });
  try {
    const b = backendOf(gpu);
    expect(b.profile).toBe(profile);
    expect(b.formats.get('model.embed_tokens.weight'), 'the embedding is quantised').toBe(quantize);
    // every kernel rendered for a quantised matrix runs its format's passes
    const readers = Object.values(b.shaders.profiles[profile]).flatMap((e) => e.kernels).filter((k) => k.quant);
    expect(readers.length).toBeGreaterThan(10);
    for (const k of readers) expect(b.formats.get(k.quant!.weight), `${k.kernel} reads ${k.quant!.weight} quantised`).toBe(quantize);
    if (split) {
      // a merged weight (joined on the host) and a plain one, both cut into parts
      const parts = (w: string) => b.plan.buffers.get(`w:${w}`)!.parts;
      expect(b.formats.get('model.layers.0.mamba.in_proj.weight')).toBe(quantize);
      expect(parts('model.layers.0.mamba.in_proj.weight'), 'in_proj is split').toBeGreaterThan(1);
      const merged = program.derived.find((d) => d.from.kind === 'concat' && b.formats.has(d.name) && parts(d.name) > 1);
      expect(merged, 'a quantised merged weight is split').toBeDefined();
    }
    if (validate) expect(await expectShadersValid(b, profile)).toBeGreaterThan(60);
    const V = cpu.vocab;
    const a = randomIds(5, Math.min(V, 200), 1), c = randomIds(3, Math.min(V, 200), 2);
    const input = { ids: [...a, ...c], positions: [...a.keys(), ...c.keys()] };
    const ref = cpu.forward(input).logits;
    expect(moved(plain.forward(input).logits, ref), `${what}: quantisation moves the logits`).toBeGreaterThan(1e-3);
    close((await gpu.forwardAsync(input)).logits, ref, `${what}: packed forward`, V);
    // prefill of both, then step-by-step decode of the batch
    const pc = cpu.prefill([a, c]);
    const pg = await gpu.prefillAsync([a, c]);
    pg.logits.forEach((l, i) => close(l, pc.logits[i]!, `${what}: prefill ${i}`, V));
    for (let step = 0; step < 2; step++) {
      const next = [a[step]!, c[step]!];
      close(await gpu.decodeAsync(next, pg.states), cpu.decode(next, pc.states), `${what}: decode step ${step}`, V);
    }
    for (const s of pg.states) gpu.releaseSequence(s);
    // one sequence token by token against the reference's forward
    const s = gpu.newSequence();
    const stepped = new Float32Array(3 * V);
    for (let t = 0; t < 3; t++) stepped.set(await gpu.decodeAsync([a[t]!], [s]), t * V);
    close(stepped, rows(ref, V, 0, 3), `${what}: step by step vs the reference's forward`, V);
  } finally {
    cpu.dispose();
    plain.dispose();
    gpu.dispose();
  }
}

/** The file's cases for one format: its checkpoints made once, the figures printed at the end. */
export function quantCases(quantize: 'q8' | 'q4'): void {
  beforeAll(() => {
    useSwiftShader();
    work = makeDir(`archc-webgpu-quant-${quantize}-`);
    random = writeCheckpoint(work, {}, { seed: 11 }).dir;
  });
  afterAll(() => {
    removeDir(work);
    if (seen.length) console.log(`max |gpu − cpu| / (1 + max|cpu|):\n  ${seen.join('\n  ')}`);
  });
  describe(`WebGPU with ${quantize} weights = the CPU reference of the same format`, () => {
    for (const profile of ['cpu', 'gpu'] as const) {
      it(`random tiny Bamba, ${quantize}, ${profile} rendering`, () => compare(random, quantize, profile, `random ${quantize} ${profile}`, profile === 'cpu'), TIMEOUT);
    }
    it(`random tiny Bamba, ${quantize}, weights, arena and pool split over bindings`, () => compare(random, quantize, 'cpu', `random ${quantize} split`, false, SPLIT), TIMEOUT);
    it(`trained tiny-bamba-a, ${quantize}, cpu rendering`, () => compare(TINY_A, quantize, 'cpu', `tiny-bamba-a ${quantize}`, false), TIMEOUT);
  });
}
