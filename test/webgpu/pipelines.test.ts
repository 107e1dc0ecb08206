// The layers of one shape share their shader texts, so a device compiles a pipeline per distinct
// kernel, not per layer: where a kernel's buffers and states sit is data (`Pass.places`, read by
// `place(i)` from a uniform binding), not text. The renderings of a 2-layer and a 4-layer tiny Bamba
// (a Mamba and an attention layer, then the same again) hold as many distinct texts, in both
// profiles, with every q8/q4 variant, the train entry and the optimizer; and on the device the
// 4-layer model compiles as many pipelines as the 2-layer one while it dispatches more passes, its
// outputs the CPU engine's within 1e-4 · (1 + max|logit|) after a prefill and a decode step.

import { afterAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type RunBatch, runEntry, runEntryAsync } from '../../runtime/backend.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { Program } from '../../runtime/program.ts';
import { type WebGpuBackend, createWebGpuBackend } from '../../runtime/webgpu/backend.ts';
import { allPasses, shaderCode, type WgslProgram } from '../../runtime/webgpu/shaders.ts';
import { compileTiny, expectLogitsClose, randomTensors } from '../helpers/checkpoints.ts';
import { useSwiftShader } from './gpu.ts';

const RTOL = 1e-4;
/** SwiftShader on two busy cores: a generous bound per test (budgets are by count, not time). */
const TIMEOUT = 300_000;

const LAYERS = { two: { n_layers: 2, attn_layers: [1] }, four: { n_layers: 4, attn_layers: [1, 3] } } as const;

function build(depth: keyof typeof LAYERS): { c: ReturnType<typeof compileTiny>; program: Program; train: WgslProgram; wgsl: WgslProgram } {
  const c = compileTiny(LAYERS[depth]);
  const program = lowerToProgram(c.graph, c.bindings);
  return { c, program, wgsl: renderProgram(program), train: renderProgram(lowerToProgram(c.graph, c.bindings, { train: true })) };
}

const two = build('two'), four = build('four');

/** The distinct shader texts of each profile's entries (every variant), of its train entry and of
 *  the optimizer (a pass per expression-derived weight: each Mamba layer's −exp(A_log)). */
function texts(w: WgslProgram): Record<string, number> {
  const o = w.optimizer!;
  const out: Record<string, number> = { optimizer: new Set([...o.passes, ...o.derived.flatMap((d) => (d.pass ? [d.pass] : []))].map((p) => shaderCode(p))).size };
  for (const profile of ['gpu', 'cpu'] as const) {
    out[profile] = new Set(Object.values(w.profiles[profile]).flatMap((e) => e.kernels.flatMap((k) => allPasses(k, true).map((p) => shaderCode(p))))).size;
    out[`train ${profile}`] = new Set(w.train![profile].kernels.flatMap((k) => k.passes.map((p) => shaderCode(p)))).size;
  }
  return out;
}

describe('layers of one shape share their pipelines', () => {
  it('a 4-layer tiny Bamba renders as many distinct shader texts as a 2-layer one', () => {
    const a = texts(two.train), b = texts(four.train);
    console.log(`distinct shader texts, 2 layers: ${JSON.stringify(a)}; 4 layers: ${JSON.stringify(b)}`);
    expect(b).toEqual(a);
    // the passes themselves do grow with the layers
    const passes = (w: WgslProgram) => Object.values(w.profiles.cpu).flatMap((e) => e.kernels.flatMap((k) => k.passes)).length;
    expect(passes(four.wgsl)).toBeGreaterThan(1.5 * passes(two.wgsl));
  });

  const opened: WebGpuBackend[] = [];
  afterAll(() => { for (const b of opened) b.dispose(); });

  /** Pipelines made and passes dispatched by a device of its own for a prefill of 5 tokens, then a
   *  decode step, whose logits are checked against the CPU engine's. */
  async function run(m: typeof two): Promise<{ made: number; dispatches: number }> {
    useSwiftShader();
    const gpu = await createWebGpuBackend(m.program, m.wgsl, { onWarning: () => {} });
    opened.push(gpu);
    const cpu = new CpuBackend(m.program);
    const tensors = new Map(randomTensors(m.c, { seed: 7, dtype: 'bf16' }).map((t) => [t.name, t.tensor]));
    for (const w of m.program.weights) {
      const t = tensors.get(w.name) ?? (() => { throw new Error(`no tensor ${w.name}`); })();
      cpu.uploadWeight(w, t);
      gpu.uploadWeight(w, t);
    }
    const pools = [cpu.createStatePool(16), gpu.createStatePool(16)] as const;
    const slots = pools.map((p) => p.acquire());
    const batch = (tokens: number[], before: number, i: number): RunBatch => ({
      tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, j) => before + j),
      seqs: [{ start: 0, len: tokens.length }], slots: [slots[i]!], lengths: [before],
    });
    for (const [entry, tokens, before] of [['prefill', [3, 14, 15, 92, 65], 0], ['decode', [35], 5]] as const) {
      const want = runEntry(cpu, m.program, entry, batch([...tokens], before, 0), pools[0]).get('logits')!;
      const got = (await runEntryAsync(gpu, m.program, entry, batch([...tokens], before, 1), pools[1])).get('logits')!;
      expectLogitsClose(got, want, RTOL, `${m.program.weights.length} weights, ${entry}`, 96);
    }
    cpu.dispose();
    return { made: gpu.pipelinesMade, dispatches: gpu.dispatches };
  }

  it('a 4-layer tiny Bamba compiles as many pipelines as a 2-layer one, and equals the CPU engine', async () => {
    const a = await run(two), b = await run(four);
    console.log(`pipelines made, 2 layers: ${a.made} (${a.dispatches} dispatches); 4 layers: ${b.made} (${b.dispatches} dispatches)`);
    expect(a.made).toBeGreaterThan(10);
    expect(b.dispatches).toBeGreaterThan(1.5 * a.dispatches);
    expect(b.made).toBe(a.made);
  }, TIMEOUT);
});
