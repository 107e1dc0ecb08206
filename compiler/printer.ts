// The one printer of the graph IR, used by `archc graph`, ARCHC_DUMP_IR and the golden files.

import type { Graph, Value } from './ir.ts';

const type = (v: Value) => `${v.type.dtype}[${v.type.shape.join(', ')}]`;

function attr(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(attr).join(', ')}]`;
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : v > 0 ? 'inf' : '-inf';
  return JSON.stringify(v);
}

export function printGraph(g: Graph): string {
  const out: string[] = [`graph ${g.model}`];
  for (const [k, v] of Object.entries(g.params)) out.push(`  param ${k} = ${attr(v)}`);
  for (const i of g.inputs) out.push(`  input %${i.value} ${i.name}: ${type(g.values[i.value]!)}`);
  for (const w of g.weights) {
    const v = g.values.find((x) => x.source.kind === 'weight' && x.source.name === w.name)!;
    out.push(`  weight %${v.id} ${w.name}: ${w.dtype}[${w.shape.join(', ')}]  (${w.blocks.join('/')})`);
  }
  for (const s of g.state) out.push(`  state ${s.name}: ${s.dtype}[${s.shape.join(', ')}] per ${s.per}${s.window ? ` window ${s.window}` : ''}  (node ${s.node})`);
  for (const n of g.nodes) {
    const lhs = n.outputs.map((o) => `%${o}`).join(', ');
    const args = n.inputs.map((i) => (i === null ? '_' : `%${i}`));
    const attrs = Object.entries(n.attrs).map(([k, v]) => `${k}: ${attr(v)}`);
    const types = n.outputs.map((o) => type(g.values[o]!)).join(', ');
    out.push(`  ${lhs} = ${n.op}(${[...args, ...attrs].join(', ')}) : ${types}  @${n.scope || '.'}`);
  }
  for (const o of g.outputs) out.push(`  output ${o.name} = %${o.value}`);
  return out.join('\n') + '\n';
}
