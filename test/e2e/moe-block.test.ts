// The std block MoE (models/std/moe.arch) in a tiny model — embedding, x + MoE(x), head — on random
// checkpoints of several configurations (4 to 8 experts, 1 or 2 per token, softmax and sigmoid
// gating, renormalised or not, with and without a shared expert), its logits on the CPU engine and
// on wasm against a float64 statement of the block written here from Hugging Face's modules
// (GraniteMoeHybridMoE, GraniteMoeHybridMLP), within 1e-5 of the logits' scale; and the experts
// every token is routed to against the float64 router's.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { expectLogitsClose, randomIds } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-moe-');
const V = 40, D = 16, F = 12;

const source = (E: number, k: number, gating: string, renorm: boolean, shared: number) => `import std.{Embedding, Head, MoE}
model Tiny(tokens: i32[T], positions: i32[T]) {
  param dtype: dtype = "f32"
  scope model {
    embed_tokens = Embedding(${V}, ${D})
    x = embed_tokens(tokens)
    x = x + moe: MoE(${D}, ${F}, ${E}, ${k}, "${gating}", ${renorm}, ${shared})(x)
  }
  return lm_head: Head(${D}, ${V})(x)
}
`;

/** The block in float64 from the weights: router, gating, top-k, the chosen experts, shared expert. */
function reference(w: Map<string, Float64Array>, ids: readonly number[], E: number, k: number, gating: string, renorm: boolean, shared: number) {
  const W = (n: string) => w.get(n)!;
  const lin = (x: ArrayLike<number>, m: Float64Array, nIn: number, off = 0, nOut = (m.length - off) / nIn) =>
    Array.from({ length: nOut }, (_, o) => { let s = 0; for (let i = 0; i < nIn; i++) s += x[i]! * m[off + o * nIn + i]!; return s; });
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const glu = (h: number[], n: number) => h.slice(0, n).map((g, i) => silu(g) * h[n + i]!);
  const routes: number[][] = [];
  const logits = ids.flatMap((id) => {
    const x = Array.from(W('model.embed_tokens.weight').subarray(id * D, (id + 1) * D));
    const r = lin(x, W('model.moe.router.layer.weight'), D);
    const order = (v: number[]) => v.map((_, e) => e).sort((a, b) => v[b]! - v[a]! || a - b).slice(0, k);
    let chosen: number[], gates: number[];
    if (gating === 'sigmoid') {
      const s = r.map((v) => 1 / (1 + Math.exp(-v)));
      chosen = order(s);
      const sum = chosen.reduce((a, e) => a + s[e]!, 0);
      gates = chosen.map((e) => (renorm ? s[e]! / sum : s[e]!));
    } else {
      const mx = Math.max(...r), ex = r.map((v) => Math.exp(v - mx)), all = ex.reduce((a, b) => a + b, 0);
      chosen = order(r);
      const top = chosen.reduce((a, e) => a + ex[e]!, 0);
      gates = chosen.map((e) => ex[e]! / (renorm ? top : all));
    }
    routes.push(chosen);
    const y = x.slice();
    chosen.forEach((e, j) => {
      const h = glu(lin(x, W('model.moe.input_linear.weight'), D, e * 2 * F * D, 2 * F), F);
      lin(h, W('model.moe.output_linear.weight'), F, e * D * F, D).forEach((v, c) => { y[c] += gates[j]! * v; });
    });
    if (shared) lin(glu(lin(x, W('model.moe.shared_mlp.input_linear.weight'), D), shared), W('model.moe.shared_mlp.output_linear.weight'), shared).forEach((v, c) => { y[c] += v; });
    return lin(y, W('lm_head.weight'), D);
  });
  return { logits: Float64Array.from(logits), routes };
}

const CASES = [
  [4, 1, 'softmax', true, 0], [4, 2, 'softmax', true, 20], [8, 2, 'softmax', false, 0],
  [6, 2, 'sigmoid', true, 0], [8, 1, 'sigmoid', false, 24], [5, 2, 'sigmoid', false, 0],
] as const;

describe('the MoE std block = its float64 statement', () => {
  for (const [E, k, gating, renorm, shared] of CASES) {
    it(`${E} experts, ${k} per token, ${gating}${renorm ? ', renormalised' : ''}${shared ? `, shared expert ${shared}` : ''}: cpu and wasm`, async () => {
      const dir = tmp();
      const file = join(dir, 'tiny.arch');
      writeFileSync(file, source(E, k, gating, renorm, shared));
      const c = compileFile(file, {});
      const program = lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices });
      writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
      const tensors = initWeights(c.graph, createRng(E * 10 + k), 'f32');
      writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
      const w = new Map(tensors.map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
      const ids = randomIds(13, V, E + k);
      const want = reference(w, ids, E, k, gating, renorm, shared);
      // every expert is somebody's choice (the test covers the grouping), and some token's second choice
      expect(new Set(want.routes.flat()).size, 'experts used').toBeGreaterThan(Math.min(E, 13 * k) / 2);
      for (const backend of ['cpu', 'wasm'] as const) {
        const m = await Model.loadProgram(program, dir, backend === 'cpu' ? { backend } : { backend, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 1 });
        const got = (await m.forwardAsync({ ids })).logits;
        expectLogitsClose(got, want.logits, 1e-5, `${backend} vs the float64 block`, V);
        m.dispose();
      }
    }, 60_000);
  }
});
