// Where each kernel runs on the `wasm` backend: as the program module's functions (codegen/wasm/
// program.ts renders them; the chunked SSD and prefill attention as the module's fixed steps around
// the product kernels), or on the reference families (runtime/cpu/families.ts), and why. One pure
// function of the program, known at build: the renderer renders exactly the kernels placed in the
// module (one it cannot render is a compiler bug, not a silent fallback), the backend dispatches by
// it and lists what falls back (`WasmBackend.fallbacks`), and `archc build` writes the same list into
// build-report.json. A test pins the list per model (test/runtime/wasm/fallbacks.test.ts).

import { exprLeaves } from '../expr.ts';
import { type Entry, type EntryName, type Expr, type Family, type FamilyTable, type EntryOf, type Kernel, type KernelOf, type Program, type TrainKernel, type View, byFamily, isView, weightsRead } from '../program.ts';

export type Placement = { readonly path: 'module' } | { readonly path: 'reference'; readonly reason: string };

/** A kernel that runs on a reference path, and why. */
export interface Fallback {
  readonly entry: EntryName;
  readonly name: string;
  readonly family: Family;
  readonly reason: string;
}

/** Why a wasm backend without the program module (no shared memory) runs every kernel's stages on
 *  the reference families (its products still run on the wasm product kernels). */
export const NO_MODULE = 'no program module (a memory that is not shared): stages on the reference families, products on the wasm kernels';

const MODULE: Placement = { path: 'module' };

/** Every kernel's placement, by entry, in kernel order. */
export function wasmPlan(program: Program): Record<EntryName, Placement[]> {
  const plan = {} as Record<EntryName, Placement[]>;
  for (const [name, e] of Object.entries(program.entries) as [EntryName, Entry][]) plan[name] = e.kernels.map((k) => placeKernel(program, k));
  return plan;
}

/** The kernels that run on a reference path, in entry and kernel order. */
export function wasmFallbacks(program: Program): Fallback[] {
  const plan = wasmPlan(program);
  return (Object.entries(program.entries) as [EntryName, Entry][]).flatMap(([entry, e]) => e.kernels.flatMap((k, i) => {
    const p = plan[entry][i]!;
    return p.path === 'reference' ? [{ entry, name: k.name, family: k.family, reason: p.reason }] : [];
  }));
}

/** How the wasm backend's weights are read: `products`, weights read as a matmul's `w` (by
 *  whether transposed, [K, N] packed as [N, K]); `elsewhere`, those read otherwise too (other
 *  kernels, stages, derived weights: they keep a host copy); `soleParts`, weights read only as a part
 *  of one derived weight. `module`: whether the program module is at hand (without it a transposed
 *  product runs on the reference family, over [K, N] itself). The train entry's products read the
 *  packed panels where inference packs them the same way round, else the host copy (its dX
 *  products: WasmBackend.linearTransposed). */
export function weightUses(program: Program, module: boolean): { products: Map<string, boolean>; elsewhere: Set<string>; soleParts: Set<string> } {
  const products = new Map<string, boolean>(), soleParts = new Set<string>();
  const rest: EntryOf<TrainKernel>[] = [];
  for (const e of [...Object.values(program.entries), ...(program.train ? [program.train] : [])] as EntryOf<TrainKernel>[]) {
    const kernels = e.kernels.map((k) => {
      const w = k.inputs.w;
      if (k.family !== 'matmul' || !w || !('weight' in w)) return k;
      const transposed = !!k.attrs.transposed;
      if (transposed && !module) return k;
      if (e === program.train && products.get(w.weight) !== transposed) return k;
      if ((products.get(w.weight) ?? transposed) !== transposed) throw new Error(`archc runtime: weight ${w.weight} is read by products both as [N, K] and as [K, N]`);
      products.set(w.weight, transposed);
      const { w: _, ...inputs } = k.inputs;
      return { ...k, inputs };
    });
    rest.push({ ...e, kernels });
  }
  // what reads a weight other than as a product's matrix: other kernels, stages, derived weights
  const elsewhere = weightsRead(Object.fromEntries(rest.map((e, i) => [i, e])));
  const kernels = new Set(elsewhere), seen = new Set<string>();
  for (const d of program.derived) {
    const leaves = d.from.kind === 'concat' ? d.from.parts : exprLeaves(d.from.body).flatMap((l) => (l.op === 'w' ? [l.name] : []));
    for (const p of leaves) {
      elsewhere.add(p);
      if (seen.has(p)) soleParts.delete(p);
      else soleParts.add(seen.add(p) && p);
    }
  }
  for (const p of soleParts) if (kernels.has(p) || products.has(p)) soleParts.delete(p);
  return { products, elsewhere, soleParts };
}

/** Where `k` runs: the first reason it cannot run in the module, else the module. */
export function placeKernel(program: Program, k: Kernel): Placement {
  const reason = byFamily(FAMILY, k, program);
  return reason ? { path: 'reference', reason } : MODULE;
}

/** Whether a kernel placed in the module has functions of its own there (`<entry>.<index>.<stage>`):
 *  all but the chunked SSD without a `pre`, prefill attention and the experts, which are the module's fixed steps. */
export function ownFunctions(k: Kernel): boolean {
  return k.family !== 'attention' && k.family !== 'experts' && !(k.family === 'ssd' && !Object.keys(k.pre ?? {}).length);
}

/** null where the kernel renders, else why not. */
type Check<F extends Family = Family> = (k: KernelOf<F>, program: Program) => string | null;

const first = (...reasons: (() => string | null)[]): string | null => {
  for (const r of reasons) { const why = r(); if (why) return why; }
  return null;
};
const viewOf = (k: Kernel, n: string): View | null => { const o = k.inputs[n]; return o && isView(o) ? o : null; };
const isWeight = (k: Kernel, n: string) => { const o = k.inputs[n]; return !!o && 'weight' in o; };
const noPre = (k: Kernel, what: string) => (Object.keys(k.pre ?? {}).length ? `${what} with a pre-expression on an operand` : null);
const stateOf = (k: Kernel) => (k.state === undefined ? `no state for ${k.family}` : null);

/** Why an expression cannot be spelled where `x` is (or is not) at hand: an `x` leaf without one,
 *  an operand that is missing or the integer input, or such a leaf in an operand's `pre`. */
function exprReason(k: Kernel, e: Expr, hasX: boolean): string | null {
  for (const l of exprLeaves(e)) {
    if (l.op === 'x' && !hasX) return 'an expression reading x where there is no x';
    if (l.op !== 'in') continue;
    const o = k.inputs[l.name];
    if (!o) return `an expression reading operand ${l.name}, which the kernel does not have`;
    if ('input' in o) return `an expression reading the integer input ${o.input}`;
    const pre = k.pre?.[l.name];
    if (isView(o) && pre) { const why = exprReason(k, pre, true); if (why) return why; }
  }
  return null;
}

/** Operands read whole (into scratch through their `pre` where they have one): views, or weights
 *  without a `pre`. */
function operandsReason(k: Kernel, names: readonly string[]): string | null {
  for (const n of names) {
    const o = k.inputs[n];
    if (!o) return `no operand ${n}`;
    if ('input' in o) return `operand ${n} is the integer input ${o.input}`;
    if ('weight' in o && k.pre?.[n]) return `a pre-expression on weight operand ${n}`;
    const why = exprReason(k, { op: 'in', name: n }, false);
    if (why) return why;
  }
  return null;
}

/** The epilogue chain from a result `width` columns wide to the output y. */
function epilogueReason(k: Kernel, width: number): string | null {
  const y = k.outputs.y;
  if (!y) return 'no output y';
  for (const s of k.epilogue ?? []) {
    if (s.kind === 'map') {
      const why = exprReason(k, s.body, true);
      if (why) return why;
      width = s.width;
    } else if (s.kind === 'conv_step' && s.post) {
      if (exprLeaves(s.post).some((l) => l.op === 'x' && l.offset !== 0)) return 'a one-token conv whose post-expression reads other columns';
      const why = exprReason(k, s.post, true);
      if (why) return why;
    }
  }
  return width === y.width ? null : `an epilogue ending at ${width} columns, not the output's ${y.width}`;
}

/** A weight the product kernels pack: [N, K] ([K, N] for a transposed product) in a float type
 *  (the panels are f32 or bf16). */
function packable(program: Program, name: string, N: number, K: number, transposed: boolean): string | null {
  const w = program.weights.find((x) => x.name === name) ?? program.derived.find((x) => x.name === name);
  if (!w) return `no weight ${name}`;
  if (w.dtype === 'i32') return `weight ${name} is i32`;
  const [a, b] = transposed ? [K, N] : [N, K];
  return w.shape.length === 2 && w.shape[0] === a && w.shape[1] === b ? null : `weight ${name} of shape [${w.shape}] is not [${a}, ${b}]`;
}

const matmul: Check<'matmul'> = (k, program) => {
  const w = k.inputs.w, x = viewOf(k, 'x'), b = k.inputs.b;
  const { K, N } = k.sizes;
  if (!w || !('weight' in w)) return 'a product whose matrix is not a weight';
  if (!x) return 'a product whose x is not an activation view';
  if (x.width !== K) return 'a product over several rows of its input view';
  if (b && !('weight' in b)) return 'a bias that is not a weight';
  const stages = k.prologue ?? [];
  const rest = stages[0]?.kind === 'gather_last' ? stages.slice(1) : stages;
  return first(
    () => packable(program, w.weight, N, K, !!k.attrs.transposed),
    () => (rest.some((p) => p.kind === 'gather_last') ? 'gather_last after a norm in a prologue' : null),
    () => (rest.slice(1).some((p) => p.kind === 'rmsnorm_gated') ? 'a gated norm after another prologue stage' : null),
    () => (rest[0]?.kind === 'rmsnorm_gated' && !viewOf(k, 'z') ? 'a gated norm without the operand z' : null),
    () => exprReason(k, { op: 'in', name: 'x' }, false),
    () => (rest[0]?.kind === 'rmsnorm_gated' ? exprReason(k, { op: 'in', name: 'z' }, false) : null),
    () => epilogueReason(k, N),
  );
};

const norm: Check<'norm'> = (k) => {
  const { W, D } = k.sizes;
  const x = viewOf(k, 'x'), y = k.outputs.y, b = k.inputs.b;
  return first(
    () => noPre(k, 'a norm'),
    () => (!x || !y || x.width !== W || y.width !== W || W % D !== 0 ? `a norm over views other than rows of ${W} floats in groups of ${D}` : null),
    () => (isWeight(k, 'w') ? null : 'a norm whose weight is not a weight'),
    () => (k.attrs.layer && b && !('weight' in b) ? 'a layernorm bias that is not a weight' : null),
    () => (!k.attrs.layer && k.attrs.gated && (!viewOf(k, 'z') || W !== D) ? 'a gated norm over several groups of a view, or without z' : null),
  );
};

const elementwise: Check<'elementwise'> = (k) => (!k.body ? 'an elementwise kernel without a body' : !k.outputs.y ? 'no output y' : exprReason(k, k.body, false));

const rope: Check<'rope'> = (k) => {
  const { H, Dh, R } = k.sizes;
  const x = viewOf(k, 'x'), y = k.outputs.y;
  return !x || !y || R % 2 || R > Dh || x.width !== H * Dh || y.width !== H * Dh ? 'a rope over views other than rows of its heads' : null;
};

const conv: Check<'conv' | 'conv_step'> = (k) => {
  const b = k.inputs.b;
  return first(
    () => (!isWeight(k, 'w') || (b && !('weight' in b)) ? 'a conv whose weights are activations' : null),
    () => operandsReason(k, ['x']),
    () => stateOf(k),
    () => (k.epilogue?.length ? epilogueReason(k, k.sizes.C) : null),
  );
};

const ssdStep: Check<'ssd_step'> = (k) => first(
  () => (k.sizes.H % k.sizes.G ? 'groups that do not divide the heads' : null),
  () => operandsReason(k, ['x', 'dt', 'A', 'B', 'C', 'D']),
  () => stateOf(k),
  () => (k.outputs.y ? null : 'no output y'),
);

/** q, k, v activation views none of which is y's buffer (the output is written while they are read). */
function attentionViews(k: Kernel): string | null {
  const views = ['q', 'k', 'v'].map((n) => viewOf(k, n));
  const y = k.outputs.y;
  if (!y) return 'no output y';
  if (views.some((v) => !v)) return 'attention operands that are not activation views';
  return views.some((v) => v!.buf === y.buf) ? 'an attention output sharing a buffer with an operand' : null;
}

const attentionDecode: Check<'attention_decode'> = (k) => {
  const { H, KV, Dh } = k.sizes;
  return first(
    () => (KV < 1 || H % KV ? 'kv heads that do not divide the heads' : null),
    () => noPre(k, 'attention'),
    () => attentionViews(k),
    () => {
      const [q, kk, v] = ['q', 'k', 'v'].map((n) => viewOf(k, n)!);
      return q!.width !== H * Dh || kk!.width !== KV * Dh || v!.width !== KV * Dh || k.outputs.y!.width !== H * Dh ? 'attention views other than rows of their heads' : null;
    },
    () => stateOf(k),
  );
};

/** The chunked SSD: the module's fixed steps over x, dt, B, C in place (through their `pre` into
 *  scratch where they have one; A and D are read on the host). */
const ssd: Check<'ssd'> = (k) => first(
  () => (['x', 'dt', 'B', 'C'].some((n) => !viewOf(k, n)) ? 'SSD operands x, dt, B, C that are not activation views' : null),
  () => (k.outputs.y ? null : 'no output y'),
  () => (['x', 'dt', 'B', 'C'].some((n) => viewOf(k, n)!.buf === k.outputs.y!.buf) ? 'an SSD output sharing a buffer with an operand' : null),
  () => operandsReason(k, ['x', 'dt', 'B', 'C']),
  () => stateOf(k),
);

/** The largest embedding table the module reads: it reads an f32 copy in the wasm memory (beside
 *  the host's, which the reference path and tied products keep), so a large table stays on the host,
 *  where gathering T rows costs about what the module would. */
export const EMBEDDING_COPY_BYTES = 64 * 2 ** 20;

/** Rows of a [V, D] float table by the token ids or positions, through the epilogue. */
const embedding: Check<'embedding'> = (k, program) => {
  const ids = k.inputs.ids, w = k.inputs.w;
  const { V, D } = k.sizes;
  if (!ids || !('input' in ids)) return 'an embedding by computed ids';
  if (!w || !('weight' in w)) return 'an embedding of an activation';
  const t = program.weights.find((x) => x.name === w.weight) ?? program.derived.find((x) => x.name === w.weight);
  if (!t || t.dtype === 'i32' || t.shape.length !== 2 || t.shape[0] !== V || t.shape[1] !== D) return `an embedding table other than [V=${V}, D=${D}] floats`;
  const bytes = 4 * V * D;
  if (bytes > EMBEDDING_COPY_BYTES) return `an embedding table of ${(bytes / 2 ** 20).toFixed(0)} MiB as f32, over the ${EMBEDDING_COPY_BYTES / 2 ** 20} MiB the module copies into the wasm memory`;
  return epilogueReason(k, D);
};

/** Prefill attention: the module's fixed steps around the products, operands read in place. */
const attention: Check<'attention'> = (k) => first(() => noPre(k, 'attention'), () => attentionViews(k), () => stateOf(k));

/** Rows by index: x, idx and y rows of their sizes (x through its `pre` into scratch). */
const byIndex = (k: KernelOf<'gather' | 'scatter'>, gather: boolean) => first(() => operandsReason(k, ['x', 'idx']), () => {
  const x = viewOf(k, 'x'), idx = viewOf(k, 'idx'), y = k.outputs.y, { N, K, D } = k.sizes;
  return !x || !idx || !y || x.width !== (gather ? N : K) * D || idx.width !== K || y.width !== (gather ? K : N) * D ? `a ${k.family} over views other than its rows` : null;
});

const FAMILY: FamilyTable<[Program], string | null> = {
  matmul, norm, elementwise, rope, conv, conv_step: conv, ssd_step: ssdStep, attention_decode: attentionDecode, ssd, attention,
  embedding,
  copy: () => 'the wasm renderer has no copy family',
  gather_last: () => 'the wasm renderer has no gather_last family (it renders gather_last in a product\'s prologue)',
  softmax: (k) => first(() => operandsReason(k, ['x']), () => {
    const x = viewOf(k, 'x'), y = k.outputs.y, { W, D } = k.sizes;
    return !x || !y || x.width !== W || y.width !== W || W % D ? `a softmax over views other than rows of ${W} floats in parts of ${D}` : null;
  }),
  topk: (k) => first(() => operandsReason(k, ['x']), () => {
    const x = viewOf(k, 'x'), v = k.outputs.values, i = k.outputs.indices, { D, K } = k.sizes;
    return !x || !v || !i || x.width !== D || v.width !== K || i.width !== K ? `a topk over views other than rows of ${D} floats into rows of ${K}` : null;
  }),
  gather: (k) => byIndex(k, true), scatter: (k) => byIndex(k, false),
  // the experts are the module's products per expert (runtime/wasm/experts.ts), operands read in place
  experts: (k) => (['x', 'idx', 'gates'].some((n) => !viewOf(k, n)) ? 'experts operands that are not activation views' : noPre(k, 'experts')),
};
