// The run's rotary table (runtime/webgpu/rotary.ts), made on the host for the WebGPU shaders: its
// values are the CPU reference's cos/sin exactly (the reference's rope of unit pairs, both rounded
// to f32 from the same doubles), blocks per (rotary dim, theta) pair in a token's row, written at
// the end of the integer buffer and nothing before it.

import { describe, expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { rope } from '../../runtime/cpu/attention.ts';
import { fillRotary, rotaryOffset, rotaryTables, rotaryWords } from '../../runtime/webgpu/rotary.ts';
import { compileTiny } from '../helpers/checkpoints.ts';

describe('the rotary table', () => {
  const tables = [{ rotaryDim: 4, theta: 10000 }, { rotaryDim: 16, theta: 500_000 }];
  const positions = Int32Array.from([0, 1, 2047, 4000, 32_767]);

  it('holds the reference\'s cos and sin of every position, per pair, after the words before it', () => {
    const W = rotaryWords(tables);
    expect(W).toBe(20);
    const words = new Uint32Array(7 + positions.length * W).fill(0xdeadbeef);
    const at = fillRotary(words, tables, positions);
    expect(at).toBe(7);
    expect([...words.subarray(0, at)]).toEqual(Array(at).fill(0xdeadbeef));
    const f = new Float32Array(words.buffer);
    for (const { rotaryDim, theta } of tables) {
      const half = rotaryDim / 2;
      const block = rotaryOffset(tables, rotaryDim, theta);
      // rope of a head whose pairs are (1, 0): out[i] = cos_i, out[i + half] = sin_i
      const unit = new Float32Array(positions.length * rotaryDim).map((_, i) => (i % rotaryDim < half ? 1 : 0));
      const ref = rope(unit, positions.length, 1, rotaryDim, positions, rotaryDim, theta);
      for (let t = 0; t < positions.length; t++) {
        const row = at + t * W + block;
        expect([...f.subarray(row, row + rotaryDim)], `rotary ${rotaryDim}, theta ${theta}, position ${positions[t]}`).toEqual([...ref.subarray(t * rotaryDim, (t + 1) * rotaryDim)]);
      }
    }
    // the large angles are not small: the table is not trivially 1s and 0s
    expect(Math.abs(f[at + 3 * W + 1 + 2]!)).toBeGreaterThan(0.01);
  });

  it('lists each pair a program rotates by once; an unknown pair is an error', () => {
    const c = compileTiny();
    const program = lowerToProgram(c.graph, c.bindings);
    expect(rotaryTables(program)).toEqual([{ rotaryDim: 4, theta: 10000 }]);
    expect(() => rotaryOffset(tables, 8, 10000)).toThrow(/no rotary table for rotary dim 8, theta 10000/);
  });
});
