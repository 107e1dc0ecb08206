// The primitive ops: one record each with its slots, attributes, shape/dtype rule, carried state,
// cost model and lowering to kernels. The compiler types the graph with `infer` as it is built and
// lowers each node with `lower` (compiler/kernel/lower.ts); every target then runs the kernel
// families (runtime/cpu/families.ts for the CPU). Shapes are lists of dims where 'T' is the
// (symbolic) number of token rows.

import type { DType } from '../runtime/tensor.ts';
import type { StateKind } from '../runtime/program.ts';
import type { View } from '../runtime/program.ts';
import type { LowerCtx } from './kernel/lower.ts';
import { GATHER_OPS } from './ops-gather.ts';
import { ROUTE_OPS } from './ops-route.ts';
import { SCALE } from './ops-scale.ts';

export type Dim = number | 'T';
export interface TensorType {
  readonly shape: readonly Dim[];
  readonly dtype: DType;
}
export type AttrValue = number | boolean | string | readonly AttrValue[];
export type Attrs = Readonly<Record<string, AttrValue>>;

export type { StateKind };
export interface StateSpec {
  readonly kind: StateKind;
  /** Per token (KV cache rows) or per sequence (conv window, SSM state). */
  readonly per: 'token' | 'sequence';
  readonly shape: readonly number[];
  /** A per-token state read only over its last `window` rows (sliding-window attention's KV cache):
   *  a slot holds min(window, capacity) rows as a ring. */
  readonly window?: number;
}

/** Query heads per KV head that every target's attention takes (WebGPU's workgroup limit). */
export const MAX_QUERY_GROUP = 256;

/** What a shape rule reports for a bad use; the compiler attaches the call's span. */
export class OpError extends Error {}

/** The largest dimension, row width or integer attribute a program may hold: the kernels and the
 *  wasm and WGSL sizes are 32-bit integers, so 2^31 would wrap to a negative size. */
export const MAX_SIZE = 2 ** 31 - 1;
/** The most elements one token's row of a value may hold (1 GiB of f32): the wasm kernels address a
 *  row with 32-bit byte offsets, also where the kernel rules merge several rows into one buffer. */
export const MAX_ROW = 2 ** 28;

/** A use of `op` through its shape rule, with the checks every op shares: integer and floating
 *  slots, fixed slots (weights, not values over the tokens), and sizes within MAX_SIZE. */
export interface UseContext {
  /** Which inputs are declared weights. */
  readonly weights: readonly boolean[];
  /** The first value of each `uniform` attribute in the model, and where it was given. */
  readonly uniform: Map<string, { value: unknown; at: string }>;
  /** This use's place, file:line:col. */
  readonly at: string;
}

export function inferUse(op: OpDef, types: readonly (TensorType | null)[], attrs: Attrs, { weights, uniform, at }: UseContext): TensorType[] {
  op.inputs.forEach((s, i) => {
    const t = types[i];
    if (t && s.int && t.dtype !== 'i32') throw new OpError(`${s.name} must be integers, got ${t.dtype}`);
    if (t && !s.int && t.dtype === 'i32') throw new OpError(`${s.name} must be floating point, got integer ${t.dtype}`);
    if (t && s.fixed && t.shape.includes('T')) throw new OpError(`${s.name} must be computed from weights alone, got a value over the tokens ${fmt(t.shape)}`);
    if (t && s.weight && !weights[i]) throw new OpError(`${s.name} must be a declared weight (the kernels read it as stored), got ${t.shape.includes('T') ? 'a value over the tokens' : 'a value computed from weights'} ${fmt(t.shape)}`);
  });
  for (const [k, def] of Object.entries(op.attrs)) {
    const v = num(attrs, k);
    if (def.type === 'float' && typeof v === 'number' && (Number.isNaN(v) || (!def.infinite && !Number.isFinite(v)))) throw new OpError(`${k} must be a finite number, got ${v}`);
    if (def.type === 'int' && Math.abs(num(attrs, k)) > MAX_SIZE) throw new OpError(`${k} ${num(attrs, k)} is over ${MAX_SIZE} (2^31 − 1, the largest size the kernels index)`);
  }
  const outs = op.infer(types, attrs);
  for (const k of op.uniform ?? []) {
    const first = uniform.get(`${op.name}.${k}`);
    if (first && first.value !== attrs[k]) throw new OpError(`${k} ${attrs[k]} differs from the ${k} ${first.value} of the first ${op.name} (${first.at}): one model uses one ${k}`);
    if (!first) uniform.set(`${op.name}.${k}`, { value: attrs[k], at });
  }
  for (const t of outs) {
    if (rowSize(t) > MAX_ROW) throw new OpError(`the result ${fmt(t.shape)} has ${rowSize(t)} elements per token, over ${MAX_ROW} (2^28: the kernels address a row with 32-bit byte offsets)`);
  }
  return outs;
}

export interface CostContext {
  /** Tokens already in the sequence when this token is processed (decode) or its length (prefill). */
  readonly context: number;
  readonly mode: 'prefill' | 'decode';
}

export interface SlotDef {
  readonly name: string;
  readonly optional?: boolean;
  /** Integer inputs (token ids, positions); all others are floating point. */
  readonly int?: boolean;
  /** A value computed from weights alone: it may not have a T dim (AC400). */
  readonly fixed?: boolean;
  /** A weight as declared (`weight w[…]`), which the kernels read in its stored format (AC400). */
  readonly weight?: boolean;
}

export interface AttrDef {
  readonly type: 'int' | 'float' | 'bool' | 'list';
  /** A float attribute that may be ±infinity (a bound); any other float must be finite (AC400). */
  readonly infinite?: boolean;
  readonly default?: AttrValue;
  /** May be left out, and then is absent from the node (not printed): the op's plain form; an int
   *  given as 0 is the same (`window: 0`: full attention), so each form has one spelling. */
  readonly optional?: boolean;
  readonly doc: string;
}

export interface OpDef {
  readonly name: string;
  readonly doc: string;
  readonly inputs: readonly SlotDef[];
  readonly attrs: Readonly<Record<string, AttrDef>>;
  /** Attributes every use of the op in a model must give the same value (the targets render one). */
  readonly uniform?: readonly string[];
  /** Output types; throws OpError on a bad use. */
  infer(inputs: readonly (TensorType | null)[], attrs: Attrs): TensorType[];
  state?(inputs: readonly (TensorType | null)[], attrs: Attrs): StateSpec;
  /** Floating-point operations for one token row. */
  flops(inputs: readonly (TensorType | null)[], outputs: readonly TensorType[], attrs: Attrs, at: CostContext): number;
  /** Emits the kernels that compute the node (unfused: the kernel passes fuse them). */
  lower(ctx: LowerCtx): void;
  /** The share of its weight operands one token reads (a mixture's k of E experts); absent: all. */
  active?(inputs: readonly (TensorType | null)[]): number;
}

// ---- helpers for the rules ---------------------------------------------------------------

const f32 = (shape: readonly Dim[]): TensorType => ({ shape, dtype: 'f32' });
const fmt = (s: readonly Dim[]) => `[${s.join(', ')}]`;
const last = (t: TensorType): Dim => t.shape[t.shape.length - 1]!;
/** Elements in one token row (all dims but a leading T). */
function rowSize(t: TensorType): number {
  let n = 1;
  for (const d of t.shape) if (d !== 'T') n *= d;
  return n;
}
function need(t: TensorType | null, what: string): TensorType {
  if (!t) throw new OpError(`missing ${what}`);
  return t;
}
function rank(t: TensorType, r: number, what: string, form: string): void {
  if (t.shape.length !== r) throw new OpError(`${what} must be ${form}, got ${fmt(t.shape)}`);
}
function same(a: Dim | string, b: Dim | string, msg: string): void {
  if (a !== b) throw new OpError(msg);
}
const num = (a: Attrs, k: string) => a[k] as number;
/** attention's sliding window, 0 when it attends to every earlier key. */
const windowOf = (a: Attrs) => (a.window as number | undefined) ?? 0;

function elementwise(name: 'silu' | 'sigmoid' | 'softplus' | 'exp' | 'neg' | 'relu2', doc: string, cost = 1): OpDef {
  return {
    name, doc, inputs: [{ name: 'x' }], attrs: {},
    infer: ([x]) => [f32(need(x, 'x').shape)],
    flops: ([x]) => cost * rowSize(x!),
    lower: (c) => c.elementwise((leaf) => ({ op: name, a: leaf(0) })),
  };
}

function broadcasting(name: 'add' | 'mul', doc: string): OpDef {
  return {
    name, doc, inputs: [{ name: 'a' }, { name: 'b' }], attrs: {},
    infer([a, b]) {
      const A = need(a, 'a'), B = need(b, 'b');
      const tail = A.shape.slice(A.shape.length - B.shape.length);
      if (B.shape.length > A.shape.length || fmt(tail) !== fmt(B.shape)) {
        throw new OpError(`cannot ${name} ${fmt(B.shape)} to ${fmt(A.shape)}: shapes must match or the second must match the first's trailing dims`);
      }
      return [f32(A.shape)];
    },
    flops: ([a]) => rowSize(a!),
    lower: (c) => c.elementwise((leaf) => ({ op: name, a: leaf(0), b: leaf(1) })),
  };
}

// ---- the ops -----------------------------------------------------------------------------

export const OPS: readonly OpDef[] = [
  {
    name: 'embedding', doc: 'rows of a [vocab, dim] table picked by integer ids [T]',
    inputs: [{ name: 'ids', int: true }, { name: 'weight', weight: true }], attrs: {},
    infer([ids, w]) {
      const I = need(ids, 'ids'), W = need(w, 'weight');
      rank(W, 2, 'embedding weight', '[vocab, dim]');
      if (I.dtype !== 'i32') throw new OpError(`embedding ids must be integers, got ${I.dtype}`);
      return [f32([...I.shape, W.shape[1]!])];
    },
    flops: () => 0,
    lower(c) {
      const [V, D] = c.types[1]!.shape as [number, number];
      c.emit({ family: 'embedding', sizes: { V, D }, inputs: { ids: c.in(0)!, w: c.in(1)! }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'linear', doc: 'x · weightᵀ (+ bias) over the last dim; weight is [out, in] as in PyTorch, or [in, out] when transposed',
    inputs: [{ name: 'x' }, { name: 'weight', weight: true }, { name: 'bias', optional: true, weight: true }],
    attrs: { transposed: { type: 'bool', default: false, doc: "the weight is stored [in, out] (GPT-2's Conv1D): y = x · weight" } },
    infer([x, w, b], a) {
      const X = need(x, 'x'), W = need(w, 'weight');
      const t = a.transposed === true;
      rank(W, 2, 'linear weight', t ? '[in, out] (transposed)' : '[out, in]');
      const [nIn, nOut] = t ? [W.shape[0]!, W.shape[1]!] : [W.shape[1]!, W.shape[0]!];
      same(last(X), nIn, `linear input width ${last(X)} does not match weight ${fmt(W.shape)} (in = ${nIn})`);
      if (b) same(fmt(b.shape), fmt([nOut]), `linear bias ${fmt(b.shape)} does not match ${nOut} outputs`);
      return [f32([...X.shape.slice(0, -1), nOut])];
    },
    flops: ([, w]) => 2 * (w!.shape[0] as number) * (w!.shape[1] as number),
    lower(c) {
      const t = c.attrs.transposed === true;
      const [a, b0] = c.types[1]!.shape as [number, number];
      const [K, N] = t ? [a, b0] : [b0, a];
      const b = c.in(2);
      c.emit({ family: 'matmul', sizes: { K, N }, inputs: { x: c.in(0)!, w: c.in(1)!, ...(b ? { b } : {}) }, ...(t ? { attrs: { transposed: true } } : {}), outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'head', doc: 'the language-model head: logits = x · weightᵀ, weight [vocab, dim] (tied or not)',
    inputs: [{ name: 'x' }, { name: 'weight', weight: true }], attrs: {},
    infer([x, w]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      rank(W, 2, 'head weight', '[vocab, dim]');
      same(last(X), W.shape[1]!, `head input width ${last(X)} does not match weight ${fmt(W.shape)}`);
      return [f32([...X.shape.slice(0, -1), W.shape[0]!])];
    },
    flops: ([, w]) => 2 * (w!.shape[0] as number) * (w!.shape[1] as number),
    lower(c) {
      const [N, K] = c.types[1]!.shape as [number, number];
      let x = c.in(0)!;
      // prefill: the head runs on each sequence's last token only
      if (c.mode === 'prefill') {
        const last = c.temp(K, 'S');
        c.emit({ family: 'gather_last', part: 'last_rows', sizes: { W: K }, inputs: { x }, outputs: { y: last } });
        x = last;
      }
      c.emit({ family: 'matmul', sizes: { K, N }, inputs: { x, w: c.in(1)! }, outputs: { y: c.out(0, c.mode === 'prefill' ? 'S' : undefined) } });
    },
  },
  broadcasting('add', 'a + b'),
  broadcasting('mul', 'a · b'),
  {
    name: 'split', doc: 'cuts the last dim into consecutive parts of the given sizes',
    inputs: [{ name: 'x' }], attrs: { sizes: { type: 'list', doc: 'part sizes, summing to the last dim' } },
    infer([x], a) {
      const X = need(x, 'x');
      const sizes = a.sizes as number[];
      const total = sizes.reduce((s, n) => s + n, 0);
      if (sizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new OpError(`split sizes must be positive integers, got [${sizes.join(', ')}]`);
      same(total, last(X), `split sizes [${sizes.join(', ')}] sum to ${total}, but the last dim of ${fmt(X.shape)} is ${last(X)}`);
      return sizes.map((n) => f32([...X.shape.slice(0, -1), n]));
    },
    flops: () => 0,
    // a view holds one row per token: a part of a [T, …, W] tensor with several rows of W per token
    // is one copy per row (row s: columns s·W + offset of x into s·n of the part)
    lower(c) {
      const x = c.in(0) as View, W = last(c.types[0]!) as number, rows = rowSize(c.types[0]!) / W;
      let offset = 0;
      (c.attrs.sizes as number[]).forEach((n, i) => {
        const y = c.out(i);
        for (let s = 0; s < rows; s++) {
          c.emit({
            family: 'copy', part: rows > 1 ? `${i}.${s}` : String(i), sizes: { W: n },
            inputs: { x: { buf: x.buf, col: x.col + s * W + offset, width: n } }, outputs: { y: rows > 1 ? { buf: y.buf, col: y.col + s * n, width: n } : y },
          });
        }
        offset += n;
      });
    },
  },
  {
    name: 'reshape', doc: 'regroups the dims after T, e.g. [T, 4096] -> [T, 32, 128]',
    inputs: [{ name: 'x' }], attrs: { dims: { type: 'list', doc: 'the new dims after T' } },
    infer([x], a) {
      const X = need(x, 'x');
      const to = a.dims as number[];
      if (to.some((n) => !Number.isInteger(n) || n <= 0)) throw new OpError(`reshape dims must be positive integers, got [${to.join(', ')}]`);
      const n = to.reduce((p, d) => p * d, 1);
      same(n, rowSize(X), `cannot reshape ${fmt(X.shape)} to [T, ${to.join(', ')}]: ${rowSize(X)} elements per row, not ${n}`);
      return [f32(X.shape[0] === 'T' ? ['T', ...to] : to)];
    },
    flops: () => 0,
    lower(c) {
      c.emit({ family: 'copy', sizes: { W: rowSize(c.types[0]!) }, inputs: { x: c.in(0)! }, outputs: { y: c.out(0) } });
    },
  },
  elementwise('silu', 'x · sigmoid(x)', 4),
  elementwise('sigmoid', '1 / (1 + e^−x)', 4),
  {
    name: 'gelu', doc: 'x · Φ(x), exact (erf) or with tanh its tanh approximation (PyTorch approximate="tanh")',
    inputs: [{ name: 'x' }],
    attrs: { tanh: { type: 'bool', default: false, doc: 'use the tanh approximation (HF gelu_new, gelu_pytorch_tanh)' } },
    infer: ([x]) => [f32(need(x, 'x').shape)],
    flops: ([x]) => 8 * rowSize(x!),
    lower: (c) => c.elementwise((leaf) => ({ op: c.attrs.tanh === true ? 'gelu_tanh' : 'gelu', a: leaf(0) })),
  },
  elementwise('softplus', 'log(1 + exp(x)), identity above 20 as in PyTorch', 3),
  elementwise('exp', 'eˣ'),
  elementwise('relu2', 'max(x, 0)², squared ReLU (HF "relu2": Nemotron-H\'s MLP)', 2),
  SCALE,
  elementwise('neg', '−x'),
  {
    name: 'clamp', doc: 'limits x to [min, max]',
    inputs: [{ name: 'x' }],
    attrs: { min: { type: 'float', default: -Infinity, infinite: true, doc: 'lower bound' }, max: { type: 'float', default: Infinity, infinite: true, doc: 'upper bound' } },
    infer([x], a) {
      if (num(a, 'min') > num(a, 'max')) throw new OpError(`clamp min ${num(a, 'min')} is above max ${num(a, 'max')}`);
      return [f32(need(x, 'x').shape)];
    },
    flops: ([x]) => rowSize(x!),
    lower: (c) => c.elementwise((leaf) => ({ op: 'clamp', a: leaf(0), min: num(c.attrs, 'min'), max: num(c.attrs, 'max') })),
  },
  {
    name: 'rmsnorm', doc: 'x / sqrt(mean(x²) + eps) · weight over the last dim (any rank: [T, heads, head_dim] for QK-norm)',
    inputs: [{ name: 'x' }, { name: 'weight', weight: true }], attrs: { eps: { type: 'float', default: 1e-6, doc: 'added to the mean square' } },
    infer([x, w]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      same(fmt(W.shape), fmt([last(X)]), `rmsnorm weight ${fmt(W.shape)} does not match width ${last(X)}`);
      return [f32(X.shape)];
    },
    flops: ([x]) => 4 * rowSize(x!),
    lower(c) {
      const x = c.types[0]!;
      c.emit({ family: 'norm', sizes: { W: rowSize(x), D: last(x) as number }, inputs: { x: c.in(0)!, w: c.in(1)! },
        attrs: { eps: num(c.attrs, 'eps'), groups: 1, gated: false }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'rmsnorm_gated', doc: 'rmsnorm(x · silu(z)) · weight, over the whole width or `groups` equal parts',
    inputs: [{ name: 'x' }, { name: 'z' }, { name: 'weight', weight: true }],
    attrs: { eps: { type: 'float', default: 1e-6, doc: 'added to the mean square' }, groups: { type: 'int', default: 1, doc: 'normalisation groups' } },
    infer([x, z, w], a) {
      const X = need(x, 'x'), Z = need(z, 'z'), W = need(w, 'weight');
      same(fmt(X.shape), fmt(Z.shape), `rmsnorm_gated gate ${fmt(Z.shape)} does not match x ${fmt(X.shape)}`);
      same(fmt(W.shape), fmt([last(X)]), `rmsnorm_gated weight ${fmt(W.shape)} does not match width ${last(X)}`);
      const g = num(a, 'groups');
      if (!Number.isInteger(g) || g < 1 || (last(X) as number) % g !== 0) throw new OpError(`rmsnorm_gated groups ${g} does not divide width ${last(X)}`);
      return [f32(X.shape)];
    },
    flops: ([x]) => 9 * rowSize(x!),
    lower(c) {
      const x = c.types[0]!;
      c.emit({ family: 'norm', sizes: { W: rowSize(x), D: last(x) as number }, inputs: { x: c.in(0)!, z: c.in(1)!, w: c.in(2)! },
        attrs: { eps: num(c.attrs, 'eps'), groups: num(c.attrs, 'groups'), gated: true }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'layernorm', doc: '(x − mean(x)) / sqrt(var(x) + eps) · weight (+ bias) over the last dim (any rank)',
    inputs: [{ name: 'x' }, { name: 'weight', weight: true }, { name: 'bias', optional: true, weight: true }],
    attrs: { eps: { type: 'float', default: 1e-5, doc: 'added to the variance' } },
    infer([x, w, b]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      same(fmt(W.shape), fmt([last(X)]), `layernorm weight ${fmt(W.shape)} does not match width ${last(X)}`);
      if (b) same(fmt(b.shape), fmt([last(X)]), `layernorm bias ${fmt(b.shape)} does not match width ${last(X)}`);
      return [f32(X.shape)];
    },
    flops: ([x]) => 7 * rowSize(x!),
    lower(c) {
      const x = c.types[0]!;
      const b = c.in(2);
      c.emit({ family: 'norm', sizes: { W: rowSize(x), D: last(x) as number }, inputs: { x: c.in(0)!, w: c.in(1)!, ...(b ? { b } : {}) },
        attrs: { eps: num(c.attrs, 'eps'), groups: 1, gated: false, layer: true }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'causal_conv1d', doc: 'depthwise causal convolution over time with bias; carries the last K−1 inputs per sequence',
    inputs: [{ name: 'x' }, { name: 'weight', weight: true }, { name: 'bias', optional: true, weight: true }], attrs: {},
    infer([x, w, b]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      rank(X, 2, 'causal_conv1d input', '[T, channels]');
      rank(W, 3, 'causal_conv1d weight', '[channels, 1, kernel]');
      same(W.shape[0]!, X.shape[1]!, `causal_conv1d weight ${fmt(W.shape)} does not match ${X.shape[1]} channels`);
      same(W.shape[1]!, 1, `causal_conv1d is depthwise: weight must be [channels, 1, kernel], got ${fmt(W.shape)}`);
      if (b) same(fmt(b.shape), fmt([X.shape[1]!]), `causal_conv1d bias ${fmt(b.shape)} does not match ${X.shape[1]} channels`);
      // a conv carries its last K − 1 inputs: with one tap there is no window (it is x · weight)
      if ((W.shape[2] as number) < 2) throw new OpError(`the kernel needs at least 2 taps, got ${W.shape[2]} (a 1-tap conv is a per-channel scale: write x * weight)`);
      return [f32(X.shape)];
    },
    state: ([x, w]) => ({ kind: 'conv', per: 'sequence', shape: [x!.shape[1] as number, (w!.shape[2] as number) - 1] }),
    flops: ([x, w]) => 2 * (x!.shape[1] as number) * (w!.shape[2] as number),
    lower(c) {
      const [C, , K] = c.types[1]!.shape as [number, number, number];
      const b = c.in(2);
      c.emit({ family: c.mode === 'decode' ? 'conv_step' : 'conv', sizes: { C, K }, inputs: { x: c.in(0)!, w: c.in(1)!, ...(b ? { b } : {}) },
        outputs: { y: c.out(0) }, state: c.state });
    },
  },
  {
    name: 'ssd', doc: 'the Mamba-2 state-space scan (chunked SSD): y = C·h + D·x with h ← exp(dt·A)·h + dt·x⊗B; carries h per sequence',
    inputs: [{ name: 'x' }, { name: 'dt' }, { name: 'A', fixed: true }, { name: 'B' }, { name: 'C' }, { name: 'D', fixed: true }],
    attrs: { chunk: { type: 'int', default: 256, doc: 'chunk length of the block algorithm' } }, uniform: ['chunk'],
    infer([x, dt, A, B, C, D], a) {
      const X = need(x, 'x'), DT = need(dt, 'dt'), AA = need(A, 'A'), BB = need(B, 'B'), CC = need(C, 'C'), DD = need(D, 'D');
      rank(X, 3, 'ssd x', '[T, heads, head_dim]');
      rank(BB, 3, 'ssd B', '[T, groups, state]');
      const [, H, P] = X.shape as [Dim, number, number];
      same(fmt(DT.shape), fmt(['T', H]), `ssd dt ${fmt(DT.shape)} must be [T, ${H}]`);
      same(fmt(AA.shape), fmt([H]), `ssd A ${fmt(AA.shape)} must be [${H}]`);
      same(fmt(DD.shape), fmt([H]), `ssd D ${fmt(DD.shape)} must be [${H}]`);
      same(fmt(CC.shape), fmt(BB.shape), `ssd C ${fmt(CC.shape)} must match B ${fmt(BB.shape)}`);
      const G = BB.shape[1] as number;
      if (H % G !== 0) throw new OpError(`ssd groups ${G} do not divide heads ${H}`);
      const chunk = num(a, 'chunk');
      if (!Number.isInteger(chunk) || chunk < 1) throw new OpError(`ssd chunk must be a positive integer, got ${chunk}`);
      void P;
      return [f32(X.shape)];
    },
    state: ([x, , , B]) => ({ kind: 'ssm', per: 'sequence', shape: [x!.shape[1] as number, x!.shape[2] as number, B!.shape[2] as number] }),
    flops([x, , , B], _o, a, at) {
      const H = x!.shape[1] as number, P = x!.shape[2] as number, G = B!.shape[1] as number, N = B!.shape[2] as number;
      if (at.mode === 'decode') return H * P * N * 6 + 2 * H * P;
      // chunked: intra-chunk scores and outputs (about half a chunk each), chunk states and state outputs
      const Q = Math.min(num(a, 'chunk'), Math.max(1, at.context));
      return 2 * G * N * Q / 2 + 2 * H * P * Q / 2 + 4 * H * P * N + 2 * H * P;
    },
    lower(c) {
      const [, H, P] = c.types[0]!.shape as [Dim, number, number];
      const [, G, N] = c.types[3]!.shape as [Dim, number, number];
      const inputs = { x: c.in(0)!, dt: c.in(1)!, A: c.in(2)!, B: c.in(3)!, C: c.in(4)!, D: c.in(5)! };
      if (c.mode === 'decode') c.emit({ family: 'ssd_step', sizes: { H, P, G, N }, inputs, outputs: { y: c.out(0) }, state: c.state });
      else c.emit({ family: 'ssd', sizes: { H, P, G, N, chunk: num(c.attrs, 'chunk') }, inputs, outputs: { y: c.out(0) }, state: c.state });
    },
  },
  {
    name: 'rope', doc: 'rotary position embedding of the first rotary_dim dims of each head, pairing i with i + rotary_dim/2',
    inputs: [{ name: 'x' }, { name: 'positions', int: true }],
    attrs: { rotary_dim: { type: 'int', doc: 'rotated dims per head (even)' }, theta: { type: 'float', default: 10000, doc: 'frequency base' } },
    infer([x, p], a) {
      const X = need(x, 'x'), Pp = need(p, 'positions');
      rank(X, 3, 'rope input', '[T, heads, head_dim]');
      if (Pp.dtype !== 'i32') throw new OpError(`rope positions must be integers, got ${Pp.dtype}`);
      const r = num(a, 'rotary_dim'), dh = X.shape[2] as number;
      if (!Number.isInteger(r) || r < 2 || r % 2 !== 0 || r > dh) throw new OpError(`rope rotary_dim ${r} must be even and between 2 and the head dim ${dh}`);
      return [f32(X.shape)];
    },
    flops: ([x], _o, a) => 3 * (x!.shape[1] as number) * num(a, 'rotary_dim'),
    lower(c) {
      const [, H, Dh] = c.types[0]!.shape as [Dim, number, number];
      c.emit({ family: 'rope', sizes: { H, Dh, R: num(c.attrs, 'rotary_dim') }, inputs: { x: c.in(0)!, positions: c.in(1)! },
        attrs: { theta: num(c.attrs, 'theta') }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'attention', doc: 'causal grouped-query attention over each sequence; carries the keys and values (KV cache)',
    inputs: [{ name: 'q' }, { name: 'k' }, { name: 'v' }],
    attrs: {
      scale: { type: 'float', doc: 'score scale, usually head_dim^-0.5' },
      window: { type: 'int', optional: true, doc: 'sliding window: each query sees its last `window` keys, itself included (0: all)' },
    },
    infer([q, k, v], a) {
      if (a.window !== undefined && num(a, 'window') < 0) throw new OpError(`attention window ${num(a, 'window')} must be 0 (full attention) or a positive number of keys`);
      const Q = need(q, 'q'), Kk = need(k, 'k'), V = need(v, 'v');
      rank(Q, 3, 'attention q', '[T, heads, head_dim]');
      rank(Kk, 3, 'attention k', '[T, kv_heads, head_dim]');
      same(fmt(Kk.shape), fmt(V.shape), `attention v ${fmt(V.shape)} must match k ${fmt(Kk.shape)}`);
      same(Q.shape[2]!, Kk.shape[2]!, `attention head dims differ: q ${fmt(Q.shape)}, k ${fmt(Kk.shape)}`);
      const H = Q.shape[1] as number, KV = Kk.shape[1] as number;
      if (H % KV !== 0) throw new OpError(`attention kv heads ${KV} do not divide heads ${H}`);
      // the WebGPU flash kernel holds the query heads of one KV head in one workgroup (at most 256 invocations)
      if (H / KV > MAX_QUERY_GROUP) throw new OpError(`attention has ${H / KV} query heads per kv head (${H} heads, ${KV} kv heads); the WebGPU kernels take at most ${MAX_QUERY_GROUP}`);
      return [f32(Q.shape)];
    },
    // a windowed cache keeps the last `window` rows (a ring; runtime/program.ts kvRows)
    state: ([, k], a) => ({ kind: 'kv', per: 'token', shape: [2, k!.shape[1] as number, k!.shape[2] as number], ...(windowOf(a) ? { window: windowOf(a) } : {}) }),
    flops([q], _o, a, at) {
      const H = q!.shape[1] as number, Dh = q!.shape[2] as number, W = windowOf(a) || Infinity, n = at.context;
      // keys seen: the next token's min(n + 1, W); prefill's mean over positions 0..n-1 of min(p + 1, W)
      const seen = at.mode === 'decode' ? Math.min(n + 1, W) : W >= n ? (n + 1) / 2 : (W * (W + 1) / 2 + (n - W) * W) / n;
      return 4 * H * Dh * seen + 5 * H * seen;
    },
    lower(c) {
      const [, H, Dh] = c.types[0]!.shape as [Dim, number, number];
      const KV = c.types[1]!.shape[1] as number;
      const W = windowOf(c.attrs);
      c.emit({ family: c.mode === 'decode' ? 'attention_decode' : 'attention', sizes: { H, KV, Dh },
        inputs: { q: c.in(0)!, k: c.in(1)!, v: c.in(2)! }, attrs: { scale: num(c.attrs, 'scale'), ...(W ? { window: W } : {}) }, outputs: { y: c.out(0) }, state: c.state });
    },
  },
  ...ROUTE_OPS,
  ...GATHER_OPS,
];

/** `tensor * number`, `number * tensor` or `tensor / number` as the `scale` op's operand and factor. */
export function scaling(op: string, a: { k: string; id?: number; v?: unknown }, b: { k: string; id?: number; v?: unknown }): { id: number; by: number } | null {
  const [t, n] = a.k === 'tensor' ? [a, b] : [b, a];
  if (n.k !== 'const' || typeof n.v !== 'number' || !(op === '*' || (op === '/' && t === a))) return null;
  return { id: t.id!, by: op === '*' ? n.v : 1 / n.v };
}

export const OP_BY_NAME: ReadonlyMap<string, OpDef> = new Map(OPS.map((o) => [o.name, o]));
