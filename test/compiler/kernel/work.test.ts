// The kernel rules' work grows linearly with the layers: rule visits, rewrites and index edits
// (the index of writers and readers is edited, not rebuilt, after each rewrite) are counted, not
// timed. Rebuilding the index after every rewrite made its edits grow with the square of the layers.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../../compiler/compile.ts';
import { KERNEL_RULES, lowerToProgram } from '../../../compiler/lower.ts';
import { type RewriteCounts, newCounts } from '../../../compiler/kernel/rewrite.ts';

const MODELS = join(import.meta.dirname, '..', '..', '..', 'models');

/** The rules' work lowering `model` with `layers` layers, and the kernels lowering made. */
function work(model: string, layers: number, set: readonly string[]): { counts: RewriteCounts; kernels: number } {
  const { graph, bindings, choices } = compileFile(join(MODELS, `${model}.arch`), { set: [`n_layers=${layers}`, ...set] }).forProgram;
  const counts = newCounts();
  const unfused = lowerToProgram(graph, bindings, { choices, rules: [] });
  lowerToProgram(graph, bindings, { choices, counts });
  return { counts, kernels: Object.values(unfused.entries).reduce((n, e) => n + e.kernels.length, 0) };
}

const MODELS_SET: readonly (readonly [string, readonly string[]])[] = [
  ['gpt2', ['d_model=64', 'n_heads=4', 'vocab=256', 'context=64']],
  ['llama', ['d_model=64', 'n_heads=4', 'n_kv_heads=2', 'vocab=256', 'd_ff=128']],
];

describe('kernel rules: work linear in the layers', () => {
  for (const [model, set] of MODELS_SET) {
    it(`${model}: 8, 32 and 128 layers`, () => {
      const [a, b, c] = [8, 32, 128].map((n) => work(model, n, set));
      for (const [small, big] of [[a!, b!], [b!, c!]] as const) {
        const grow = big.kernels / small.kernels; // about 4 (the embedding and head are fixed)
        expect(grow).toBeGreaterThan(3);
        for (const key of ['visits', 'rewrites', 'indexEdits'] as const) {
          // linear: the work grows as the kernels do (quadratic would be about 16 times)
          expect(big.counts[key] / small.counts[key], `${model} ${key}`).toBeLessThan(1.1 * grow);
        }
      }
      for (const r of [a!, b!, c!]) {
        // every rule visits each slot once per round; the rounds are few and do not grow with the layers
        expect(r.counts.visits).toBeLessThanOrEqual(3 * KERNEL_RULES.length * r.kernels);
        expect(r.counts.indexEdits).toBeLessThanOrEqual(12 * r.kernels);
        expect(r.counts.rewrites).toBeGreaterThan(0);
      }
    });
  }
});
