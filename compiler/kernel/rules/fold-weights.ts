// Rule: an elementwise kernel whose operands are all weights (e.g. A = -exp(A_log)) is computed once
// at load: it becomes a derived weight, and its readers read that weight. A derived expression that
// reads another is inlined, so a chain folds into one weight.

import { exprText, mapExpr } from '../../../runtime/expr.ts';
import type { DerivedWeight, Expr } from '../../../runtime/program.ts';
import type { Lowered } from '../lower.ts';
import { type Rule, readersOf, redirectReads, soleWriter, withDerived } from '../rewrite.ts';

export const foldWeights: Rule<{ weight: DerivedWeight; buf: number }> = {
  name: 'fold-weights',
  match(l, i, ix) {
    const k = l.kernels[i]!;
    if (k.family !== 'elementwise' || k.pre || !k.body) return null;
    const y = k.outputs.y!;
    if (l.buffers[y.buf]!.rows !== 'C' || ix.outputs.has(y.buf) || soleWriter(l, ix, y.buf) !== i) return null;
    if (!Object.values(k.inputs).every((o) => 'weight' in o)) return null;
    // readers must take the whole constant (a column slice of a folded weight is not a weight)
    if (!readersOf(ix, y.buf).every((r) => r.view.col === 0 && r.view.width === y.width)) return null;
    const derived = new Map(l.derived.map((d) => [d.name, d]));
    // weight operands become `w:` leaves, and derived expressions are inlined
    const body = mapExpr(k.body, (leaf) => {
      if (leaf.op !== 'in' && leaf.op !== 'w') return leaf;
      const name = leaf.op === 'w' ? leaf.name : (k.inputs[leaf.name] as { weight: string }).weight;
      const d = derived.get(name);
      return d && d.from.kind === 'expr' ? d.from.body : ({ op: 'w', name } satisfies Expr);
    });
    // the expression is its own name: deterministic, and the same fold in two entries is one weight
    return { weight: { name: exprText(body), shape: [y.width], dtype: 'f32', from: { kind: 'expr', body } }, buf: y.buf };
  },
  rewrite(l, i, { weight, buf }): Lowered {
    const kernels = redirectReads(l.kernels.filter((_, j) => j !== i), buf, () => ({ weight: weight.name }));
    return { ...l, kernels, derived: withDerived(l, [weight]) };
  },
};

