// Fused = unfused, rule by rule: the same random checkpoint runs through two kernel programs that
// differ by one rule (each over the rules it builds on), on packed prefill, last-token prefill and
// batched decode; the logits must agree. The fused kernels round to f32 where the unfused ones
// store, so the programs agree exactly unless a rule changes the arithmetic.

import { expect } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { Rule } from '../../compiler/kernel/rewrite.ts';
import { Model } from '../../runtime/model.ts';
import type { EntryName, Kernel, Program } from '../../runtime/program.ts';
import { type Params, expectLogitsClose, makeDir, randomIds, removeDir, writeCheckpoint } from './checkpoints.ts';

export interface RuleCheck {
  readonly without: Program;
  readonly with: Program;
  /** Kernels per entry without and with the rule. */
  readonly counts: Readonly<Record<EntryName, readonly [number, number]>>;
  /** The largest |fused − unfused| over every logit compared. */
  readonly maxDiff: number;
}

const ENTRIES: readonly EntryName[] = ['forward', 'prefill', 'decode'];

/** Runs tiny Bamba (with `params`) under `base` and under `base` + `rule`, and compares. */
export async function checkRule(rule: Rule, base: readonly Rule[], params: Params = {}): Promise<RuleCheck> {
  const dir = makeDir('archc-rule-');
  try {
    const { compiled } = writeCheckpoint(dir, params, { seed: 3 });
    const without = lowerToProgram(compiled.graph, compiled.bindings, { rules: base });
    const withRule = lowerToProgram(compiled.graph, compiled.bindings, { rules: [...base, rule] });
    const a = await Model.loadProgram(without, dir, { threads: 1 });
    const b = await Model.loadProgram(withRule, dir, { threads: 1 });
    const V = a.vocab;
    let maxDiff = 0;
    const same = (x: Float32Array, y: Float32Array, what: string) => {
      expectLogitsClose(y, x, 1e-6, `${rule.name}: ${what}`, V);
      for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!));
    };
    // packed prefill of three sequences
    const ids = [...randomIds(6, V, 1), ...randomIds(3, V, 2), ...randomIds(5, V, 3)];
    same(a.forward({ ids, cuSeqlens: [0, 6, 9, 14] }).logits, b.forward({ ids, cuSeqlens: [0, 6, 9, 14] }).logits, 'packed forward');
    // last-token prefill, then four batched decode steps
    const prompts = [randomIds(5, V, 4), randomIds(2, V, 5)];
    const pa = a.prefill(prompts), pb = b.prefill(prompts);
    pa.logits.forEach((l, i) => same(l, pb.logits[i]!, `prefill ${i}`));
    for (let t = 0; t < 4; t++) {
      const next = [(t * 7 + 1) % V, (t * 5 + 2) % V];
      same(a.decode(next, pa.states), b.decode(next, pb.states), `decode step ${t}`);
    }
    a.dispose();
    b.dispose();
    const counts = Object.fromEntries(ENTRIES.map((e) => [e, [without.entries[e].kernels.length, withRule.entries[e].kernels.length] as const])) as RuleCheck['counts'];
    return { without, with: withRule, counts, maxDiff };
  } finally {
    removeDir(dir);
  }
}

/** Kernels of every entry of `p` that satisfy `pred`. */
export function kernelsWhere(p: Program, pred: (k: Kernel) => boolean): Kernel[] {
  return ENTRIES.flatMap((e) => p.entries[e].kernels.filter(pred));
}

/** The rule removed kernels from at least one entry and added none anywhere. */
export function expectFewer(c: RuleCheck): void {
  for (const e of ENTRIES) expect(c.counts[e][1], `${e} kernels`).toBeLessThanOrEqual(c.counts[e][0]);
  expect(ENTRIES.some((e) => c.counts[e][1] < c.counts[e][0]), 'the rule fused something').toBe(true);
}
