// Rule: "the last token of each sequence only" (prefill's gather before the head) becomes the first
// prologue stage of the product that reads it: the head reads just those rows of its input.

import type { Kernel, View } from '../../../runtime/program.ts';
import type { Lowered } from '../lower.ts';
import { type Rule, flatProduct, merged, readersOf, soleWriter } from '../rewrite.ts';

export const gatherPrologue: Rule<{ reader: number }> = {
  name: 'gather-prologue',
  match(l, i, ix) {
    const g = l.kernels[i]!;
    if (g.family !== 'gather_last' || g.pre) return null;
    const y = g.outputs.y!;
    if (ix.outputs.has(y.buf) || soleWriter(l, ix, y.buf) !== i) return null;
    const rs = readersOf(ix, y.buf);
    if (rs.length !== 1 || rs[0]!.slot !== 'x' || rs[0]!.view.width !== y.width) return null;
    const m = l.kernels[rs[0]!.k]!;
    if (!flatProduct(l, m) || m.pre || m.prologue) return null;
    return { reader: rs[0]!.k };
  },
  rewrite(l, i, { reader }): Lowered {
    const g = l.kernels[i]!;
    const kernels = l.kernels.map((k, j): Kernel => (j !== reader ? k : {
      ...k, inputs: { ...k.inputs, x: g.inputs.x as View }, prologue: [{ kind: 'gather_last' }], ...merged(g, k),
    })).filter((_, j) => j !== i);
    return { ...l, kernels };
  },
};
