// Model statistics from the graph: parameters (total, by kind), weight bytes per dtype and per
// weight format (f32, bf16, q8, q4), FLOPs per token for prefill and decode at a given context, and
// the inference state (KV cache, conv + SSM).

import { OP_BY_NAME, type TensorType } from './ops.ts';
import { quantBytes, shapeReason } from '../runtime/quant.ts';
import { DTYPE_BYTES, numel } from '../runtime/tensor.ts';
import type { Graph } from './ir.ts';
import type { ForProgram } from './choices.ts';

export interface Stats {
  readonly model: string;
  readonly parameters: {
    readonly total: number;
    /** Parameters one token reads: a mixture's experts count k of E (ops' `active`). */
    readonly active: number;
    /** embedding, head, then the top-level block type of each remaining weight (e.g. Mamba2). */
    readonly byKind: Readonly<Record<string, number>>;
    /** For each param config.json decides at load (compiler/choices.ts), the checkpoint's
     *  parameters under each of its values (the others at theirs): `total` is for `value`. */
    readonly atLoad?: readonly { readonly param: string; readonly key: string; readonly value: unknown; readonly totals: readonly { readonly value: unknown; readonly total: number }[] }[];
  };
  readonly weightBytes: {
    readonly total: number;
    readonly byDtype: Readonly<Record<string, number>>;
    /** All weights in f32 or bf16; q8/q4: the products' and embeddings' matrices quantised (K a
     *  multiple of 32; what runtime/quantplan.ts picks), the rest as declared. */
    readonly byFormat: Readonly<Record<WeightFormat, number>>;
    /** Parameters the q8/q4 formats quantise. */
    readonly quantizable: number;
  };
  readonly flopsPerToken: { readonly context: number; readonly prefill: number; readonly decode: number };
  readonly state: {
    /** KV cache bytes each token adds (while it is inside every layer's window). */
    readonly kvBytesPerToken: number;
    /** KV cache bytes of one sequence at `context`: each layer's per-token bytes × min(window, context). */
    readonly kvBytesPerSequence: number;
    readonly convSsmBytesPerSequence: number;
    readonly context: number;
    readonly batch: number;
    /** (KV per sequence + conv/SSM per sequence) × batch */
    readonly totalBytes: number;
  };
}

export type WeightFormat = 'f32' | 'bf16' | 'q8' | 'q4';

/** One WebAssembly (wasm32) memory: what a wasm backend can hold. */
export const WASM_MEMORY_BYTES = 4 * 2 ** 30;

/** Weights read only as a product's [out, in] matrix or an embedding/head table (by any op). */
function matrixWeights(g: Graph): Set<string> {
  const matrix = new Set<string>();
  const other = new Set<string>();
  for (const n of g.nodes) {
    n.inputs.forEach((v, i) => {
      const src = v === null || v === undefined ? undefined : g.values[v]!.source;
      if (src?.kind !== 'weight') return;
      const isMatrix = i === 1 && ((n.op === 'linear' && n.attrs.transposed !== true) || n.op === 'embedding' || n.op === 'head');
      (isMatrix ? matrix : other).add(src.name);
    });
  }
  for (const o of other) matrix.delete(o);
  return matrix;
}

/** Stats of `g` (the graph as configured); with `forProgram`, also the parameter counts of each
 *  load-time choice's values. */
export function computeStats(g: Graph, context: number, batch: number, forProgram?: ForProgram): Stats {

  // What each weight is, from the ops that read it.
  const kindOf = new Map<string, string>();
  for (const n of g.nodes) {
    if (n.op !== 'embedding' && n.op !== 'head') continue;
    const w = n.inputs[1];
    const src = w === null || w === undefined ? undefined : g.values[w]!.source;
    if (src?.kind === 'weight' && !kindOf.has(src.name)) kindOf.set(src.name, n.op === 'embedding' ? 'embedding' : 'head');
  }
  const byKind: Record<string, number> = {};
  const byDtype: Record<string, number> = {};
  const byFormat: Record<WeightFormat, number> = { f32: 0, bf16: 0, q8: 0, q4: 0 };
  const matrices = matrixWeights(g);
  let quantizable = 0;
  let total = 0;
  let bytes = 0;
  for (const w of g.weights) {
    const n = numel(w.shape);
    byFormat.f32 += n * 4;
    byFormat.bf16 += n * 2;
    const q = matrices.has(w.name) && shapeReason(w.shape) === null;
    if (q) quantizable += n;
    for (const f of ['q8', 'q4'] as const) byFormat[f] += q ? quantBytes(f, w.shape[0]!, w.shape[1]!) : n * DTYPE_BYTES[w.dtype];
    const kind = kindOf.get(w.name) ?? w.blocks[0] ?? 'other';
    byKind[kind] = (byKind[kind] ?? 0) + n;
    byDtype[w.dtype] = (byDtype[w.dtype] ?? 0) + n * DTYPE_BYTES[w.dtype];
    total += n;
    bytes += n * DTYPE_BYTES[w.dtype];
  }

  // a mixture reads k of its E experts' weights per token
  let inactive = 0;
  for (const n of g.nodes) {
    const op = OP_BY_NAME.get(n.op)!;
    if (!op.active) continue;
    const types = n.inputs.map((v) => (v === null ? null : g.values[v]!.type));
    const share = op.active(types);
    n.inputs.forEach((v, i) => { if (v !== null && g.values[v]!.source.kind === 'weight') inactive += (1 - share) * numel(types[i]!.shape as number[]); });
  }

  const flops = (mode: 'prefill' | 'decode') => {
    let sum = 0;
    for (const n of g.nodes) {
      const op = OP_BY_NAME.get(n.op)!;
      const types = n.inputs.map((v) => (v === null ? null : g.values[v]!.type));
      const outs: TensorType[] = n.outputs.map((o) => g.values[o]!.type);
      sum += op.flops(types, outs, n.attrs, { mode, context });
    }
    return sum;
  };

  let kv = 0, kvSeq = 0;
  let perSeq = 0;
  for (const s of g.state) {
    const b = numel(s.shape) * 4;
    // a sliding window's cache holds its last `window` tokens (runtime/program.ts kvRows)
    if (s.per === 'token') { kv += b; kvSeq += b * Math.min(s.window ?? context, context); }
    else perSeq += b;
  }
  return {
    model: g.model,
    parameters: { total, active: total - inactive, byKind, ...(forProgram?.choices.length ? { atLoad: atLoad(forProgram) } : {}) },
    weightBytes: { total: bytes, byDtype, byFormat, quantizable },
    flopsPerToken: { context, prefill: flops('prefill'), decode: flops('decode') },
    state: { kvBytesPerToken: kv, kvBytesPerSequence: kvSeq, convSsmBytesPerSequence: perSeq, context, batch, totalBytes: (kvSeq + perSeq) * batch },
  };
}

/** Parameters the checkpoint holds for each value of each choice: the distinct tensors the
 *  program's weights read (a tied head reads the embedding, so it adds none). */
function atLoad({ graph, choices }: ForProgram): NonNullable<Stats['parameters']['atLoad']> {
  const countWith = (tensors: Readonly<Record<string, string>>) => {
    const read = new Map(graph.weights.map((w) => [tensors[w.name] ?? w.name, numel(w.shape)]));
    return [...read.values()].reduce((a, b) => a + b, 0);
  };
  const defaults = (skip: string) => Object.assign({}, ...choices.filter((c) => c.param !== skip).map((c) => c.reads.find((r) => r.value === c.value)!.tensors)) as Record<string, string>;
  return choices.map((c) => ({
    param: c.param, key: c.keys[0]!, value: c.value,
    totals: c.reads.map((r) => ({ value: r.value, total: countWith({ ...defaults(c.param), ...r.tensors }) })),
  }));
}

/** 1234567 -> `1,234,567` */
export const group = (n: number) => Math.round(n).toLocaleString('en-US');

export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u ? 2 : 0)} ${units[u]}`;
}

export function flopsText(f: number): string {
  return f >= 1e9 ? `${(f / 1e9).toFixed(2)} GFLOP` : `${(f / 1e6).toFixed(2)} MFLOP`;
}

export function formatStats(s: Stats): string {
  const lines = [`model ${s.model}`, '', `parameters        ${group(s.parameters.total)}`];
  if (s.parameters.active < s.parameters.total) lines.push(`  active per token${group(s.parameters.active).padStart(16)}  ${((100 * s.parameters.active) / s.parameters.total).toFixed(1).padStart(5)}%`);
  for (const [k, n] of Object.entries(s.parameters.byKind).sort((a, b) => b[1] - a[1])) {
    lines.push(`  ${k.padEnd(16)}${group(n).padStart(16)}  ${((100 * n) / s.parameters.total).toFixed(1).padStart(5)}%`);
  }
  for (const c of s.parameters.atLoad ?? []) {
    lines.push(`  by config.json's ${c.key} (param ${c.param}), read at load; the default when absent:`);
    for (const t of c.totals) {
      const label = `${JSON.stringify(t.value)}${t.value === c.value ? ' (default)' : ''}`;
      lines.push(`    ${label.padEnd(16)}${group(t.total).padStart(15)}`);
    }
  }
  lines.push('', `weight bytes      ${human(s.weightBytes.total)}`);
  for (const [d, b] of Object.entries(s.weightBytes.byDtype)) lines.push(`  ${d.padEnd(16)}${human(b).padStart(16)}`);
  lines.push('', `weights by format (q8/q4: ${group(s.weightBytes.quantizable)} parameters of products and embeddings in groups of 32, the rest as declared)`);
  for (const [f, b] of Object.entries(s.weightBytes.byFormat)) {
    const fits = b <= WASM_MEMORY_BYTES ? 'fits' : 'does not fit';
    lines.push(`  ${f.padEnd(16)}${human(b).padStart(16)}  ${(b / 1e9).toFixed(2).padStart(7)} GB  ${fits} one wasm memory (4 GiB)`);
  }
  lines.push('', `FLOPs per token at context ${s.flopsPerToken.context}`,
    `  prefill         ${flopsText(s.flopsPerToken.prefill).padStart(16)}  (mean over the sequence)`,
    `  decode          ${flopsText(s.flopsPerToken.decode).padStart(16)}  (the next token)`);
  lines.push('', 'inference state (fp32)',
    `  KV cache        ${human(s.state.kvBytesPerToken).padStart(16)} per token`,
    ...(s.state.kvBytesPerSequence < s.state.kvBytesPerToken * s.state.context ? [`  KV (windowed)   ${human(s.state.kvBytesPerSequence).padStart(16)} per sequence at context ${s.state.context}`] : []),
    `  conv + SSM      ${human(s.state.convSsmBytesPerSequence).padStart(16)} per sequence`,
    `  total           ${human(s.state.totalBytes).padStart(16)} at context ${s.state.context} × batch ${s.state.batch}`);
  return lines.join('\n') + '\n';
}
