// Lowering: the graph becomes the kernel program — one step per node (fusion comes with the GPU
// backends), buffers numbered as the graph's values, each step told which buffers it frees.

import type { Program, ProgramBinding } from '../runtime/program.ts';
import type { Graph } from './ir.ts';

export function lowerToProgram(g: Graph, bindings: readonly ProgramBinding[]): Program {
  const lastUse = new Map<number, number>();
  g.nodes.forEach((n, i) => {
    for (const v of n.inputs) if (v !== null) lastUse.set(v, i);
  });
  const kept = new Set(g.outputs.map((o) => o.value));
  const persistent = (v: number) => g.values[v]!.source.kind !== 'node' || kept.has(v);
  const release = g.nodes.map(() => [] as number[]);
  for (const [v, i] of lastUse) if (!persistent(v)) release[i]!.push(v);
  // A node output nobody reads dies at once.
  g.nodes.forEach((n, i) => {
    for (const o of n.outputs) if (!lastUse.has(o) && !kept.has(o)) release[i]!.push(o);
  });
  const stateOf = new Map(g.state.map((s, i) => [s.node, i]));
  return {
    format: 'archc-program/1',
    model: g.model,
    params: g.params,
    bindings,
    inputs: g.inputs.map((i) => ({ name: i.name, buffer: i.value })),
    outputs: g.outputs.map((o) => ({ name: o.name, buffer: o.value })),
    buffers: g.values.map((v) => ({ id: v.id, shape: v.type.shape, dtype: v.type.dtype })),
    weights: g.weights.map((w) => ({
      name: w.name, shape: w.shape, dtype: w.dtype,
      buffer: g.values.find((v) => v.source.kind === 'weight' && v.source.name === w.name)!.id,
    })),
    states: g.state.map((s) => ({ name: s.name, kind: s.kind, per: s.per, shape: s.shape })),
    steps: g.nodes.map((n, i) => ({
      op: n.op, inputs: n.inputs, outputs: n.outputs, attrs: n.attrs, scope: n.scope,
      ...(stateOf.has(n.id) ? { state: stateOf.get(n.id)! } : {}),
      release: release[i]!.sort((a, b) => a - b),
    })),
  };
}
