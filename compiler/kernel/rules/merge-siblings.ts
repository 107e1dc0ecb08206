// Rule: matrix products that read the same input (q/k/v projections, SwiGLU's gate and up, …) become
// one product over their weights concatenated at load: the input is read once, one dispatch instead
// of several. Each original output becomes a column view of the merged one.

import { type DerivedWeight, type Kernel, type KernelOf, type Operand, ofFamily } from '../../../runtime/program.ts';
import type { LBuffer } from '../lower.ts';
import { type Rule, type RuleEnv, flatProduct } from '../rewrite.ts';

const sameOperand = (a: Operand, b: Operand) => 'buf' in a && 'buf' in b && a.buf === b.buf && a.col === b.col && a.width === b.width;

/** A plain product (no fused work yet) over checkpoint weights: what can be merged. */
function plain(w: { readonly buffers: readonly LBuffer[] }, k: Kernel, env: RuleEnv): k is KernelOf<'matmul'> {
  // weights stored [in, out] would concatenate along the wrong dim
  return flatProduct(w, k) && !k.attrs.transposed && !k.pre && !k.prologue && !k.epilogue && 'weight' in k.inputs.w! && env.weight((k.inputs.w as { weight: string }).weight) !== undefined;
}

export const mergeSiblings: Rule<{ siblings: number[] }> = {
  name: 'merge-siblings',
  match(w, i, env) {
    const k = w.kernels[i]!;
    if (!plain(w, k, env)) return null;
    const x = k.inputs.x!;
    const dtype = env.weight((k.inputs.w as { weight: string }).weight)!.dtype;
    const siblings = [i];
    // the other readers of the same input buffer, in order
    const others = [...new Set(w.readersOf((x as { buf: number }).buf).map((r) => r.k))].filter((j) => j > i).sort((a, b) => a - b);
    for (const j of others) {
      const s = w.kernels[j]!;
      if (!plain(w, s, env) || !sameOperand(s.inputs.x!, x) || s.sizes.K !== k.sizes.K) continue;
      if (env.weight((s.inputs.w as { weight: string }).weight)!.dtype !== dtype || ('b' in s.inputs) !== ('b' in k.inputs)) continue;
      if (w.outputs.has(s.outputs.y!.buf) || w.buffers[s.outputs.y!.buf]!.rows !== w.buffers[k.outputs.y!.buf]!.rows) continue;
      siblings.push(j);
    }
    return siblings.length > 1 && !w.outputs.has(k.outputs.y!.buf) ? { siblings } : null;
  },
  rewrite(w, i, { siblings }, env) {
    const ks = siblings.map((j) => ofFamily(w.kernels[j]!, 'matmul'));
    const parts = ks.map((k) => (k.inputs.w as { weight: string }).weight);
    const name = mergedName(parts);
    const N = ks.reduce((n, k) => n + k.sizes.N, 0);
    const K = ks[0]!.sizes.K;
    const first = env.weight(parts[0]!)!;
    const derived: DerivedWeight[] = [{ name: `${name}.weight`, shape: [N, K], dtype: first.dtype as DerivedWeight['dtype'], from: { kind: 'concat', parts } }];
    const inputs: Record<string, Operand> = { x: ks[0]!.inputs.x!, w: { weight: `${name}.weight` } };
    if ('b' in ks[0]!.inputs) {
      const b = ks.map((k) => (k.inputs.b as { weight: string }).weight);
      derived.push({ name: `${name}.bias`, shape: [N], dtype: env.weight(b[0]!)!.dtype as DerivedWeight['dtype'], from: { kind: 'concat', parts: b } });
      inputs.b = { weight: `${name}.bias` };
    }
    const rows = w.buffers[ks[0]!.outputs.y!.buf]!.rows;
    const buf = w.addBuffer(N, rows);
    const product: Kernel = {
      ...ks[0]!, name: `${name}:linear`, sizes: { K, N }, inputs, outputs: { y: { buf, col: 0, width: N } },
      fused: ks.flatMap((k) => k.fused), source: [...new Set(ks.flatMap((k) => k.source))],
    };
    w.set(i, product);
    for (const j of siblings) if (j !== i) w.remove(j);
    let col = 0;
    for (const k of ks) {
      const c = col;
      w.redirectReads(k.outputs.y!.buf, (v) => ({ buf, col: c + v.col, width: v.width }));
      col += k.sizes.N;
    }
    w.addDerived(derived);
  },
};

/** `a.b.q_proj.weight`, `a.b.k_proj.weight` -> `a.b.q_proj+k_proj` */
function mergedName(weights: readonly string[]): string {
  const parts = weights.map((w) => w.replace(/\.weight$/, '').split('.'));
  let common = 0;
  while (parts.every((p) => p.length > common + 1 && p[common] === parts[0]![common])) common++;
  return [...parts[0]!.slice(0, common), parts.map((p) => p.slice(common).join('.')).join('+')].join('.');
}
