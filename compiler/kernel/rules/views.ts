// Rule: a copy kernel (what reshape and split lower to) becomes a view. Its readers read the
// copied columns of the source buffer directly; the copy and its buffer disappear.

import { isView, type View } from '../../../runtime/program.ts';
import type { Rule } from '../rewrite.ts';

export const views: Rule<{ from: View; to: number }> = {
  name: 'views',
  match(w, i) {
    const k = w.kernels[i]!;
    if (k.family !== 'copy' || k.pre) return null;
    const from = k.inputs.x!;
    const to = k.outputs.y!;
    if (!isView(from) || w.outputs.has(to.buf) || w.soleWriter(to.buf) !== i) return null;
    if (w.buffers[from.buf]!.rows !== w.buffers[to.buf]!.rows) return null;
    return { from, to: to.buf };
  },
  rewrite(w, i, { from, to }) {
    w.remove(i);
    w.redirectReads(to, (v) => ({ buf: from.buf, col: from.col + v.col, width: v.width }));
  },
};
