// The CPU implementation of every kernel family: each takes a kernel's sizes, views and fused stages
// and runs the reference kernels of this folder on the invocation's arena and state slots. What a
// kernel reads comes through `Ctx.operand` (with its `pre` expression applied); what it writes goes
// through `Ctx.write`. Every fused stage rounds to f32 where the unfused kernels would store, so a
// fused program computes what the unfused one does.

import { type ExprEnv, compileExpr } from '../expr.ts';
import type { Epilogue, Family, FamilyTable, Kernel, KernelOf, TrainKernel, View } from '../program.ts';
import type { HostWeight } from '../quant.ts';
import { type Tensor, roundBf16, widenBf16 } from '../tensor.ts';
import { attention, rope } from './attention.ts';
import { causalConv1d } from './conv.ts';
import { embedding } from './linear.ts';
import { layernorm, rmsnorm, rmsnormGated } from './norm.ts';
import type { KvCache, SeqSlice } from './seq.ts';
import { ssdChunked, ssdSequential } from './ssd.ts';
import { expertRows, expertsGrouped, gatherRows, scatterRows, softmax, topk } from './route.ts';

/** What a family implementation sees of the run in progress. */
export interface Ctx {
  readonly T: number;
  readonly S: number;
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqs: readonly SeqSlice[];
  /** The labels [T] of a train entry's batch. */
  readonly labels?: Int32Array;
  /** Rows of the buffer behind a view (T, S or 1). */
  rows(v: View): number;
  /** Operand `name` of `k` as contiguous f32 rows, its `pre` expression applied. */
  operand(k: TrainKernel, name: string): Float32Array;
  /** A weight as stored (f32, f16 or bf16). */
  tensor(name: string): Tensor;
  /** A product's or embedding's weight as stored: a float tensor or quantised (q8, q4). */
  weight(name: string): HostWeight;
  /** A weight widened to f32 (cached). */
  f32(name: string): Float32Array;
  write(v: View, data: Float32Array): void;
  /** The arena's rows of `v` where it spans its buffer, for a kernel to compute its result in place
   *  (then it needs no `write`); null where `v` is a slice of its buffer's columns. */
  out?(v: View): Float32Array | null;
  /** Where the rows of `v` lie: row r's first float at data[at + r·ld] (a kernel may read a slice
   *  of columns there instead of `operand`'s contiguous copy). */
  span?(v: View): { data: Float32Array; at: number; ld: number };
  /** y = x·Wᵀ + b over `rows` rows (the thread pool's product where the schedule splits it); y = x·W + b
   *  for a `transposed` matmul (W stored [K, N]). */
  linear(k: Kernel, x: Float32Array, rows: number, K: number, w: HostWeight, b: Tensor | null): Float32Array;
  /** Per-sequence state `index` of each sequence of the batch: its floats of the slot (a bf16
   *  state's values two to a float). */
  states(index: number): Float32Array[];
  /** How the slots store state `index` (runtime/program.ts ProgramState.dtype). */
  stateDtype?(index: number): 'bf16' | undefined;
  /** The KV cache `index` of each sequence, positioned after its earlier tokens. */
  caches(index: number): KvCache[];
}

/** One family's implementation: runs kernel `k` on the run in progress. */
export type Impl<F extends Family = Family> = (k: KernelOf<F>, c: Ctx) => void;

/** Rows of `x` ([rows, width]) at the last token of each sequence. */
function lastRows(x: Float32Array, width: number, seqs: readonly SeqSlice[]): Float32Array {
  const out = new Float32Array(seqs.length * width);
  seqs.forEach((s, i) => out.set(x.subarray((s.start + s.len - 1) * width, (s.start + s.len) * width), i * width));
  return out;
}

/** A reader of operand `name` at [row, col], a constant (single-row) operand broadcasting. */
function reader(k: Kernel, c: Ctx, name: string): (r: number, col: number) => number {
  const o = k.inputs[name]!;
  if ('weight' in o) {
    const w = c.f32(o.weight);
    return (_r, col) => w[col % w.length]!;
  }
  if (!('buf' in o)) throw new Error(`archc runtime: ${k.name} reads the integer input ${o.input} in an expression`);
  const data = c.operand(k, name);
  const width = o.width;
  return c.rows(o) === 1 ? (_r, col) => data[col % width]! : (r, col) => data[r * width + col]!;
}

function env(k: Kernel, c: Ctx, x?: ExprEnv['x']): ExprEnv {
  return { x, input: (n) => reader(k, c, n), weight: (n) => c.f32(n) };
}

/** Applies `k`'s epilogue to its result `acc` ([rows, width]); returns the final rows. */
export function epilogue(k: Kernel, c: Ctx, acc: Float32Array, rows: number, width: number): Float32Array {
  for (const stage of k.epilogue ?? []) {
    [acc, width] = applyStage(k, c, stage, acc, rows, width);
  }
  return acc;
}

function applyStage(k: Kernel, c: Ctx, s: Epilogue, acc: Float32Array, rows: number, width: number): [Float32Array, number] {
  switch (s.kind) {
    case 'map': {
      const src = acc, w0 = width;
      const fn = compileExpr(s.body, env(k, c, (r, col) => src[r * w0 + col]!));
      const out = new Float32Array(rows * s.width);
      for (let r = 0; r < rows; r++) for (let j = 0; j < s.width; j++) out[r * s.width + j] = fn(r, j);
      return [out, s.width];
    }
    case 'rope': {
      const n = s.heads * s.headDim;
      const part = new Float32Array(rows * n);
      for (let r = 0; r < rows; r++) part.set(acc.subarray(r * width + s.col, r * width + s.col + n), r * n);
      const rotated = rope(part, rows, s.heads, s.headDim, c.positions, s.rotaryDim, s.theta);
      for (let r = 0; r < rows; r++) acc.set(rotated.subarray(r * n, (r + 1) * n), r * width + s.col);
      return [acc, width];
    }
    case 'conv_step': {
      // one row per sequence, each its new token
      const states = c.states(s.state);
      const w = c.f32(s.weight), b = s.bias ? c.f32(s.bias) : null;
      let y: Float32Array = new Float32Array(0);
      const post = s.post ? compileExpr(s.post, { ...env(k, c), x: (_r, col) => y[col]! }) : null;
      for (let r = 0; r < rows; r++) {
        const at = r * width + s.col;
        y = causalConv1d(acc.subarray(at, at + s.channels), 1, s.channels, s.taps, w, b, [{ start: 0, len: 1 }], [states[r]!]);
        if (post) for (let j = 0; j < s.channels; j++) acc[at + j] = post(r, j);
        else acc.set(y, at);
      }
      return [acc, width];
    }
  }
}

const matmul: Impl<'matmul'> = (k, c) => {
  // sizes as small integers for the JIT: a size computed in floating point (a param like
  // d_model * expand // heads) arrives as a double, and a double K makes every index of the
  // product's inner loop double arithmetic, at half the speed
  const K = k.sizes.K | 0, N = k.sizes.N | 0;
  const xv = k.inputs.x as View;
  let x = c.operand(k, 'x');
  let z = k.inputs.z ? c.operand(k, 'z') : null;
  // a product over the last dim of a [T, heads, K] input runs on T·heads rows of K (an integer too)
  let rows = ((c.rows(xv) * xv.width) / K) | 0;
  for (const p of k.prologue ?? []) {
    if (p.kind === 'gather_last') {
      x = lastRows(x, K, c.seqs);
      if (z) z = lastRows(z, K, c.seqs);
      rows = c.seqs.length;
    } else if (p.kind === 'rmsnorm') x = rmsnorm(x, rows, K, c.f32(p.weight), p.eps);
    else if (p.kind === 'layernorm') x = layernorm(x, rows, K, c.f32(p.weight), p.bias ? c.f32(p.bias) : null, p.eps);
    else x = rmsnormGated(x, z!, rows, K, c.f32(p.weight), p.eps, p.groups | 0);
  }
  const b = k.inputs.b ? c.tensor((k.inputs.b as { weight: string }).weight) : null;
  // a transposed weight ([K, N]) is the backend's linearTransposed, through the same call
  const acc = c.linear(k, x, rows, K, c.weight((k.inputs.w as { weight: string }).weight), b);
  c.write(k.outputs.y!, epilogue(k, c, acc, rows, N));
};

const embeddingImpl: Impl<'embedding'> = (k, c) => {
  const ids = k.inputs.ids!;
  if (!('input' in ids)) throw new Error(`archc runtime: ${k.name} looks up rows by a computed value; only token ids and positions can index`);
  const y = embedding(ids.input === 'tokens' ? c.tokens : c.positions, c.weight((k.inputs.w as { weight: string }).weight));
  c.write(k.outputs.y!, epilogue(k, c, y, c.T, k.sizes.D));
};

const norm: Impl<'norm'> = (k, c) => {
  const W = k.sizes.W | 0, D = k.sizes.D | 0;
  const x = c.operand(k, 'x');
  const rows = ((c.rows(k.inputs.x as View) * W) / D) | 0;
  const w = c.f32((k.inputs.w as { weight: string }).weight);
  const eps = k.attrs.eps as number;
  const y = k.attrs.layer ? layernorm(x, rows, D, w, k.inputs.b ? c.operand(k, 'b') : null, eps)
    : k.attrs.gated ? rmsnormGated(x, c.operand(k, 'z'), rows, D, w, eps, (k.attrs.groups as number) | 0) : rmsnorm(x, rows, D, w, eps);
  c.write(k.outputs.y!, y);
};

const elementwise: Impl<'elementwise'> = (k, c) => {
  const y = k.outputs.y!;
  const rows = c.rows(y);
  const fn = compileExpr(k.body!, env(k, c));
  const out = new Float32Array(rows * y.width);
  for (let r = 0; r < rows; r++) for (let j = 0; j < y.width; j++) out[r * y.width + j] = fn(r, j);
  c.write(y, out);
};

const copy: Impl<'copy'> = (k, c) => c.write(k.outputs.y!, c.operand(k, 'x'));

const gatherLast: Impl<'gather_last'> = (k, c) => c.write(k.outputs.y!, lastRows(c.operand(k, 'x'), k.sizes.W, c.seqs));

const ropeImpl: Impl<'rope'> = (k, c) => {
  const { H, Dh, R } = k.sizes;
  c.write(k.outputs.y!, rope(c.operand(k, 'x'), c.T, H, Dh, c.positions, R, k.attrs.theta as number));
};

const conv: Impl<'conv' | 'conv_step'> = (k, c) => {
  const { C, K } = k.sizes;
  const b = k.inputs.b ? c.operand(k, 'b') : null;
  const rows = c.rows(k.inputs.x as View);
  const y = causalConv1d(c.operand(k, 'x'), rows, C, K, c.operand(k, 'w'), b, c.seqs, c.states(k.state!));
  c.write(k.outputs.y!, epilogue(k, c, y, rows, C));
};

function ssdWith(chunked: boolean): Impl<'ssd' | 'ssd_step'> {
  return (k, c) => {
    const { H, P, G, N } = k.sizes;
    const [x, dt, A, B, C, D] = ['x', 'dt', 'A', 'B', 'C', 'D'].map((n) => c.operand(k, n)) as Float32Array[];
    const y = f32States(c, k.state!, H * P * N, (states) => (chunked
      ? ssdChunked(x!, dt!, A!, B!, C!, D!, { H, P, G, N }, k.family === 'ssd' ? k.sizes.chunk : 0, c.seqs, states)
      : ssdSequential(x!, dt!, A!, B!, C!, D!, { H, P, G, N }, c.seqs, states)));
    c.write(k.outputs.y!, y);
  };
}

/** Per-sequence state `index` (`n` values each) as f32 for `run`, which updates it: a bf16 state
 *  (runtime/program.ts withSsmState) is widened first and rounded back after (runtime/tensor.ts roundBf16). */
export function f32States<R>(c: Ctx, index: number, n: number, run: (states: Float32Array[]) => R): R {
  const raw = c.states(index);
  if (c.stateDtype?.(index) !== 'bf16') return run(raw);
  const bits = raw.map((r) => new Uint16Array(r.buffer, r.byteOffset, n));
  const wide = bits.map((b) => {
    const w = new Float32Array(n);
    widenBf16(b, new Uint32Array(w.buffer));
    return w;
  });
  const out = run(wide);
  wide.forEach((w, i) => roundBf16(new Uint32Array(w.buffer), bits[i]!));
  return out;
}

const attentionImpl: Impl<'attention' | 'attention_decode'> = (k, c) => {
  const { H, KV, Dh } = k.sizes;
  const [q, kk, v] = ['q', 'k', 'v'].map((n) => c.operand(k, n)) as Float32Array[];
  c.write(k.outputs.y!, attention(q!, kk!, v!, c.T, H, KV, Dh, k.attrs.scale as number, c.seqs, c.caches(k.state!), (k.attrs.window as number | undefined) ?? 0));
};

const softmaxImpl: Impl<'softmax'> = (k, c) => c.write(k.outputs.y!, softmax(c.operand(k, 'x'), k.sizes.D));

const topkImpl: Impl<'topk'> = (k, c) => {
  const r = topk(c.operand(k, 'x'), k.sizes.D, k.sizes.K, k.attrs.normalize === true);
  c.write(k.outputs.values!, r.values);
  c.write(k.outputs.indices!, r.indices);
};

const gatherImpl: Impl<'gather'> = (k, c) => c.write(k.outputs.y!, gatherRows(c.operand(k, 'x'), c.operand(k, 'idx'), k.sizes.N, k.sizes.K, k.sizes.D));
const scatterImpl: Impl<'scatter'> = (k, c) => c.write(k.outputs.y!, scatterRows(c.operand(k, 'x'), c.operand(k, 'idx'), k.sizes.N, k.sizes.K, k.sizes.D));

// the chosen experts' matrices only, widened to f32 as they are read (no f32 copy of the whole)
const expertsImpl: Impl<'experts'> = (k, c) => {
  const { E, H, I, K } = k.sizes;
  const wIn = c.tensor((k.inputs.w_in as { weight: string }).weight), wOut = c.tensor((k.inputs.w_out as { weight: string }).weight);
  const y = expertsGrouped(c.operand(k, 'x'), c.operand(k, 'idx'), c.operand(k, 'gates'), { E, H, I, K },
    (e) => ({ wIn: expertRows(wIn, e, 2 * I * H), wOut: expertRows(wOut, e, H * I) }));
  c.write(k.outputs.y!, y);
};

export const CPU_FAMILIES: FamilyTable<[Ctx], void> = {
  embedding: embeddingImpl, matmul, norm, elementwise, copy, gather_last: gatherLast, rope: ropeImpl,
  conv, conv_step: conv, ssd: ssdWith(true), ssd_step: ssdWith(false), attention: attentionImpl, attention_decode: attentionImpl,
  softmax: softmaxImpl, topk: topkImpl, experts: expertsImpl, gather: gatherImpl, scatter: scatterImpl,
};

