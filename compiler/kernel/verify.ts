// Checks one entry's kernels at the pipeline's boundaries (after lowering, after the kernel passes,
// and in tests after every rule): views inside their buffers, every activation written before it
// is read, weights and states that exist, and the kernel's shape as its family's record has it
// (runtime/families.ts: sizes, operand slots and kinds, attributes, state, stages).

import { InternalError } from '../../dsl/diagnostics.ts';
import { exprLeaves } from '../../runtime/expr.ts';
import type { Expr, Kernel, TrainKernel, View } from '../../runtime/program.ts';
import type { LoweredOf } from './lower.ts';
import { familyProblems } from '../../runtime/families.ts';

export function verifyKernels(l: LoweredOf<TrainKernel, string>, weights: ReadonlySet<string>, states: number, after: string): void {
  const problems: string[] = [];
  const known = new Set([...weights, ...l.derived.map((d) => d.name)]);
  const written = new Set<number>();
  const view = (k: TrainKernel, what: string, v: View) => {
    const b = l.buffers[v.buf];
    if (!b) problems.push(`${k.name}: ${what} names buffer ${v.buf}, which does not exist`);
    else if (v.col < 0 || v.width < 1 || v.col + v.width > b.width) problems.push(`${k.name}: ${what} reads columns ${v.col}..${v.col + v.width} of a buffer ${b.width} wide`);
  };
  const weight = (k: TrainKernel, name: string) => {
    if (!known.has(name)) problems.push(`${k.name}: reads weight ${name}, which is neither a checkpoint tensor nor derived`);
  };
  const expr = (k: TrainKernel, e: Expr) => {
    for (const leaf of exprLeaves(e)) {
      if (leaf.op === 'w') weight(k, leaf.name);
      if (leaf.op === 'in' && !(leaf.name in k.inputs)) problems.push(`${k.name}: expression reads operand ${leaf.name}, which the kernel does not have`);
    }
  };
  l.kernels.forEach((k0) => {
    // a backward kernel has no stages, body or state: read as a kernel, those are absent
    const k = k0 as Kernel;
    for (const p of familyProblems(k, (o) => ('buf' in (o as object) ? 'view' : 'weight' in (o as object) ? 'weight' : 'input'))) problems.push(`${k.name}: ${p}`);
    for (const [n, v] of Object.entries(k.sizes)) if (!Number.isInteger(v) || v < 1) problems.push(`${k.name}: size ${n} = ${v}`);
    for (const [n, o] of Object.entries(k.inputs)) {
      if ('buf' in o) {
        view(k, `input ${n}`, o);
        if (!written.has(o.buf)) problems.push(`${k.name}: reads buffer ${o.buf} before any kernel writes it`);
      } else if ('weight' in o) weight(k, o.weight);
    }
    for (const [n, e] of Object.entries(k.pre ?? {})) {
      if (!(n in k.inputs)) problems.push(`${k.name}: pre expression for missing operand ${n}`);
      expr(k, e);
    }
    if (k.body) expr(k, k.body);
    for (const p of k.prologue ?? []) {
      if (p.kind !== 'gather_last') weight(k, p.weight);
      if (p.kind === 'layernorm' && p.bias) weight(k, p.bias);
    }
    for (const e of k.epilogue ?? []) {
      if (e.kind === 'map') expr(k, e.body);
      if (e.kind === 'conv_step') {
        weight(k, e.weight);
        if (e.bias) weight(k, e.bias);
        if (e.state < 0 || e.state >= states) problems.push(`${k.name}: conv_step state ${e.state} out of range`);
      }
    }
    if (k.state !== undefined && (k.state < 0 || k.state >= states)) problems.push(`${k.name}: state ${k.state} out of range`);
    for (const [n, v] of Object.entries(k.outputs)) {
      view(k, `output ${n}`, v);
      written.add(v.buf);
    }
  });
  for (const [n, v] of Object.entries(l.outputs)) if (!written.has(v.buf)) problems.push(`output ${n} is never written`);
  if (problems.length) throw new InternalError(`kernel IR of ${l.entry} is invalid after ${after}:\n  ${problems.slice(0, 20).join('\n  ')}`);
}
