// Which checkpoint weights a load quantises, and to what. Only weights read as a (non-transposed)
// matrix product's weight or an embedding's table are candidates — directly or as parts of a weight
// concatenated at load (merged q/k/v, gate/up); 1-D tensors, norms, the conv weight and anything
// else a kernel, stage or folded weight reads stay as stored. Parts merged into one product take one
// format (the widest asked for any of them: none > q8 > q4), so their concatenation stays codes.

import { RuntimeError } from './errors.ts';
import { exprLeaves } from './expr.ts';
import type { Program } from './program.ts';
import { type QuantDType, QUANT_DTYPES, shapeReason } from './quant.ts';

export type QuantChoice = QuantDType | 'none';

/** `Model.load`'s `quantize`: one format for every candidate, or a default with per-tensor overrides
 *  (checkpoint tensor names, e.g. `{ default: 'q4', overrides: { 'lm_head.weight': 'q8' } }`). */
export type QuantizeOption = QuantDType | { readonly default: QuantChoice; readonly overrides?: Readonly<Record<string, QuantChoice>> };

export interface QuantPlan {
  /** Checkpoint tensor → its format (only those quantised). */
  readonly formats: ReadonlyMap<string, QuantDType>;
  /** Candidates left as stored, with the reason (K not a multiple of 32, an override, a merged part). */
  readonly kept: readonly { readonly name: string; readonly reason: string }[];
}

const WIDTH: Readonly<Record<QuantChoice, number>> = { q4: 0, q8: 1, none: 2 };

function choice(v: unknown, where: string): QuantChoice {
  if (v === 'none' || (QUANT_DTYPES as readonly unknown[]).includes(v)) return v as QuantChoice;
  throw new RuntimeError('RT174', [where, `one of q8, q4, none; got ${JSON.stringify(v)}`], { tensor: where });
}

/** Every checkpoint weight read only as a product's matrix or an embedding table, with the merged
 *  group (its derived weight's parts) it belongs to. */
export function quantCandidates(program: Program): Map<string, readonly string[]> {
  const matrixUse = new Set<string>();
  const otherUse = new Set<string>();
  for (const e of Object.values(program.entries)) {
    for (const k of e.kernels) {
      for (const [slot, o] of Object.entries(k.inputs)) {
        if (!('weight' in o)) continue;
        const matrix = slot === 'w' && ((k.family === 'matmul' && !k.attrs.transposed) || k.family === 'embedding');
        (matrix ? matrixUse : otherUse).add(o.weight);
      }
      for (const p of k.prologue ?? []) if (p.kind !== 'gather_last') otherUse.add(p.weight);
      for (const s of k.epilogue ?? []) if (s.kind === 'conv_step') { otherUse.add(s.weight); if (s.bias) otherUse.add(s.bias); }
    }
  }
  const groups = new Map<string, string[]>();
  for (const d of program.derived) {
    if (d.from.kind !== 'concat') {
      for (const l of exprLeaves(d.from.body)) if (l.op === 'w') otherUse.add(l.name);
      continue;
    }
    const usable = matrixUse.has(d.name) && !otherUse.has(d.name);
    for (const p of d.from.parts) {
      if (!usable) otherUse.add(p);
      else groups.set(p, [...d.from.parts]);
    }
  }
  const out = new Map<string, readonly string[]>();
  for (const w of program.weights) {
    if (otherUse.has(w.name)) continue;
    if (matrixUse.has(w.name) || groups.has(w.name)) out.set(w.name, groups.get(w.name) ?? [w.name]);
  }
  return out;
}

/** The plan for `opt` over `program`'s weights; `shapeOf` gives each checkpoint tensor's shape. */
export function planQuant(program: Program, opt: QuantizeOption, shapeOf: (name: string) => readonly number[]): QuantPlan {
  const def = choice(typeof opt === 'string' ? opt : opt.default, 'quantize');
  const overrides = typeof opt === 'string' ? {} : (opt.overrides ?? {});
  const cands = quantCandidates(program);
  const names = new Set(program.weights.map((w) => w.name));
  for (const [name, v] of Object.entries(overrides)) {
    choice(v, name);
    if (!names.has(name)) throw new RuntimeError('RT170', [name, 'this model has no weight of that name'], { tensor: name });
    if (!cands.has(name) && v !== 'none') throw new RuntimeError('RT170', [name, 'not a matrix product\'s or embedding\'s weight; only those are quantised'], { tensor: name });
  }
  const asked = (n: string): QuantChoice => overrides[n] ?? def;
  const formats = new Map<string, QuantDType>();
  const kept: { name: string; reason: string }[] = [];
  for (const [name, group] of cands) {
    const why = group.map((p) => [p, shapeReason(shapeOf(p))] as const).find(([, r]) => r !== null);
    if (why) {
      if (asked(name) !== 'none') kept.push({ name, reason: why[0] === name ? why[1]! : `merged with ${why[0]}: ${why[1]}` });
      continue;
    }
    const widest = group.map(asked).reduce((a, b) => (WIDTH[b] > WIDTH[a] ? b : a));
    if (widest === 'none') {
      if (asked(name) !== 'none') kept.push({ name, reason: 'merged with a part kept as stored' });
      continue;
    }
    formats.set(name, widest);
  }
  return { formats, kept };
}
