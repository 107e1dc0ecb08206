// views: reshape and split become views of their source; no copy kernel is left.

import { describe, expect, it } from 'vitest';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule views', () => {
  it('fused = unfused; every copy kernel is gone', async () => {
    const c = await checkRule(views, []);
    expectFewer(c);
    expect(kernelsWhere(c.without, (k) => k.family === 'copy').length).toBeGreaterThan(0);
    expect(kernelsWhere(c.with, (k) => k.family === 'copy')).toEqual([]);
    expect(c.maxDiff).toBe(0);
  });
});
