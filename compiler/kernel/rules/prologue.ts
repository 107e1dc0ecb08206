// Rule: an elementwise kernel with one activation operand, whose result only one kernel reads
// (whole, through one operand), is applied by that kernel as it reads the operand: dt + dt_bias,
// softplus and clamp inside the SSD kernels, silu(gate) inside SwiGLU's product of gate and up.

import { mapExpr, substituteX } from '../../../runtime/expr.ts';
import type { Expr } from '../../../runtime/program.ts';
import { type Rule, merged } from '../rewrite.ts';

export const prologue: Rule<{ reader: number; slot: string; operand: string }> = {
  name: 'prologue',
  match(w, i) {
    const e = w.kernels[i]!;
    if (e.family !== 'elementwise' || !e.body) return null;
    const y = e.outputs.y!;
    if (w.buffers[y.buf]!.rows === 'C' || w.outputs.has(y.buf) || w.soleWriter(y.buf) !== i) return null;
    const views = Object.entries(e.inputs).filter(([, o]) => 'buf' in o);
    if (views.length !== 1 || (views[0]![1] as { width: number }).width !== y.width) return null;
    const rs = w.readersOf(y.buf);
    if (rs.length !== 1 || rs[0]!.view.width !== y.width || rs[0]!.view.col !== 0 || rs[0]!.k <= i) return null;
    return { reader: rs[0]!.k, slot: rs[0]!.slot, operand: views[0]![0] };
  },
  rewrite(w, i, { reader, slot, operand }) {
    const e = w.kernels[i]!;
    // the body over the operand: `in` of it becomes x, weight operands become `w:` leaves
    const own = mapExpr(e.body!, (leaf): Expr => {
      if (leaf.op !== 'in') return leaf;
      if (leaf.name === operand) return { op: 'x', offset: 0 };
      return { op: 'w', name: (e.inputs[leaf.name] as { weight: string }).weight };
    });
    const inner = e.pre?.[operand];
    const body = inner ? substituteX(own, inner) : own;
    const k = w.kernels[reader]!;
    const prev = k.pre?.[slot];
    w.set(reader, { ...k, inputs: { ...k.inputs, [slot]: e.inputs[operand]! }, pre: { ...k.pre, [slot]: prev ? substituteX(prev, body) : body }, ...merged(e, k) });
    w.remove(i);
  },
};
