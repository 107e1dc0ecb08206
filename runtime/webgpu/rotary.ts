// The run's rotary table: cos and sin of every token's rotary angles, made on the host and put in the
// integer buffer (as f32 bits) for the shaders to read. A device's sin/cos are approximate (Vulkan
// allows an absolute error of 2^-11 inside [-π, π] and says nothing outside; SwiftShader's is ~2e-4
// near 0 and ~3e-3 at 3·10^4 rad, and a position of 4000 makes angles of 4000 rad), so the shaders
// take no sin/cos: they read the reference's values (runtime/cpu/attention.ts `rope`), rounded to f32.

import { type Program, isBackward } from '../program.ts';

/** One (rotary dim, theta) pair a program rotates by; the table holds one block per pair. */
export interface RotaryTable {
  readonly rotaryDim: number;
  readonly theta: number;
}

/** The pairs of every rope kernel and rope epilogue stage of `program`, each once, in the order of
 *  the entries and their kernels (the order of the blocks in a token's row of the table). */
export function rotaryTables(program: Program): RotaryTable[] {
  const out: RotaryTable[] = [];
  const add = (rotaryDim: number, theta: number) => {
    if (rotaryDim > 0 && !out.some((t) => t.rotaryDim === rotaryDim && t.theta === theta)) out.push({ rotaryDim, theta });
  };
  for (const entry of Object.values(program.entries)) {
    for (const k of entry.kernels) {
      if (k.family === 'rope') add(k.sizes.R, k.attrs.theta as number);
      for (const st of k.epilogue ?? []) if (st.kind === 'rope') add(st.rotaryDim, st.theta);
    }
  }
  // a train entry's rotations (its rope_backward reads the forward's cos and sin)
  for (const k of program.train?.kernels ?? []) {
    if (k.family === 'rope' || k.family === 'rope_backward') add(k.sizes.R, k.attrs.theta as number);
    if (!isBackward(k)) for (const st of k.epilogue ?? []) if (st.kind === 'rope') add(st.rotaryDim, st.theta);
  }
  return out;
}

/** Words of one token's row of the table: per pair, rotaryDim/2 cosines then rotaryDim/2 sines. */
export function rotaryWords(tables: readonly RotaryTable[]): number {
  return tables.reduce((n, t) => n + t.rotaryDim, 0);
}

/** Where pair (rotaryDim, theta)'s block starts in a token's row. */
export function rotaryOffset(tables: readonly RotaryTable[], rotaryDim: number, theta: number): number {
  const i = tables.findIndex((t) => t.rotaryDim === rotaryDim && t.theta === theta);
  if (i < 0) throw new Error(`archc runtime: no rotary table for rotary dim ${rotaryDim}, theta ${theta}`);
  return rotaryWords(tables.slice(0, i));
}

/**
 * Writes the table for `positions` into the last words of `words` (a row of rotaryWords words per
 * position) and returns the word where it starts. Row t, pair block b: cos_i at b + i and sin_i at
 * b + rotaryDim/2 + i, as f32 bits. The reference's values: inverse frequencies 1 / theta^(2i/r)
 * with HF's f32 roundings, the angle f32(position · inv_i), cos and sin of it in double, rounded to f32.
 */
export function fillRotary(words: Uint32Array, tables: readonly RotaryTable[], positions: ArrayLike<number>): number {
  const f = new Float32Array(words.buffer, words.byteOffset, words.length);
  const W = rotaryWords(tables);
  const at = words.length - positions.length * W;
  let block = 0;
  for (const { rotaryDim, theta } of tables) {
    const half = rotaryDim / 2;
    for (let i = 0; i < half; i++) {
      const inv = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / rotaryDim)));
      for (let t = 0; t < positions.length; t++) {
        const angle = Math.fround(positions[t]! * inv);
        f[at + t * W + block + i] = Math.cos(angle);
        f[at + t * W + block + half + i] = Math.sin(angle);
      }
    }
    block += rotaryDim;
  }
  return at;
}
