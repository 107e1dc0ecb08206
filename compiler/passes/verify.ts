// Checks the graph's invariants at pipeline boundaries; a failure is a compiler bug (InternalError).

import { InternalError } from '../../dsl/diagnostics.ts';
import { OP_BY_NAME } from '../ops.ts';
import type { Graph } from '../ir.ts';

export function verifyGraph(g: Graph, after: string): void {
  const bad = (msg: string): never => {
    throw new InternalError(`graph invalid after ${after}: ${msg}`);
  };
  g.values.forEach((v, i) => {
    if (v.id !== i) bad(`value ${i} has id ${v.id}`);
    if (v.source.kind === 'node' && g.nodes[v.source.node]?.outputs[v.source.index] !== v.id) bad(`value %${i} claims a node that does not produce it`);
  });
  const defined = new Set<number>(g.values.filter((v) => v.source.kind !== 'node').map((v) => v.id));
  g.nodes.forEach((n, i) => {
    if (n.id !== i) bad(`node ${i} has id ${n.id}`);
    const op = OP_BY_NAME.get(n.op) ?? bad(`node ${i}: unknown op ${n.op}`);
    if (n.inputs.length !== op.inputs.length) bad(`node ${i} (${n.op}) has ${n.inputs.length} inputs, op takes ${op.inputs.length}`);
    n.inputs.forEach((v, s) => {
      if (v === null) {
        if (!op.inputs[s]!.optional) bad(`node ${i} (${n.op}) lacks ${op.inputs[s]!.name}`);
      } else if (!defined.has(v)) bad(`node ${i} (${n.op}) reads %${v} before it is defined`);
    });
    const types = op.infer(n.inputs.map((v) => (v === null ? null : g.values[v]!.type)), n.attrs);
    if (types.length !== n.outputs.length) bad(`node ${i} (${n.op}) has ${n.outputs.length} outputs, rule gives ${types.length}`);
    n.outputs.forEach((o, k) => {
      if (JSON.stringify(g.values[o]!.type) !== JSON.stringify(types[k])) bad(`node ${i} (${n.op}) output %${o} type disagrees with its rule`);
      defined.add(o);
    });
  });
  for (const o of g.outputs) if (!defined.has(o.value)) bad(`output ${o.name} is undefined`);
  for (const s of g.state) if (!g.nodes[s.node]) bad(`state ${s.name} names no node`);
  const names = new Set<string>();
  for (const w of g.weights) {
    if (names.has(w.name)) bad(`weight ${w.name} declared twice`);
    names.add(w.name);
  }
}
