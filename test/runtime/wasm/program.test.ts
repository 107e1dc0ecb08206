// The wasm program module (codegen/wasm/program.ts) against the CPU reference backend: every
// family it renders, one op at a time on random inputs at several shapes with the outputs poisoned
// first (test/helpers/kernels.ts), each case checked to have run as the module's function; then the
// fused kernels of whole tiny programs (norm prologues, gathered heads, maps, RoPE and the one-token
// conv in epilogues), kernel by kernel, each fed the CPU's inputs; and the module text as a golden file.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleWith, loadWabt, wasmKernels } from '../../../codegen/wasm/assemble.ts';
import { renderWasmProgram } from '../../../codegen/wasm/program.ts';
import { compileFile } from '../../../compiler/compile.ts';
import { initWeights } from '../../../compiler/init.ts';
import { lowerToProgram } from '../../../compiler/lower.ts';
import type { Attrs } from '../../../compiler/ops.ts';
import type { Backend } from '../../../runtime/backend.ts';
import { CpuBackend } from '../../../runtime/cpu/backend.ts';
import { type EntryName, type Program, slotLayout } from '../../../runtime/program.ts';
import { createRng } from '../../../runtime/rng.ts';
import type { DType, Tensor } from '../../../runtime/tensor.ts';
import { bf16ToF32, f32ToBf16, roundBf16 } from '../../../runtime/tensor.ts';
import { WasmBackend } from '../../../runtime/wasm/backend.ts';
import { STATE_READ_TAIL } from '../../../runtime/wasm/layout.ts';
import { Heap, WasmStatePool } from '../../../runtime/wasm/program.ts';
import { ROOT, compileTiny } from '../../helpers/checkpoints.ts';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

let kernels: WebAssembly.Module;
let wabt: Awaited<ReturnType<typeof loadWabt>>;
const made: Backend[] = [];
beforeAll(async () => {
  kernels = new WebAssembly.Module(await wasmKernels() as Uint8Array<ArrayBuffer>);
  wabt = await loadWabt();
});
afterAll(() => { for (const b of made) b.dispose(); });

/** The wasm backend with the program's own module (rendered and assembled here). */
function wasmFor(p: Program, threads = 1): WasmBackend {
  const own = new WebAssembly.Module(assembleWith(wabt, renderWasmProgram(p), 'test-program.wat') as Uint8Array<ArrayBuffer>);
  const b = new WasmBackend(p, kernels, threads, own);
  made.push(b);
  return b;
}

const act = (rand: () => number, T: number, shape: readonly number[], lo = -1, hi = 1): OpInput =>
  ({ act: uniform(rand, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
const weight = (rand: () => number, shape: readonly number[], lo = -1, hi = 1, dtype: DType = 'f32'): OpInput => {
  const v = uniform(rand, shape.reduce((a, b) => a * b, 1), lo, hi);
  return { weight: dtype === 'f32' ? { dtype, shape, data: v } : { dtype, shape, data: Uint16Array.from(v, f32ToBf16) } };
};

interface Case { op: string; attrs?: Attrs; inputs: (T: number, r: () => number) => OpInput[]; Ts: number[]; modes?: EntryName[]; families: string[] }

/** Expressions in f32 with module helpers accurate to a few ulps; sums in double as the reference. */
const TOL = { atol: 2e-6, rtol: 2e-6 };

const CASES: Case[] = [
  { op: 'rmsnorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [3, 24], -3, 3), weight(r, [24])], Ts: [1, 7], families: ['norm'] },
  { op: 'rmsnorm', attrs: { eps: 1e-6 }, inputs: (T, r) => [act(r, T, [37]), weight(r, [37], -1, 1, 'bf16')], Ts: [2, 5], families: ['norm'] },
  { op: 'rmsnorm_gated', attrs: { eps: 1e-5, groups: 2 }, inputs: (T, r) => [act(r, T, [40]), act(r, T, [40], -4, 4), weight(r, [40])], Ts: [1, 9], families: ['norm'] },
  { op: 'rmsnorm_gated', attrs: { eps: 1e-5, groups: 1 }, inputs: (T, r) => [act(r, T, [18]), act(r, T, [18], -4, 4), weight(r, [18])], Ts: [3], families: ['norm'] },
  { op: 'layernorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [300], -2, 3), weight(r, [300]), weight(r, [300])], Ts: [1, 4], families: ['norm'] },
  { op: 'layernorm', attrs: { eps: 1e-5 }, inputs: (T, r) => [act(r, T, [2, 13]), weight(r, [13])], Ts: [3], families: ['norm'] },
  { op: 'silu', inputs: (T, r) => [act(r, T, [33], -30, 30)], Ts: [1, 10], families: ['elementwise'] },
  { op: 'softplus', inputs: (T, r) => [act(r, T, [35], -40, 40)], Ts: [3, 8], families: ['elementwise'] },
  { op: 'sigmoid', inputs: (T, r) => [act(r, T, [19], -40, 40)], Ts: [1, 6], families: ['elementwise'] },
  { op: 'scale', attrs: { by: 0.22 }, inputs: (T, r) => [act(r, T, [2, 9])], Ts: [3], families: ['elementwise'] },
  { op: 'exp', inputs: (T, r) => [act(r, T, [21], -80, 80)], Ts: [4], families: ['elementwise'] },
  { op: 'neg', inputs: (T, r) => [act(r, T, [7])], Ts: [2], families: ['elementwise'] },
  { op: 'relu2', inputs: (T, r) => [act(r, T, [19], -5, 5)], Ts: [1, 6], families: ['elementwise'] },
  { op: 'scale', attrs: { by: 0.3 }, inputs: (T, r) => [act(r, T, [13])], Ts: [3], families: ['elementwise'] },
  { op: 'scale', attrs: { by: 2, sizes: [5, 1, 7], factors: [0.5, -1.25, 3] }, inputs: (T, r) => [act(r, T, [13])], Ts: [1, 4], families: ['elementwise'] },
  { op: 'gelu', attrs: { tanh: false }, inputs: (T, r) => [act(r, T, [20], -7, 7)], Ts: [5], families: ['elementwise'] },
  { op: 'gelu', attrs: { tanh: true }, inputs: (T, r) => [act(r, T, [22], -7, 7)], Ts: [5], families: ['elementwise'] },
  { op: 'add', inputs: (T, r) => [act(r, T, [12]), act(r, T, [12])], Ts: [1, 6], families: ['elementwise'] },
  { op: 'mul', inputs: (T, r) => [act(r, T, [12]), weight(r, [12])], Ts: [6], families: ['elementwise'] },
  { op: 'mul', inputs: (T, r) => [act(r, T, [2, 6]), weight(r, [6])], Ts: [3], families: ['elementwise'] },
  { op: 'add', inputs: (T, r) => [act(r, T, [3, 5]), weight(r, [5])], Ts: [4], families: ['elementwise'] },
  { op: 'clamp', attrs: { min: -0.5, max: 0.25 }, inputs: (T, r) => [act(r, T, [13])], Ts: [4], families: ['elementwise'] },
  { op: 'rope', attrs: { rotary_dim: 4, theta: 10000 }, inputs: (T, r) => [act(r, T, [3, 8]), { act: new Float32Array(T), shape: ['T'], dtype: 'i32' }], Ts: [1, 9], families: ['rope'] },
  { op: 'rope', attrs: { rotary_dim: 16, theta: 500000 }, inputs: (T, r) => [act(r, T, [2, 16]), { act: new Float32Array(T), shape: ['T'], dtype: 'i32' }], Ts: [70], families: ['rope'] },
  { op: 'causal_conv1d', inputs: (T, r) => [act(r, T, [10]), weight(r, [10, 1, 4]), weight(r, [10])], Ts: [1, 2, 7], modes: ['forward', 'decode'], families: ['conv', 'conv_step'] },
  { op: 'causal_conv1d', inputs: (T, r) => [act(r, T, [9]), weight(r, [9, 1, 2])], Ts: [1, 5], modes: ['forward', 'decode'], families: ['conv', 'conv_step'] },
  {
    op: 'ssd', attrs: { chunk: 4 }, Ts: [1, 4], modes: ['decode'], families: ['ssd_step'],
    inputs: (T, r) => [act(r, T, [4, 6]), act(r, T, [4], 0.05, 0.8), weight(r, [4], -2, -0.2), act(r, T, [2, 5]), act(r, T, [2, 5]), weight(r, [4])],
  },
  {
    op: 'ssd', attrs: { chunk: 4 }, Ts: [3], modes: ['decode'], families: ['ssd_step'],
    inputs: (T, r) => [act(r, T, [2, 8]), act(r, T, [2], 0.05, 0.8), weight(r, [2], -2, -0.2), act(r, T, [1, 16]), act(r, T, [1, 16]), weight(r, [2])],
  },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [37]), weight(r, [29, 37], -1, 1, 'bf16'), weight(r, [29])], Ts: [1, 3, 21], modes: ['forward', 'decode'], families: ['matmul'] },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r) => [act(r, T, [24]), weight(r, [16, 24])], Ts: [2, 9], families: ['matmul'] },
  // [in, out] matrices (GPT-2's Conv1D), packed transposed
  { op: 'linear', attrs: { transposed: true }, inputs: (T, r) => [act(r, T, [37]), weight(r, [37, 29], -1, 1, 'bf16'), weight(r, [29])], Ts: [1, 3, 21], modes: ['forward', 'decode'], families: ['matmul'] },
  { op: 'linear', attrs: { transposed: true }, inputs: (T, r) => [act(r, T, [24]), weight(r, [24, 16])], Ts: [2, 9], families: ['matmul'] },
];

describe('wasm program kernels = the CPU backend', () => {
  CASES.forEach((c, n) => {
    it(`${c.op} ${JSON.stringify(c.attrs ?? {})} ${c.inputs(1, prng(0)).map((i) => (i && 'act' in i ? `[${i.shape}]` : i ? `w[${i.weight.shape}]` : '-')).join(' ')}`, () => {
      for (const mode of c.modes ?? ['forward']) {
        for (const T of c.Ts) {
          const inputs = c.inputs(T, prng(1000 + 17 * n + T));
          const cpu = runOp(c.op, inputs, c.attrs ?? {}, T, { mode });
          let backend: WasmBackend | undefined;
          const got = runOp(c.op, inputs, c.attrs ?? {}, T, { mode, backend: (p) => (backend = wasmFor(p)) });
          const ks = got.program.entries[mode].kernels.filter((k) => c.families.includes(k.family));
          expect(ks.length, 'the op lowers to a rendered family').toBeGreaterThan(0);
          for (const k of ks) expect(backend!.renders(k), `${k.name} runs as the module's function`).toBe(true);
          cpu.outputs.forEach((ref, i) => expectClose(got.outputs[i]!, ref, TOL, `${c.op} ${mode} T=${T} output ${i}`));
        }
      }
    });
  });
});

describe('chunked SSD over packed sequences = the CPU backend', () => {
  // sequences that end inside a chunk, a one-token sequence, groups shared by heads, states continued
  // from the slots (random, as a cache to continue); the output and the state left in each slot
  const SHAPES = [
    { seqs: [11], H: 4, P: 6, G: 2, N: 5, chunk: 4 },
    { seqs: [5, 2], H: 4, P: 6, G: 2, N: 5, chunk: 4 },
    { seqs: [1, 9, 4], H: 3, P: 5, G: 1, N: 9, chunk: 4 },
    { seqs: [3, 17, 6], H: 2, P: 8, G: 2, N: 7, chunk: 5 },
  ];
  SHAPES.forEach((c, n) => {
    it(`sequences ${c.seqs.join('+')}, H=${c.H} P=${c.P} G=${c.G} N=${c.N} chunk ${c.chunk}`, () => {
      const T = c.seqs.reduce((a, b) => a + b, 0);
      const r = prng(6000 + n);
      const inputs = [act(r, T, [c.H, c.P]), act(r, T, [c.H], 0.05, 0.8), weight(r, [c.H], -2, -0.2), act(r, T, [c.G, c.N]), act(r, T, [c.G, c.N]), weight(r, [c.H])];
      const state = (bytes: number, seq: number) => new Uint8Array(uniform(prng(99 + 31 * seq + n), bytes / 4, -1, 1).buffer);
      const batch = { mode: 'prefill' as const, seqs: c.seqs, state };
      const cpu = runOp('ssd', inputs, { chunk: c.chunk }, T, batch);
      let backend: WasmBackend | undefined;
      const got = runOp('ssd', inputs, { chunk: c.chunk }, T, { ...batch, backend: (p) => (backend = wasmFor(p)) });
      const ks = got.program.entries.prefill.kernels.filter((k) => k.family === 'ssd');
      expect(ks.length, 'the chunked family runs').toBeGreaterThan(0);
      for (const k of ks) expect(backend!.renders(k), `${k.name} runs in the module`).toBe(true);
      expectClose(got.outputs[0]!, cpu.outputs[0]!, TOL, `ssd ${JSON.stringify(c)}`);
      for (const [i, slot] of got.slots.entries()) {
        const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
        expectClose(new Float32Array(got.pool.save(slot).slice().buffer), want, TOL, `ssd ${JSON.stringify(c)} state of sequence ${i}`);
      }
    });
  });
});

describe('SSM states kept in bf16 (runtime/program.ts withSsmState)', () => {
  // the decode step (quads and a tail: N 5, 16) and the chunked SSD over packed sequences (sequences
  // ending inside a chunk, groups shared by heads), from random bf16 states in the slots. On each
  // backend, against the same run over f32 states holding the same values: the same outputs bit for
  // bit (a call computes in f32 either way), and the states left are the f32 run's rounded to
  // bf16 (runtime/tensor.ts roundBf16). wasm against the CPU backend: the outputs as ever,
  // the states to a bf16 ulp (the CPU rounds its f64 sums' f32 values, wasm its f32 sums).
  const SHAPES = [
    { mode: 'decode' as const, seqs: [1, 1, 1], H: 4, P: 6, G: 2, N: 5, chunk: 4 },
    { mode: 'decode' as const, seqs: [1, 1], H: 2, P: 8, G: 1, N: 16, chunk: 4 },
    { mode: 'prefill' as const, seqs: [5, 2], H: 4, P: 6, G: 2, N: 5, chunk: 4 },
    { mode: 'prefill' as const, seqs: [1, 9, 4], H: 3, P: 5, G: 1, N: 9, chunk: 4 },
  ];
  const BF16 = { atol: 1e-6, rtol: 2 ** -7 };
  SHAPES.forEach((c, n) => {
    it(`${c.mode} sequences ${c.seqs.join('+')}, H=${c.H} P=${c.P} G=${c.G} N=${c.N}`, () => {
      const T = c.seqs.reduce((a, b) => a + b, 0), entries = c.H * c.P * c.N;
      const r = prng(8000 + n);
      const inputs = [act(r, T, [c.H, c.P]), act(r, T, [c.H], 0.05, 0.8), weight(r, [c.H], -2, -0.2), act(r, T, [c.G, c.N]), act(r, T, [c.G, c.N]), weight(r, [c.H])];
      const bits = (seq: number) => Uint16Array.from(uniform(prng(88 + 31 * seq + n), entries, -1, 1), f32ToBf16);
      const slot = (bytes: number, values: Uint16Array | Float32Array) => {
        const out = new Uint8Array(bytes);
        out.set(new Uint8Array(values.buffer));
        return out;
      };
      const base = { mode: c.mode, seqs: c.seqs };
      const f32 = { ...base, state: (bytes: number, seq: number) => slot(bytes, Float32Array.from(bits(seq), bf16ToF32)) };
      const bf16 = { ...base, state: (bytes: number, seq: number) => slot(bytes, bits(seq)), stateDtype: 'bf16' as const };
      const runs = { cpu: (p: Program): Backend => new CpuBackend(p), wasm: (p: Program): Backend => wasmFor(p) };
      const got: Record<string, { y: Float32Array; states: Uint16Array[] }> = {};
      for (const [name, make] of Object.entries(runs)) {
        let backend: Backend | undefined;
        const wide = runOp('ssd', inputs, { chunk: c.chunk }, T, { ...f32, backend: make });
        const half = runOp('ssd', inputs, { chunk: c.chunk }, T, { ...bf16, backend: (p) => (backend = make(p)) });
        if (name === 'wasm') {
          const family = c.mode === 'decode' ? 'ssd_step' : 'ssd';
          const ks = half.program.entries[c.mode].kernels.filter((k) => k.family === family);
          expect(ks.length, `the ${family} family runs`).toBeGreaterThan(0);
          for (const k of ks) expect((backend as WasmBackend).renders(k), `${k.name} runs in the module`).toBe(true);
        }
        // a slot holds the state in bf16: two bytes an entry, to whole 16 bytes
        expect(half.pool.slotBytes, name).toBe(16 * Math.ceil(entries / 8));
        expect(half.outputs[0], `${name}: the outputs over bf16 states`).toEqual(wide.outputs[0]);
        const states = half.slots.map((s) => new Uint16Array(half.pool.save(s).slice().buffer, 0, entries));
        wide.slots.forEach((s, i) => {
          const want = new Uint16Array(entries);
          roundBf16(new Uint32Array(wide.pool.save(s).slice().buffer, 0, entries), want);
          expect(states[i], `${name}: the state of sequence ${i} is the f32 run's, rounded`).toEqual(want);
        });
        got[name] = { y: half.outputs[0]!, states };
      }
      expectClose(got.wasm!.y, got.cpu!.y, TOL, `ssd ${JSON.stringify(c)}`);
      got.wasm!.states.forEach((st, i) => expectClose(Float32Array.from(st, bf16ToF32), Float32Array.from(got.cpu!.states[i]!, bf16ToF32), BF16, `ssd ${JSON.stringify(c)} state of sequence ${i}`));
    });
  });
});

describe('attention over packed sequences with cached tokens = the CPU backend', () => {
  // GQA (4 heads over 2 kv heads), head dim 64 and an odd one; prefill: ragged sequences, one past
  // a block of query rows; decode: one token per sequence; each sequence with tokens cached before
  // (random cache rows); the output and each slot (the cache with the new rows appended). Decode's
  // f32x4 head takes keys four at a time and y's columns 32 at a time: 1-9 keys (4 and 8 whole
  // fours, the rest a tail), head dims 80 (32 + 32 + 16 columns) and 128 (Bamba-9B's)
  const SHAPES = [
    { mode: 'prefill' as const, seqs: [5, 1, 9], before: [3, 0, 7], H: 4, KV: 2, Dh: 64 },
    { mode: 'prefill' as const, seqs: [70, 2], before: [1, 4], H: 2, KV: 1, Dh: 12 },
    { mode: 'decode' as const, seqs: [1, 1, 1], before: [3, 0, 11], H: 4, KV: 2, Dh: 64 },
    { mode: 'decode' as const, seqs: [1, 1], before: [5, 2], H: 3, KV: 3, Dh: 5 },
    { mode: 'decode' as const, seqs: [1, 1, 1, 1, 1], before: [0, 3, 5, 7, 8], H: 6, KV: 2, Dh: 80 },
    { mode: 'decode' as const, seqs: [1, 1], before: [6, 13], H: 4, KV: 1, Dh: 128 },
  ];
  SHAPES.forEach((c, n) => {
    it(`${c.mode} sequences ${c.seqs.join('+')} after ${c.before.join('+')}, H=${c.H} KV=${c.KV} Dh=${c.Dh}`, () => {
      const T = c.seqs.reduce((a, b) => a + b, 0);
      const r = prng(7000 + n);
      const inputs = [act(r, T, [c.H, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh])];
      const attrs = { scale: 1 / Math.sqrt(c.Dh) };
      const state = (bytes: number, seq: number) => new Uint8Array(uniform(prng(77 + 31 * seq + n), bytes / 4, -1, 1).buffer);
      const batch = { mode: c.mode, seqs: c.seqs, before: c.before, state };
      const cpu = runOp('attention', inputs, attrs, T, batch);
      let backend: WasmBackend | undefined;
      const got = runOp('attention', inputs, attrs, T, { ...batch, backend: (p) => (backend = wasmFor(p)) });
      const family = c.mode === 'decode' ? 'attention_decode' : 'attention';
      const ks = got.program.entries[c.mode].kernels.filter((k) => k.family === family);
      expect(ks.length, `the ${family} family runs`).toBeGreaterThan(0);
      for (const k of ks) expect(backend!.renders(k), `${k.name} runs in the module`).toBe(true);
      expectClose(got.outputs[0]!, cpu.outputs[0]!, TOL, `attention ${JSON.stringify(c)}`);
      for (const [i, slot] of got.slots.entries()) {
        const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
        expectClose(new Float32Array(got.pool.save(slot).slice().buffer), want, TOL, `attention ${JSON.stringify(c)} cache of sequence ${i}`);
      }
    });
  });
});

/** A tiny model's program and random checkpoint tensors. */
function model(name: string, set: string[]): { program: Program; tensors: Map<string, Tensor> } {
  const c = compileFile(join(ROOT, 'models', `${name}.arch`), { set });
  const tensors = new Map(initWeights(c.graph, createRng(5)).map((t) => [t.name, t.tensor] as const));
  return { program: lowerToProgram(c.graph, c.bindings), tensors };
}

const MODELS: Record<string, string[]> = {
  bamba: ['vocab=64', 'd_model=32', 'n_layers=2', 'attn_layers=[1]', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=4', 'd_state=8', 'd_ff=40', 'chunk=4', 'dtype=f32'],
  mamba2: ['vocab=64', 'd_model=32', 'n_layers=2', 'head_dim=8', 'n_groups=2', 'd_state=8', 'chunk=3', 'dtype=f32'],
  gpt2: ['vocab=64', 'd_model=32', 'n_layers=2', 'n_heads=4', 'context=32', 'dtype=f32'],
  qwen3: ['vocab=64', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'head_dim=16', 'd_ff=48', 'dtype=f32'],
};

const RENDERED = new Set(['embedding', 'matmul', 'norm', 'elementwise', 'rope', 'conv', 'conv_step', 'ssd', 'ssd_step', 'attention', 'attention_decode']);

describe('fused kernels of whole programs, kernel by kernel', () => {
  for (const [name, set] of Object.entries(MODELS)) {
    it(name, () => {
      const { program, tensors } = model(name, set);
      const cpu = new CpuBackend(program);
      const wasm = wasmFor(program, 2);
      for (const w of program.weights) for (const b of [cpu, wasm]) b.uploadWeight(w, tensors.get(w.name)!);
      const pools = [cpu.createStatePool(16), wasm.createStatePool(16)];
      const slots = pools.map((p) => [p.acquire(), p.acquire()]);
      let staged = 0;
      const missed: string[] = [];
      const lens = [0, 0];
      for (const [entry, lengths] of [['prefill', [5, 3]], ['decode', [1, 1]], ['forward', [4, 6]]] as const) {
        const seqs = [{ start: 0, len: lengths[0] }, { start: lengths[0], len: lengths[1] }];
        const T = lengths[0] + lengths[1];
        const positions = Int32Array.from({ length: T }, (_, t) => (t < lengths[0] ? lens[0]! + t : lens[1]! + t - lengths[0]));
        const tokens = Int32Array.from({ length: T }, (_, t) => (t * 7 + 3) % 64);
        const fresh = entry === 'forward';
        const ss = fresh ? pools.map((p) => [p.acquire(), p.acquire()]) : slots;
        const runs = [cpu, wasm].map((b, i) => b.begin(program.entries[entry], { tokens, positions, seqs, slots: ss[i]!, lengths: fresh ? [0, 0] : lens }, pools[i]!));
        for (const k of program.entries[entry].kernels) {
          for (const y of Object.values(k.outputs)) runs[1]!.write(y, new Float32Array(runs[1]!.read(y).length).fill(NaN));
          runs.forEach((r) => r.dispatch(k));
          // every kernel of a rendered family runs as the module's function (GPT-2's [in, out]
          // products too, their matrices packed transposed)
          if (RENDERED.has(k.family) && !wasm.renders(k)) missed.push(`${entry} ${k.name}`);
          if (wasm.renders(k) && (k.prologue?.length || k.epilogue?.length)) staged++;
          for (const [o, y] of Object.entries(k.outputs)) {
            const ref = runs[0]!.read(y);
            expectClose(runs[1]!.read(y), ref, { atol: 1e-5, rtol: 1e-5 }, `${name} ${entry} ${k.name} output ${o}`);
            runs[1]!.write(y, ref); // the next kernel reads exactly what the CPU's reads
          }
        }
        if (!fresh) { lens[0] += lengths[0]; lens[1] += lengths[1]; }
      }
      expect(missed, 'kernels left to the reference families').toEqual([]);
      expect(staged, 'fused kernels among them').toBeGreaterThan(name === 'gpt2' ? 0 : 3);
    });
  }
});

describe('an embedding id outside the table', () => {
  it('is reported as the reference reports it (the module\'s function never reads past the table)', () => {
    const { program, tensors } = model('bamba', MODELS.bamba!);
    const cpu = new CpuBackend(program), wasm = wasmFor(program);
    for (const w of program.weights) for (const b of [cpu, wasm]) b.uploadWeight(w, tensors.get(w.name)!);
    const entry = program.entries.forward;
    const k = entry.kernels.find((x) => x.family === 'embedding')!;
    expect(wasm.renders(k)).toBe(true);
    const error = (b: Backend): string => {
      const pool = b.createStatePool(4);
      const inv = b.begin(entry, { tokens: Int32Array.of(3, k.sizes.V!), positions: Int32Array.of(0, 1), seqs: [{ start: 0, len: 2 }], slots: [pool.acquire()], lengths: [0] }, pool);
      try { inv.dispatch(k); } catch (e) { return (e as Error).message; }
      return 'no error';
    };
    const want = error(cpu);
    expect(want).toMatch(/out of range/);
    expect(error(wasm)).toBe(want);
  });
});

describe('the wasm program module text', () => {
  // a change to the renderer shows its exact effect here; regenerate with
  // `ARCHC_UPDATE_GOLDEN=1 npx vitest run test/runtime/wasm/program.test.ts`
  it('renders tiny Bamba as test/golden/wasm-program-bamba.wat', () => {
    const c = compileTiny();
    const text = renderWasmProgram(lowerToProgram(c.graph, c.bindings));
    const file = join(import.meta.dirname, '..', '..', 'golden', 'wasm-program-bamba.wat');
    if (process.env.ARCHC_UPDATE_GOLDEN || !existsSync(file)) {
      if (process.env.CI) throw new Error(`golden file ${file} is missing`);
      writeFileSync(file, text);
    }
    expect(text).toBe(readFileSync(file, 'utf8'));
  });
});

describe('the module and its program', () => {
  it('a module rendered for another program is refused (RT303)', () => {
    const a = model('mamba2', MODELS.mamba2!).program, b = model('qwen3', MODELS.qwen3!).program;
    const own = new WebAssembly.Module(assembleWith(wabt, renderWasmProgram(a), 'test-program.wat') as Uint8Array<ArrayBuffer>);
    let err: unknown;
    try { made.push(new WasmBackend(b, kernels, 1, own)); } catch (e) { err = e; }
    expect((err as { code?: string }).code).toBe('RT303');
    made.push(new WasmBackend(a, kernels, 1, own)); // its own program loads
  });

  it("each state slot is followed by as much of the memory as the SSD step reads ahead, the memory's last block too", () => {
    const c = compileTiny(), p = lowerToProgram(c.graph, c.bindings);
    // a heap whose every block is the memory's last: the memory grown to just past it, in whole pages
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
    let top = 0;
    const heap = new Heap((bytes) => { const at = top; top += bytes; memory.grow(Math.max(0, Math.ceil(top / 65536) - memory.buffer.byteLength / 65536)); return at; });
    const pool = new WasmStatePool(p, 16, heap, memory), floats = slotLayout(p.states, 16).floats;
    for (let i = 0; i < 3; i++) {
      const s = pool.acquire();
      expect(top - (pool.address(s) + 4 * floats), `slot ${s}`).toBeGreaterThanOrEqual(STATE_READ_TAIL);
    }
    pool.dispose();
  });
});
