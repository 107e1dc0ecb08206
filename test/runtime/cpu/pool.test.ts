// The thread pool's products equal the single-threaded kernel bit for bit, for every weight dtype,
// with and without bias, for odd sizes and row counts, and across scratch growth.

import { afterAll, describe, expect, it } from 'vitest';
import { linear } from '../../../runtime/cpu/linear.ts';
import { LinearPool } from '../../../runtime/cpu/pool.ts';
import { fromF32 } from '../../../runtime/tensor.ts';
import { prng, uniform } from './check.ts';

const pool = new LinearPool(3, 0); // two workers, every product split
afterAll(() => pool.close());

describe('LinearPool', () => {
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    it(`splits ${dtype} products across threads with results identical to one thread`, () => {
      const r = prng(dtype.length * 7);
      for (const [T, K, N, withBias] of [[1, 64, 96, true], [5, 33, 17, false], [9, 128, 301, true], [64, 256, 512, false]] as const) {
        const w = fromF32(uniform(r, N * K), [N, K], dtype);
        const b = withBias ? fromF32(uniform(r, N), [N], dtype) : null;
        const x = uniform(r, T * K);
        const want = linear(x, T, K, w, b);
        const got = pool.linear(x, T, K, pool.share(w), b);
        expect(got.length).toBe(T * N);
        const firstDiff = got.findIndex((v, i) => !Object.is(v, want[i]));
        expect(firstDiff, `${dtype} T=${T} K=${K} N=${N}: first difference at ${firstDiff}`).toBe(-1);
      }
    });
  }

  it('runs an unshared weight on the calling thread', () => {
    const r = prng(3);
    const w = fromF32(uniform(r, 8 * 4), [8, 4], 'f32');
    const x = uniform(r, 2 * 4);
    expect(Array.from(pool.linear(x, 2, 4, w, null))).toEqual(Array.from(linear(x, 2, 4, w, null)));
  });
});
