// fold-weights: -exp(A_log) is computed once at load as one derived weight; no kernel computes it.

import { describe, expect, it } from 'vitest';
import { foldWeights } from '../../../compiler/kernel/rules/fold-weights.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule fold-weights', () => {
  it('fused = unfused; A = -exp(A_log) becomes one derived weight per Mamba layer', async () => {
    const c = await checkRule(foldWeights, [views]);
    expectFewer(c);
    const constants = (p: typeof c.with) => kernelsWhere(p, (k) => k.family === 'elementwise' && Object.values(k.inputs).every((o) => 'weight' in o));
    expect(constants(c.without).length).toBeGreaterThan(0);
    expect(constants(c.with)).toEqual([]);
    expect(c.with.derived.map((d) => d.name)).toEqual(['neg(exp(w:model.layers.0.mamba.A_log))', 'neg(exp(w:model.layers.2.mamba.A_log))']);
    expect(kernelsWhere(c.with, (k) => k.family === 'ssd').every((k) => 'weight' in k.inputs.A!)).toBe(true);
    expect(c.maxDiff).toBe(0);
  });
});
