// The kernel program: what a generated package executes, on any backend. Plain data (written into the
// package as a TypeScript constant), produced by the compiler's kernel pipeline (compiler/kernel/).
//
// A program has weights (checkpoint tensors, plus weights derived from them once at load), a state
// layout for one sequence's slot, and three entry points that share both: `forward` (a packed batch,
// logits for every token), `prefill` (the same kernels, logits for each sequence's last token only)
// and `decode` (one token per sequence). Each entry is an ordered list of kernels over activation
// buffers that live in one arena; a kernel reads and writes *views* (a column range of a buffer), so
// reshape and split cost nothing. Sizes are compile-time constants; only the row counts (tokens T,
// sequences S) are known at run time.

import { exprLeaves } from './expr.ts';
import { type AnyFamily, type BackwardFamily, type Family, type SizesOf, BACKWARD_FAMILIES } from './families.ts';
import type { DType } from './tensor.ts';

export type StateKind = 'kv' | 'conv' | 'ssm';
export type AttrValue = number | boolean | string | readonly AttrValue[];

/** How many rows a buffer has: one per token (T), one per sequence (S), or one (C, a constant). */
export type Rows = 'T' | 'S' | 'C';

export interface ProgramBuffer {
  readonly id: number;
  /** Floats per row (the row stride). */
  readonly width: number;
  readonly rows: Rows;
  /** Where it starts in its region of the arena, in floats per region row: `offset · R` for a region
   *  of R rows. T-row buffers share the token region (R = T); S-row and constant buffers the
   *  sequence region (R = S), or constants their own region where the entry has one (R = 1). The
   *  plan is made once and holds for every T and S. */
  readonly offset: number;
}

/** Columns [col, col + width) of every row of a buffer. */
export interface View {
  readonly buf: number;
  readonly col: number;
  readonly width: number;
}

/** What a kernel reads: an activation view, a weight (by name) or an integer program input. */
export type Operand = View | { readonly weight: string } | { readonly input: 'tokens' | 'positions' };

/**
 * A fused elementwise expression, evaluated per element with every intermediate rounded to f32
 * (so a fused chain computes exactly what the unfused kernels would). `x` is the value the
 * expression is applied to (an operand on read, or a kernel's result at column j + offset in an
 * epilogue); `in` another activation operand of the kernel at the same row and column (a constant
 * row broadcasts); `w` a weight element at column j mod its length.
 */
export type Expr =
  | { readonly op: 'x'; readonly offset: number }
  | { readonly op: 'in'; readonly name: string }
  | { readonly op: 'w'; readonly name: string }
  | { readonly op: 'const'; readonly value: number }
  | { readonly op: 'silu' | 'sigmoid' | 'softplus' | 'exp' | 'neg' | 'gelu' | 'gelu_tanh' | 'relu2'; readonly a: Expr }
  | { readonly op: 'add' | 'mul'; readonly a: Expr; readonly b: Expr }
  | { readonly op: 'clamp'; readonly a: Expr; readonly min: number; readonly max: number };

/** Row work done on a matmul's input before the product, in order. */
export type Prologue =
  /** Keep only the last row of each sequence (rows T -> S). */
  | { readonly kind: 'gather_last' }
  | { readonly kind: 'rmsnorm'; readonly weight: string; readonly eps: number }
  | { readonly kind: 'layernorm'; readonly weight: string; readonly bias?: string; readonly eps: number }
  /** rmsnorm(x · silu(z)) over `groups` equal parts of the row; z is the operand `z`. */
  | { readonly kind: 'rmsnorm_gated'; readonly weight: string; readonly eps: number; readonly groups: number };

/** Work done on a kernel's result before it is stored, in order. */
export type Epilogue =
  /** The row becomes `body` evaluated for columns [0, width), `x` reading the result so far. */
  | { readonly kind: 'map'; readonly body: Expr; readonly width: number }
  /** Rotary embedding in place on columns [col, col + heads·headDim), using the token positions. */
  | { readonly kind: 'rope'; readonly col: number; readonly heads: number; readonly headDim: number; readonly rotaryDim: number; readonly theta: number }
  /** One-token causal conv in place on columns [col, col + channels) (decode): the row is pushed
   *  through the sequence's conv window (state `state`), then `post` is applied. */
  | { readonly kind: 'conv_step'; readonly col: number; readonly channels: number; readonly taps: number; readonly weight: string;
      readonly bias?: string; readonly state: number; readonly post?: Expr };

/** A kernel family: its record (size names, operand slots, attributes, state, stages) is in families.ts. */
export type { Family };

/** What every kernel has, of an inference family or (operands O with the labels) a train entry's. */
interface KernelCore<F extends AnyFamily, O> {
  /** Unique in its entry, from the scope that emitted it, e.g. `model.layers.3.mamba.in_proj`. */
  readonly name: string;
  readonly family: F;
  /** Compile-time sizes, named by the family's record (K, N, H, P, G, N, chunk, …). */
  readonly sizes: SizesOf<F>;
  readonly inputs: Readonly<Record<string, O>>;
  readonly outputs: Readonly<Record<string, View>>;
  /** Non-size constants of the family (eps, scale, theta, …). */
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** The graph ops this kernel computes, in order. */
  readonly fused: readonly string[];
  /** `.arch` lines it came from (`file:line`). */
  readonly source: readonly string[];
}

interface KernelBase<F extends Family> extends KernelCore<F, Operand> {
  /** The elementwise family's body. */
  readonly body?: Expr;
  /** An expression applied to an operand as it is read (e.g. dt: clamp(softplus(x + dt_bias))). */
  readonly pre?: Readonly<Record<string, Expr>>;
  readonly prologue?: readonly Prologue[];
  readonly epilogue?: readonly Epilogue[];
  /** Index into the program's states for a stateful kernel. */
  readonly state?: number;
}

/** A kernel of family F (of any of them, for a union). */
export type KernelOf<F extends Family> = F extends Family ? KernelBase<F> : never;
/** A kernel: a union discriminated by family, so `k.sizes` has the sizes of the family `k` is narrowed
 *  to, and reading a size its family lacks is a type error. */
export type Kernel = KernelOf<Family>;
/** One implementation per family, each typed by its family's kernel (a target's table). */
export type FamilyTable<A extends unknown[], R> = { readonly [F in Family]: (k: KernelOf<F>, ...a: A) => R };

/** `k`, checked to be of one of the families `fs` (where a table or a rule has already chosen it by
 *  family, so its sizes are typed by the family). */
export function ofFamily<F extends Family>(k: Kernel, ...fs: F[]): KernelOf<F> {
  if (!(fs as Family[]).includes(k.family)) throw new Error(`archc: kernel ${k.name} is a ${k.family} kernel, not a ${fs.join(' or ')} kernel`);
  return k as KernelOf<F>;
}

/** Calls the entry of `table` for `k`'s family: the one place where the union meets a table. */
export function byFamily<A extends unknown[], R>(table: FamilyTable<A, R>, k: Kernel, ...a: A): R {
  return (table[k.family] as (k: Kernel, ...a: A) => R)(k, ...a);
}

/** An entry's kernels over its arena (K: the inference kernels, or a train entry's). */
export interface EntryOf<K> {
  readonly buffers: readonly ProgramBuffer[];
  /** Floats per row of the arena's token region (T rows) and sequence region (S rows), and the
   *  floats of a region of constant rows after both (a train entry's; inference entries keep their
   *  constants in the sequence region). */
  readonly arena: { readonly T: number; readonly S: number; readonly C?: number };
  readonly kernels: readonly K[];
  /** Model outputs (e.g. logits) by name. */
  readonly outputs: Readonly<Record<string, View>>;
}
export type Entry = EntryOf<Kernel>;

export type EntryName = 'forward' | 'prefill' | 'decode';

/** What a train entry's kernels read besides: the labels [T] (row t predicts labels[t + 1]; -100 none). */
export type TrainOperand = Operand | { readonly input: 'labels' };

/** A kernel of a family only train entries hold (runtime/families.ts BACKWARD_FAMILIES): no fused stages, no state. */
export type BackwardKernel<F extends BackwardFamily = BackwardFamily> = KernelCore<F, TrainOperand>;
/** A backward kernel of family F (of any of them, for a union). */
export type BackwardKernelOf<F extends BackwardFamily> = F extends BackwardFamily ? BackwardKernel<F> : never;

/** A train entry's kernel: the forward's (unfused) inference kernels, the loss and the backward's. */
export type TrainKernel = Kernel | BackwardKernelOf<BackwardFamily>;

/**
 * The train entry: the packed forward, the loss on the logits and the backward, nodes in reverse,
 * over one arena. Its outputs: `loss` ([1, 2]: the mean loss and the rows it counts), `logits`, and
 * `grad:<weight>` for every weight (a constant row in the weight's layout).
 */
export type TrainEntry = EntryOf<TrainKernel>;

export function isBackward(k: TrainKernel): k is BackwardKernelOf<BackwardFamily> {
  return k.family in BACKWARD_FAMILIES;
}

export interface ProgramWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** A weight computed once at load from checkpoint weights (folded weight-only subgraphs, the
 *  concatenated weights of merged matrix products). */
export interface DerivedWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly from:
    | { readonly kind: 'concat'; readonly parts: readonly string[] }
    /** `body` evaluated at each index j, its `w:` leaves reading weights at j mod their length. */
    | { readonly kind: 'expr'; readonly body: Expr };
}

/** One state of a sequence's slot. A per-sequence state (conv window, SSM state) is `shape`; a
 *  per-token one (KV cache) holds `capacity` rows of `shape` = [2, kv_heads, head_dim]: all the
 *  keys [capacity, kv_heads, head_dim], then all the values. */
export interface ProgramState {
  readonly name: string;
  readonly kind: StateKind;
  readonly per: 'token' | 'sequence';
  readonly shape: readonly number[];
  /** Sliding-window attention's KV cache: it keeps the last `window` rows (see kvRows). */
  readonly window?: number;
  /** How a slot stores it: f32 (absent), or bf16 for an SSM state (`withSsmState`): each value
   *  rounded to bf16 where a kernel stores it (runtime/tensor.ts roundBf16), two to a float of the slot. */
  readonly dtype?: 'bf16';
}

/** A param bound to config.json keys, with the value the program was built for. */
export interface ProgramBinding {
  readonly param: string;
  readonly keys: readonly string[];
  readonly value: unknown;
}

/** A param decided at load from config.json rather than fixed at build: its values give the same
 *  kernels and differ only in which checkpoint tensor some weights read (`tie_word_embeddings`: the
 *  head's `lm_head.weight` is the checkpoint's `model.embed_tokens.weight`, or its own tensor). */
export interface ProgramChoice {
  readonly param: string;
  /** The config.json keys bound to it, first present wins (as for a binding). */
  readonly keys: readonly string[];
  /** The value when config.json has none of the keys (the value the program was built with). */
  readonly value: unknown;
  /** For each value it may take: program weight -> the checkpoint tensor it reads, where that is
   *  not the weight's own name. */
  readonly reads: readonly { readonly value: unknown; readonly tensors: Readonly<Record<string, string>> }[];
}

export interface Program {
  readonly format: 'archc-kernels/1';
  readonly model: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** Params that shape the kernels: a checkpoint's config.json must agree with each. */
  readonly bindings: readonly ProgramBinding[];
  /** Params config.json decides at load (see ProgramChoice). */
  readonly choices: readonly ProgramChoice[];
  readonly weights: readonly ProgramWeight[];
  readonly derived: readonly DerivedWeight[];
  readonly states: readonly ProgramState[];
  /** Output widths by name (logits: the vocabulary). */
  readonly outputs: Readonly<Record<string, number>>;
  readonly entries: Readonly<Record<EntryName, Entry>>;
  /** Only when asked for (lowerToProgram's `train`): inference packages carry none. */
  readonly train?: TrainEntry;
}

export function isView(o: Operand): o is View {
  return 'buf' in o;
}

/** Rows a per-token state holds in slots of `capacity` tokens: all of them, or for a windowed KV
 *  cache min(window, capacity), a ring where position p is row p % rows (p < rows when unwindowed). */
export function kvRows(s: ProgramState, capacity: number): number {
  return s.window ? Math.min(s.window, capacity) : capacity;
}

/** Floats one slot needs for `capacity` tokens, and where each state starts in it (a bf16 state
 *  takes half as many floats, rounded up to whole 16 bytes). */
export function slotLayout(states: readonly ProgramState[], capacity: number): { floats: number; offsets: number[] } {
  let floats = 0;
  const offsets = states.map((s) => {
    const at = floats;
    const n = s.shape.reduce((a, b) => a * b, 1);
    floats += s.per === 'token' ? kvRows(s, capacity) * n : sequenceFloats(s);
    return at;
  });
  return { floats, offsets };
}

/** Floats of a slot a per-sequence state takes. */
export function sequenceFloats(s: ProgramState): number {
  const n = s.shape.reduce((a, b) => a * b, 1);
  return s.dtype === 'bf16' ? 4 * Math.ceil(n / 8) : n;
}

/** `program` with its SSM states stored as `dtype` (f32: as lowered; bf16: half the bytes, each
 *  value rounded to bf16 where a kernel stores it: runtime/tensor.ts roundBf16; transformers keeps a
 *  bf16 model's cache in bf16 too). */
export function withSsmState(program: Program, dtype: 'f32' | 'bf16'): Program {
  if (dtype === 'f32') return program;
  return { ...program, states: program.states.map((s) => (s.kind === 'ssm' ? { ...s, dtype } : s)) };
}

/** The indices of the states `program` keeps in bf16: kernels rendered for one program run another
 *  only where these agree (the WGSL and CUDA kernels record them). */
export function bf16States(program: Program): number[] {
  return program.states.flatMap((s, i) => (s.dtype === 'bf16' ? [i] : []));
}

/** Where kernels that recorded `rendered` as their bf16 states (absent: none) were rendered for the
 *  other SSM state format than `program`'s: both formats, else null. */
export function stateFormatMismatch(program: Program, rendered: readonly number[] = []): { kernels: 'f32' | 'bf16'; program: 'f32' | 'bf16' } | null {
  const own = bf16States(program);
  return own.join(',') === rendered.join(',') ? null : own.length ? { kernels: 'f32', program: 'bf16' } : { kernels: 'bf16', program: 'f32' };
}

/** Every weight name the kernels of `entries` read. */
export function weightsRead(entries: Readonly<Record<string, EntryOf<TrainKernel>>>): Set<string> {
  const out = new Set<string>();
  for (const e of Object.values(entries)) {
    for (const k0 of e.kernels) {
      const k = k0 as Kernel; // a backward kernel has no stages or body
      for (const o of Object.values(k.inputs)) if ('weight' in o) out.add(o.weight);
      for (const x of [k.body, ...Object.values(k.pre ?? {}), ...(k.epilogue ?? []).map((s) => (s.kind === 'map' ? s.body : s.kind === 'conv_step' ? s.post : undefined))]) {
        if (x) for (const leaf of exprLeaves(x)) if (leaf.op === 'w') out.add(leaf.name);
      }
      for (const p of k.prologue ?? []) {
        if (p.kind !== 'gather_last') out.add(p.weight);
        if (p.kind === 'layernorm' && p.bias) out.add(p.bias);
      }
      for (const s of k.epilogue ?? []) if (s.kind === 'conv_step') { out.add(s.weight); if (s.bias) out.add(s.bias); }
    }
  }
  return out;
}

