// Shape rules and CPU kernels agree at every rank a rule accepts: an op over the last dim (norms,
// linear, head, elementwise) run on [T, a, b, width] must type-check to the shape it returns and give
// the same values as the same op on the [T·a·b, width] flattening (whose kernels are checked against
// direct formulas in test/runtime/cpu/). QK-norm (rmsnorm on [T, heads, head_dim]) is the case that
// once passed the shape rule and then failed in the kernel.

import { describe, expect, it } from 'vitest';
import { OP_BY_NAME, type Attrs, type TensorType } from '../../compiler/ops.ts';
import { runOp } from '../helpers/kernels.ts';
import { prng, uniform } from './cpu/check.ts';

interface Case {
  readonly op: string;
  /** Shapes after the activation's leading dims: the weights' (and other inputs') shapes. */
  readonly weights: readonly (readonly number[] | 'x' | null)[];
  readonly attrs?: Attrs;
}

const W = 8;
const CASES: Case[] = [
  { op: 'rmsnorm', weights: [[W]], attrs: { eps: 1e-6 } },
  { op: 'rmsnorm_gated', weights: ['x', [W]], attrs: { eps: 1e-6, groups: 2 } },
  { op: 'layernorm', weights: [[W], [W]], attrs: { eps: 1e-5 } },
  { op: 'layernorm', weights: [[W], null], attrs: { eps: 1e-5 } },
  { op: 'linear', weights: [[5, W], [5]], attrs: { transposed: false } },
  { op: 'linear', weights: [[W, 5], [5]], attrs: { transposed: true } },
  { op: 'head', weights: [[11, W]] },
  { op: 'gelu', weights: [], attrs: { tanh: false } },
  { op: 'silu', weights: [] },
  { op: 'relu2', weights: [] },
  { op: 'scale', weights: [], attrs: { by: 1.5 } },
];

const LEADS: number[][] = [[], [3], [3, 2]];

describe('ops over the last dim run at any rank their shape rule accepts', () => {
  for (const c of CASES) {
    it(`${c.op}${c.attrs ? ' ' + JSON.stringify(c.attrs) : ''}`, () => {
      const rand = prng(51);
      const T = 4;
      const weights = c.weights.map((s) => (s === null || s === 'x' ? s : { data: uniform(rand, s.reduce((p, d) => p * d, 1)), dtype: 'f32' as const, shape: s }));
      let flat: Float32Array | undefined;
      for (const lead of LEADS) {
        const rows = T * lead.reduce((p, d) => p * d, 1);
        // the same leading activation values at every rank
        const x = { act: uniform(prng(52), rows * W, -2, 2), shape: ['T', ...lead, W] as const };
        const z = { act: uniform(prng(53), rows * W, -2, 2), shape: ['T', ...lead, W] as const };
        const inputs = [x, ...weights.map((w) => (w === 'x' ? z : w === null ? null : { weight: w }))];
        const { program, outputs: [y] } = runOp(c.op, inputs, c.attrs ?? {}, T);
        const types: (TensorType | null)[] = inputs.map((v) => (v === null ? null : 'act' in v ? { shape: v.shape, dtype: 'f32' } : { shape: v.weight.shape, dtype: 'f32' }));
        const [out] = OP_BY_NAME.get(c.op)!.infer(types, { ...c.attrs });
        expect(program.outputs.y0, 'the kernels write what the shape rule says').toBe((out!.shape.slice(1) as number[]).reduce((p, d) => p * d, 1));
        const width = out!.shape[out!.shape.length - 1] as number;
        expect(out!.shape.slice(0, -1), 'leading dims kept').toEqual(['T', ...lead]);
        expect(y!.length, `${c.op} output length at rank ${lead.length + 2}`).toBe(T * lead.reduce((p, d) => p * d, 1) * width);
        // the values are those of the flattened rows: compare each rank's rows with the first T rows of the next
        if (flat) expect(Array.from(y!.subarray(0, flat.length)), `${c.op} rank ${lead.length + 2} vs flat rows`).toEqual(Array.from(flat));
        flat = y!.slice(0, T * width);
      }
    });
  }
});
