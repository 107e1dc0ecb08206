// conv-step-epilogue (decode): the one-token causal conv of xBC, with its SiLU, runs in place in
// in_proj's epilogue, each row pushed through its own sequence's conv window.

import { describe, expect, it } from 'vitest';
import { convStepEpilogue } from '../../../compiler/kernel/rules/conv-step-epilogue.ts';
import { epilogue } from '../../../compiler/kernel/rules/epilogue.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { checkRule, kernelsWhere } from '../../helpers/rules.ts';

describe('rule conv-step-epilogue', () => {
  it('fused = unfused over batched decode; decode keeps no conv_step kernel; prefill is untouched', async () => {
    const c = await checkRule(convStepEpilogue, [views, epilogue]);
    expect(c.counts.decode[1]).toBe(c.counts.decode[0] - 2);
    expect(c.counts.prefill[1]).toBe(c.counts.prefill[0]);
    expect(kernelsWhere(c.with, (k) => k.family === 'conv_step')).toEqual([]);
    const inProj = c.with.entries.decode.kernels.filter((k) => k.epilogue?.some((e) => e.kind === 'conv_step'));
    expect(inProj.map((k) => k.name)).toEqual(['model.layers.0.mamba.in_proj:linear', 'model.layers.2.mamba.in_proj:linear']);
    expect(c.maxDiff).toBe(0);
  });
});
