// WebGPU with q8/q4 weights and 8-bit activations (Model.load's `quantize` and `activations: 'q8'`)
// against the CPU reference loaded the same way, in both renderings on SwiftShader: a random tiny
// Bamba (the head tied to the embedding) and the trained ../shared/models/tiny-bamba-a — packed
// forward of two sequences, prefill then a decode step of both, and one sequence token by token.
//
// The criterion is test/e2e/wasm-quant.test.ts's `a8` check: a product's rounding is a step function,
// so one f32 rounding of difference upstream (the reference sums in double, the shaders in f32, in
// another order) can move an activation lying at a step's edge by a whole step, and from that row on
// the sequence's logits differ by about what the rounding itself moves them. So the first token's row
// within 1e-4 of the scale (this target's bound for quantised products, quant.test.ts: a product that
// skipped the rounding or rounded otherwise is off by far more there), every row within 2 % of it;
// and 8-bit activations move the logits by more than 1e-4 (checked, so the comparison is of the mode).
// The products alone, on equal inputs, are in act-quant.test.ts.

import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { Model } from '../../runtime/model.ts';
import type { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { expectLogitsClose, makeDir, programFor, randomIds, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';
import { sharedGpu, useSwiftShader } from './gpu.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32');
const TIMEOUT = 600_000;
let work: string;
let random: string;
beforeAll(() => {
  useSwiftShader();
  work = makeDir('archc-webgpu-a8-');
  random = writeCheckpoint(work, {}, { seed: 12 }).dir;
});
afterAll(() => removeDir(work));

const seen: string[] = [];
afterAll(() => { if (seen.length) console.log(`max |gpu − cpu| / (1 + max|cpu|):\n  ${seen.join('\n  ')}`); });

/** The a8 criterion (header); `first`: row 0 is a sequence's first token. */
function check(got: Float32Array, want: Float32Array, what: string, V: number, first: boolean): void {
  let scale = 0;
  want.forEach((v) => { scale = Math.max(scale, Math.abs(v)); });
  if (first) seen.push(`${what}, first row: ${(expectLogitsClose(got.subarray(0, V), want.subarray(0, V), 1e-4, `${what}, first row`, V) / (1 + scale)).toExponential(2)}`);
  seen.push(`${what}: ${(expectLogitsClose(got, want, 2e-2, what, V) / (1 + scale)).toExponential(2)}`);
}

async function compare(dir: string, quantize: 'q8' | 'q4', profile: WgslProfile, what: string, seqs: readonly number[][]): Promise<void> {
  const program = programFor(dir);
  const cpu = await Model.loadProgram(program, dir, { threads: 1, quantize, activations: 'q8' });
  const f32 = await Model.loadProgram(program, dir, { threads: 1, quantize });
  const gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program), quantize, activations: 'q8', webgpu: { gpu: sharedGpu(), profile } });
  try {
    expect(gpu.quantization?.activations).toBe('q8');
    const b = (gpu as unknown as { backend: WebGpuBackend }).backend;
    const products = Object.values(b.shaders.profiles[profile]).flatMap((e) => e.kernels).filter((k) => k.quant?.a8);
    expect(products.length, 'products over quantised weights').toBeGreaterThan(10);
    for (const k of products) expect(b.passesOf(k).map((p) => p.name), `${k.kernel} rounds its input`).toContain('round');
    const V = cpu.vocab;
    const [a, c] = seqs as [number[], number[]];
    const input = { ids: [...a, ...c], positions: [...a.keys(), ...c.keys()] };
    const ref = cpu.forward(input).logits;
    let scale = 0, diff = 0;
    const plain = f32.forward(input).logits;
    ref.forEach((v, i) => { scale = Math.max(scale, Math.abs(v)); diff = Math.max(diff, Math.abs(v - plain[i]!)); });
    expect(diff / (1 + scale), `${what}: 8-bit activations move the logits`).toBeGreaterThan(1e-4);
    check((await gpu.forwardAsync(input)).logits, ref, `${what}: packed forward`, V, true);
    const pc = cpu.prefill([a, c]);
    const pg = await gpu.prefillAsync([a, c]);
    pg.logits.forEach((l, i) => check(l, pc.logits[i]!, `${what}: prefill ${i}`, V, true));
    const next = [a[0]!, c[0]!];
    check(await gpu.decodeAsync(next, pg.states), cpu.decode(next, pc.states), `${what}: decode step`, V, false);
    for (const s of pg.states) gpu.releaseSequence(s);
    const s = gpu.newSequence();
    const stepped = new Float32Array(a.length * V);
    for (let t = 0; t < a.length; t++) stepped.set(await gpu.decodeAsync([a[t]!], [s]), t * V);
    check(stepped, rows(ref, V, 0, a.length), `${what}: step by step vs the reference's forward`, V, true);
  } finally {
    cpu.dispose();
    f32.dispose();
    gpu.dispose();
  }
}

describe('WebGPU with quantised weights and 8-bit activations = the CPU reference of the same mode', () => {
  for (const quantize of ['q8', 'q4'] as const) {
    for (const profile of ['cpu', 'gpu'] as const) {
      it(`random tiny Bamba, ${quantize}, ${profile} rendering`, () => compare(random, quantize, profile, `random ${quantize} ${profile}`, [randomIds(7, 90, 1), randomIds(4, 90, 2)]), TIMEOUT);
    }
    it(`trained tiny-bamba-a, ${quantize}, cpu rendering`, () => {
      const text = Array.from(new TextEncoder().encode('The standard library of Python has a module for regular expressions.'));
      return compare(TINY_A, quantize, 'cpu', `tiny-bamba-a ${quantize}`, [text.slice(0, 23), text.slice(23, 37)]);
    }, TIMEOUT);
  }
});
