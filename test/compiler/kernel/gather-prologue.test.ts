// gather-prologue: prefill's "last token of each sequence" is the head's first prologue stage.

import { describe, expect, it } from 'vitest';
import { gatherPrologue } from '../../../compiler/kernel/rules/gather-prologue.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule } from '../../helpers/rules.ts';

describe('rule gather-prologue', () => {
  it('fused = unfused; prefill keeps no gather kernel', async () => {
    const c = await checkRule(gatherPrologue, [views]);
    expect(c.counts.prefill[1]).toBe(c.counts.prefill[0] - 1);
    expect(c.without.entries.prefill.kernels.some((k) => k.family === 'gather_last')).toBe(true);
    expect(c.with.entries.prefill.kernels.some((k) => k.family === 'gather_last')).toBe(false);
    expect(c.with.entries.prefill.kernels.at(-1)!.prologue).toEqual([{ kind: 'gather_last' }]);
    expect(c.maxDiff).toBe(0);
  });
});
