// Shared by the gradient tests: random float64 arrays, central finite differences, and one
// relative error measure with its stated meaning.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { type Compiled, compileFile, loadConfig } from '../../compiler/compile.ts';
import { type GradBatch, readWeightsF64 } from '../../compiler/grad.ts';
import { presetSets } from '../../compiler/presets.ts';
import { positionsFor } from '../../runtime/engine.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { BAMBA } from '../helpers/checkpoints.ts';
import { MODELS, compileText } from '../helpers/compile.ts';
import { randomIds } from '../helpers/checkpoints.ts';
import { prng } from '../helpers/random.ts';

/** n values uniform in [−scale, scale) from a seeded generator. */
export function randomF64(n: number, seed: number, scale = 1): Float64Array {
  const r = prng(seed);
  return Float64Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

/** d loss / d x[i] by central differences with step h (x[i] restored afterwards). */
export function centralDiff(x: Float64Array, i: number, loss: () => number, h = 1e-5): number {
  const v = x[i]!;
  x[i] = v + h;
  const up = loss();
  x[i] = v - h;
  const down = loss();
  x[i] = v;
  return (up - down) / (2 * h);
}

/** |a − b| / max(|a|, |b|, floor): relative, with an absolute floor for near-zero entries. */
export function relErr(a: number, b: number, floor: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), floor);
}

/** A fixed random linear functional of y, Σ y[i] · r[i]: its gradient wrt y is r, so an op's
 *  backward called with dy = r must equal the finite differences of this scalar. */
export function probe(n: number, seed: number): { r: Float64Array; dot: (y: Float64Array) => number } {
  const r = randomF64(n, seed);
  return { r, dot: (y) => y.reduce((s, v, i) => s + v * r[i]!, 0) };
}

/** Indices to sample: all when n ≤ k, else k spread evenly plus the first and last. */
export function sample(n: number, k: number, seed: number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const r = prng(seed);
  const s = new Set<number>([0, n - 1]);
  while (s.size < k) s.add(Math.floor(r() * n));
  return [...s].sort((a, b) => a - b);
}

/** lens → a packed batch of random ids, labels = ids with -100 at each sequence's first token. */
export function packed(lens: readonly number[], vocab: number, seed: number): GradBatch {
  const T = lens.reduce((a, b) => a + b, 0);
  const seqs = lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
  const tokens = Int32Array.from(randomIds(T, vocab, seed));
  const labels = Int32Array.from(tokens);
  for (const s of seqs) labels[s.start] = -100;
  return { tokens, positions: positionsFor(seqs, T), seqs, labels };
}

/** The trained tiny-bamba-a (../shared/models), f32. */
export const TINY_BAMBA_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32');

/** models/bamba.arch compiled for tiny-bamba-a, and its weights widened to f32 maps. */
export function trainedTinyBamba(): { c: Compiled; w: Map<string, Float32Array> } {
  const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(TINY_BAMBA_A, 'config.json')) });
  const ckpt = openCheckpoint(TINY_BAMBA_A);
  const w = new Map([...readWeightsF64(c.graph, ckpt)].map(([n, v]) => [n, Float32Array.from(v)]));
  ckpt.close();
  return { c, w };
}

/** 80 bytes of tiny-bamba-a's eval text packed as [66, 14] (the first across its 64-token chunk). */
export function evalTextBatch(): GradBatch {
  const tokens = Int32Array.from(readFileSync(resolve(TINY_BAMBA_A, '../eval-A.txt')).subarray(3000, 3080));
  const seqs = [{ start: 0, len: 66 }, { start: 66, len: 14 }];
  const labels = Int32Array.from(tokens);
  labels[0] = labels[66] = -100;
  return { tokens, positions: positionsFor(seqs, 80), seqs, labels };
}

/** ‖got − ref‖₂ / ‖ref‖₂ over every weight at once, and the worst weight's (checking the lengths). */
export function compareGrads(got: ReadonlyMap<string, ArrayLike<number>>, ref: ReadonlyMap<string, ArrayLike<number>>): { all: number; worst: number; name: string } {
  let num = 0, den = 0, worst = 0, name = '';
  for (const [n, r] of ref) {
    const g = got.get(n);
    expect(g?.length, n).toBe(r.length);
    let a = 0, b = 0;
    for (let i = 0; i < r.length; i++) { a += (g![i]! - r[i]!) ** 2; b += r[i]! ** 2; }
    num += a; den += b;
    const e = b === 0 ? Math.sqrt(a) : Math.sqrt(a / b);
    if (e > worst) { worst = e; name = n; }
  }
  return { all: Math.sqrt(num / den), worst, name };
}

/** The packed batch's gradient against Σ (n_s / N) ∇L_s of each of its sequences alone (compareGrads). */
export function packedVsSeparate(grad: (b: GradBatch) => { tokens: number; grads: ReadonlyMap<string, ArrayLike<number>> }, b: GradBatch): ReturnType<typeof compareGrads> {
  const whole = grad(b);
  const sum = new Map([...whole.grads].map(([n, g]) => [n, new Float64Array(g.length)]));
  for (const s of b.seqs) {
    const one = grad({
      tokens: b.tokens.slice(s.start, s.start + s.len), positions: b.positions.slice(s.start, s.start + s.len),
      seqs: [{ start: 0, len: s.len }], labels: b.labels.slice(s.start, s.start + s.len),
    });
    for (const [n, g] of one.grads) { const acc = sum.get(n)!; for (let i = 0; i < g.length; i++) acc[i] += (one.tokens / whole.tokens) * g[i]!; }
  }
  return compareGrads(whole.grads, sum);
}

/** A small model: an 8-wide embedding x of 16 ids, then `body` (which returns the logits). */
export const small = (body: string): Compiled => compileText(`import std.{Linear, Embedding}
model Small(tokens: i32[T], positions: i32[T]) {
  param d = 8
  e = Embedding(16, d)
  x = e(tokens)
${body}}
`);

/** A small model's body of the lowerings no shipped model reaches: a product by a broadcast weight,
 *  sigmoid, exact GELU, clamp, LayerNorm with a bias, a biased linear, exp. */
export const SINK = `  weight g[d]
  weight ln_w[d]
  weight ln_b[d]
  b = sigmoid(x * g) + gelu(x)
  h = layernorm(clamp(b, min: -0.5, max: 0.7), ln_w, ln_b, eps: 0.00001)
  p, q = split(proj: Linear(d, 2 * d, has_bias: true)(h), sizes: [d, d])
  return head(relu2(p) * q + exp(neg(x)) * 0.5, e.weight)
`;

/** Granite-4.0-H at its tiny preset: a Mamba-2 and an attention layer (RoPE), each with a mixture of
 *  6 experts, 2 per token, beside a shared expert of 32; chunk 8, so packed sequences cross chunks. */
export function tinyGranite(): Compiled {
  const file = join(MODELS, 'granite4h.arch');
  return compileFile(file, { set: [...presetSets(file, 'tiny'), 'n_layers=2', 'layer_types=["mamba", "attention"]', 'rope="rope"',
    'n_experts=6', 'k_experts=2', 'd_shared=32', 'chunk=8'] });
}

/** The std MoE block (models/std/moe.arch) in a tiny model, embedding, x + MoE(x), head over 40 ids:
 *  5 experts of 12, 2 per token, by `gating` ("softmax" or "sigmoid"), renormalised or not. */
export const tinyMoE = (gating: string, renorm: boolean): Compiled => compileText(`import std.{Embedding, Head, MoE}
model Tiny(tokens: i32[T], positions: i32[T]) {
  param dtype: dtype = "f32"
  scope model {
    embed_tokens = Embedding(40, 16)
    x = embed_tokens(tokens)
    x = x + moe: MoE(16, 12, 5, 2, "${gating}", ${renorm})(x)
  }
  return lm_head: Head(16, 40)(x)
}
`);
