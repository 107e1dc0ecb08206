// The primitive ops: one record each with its slots, attributes, shape/dtype rule, carried state,
// cost model and CPU reference. The compiler reads the records to type the graph; the CPU engine
// runs `cpu`. Shapes are lists of dims where 'T' is the (symbolic) number of token rows.

import type { DType } from './tensor.ts';
import * as K from './cpu/index.ts';
import { toF32 } from './tensor.ts';

export type Dim = number | 'T';
export interface TensorType {
  readonly shape: readonly Dim[];
  readonly dtype: DType;
}
export type AttrValue = number | boolean | string | readonly AttrValue[];
export type Attrs = Readonly<Record<string, AttrValue>>;

export type StateKind = 'kv' | 'conv' | 'ssm';
export interface StateSpec {
  readonly kind: StateKind;
  /** Per token (KV cache rows) or per sequence (conv window, SSM state). */
  readonly per: 'token' | 'sequence';
  readonly shape: readonly number[];
}

/** What a shape rule reports for a bad use; the compiler attaches the call's span. */
export class OpError extends Error {}

export interface CostContext {
  /** Tokens already in the sequence when this token is processed (decode) or its length (prefill). */
  readonly context: number;
  readonly mode: 'prefill' | 'decode';
}

/** A value handed to a CPU kernel: activations are f32; weights keep their dtype. */
export interface CpuValue {
  readonly data: Float32Array | Int32Array | Uint16Array;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** Per-call context of the CPU engine: the packed batch and the state of each sequence. */
export interface CpuContext {
  readonly T: number;
  readonly positions: Int32Array;
  readonly seqs: readonly { readonly start: number; readonly len: number }[];
  /** The state arrays of this node for each sequence of the batch (in/out). */
  readonly state?: readonly unknown[];
  /** A `linear` to use instead of the single-threaded kernel (the engine's thread pool). */
  readonly linear?: typeof K.linear;
}

export interface SlotDef {
  readonly name: string;
  readonly optional?: boolean;
  /** Integer inputs (token ids, positions); all others are floating point. */
  readonly int?: boolean;
}

export interface AttrDef {
  readonly type: 'int' | 'float' | 'bool' | 'list';
  readonly default?: AttrValue;
  readonly doc: string;
}

export interface OpDef {
  readonly name: string;
  readonly doc: string;
  readonly inputs: readonly SlotDef[];
  readonly attrs: Readonly<Record<string, AttrDef>>;
  /** Output types; throws OpError on a bad use. */
  infer(inputs: readonly (TensorType | null)[], attrs: Attrs): TensorType[];
  state?(inputs: readonly (TensorType | null)[], attrs: Attrs): StateSpec;
  /** Floating-point operations for one token row. */
  flops(inputs: readonly (TensorType | null)[], outputs: readonly TensorType[], attrs: Attrs, at: CostContext): number;
  cpu(inputs: readonly (CpuValue | null)[], attrs: Attrs, ctx: CpuContext): Float32Array[];
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
const dims = (v: CpuValue) => v.shape;
/** Rows of a [..., width] value: every dim but the last (T·heads for a [T, heads, head_dim] value). */
const rowsOf = (v: CpuValue | null, width: number) => v!.data.length / width;
/** The value as f32 (activations already are; 16-bit weights are widened). */
const f = (v: CpuValue | null): Float32Array => (v!.dtype === 'f32' ? (v!.data as Float32Array) : toF32(v as never));

function elementwise(name: string, doc: string, fn: (x: Float32Array) => Float32Array, cost = 1): OpDef {
  return {
    name, doc, inputs: [{ name: 'x' }], attrs: {},
    infer: ([x]) => [f32(need(x, 'x').shape)],
    flops: ([x]) => cost * rowSize(x!),
    cpu: ([x]) => [fn(f(x))],
  };
}

function broadcasting(name: string, doc: string, fn: (a: Float32Array, b: Float32Array) => Float32Array): OpDef {
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
    cpu: ([a, b]) => [fn(f(a), f(b))],
  };
}

// ---- the ops -----------------------------------------------------------------------------

export const OPS: readonly OpDef[] = [
  {
    name: 'embedding', doc: 'rows of a [vocab, dim] table picked by integer ids [T]',
    inputs: [{ name: 'ids', int: true }, { name: 'weight' }], attrs: {},
    infer([ids, w]) {
      const I = need(ids, 'ids'), W = need(w, 'weight');
      rank(W, 2, 'embedding weight', '[vocab, dim]');
      if (I.dtype !== 'i32') throw new OpError(`embedding ids must be integers, got ${I.dtype}`);
      return [f32([...I.shape, W.shape[1]!])];
    },
    flops: () => 0,
    cpu: ([ids, w]) => [K.embedding(ids!.data as Int32Array, w!)],
  },
  {
    name: 'linear', doc: 'x · weightᵀ (+ bias) over the last dim; weight is [out, in] as in PyTorch, or [in, out] when transposed',
    inputs: [{ name: 'x' }, { name: 'weight' }, { name: 'bias', optional: true }],
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
    cpu([x, w, b], a, ctx) {
      const k = dims(x!)[dims(x!).length - 1]!;
      if (a.transposed === true) return [K.linearIn(f(x), rowsOf(x, k), k, w!, b)];
      return [(ctx.linear ?? K.linear)(f(x), rowsOf(x, k), k, w!, b)];
    },
  },
  {
    name: 'head', doc: 'the language-model head: logits = x · weightᵀ, weight [vocab, dim] (tied or not)',
    inputs: [{ name: 'x' }, { name: 'weight' }], attrs: {},
    infer([x, w]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      rank(W, 2, 'head weight', '[vocab, dim]');
      same(last(X), W.shape[1]!, `head input width ${last(X)} does not match weight ${fmt(W.shape)}`);
      return [f32([...X.shape.slice(0, -1), W.shape[0]!])];
    },
    flops: ([, w]) => 2 * (w!.shape[0] as number) * (w!.shape[1] as number),
    cpu: ([x, w], _a, ctx) => [(ctx.linear ?? K.linear)(f(x), rowsOf(x, w!.shape[1]!), w!.shape[1]!, w!, null)],
  },
  broadcasting('add', 'a + b', (a, b) => K.add(a, b)),
  broadcasting('mul', 'a · b', (a, b) => K.mul(a, b)),
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
    cpu([x], a) {
      const sizes = a.sizes as number[];
      return K.split(f(x), sizes);
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
    cpu: ([x]) => [f(x)],
  },
  elementwise('silu', 'x · sigmoid(x)', (x) => K.silu(x), 4),
  {
    name: 'gelu', doc: 'x · Φ(x), exact (erf) or with tanh its tanh approximation (PyTorch approximate="tanh")',
    inputs: [{ name: 'x' }],
    attrs: { tanh: { type: 'bool', default: false, doc: 'use the tanh approximation (HF gelu_new, gelu_pytorch_tanh)' } },
    infer: ([x]) => [f32(need(x, 'x').shape)],
    flops: ([x]) => 8 * rowSize(x!),
    cpu: ([x], a) => [K.gelu(f(x), a.tanh === true)],
  },
  elementwise('softplus', 'log(1 + exp(x)), identity above 20 as in PyTorch', (x) => K.softplus(x), 3),
  elementwise('exp', 'eˣ', (x) => K.exp(x)),
  elementwise('neg', '−x', (x) => K.neg(x)),
  {
    name: 'clamp', doc: 'limits x to [min, max]',
    inputs: [{ name: 'x' }],
    attrs: { min: { type: 'float', default: -Infinity, doc: 'lower bound' }, max: { type: 'float', default: Infinity, doc: 'upper bound' } },
    infer([x], a) {
      if (num(a, 'min') > num(a, 'max')) throw new OpError(`clamp min ${num(a, 'min')} is above max ${num(a, 'max')}`);
      return [f32(need(x, 'x').shape)];
    },
    flops: ([x]) => rowSize(x!),
    cpu: ([x], a) => [K.clamp(f(x), num(a, 'min'), num(a, 'max'))],
  },
  {
    name: 'rmsnorm', doc: 'x / sqrt(mean(x²) + eps) · weight over the last dim (any rank: [T, heads, head_dim] for QK-norm)',
    inputs: [{ name: 'x' }, { name: 'weight' }], attrs: { eps: { type: 'float', default: 1e-6, doc: 'added to the mean square' } },
    infer([x, w]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      same(fmt(W.shape), fmt([last(X)]), `rmsnorm weight ${fmt(W.shape)} does not match width ${last(X)}`);
      return [f32(X.shape)];
    },
    flops: ([x]) => 4 * rowSize(x!),
    cpu: ([x, w], a) => [K.rmsnorm(f(x), rowsOf(x, dims(w!)[0]!), dims(w!)[0]!, f(w), num(a, 'eps'))],
  },
  {
    name: 'rmsnorm_gated', doc: 'rmsnorm(x · silu(z)) · weight, over the whole width or `groups` equal parts',
    inputs: [{ name: 'x' }, { name: 'z' }, { name: 'weight' }],
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
    cpu: ([x, z, w], a) => [K.rmsnormGated(f(x), f(z), rowsOf(x, dims(w!)[0]!), dims(w!)[0]!, f(w), num(a, 'eps'), num(a, 'groups'))],
  },
  {
    name: 'layernorm', doc: '(x − mean(x)) / sqrt(var(x) + eps) · weight (+ bias) over the last dim (any rank)',
    inputs: [{ name: 'x' }, { name: 'weight' }, { name: 'bias', optional: true }],
    attrs: { eps: { type: 'float', default: 1e-5, doc: 'added to the variance' } },
    infer([x, w, b]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      same(fmt(W.shape), fmt([last(X)]), `layernorm weight ${fmt(W.shape)} does not match width ${last(X)}`);
      if (b) same(fmt(b.shape), fmt([last(X)]), `layernorm bias ${fmt(b.shape)} does not match width ${last(X)}`);
      return [f32(X.shape)];
    },
    flops: ([x]) => 7 * rowSize(x!),
    cpu([x, w, b], a) {
      const D = dims(w!)[0]!;
      return [K.layernorm(f(x), rowsOf(x, D), D, f(w), b ? f(b) : null, num(a, 'eps'))];
    },
  },
  {
    name: 'causal_conv1d', doc: 'depthwise causal convolution over time with bias; carries the last K−1 inputs per sequence',
    inputs: [{ name: 'x' }, { name: 'weight' }, { name: 'bias', optional: true }], attrs: {},
    infer([x, w, b]) {
      const X = need(x, 'x'), W = need(w, 'weight');
      rank(X, 2, 'causal_conv1d input', '[T, channels]');
      rank(W, 3, 'causal_conv1d weight', '[channels, 1, kernel]');
      same(W.shape[0]!, X.shape[1]!, `causal_conv1d weight ${fmt(W.shape)} does not match ${X.shape[1]} channels`);
      same(W.shape[1]!, 1, `causal_conv1d is depthwise: weight must be [channels, 1, kernel], got ${fmt(W.shape)}`);
      if (b) same(fmt(b.shape), fmt([X.shape[1]!]), `causal_conv1d bias ${fmt(b.shape)} does not match ${X.shape[1]} channels`);
      return [f32(X.shape)];
    },
    state: ([x, w]) => ({ kind: 'conv', per: 'sequence', shape: [x!.shape[1] as number, (w!.shape[2] as number) - 1] }),
    flops: ([x, w]) => 2 * (x!.shape[1] as number) * (w!.shape[2] as number),
    cpu([x, w, b], _a, ctx) {
      const [C, , Kw] = dims(w!) as [number, number, number];
      return [K.causalConv1d(f(x), ctx.T, C, Kw, f(w), b ? f(b) : null, ctx.seqs, ctx.state as Float32Array[])];
    },
  },
  {
    name: 'ssd', doc: 'the Mamba-2 state-space scan (chunked SSD): y = C·h + D·x with h ← exp(dt·A)·h + dt·x⊗B; carries h per sequence',
    inputs: [{ name: 'x' }, { name: 'dt' }, { name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'D' }],
    attrs: { chunk: { type: 'int', default: 256, doc: 'chunk length of the block algorithm' } },
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
    cpu([x, dt, A, B, C, D], a, ctx) {
      const [, H, P] = dims(x!) as [number, number, number];
      const [, G, N] = dims(B!) as [number, number, number];
      return [K.ssdChunked(f(x), f(dt), f(A), f(B), f(C), f(D), { H, P, G, N }, num(a, 'chunk'), ctx.seqs, ctx.state as Float32Array[])];
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
    cpu([x, p], a, ctx) {
      const [, Hn, Dh] = dims(x!) as [number, number, number];
      return [K.rope(f(x), ctx.T, Hn, Dh, p!.data as Int32Array, num(a, 'rotary_dim'), num(a, 'theta'))];
    },
  },
  {
    name: 'attention', doc: 'causal grouped-query attention over each sequence; carries the keys and values (KV cache)',
    inputs: [{ name: 'q' }, { name: 'k' }, { name: 'v' }], attrs: { scale: { type: 'float', doc: 'score scale, usually head_dim^-0.5' } },
    infer([q, k, v]) {
      const Q = need(q, 'q'), Kk = need(k, 'k'), V = need(v, 'v');
      rank(Q, 3, 'attention q', '[T, heads, head_dim]');
      rank(Kk, 3, 'attention k', '[T, kv_heads, head_dim]');
      same(fmt(Kk.shape), fmt(V.shape), `attention v ${fmt(V.shape)} must match k ${fmt(Kk.shape)}`);
      same(Q.shape[2]!, Kk.shape[2]!, `attention head dims differ: q ${fmt(Q.shape)}, k ${fmt(Kk.shape)}`);
      const H = Q.shape[1] as number, KV = Kk.shape[1] as number;
      if (H % KV !== 0) throw new OpError(`attention kv heads ${KV} do not divide heads ${H}`);
      return [f32(Q.shape)];
    },
    state: ([, k]) => ({ kind: 'kv', per: 'token', shape: [2, k!.shape[1] as number, k!.shape[2] as number] }),
    flops([q], _o, _a, at) {
      const H = q!.shape[1] as number, Dh = q!.shape[2] as number;
      const seen = at.mode === 'decode' ? at.context + 1 : (at.context + 1) / 2;
      return 4 * H * Dh * seen + 5 * H * seen;
    },
    cpu([q, k, v], a, ctx) {
      const [, H, Dh] = dims(q!) as [number, number, number];
      const KV = dims(k!)[1]!;
      return [K.attention(f(q), f(k), f(v), ctx.T, H, KV, Dh, num(a, 'scale'), ctx.seqs, ctx.state as never)];
    },
  },
];

export const OP_BY_NAME: ReadonlyMap<string, OpDef> = new Map(OPS.map((o) => [o.name, o]));
