// merge-siblings: q/k/v and gate/up become one product each over concatenated weights.

import { describe, expect, it } from 'vitest';
import { mergeSiblings } from '../../../compiler/kernel/rules/merge-siblings.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule merge-siblings', () => {
  it('fused = unfused with bf16 weights; 4 layers lose 2 products each (attention 3 -> 1 and gate/up 2 -> 1, or gate/up only)', async () => {
    const c = await checkRule(mergeSiblings, [views], {});
    expectFewer(c);
    const products = (p: typeof c.with) => kernelsWhere(p, (k) => k.family === 'matmul').length;
    // 2 attention layers (3 -> 1) and 4 feed-forwards (2 -> 1), in each of 3 entries
    expect(products(c.without) - products(c.with)).toBe(3 * (2 * 2 + 4));
    const names = c.with.derived.map((d) => d.name);
    expect(names).toContain('model.layers.1.self_attn.q_proj+k_proj+v_proj.weight');
    expect(names).toContain('model.layers.0.feed_forward.gate_proj+up_proj.weight');
    expect(c.maxDiff).toBe(0);
  });

  it('merges biases with their weights', async () => {
    const c = await checkRule(mergeSiblings, [views], { attn_bias: true });
    expect(c.with.derived.map((d) => d.name)).toContain('model.layers.1.self_attn.q_proj+k_proj+v_proj.bias');
    expect(c.maxDiff).toBe(0);
  });
});
