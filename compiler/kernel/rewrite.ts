// The one generic rewriter for kernel passes: a rule is a (pattern, rewrite) pair over one entry's
// kernel list. Rules run in priority order, each over every kernel, and the whole list repeats
// until no rule matches. Rules see and edit a working copy (`Work`) whose kernels keep their slots
// (a removed kernel leaves a hole), so the index of writers and readers is updated edit by edit
// instead of rebuilt: lowering stays linear in the kernels (a 255-layer model took 10-40 s when
// every rewrite rebuilt it). Helpers here keep the rules short.

import { InternalError } from '../../dsl/diagnostics.ts';
import type { DerivedWeight, Kernel, KernelOf, Operand, Rows, View } from '../../runtime/program.ts';
import type { LBuffer, Lowered } from './lower.ts';

/** What a rule may need to know beyond the entry: the checkpoint weights' dtypes and shapes. */
export interface RuleEnv {
  readonly weight: (name: string) => { readonly shape: readonly number[]; readonly dtype: string } | undefined;
}

export interface Rule<M = unknown> {
  readonly name: string;
  /** The pattern, anchored at kernel slot i: the facts the rewrite needs, or null. */
  match(w: Work, i: number, env: RuleEnv): M | null;
  /** Edits `w` through its methods (which keep the index current). */
  rewrite(w: Work, i: number, m: M, env: RuleEnv): void;
}

export interface Read {
  readonly k: number;
  readonly slot: string;
  readonly view: View;
}

/** Work done by the rewriter, summed over calls: what the CI test bounds instead of wall time. */
export interface RewriteCounts {
  /** Rule matches tried (one rule at one kernel slot). */
  visits: number;
  /** Rewrites made. */
  rewrites: number;
  /** Index entries added or removed (a whole build counts each of its entries). */
  indexEdits: number;
}

export const newCounts = (): RewriteCounts => ({ visits: 0, rewrites: 0, indexEdits: 0 });

/** An entry being rewritten. Slots are positions in the lowered kernel order: a removed kernel
 *  leaves a hole, a replaced one keeps its slot, so slot order is program order throughout. */
export class Work {
  readonly entry: Lowered;
  /** Kernels by slot (undefined: removed) and buffers by id, changed only through the methods. */
  private readonly slots: (Kernel | undefined)[];
  private readonly bufs: LBuffer[];
  /** Derived weights by name, in the order they were added. */
  readonly derived: Map<string, DerivedWeight>;
  /** Slots of the kernels that write each buffer, ascending. */
  readonly writers = new Map<number, number[]>();
  /** Reads of each buffer by `slot:operand` (any order: no rule depends on it). */
  readonly readers = new Map<number, Map<string, Read>>();
  /** Buffers that are entry outputs. */
  readonly outputs: ReadonlySet<number>;
  private readonly counts: RewriteCounts;

  constructor(l: Lowered, counts: RewriteCounts) {
    this.entry = l;
    this.slots = [...l.kernels];
    this.bufs = [...l.buffers];
    this.derived = new Map(l.derived.map((d) => [d.name, d]));
    this.outputs = new Set(Object.values(l.outputs).map((v) => v.buf));
    this.counts = counts;
    this.slots.forEach((k, i) => this.index(k!, i, 1));
  }

  get kernels(): readonly (Kernel | undefined)[] { return this.slots; }
  get buffers(): readonly LBuffer[] { return this.bufs; }

  /** Adds (+1) or removes (-1) kernel `k` at slot `i` in the index. */
  private index(k: Kernel, i: number, sign: 1 | -1): void {
    for (const slot in k.inputs) {
      const o = k.inputs[slot]!;
      if (!('buf' in o)) continue;
      this.counts.indexEdits++;
      let rs = this.readers.get(o.buf);
      if (!rs) this.readers.set(o.buf, (rs = new Map()));
      if (sign > 0) rs.set(`${i}:${slot}`, { k: i, slot, view: o });
      else rs.delete(`${i}:${slot}`);
    }
    for (const name in k.outputs) {
      const b = k.outputs[name]!.buf;
      this.counts.indexEdits++;
      const ws = this.writers.get(b) ?? [];
      if (sign > 0) this.writers.set(b, [...ws, i].sort((x, y) => x - y));
      else this.writers.set(b, ws.filter((j) => j !== i));
    }
  }

  /** Kernel `k` in slot `i` (in place of the one there). */
  set(i: number, k: Kernel): void {
    this.index(this.slots[i]!, i, -1);
    this.slots[i] = k;
    this.index(k, i, 1);
  }

  /** Slot `i` emptied. */
  remove(i: number): void {
    this.index(this.slots[i]!, i, -1);
    this.slots[i] = undefined;
  }

  /** A new buffer; returns its id. */
  addBuffer(width: number, rows: Rows): number {
    const id = this.bufs.length;
    this.bufs.push({ id, width, rows });
    return id;
  }

  /** Adds derived weights (one definition per name: the first stays). */
  addDerived(add: readonly DerivedWeight[]): void {
    for (const d of add) if (!this.derived.has(d.name)) this.derived.set(d.name, d);
  }

  /** Every read of `buf` replaced by `to(view)`. */
  redirectReads(buf: number, to: (v: View) => Operand): void {
    for (const i of new Set(this.readersOf(buf).map((r) => r.k))) {
      const k = this.kernels[i]!;
      const inputs: Record<string, Operand> = { ...k.inputs };
      for (const slot in k.inputs) {
        const o = k.inputs[slot]!;
        if ('buf' in o && o.buf === buf) inputs[slot] = to(o);
      }
      this.set(i, { ...k, inputs });
    }
  }

  readersOf(buf: number): readonly Read[] {
    const rs = this.readers.get(buf);
    return rs ? [...rs.values()] : [];
  }

  /** The one kernel that writes `buf` (whole), or undefined. */
  soleWriter(buf: number): number | undefined {
    const w = this.writers.get(buf);
    if (!w || w.length !== 1) return undefined;
    const out = Object.values(this.kernels[w[0]!]!.outputs).find((v) => v.buf === buf)!;
    return out.col === 0 && out.width === this.buffers[buf]!.width ? w[0] : undefined;
  }

  /** The first slot that writes `buf` (-1 for none: weights and program inputs). */
  producedAt(buf: number): number {
    return this.writers.get(buf)?.[0] ?? -1;
  }

  /** True when no reader other than kernel `k` touches columns [col, col + width) of `buf`. */
  columnsOwnedBy(buf: number, col: number, width: number, k: number): boolean {
    return this.readersOf(buf).every((r) => r.k === k || r.view.col + r.view.width <= col || r.view.col >= col + width);
  }

  /** The entry as rewritten: the kernels in slot order, holes dropped. */
  result(): Lowered {
    return {
      ...this.entry, buffers: this.bufs, derived: [...this.derived.values()],
      kernels: this.slots.filter((k): k is Kernel => k !== undefined),
    };
  }
}

/** A matrix product over whole rows of its input ([T, K], not [T, heads, K]): the shape every
 *  fused stage assumes. */
export function flatProduct(w: { readonly buffers: readonly LBuffer[] }, k: Kernel): k is KernelOf<'matmul'> {
  const x = k.inputs.x;
  return k.family === 'matmul' && !!x && 'buf' in x && x.width === k.sizes.K && w.buffers[x.buf] !== undefined;
}

/** The union of two kernels' provenance, in order. */
export function merged(a: Kernel, b: Kernel): Pick<Kernel, 'fused' | 'source'> {
  return { fused: [...a.fused, ...b.fused], source: [...new Set([...a.source, ...b.source])] };
}

/** Runs `rules` to a fixed point; a budget of rewrites (each removes or merges kernels) catches
 *  rules that never settle. After a rewrite at slot i the same rule tries slot i again (the next
 *  kernel when i was removed). */
export function rewrite(l: Lowered, rules: readonly Rule[], env: RuleEnv, counts: RewriteCounts = newCounts()): Lowered {
  let budget = 4 * l.kernels.length + 16;
  const w = new Work(l, counts);
  for (let changed = true; changed;) {
    changed = false;
    for (const rule of rules) {
      for (let i = 0; i < w.kernels.length;) {
        if (w.kernels[i] === undefined) { i++; continue; }
        counts.visits++;
        const m = rule.match(w, i, env);
        if (m === null) { i++; continue; }
        rule.rewrite(w, i, m, env);
        counts.rewrites++;
        changed = true;
        if (--budget < 0) throw new InternalError(`kernel rule ${rule.name} keeps matching: the rules do not terminate`);
      }
    }
  }
  return w.result();
}
