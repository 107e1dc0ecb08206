// Rule: rotary embedding of columns of a matrix product's result (q and k of the merged q/k/v
// projection) runs in the product's epilogue, in place: no kernel and no buffer of its own.

import type { View } from '../../../runtime/program.ts';
import { type Rule, flatProduct, merged } from '../rewrite.ts';

export const ropeEpilogue: Rule<{ producer: number; at: View }> = {
  name: 'rope-epilogue',
  match(w, i) {
    const r = w.kernels[i]!;
    if (r.family !== 'rope' || r.pre) return null;
    const at = r.inputs.x!;
    if (!('buf' in at) || w.outputs.has(at.buf) || w.outputs.has(r.outputs.y!.buf)) return null;
    const p = w.soleWriter(at.buf);
    if (p === undefined || p >= i || !flatProduct(w, w.kernels[p]!)) return null;
    if (!w.columnsOwnedBy(at.buf, at.col, at.width, i)) return null;
    return { producer: p, at };
  },
  rewrite(w, i, { producer, at }) {
    const r = w.kernels[i]!;
    const { H, Dh, R } = r.sizes as { H: number; Dh: number; R: number };
    const k = w.kernels[producer]!;
    w.set(producer, {
      ...k, inputs: { ...k.inputs, positions: { input: 'positions' } },
      epilogue: [...(k.epilogue ?? []), { kind: 'rope', col: at.col, heads: H, headDim: Dh, rotaryDim: R, theta: r.attrs.theta as number }],
      ...merged(k, r),
    });
    w.remove(i);
    w.redirectReads(r.outputs.y!.buf, (v) => ({ buf: at.buf, col: at.col + v.col, width: v.width }));
  },
};
