// The train entry on the wasm backend (runtime/wasm/train.ts: the backward families over the f32
// engine's kernels; the forward's products on the wasm product kernels) against the same entry on the
// CPU backend (runtime/cpu/train.ts runTrain, the oracle): tiny random Bamba tied and untied, and one
// with two SSM groups, on packed ragged sequences across chunk boundaries (GQA, partial RoPE); a tiny
// Granite-4.0-H (its mixtures of experts); the trained tiny-bamba-a on eval text whose first sequence
// crosses its 64-token chunk. Measures: the loss's relative error; the gradient's ‖got − ref‖₂ / ‖ref‖₂
// over all weights and per weight, both < 1e-5. Then: 1 and 2 threads bit for bit; every backward
// kernel of these entries (and of models of the lowerings no shipped one reaches and of the std MoE
// block) run by the wasm record and the CPU record on the same operands, each output within 1e-5 rel
// L2; the families whose wasm record is the CPU's pinned, and the forward kernels that run on the
// reference families.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import type { Compiled } from '../../compiler/compile.ts';
import type { GradBatch } from '../../compiler/grad.ts';
import { initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { Ctx } from '../../runtime/cpu/families.ts';
import { type BackwardTable, CPU_BACKWARD, runTrain } from '../../runtime/cpu/train.ts';
import { BACKWARD_FAMILY_NAMES, type BackwardFamily } from '../../runtime/families.ts';
import type { BackwardKernelOf, Program, View } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { WasmBackend, openWasmBackend } from '../../runtime/wasm/backend.ts';
import { ON_CPU, rowBody } from '../../runtime/wasm/train.ts';
import { exprText } from '../../runtime/expr.ts';
import { compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { compileText } from '../helpers/compile.ts';
import { compareGrads, evalTextBatch, packed, tinyGranite, tinyMoE, trainedTinyBamba } from './helpers.ts';

type W32 = ReadonlyMap<string, Float32Array>;
let variants: Uint8Array[];
const opened: CpuBackend[] = [];
beforeAll(async () => { variants = await wasmKernelVariants(); });
afterAll(() => { for (const b of opened) b.dispose(); });

function upload<B extends CpuBackend>(be: B, w32: W32): B {
  for (const w of be.program.weights) be.uploadWeight(w, { dtype: 'f32', shape: w.shape, data: w32.get(w.name)! });
  opened.push(be);
  return be;
}

/** A wasm backend over the program (with its own module) on `threads` threads, holding `w32`. */
async function wasmBackend(p: Program, w32: W32, threads: number): Promise<WasmBackend> {
  const be = upload(await openWasmBackend(p, variants, threads, await wasmProgram(p)), w32);
  await be.loaded();
  return be;
}

const f32Of = (c: Compiled, seed: number) => new Map(randomTensors(c, { seed }).map((t) => [t.name, t.tensor.data as Float32Array]));
const init = (c: Compiled) => new Map(initWeights(c.graph, createRng(4), 'f32').map((t) => [t.name, t.tensor.data as Float32Array]));
const trainProgram = (c: Compiled) => lowerToProgram(c.graph, c.bindings, { train: true });

/** The wasm backend's train entry against the CPU backend's on the same program and batch. */
async function check(what: string, c: Compiled, w32: W32, b: GradBatch, threads = 2): Promise<ReturnType<typeof runTrain>> {
  const p = trainProgram(c);
  const ref = runTrain(upload(new CpuBackend(p), w32), b);
  const got = runTrain(await wasmBackend(p, w32, threads), b);
  expect(got.tokens).toBe(ref.tokens);
  expect(Math.abs(got.loss - ref.loss) / ref.loss, `${what}: loss ${got.loss} vs ${ref.loss}`).toBeLessThan(1e-5);
  expect([...got.grads.keys()].sort()).toEqual([...ref.grads.keys()].sort());
  const e = compareGrads(got.grads, ref.grads);
  console.log(`${what}: wasm loss ${got.loss.toFixed(6)} (cpu ${ref.loss.toFixed(6)}); gradient rel L2 ${e.all.toExponential(2)}, worst weight ${e.name} ${e.worst.toExponential(2)}`);
  expect(e.all, `${what}: all weights`).toBeLessThan(1e-5);
  expect(e.worst, `${what}: ${e.name}`).toBeLessThan(1e-5);
  return got;
}

describe('the train entry on the wasm backend against the CPU backend', () => {
  for (const tie of [true, false]) it(`tiny random Bamba${tie ? '' : ', untied head'}, packed [6, 3, 9] over chunk 4`, async () => {
    const c = compileTiny({ tie });
    await check(`tiny Bamba${tie ? '' : ' untied'}`, c, f32Of(c, 5), packed([6, 3, 9], 96, 12));
  });

  it('tiny random Bamba with two SSM groups and chunk 8, packed [11, 1, 17, 4]', async () => {
    const c = compileTiny({ mamba_groups: 2, chunk: 8 });
    await check('tiny Bamba G=2', c, f32Of(c, 9), packed([11, 1, 17, 4], 96, 14));
  });

  it('tiny Granite-4.0-H (2 of 6 experts behind each layer), packed [11, 3, 20] over chunk 8', async () => {
    const c = tinyGranite();
    await check('tiny Granite-4.0-H', c, init(c), packed([11, 3, 20], 256, 10));
  });

  it('a training step\'s weights stored again: the experts\' panels packed again, the entry equal to the CPU\'s on the new weights', async () => {
    const c = tinyMoE('softmax', true), p = trainProgram(c), b = packed([7, 2, 9], 40, 11);
    const w1 = init(c), w2 = new Map([...w1].map(([n, v]) => [n, v.map((x, i) => x + 0.05 * Math.sin(i + n.length))]));
    const wasm = await wasmBackend(p, w1, 2);
    runTrain(wasm, b);
    wasm.updateWeights(w2);
    const got = runTrain(wasm, b), ref = runTrain(upload(new CpuBackend(p), w2), b);
    const e = compareGrads(got.grads, ref.grads);
    expect(Math.abs(got.loss - ref.loss) / ref.loss, `loss ${got.loss} vs ${ref.loss}`).toBeLessThan(1e-5);
    expect(e.worst, e.name).toBeLessThan(1e-5);
  });

  it('trained tiny-bamba-a, eval text packed as [66, 14] (the first across its 64-token chunk)', async () => {
    const { c, w } = trainedTinyBamba();
    await check('tiny-bamba-a', c, w, evalTextBatch());
  }, 60_000);

  it('1 and 2 threads give the same loss and gradients bit for bit (products past the split size: 40 rows × 64 × 256; the SSD\'s and attention\'s heads, the conv backward\'s sequences shared)', async () => {
    const c = compileTiny({ d_model: 64, d_ff: 256, vocab: 256 }), w = f32Of(c, 11), p = trainProgram(c), b = packed([13, 7, 20], 256, 3);
    const one = runTrain(await wasmBackend(p, w, 1), b), two = runTrain(await wasmBackend(p, w, 2), b);
    expect(two.loss).toBe(one.loss);
    for (const [n, g] of one.grads) expect(Buffer.from(two.grads.get(n)!.buffer).equals(Buffer.from(g.buffer)), n).toBe(true);
  });
});

/** A CPU backend whose train-entry families run both records, the wasm backend's and the CPU's,
 *  on the same operands (the CPU's results go on), comparing each output. */
class Both extends CpuBackend {
  readonly seen = new Map<BackwardFamily, number>();
  readonly errors: string[] = [];
  constructor(p: Program, private readonly wasm: WasmBackend) { super(p); }
  override get backward(): BackwardTable {
    const table: Record<string, (k: BackwardKernelOf<BackwardFamily>, c: Ctx) => void> = {};
    for (const f of BACKWARD_FAMILY_NAMES) {
      table[f] = (k, c) => {
        const outs = new Map<View, Float32Array>();
        // every result through write (none computed in the arena in place)
        const capture: Ctx = Object.assign(Object.create(Object.getPrototypeOf(c)), c, { write: (v: View, d: Float32Array) => { outs.set(v, d.slice()); }, out: () => null });
        (this.wasm.backward[f] as (k: BackwardKernelOf<BackwardFamily>, c: Ctx) => void)(k, capture);
        (CPU_BACKWARD[f] as (k: BackwardKernelOf<BackwardFamily>, c: Ctx) => void)(k, c);
        for (const [name, v] of Object.entries(k.outputs) as [string, View][]) {
          const got = outs.get(v), ref = c.operand({ ...k, inputs: { [name]: v } } as never, name);
          const e = got ? compareGrads(new Map([[name, got]]), new Map([[name, ref]])).worst : Infinity;
          if (!(e < 1e-5)) this.errors.push(`${k.name} (${f}) ${name}: rel L2 ${e}`);
        }
        this.seen.set(f, (this.seen.get(f) ?? 0) + 1);
      };
    }
    return table as unknown as BackwardTable;
  }
}

describe('each wasm backward family against the CPU one', () => {
  it('every backward kernel of tiny Bamba (two layouts), of a model of the rarer lowerings and of a mixture of experts, on its operands of a random run', async () => {
    const sink = compileText(`import std.{Linear, Embedding}
model Small(tokens: i32[T], positions: i32[T]) {
  param d = 8
  e = Embedding(16, d)
  x = e(tokens)
  weight g[d]
  weight ln_w[d]
  weight ln_b[d]
  b = sigmoid(x * g) + gelu(x)
  h = layernorm(clamp(b, min: -0.5, max: 0.7), ln_w, ln_b, eps: 0.00001)
  p, q = split(proj: Linear(d, 2 * d, has_bias: true)(h), sizes: [d, d])
  gates, idx = topk(softmax(router: Linear(d, 4)(x)), k: 2, normalize: true)
  return head(relu2(p) * q + exp(neg(x)) * 0.5 + gl: Linear(2, d)(gates), e.weight)
}
`);
    const runs: [Compiled, W32, GradBatch][] = [
      [compileTiny(), f32Of(compileTiny(), 2), packed([6, 3, 9], 96, 1)],
      [compileTiny({ tie: false, mamba_groups: 2, chunk: 8, n_kv_heads: 1 }), f32Of(compileTiny({ tie: false, mamba_groups: 2, chunk: 8, n_kv_heads: 1 }), 3), packed([10, 2, 13], 96, 2)],
      [sink, init(sink), packed([5, 3, 6], 16, 8)],
      [tinyMoE('sigmoid', true), init(tinyMoE('sigmoid', true)), packed([7, 2, 9], 40, 11)],
    ];
    const seen = new Set<BackwardFamily>();
    for (const [c, w, b] of runs) {
      const p = trainProgram(c), both = upload(new Both(p, await wasmBackend(p, w, 2)), w);
      runTrain(both, b);
      expect(both.errors).toEqual([]);
      for (const f of both.seen.keys()) seen.add(f);
    }
    console.log(`families compared: ${[...seen].sort().join(', ')}`);
    // every family with a wasm kernel of its own is reached
    for (const f of BACKWARD_FAMILY_NAMES) if (!(ON_CPU as readonly string[]).includes(f)) expect(seen.has(f), f).toBe(true);
  }, 60_000);

  it('runs the train entry\'s hot elementwise bodies on the row kernels: the rest, pinned, a column per SSM head (the dt chain)', () => {
    const t = trainProgram(compileTiny()).train!, rest = new Set<string>();
    let rows = 0;
    for (const k of t.kernels) if (k.family === 'elementwise') { if (rowBody(k.body!)) rows++; else rest.add(exprText(k.body!).replace(/model\.layers\.\d+\./g, '')); }
    console.log(`tiny Bamba's train entry: ${rows} elementwise kernels on the row kernels; the rest: ${[...rest].join('; ')}`);
    expect(rows).toBe(33);
    expect([...rest].sort()).toEqual(['(%a + w:mamba.dt_bias)', 'softplus(%x)', 'clamp(%x, 0, Infinity)', 'neg(%a)', '(%a * exp(w:mamba.A_log))', '(%a * sigmoid(%b))'].sort());
  });

  it('runs the train entry\'s forward stages on the f32 engine\'s kernels: those on the reference families, pinned', async () => {
    const c = compileTiny(), w = f32Of(c, 5), p = trainProgram(c), be = await wasmBackend(p, w, 1);
    runTrain(be, packed([6, 3, 9], 96, 12));
    console.log(`tiny Bamba's train entry, forward kernels on the reference families: ${[...be.train.reference].join('; ')}`);
    expect([...be.train.reference].sort()).toEqual(['embedding',
      'elementwise (%a + w:mamba.dt_bias)', 'elementwise softplus(%x)', 'elementwise clamp(%x, 0, Infinity)', 'elementwise neg(%a)',
      'elementwise (%a * exp(w:mamba.A_log))', 'elementwise (%a * sigmoid(%b))'].sort());
  });

  it('runs on the CPU\'s record only the families without a wasm kernel yet (the list only shrinks)', () => {
    expect([...ON_CPU]).toEqual(['clamp_backward', 'layernorm_backward', 'gelu_backward', 'softmax_backward', 'topk_backward', 'embedding_backward', 'rope_backward']);
  });
});
