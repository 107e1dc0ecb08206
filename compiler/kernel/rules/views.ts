// Rule: a copy kernel (what reshape and split lower to) becomes a view. Its readers read the
// copied columns of the source buffer directly; the copy and its buffer disappear.

import { isView, type View } from '../../../runtime/program.ts';
import type { Lowered } from '../lower.ts';
import { type Rule, redirectReads, soleWriter } from '../rewrite.ts';

export const views: Rule<{ from: View; to: number }> = {
  name: 'views',
  match(l, i, ix) {
    const k = l.kernels[i]!;
    if (k.family !== 'copy' || k.pre) return null;
    const from = k.inputs.x!;
    const to = k.outputs.y!;
    if (!isView(from) || ix.outputs.has(to.buf) || soleWriter(l, ix, to.buf) !== i) return null;
    if (l.buffers[from.buf]!.rows !== l.buffers[to.buf]!.rows) return null;
    return { from, to: to.buf };
  },
  rewrite(l, i, { from, to }): Lowered {
    const kernels = redirectReads(l.kernels.filter((_, j) => j !== i), to, (v) => ({ buf: from.buf, col: from.col + v.col, width: v.width }));
    return { ...l, kernels };
  },
};
