// Rule: rotary embedding of columns of a matrix product's result (q and k of the merged q/k/v
// projection) runs in the product's epilogue, in place: no kernel and no buffer of its own.

import type { Kernel, View } from '../../../runtime/program.ts';
import type { Lowered } from '../lower.ts';
import { type Rule, columnsOwnedBy, flatProduct, merged, redirectReads, soleWriter } from '../rewrite.ts';

export const ropeEpilogue: Rule<{ producer: number; at: View }> = {
  name: 'rope-epilogue',
  match(l, i, ix) {
    const r = l.kernels[i]!;
    if (r.family !== 'rope' || r.pre) return null;
    const at = r.inputs.x!;
    if (!('buf' in at) || ix.outputs.has(at.buf) || ix.outputs.has(r.outputs.y!.buf)) return null;
    const p = soleWriter(l, ix, at.buf);
    if (p === undefined || p >= i || !flatProduct(l, l.kernels[p]!)) return null;
    if (!columnsOwnedBy(ix, at.buf, at.col, at.width, i)) return null;
    return { producer: p, at };
  },
  rewrite(l, i, { producer, at }): Lowered {
    const r = l.kernels[i]!;
    const { H, Dh, R } = r.sizes as { H: number; Dh: number; R: number };
    let kernels = l.kernels.map((k, j): Kernel => (j !== producer ? k : {
      ...k, inputs: { ...k.inputs, positions: { input: 'positions' } },
      epilogue: [...(k.epilogue ?? []), { kind: 'rope', col: at.col, heads: H, headDim: Dh, rotaryDim: R, theta: r.attrs.theta as number }],
      ...merged(k, r),
    })).filter((_, j) => j !== i);
    kernels = redirectReads(kernels, r.outputs.y!.buf, (v) => ({ buf: at.buf, col: at.col + v.col, width: v.width }));
    return { ...l, kernels };
  },
};
