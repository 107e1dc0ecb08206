// Rule: "the last token of each sequence only" (prefill's gather before the head) becomes the first
// prologue stage of the product that reads it: the head reads just those rows of its input.

import type { View } from '../../../runtime/program.ts';
import { type Rule, flatProduct, merged } from '../rewrite.ts';

export const gatherPrologue: Rule<{ reader: number }> = {
  name: 'gather-prologue',
  match(w, i) {
    const g = w.kernels[i]!;
    if (g.family !== 'gather_last' || g.pre) return null;
    const y = g.outputs.y!;
    if (w.outputs.has(y.buf) || w.soleWriter(y.buf) !== i) return null;
    const rs = w.readersOf(y.buf);
    if (rs.length !== 1 || rs[0]!.slot !== 'x' || rs[0]!.view.width !== y.width) return null;
    const m = w.kernels[rs[0]!.k]!;
    if (!flatProduct(w, m) || m.pre || m.prologue) return null;
    return { reader: rs[0]!.k };
  },
  rewrite(w, i, { reader }) {
    const g = w.kernels[i]!;
    const k = w.kernels[reader]!;
    w.set(reader, { ...k, inputs: { ...k.inputs, x: g.inputs.x as View }, prologue: [{ kind: 'gather_last' }], ...merged(g, k) });
    w.remove(i);
  },
};
