// Rule (decode): the one-token causal conv (with its fused SiLU) of columns of a matrix product's
// result (xBC of in_proj) runs in the product's epilogue, in place: each row is one sequence's new
// token, pushed through that sequence's conv window.

import { exprLeaves } from '../../../runtime/expr.ts';
import { type Expr, type Kernel, type View, ofFamily } from '../../../runtime/program.ts';
import type { Lowered } from '../lower.ts';
import { type Rule, columnsOwnedBy, flatProduct, merged, redirectReads, soleWriter } from '../rewrite.ts';

export const convStepEpilogue: Rule<{ producer: number; at: View; post?: Expr }> = {
  name: 'conv-step-epilogue',
  match(l, i, ix) {
    const c = l.kernels[i]!;
    if (c.family !== 'conv_step' || c.pre || c.state === undefined || !('weight' in c.inputs.w!)) return null;
    if (c.inputs.b && !('weight' in c.inputs.b)) return null;
    // its own epilogue may only be one per-column map (SiLU) over exactly its channels
    const stages = c.epilogue ?? [];
    if (stages.length > 1 || (stages[0] && (stages[0].kind !== 'map' || stages[0].width !== c.sizes.C))) return null;
    const post = stages[0]?.kind === 'map' ? stages[0].body : undefined;
    if (post && exprLeaves(post).some((f) => (f.op === 'x' && f.offset !== 0) || f.op === 'in')) return null;
    const at = c.inputs.x!;
    if (!('buf' in at) || ix.outputs.has(at.buf) || ix.outputs.has(c.outputs.y!.buf)) return null;
    const p = soleWriter(l, ix, at.buf);
    if (p === undefined || p >= i || !flatProduct(l, l.kernels[p]!) || l.kernels[p]!.prologue?.some((s) => s.kind === 'gather_last')) return null;
    if (!columnsOwnedBy(ix, at.buf, at.col, at.width, i)) return null;
    return { producer: p, at, ...(post ? { post } : {}) };
  },
  rewrite(l, i, { producer, at, post }): Lowered {
    const c = ofFamily(l.kernels[i]!, 'conv_step');
    let kernels = l.kernels.map((k, j): Kernel => (j !== producer ? k : {
      ...k,
      epilogue: [...(k.epilogue ?? []), {
        kind: 'conv_step', col: at.col, channels: c.sizes.C, taps: c.sizes.K, weight: (c.inputs.w as { weight: string }).weight,
        ...(c.inputs.b ? { bias: (c.inputs.b as { weight: string }).weight } : {}), state: c.state!, ...(post ? { post } : {}),
      }],
      ...merged(k, c),
    })).filter((_, j) => j !== i);
    kernels = redirectReads(kernels, c.outputs.y!.buf, (v) => ({ buf: at.buf, col: at.col + v.col, width: v.width }));
    return { ...l, kernels };
  },
};
