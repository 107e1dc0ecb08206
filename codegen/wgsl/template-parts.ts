// Pieces of text the WGSL templates share (not templates themselves: templates.ts exports only those).

/** A compute shader's entry: workgroups of `{{wg}}`, `unit` the workgroup's index in a 2-D grid. */
export const MAIN = `@compute @workgroup_size({{wg}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;`;

/** Two f32 values rounded to bf16 (to nearest, ties away from zero: runtime/tensor.ts roundBf16)
 *  as one word of the f32 state pool, the first in the low half. */
export const BF16_PAIR = `
fn bf16Pair(a: f32, b: f32) -> f32 {
  return bitcast<f32>(((bitcast<u32>(a) + 0x8000u) >> 16u) | ((bitcast<u32>(b) + 0x8000u) & 0xffff0000u));
}
`;
