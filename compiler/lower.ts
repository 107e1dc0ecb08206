// The back half of the pipeline, top to bottom: for each entry point (forward, prefill, decode) the
// graph is lowered to unfused kernels, the kernel rules fuse them, the memory plan places every
// buffer in the arena. Asked for (`train`), the train entry too: the forward, the loss and the
// backward (compiler/kernel/train.ts), the same kernel rules over all of it (they fuse only what no
// other kernel reads, so the activations the backward reads stay buffers), the memory plan. The
// result is the kernel program (runtime/program.ts) that every backend runs; it ends at the memory
// plan: each target schedules the kernels as it renders them (codegen/<target>/). `ARCHC_DUMP_IR=1`
// prints the kernels after each step.

import {
  type DerivedWeight, type Entry, type EntryName, type EntryOf, type Program, type ProgramBinding, type ProgramChoice, type TrainEntry, type TrainKernel, weightsRead,
} from '../runtime/program.ts';
import type { Graph } from './ir.ts';
import { type Lowered, type LoweredOf, lowerGraph, rowWidth } from './kernel/lower.ts';
import { planMemory } from './kernel/memory.ts';
import { printEntry } from './kernel/printer.ts';
import { type RewriteCounts, type Rule, type RuleEnv, rewrite } from './kernel/rewrite.ts';
import { convStepEpilogue } from './kernel/rules/conv-step-epilogue.ts';
import { epilogue } from './kernel/rules/epilogue.ts';
import { foldWeights } from './kernel/rules/fold-weights.ts';
import { gatherPrologue } from './kernel/rules/gather-prologue.ts';
import { mergeSiblings } from './kernel/rules/merge-siblings.ts';
import { normPrologue } from './kernel/rules/norm-prologue.ts';
import { prologue } from './kernel/rules/prologue.ts';
import { ropeEpilogue } from './kernel/rules/rope-epilogue.ts';
import { views } from './kernel/rules/views.ts';
import { lowerTrain } from './kernel/train.ts';
import { verifyKernels } from './kernel/verify.ts';

/** The kernel rules in priority order (each runs over every kernel before the next; the list
 *  repeats until none matches). */
export const KERNEL_RULES: readonly Rule[] = [
  views, foldWeights, mergeSiblings, gatherPrologue, normPrologue, epilogue, prologue, ropeEpilogue, convStepEpilogue,
] as readonly Rule[];

export const ENTRIES: readonly EntryName[] = ['forward', 'prefill', 'decode'];

export interface LowerOptions {
  /** The kernel rules to run (default: all; `[]` runs the unfused kernels). */
  readonly rules?: readonly Rule[];
  /** Params decided at load (compiler/choices.ts); the graph has the weights of each distinct. */
  readonly choices?: readonly ProgramChoice[];
  /** Sums the kernel rules' work over the entries (what test/compiler/kernel/work.test.ts bounds). */
  readonly counts?: RewriteCounts;
  /** Also lower the train entry (loss and gradients; docs/TRAINING.md). */
  readonly train?: boolean;
}

export function lowerToProgram(g: Graph, bindings: readonly ProgramBinding[], opts: LowerOptions = {}): Program {
  const byName = new Map(g.weights.map((w) => [w.name, w]));
  const env: RuleEnv = { weight: (n) => byName.get(n) };
  const names = new Set(byName.keys());
  const derived = new Map<string, DerivedWeight>();
  const entries = {} as Record<EntryName, Entry>;
  for (const name of ENTRIES) {
    let l: Lowered = lowerGraph(g, name);
    verifyKernels(l, names, g.state.length, 'lowering');
    dump(`${name} after lowering`, l);
    l = rewrite(l, opts.rules ?? KERNEL_RULES, env, opts.counts);
    verifyKernels(l, names, g.state.length, 'the kernel rules');
    dump(`${name} after the kernel rules`, l);
    for (const d of l.derived) derived.set(d.name, d);
    entries[name] = planMemory(l);
    dump(`${name} after the memory plan`, entries[name]);
  }
  let train: TrainEntry | undefined;
  if (opts.train) {
    let l = lowerTrain(g);
    verifyKernels(l, names, g.state.length, 'lowering');
    dump('train after lowering', l);
    // the rules match inference families only; a backward kernel is to them a reader and a writer
    l = rewrite(l as unknown as Lowered, opts.rules ?? KERNEL_RULES, env, opts.counts) as unknown as typeof l;
    verifyKernels(l, names, g.state.length, 'the kernel rules');
    dump('train after the kernel rules', l);
    for (const d of l.derived) derived.set(d.name, d);
    train = planMemory(l, { constants: true });
    dump('train after the memory plan', train);
  }
  const read = weightsRead(train ? { ...entries, train } : entries);
  return {
    format: 'archc-kernels/1',
    model: g.model,
    params: g.params,
    bindings,
    choices: opts.choices ?? [],
    weights: g.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype })),
    derived: [...derived.values()].filter((d) => read.has(d.name)),
    states: g.state.map((s) => ({ name: s.name, kind: s.kind, per: s.per, shape: s.shape, ...(s.window ? { window: s.window } : {}) })),
    outputs: Object.fromEntries(g.outputs.map((o) => [o.name, rowWidth(g.values[o.value]!.type)])),
    entries,
    ...(train ? { train } : {}),
  };
}

function dump(step: string, e: LoweredOf<TrainKernel, string> | EntryOf<TrainKernel>): void {
  if (process.env.ARCHC_DUMP_IR) process.stderr.write(`;; ${step}\n${printEntry(step, e)}\n`);
}
