// The whole-step cost model of build-report.json (codegen/cuda/cost.ts; a model, not a measurement):
// Bamba-9B's report has the decode and prefill figures per card, batch and format; a kernel's bytes
// and FLOPs equal the hand-counted ones (a GEMV, a norm, an elementwise map, an embedding); and a
// kernel whose family has no model is listed as unmodelled, never dropped, its step marked partial.

import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { costReport, costSummary, FAMILY_COSTS, GPUS, type KernelRow, LAUNCH_GAP_US, type StepCost, stepCost } from '../../codegen/cuda/cost.ts';
import { CUDA_TARGET, cudaSchedule } from '../../codegen/cuda/schedule.ts';
import { launchesOf } from '../../runtime/cuda/abi.ts';
import { BAMBA } from '../helpers/checkpoints.ts';
import { compileText } from '../helpers/compile.ts';

const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
const small = (() => {
  const c = compileText(`import std.{Embedding, RMSNorm}
model M(tokens: i32[T], positions: i32[T]) {
  e = wte: Embedding(50, 256)(tokens)
  x = norm: RMSNorm(256, 1e-5)(e) * silu(e)
  return x
}`);
  return lowerToProgram(c.graph, c.bindings);
})();
const H200 = GPUS.find((g) => g.name === 'H200')!;
const row = (c: StepCost, part: string): KernelRow => {
  const r = c.kernels.find((k) => k.kernel.includes(part));
  if (!r) throw new Error(`no kernel ${part} among ${c.kernels.map((k) => k.kernel).join(', ')}`);
  return r;
};
/** The report's rounding: 4 significant digits. */
const r4 = (x: number) => Number(x.toPrecision(4));

describe('the whole-step cost model', () => {
  const report = costReport(nine);

  it('reports decode (batch 1 and 8; bf16, q8, q4) and a 4096-token prefill per card, led by H200 batch 1 bf16', () => {
    const cells = (c: StepCost) => ({ floor: c.floorUs > 0, model: c.modelUs >= c.floorUs, ratio: Math.abs(c.ratioToFloor - c.modelUs / c.floorUs) <= 1e-3 * c.ratioToFloor, host: c.hostModelUs > c.modelUs, kernels: c.kernels.length > 0 });
    const ok = { floor: true, model: true, ratio: true, host: true, kernels: true };
    const decode = report.decode.cards;
    const prefill = report.prefill.cards;
    expect(Object.keys(decode)).toEqual(GPUS.map((g) => g.name));
    for (const gpu of GPUS) {
      expect(Object.keys(decode[gpu.name]!)).toEqual(['batch1', 'batch8']);
      for (const batch of ['batch1', 'batch8']) {
        expect(Object.keys(decode[gpu.name]![batch]!)).toEqual(['bf16', 'q8', 'q4']);
        for (const f of ['bf16', 'q8', 'q4']) expect(cells(decode[gpu.name]![batch]![f]!), `${gpu.name} ${batch} ${f}`).toEqual(ok);
      }
      expect(cells(prefill[gpu.name]!), `prefill ${gpu.name}`).toEqual(ok);
    }
    const h = decode.H200!.batch1!.bf16!;
    expect(report.decode).toMatchObject({ card: 'H200', batch: 1, format: 'bf16', floorUs: h.floorUs, modelUs: h.modelUs, ratioToFloor: h.ratioToFloor, partial: h.partial });
    expect(report.prefill).toMatchObject({ card: 'H200', tokens: 4096, format: 'bf16', ratioToFloor: prefill.H200!.ratioToFloor });
    // every kernel the step launches is counted once, modelled or not; a kernel of phases is several launches
    const launched = (entry: 'decode' | 'prefill', T: number) => nine.entries[entry].kernels.map((k) => launchesOf(nine.entries[entry], k, cudaSchedule(k, CUDA_TARGET), T, 1).length).filter((n) => n > 0);
    for (const [c, entry, T] of [[h, 'decode', 1], [prefill.H200!, 'prefill', 4096]] as const) {
      expect([...c.kernels, ...c.unmodelled].reduce((n, k) => n + k.count, 0)).toBe(launched(entry, T).length);
      expect(c.launches).toBe(launched(entry, T).reduce((a, b) => a + b, 0));
    }
    expect(launched('decode', 1).length).toBe(nine.entries.decode.kernels.length);
    expect(costSummary(report)).toContain(`decode batch 1 bf16 ${report.decode.ratioToFloor}x its floor`);
    expect(costSummary(report)).toContain(`prefill 4096 ${report.prefill.ratioToFloor}x its floor`);
  });

  it("a decode GEMV's and an embedding's bytes and FLOPs are the counted ones", () => {
    const b1 = stepCost(nine, 'decode', { rows: 1, tokens: 1 }, H200);
    // out_proj: W [4096, 8192] bf16, x and the gate z [8192] f32, y [4096] f32; 29 Mamba layers
    const out = row(b1, 'mamba.out_proj');
    expect({ count: out.count, family: out.family, bytes: out.bytes, flops: out.flops, floorUs: out.floorUs })
      .toEqual({ count: 29, family: 'gemv', bytes: r4(4096 * 8192 * 2 + 2 * 8192 * 4 + 4096 * 4), flops: r4(2 * 4096 * 8192), floorUs: r4((4096 * 8192 * 2 + 2 * 8192 * 4 + 4096 * 4) / 4.8e12 * 1e6) });
    // in_proj at batch 8 in q4 (codes and an f16 scale per 32): the conv window of its epilogue, 3 taps of 8448 channels, read and written per row
    const q4 = row(stepCost(nine, 'decode', { rows: 8, tokens: 1, format: 'q4' }, H200), 'mamba.in_proj');
    expect([q4.bytes, q4.flops]).toEqual([r4(16768 * 4096 * (0.5 + 2 / 32) + 8 * 4096 * 4 + 8 * 16768 * 4 + 8 * 8448 * 3 * 4 * 2), r4(2 * 8 * 16768 * 4096)]);
    // the embedding: a bf16 row of 4096 a token, written in f32, and the token's id
    const emb = row(b1, 'embed_tokens');
    expect([emb.bytes, emb.flops, emb.count]).toEqual([4096 * 6 + 4, 0, 1]);
    // the prefill's head is a GEMV over each sequence's last row only
    const head = row(stepCost(nine, 'prefill', { rows: 1, tokens: 4096 }, H200), 'head');
    expect([head.family, head.bytes]).toEqual(['gemv', r4(128256 * 4096 * 2 + 4096 * 4 + 128256 * 4)]);
  });

  it("a norm's and an elementwise map's bytes and FLOPs are the counted ones", () => {
    const c = stepCost(small, 'decode', { rows: 3, tokens: 1 }, H200);
    expect(c.kernels.map((k) => [k.family, k.bytes, k.flops])).toEqual([
      ['embedding', 3 * 256 * 6 + 3 * 4, 0],
      // x and y [3, 256] f32, the weight [256] f32; a square-add and a scale-multiply each way
      ['norm', 3 * 256 * 4 * 2 + 256 * 4, 3 * 256 * 4],
      // norm(e) · silu(e): two inputs and y, a mul and a silu an element
      ['elementwise', 3 * 256 * 4 * 3, 3 * 256 * 2],
    ]);
    expect(c.kernels.every((k) => k.modelUs >= k.floorUs)).toBe(true);
    expect(c.modelUs).toBeCloseTo(c.kernels.reduce((n, k) => n + k.modelUs, 0) + 3 * LAUNCH_GAP_US.graph, 3);
    expect(c.hostModelUs).toBeCloseTo(c.kernels.reduce((n, k) => n + k.modelUs, 0) + 3 * LAUNCH_GAP_US.host, 3);
    expect(c.partial).toBe(false);
  });

  it('lists a kernel whose family has no model as unmodelled and marks its step partial', () => {
    // Bamba-9B's decode step is modelled whole
    const d = report.decode.cards.H200!.batch1!.bf16!;
    expect(d.partial).toBe(false);
    expect(d.unmodelled).toEqual([]);
    // and its prefill
    expect(report.prefill.unmodelled).toEqual([]);
    expect(report.prefill.partial).toBe(false);
    // a registry without the norm: the norm is listed, its figures are not in the step's
    const { norm: _, ...noNorm } = FAMILY_COSTS;
    const all = stepCost(small, 'decode', { rows: 3, tokens: 1 }, H200);
    const part = stepCost(small, 'decode', { rows: 3, tokens: 1 }, H200, noNorm);
    expect(part.unmodelled).toEqual([{ kernel: 'norm:rmsnorm', family: 'norm', count: 1 }]);
    expect(part.partial).toBe(true);
    expect(part.launches).toBe(3);
    expect(part.floorUs).toBeCloseTo(all.floorUs - row(all, 'norm').floorUs, 3);
  });
});
