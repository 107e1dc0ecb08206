// rope-epilogue: RoPE of q and k runs in place in the merged q/k/v product's epilogue.

import { describe, expect, it } from 'vitest';
import { mergeSiblings } from '../../../compiler/kernel/rules/merge-siblings.ts';
import { ropeEpilogue } from '../../../compiler/kernel/rules/rope-epilogue.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule rope-epilogue', () => {
  it('fused = unfused; no rope kernel is left; attention reads the rotated columns of the product', async () => {
    const c = await checkRule(ropeEpilogue, [views, mergeSiblings]);
    expectFewer(c);
    expect(kernelsWhere(c.without, (k) => k.family === 'rope').length).toBe(3 * 4);
    expect(kernelsWhere(c.with, (k) => k.family === 'rope')).toEqual([]);
    const qkv = kernelsWhere(c.with, (k) => k.name.includes('q_proj+k_proj+v_proj'));
    for (const k of qkv) expect(k.epilogue!.map((e) => (e.kind === 'rope' ? e.col : -1))).toEqual([0, 32]);
    expect(c.maxDiff).toBe(0);
  });

  it('also with positions that restart mid-batch (packed sequences)', async () => {
    const c = await checkRule(ropeEpilogue, [views, mergeSiblings], { attn_layers: [0, 1, 2, 3] });
    expect(c.maxDiff).toBe(0);
  });
});
