// Random checkpoints for experiments and tests: every weight gets an initialisation chosen by how
// the graph uses it, so that every path carries signal:
//   linear / head weights   U(±1/√fan_in)          (PyTorch's default for nn.Linear); fan_in is the
//                           last dim, or the first for a transposed ([in, out], GPT-2 Conv1D) weight
//   linear biases           U(±0.02)
//   embeddings              N(0, 0.02²) scaled up to unit rms when tied (the head reads it too)
//   norm weights            1 + N(0, 0.02²)        (rmsnorm, rmsnorm_gated, layernorm)
//   layernorm biases        U(±0.02)
//   depthwise conv weight   U(±1/√kernel), bias likewise
//   SSM A (via −exp(A_log)) A_log = log U[1, 16]
//   SSM dt bias             softplus⁻¹(dt), dt log-uniform in [1e-3, 1e-1]
//   SSM D                   1 + N(0, 0.01²)

import type { Rng } from '../runtime/rng.ts';
import type { Tensor } from '../runtime/tensor.ts';
import { fromF32, numel, type DType } from '../runtime/tensor.ts';
import type { Compiled } from './compile.ts';
import type { Graph } from './ir.ts';

export type InitRule = 'fan_in' | 'fan_in_rows' | 'bias' | 'embedding' | 'norm' | 'conv' | 'a_log' | 'dt_bias' | 'd_skip' | 'small';

/** Decides each weight's rule from the ops that read it (following elementwise chains). */
export function initRules(g: Graph): Map<string, InitRule> {
  const readers = new Map<number, { node: number; slot: number }[]>();
  g.nodes.forEach((n, i) => n.inputs.forEach((v, slot) => {
    if (v === null) return;
    if (!readers.has(v)) readers.set(v, []);
    readers.get(v)!.push({ node: i, slot });
  }));
  /** The first non-elementwise reader reached from value v, with the ops passed on the way. */
  const follow = (v: number, path: string[] = []): { op: string; slot: number; path: string[]; transposed?: boolean } | undefined => {
    const r = readers.get(v)?.[0];
    if (!r) return undefined;
    const n = g.nodes[r.node]!;
    if (['exp', 'neg', 'add', 'softplus', 'clamp', 'mul'].includes(n.op) && n.outputs.length === 1 && path.length < 6) {
      return follow(n.outputs[0]!, [...path, n.op]) ?? { op: n.op, slot: r.slot, path };
    }
    return { op: n.op, slot: r.slot, path, transposed: n.attrs.transposed === true };
  };
  const rules = new Map<string, InitRule>();
  for (const v of g.values) {
    if (v.source.kind !== 'weight') continue;
    const use = follow(v.id);
    let rule: InitRule = 'small';
    if (use) {
      if (use.op === 'embedding') rule = 'embedding';
      else if (use.op === 'head' || use.op === 'linear') rule = use.slot !== 1 ? 'bias' : use.transposed ? 'fan_in_rows' : 'fan_in';
      else if (use.op === 'rmsnorm' || use.op === 'rmsnorm_gated') rule = 'norm';
      else if (use.op === 'layernorm') rule = use.slot === 1 ? 'norm' : 'bias';
      else if (use.op === 'causal_conv1d') rule = 'conv';
      else if (use.op === 'ssd' && use.slot === 2) rule = 'a_log';
      else if (use.op === 'ssd' && use.slot === 1) rule = 'dt_bias';
      else if (use.op === 'ssd' && use.slot === 5) rule = 'd_skip';
    }
    rules.set(v.source.name, rule);
  }
  return rules;
}

function normal(rng: Rng): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Random tensors for every weight of the graph, in graph order. */
export function initWeights(g: Graph, rng: Rng, dtype?: DType): { name: string; tensor: Tensor }[] {
  return initWeightsLazily(g, rng, dtype).map((w) => ({ name: w.name, tensor: w.make() }));
}

/** One weight of a random checkpoint, made on demand: `make` must be called in the list's order,
 *  once each (the draws come from one generator), so a checkpoint of any size is written holding
 *  one tensor at a time, with the same values as `initWeights`. */
export interface LazyWeight {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  make(): Tensor;
}

export function initWeightsLazily(g: Graph, rng: Rng, dtype?: DType): LazyWeight[] {
  const rules = initRules(g);
  const tiedEmbeddings = new Set<string>();
  for (const n of g.nodes) {
    if (n.op !== 'head') continue;
    const src = g.values[n.inputs[1]!]!.source;
    if (src.kind === 'weight' && rules.get(src.name) === 'embedding') tiedEmbeddings.add(src.name);
  }
  let next = 0;
  return g.weights.map((w, i) => ({
    name: w.name,
    dtype: dtype ?? w.dtype,
    shape: w.shape,
    make: () => {
      if (next !== i) throw new Error(`initWeightsLazily: ${w.name} made out of order (${i}, expected ${next})`);
      next++;
      return fromF32(draw(w.shape, rules.get(w.name)!, tiedEmbeddings.has(w.name), rng), w.shape, dtype ?? w.dtype);
    },
  }));
}

function draw(shape: readonly number[], rule: InitRule, tied: boolean, rng: Rng): Float32Array {
  const n = numel(shape);
  const x = new Float32Array(n);
  const fanIn = shape.length >= 2 ? shape[shape.length - 1]! : shape[0]!;
  switch (rule) {
    case 'fan_in':
    case 'fan_in_rows': {
      const b = 1 / Math.sqrt(rule === 'fan_in' ? fanIn : shape[0]!);
      for (let i = 0; i < n; i++) x[i] = (2 * rng.next() - 1) * b;
      break;
    }
    case 'bias':
      for (let i = 0; i < n; i++) x[i] = (2 * rng.next() - 1) * 0.02;
      break;
    case 'embedding': {
      const s = tied ? 1 / Math.sqrt(shape[1]!) * 2 : 0.02;
      for (let i = 0; i < n; i++) x[i] = normal(rng) * s;
      break;
    }
    case 'norm':
      for (let i = 0; i < n; i++) x[i] = 1 + 0.02 * normal(rng);
      break;
    case 'conv': {
      const k = shape[shape.length - 1]!;
      const b = 1 / Math.sqrt(shape.length === 3 ? k : 4);
      for (let i = 0; i < n; i++) x[i] = (2 * rng.next() - 1) * b;
      break;
    }
    case 'a_log':
      for (let i = 0; i < n; i++) x[i] = Math.log(1 + 15 * rng.next());
      break;
    case 'dt_bias':
      for (let i = 0; i < n; i++) {
        const dt = Math.exp(Math.log(1e-3) + rng.next() * (Math.log(1e-1) - Math.log(1e-3)));
        x[i] = dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹
      }
      break;
    case 'd_skip':
      for (let i = 0; i < n; i++) x[i] = 1 + 0.01 * normal(rng);
      break;
    case 'small':
      for (let i = 0; i < n; i++) x[i] = 0.02 * normal(rng);
      break;
  }
  return x;
}

/** config.json for a random checkpoint: every bound param under its first key. It is marked as
 *  archc's own (model_type `archc-<model>`, architectures `Archc<Model>`, an `archc` entry), so no
 *  tool takes it for a real Hugging Face model of the same family; archc reads only the keys. */
export function hfConfigText(c: Compiled, dtype?: DType, edit?: (cfg: Record<string, unknown>) => void): string {
  const cfg: Record<string, unknown> = {
    architectures: [`Archc${c.graph.model}`],
    model_type: `archc-${c.graph.model.toLowerCase()}`,
    archc: { model: c.graph.model, note: 'random weights written by archc init-weights' },
  };
  for (const b of c.allBindings) cfg[b.keys[0]!] = b.value;
  const d = dtype ?? (typeof c.graph.params.dtype === 'string' ? c.graph.params.dtype : 'f32');
  cfg.torch_dtype = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[d as 'f32' | 'f16' | 'bf16'] ?? 'float32';
  edit?.(cfg);
  // Hugging Face writes infinities as bare Infinity (Python's json); so do we.
  return JSON.stringify(cfg, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? `__${v}__` : v), 2)
    .replace(/"__(-?Infinity|NaN)__"/g, '$1') + '\n';
}
