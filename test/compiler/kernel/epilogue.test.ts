// epilogue: SiLU after the conv, residual adds after out_proj/o_proj/down_proj and SwiGLU's
// silu(gate)·up run in their producer's epilogue.

import { describe, expect, it } from 'vitest';
import { epilogue } from '../../../compiler/kernel/rules/epilogue.ts';
import { foldWeights } from '../../../compiler/kernel/rules/fold-weights.ts';
import { mergeSiblings } from '../../../compiler/kernel/rules/merge-siblings.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { exprText } from '../../../runtime/expr.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule epilogue', () => {
  it('fused = unfused; residual adds, SiLU after conv and silu(gate)·up move into epilogues', async () => {
    const c = await checkRule(epilogue, [views, foldWeights, mergeSiblings]);
    expectFewer(c);
    const maps = (fam: string) => kernelsWhere(c.with, (k) => k.family === fam).flatMap((k) => (k.epilogue ?? []).map((e) => (e.kind === 'map' ? exprText(e.body) : e.kind)));
    expect(maps('conv')).toEqual(['silu(x)', 'silu(x)', 'silu(x)', 'silu(x)']); // 2 Mamba layers in forward and prefill
    expect(maps('conv_step')).toEqual(['silu(x)', 'silu(x)']);
    const residuals = maps('matmul').filter((t) => t === '(%e_a + x)').length;
    expect(residuals).toBe(3 * 8); // 2 per layer, 4 layers, 3 entries
    expect(maps('matmul').filter((t) => t === 'silu(x)').length).toBe(0);
    expect(c.maxDiff).toBe(0);
  });
});
