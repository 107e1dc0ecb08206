// Rule: matrix products that read the same input (q/k/v projections, SwiGLU's gate and up, …) become
// one product over their weights concatenated at load: the input is read once, one dispatch instead
// of several. Each original output becomes a column view of the merged one.

import { type DerivedWeight, type Kernel, type KernelOf, type Operand, ofFamily } from '../../../runtime/program.ts';
import type { Lowered } from '../lower.ts';
import { type Rule, type RuleEnv, flatProduct, readersOf, redirectReads, withDerived } from '../rewrite.ts';

const sameOperand = (a: Operand, b: Operand) => 'buf' in a && 'buf' in b && a.buf === b.buf && a.col === b.col && a.width === b.width;

/** A plain product (no fused work yet) over checkpoint weights: what can be merged. */
function plain(l: Lowered, k: Kernel, env: RuleEnv): k is KernelOf<'matmul'> {
  // weights stored [in, out] would concatenate along the wrong dim
  return flatProduct(l, k) && !k.attrs.transposed && !k.pre && !k.prologue && !k.epilogue && 'weight' in k.inputs.w! && env.weight((k.inputs.w as { weight: string }).weight) !== undefined;
}

export const mergeSiblings: Rule<{ siblings: number[] }> = {
  name: 'merge-siblings',
  match(l, i, ix, env) {
    const k = l.kernels[i]!;
    if (!plain(l, k, env)) return null;
    const x = k.inputs.x!;
    const dtype = env.weight((k.inputs.w as { weight: string }).weight)!.dtype;
    const siblings = [i];
    // the other readers of the same input buffer, in order
    const others = [...new Set(readersOf(ix, (x as { buf: number }).buf).map((r) => r.k))].filter((j) => j > i).sort((a, b) => a - b);
    for (const j of others) {
      const s = l.kernels[j]!;
      if (!plain(l, s, env) || !sameOperand(s.inputs.x!, x) || s.sizes.K !== k.sizes.K) continue;
      if (env.weight((s.inputs.w as { weight: string }).weight)!.dtype !== dtype || ('b' in s.inputs) !== ('b' in k.inputs)) continue;
      if (ix.outputs.has(s.outputs.y!.buf) || l.buffers[s.outputs.y!.buf]!.rows !== l.buffers[k.outputs.y!.buf]!.rows) continue;
      siblings.push(j);
    }
    return siblings.length > 1 && !ix.outputs.has(k.outputs.y!.buf) ? { siblings } : null;
  },
  rewrite(l, i, { siblings }, _ix, env): Lowered {
    const ks = siblings.map((j) => ofFamily(l.kernels[j]!, 'matmul'));
    const w = ks.map((k) => (k.inputs.w as { weight: string }).weight);
    const name = mergedName(w);
    const N = ks.reduce((n, k) => n + k.sizes.N, 0);
    const K = ks[0]!.sizes.K;
    const first = env.weight(w[0]!)!;
    const derived: DerivedWeight[] = [{ name: `${name}.weight`, shape: [N, K], dtype: first.dtype as DerivedWeight['dtype'], from: { kind: 'concat', parts: w } }];
    const inputs: Record<string, Operand> = { x: ks[0]!.inputs.x!, w: { weight: `${name}.weight` } };
    if ('b' in ks[0]!.inputs) {
      const b = ks.map((k) => (k.inputs.b as { weight: string }).weight);
      derived.push({ name: `${name}.bias`, shape: [N], dtype: env.weight(b[0]!)!.dtype as DerivedWeight['dtype'], from: { kind: 'concat', parts: b } });
      inputs.b = { weight: `${name}.bias` };
    }
    const buf = l.buffers.length;
    const product: Kernel = {
      ...ks[0]!, name: `${name}:linear`, sizes: { K, N }, inputs, outputs: { y: { buf, col: 0, width: N } },
      fused: ks.flatMap((k) => k.fused), source: [...new Set(ks.flatMap((k) => k.source))],
    };
    let kernels: Kernel[] = l.kernels.map((k, j) => (j === i ? product : k)).filter((_, j) => !siblings.includes(j) || j === i);
    let col = 0;
    for (const k of ks) {
      const c = col;
      kernels = redirectReads(kernels, k.outputs.y!.buf, (v) => ({ buf, col: c + v.col, width: v.width }));
      col += k.sizes.N;
    }
    const rows = l.buffers[ks[0]!.outputs.y!.buf]!.rows;
    return { ...l, buffers: [...l.buffers, { id: buf, width: N, rows }], kernels, derived: withDerived(l, derived) };
  },
};

/** `a.b.q_proj.weight`, `a.b.k_proj.weight` -> `a.b.q_proj+k_proj` */
function mergedName(weights: readonly string[]): string {
  const parts = weights.map((w) => w.replace(/\.weight$/, '').split('.'));
  let common = 0;
  while (parts.every((p) => p.length > common + 1 && p[common] === parts[0]![common])) common++;
  return [...parts[0]!.slice(0, common), parts.map((p) => p.slice(common).join('.')).join('+')].join('.');
}
