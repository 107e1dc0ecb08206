// Graph drawings for `archc graph`: Graphviz dot and Mermaid, one box per node, weights omitted.

import type { Graph } from './ir.ts';

function label(g: Graph, id: number): string {
  const v = g.values[id]!;
  return `${v.type.dtype}[${v.type.shape.join(',')}]`;
}

function edges(g: Graph): { from: string; to: string; label: string }[] {
  const out: { from: string; to: string; label: string }[] = [];
  for (const n of g.nodes) {
    for (const v of n.inputs) {
      if (v === null) continue;
      const src = g.values[v]!.source;
      if (src.kind === 'weight') continue;
      out.push({ from: src.kind === 'input' ? `in_${src.name}` : `n${src.node}`, to: `n${n.id}`, label: label(g, v) });
    }
  }
  for (const o of g.outputs) {
    const src = g.values[o.value]!.source;
    if (src.kind === 'node') out.push({ from: `n${src.node}`, to: `out_${o.name}`, label: label(g, o.value) });
  }
  return out;
}

export function toDot(g: Graph): string {
  const lines = [`digraph ${JSON.stringify(g.model)} {`, '  rankdir=TB;', '  node [shape=box, fontname="monospace"];'];
  for (const i of g.inputs) lines.push(`  in_${i.name} [label=${JSON.stringify(i.name)}, shape=oval];`);
  for (const n of g.nodes) lines.push(`  n${n.id} [label=${JSON.stringify(`${n.op}\n${n.scope}`)}];`);
  for (const o of g.outputs) lines.push(`  out_${o.name} [label=${JSON.stringify(o.name)}, shape=oval];`);
  for (const e of edges(g)) lines.push(`  ${e.from} -> ${e.to} [label=${JSON.stringify(e.label)}];`);
  lines.push('}');
  return lines.join('\n') + '\n';
}

export function toMermaid(g: Graph): string {
  const text = (s: string) => s.replace(/"/g, '#quot;');
  const lines = ['flowchart TD'];
  for (const i of g.inputs) lines.push(`  in_${i.name}(["${text(i.name)}"])`);
  for (const n of g.nodes) lines.push(`  n${n.id}["${text(n.op)}<br/>${text(n.scope)}"]`);
  for (const o of g.outputs) lines.push(`  out_${o.name}(["${text(o.name)}"])`);
  for (const e of edges(g)) lines.push(`  ${e.from} -->|"${text(e.label)}"| ${e.to}`);
  return lines.join('\n') + '\n';
}
