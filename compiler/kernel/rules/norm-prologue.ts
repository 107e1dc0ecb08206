// Rule: a norm (RMS, gated RMS or layer norm) read only by one matrix product becomes that product's
// prologue: the norm runs on the rows the product loads (the input layernorm into in_proj or the
// merged q/k/v, the gated norm closing a Mamba mixer into out_proj, the final norm into the head).
// Row-wise stages commute with a gather already in the prologue, so the norm is appended after it.

import type { Operand, Prologue } from '../../../runtime/program.ts';
import { type Rule, flatProduct, merged } from '../rewrite.ts';

export const normPrologue: Rule<{ reader: number }> = {
  name: 'norm-prologue',
  match(w, i) {
    const n = w.kernels[i]!;
    if (n.family !== 'norm' || n.sizes.D !== n.sizes.W || !('weight' in n.inputs.w!) || (n.inputs.b && !('weight' in n.inputs.b))) return null;
    const y = n.outputs.y!;
    if (w.outputs.has(y.buf) || w.soleWriter(y.buf) !== i) return null;
    const rs = w.readersOf(y.buf);
    if (rs.length !== 1 || rs[0]!.slot !== 'x' || rs[0]!.view.width !== y.width) return null;
    const m = w.kernels[rs[0]!.k]!;
    if (!flatProduct(w, m) || m.pre?.x || (m.prologue ?? []).some((p) => p.kind !== 'gather_last')) return null;
    return { reader: rs[0]!.k };
  },
  rewrite(w, i, { reader }) {
    const n = w.kernels[i]!;
    const weight = (n.inputs.w as { weight: string }).weight;
    const eps = n.attrs.eps as number;
    const bias = n.inputs.b ? (n.inputs.b as { weight: string }).weight : undefined;
    const stage: Prologue = n.attrs.layer ? { kind: 'layernorm', weight, ...(bias ? { bias } : {}), eps }
      : n.attrs.gated ? { kind: 'rmsnorm_gated', weight, eps, groups: n.attrs.groups as number }
      : { kind: 'rmsnorm', weight, eps };
    const k = w.kernels[reader]!;
    const inputs: Record<string, Operand> = { ...k.inputs, x: n.inputs.x! };
    if (n.attrs.gated) inputs.z = n.inputs.z!;
    const pre = { ...k.pre, ...(n.pre?.x ? { x: n.pre.x } : {}), ...(n.pre?.z ? { z: n.pre.z } : {}) };
    w.set(reader, { ...k, inputs, ...(Object.keys(pre).length ? { pre } : {}), prologue: [...(k.prologue ?? []), stage], ...merged(n, k) });
    w.remove(i);
  },
};
