// The kernel program's one printer: dumps (ARCHC_DUMP_IR), golden files and error messages.
//
//   k3 matmul model.layers.0.mamba.in_proj:linear  K=32 N=148
//      x=%0[0:32]  w=model.layers.0.mamba.in_proj.weight  ->  y=%1[0:148]
//      prologue rmsnorm(model.layers.0.input_layernorm.weight, eps=0.00001)
//      fused rmsnorm linear  @ std/layers.arch:22 …

import { exprText } from '../../runtime/expr.ts';
import type { EntryOf, Epilogue, Kernel, Program, Prologue, TrainKernel, TrainOperand } from '../../runtime/program.ts';
import type { LoweredOf } from './lower.ts';

const operand = (o: TrainOperand): string => ('buf' in o ? `%${o.buf}[${o.col}:${o.col + o.width}]` : 'weight' in o ? o.weight : o.input);

function prologueText(p: Prologue): string {
  switch (p.kind) {
    case 'gather_last': return 'gather_last';
    case 'rmsnorm': return `rmsnorm(${p.weight}, eps=${p.eps})`;
    case 'layernorm': return `layernorm(${p.weight}${p.bias ? `, ${p.bias}` : ''}, eps=${p.eps})`;
    case 'rmsnorm_gated': return `rmsnorm_gated(${p.weight}, eps=${p.eps}, groups=${p.groups})`;
  }
}

function epilogueText(e: Epilogue): string {
  switch (e.kind) {
    case 'map': return `map[${e.width}] ${exprText(e.body)}`;
    case 'rope': return `rope@${e.col}(heads=${e.heads}, dim=${e.headDim}, rotary=${e.rotaryDim}, theta=${e.theta})`;
    case 'conv_step': return `conv_step@${e.col}(channels=${e.channels}, taps=${e.taps}, ${e.weight}${e.bias ? `, ${e.bias}` : ''}, state=${e.state}${e.post ? `, then ${exprText(e.post)}` : ''})`;
  }
}

export function printKernel(k0: TrainKernel, i: number): string {
  const k = k0 as Kernel; // a backward kernel: no state, body or stages
  const sizes = Object.entries(k.sizes).map(([n, v]) => `${n}=${v}`).join(' ');
  const attrs = Object.entries(k.attrs).map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(' ');
  const lines = [`k${i} ${k.family} ${k.name}  ${sizes}${attrs ? `  ${attrs}` : ''}${k.state !== undefined ? `  state=${k.state}` : ''}`];
  const ins = Object.entries(k.inputs).map(([n, o]) => `${n}=${operand(o)}`).join('  ');
  const outs = Object.entries(k.outputs).map(([n, o]) => `${n}=${operand(o)}`).join('  ');
  lines.push(`   ${ins}  ->  ${outs}`);
  for (const [n, e] of Object.entries(k.pre ?? {})) lines.push(`   pre ${n} = ${exprText(e)}`);
  if (k.body) lines.push(`   body ${exprText(k.body)}`);
  for (const p of k.prologue ?? []) lines.push(`   prologue ${prologueText(p)}`);
  for (const e of k.epilogue ?? []) lines.push(`   epilogue ${epilogueText(e)}`);
  lines.push(`   fused ${k.fused.join(' ')}${k.source.length ? `  @ ${k.source.join(' ')}` : ''}`);
  return lines.join('\n');
}

/** One entry, before (Lowered) or after (Entry) the memory plan. */
export function printEntry(name: string, e: LoweredOf<TrainKernel, string> | EntryOf<TrainKernel>): string {
  const head = 'arena' in e
    ? `;; ${name}: ${e.kernels.length} kernels, ${e.buffers.length} buffers, arena ${e.arena.T} floats per token + ${e.arena.S} per sequence${e.arena.C !== undefined ? ` + ${e.arena.C} constant` : ''}`
    : `;; ${name}: ${e.kernels.length} kernels, ${e.buffers.length} buffers`;
  const bufs = e.buffers.map((b) => `%${b.id} ${b.rows}x${b.width}${'offset' in b ? `@${b.offset}` : ''}`);
  const lines = [head, `;; buffers ${bufs.join(' ')}`];
  e.kernels.forEach((k, i) => lines.push(printKernel(k, i)));
  lines.push(`;; outputs ${Object.entries(e.outputs).map(([n, v]) => `${n}=${operand(v)}`).join(' ')}`);
  return lines.join('\n') + '\n';
}

export function printProgram(p: Program): string {
  const out = [`;; kernel program ${p.model}: ${p.weights.length} weights, ${p.derived.length} derived, ${p.states.length} states`];
  for (const d of p.derived) out.push(`;; derived ${d.name} [${d.shape.join(', ')}] ${d.dtype} = ${d.from.kind === 'concat' ? `concat(${d.from.parts.join(', ')})` : exprText(d.from.body)}`);
  p.states.forEach((s, i) => out.push(`;; state ${i} ${s.name} ${s.kind} per ${s.per} [${s.shape.join(', ')}]${s.window ? ` window ${s.window}` : ''}`));
  for (const c of p.choices) {
    const reads = c.reads.map((r) => `${JSON.stringify(r.value)}: ${Object.entries(r.tensors).map(([w, t]) => `${w} <- ${t}`).join(', ') || 'own tensors'}`);
    out.push(`;; at load ${c.param} (${c.keys.join(' | ')}, default ${JSON.stringify(c.value)}) ${reads.join('; ')}`);
  }
  for (const [n, e] of Object.entries(p.entries)) out.push(printEntry(n, e));
  if (p.train) out.push(printEntry('train', p.train));
  return out.join('\n') + '\n';
}
