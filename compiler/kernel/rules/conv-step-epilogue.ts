// Rule (decode): the one-token causal conv (with its fused SiLU) of columns of a matrix product's
// result (xBC of in_proj) runs in the product's epilogue, in place: each row is one sequence's new
// token, pushed through that sequence's conv window.

import { exprLeaves } from '../../../runtime/expr.ts';
import { type Expr, type View, ofFamily } from '../../../runtime/program.ts';
import { type Rule, flatProduct, merged } from '../rewrite.ts';

export const convStepEpilogue: Rule<{ producer: number; at: View; post?: Expr }> = {
  name: 'conv-step-epilogue',
  match(w, i) {
    const c = w.kernels[i]!;
    if (c.family !== 'conv_step' || c.pre || c.state === undefined || !('weight' in c.inputs.w!)) return null;
    if (c.inputs.b && !('weight' in c.inputs.b)) return null;
    // its own epilogue may only be one per-column map (SiLU) over exactly its channels
    const stages = c.epilogue ?? [];
    if (stages.length > 1 || (stages[0] && (stages[0].kind !== 'map' || stages[0].width !== c.sizes.C))) return null;
    const post = stages[0]?.kind === 'map' ? stages[0].body : undefined;
    if (post && exprLeaves(post).some((f) => (f.op === 'x' && f.offset !== 0) || f.op === 'in')) return null;
    const at = c.inputs.x!;
    if (!('buf' in at) || w.outputs.has(at.buf) || w.outputs.has(c.outputs.y!.buf)) return null;
    const p = w.soleWriter(at.buf);
    if (p === undefined || p >= i || !flatProduct(w, w.kernels[p]!) || w.kernels[p]!.prologue?.some((s) => s.kind === 'gather_last')) return null;
    if (!w.columnsOwnedBy(at.buf, at.col, at.width, i)) return null;
    return { producer: p, at, ...(post ? { post } : {}) };
  },
  rewrite(w, i, { producer, at, post }) {
    const c = ofFamily(w.kernels[i]!, 'conv_step');
    const k = w.kernels[producer]!;
    w.set(producer, {
      ...k,
      epilogue: [...(k.epilogue ?? []), {
        kind: 'conv_step', col: at.col, channels: c.sizes.C, taps: c.sizes.K, weight: (c.inputs.w as { weight: string }).weight,
        ...(c.inputs.b ? { bias: (c.inputs.b as { weight: string }).weight } : {}), state: c.state!, ...(post ? { post } : {}),
      }],
      ...merged(k, c),
    });
    w.remove(i);
    w.redirectReads(c.outputs.y!.buf, (v) => ({ buf: at.buf, col: at.col + v.col, width: v.width }));
  },
};
