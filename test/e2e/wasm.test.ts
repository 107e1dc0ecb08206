// The wasm backend end to end against the CPU reference engine on random checkpoints: packed forward
// (two sequences), prefill then a batched decode of both and a multi-token continuation, and one
// token at a time through decode,
// for Bamba (f32 and bf16 weights, kept 16-bit in the panels) and the other models/ architectures.
// Logits agree within 1e-5 of their scale (f32 sums in k order against the engine's double sums).
// The wasm side has the program's own module (codegen/wasm/program.ts): arena and state slots in
// the shared memory, stages, norms, conv and SSD step as its functions.
// The wasm backend runs the module variant the runtime picks (the fused multiply-add one on Node);
// Bamba runs on the plain one too.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { ROOT, expectLogitsClose, makeDir, programFor, randomIds, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';

const work = makeDir('archc-wasm-');
let kernels: Uint8Array[];
beforeAll(async () => { kernels = await wasmKernelVariants(); });
afterAll(() => removeDir(work));

const OTHERS: Record<string, string[]> = {
  llama: ['vocab=80', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'd_ff=48', 'dtype=f32'],
  mamba2: ['vocab=80', 'd_model=32', 'n_layers=2', 'head_dim=8', 'n_groups=2', 'd_state=8', 'chunk=3', 'dtype=f32'],
  qwen3: ['vocab=80', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'head_dim=16', 'd_ff=48', 'dtype=f32'],
  gpt2: ['vocab=80', 'd_model=32', 'n_layers=2', 'n_heads=4', 'context=32', 'dtype=f32'],
};

/** The CPU engine and the wasm backend on one checkpoint. */
type Pair = { cpu: Model; wasm: Model };

async function bamba(dtype: 'f32' | 'bf16', variant: 'picked' | 'plain'): Promise<Pair> {
  const dir = join(work, `bamba-${dtype}-${variant}`);
  mkdirSync(dir);
  writeCheckpoint(dir, { vocab: 90 }, { dtype, seed: 3 });
  const wasmKernels = variant === 'plain' ? kernels.at(-1)! : kernels;
  const program = programFor(dir);
  return { cpu: await Model.loadProgram(program, dir, { threads: 1 }), wasm: await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels, wasmProgram: await wasmProgram(program), threads: 2 }) };
}

async function other(name: string): Promise<Pair> {
  const file = join(ROOT, 'models', `${name}.arch`);
  const dir = join(work, name);
  mkdirSync(dir);
  const c = compileFile(file, { set: OTHERS[name] });
  writeFileSync(join(dir, 'config.json'), hfConfigText(c));
  writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(9)));
  const bound = compileFile(file, { hfConfig: join(dir, 'config.json') });
  const program = lowerToProgram(bound.graph, bound.bindings);
  return { cpu: await Model.loadProgram(program, dir, { threads: 1 }), wasm: await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: kernels, wasmProgram: await wasmProgram(program), threads: 2 }) };
}

function compare({ cpu, wasm }: Pair, what: string): void {
  const V = cpu.vocab;
  const a = randomIds(9, V, 1), b = randomIds(6, V, 2);
  const input = { ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] };
  const ref = cpu.forward(input).logits;
  expectLogitsClose(wasm.forward(input).logits, ref, 1e-5, `${what}: packed forward`, V);

  // prefill both, decode one more token for both in one batch, then continue both by a few tokens
  // at once (attention over the cached keys and new ones, the SSD from the carried state)
  const run = (m: Model) => {
    const { states, logits } = m.prefill([a, b]);
    return [...logits, m.decode([a[0]!, b[0]!], states), m.step([a.slice(2, 6), b.slice(1, 3)], states)];
  };
  const [want, got] = [run(cpu), run(wasm)];
  want.forEach((w, i) => expectLogitsClose(got[i]!, w, 1e-5, `${what}: prefill/decode batch, output ${i}`, V));

  const s = wasm.newSequence();
  const stepped = new Float32Array(a.length * V);
  a.forEach((id, t) => stepped.set(wasm.decode([id], [s]), t * V));
  expectLogitsClose(stepped, rows(ref, V, 0, a.length), 1e-5, `${what}: wasm step by step vs cpu forward`, V);
  cpu.dispose();
  wasm.dispose();
}

describe('the wasm backend = the CPU engine', () => {
  it('bamba, f32 weights', async () => compare(await bamba('f32', 'picked'), 'bamba f32'));
  it('bamba, bf16 weights', async () => compare(await bamba('bf16', 'picked'), 'bamba bf16'));
  it('bamba, f32 and bf16 weights, plain SIMD module', async () => {
    compare(await bamba('f32', 'plain'), 'bamba f32 plain');
    compare(await bamba('bf16', 'plain'), 'bamba bf16 plain');
  });
  for (const name of Object.keys(OTHERS)) it(name, async () => compare(await other(name), name));
  // the one-token SSD step and attention run in f32 (the reference rounds from double): over a long
  // context of the trained model, token by token, they stay within the bound
  it('the trained tiny-bamba-a, 600 tokens of its eval text one at a time', async () => {
    const dir = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
    const program = programFor(dir);
    const ids = [...readFileSync(join(dir, '..', 'eval-A.txt')).subarray(0, 600)];
    const cpu = await Model.loadProgram(program, dir, { backend: 'cpu', capacity: 640 });
    const wasm = await Model.loadProgram(program, dir, { backend: 'wasm', threads: 2, capacity: 640, wasmKernels: kernels, wasmProgram: await wasmProgram(program) });
    const ref = cpu.forward({ ids }).logits;
    const { states, logits } = wasm.prefill([ids.slice(0, 1)]);
    const stepped = [logits[0]!];
    for (let t = 1; t < ids.length; t++) stepped.push(wasm.decode([ids[t]!], states));
    const V = program.outputs.logits!;
    const got = new Float32Array(ids.length * V);
    stepped.forEach((l, t) => got.set(l.subarray(0, V), t * V));
    expectLogitsClose(got, ref, 1e-5, 'tiny-bamba-a wasm step by step vs cpu forward', V);
    cpu.dispose();
    wasm.dispose();
  });
});
