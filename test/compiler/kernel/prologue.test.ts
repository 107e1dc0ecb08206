// prologue: dt + dt_bias, softplus and clamp run inside the SSD kernels as dt is read; silu(gate)
// inside the product with up when no epilogue took it.

import { describe, expect, it } from 'vitest';
import { foldWeights } from '../../../compiler/kernel/rules/fold-weights.ts';
import { prologue } from '../../../compiler/kernel/rules/prologue.ts';
import { views } from '../../../compiler/kernel/rules/views.ts';
import { exprText } from '../../../runtime/expr.ts';
import { checkRule, expectFewer, kernelsWhere } from '../../helpers/rules.ts';

describe('rule prologue', () => {
  it('fused = unfused; the dt chain is read into every SSD kernel', async () => {
    const c = await checkRule(prologue, [views, foldWeights]);
    expectFewer(c);
    const ssd = kernelsWhere(c.with, (k) => k.family.startsWith('ssd'));
    expect(ssd.length).toBe(3 * 2);
    for (const k of ssd) expect(exprText(k.pre!.dt!)).toMatch(/^clamp\(softplus\(\(x \+ w:model\.layers\.\d\.mamba\.dt_bias\)\), 0, Infinity\)$/);
    // silu(gate) · up with no merged product: silu becomes the mul's read of gate
    expect(kernelsWhere(c.with, (k) => k.family === 'elementwise' && k.fused.join() === 'silu,mul').length).toBe(3 * 4);
    expect(c.maxDiff).toBe(0);
  });
});
