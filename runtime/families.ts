// One record per kernel family: its size names, operand slots (what each may be: an activation
// view, a weight, an integer program input; optional or not), attributes, whether it carries a
// state, and which fused stages it takes. The kernel verifier and the program's JSON schema are
// derived from these records, and `KernelOf<F>` types a kernel's sizes by them, so a renderer that
// reads a size its family lacks is a type error. A new family is a record here plus one
// implementation per target (runtime/cpu/families.ts, runtime/wasm, codegen/wgsl, codegen/cuda).

import { exprLeaves } from './expr.ts';
import type { Epilogue, Prologue } from './program.ts';

/** What an operand slot may hold (`value`: a view or a weight, e.g. the SSD's A before the rule that
 *  folds it into a derived weight). `?` marks an optional slot. */
export type SlotKind = 'view' | 'weight' | 'input' | 'value' | 'view?' | 'weight?';
/** An attribute's type. `?` marks an optional attribute. */
export type AttrKind = 'number' | 'boolean' | 'number?' | 'boolean?';

export interface FamilyRecord {
  /** Compile-time sizes, all present. */
  readonly sizes: readonly string[];
  /** Operand slots; `any` (elementwise): any names, each an activation view. */
  readonly inputs: Readonly<Record<string, SlotKind>> | 'any';
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrKind>>;
  /** Whether it reads and writes a state of the sequence's slot (`state` is then required). */
  readonly state: boolean;
  /** Row work before a product (gather_last, norms; a gated norm reads operand z): matmul only. */
  readonly prologue: boolean;
  /** Stages on the result before it is stored (map, rope, conv_step); the operands they read (an
   *  `in` leaf of a map, a rope's `positions`) join the kernel's own slots. */
  readonly epilogue: boolean;
  /** An elementwise body. */
  readonly body: boolean;
}

const record = <const S extends readonly string[]>(r: Omit<FamilyRecord, 'sizes'> & { readonly sizes: S }) => r;
const plain = { attrs: {}, state: false, prologue: false, epilogue: false, body: false } as const;

export const FAMILIES = {
  /** Rows of a weight looked up by token id: y[t] = w[ids[t]]. */
  embedding: record({ ...plain, sizes: ['V', 'D'], inputs: { ids: 'input', w: 'weight' }, outputs: ['y'], epilogue: true }),
  /** y = x·wᵀ (+ b); `transposed`: w stored [in, out] (GPT-2's Conv1D). */
  matmul: record({ ...plain, sizes: ['K', 'N'], inputs: { x: 'view', w: 'weight', b: 'weight?' }, outputs: ['y'], attrs: { transposed: 'boolean?' }, prologue: true, epilogue: true }),
  /** RMSNorm, gated RMSNorm (`gated`, over `groups` parts, operand z) or LayerNorm (`layer`, bias b) over D of each W-wide row. */
  norm: record({ ...plain, sizes: ['W', 'D'], inputs: { x: 'view', z: 'view?', w: 'weight', b: 'weight?' }, outputs: ['y'], attrs: { eps: 'number', groups: 'number', gated: 'boolean', layer: 'boolean?' } }),
  /** y = body, per element. */
  elementwise: record({ ...plain, sizes: ['W'], inputs: 'any', outputs: ['y'], body: true }),
  copy: record({ ...plain, sizes: ['W'], inputs: { x: 'view' }, outputs: ['y'] }),
  /** The last row of each sequence. */
  gather_last: record({ ...plain, sizes: ['W'], inputs: { x: 'view' }, outputs: ['y'] }),
  /** Rotary embedding of the first R dims of each of H heads of Dh. */
  rope: record({ ...plain, sizes: ['H', 'Dh', 'R'], inputs: { x: 'view', positions: 'input' }, outputs: ['y'], attrs: { theta: 'number' } }),
  /** Causal depthwise conv over each sequence (C channels, K taps), continuing the slot's window. */
  conv: record({ ...plain, sizes: ['C', 'K'], inputs: { x: 'view', w: 'weight', b: 'weight?' }, outputs: ['y'], state: true, epilogue: true }),
  conv_step: record({ ...plain, sizes: ['C', 'K'], inputs: { x: 'view', w: 'weight', b: 'weight?' }, outputs: ['y'], state: true, epilogue: true }),
  /** The chunked SSD over packed sequences: H heads of P, G groups of state N, chunks of `chunk`. */
  ssd: record({ ...plain, sizes: ['H', 'P', 'G', 'N', 'chunk'], inputs: { x: 'view', dt: 'view', A: 'value', B: 'view', C: 'view', D: 'value' }, outputs: ['y'], state: true }),
  ssd_step: record({ ...plain, sizes: ['H', 'P', 'G', 'N'], inputs: { x: 'view', dt: 'view', A: 'value', B: 'view', C: 'view', D: 'value' }, outputs: ['y'], state: true }),
  /** Causal GQA attention (H query heads, KV key/value heads of Dh), appending to the slot's KV cache;
   *  with a `window`, each query sees its last `window` keys and the cache is a ring of that many rows. */
  attention: record({ ...plain, sizes: ['H', 'KV', 'Dh'], inputs: { q: 'view', k: 'view', v: 'view' }, outputs: ['y'], attrs: { scale: 'number', window: 'number?' }, state: true }),
  attention_decode: record({ ...plain, sizes: ['H', 'KV', 'Dh'], inputs: { q: 'view', k: 'view', v: 'view' }, outputs: ['y'], attrs: { scale: 'number', window: 'number?' }, state: true }),
  /** Softmax over each D-wide part of every W-wide row (max subtracted first). */
  softmax: record({ ...plain, sizes: ['W', 'D'], inputs: { x: 'view' }, outputs: ['y'] }),
  /** The K largest of each D-wide row, largest first, ties to the lower index (torch.topk on the
   *  CPU): `values`, and `indices` as integer-valued floats; `normalize`: values over their sum. */
  topk: record({ ...plain, sizes: ['D', 'K'], inputs: { x: 'view' }, outputs: ['values', 'indices'], attrs: { normalize: 'boolean' } }),
  /** Mixture-of-experts feed-forward, grouped: each token's K chosen experts (`idx`, weights `gates`)
   *  of E; the rows routed to one expert go through its gate/up product w_in [E, 2I, H], silu(gate)·up,
   *  and its down product w_out [E, H, I]; the results are scattered back to their tokens, weighted. */
  experts: record({ ...plain, sizes: ['E', 'H', 'I', 'K'], inputs: { x: 'view', idx: 'view', gates: 'view', w_in: 'weight', w_out: 'weight' }, outputs: ['y'] }),
  /** Per token, K rows of D picked from its N rows by `idx` (integer floats): y[t, j] = x[t, idx[t, j]],
   *  a row of zeros for an index outside [0, N). */
  gather: record({ ...plain, sizes: ['N', 'K', 'D'], inputs: { x: 'view', idx: 'view' }, outputs: ['y'] }),
  /** Per token, its K rows of D added into N rows of zeros by `idx`: y[t, i] = Σ_{j: idx[t, j] = i} x[t, j]
   *  in j order; a row whose index is outside [0, N) is skipped. */
  scatter: record({ ...plain, sizes: ['N', 'K', 'D'], inputs: { x: 'view', idx: 'view' }, outputs: ['y'] }),
} as const satisfies Readonly<Record<string, FamilyRecord>>;

export type Family = keyof typeof FAMILIES;
export const FAMILY_NAMES = Object.keys(FAMILIES) as Family[];

/** The families only a train entry runs (docs/TRAINING.md): the loss and the backward kernels that
 *  are not compositions of the families above. Kept apart so that the inference targets' tables
 *  (wasm, WGSL, CUDA) stay complete; the CPU runs them (runtime/cpu/train.ts). Cotangents are named
 *  d<operand>; `dw`, `db`, `dA`, `dD` are constant rows (a weight's gradient, summed over the rows). */
export const BACKWARD_FAMILIES = {
  /** The mean causal-LM loss over the rows whose next label is not -100 (row t predicts labels[t + 1]):
   *  `loss` = [mean, rows counted]; `dlogits` = (softmax − onehot) / rows counted, zero elsewhere. */
  causal_lm_loss: record({ ...plain, sizes: ['V'], inputs: { logits: 'view', labels: 'input' }, outputs: ['loss', 'dlogits'] }),
  /** A product's weight gradient dw = dyᵀ·x over every row, [N, K] (or [K, N] `transposed`, as the weight is stored). */
  matmul_wgrad: record({ ...plain, sizes: ['K', 'N'], inputs: { dy: 'view', x: 'view' }, outputs: ['dw'], attrs: { transposed: 'boolean?' } }),
  /** y[j] = Σ over rows and over the columns c ≡ j (mod N) of x: the cotangent of a broadcast operand (a bias). */
  reduce_rows: record({ ...plain, sizes: ['W', 'N'], inputs: { x: 'view' }, outputs: ['y'] }),
  /** dx = dy where min ≤ x ≤ max, else 0 (torch's clamp backward). */
  clamp_backward: record({ ...plain, sizes: ['W'], inputs: { x: 'view', dy: 'view' }, outputs: ['dx'], attrs: { min: 'number', max: 'number' } }),
  /** RMSNorm's backward over D of each W-wide row (the inverse RMS recomputed from x). */
  rmsnorm_backward: record({ ...plain, sizes: ['W', 'D'], inputs: { x: 'view', w: 'weight', dy: 'view' }, outputs: ['dx', 'dw'], attrs: { eps: 'number' } }),
  /** rmsnorm(x · silu(z)) over `groups` parts: its backward to x, z and the weight. */
  rmsnorm_gated_backward: record({ ...plain, sizes: ['W', 'D'], inputs: { x: 'view', z: 'view', w: 'weight', dy: 'view' }, outputs: ['dx', 'dz', 'dw'], attrs: { eps: 'number', groups: 'number' } }),
  /** LayerNorm's backward over D of each W-wide row (mean and 1/σ recomputed from x): dx, dw, db. */
  layernorm_backward: record({ ...plain, sizes: ['W', 'D'], inputs: { x: 'view', w: 'weight', dy: 'view' }, outputs: ['dx', 'dw', 'db'], attrs: { eps: 'number' } }),
  /** dx = dy · gelu'(x), exact (erf) or of the tanh approximation (`tanh`). */
  gelu_backward: record({ ...plain, sizes: ['W'], inputs: { x: 'view', dy: 'view' }, outputs: ['dx'], attrs: { tanh: 'boolean' } }),
  /** Softmax's backward over each D-wide part, from its output: dx = y · (dy − Σ dy·y). */
  softmax_backward: record({ ...plain, sizes: ['W', 'D'], inputs: { y: 'view', dy: 'view' }, outputs: ['dx'] }),
  /** topk's backward: each value's cotangent back to the element it was chosen from (through the
   *  division by the values' sum with `normalize`); the indices carry none. */
  topk_backward: record({ ...plain, sizes: ['D', 'K'], inputs: { x: 'view', indices: 'view', dy: 'view' }, outputs: ['dx'], attrs: { normalize: 'boolean' } }),
  /** The table's gradient: each row of dy added into the row of its id (scatter-add), [V, D]. */
  embedding_backward: record({ ...plain, sizes: ['V', 'D'], inputs: { ids: 'input', dy: 'view' }, outputs: ['dw'] }),
  /** The causal depthwise conv's backward within each sequence: dx, dw [C, K], db [C]. */
  conv_backward: record({ ...plain, sizes: ['C', 'K'], inputs: { x: 'view', w: 'weight', dy: 'view' }, outputs: ['dx', 'dw', 'db'] }),
  /** Rotary embedding's backward: the inverse rotation of dy. */
  rope_backward: record({ ...plain, sizes: ['H', 'Dh', 'R'], inputs: { dy: 'view', positions: 'input' }, outputs: ['dx'], attrs: { theta: 'number' } }),
  /** The train entry's attention: `attention` without a KV cache, also saving each query row's
   *  logsumexp `lse` [T, H] for the backward. */
  attention_train: record({ ...plain, sizes: ['H', 'KV', 'Dh'], inputs: { q: 'view', k: 'view', v: 'view' }, outputs: ['y', 'lse'], attrs: { scale: 'number', window: 'number?' } }),
  /** Flash-style attention backward within each sequence, P recomputed from the saved logsumexp. */
  attention_backward: record({ ...plain, sizes: ['H', 'KV', 'Dh'], inputs: { q: 'view', k: 'view', v: 'view', y: 'view', lse: 'view', dy: 'view' },
    outputs: ['dq', 'dk', 'dv'], attrs: { scale: 'number', window: 'number?' } }),
  /** The grouped experts' backward, per token over its K chosen experts only (gate and up recomputed
   *  from x): dx, the gates' cotangent dgates [T, K], and the experts' gradients dw_in [E, 2I, H] and
   *  dw_out [E, H, I] (zeros for an expert no token chose). */
  experts_backward: record({ ...plain, sizes: ['E', 'H', 'I', 'K'], inputs: { x: 'view', idx: 'view', gates: 'view', w_in: 'weight', w_out: 'weight', dy: 'view' },
    outputs: ['dx', 'dgates', 'dw_in', 'dw_out'] }),
  /** The chunked SSD backward per sequence, chunks in reverse (mamba-ssm's split: chunk scan, chunk
   *  state, state passing); the states entering each chunk are recomputed by a forward state pass. */
  ssd_backward: record({ ...plain, sizes: ['H', 'P', 'G', 'N', 'chunk'], inputs: { x: 'view', dt: 'view', A: 'value', B: 'view', C: 'view', D: 'value', dy: 'view' },
    outputs: ['dx', 'ddt', 'dA', 'dB', 'dC', 'dD'] }),
} as const satisfies Readonly<Record<string, FamilyRecord>>;

export type BackwardFamily = keyof typeof BACKWARD_FAMILIES;
export const BACKWARD_FAMILY_NAMES = Object.keys(BACKWARD_FAMILIES) as BackwardFamily[];
/** A family of any entry, inference or train. */
export type AnyFamily = Family | BackwardFamily;
type AllFamilies = typeof FAMILIES & typeof BACKWARD_FAMILIES;

/** The sizes of family F, by name. */
export type SizesOf<F extends AnyFamily> = { readonly [N in AllFamilies[F]['sizes'][number]]: number };

/** What is wrong with a kernel's shape as its family's record sees it (operand kinds as `kind(o)`). */
export function familyProblems(k: {
  readonly family: string; readonly sizes: Readonly<Record<string, number>>; readonly inputs: Readonly<Record<string, unknown>>;
  readonly outputs: Readonly<Record<string, unknown>>; readonly attrs: Readonly<Record<string, unknown>>; readonly state?: number;
  readonly body?: unknown; readonly prologue?: readonly Prologue[]; readonly epilogue?: readonly Epilogue[];
}, kind: (o: unknown) => 'view' | 'weight' | 'input'): string[] {
  const r: FamilyRecord | undefined = ({ ...FAMILIES, ...BACKWARD_FAMILIES } as Readonly<Record<string, FamilyRecord>>)[k.family];
  if (!r) return [`family ${k.family} has no record`];
  const out: string[] = [];
  const sizes = new Set(r.sizes);
  for (const n of r.sizes) if (!(n in k.sizes)) out.push(`lacks size ${n}`);
  for (const n of Object.keys(k.sizes)) if (!sizes.has(n)) out.push(`has size ${n}, which a ${k.family} kernel does not take`);
  if (r.inputs !== 'any') {
    for (const [n, slot] of Object.entries(r.inputs)) {
      const o = k.inputs[n];
      if (o === undefined) { if (!slot.endsWith('?')) out.push(`lacks operand ${n}`); continue; }
      const want = slot.replace('?', '');
      if (want === 'value' ? kind(o) === 'input' : kind(o) !== want) out.push(`operand ${n} is a ${kind(o)}, where a ${k.family} kernel takes a ${want}`);
    }
    const staged = stageOperands(k.prologue ?? [], k.epilogue ?? []);
    for (const n of Object.keys(k.inputs)) if (!(n in r.inputs) && !staged.has(n)) out.push(`has operand ${n}, which a ${k.family} kernel and its stages do not read`);
  } else {
    for (const [n, o] of Object.entries(k.inputs)) if (kind(o) !== 'view') out.push(`operand ${n} is a ${kind(o)}; an ${k.family} kernel reads views`);
  }
  for (const n of r.outputs) if (!(n in k.outputs)) out.push(`lacks output ${n}`);
  for (const n of Object.keys(k.outputs)) if (!r.outputs.includes(n)) out.push(`has output ${n}, which a ${k.family} kernel does not write`);
  for (const [n, a] of Object.entries(r.attrs)) {
    const v = k.attrs[n];
    if (v === undefined) { if (!a.endsWith('?')) out.push(`lacks attribute ${n}`); continue; }
    if (typeof v !== a.replace('?', '')) out.push(`attribute ${n} is ${typeof v}, not ${a.replace('?', '')}`);
  }
  for (const n of Object.keys(k.attrs)) if (!(n in r.attrs)) out.push(`has attribute ${n}, which a ${k.family} kernel does not take`);
  if (r.state !== (k.state !== undefined)) out.push(r.state ? 'carries no state' : 'carries a state');
  if (r.body !== (k.body !== undefined)) out.push(r.body ? 'has no body' : 'has a body');
  if (k.prologue !== undefined && !r.prologue) out.push('has a prologue');
  if (k.epilogue !== undefined && !r.epilogue) out.push('has an epilogue');
  return out;
}

/** The operands fused stages read besides the kernel's own: a gated norm's z, a map's `in` leaves, a
 *  rope's positions. */
function stageOperands(prologue: readonly Prologue[], stages: readonly Epilogue[]): Set<string> {
  const out = new Set<string>(prologue.some((p) => p.kind === 'rmsnorm_gated') ? ['z'] : []);
  for (const s of stages) {
    if (s.kind === 'rope') out.add('positions');
    for (const e of [s.kind === 'map' ? s.body : s.kind === 'conv_step' ? s.post : undefined]) {
      if (e) for (const l of exprLeaves(e)) if (l.op === 'in') out.add(l.name);
    }
  }
  return out;
}
