// Load-time choices: a bool param bound to config.json whose two values give the same graph except
// for which weights its ops read (same ops, attributes, types and state; the weights read instead
// have the same shape and dtype). `tie_word_embeddings` is one: the head reads the embedding or its
// own `lm_head.weight`, and no kernel changes. Such a param pins no kernel, so the program is lowered
// once from the variant whose weights are distinct, and the runtime binds, at load, the checkpoint
// tensor each of those weights reads for the value config.json gives (runtime/program.ts
// ProgramChoice). Found by instantiating the model with the param flipped and comparing the graphs.

import { CompileError } from '../dsl/diagnostics.ts';
import type { ProgramBinding, ProgramChoice } from '../runtime/program.ts';
import type { Graph, ParamValue, Value } from './ir.ts';

export interface ForProgram {
  /** The graph the program is lowered from: the weights of every choice distinct. */
  readonly graph: Graph;
  /** The params that pin the program (the bindings less the choices). */
  readonly bindings: readonly ProgramBinding[];
  readonly choices: readonly ProgramChoice[];
}

/**
 * `graph` was instantiated with `bindings`' values; `instantiateWith(overrides)` instantiates the
 * same model with some params set otherwise (`--set` text by param). Each bool binding is tried in
 * turn, against the graph of the choices found before it.
 */
export function findChoices(graph: Graph, bindings: readonly ProgramBinding[], instantiateWith: (sets: ReadonlyMap<string, string>) => Graph): ForProgram {
  let base = graph;
  const sets = new Map<string, string>();
  const choices: ProgramChoice[] = [];
  for (const b of bindings) {
    if (typeof b.value !== 'boolean') continue;
    let flipped: Graph;
    try {
      flipped = instantiateWith(new Map([...sets, [b.param, String(!b.value)]]));
    } catch (e) {
      if (e instanceof CompileError) continue; // the other value is no model (an assert, a shape)
      throw e;
    }
    if (!sameParamsBut(base, flipped, b.param)) continue;
    // The program reads the variant with more weights; the other variant's reads are renamings of it.
    const wider = flipped.weights.length > base.weights.length;
    const [slots, other] = wider ? [flipped, base] : [base, flipped];
    const reads = weightReads(slots, other);
    if (!reads) continue;
    const renamed = Object.fromEntries([...reads].filter(([slot, tensor]) => slot !== tensor));
    const otherValue = wider ? b.value : !b.value;
    choices.push({ param: b.param, keys: b.keys, value: b.value, reads: [{ value: otherValue, tensors: renamed }, { value: !otherValue, tensors: {} }] });
    if (wider) {
      base = flipped;
      sets.set(b.param, String(!b.value));
    }
  }
  const chosen = new Set(choices.map((c) => c.param));
  const params = { ...base.params, ...Object.fromEntries(choices.map((c) => [c.param, c.value as ParamValue])) };
  return { graph: { ...base, params }, bindings: bindings.filter((b) => !chosen.has(b.param)), choices };
}

/** Every param but `param` has the same value in both (so the choice moves nothing else). */
function sameParamsBut(a: Graph, b: Graph, param: string): boolean {
  const names = new Set([...Object.keys(a.params), ...Object.keys(b.params)]);
  return [...names].every((n) => n === param || same(a.params[n], b.params[n]));
}

/**
 * When `a` and `b` are the same graph up to the weights their ops read: for every weight of `a`, the
 * weight `b` reads in its place (one each, of the same type). Undefined when anything else differs.
 * Nodes are compared in order; values by what they are (an input by name, a node output by node and
 * index), since the two graphs number their values differently.
 */
export function weightReads(a: Graph, b: Graph): Map<string, string> | undefined {
  if (a.nodes.length !== b.nodes.length || a.outputs.length !== b.outputs.length || !same(a.inputs.map((i) => i.name), b.inputs.map((i) => i.name))) return undefined;
  if (!same(a.state.map(({ node: _, ...s }) => s), b.state.map(({ node: _, ...s }) => s)) || a.state.some((s, i) => s.node !== b.state[i]!.node)) return undefined;
  const reads = new Map<string, string>();
  const match = (va: Value, vb: Value): boolean => {
    if (!same(va.type, vb.type)) return false;
    const sa = va.source, sb = vb.source;
    if (sa.kind === 'weight' && sb.kind === 'weight') {
      const known = reads.get(sa.name);
      if (known !== undefined && known !== sb.name) return false;
      reads.set(sa.name, sb.name);
      return true;
    }
    return same(sa, sb);
  };
  for (const [i, na] of a.nodes.entries()) {
    const nb = b.nodes[i]!;
    if (na.op !== nb.op || !same(na.attrs, nb.attrs) || na.inputs.length !== nb.inputs.length || na.outputs.length !== nb.outputs.length) return undefined;
    for (const [k, x] of na.inputs.entries()) {
      const y = nb.inputs[k]!;
      if (x === null || y === null ? x !== y : !match(a.values[x]!, b.values[y]!)) return undefined;
    }
    for (const [k, x] of na.outputs.entries()) if (!same(a.values[x]!.type, b.values[nb.outputs[k]!]!.type)) return undefined;
  }
  for (const [k, o] of a.outputs.entries()) {
    const p = b.outputs[k]!;
    if (o.name !== p.name || !match(a.values[o.value]!, b.values[p.value]!)) return undefined;
  }
  // every weight of each graph is read, and the reads cover them all
  const bNames = new Set(b.weights.map((w) => w.name));
  if (a.weights.some((w) => !reads.has(w.name)) || reads.size !== a.weights.length) return undefined;
  if (new Set(reads.values()).size !== bNames.size || [...reads.values()].some((n) => !bNames.has(n))) return undefined;
  return reads;
}

function same(x: unknown, y: unknown): boolean {
  return JSON.stringify(x, jsonNumbers) === JSON.stringify(y, jsonNumbers);
}

/** Infinities and NaN compare by name (JSON would write them all as null). */
function jsonNumbers(_k: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}
