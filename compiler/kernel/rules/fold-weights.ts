// Rule: an elementwise kernel whose operands are all weights (e.g. A = -exp(A_log)) is computed once
// at load: it becomes a derived weight, and its readers read that weight. A derived expression that
// reads another is inlined, so a chain folds into one weight.

import { exprText, mapExpr } from '../../../runtime/expr.ts';
import type { DerivedWeight, Expr } from '../../../runtime/program.ts';
import type { Rule } from '../rewrite.ts';

export const foldWeights: Rule<{ weight: DerivedWeight; buf: number }> = {
  name: 'fold-weights',
  match(w, i) {
    const k = w.kernels[i]!;
    if (k.family !== 'elementwise' || k.pre || !k.body) return null;
    const y = k.outputs.y!;
    if (w.buffers[y.buf]!.rows !== 'C' || w.outputs.has(y.buf) || w.soleWriter(y.buf) !== i) return null;
    if (!Object.values(k.inputs).every((o) => 'weight' in o)) return null;
    // readers must take the whole constant (a column slice of a folded weight is not a weight)
    if (!w.readersOf(y.buf).every((r) => r.view.col === 0 && r.view.width === y.width)) return null;
    // weight operands become `w:` leaves, and derived expressions are inlined
    const body = mapExpr(k.body, (leaf) => {
      if (leaf.op !== 'in' && leaf.op !== 'w') return leaf;
      const name = leaf.op === 'w' ? leaf.name : (k.inputs[leaf.name] as { weight: string }).weight;
      const d = w.derived.get(name);
      return d && d.from.kind === 'expr' ? d.from.body : ({ op: 'w', name } satisfies Expr);
    });
    // the expression is its own name: deterministic, and the same fold in two entries is one weight
    return { weight: { name: exprText(body), shape: [y.width], dtype: 'f32', from: { kind: 'expr', body } }, buf: y.buf };
  },
  rewrite(w, i, { weight, buf }) {
    w.remove(i);
    w.redirectReads(buf, () => ({ weight: weight.name }));
    w.addDerived([weight]);
  },
};
