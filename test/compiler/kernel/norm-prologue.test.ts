// norm-prologue: every RMS norm (input, pre-FF, the Mamba gated norm, the final norm) runs in the
// prologue of the product that reads it.

import { describe, expect, it } from 'vitest';
import { gatherPrologue } from '../../../compiler/kernel/rules/gather-prologue.ts';
import { mergeSiblings } from '../../../compiler/kernel/rules/merge-siblings.ts';
import { normPrologue } from '../../../compiler/kernel/rules/norm-prologue.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule norm-prologue', () => {
  it('fused = unfused; no norm kernel is left, gated or not, and the final norm follows the gather', async () => {
    const c = await checkRule(normPrologue, [views, mergeSiblings, gatherPrologue]);
    expectFewer(c);
    expect(kernelsWhere(c.without, (k) => k.family === 'norm').length).toBe(3 * (4 + 4 + 2 + 1));
    expect(kernelsWhere(c.with, (k) => k.family === 'norm')).toEqual([]);
    expect(kernelsWhere(c.with, (k) => k.prologue?.some((p) => p.kind === 'rmsnorm_gated') ?? false).length).toBe(3 * 2);
    expect(c.with.entries.prefill.kernels.at(-1)!.prologue!.map((p) => p.kind)).toEqual(['gather_last', 'rmsnorm']);
    expect(c.maxDiff).toBe(0);
  });
});
