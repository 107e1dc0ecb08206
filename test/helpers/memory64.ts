// The runs the memory64 tests compare (test/wasm/memory64.test.ts in Node, test/browser/memory64.test.ts
// in Chromium): bitwise comparison of logits, and the outputs of one model's three ways through it.

import type { Model } from '../../runtime/model.ts';

/** The first differing element, or where the lengths differ; null when a and b are bit for bit equal. */
export function firstDiff(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `element ${i}: ${a[i]} vs ${b[i]} (of ${a.length})`;
  return null;
}

/** A packed forward of a and b, their prefill and a batched decode step, a multi-token step, a
 *  one-at-a-time decode of a, and three greedy tokens after a (as logits: one-hot rows). */
export async function memory64Outputs(m: Model, a: number[], b: number[]): Promise<Float32Array[]> {
  const out = [m.forward({ ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] }).logits];
  const { states, logits } = m.prefill([a, b]);
  out.push(...logits, m.decode([a[0]!, b[0]!], states), m.step([a.slice(2, 6), b.slice(1, 3)], states));
  for (const s of states) m.releaseSequence(s);
  const s = m.newSequence();
  for (const id of a) out.push(m.decode([id], [s]));
  m.releaseSequence(s);
  const greedy: number[] = [];
  for await (const t of m.generate(a, { maxTokens: 3, temperature: 0, stop: [] })) greedy.push(t.id);
  out.push(Float32Array.from(greedy));
  return out;
}
