// The q8/q4 parts of the WGSL renderer besides the weight readers (shader.ts `quantReader`): which
// weights a load may quantise, and the pass that rounds a product's input rows to 8 bits per group
// of 32 along K for LoadOptions.activations 'q8' (runtime/act-quant.ts), bit for bit the definition.

import type { Program } from '../../runtime/program.ts';
import { ACT_ZERO_BITS } from '../../runtime/act-quant.ts';
import { QUANT_GROUP, shapeReason } from '../../runtime/quant.ts';
import { quantCandidates } from '../../runtime/quantplan.ts';
import type { Shader } from './shader.ts';

/**
 * `act_round(r, k0)`: the group of 32 at k0 of row r, read by `xin(r, k)` and written by
 * `xput(r, k, v)` (in place too: each value is read before it is written). m's f32 bits (|x| as bits: for
 * finite values their order is the floats') pick s = 2^e, the least power of two with m <= 127·s:
 * e = m's exponent, rounded up past 127/64 of its binade, less 6; then q = round(x · 2^-e), ties to
 * even (WGSL `round`), through i32 so that -0 comes out +0, and x reads as q · s. Every step is
 * exact (powers of two, |q| <= 127); a device that flushes subnormals gives the same: a subnormal
 * maximum makes a zero group either way (below 2^-96), and a subnormal x · 2^-e rounds to 0. A
 * group holding a NaN or an infinity (bits at or above 0x7f800000) is copied unchanged.
 */
export const ACT_ROUND_FN = `fn act_round(r: u32, k0: u32) {
  var mb = 0u;
  for (var i = 0u; i < ${QUANT_GROUP}u; i++) { mb = max(mb, bitcast<u32>(xin(r, k0 + i)) & 0x7fffffffu); }
  if (mb >= 0x7f800000u) { for (var i = 0u; i < ${QUANT_GROUP}u; i++) { xput(r, k0 + i, xin(r, k0 + i)); } return; }
  if (mb < ${ACT_ZERO_BITS}u) { for (var i = 0u; i < ${QUANT_GROUP}u; i++) { xput(r, k0 + i, 0.0); } return; }
  let eb = ((mb + 0x1ffffu) >> 23u) - 6u;
  let inv = bitcast<f32>((254u - eb) << 23u);
  let s = bitcast<f32>(eb << 23u);
  for (var i = 0u; i < ${QUANT_GROUP}u; i++) { xput(r, k0 + i, f32(i32(round(xin(r, k0 + i) * inv))) * s); }
}`;

/** The helpers of the rounding pass over [rows, K] into scratch0, `x(r, k)` reading the product's
 *  input (its view; null: scratch0, where a prologue wrote it, rounded in place); returns the body of
 *  the pass, ELEMENTS over rows x K/32. */
export function roundHelpers(s: Shader, x: ((r: string, k: string) => string) | null, K: number): string {
  const buf = s.scratch(0);
  s.raw('xin', `fn xin(r: u32, k: u32) -> f32 { return ${x ? x('r', 'k') : s.load(buf, `r * ${K}u + k`)}; }`);
  s.raw('xput', `fn xput(r: u32, k: u32, v: f32) { ${s.store(buf, `r * ${K}u + k`, 'v')}; }`);
  s.raw('act_round', ACT_ROUND_FN);
  return `act_round(r, j * ${QUANT_GROUP}u);`;
}

/** The weights a load may quantise (runtime/quantplan.ts): checkpoint candidates of a group
 *  format's shape, and concatenations of such (merged q/k/v, gate/up). */
export function quantWeights(program: Program): Set<string> {
  const fits = (shape: readonly number[]) => shapeReason(shape) === null;
  const cands = quantCandidates(program);
  const out = new Set<string>();
  for (const w of program.weights) if (fits(w.shape) && cands.has(w.name)) out.add(w.name);
  for (const d of program.derived) if (d.from.kind === 'concat' && fits(d.shape) && d.from.parts.every((p) => out.has(p))) out.add(d.name);
  return out;
}
