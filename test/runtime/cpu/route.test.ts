// The routing primitives of a mixture of experts on the CPU backend (one op at a time through its
// record's lowering, test/helpers/kernels.ts) against float64 statements of them on random inputs:
// sigmoid, softmax over the last dim, top-k with indices (ties to the lower index, as torch.topk on
// the CPU; `normalize`), and the grouped expert product against the per-token sum it groups.

import { describe, expect, it } from 'vitest';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { expectClose, F32, prng, uniform } from './check.ts';

const act = (x: Float32Array, ...shape: number[]): OpInput => ({ act: x, shape: ['T', ...shape] });
const ints = (x: number[], k: number): OpInput => ({ act: Float32Array.from(x), shape: ['T', k], dtype: 'i32' });
const weight = (x: Float32Array, ...shape: number[]): OpInput => ({ weight: { dtype: 'f32', shape, data: x } });

/** Float64 top-k: indices of the k largest, largest first, equal values in index order. */
function topk64(row: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, k);
}

describe('routing primitives on the CPU = their float64 statements', () => {
  it('sigmoid: 1 / (1 + e^−x), saturating without NaN', () => {
    const T = 5, x = uniform(prng(1), T * 13, -40, 40);
    const got = runOp('sigmoid', [act(x, 13)], {}, T).outputs[0]!;
    expectClose(got, Float64Array.from(x, (v) => 1 / (1 + Math.exp(-v))), F32, 'sigmoid');
  });

  it('softmax over the last dim of [T, 3, 7], rows far from zero', () => {
    const T = 4, x = uniform(prng(2), T * 21, -30, 30);
    for (let i = 0; i < 7; i++) x[i] = Math.fround(x[i]! + 80); // a large row: the max is subtracted first
    const got = runOp('softmax', [act(x, 3, 7)], {}, T).outputs[0]!;
    const want = new Float64Array(x.length);
    for (let o = 0; o < x.length; o += 7) {
      const e = Array.from(x.subarray(o, o + 7), (v) => Math.exp(v - Math.max(...x.subarray(o, o + 7))));
      const s = e.reduce((a, b) => a + b, 0);
      e.forEach((v, i) => { want[o + i] = v / s; });
    }
    expectClose(got, want, F32, 'softmax');
  });

  for (const [k, normalize] of [[1, false], [2, false], [3, true], [8, true]] as const) {
    it(`topk k=${k}${normalize ? ', normalised' : ''} of [T, 8], ties to the lower index`, () => {
      const T = 6, x = uniform(prng(3 + k), T * 8, 0.01, 1);
      x.set([0.5, 0.5, 0.5, 0.25, 0.5, 0.1, 0.1, 0.5], 0); // ties, as torch.topk breaks them on the CPU
      x.set([0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3], 8);
      const [values, indices] = runOp('topk', [act(x, 8)], { k, normalize }, T).outputs;
      for (let t = 0; t < T; t++) {
        const row = x.subarray(t * 8, (t + 1) * 8);
        const want = topk64(row, k);
        expect(Array.from(indices!.subarray(t * k, (t + 1) * k)), `indices of row ${t}`).toEqual(want);
        const sum = want.reduce((a, i) => a + row[i]!, 0);
        expectClose(values!.subarray(t * k, (t + 1) * k), want.map((i) => (normalize ? row[i]! / sum : row[i]!)), F32, `values of row ${t}`);
      }
    });
  }

  for (const [E, K, H, I, T] of [[4, 1, 8, 6, 7], [8, 2, 12, 10, 9], [6, 2, 16, 4, 1]] as const) {
    it(`experts E=${E} k=${K} H=${H} I=${I} over ${T} rows = Σ_j gate · down(silu(gate_e x) · up_e x)`, () => {
      const r = prng(100 + E * K + T);
      const x = uniform(r, T * H), wIn = uniform(r, E * 2 * I * H, -0.5, 0.5), wOut = uniform(r, E * H * I, -0.5, 0.5);
      // each token's k distinct experts, some experts chosen by no token
      const idx = Array.from({ length: T }, () => topk64(uniform(r, E).map((v, e) => (e === E - 1 ? -1 : v)), K)).flat();
      const gates = uniform(r, T * K, 0.1, 1);
      const got = runOp('experts', [act(x, H), ints(idx, K), act(gates, K), weight(wIn, E, 2 * I, H), weight(wOut, E, H, I)], {}, T).outputs[0]!;
      const want = new Float64Array(T * H);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < K; j++) {
          const e = idx[t * K + j]!;
          const h = Array.from({ length: I }, (_, i) => {
            let g = 0, u = 0;
            for (let c = 0; c < H; c++) { g += x[t * H + c]! * wIn[(e * 2 * I + i) * H + c]!; u += x[t * H + c]! * wIn[(e * 2 * I + I + i) * H + c]!; }
            return (g / (1 + Math.exp(-g))) * u;
          });
          for (let c = 0; c < H; c++) want[t * H + c] += gates[t * K + j]! * h.reduce((a, v, i) => a + v * wOut[(e * H + c) * I + i]!, 0);
        }
      }
      expectClose(got, want, F32, 'experts');
    });
  }

  it('experts refuses an index outside its experts', () => {
    const H = 4, I = 2, E = 2;
    const run = () => runOp('experts', [act(new Float32Array(H), H), ints([2], 1), act(Float32Array.of(1), 1), weight(new Float32Array(E * 2 * I * H), E, 2 * I, H), weight(new Float32Array(E * H * I), E, H, I)], {}, 1);
    expect(run).toThrow(/routed to expert 2, outside 0..1/);
  });
});
