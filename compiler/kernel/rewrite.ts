// The one generic rewriter for kernel passes: a rule is a (pattern, rewrite) pair over one entry's
// kernel list. Rules run in priority order, each over every kernel, and the whole list repeats
// until no rule matches. Helpers here keep the rules short: who writes and reads each buffer, and
// redirecting reads from one buffer to another.

import { InternalError } from '../../dsl/diagnostics.ts';
import type { DerivedWeight, Kernel, KernelOf, Operand, View } from '../../runtime/program.ts';
import type { Lowered } from './lower.ts';

/** What a rule may need to know beyond the entry: the checkpoint weights' dtypes and shapes. */
export interface RuleEnv {
  readonly weight: (name: string) => { readonly shape: readonly number[]; readonly dtype: string } | undefined;
}

export interface Rule<M = unknown> {
  readonly name: string;
  /** The pattern, anchored at kernel i: the facts the rewrite needs, or null. */
  match(l: Lowered, i: number, ix: Index, env: RuleEnv): M | null;
  rewrite(l: Lowered, i: number, m: M, ix: Index, env: RuleEnv): Lowered;
}

export interface Read {
  readonly k: number;
  readonly slot: string;
  readonly view: View;
}

/** Writers and readers of every buffer, and the buffers that are entry outputs. */
export interface Index {
  readonly writers: ReadonlyMap<number, readonly number[]>;
  readonly readers: ReadonlyMap<number, readonly Read[]>;
  readonly outputs: ReadonlySet<number>;
}

export function indexOf(l: Lowered): Index {
  // plain loops: the rewriter rebuilds the index after every rewrite
  const writers = new Map<number, number[]>();
  const readers = new Map<number, Read[]>();
  const ks = l.kernels;
  for (let i = 0; i < ks.length; i++) {
    const k = ks[i]!;
    for (const slot in k.inputs) {
      const o = k.inputs[slot]!;
      if (!('buf' in o)) continue;
      const rs = readers.get(o.buf);
      if (rs) rs.push({ k: i, slot, view: o });
      else readers.set(o.buf, [{ k: i, slot, view: o }]);
    }
    for (const name in k.outputs) {
      const b = k.outputs[name]!.buf;
      const ws = writers.get(b);
      if (ws) ws.push(i);
      else writers.set(b, [i]);
    }
  }
  const outputs = new Set<number>();
  for (const n in l.outputs) outputs.add(l.outputs[n]!.buf);
  return { writers, readers, outputs };
}

/** The one kernel that writes `buf` (whole), or undefined. */
export function soleWriter(l: Lowered, ix: Index, buf: number): number | undefined {
  const w = ix.writers.get(buf);
  if (!w || w.length !== 1) return undefined;
  const out = Object.values(l.kernels[w[0]!]!.outputs).find((v) => v.buf === buf)!;
  return out.col === 0 && out.width === l.buffers[buf]!.width ? w[0] : undefined;
}

export const readersOf = (ix: Index, buf: number): readonly Read[] => ix.readers.get(buf) ?? [];

/** True when no reader other than kernel `k` touches columns [col, col + width) of `buf`. */
export function columnsOwnedBy(ix: Index, buf: number, col: number, width: number, k: number): boolean {
  return readersOf(ix, buf).every((r) => r.k === k || r.view.col + r.view.width <= col || r.view.col >= col + width);
}

/** Every read of `buf` in `kernels` replaced by `to(view)`. */
export function redirectReads(kernels: readonly Kernel[], buf: number, to: (v: View) => Operand): Kernel[] {
  return kernels.map((k) => {
    let inputs: Record<string, Operand> | undefined;
    for (const slot in k.inputs) {
      const o = k.inputs[slot]!;
      if ('buf' in o && o.buf === buf) (inputs ??= { ...k.inputs })[slot] = to(o);
    }
    return inputs ? { ...k, inputs } : k;
  });
}

/** A matrix product over whole rows of its input ([T, K], not [T, heads, K]): the shape every
 *  fused stage assumes. */
export function flatProduct(l: Lowered, k: Kernel): k is KernelOf<'matmul'> {
  const x = k.inputs.x;
  return k.family === 'matmul' && !!x && 'buf' in x && x.width === k.sizes.K && l.buffers[x.buf] !== undefined;
}

/** The union of two kernels' provenance, in order. */
export function merged(a: Kernel, b: Kernel): Pick<Kernel, 'fused' | 'source'> {
  return { fused: [...a.fused, ...b.fused], source: [...new Set([...a.source, ...b.source])] };
}

/** Adds derived weights to an entry (one definition per name). */
export function withDerived(l: Lowered, add: readonly DerivedWeight[]): readonly DerivedWeight[] {
  const names = new Set(l.derived.map((d) => d.name));
  return [...l.derived, ...add.filter((d) => !names.has(d.name))];
}

/** Runs `rules` to a fixed point; a budget of rewrites (each removes or merges kernels) catches rules that never settle. */
export function rewrite(l: Lowered, rules: readonly Rule[], env: RuleEnv): Lowered {
  let budget = 4 * l.kernels.length + 16;
  for (let changed = true; changed;) {
    changed = false;
    for (const rule of rules) {
      let ix = indexOf(l);
      for (let i = 0; i < l.kernels.length;) {
        const m = rule.match(l, i, ix, env);
        if (m === null) { i++; continue; }
        l = rule.rewrite(l, i, m, ix, env);
        ix = indexOf(l);
        changed = true;
        if (--budget < 0) throw new InternalError(`kernel rule ${rule.name} keeps matching: the rules do not terminate`);
      }
    }
  }
  return l;
}
