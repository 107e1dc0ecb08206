// `gather` and `scatter` (compiler/ops-gather.ts) on the CPU backend, one op through its record's
// lowering (test/helpers/kernels.ts), against float64 statements of them on random inputs, with
// indices outside the rows (negative, = rows, far past): gather reads a row of zeros for them,
// scatter skips their rows; repeated indices add up in index order. Then the shape rules' refusals.

import { describe, expect, it } from 'vitest';
import { OP_BY_NAME, OpError } from '../../../compiler/ops.ts';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { expectClose, prng, uniform } from './check.ts';

const act = (x: Float32Array, ...shape: number[]): OpInput => ({ act: x, shape: ['T', ...shape] });
const ints = (x: number[], k: number): OpInput => ({ act: Float32Array.from(x), shape: ['T', k], dtype: 'i32' });
/** T·k indices in [lo, hi), some of them outside [0, n). */
const indices = (r: () => number, count: number, lo: number, hi: number) => Array.from({ length: count }, () => lo + Math.floor(r() * (hi - lo)));

describe('gather and scatter on the CPU = their float64 statements', () => {
  for (const [T, n, k, rest] of [[5, 6, 3, [4]], [3, 4, 7, [2, 3]], [4, 5, 2, []]] as const) {
    it(`gather [T, ${n}, ${rest}] by [T, ${k}], indices in [-2, ${n + 2})`, () => {
      const r = prng(10 + n), D = rest.reduce((a, b) => a * b, 1);
      const x = uniform(r, T * n * D, -1, 1), idx = indices(r, T * k, -2, n + 2);
      expect(idx.some((e) => e < 0 || e >= n) && idx.some((e) => e >= 0 && e < n), 'indices in and out of range').toBe(true);
      const got = runOp('gather', [act(x, n, ...rest), ints(idx, k)], {}, T).outputs[0]!;
      const want = new Float64Array(T * k * D);
      for (let t = 0; t < T; t++) for (let j = 0; j < k; j++) for (let d = 0; d < D; d++) {
        const e = idx[t * k + j]!;
        want[(t * k + j) * D + d] = e >= 0 && e < n ? x[(t * n + e) * D + d]! : 0;
      }
      expectClose(got, want, { atol: 0, rtol: 0 }, 'gather');
    });

    it(`scatter [T, ${k}, ${rest}] into ${n} rows, repeated and outside indices`, () => {
      const r = prng(20 + n), D = rest.reduce((a, b) => a * b, 1);
      const x = uniform(r, T * k * D, -1, 1), idx = indices(r, T * k, -1, n + 1);
      const got = runOp('scatter', [act(x, k, ...rest), ints(idx, k)], { rows: n }, T).outputs[0]!;
      const want = new Float64Array(T * n * D);
      for (let t = 0; t < T; t++) for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) {
        let s = 0;
        for (let j = 0; j < k; j++) if (idx[t * k + j] === i) s = Math.fround(s + x[(t * k + j) * D + d]!);
        want[(t * n + i) * D + d] = s;
      }
      expectClose(got, want, { atol: 0, rtol: 0 }, 'scatter');
    });
  }

  it('scatter after gather by distinct indices puts the rows back (zeros where none was picked)', () => {
    const T = 4, n = 6, D = 3, r = prng(5);
    const x = uniform(r, T * n * D, -1, 1), idx = [0, 2, 5, 1, 3, 4, 5, 0, 2, 3, 1, 4];
    const g = runOp('gather', [act(x, n, D), ints(idx, 3)], {}, T).outputs[0]!;
    const back = runOp('scatter', [act(g, 3, D), ints(idx, 3)], { rows: n }, T).outputs[0]!;
    const want = new Float32Array(T * n * D);
    idx.forEach((e, q) => { const t = Math.floor(q / 3); want.set(x.subarray((t * n + e) * D, (t * n + e + 1) * D), (t * n + e) * D); });
    expectClose(back, want, { atol: 0, rtol: 0 }, 'scatter(gather(x))');
  });
});

describe('gather and scatter shape rules', () => {
  const t = (shape: (number | 'T')[], dtype: 'f32' | 'i32' = 'f32') => ({ shape, dtype });
  const cases: [string, Parameters<typeof OP_BY_NAME.get>[0], ReturnType<typeof t>[], Record<string, number>, RegExp][] = [
    ['x without rows', 'gather', [t(['T']), t(['T', 2], 'i32')], {}, /x must be \[T, rows/],
    ['x without T', 'gather', [t([4, 3]), t(['T', 2], 'i32')], {}, /x must be \[T, rows/],
    ['idx of rank 3', 'gather', [t(['T', 4, 3]), t(['T', 2, 1], 'i32')], {}, /idx must be integers \[T, k\]/],
    ['k rows against other indices', 'scatter', [t(['T', 3, 2]), t(['T', 2], 'i32')], { rows: 4 }, /3 rows per token but idx has 2/],
    ['no rows', 'scatter', [t(['T', 2, 2]), t(['T', 2], 'i32')], { rows: 0 }, /rows 0 must be an integer from 1/],
  ];
  for (const [what, op, types, attrs, msg] of cases) {
    it(`${op}: ${what}`, () => {
      expect(() => OP_BY_NAME.get(op)!.infer(types, attrs)).toThrow(OpError);
      expect(() => OP_BY_NAME.get(op)!.infer(types, attrs)).toThrow(msg);
    });
  }
  it('gather [T, n, a, b] by [T, k] is [T, k, a, b]; scatter [T, k, a] into n rows is [T, n, a]', () => {
    expect(OP_BY_NAME.get('gather')!.infer([t(['T', 5, 2, 3]), t(['T', 4], 'i32')], {})[0]!.shape).toEqual(['T', 4, 2, 3]);
    expect(OP_BY_NAME.get('scatter')!.infer([t(['T', 4, 2]), t(['T', 4], 'i32')], { rows: 9 })[0]!.shape).toEqual(['T', 9, 2]);
  });
});
