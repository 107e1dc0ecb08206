// Rule: an elementwise kernel that consumes the whole output of a matrix product, a convolution or
// an embedding (read by it alone) becomes a `map` stage of that producer's epilogue: SiLU after the
// causal conv, the residual add after out_proj / o_proj / down_proj, SwiGLU's silu(gate)·up after
// the merged gate/up product, token plus position embedding. Its other activation operands become operands of the producer, which must
// already have been computed where the producer runs.

import { substituteX, mapExpr } from '../../../runtime/expr.ts';
import type { Expr, Family, Kernel, Operand } from '../../../runtime/program.ts';
import { FAMILIES, FAMILY_NAMES } from '../../../runtime/families.ts';
import { type Rule, flatProduct, merged } from '../rewrite.ts';

/** Families whose kernels apply epilogue stages to their result rows (their records say so). */
export const EPILOGUE_FAMILIES: ReadonlySet<Family> = new Set(FAMILY_NAMES.filter((f) => FAMILIES[f].epilogue));

export const epilogue: Rule<{ producer: number }> = {
  name: 'epilogue',
  match(w, i) {
    const e = w.kernels[i]!;
    if (e.family !== 'elementwise' || !e.body) return null;
    if (w.buffers[e.outputs.y!.buf]!.rows === 'C') return null;
    // the producer: the writer of the first activation operand whose buffer this kernel alone reads
    for (const o of Object.values(e.inputs)) {
      if (!('buf' in o)) continue;
      const p = w.soleWriter(o.buf);
      if (p === undefined || p >= i || !EPILOGUE_FAMILIES.has(w.kernels[p]!.family) || w.outputs.has(o.buf)) continue;
      if (w.kernels[p]!.family === 'matmul' && !flatProduct(w, w.kernels[p]!)) continue;
      if (!w.readersOf(o.buf).every((r) => r.k === i)) continue;
      if (w.buffers[o.buf]!.rows !== w.buffers[e.outputs.y!.buf]!.rows || o.width !== e.outputs.y!.width) continue;
      // every other activation operand must exist before the producer runs
      const others = Object.values(e.inputs).filter((x): x is Extract<Operand, { buf: number }> => 'buf' in x && x.buf !== o.buf);
      if (others.some((x) => w.producedAt(x.buf) >= p || w.buffers[x.buf]!.rows !== w.buffers[o.buf]!.rows && w.buffers[x.buf]!.rows !== 'C')) continue;
      return { producer: p };
    }
    return null;
  },
  rewrite(w, i, { producer }) {
    const e = w.kernels[i]!;
    const p = w.kernels[producer]!;
    const acc = p.outputs.y!.buf;
    const inputs: Record<string, Operand> = { ...p.inputs };
    const body = mapExpr(e.body!, (leaf): Expr => {
      if (leaf.op !== 'in') return leaf;
      const o = e.inputs[leaf.name]!;
      const pre = e.pre?.[leaf.name];
      let v: Expr;
      if ('buf' in o && o.buf === acc) v = { op: 'x', offset: o.col };
      else if ('weight' in o) v = { op: 'w', name: o.weight };
      else {
        // another activation: an operand of the producer under a fresh name
        let n = `e_${leaf.name}`;
        for (let k = 1; n in inputs && JSON.stringify(inputs[n]) !== JSON.stringify(o); k++) n = `e_${leaf.name}${k}`;
        inputs[n] = o;
        v = { op: 'in', name: n };
      }
      return pre ? substituteX(pre, v) : v;
    });
    const fusedKernel: Kernel = {
      ...p, inputs, outputs: { y: e.outputs.y! },
      epilogue: [...(p.epilogue ?? []), { kind: 'map', body, width: e.outputs.y!.width }],
      ...merged(p, e),
    };
    w.set(producer, fusedKernel);
    w.remove(i);
  },
};
