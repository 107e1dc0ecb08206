// A layer pattern (`pattern(layer_pattern, "M*-", n_layers)`, Megatron-LM's hybrid_override_pattern)
// picks each layer's block: examples/bamba-pattern.arch's graph has the layers its pattern says, the
// pattern that spells Bamba-9B gives bamba.arch's stats exactly, and the stats of other patterns
// follow the count of each symbol.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { computeStats } from '../../compiler/stats.ts';
import { compileText, MODELS } from '../helpers/compile.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const VARIANT = join(ROOT, 'examples', 'bamba-pattern.arch');
/** Bamba-9B as a pattern: a mixer then a feed-forward in each of 32 layers, attention at mixers 9, 18, 27. */
const BAMBA_PATTERN = Array.from({ length: 32 }, (_, i) => ([9, 18, 27].includes(i) ? '*-' : 'M-')).join('');

const statsOf = (file: string, set: string[] = []) => computeStats(compileFile(file, { set }).graph, 4096, 1);
const count = (p: string, c: string) => [...p].filter((s) => s === c).length;

describe('a layer pattern picks each layer', () => {
  it('the graph has the block each symbol names, and no other', () => {
    const pattern = 'M-*-MM-*';
    const g = compileFile(VARIANT, { set: [`layer_pattern=${pattern}`] }).graph;
    const blocks = (i: number) => [...new Set(g.weights.filter((w) => w.name.startsWith(`model.layers.${i}.`)).map((w) => w.name.split('.')[3]))].sort();
    const expected: Record<string, string[]> = { M: ['input_layernorm', 'mamba'], '*': ['input_layernorm', 'self_attn'], '-': ['feed_forward', 'pre_ff_layernorm'] };
    [...pattern].forEach((s, i) => expect(blocks(i), `layer ${i} (${s})`).toEqual(expected[s]));
    expect(g.weights.some((w) => w.name.startsWith(`model.layers.${pattern.length}.`))).toBe(false);
    // the state the graph carries: a conv window and an SSM state per M, a KV cache per *
    expect(g.state.filter((s) => s.per === 'token').length).toBe(count(pattern, '*'));
    expect(g.state.filter((s) => s.per !== 'token').length).toBe(2 * count(pattern, 'M'));
  });

  it('a list of symbols is read like a string', () => {
    const src = (p: string) => `import std.{Embedding}\nmodel M(tokens: i32[T]) {\n  let k = pattern(${p}, "ab", 3)\n  e = Embedding(16, 8)\n  assert k == ["a", "b", "a"], "kinds"\n  return e(tokens)\n}\n`;
    expect(() => compileText(src('"aba"'))).not.toThrow();
    expect(() => compileText(src('["a", "b", "a"]'))).not.toThrow();
    expect(() => compileText(src('"abb"'))).toThrow(/AC406/);
  });

  it('the pattern that spells Bamba-9B gives bamba.arch\'s stats, figure for figure', () => {
    const a = statsOf(join(MODELS, 'bamba.arch'));
    const b = statsOf(VARIANT, [`layer_pattern=${BAMBA_PATTERN}`]);
    expect({ ...b, model: a.model }).toEqual(a);
  });

  it('other patterns: every figure follows the count of each symbol', () => {
    // one layer of each kind at Bamba-9B's widths, and none: the cost of each symbol
    const base = statsOf(VARIANT, ['layer_pattern=""']);
    const one = Object.fromEntries(['M', '*', '-'].map((s) => [s, statsOf(VARIANT, [`layer_pattern=${s}`])]));
    const variant = statsOf(VARIANT); // its own pattern, "M-M-M*-" 8 times
    const pattern = compileFile(VARIANT).graph.params.layer_pattern as string;
    expect(pattern).toBe('M-M-M*-'.repeat(8));
    const predict = (f: (s: ReturnType<typeof statsOf>) => number) =>
      f(base) + ['M', '*', '-'].reduce((sum, s) => sum + count(pattern, s) * (f(one[s]!) - f(base)), 0);
    expect(variant.parameters.total).toBe(predict((s) => s.parameters.total));
    expect(variant.weightBytes.byFormat.q4).toBe(predict((s) => s.weightBytes.byFormat.q4));
    expect(variant.state.kvBytesPerToken).toBe(predict((s) => s.state.kvBytesPerToken));
    expect(variant.state.convSsmBytesPerSequence).toBe(predict((s) => s.state.convSsmBytesPerSequence));
    for (const mode of ['prefill', 'decode'] as const) {
      expect(variant.flopsPerToken[mode] / predict((s) => s.flopsPerToken[mode]) - 1, mode).toBeCloseTo(0, 12);
    }
    // and against Bamba-9B: 8 attention layers' KV cache for its 3, 24 Mamba-2 layers' state for its 29
    const bamba = statsOf(join(MODELS, 'bamba.arch'));
    expect(variant.state.kvBytesPerToken * 3).toBe(bamba.state.kvBytesPerToken * 8);
    expect(variant.state.convSsmBytesPerSequence * 29).toBe(bamba.state.convSsmBytesPerSequence * 24);
  });

  it('n_layers from config.json must match the pattern\'s length (AC317), and agrees when it does', () => {
    const config = (n: number) => ({ file: 'config.json', config: { hybrid_override_pattern: 'M-*-', num_hidden_layers: n } });
    expect(compileFile(VARIANT, { hfConfigData: config(4) }).graph.params.n_layers).toBe(4);
    expect(() => compileFile(VARIANT, { hfConfigData: config(5) })).toThrow(/AC317: layer pattern has 4 symbols but the model has 5 layers/);
  });
});
