// Removes nodes whose outputs reach no model output, and weights no remaining node reads;
// renumbers values and nodes densely, keeping their order.

import type { Graph, Node, Value } from '../ir.ts';

export function pruneDead(g: Graph): Graph {
  const live = new Set<number>(g.outputs.map((o) => o.value));
  const keepNode = new Array<boolean>(g.nodes.length).fill(false);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    keepNode[i] = true;
    for (const v of n.inputs) if (v !== null) live.add(v);
  }
  if (keepNode.every(Boolean) && g.values.every((v) => v.source.kind !== 'weight' || live.has(v.id))) return g;

  const nodeId = new Map<number, number>();
  g.nodes.forEach((n, i) => keepNode[i] && nodeId.set(n.id, nodeId.size));
  const valueId = new Map<number, number>();
  const values: Value[] = [];
  for (const v of g.values) {
    const keep = v.source.kind === 'input' || (v.source.kind === 'weight' ? live.has(v.id) : nodeId.has(v.source.node));
    if (!keep) continue;
    const id = values.length;
    valueId.set(v.id, id);
    const source = v.source.kind === 'node' ? { ...v.source, node: nodeId.get(v.source.node)! } : v.source;
    values.push({ id, type: v.type, source });
  }
  const nodes: Node[] = g.nodes.filter((_, i) => keepNode[i]).map((n) => ({
    ...n,
    id: nodeId.get(n.id)!,
    inputs: n.inputs.map((v) => (v === null ? null : valueId.get(v)!)),
    outputs: n.outputs.map((v) => valueId.get(v)!),
  }));
  const liveWeights = new Set(values.flatMap((v) => (v.source.kind === 'weight' ? [v.source.name] : [])));
  return {
    ...g,
    values,
    nodes,
    inputs: g.inputs.map((i) => ({ ...i, value: valueId.get(i.value)! })),
    outputs: g.outputs.map((o) => ({ ...o, value: valueId.get(o.value)! })),
    weights: g.weights.filter((w) => liveWeights.has(w.name)),
    state: g.state.filter((s) => nodeId.has(s.node)).map((s) => ({ ...s, node: nodeId.get(s.node)! })),
  };
}
