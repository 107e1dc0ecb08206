// The routing families in the wasm program module (codegen/wasm/route.ts) against the CPU backend
// (runtime/cpu/route.ts, itself checked against float64 statements), outputs poisoned first
// (test/helpers/kernels.ts), each case checked to have run as the module's function: softmax
// within 1e-6 relative, top-k exactly (the same indices, ties to the lower index, NaN the largest,
// the same normalised values), gather and scatter exactly (indices outside the rows among them);
// then each with its x read through a pre-expression (materialised into scratch first).

import { describe, expect, it } from 'vitest';
import type { Attrs } from '../../../compiler/ops.ts';
import type { Backend } from '../../../runtime/backend.ts';
import { CpuBackend } from '../../../runtime/cpu/backend.ts';
import type { EntryName, Kernel, Program, View } from '../../../runtime/program.ts';
import type { WasmBackend } from '../../../runtime/wasm/backend.ts';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { useProgramBackends } from '../../helpers/wasm-program.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

const wasmFor = useProgramBackends();

const act = (r: () => number, T: number, shape: readonly number[], lo = -1, hi = 1): OpInput =>
  ({ act: uniform(r, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
/** Rows with many equal values (ties), a NaN, infinities and signed zeros among random ones. */
const awkward = (r: () => number, T: number, n: number): OpInput => {
  const pool = [0.5, 0.25, 0.5, -0, 0, 0.5, Infinity, -Infinity, Number.NaN];
  return { act: Float32Array.from({ length: T * n }, () => (r() < 0.6 ? pool[Math.floor(r() * pool.length)]! : r() * 2 - 1)), shape: ['T', n] };
};

/** T·k indices in [-2, n + 2): some outside the n rows, some repeated. */
const idx = (r: () => number, T: number, k: number, n: number): OpInput =>
  ({ act: Float32Array.from({ length: T * k }, () => Math.floor(r() * (n + 4)) - 2), shape: ['T', k], dtype: 'i32' });

interface Case { op: string; attrs: Attrs; inputs: (T: number, r: () => number) => OpInput[]; Ts: number[]; exact: boolean }

const CASES: Case[] = [
  { op: 'softmax', attrs: {}, inputs: (T, r) => [act(r, T, [8], -20, 20)], Ts: [1, 7], exact: false },
  { op: 'softmax', attrs: {}, inputs: (T, r) => [act(r, T, [3, 13], -50, 50)], Ts: [2, 5], exact: false },
  { op: 'softmax', attrs: {}, inputs: (T, r) => [act(r, T, [64], -5, 5)], Ts: [3], exact: false },
  { op: 'softmax', attrs: {}, inputs: (T, r) => [act(r, T, [1])], Ts: [4], exact: false },
  // rows with NaN (all NaN), +inf (NaN: inf − inf), −inf (0) and signed zeros, as the reference
  { op: 'softmax', attrs: {}, inputs: (T, r) => [awkward(r, T, 9)], Ts: [12], exact: false },
  { op: 'topk', attrs: { k: 2, normalize: false }, inputs: (T, r) => [act(r, T, [8])], Ts: [1, 9], exact: true },
  { op: 'topk', attrs: { k: 3, normalize: true }, inputs: (T, r) => [act(r, T, [40], 0.01, 1)], Ts: [2, 6], exact: true },
  { op: 'topk', attrs: { k: 4, normalize: false }, inputs: (T, r) => [awkward(r, T, 9)], Ts: [12], exact: true },
  { op: 'topk', attrs: { k: 9, normalize: false }, inputs: (T, r) => [awkward(r, T, 9)], Ts: [5], exact: true },
  { op: 'topk', attrs: { k: 1, normalize: true }, inputs: (T, r) => [act(r, T, [5], 0.1, 1)], Ts: [3], exact: true },
  // rows by index: copies and f32 sums in index order, so exactly the reference's
  { op: 'gather', attrs: {}, inputs: (T, r) => [act(r, T, [6, 8]), idx(r, T, 3, 6)], Ts: [1, 9], exact: true },
  { op: 'gather', attrs: {}, inputs: (T, r) => [act(r, T, [5, 3, 3]), idx(r, T, 7, 5)], Ts: [4], exact: true },
  { op: 'gather', attrs: {}, inputs: (T, r) => [act(r, T, [8]), idx(r, T, 2, 8)], Ts: [5], exact: true },
  { op: 'scatter', attrs: { rows: 6 }, inputs: (T, r) => [act(r, T, [4, 8]), idx(r, T, 4, 6)], Ts: [1, 9], exact: true },
  { op: 'scatter', attrs: { rows: 3 }, inputs: (T, r) => [act(r, T, [5, 7]), idx(r, T, 5, 3)], Ts: [6], exact: true },
  { op: 'scatter', attrs: { rows: 8 }, inputs: (T, r) => [act(r, T, [2]), idx(r, T, 2, 8)], Ts: [3], exact: true },
];

describe('routing kernels: the wasm program module = the CPU backend', () => {
  CASES.forEach((c, n) => {
    it(`${c.op} ${JSON.stringify(c.attrs)} ${c.inputs(1, prng(0)).map((i) => (i && 'act' in i ? `[${i.shape}]` : '-')).join(' ')}`, () => {
      for (const mode of ['forward', 'decode'] as EntryName[]) {
        for (const T of c.Ts) {
          const inputs = c.inputs(T, prng(300 + 31 * n + T));
          const cpu = runOp(c.op, inputs, c.attrs, T, { mode });
          let backend: WasmBackend | undefined;
          const got = runOp(c.op, inputs, c.attrs, T, { mode, backend: (p) => (backend = wasmFor(p)) });
          const ks = got.program.entries[mode].kernels.filter((k) => k.family === c.op);
          expect(ks.length, 'the op lowers to its family').toBeGreaterThan(0);
          for (const k of ks) expect(backend!.renders(k), `${k.name} runs as the module's function`).toBe(true);
          expect(backend!.fallbacks.filter((f) => f.family === c.op), 'none falls back').toEqual([]);
          cpu.outputs.forEach((want, i) => {
            if (c.exact) expect(Array.from(got.outputs[i]!), `${c.op} ${mode} T=${T} output ${i}`).toEqual(Array.from(want));
            else expectClose(got.outputs[i]!, want, { atol: 1e-30, rtol: 1e-6 }, `${c.op} ${mode} T=${T} output ${i}`);
          });
        }
      }
    });
  });
});

describe('an operand read through its pre-expression (the prologue rule\'s sigmoid), into scratch first, within the expressions\' 2e-6', () => {
  for (const [op, attrs, inputs, family] of [
    ['topk', { k: 3, normalize: true }, [act(prng(71), 6, [10], -6, 6)], 'topk'],
    ['softmax', {}, [act(prng(72), 6, [2, 9], -6, 6)], 'softmax'],
    ['gather', {}, [act(prng(73), 6, [5, 4], -6, 6), idx(prng(74), 6, 3, 5)], 'gather'],
    ['scatter', { rows: 4 }, [act(prng(75), 6, [3, 4], -6, 6), idx(prng(76), 6, 3, 4)], 'scatter'],
  ] as const) {
    it(`${op}: sigmoid(x) as x is read = the CPU backend's`, () => {
      const base = runOp(op, [...inputs], attrs, 6).program;
      const k = base.entries.forward.kernels.find((x) => x.family === family)!;
      const withPre: Kernel = { ...k, pre: { x: { op: 'sigmoid', a: { op: 'x', offset: 0 } } } };
      const entry = { ...base.entries.forward, kernels: [withPre] };
      const program: Program = { ...base, entries: { forward: entry, prefill: entry, decode: entry } };
      const outputs = (b: Backend) => {
        const pool = b.createStatePool(4);
        const inv = b.begin(entry, { tokens: new Int32Array(6), positions: new Int32Array(6), seqs: [{ start: 0, len: 6 }], slots: [pool.acquire()], lengths: [0] }, pool);
        ['x', 'idx'].forEach((n, i) => { const v = withPre.inputs[n]; if (v) inv.write(v as View, (inputs[i] as { act: Float32Array }).act); });
        for (const y of Object.values(withPre.outputs)) inv.write(y, new Float32Array(inv.read(y).length).fill(Number.NaN));
        inv.dispatch(withPre);
        return Object.values(withPre.outputs).map((y) => inv.read(y));
      };
      const wasm = wasmFor(program);
      expect(wasm.renders(withPre), 'runs as the module\'s function').toBe(true);
      const cpu = new CpuBackend(program), want = outputs(cpu), got = outputs(wasm);
      cpu.dispose();
      // the module's sigmoid (f32x4, within a few ulps of the reference's: test/runtime/wasm/program.test.ts' 2e-6)
      want.forEach((w, i) => expectClose(got[i]!, w, { atol: 2e-6, rtol: 2e-6 }, `${op} output ${i}`));
      if (op === 'topk') expect(Array.from(got[1]!), 'the same picks').toEqual(Array.from(want[1]!));
      expect(Array.from(want[0]!).some((v, i) => v !== runOp(op, [...inputs], attrs, 6).outputs[0]![i]), 'the pre-expression changes the result').toBe(true);
    });
  }
});
