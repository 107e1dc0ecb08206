// The WGSL a WebGPU backend runs: for every kernel of every entry, the passes (compute shaders) that
// make it, each with the buffers it binds and how many workgroups a run of T tokens and S sequences
// dispatches. Plain data, rendered by the compiler (codegen/wgsl/) and shipped in the package.
//
// A shader reads and writes its storage buffers only through accessors, `NAME_get(i)` and
// `NAME_set(i, v)` by element index (binding i: `arena`, `ints`, `state`, `scratchN`, or `wbI` for a
// weight), never by indexing an array. The declarations and accessors of a pass's bindings are not in
// its text: they are the binding region, made by `bindingRegion` from the pass's binding kinds and a
// layout per binding chosen from a fixed menu — whole (one binding) or `parts` parts of `per`
// elements — and put between the pass's `head` and `body` (`shaderCode`). The renderer's own text
// (golden files, the package) is every binding whole; a backend whose device cannot bind a buffer
// whole picks the parts from its split plan (split.ts). Nothing reads or rewrites shader text.
//
// Where a kernel's operands sit (arena offsets, state numbers) is not in its text either: a pass
// reads them as `place(i)` from a uniform binding after its storage bindings, which holds the pass's
// `places` (written once per device by the backend). So layers of one shape share their texts, and
// a device compiles each text once (backend.ts `pipeline`).

import type { EntryName } from '../program.ts';
import type { QuantDType } from '../quant.ts';
import type { RotaryTable } from './rotary.ts';

/** What a binding of a pass is: the arena, the integer inputs, the state pool, a scratch buffer, the
 *  optimizer's buffer (WgslOptimizer) or a weight (by name). Binding i of a pass is `@binding(i)` of its shader. */
export type BindingKind = 'arena' | 'ints' | 'state' | 'scratch0' | 'scratch1' | 'scratch2' | 'optim' | `w:${string}`;

/** A count known only at run time: `ceil(n(rows) · times / per)`, where n(T) = tokens,
 *  n(S) = sequences, n(C) = 1 and n(chunks) = the SSD chunks of the batch. */
export interface RunCount {
  readonly rows: 'T' | 'S' | 'C' | 'chunks';
  readonly times: number;
  readonly per: number;
}

export interface Pass {
  /** e.g. `product`, `epilogue`, `chunk states`. */
  readonly name: string;
  /** The shader before its binding region (a comment naming the family and pass) and after it
   *  (helpers, constants, `main`), which calls the accessors of `bindingRegion`. */
  readonly head: string;
  readonly body: string;
  readonly bindings: readonly BindingKind[];
  /** The values `place(i)` reads (u32: the arena's row counts per token and sequence, the offsets of
   *  the buffers the pass reads and writes, the state numbers it reaches), bound as a uniform after
   *  the storage bindings; none: no such binding. */
  readonly places?: readonly number[];
  /** Workgroups: `groups(rows) · columns`, laid out over x and y when over 65535. */
  readonly groups: RunCount;
  readonly columns: number;
  /** Run only when the product rows n(rows)·times are at most / above this (matmul paths). */
  readonly rowsAtMost?: number;
  readonly rowsAbove?: number;
  /** The product rows those bounds are checked against (default: the pass's own `groups`). */
  readonly rows?: RunCount;
  /** Floats each scratch buffer must hold for this pass. */
  readonly scratch?: Readonly<Partial<Record<'scratch0' | 'scratch1' | 'scratch2', RunCount>>>;
}

export interface KernelShaders {
  readonly kernel: string;
  /** The passes with every weight read in its stored float dtype. */
  readonly passes: readonly Pass[];
  /** Where the load may quantise the kernel's matrix (a product's or embedding's `weight`): the
   *  passes again, reading its q8 or q4 codes (codegen/wgsl/shader.ts `quantReader`); the backend
   *  runs the set of the format it uploaded. A product's `a8` are those passes for 8-bit activations
   *  (LoadOptions.activations 'q8'): its input rows rounded per group of 32 into scratch0 by a pass
   *  of their own (codegen/wgsl/quant.ts), then the product's unfused passes reading them there. */
  readonly quant?: { readonly weight: string; readonly passes: Readonly<Record<QuantDType, readonly Pass[]>>; readonly a8?: Readonly<Record<QuantDType, readonly Pass[]>> };
}

/** Every rendering of a kernel's passes a load may run: as stored, then each quantised format's
 *  (`a8`: and those for 8-bit activations). */
export function allPasses(k: KernelShaders, a8 = false): readonly Pass[] {
  return k.quant ? [...k.passes, ...Object.values(k.quant.passes).flat(), ...(a8 ? Object.values(k.quant.a8 ?? {}).flat() : [])] : k.passes;
}

export interface WgslEntry {
  readonly kernels: readonly KernelShaders[];
  /** The SSD chunk length the batch's chunk table is made for (0: no chunked scan). */
  readonly chunk: number;
}

/** The adapter shapes a program is rendered for (the compiler's WGSL target records): `gpu` for GPUs,
 *  `cpu` for adapters that run shaders on CPU cores (SwiftShader and the like: no barriers in
 *  products and norms). The backend picks one by its adapter. */
export type WgslProfile = 'gpu' | 'cpu';

export interface WgslProgram {
  readonly format: 'archc-wgsl/5';
  /** Words before the token ids in the integer buffer: T, S, capacity, slot floats, state offsets,
   *  and last the word where the run's rotary table starts (after the chunk records). */
  readonly header: number;
  /** The (rotary dim, theta) pairs of the table's blocks (rotary.ts): the shaders read cos/sin of
   *  each token's angles from it, made on the host, and never evaluate sin or cos. */
  readonly rotary: readonly RotaryTable[];
  /** Every entry's kernels, rendered once per profile. */
  readonly profiles: Readonly<Record<WgslProfile, Readonly<Record<EntryName, WgslEntry>>>>;
  /** The program's train entry, where it has one (runtime/webgpu/train.ts runs it); per profile. */
  readonly train?: Readonly<Record<WgslProfile, WgslEntry>>;
  /** AdamW on the device after the train entry (runtime/webgpu/optim.ts), where it has one. */
  readonly optimizer?: WgslOptimizer;
  /** The states its shaders read and write as bf16 (runtime/program.ts withSsmState), where any are:
   *  a program loads only with WGSL rendered for its own state formats. */
  readonly bf16States?: readonly number[];
}

/** The optimizer's passes over the train entry's gradients (codegen/wgsl/optim.ts), one rendering for
 *  both profiles (no barrier). They bind the arena (the gradients, the loss), the integer inputs (T and
 *  S place the arena's constant region) and `optim`, one f32 buffer laid out in floats as
 *  [masters | exp_avg | exp_avg_sq | kinds] (each `size` floats, a parameter at the offset of its
 *  gradient in the constant region), then `partials` floats of the norm's first pass, `OPTIM_SCALARS`
 *  scalars (at `scalars`) and the derived weights' values (at `derived`). */
export interface WgslOptimizer {
  readonly size: number;
  readonly partials: number;
  readonly scalars: number;
  /** Every weight's master at `at` (its gradient's offset in the constant region), `length` floats. */
  readonly params: readonly { readonly name: string; readonly at: number; readonly length: number }[];
  /** Derived weights made from the masters: a concatenation of parts (copied by the host's encoder),
   *  or an expression computed by `pass` into the buffer at `at`. */
  readonly derived: readonly { readonly name: string; readonly parts?: readonly string[]; readonly at?: number; readonly length: number; readonly pass?: Pass }[];
  /** The squared norm's partial sums, their total (with the loss, clip factor and whether the step is
   *  finite), then the update. */
  readonly passes: readonly Pass[];
}

/** The scalars' slots in the optimizer's buffer: set by the host before a step (the step's AdamW
 *  factors), then written by the norm's second pass. */
export const OPTIM_SCALARS = {
  decay: 0, stepSize: 1, bc2Sqrt: 2, beta1: 3, beta2: 4, eps: 5, clip: 6, oneMinusBeta1: 7, oneMinusBeta2: 8,
  loss: 9, tokens: 10, norm: 11, scale: 12, ok: 13, count: 16,
} as const;

/** Fields of one sequence's record in the integer buffer (start, len, slot, before, first chunk, chunks). */
export const SEQ_FIELDS = 8;
/** Fields of one chunk's record (start row, len, sequence). */
export const CHUNK_FIELDS = 4;

/** How a binding is laid out over the device's bindings: whole, or `parts` parts of `per` elements
 *  (element i in part floor(i / per); the last part may hold fewer). */
export interface BindingLayout {
  readonly parts: number;
  readonly per: number;
}

/** One binding: the menu's first entry, and what the renderer's own text uses for every binding. */
export const WHOLE: BindingLayout = { parts: 1, per: 0 };

/** Whether a pass may write a binding of this kind (weights and the integer inputs it only reads). */
export function writable(kind: BindingKind): boolean {
  return kind === 'arena' || kind === 'state' || kind === 'optim' || kind.startsWith('scratch');
}

/** The WGSL name of binding `i` of kind `kind`: its accessors are `NAME_get` and `NAME_set`. */
export function bindingName(kind: BindingKind, i: number): string {
  return kind.startsWith('w:') ? `wb${i}` : kind;
}

/** The declarations and accessors of bindings `kinds` laid out as `layouts` (default: all whole):
 *  parts of binding i are consecutive `@binding`s, named `NAME_p0`, `NAME_p1`, …; its accessors pick
 *  the part by a chain of compares against the part boundaries (WGSL cannot index an array of
 *  bindings; the chain is a compare or two for the 2–9 parts real models need, and no division).
 *  Whole, an accessor is one indexing, which shader compilers inline. Then, for a pass with `places`
 *  values, the uniform binding that holds them (four a vec4) and its accessor `place(i)`. */
export function bindingRegion(kinds: readonly BindingKind[], layouts: readonly BindingLayout[] = kinds.map(() => WHOLE), places = 0): string {
  if (layouts.length !== kinds.length) throw new Error(`archc runtime: ${layouts.length} binding layouts for ${kinds.length} bindings`);
  const out: string[] = [];
  let at = 0;
  kinds.forEach((kind, b) => {
    const { parts, per } = layouts[b]!;
    const name = bindingName(kind, b);
    const type = kind.startsWith('w:') || kind === 'ints' ? 'u32' : 'f32';
    const access = writable(kind) ? 'storage, read_write' : 'storage, read';
    for (let p = 0; p < parts; p++) out.push(`@group(0) @binding(${at++}) var<${access}> ${name}_p${p}: array<${type}>;`);
    const index = (p: number) => (p === 0 ? 'i' : `i - ${p * per}u`);
    const fn = (sig: string, part: (p: number) => string, last: (p: number) => string) => (parts === 1 ? `${sig} { ${last(0)} }`
      : [`${sig} {`, ...Array.from({ length: parts - 1 }, (_, p) => `  if (i < ${(p + 1) * per}u) { ${part(p)} }`), `  ${last(parts - 1)}`, '}'].join('\n'));
    const read = (p: number) => `return ${name}_p${p}[${index(p)}];`;
    out.push(fn(`fn ${name}_get(i: u32) -> ${type}`, read, read));
    if (writable(kind)) out.push(fn(`fn ${name}_set(i: u32, v: ${type})`, (p) => `${name}_p${p}[${index(p)}] = v; return;`, (p) => `${name}_p${p}[${index(p)}] = v;`));
  });
  if (places) {
    out.push(`@group(0) @binding(${at}) var<uniform> places: array<vec4<u32>, ${placeVectors(places)}>;`);
    out.push('fn place(i: u32) -> u32 { return places[i >> 2u][i & 3u]; }');
  }
  return out.join('\n');
}

/** The vec4s of a pass's uniform binding for `places` values. */
export const placeVectors = (places: number): number => Math.ceil(places / 4);

/** The shader of `pass` with its bindings laid out as `layouts` (default: all whole). */
export function shaderCode(pass: Pass, layouts?: readonly BindingLayout[]): string {
  return `${pass.head}\n${bindingRegion(pass.bindings, layouts, pass.places?.length ?? 0)}\n${pass.body}`;
}
