// Running one op's kernels alone on a backend: the op record lowers a node with the given input
// types into kernels over fresh buffers (activations) and named weights; the harness writes the
// inputs into the arena, poisons the outputs, dispatches, and reads the results. Kernel tests for
// every target use it against the CPU backend.

import type { LowerCtx, KernelSpec, Lowered } from '../../compiler/kernel/lower.ts';
import { rowWidth } from '../../compiler/kernel/lower.ts';
import { planMemory } from '../../compiler/kernel/memory.ts';
import { OP_BY_NAME, type Attrs, type TensorType } from '../../compiler/ops.ts';
import type { Backend, Invocation, StatePool } from '../../runtime/backend.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { Entry, EntryName, Expr, Kernel, Operand, Program, Rows, View } from '../../runtime/program.ts';
import type { HostWeight } from '../../runtime/quant.ts';
import type { Tensor } from '../../runtime/tensor.ts';

/** An input of the op: an activation ([T, ...] values), a weight, or absent. */
export type OpInput = { readonly act: Float32Array; readonly shape: readonly (number | 'T')[]; readonly dtype?: 'f32' | 'i32' }
  /** `upload`: what the backend receives instead of `weight` (a quantised form of it). */
  | { readonly weight: Tensor; readonly upload?: HostWeight } | null;

export interface OpRun {
  readonly program: Program;
  readonly outputs: Float32Array[];
  /** The state pool and each sequence's slot, after the run (the op's carried state). */
  readonly pool: StatePool;
  readonly slots: readonly number[];
}

/** How the T rows form sequences: `seqs` packs sequences of these lengths (forward/prefill; they
 *  must sum to T), each having held `before[i]` tokens, its slot filled from `state(slot bytes, i)`
 *  first (a cache to continue). */
export interface OpBatch {
  readonly seqs?: readonly number[];
  readonly before?: readonly number[];
  readonly state?: (bytes: number, seq: number) => Uint8Array;
  /** How the slots keep the op's state (runtime/program.ts ProgramState.dtype). */
  readonly stateDtype?: 'bf16';
}

/** Lowers `op` over `inputs` and runs its kernels on `backend`: T token rows of one sequence
 *  (forward, prefill), or T sequences of one token each (decode), every sequence in a fresh slot. */
export function runOp(name: string, inputs: readonly OpInput[], attrs: Attrs, T: number,
  opts: { mode?: EntryName; backend?: (p: Program) => Backend } & OpBatch = {}): OpRun {
  const { program, inv, entry, outs, pool, slots } = startOp(name, inputs, attrs, T, opts);
  return { program, outputs: outs.map((_, i) => inv.read(entry.outputs[`y${i}`]!)), pool, slots };
}

/** runOp on a backend that reads asynchronously (a GPU); `backend` may be made asynchronously too. */
export async function runOpAsync(name: string, inputs: readonly OpInput[], attrs: Attrs, T: number,
  opts: { mode?: EntryName; backend: (p: Program) => Backend } & OpBatch): Promise<OpRun> {
  const { program, inv, entry, outs, pool, slots } = startOp(name, inputs, attrs, T, opts);
  const outputs: Float32Array[] = [];
  for (let i = 0; i < outs.length; i++) outputs.push(await inv.readAsync(entry.outputs[`y${i}`]!));
  return { program, outputs, pool, slots };
}

function startOp(name: string, inputs: readonly OpInput[], attrs: Attrs, T: number,
  opts: { mode?: EntryName; backend?: (p: Program) => Backend } & OpBatch): { program: Program; inv: Invocation; entry: Entry; outs: View[]; pool: StatePool; slots: number[] } {
  const op = OP_BY_NAME.get(name) ?? (() => { throw new Error(`no op ${name}`); })();
  const full: Attrs = { ...Object.fromEntries(Object.entries(op.attrs).filter(([, a]) => a.default !== undefined).map(([k, a]) => [k, a.default!])), ...attrs };
  const types: (TensorType | null)[] = inputs.map((i) => (i === null ? null : 'act' in i ? { shape: i.shape, dtype: i.dtype ?? 'f32' } : { shape: i.weight.shape, dtype: i.weight.dtype }));
  const outTypes = op.infer(types, full);
  const buffers: { id: number; width: number; rows: Rows }[] = [];
  const fresh = (width: number, rows: Rows): View => {
    buffers.push({ id: buffers.length, width, rows });
    return { buf: buffers.length - 1, col: 0, width };
  };
  const operands: (Operand | null)[] = inputs.map((i, k) => (i === null ? null : 'act' in i ? fresh(rowWidth(types[k]!), 'T') : { weight: `w${k}` }));
  const outs = outTypes.map((t) => fresh(rowWidth(t), 'T'));
  const kernels: Kernel[] = [];
  const emit = (k: KernelSpec) => kernels.push({ name: `${name}.${kernels.length}`, family: k.family, sizes: k.sizes, inputs: k.inputs, outputs: k.outputs,
    attrs: k.attrs ?? {}, ...(k.body ? { body: k.body } : {}), ...(k.state !== undefined ? { state: k.state } : {}), fused: [name], source: [] } as Kernel);
  const mode = opts.mode ?? 'forward';
  const spec = op.state?.(types, full);
  const ctx: LowerCtx = {
    mode, attrs: full, types, ...(spec ? { state: 0 } : {}),
    in: (s) => operands[s] ?? null,
    out: (i) => outs[i]!,
    temp: fresh,
    emit,
    elementwise(body) {
      const ins: Record<string, Operand> = {};
      const leaf = (s: number): Expr => {
        const o = operands[s]!;
        if ('weight' in o) return { op: 'w', name: o.weight };
        ins[op.inputs[s]!.name] = o;
        return { op: 'in', name: op.inputs[s]!.name };
      };
      const e = body(leaf);
      emit({ family: 'elementwise', sizes: { W: outs[0]!.width }, inputs: ins, body: e, outputs: { y: outs[0]! } });
    },
  };
  op.lower(ctx);
  // a writer for every input buffer, so the memory plan keeps them apart from the outputs
  const lowered: Lowered = { entry: mode, buffers, kernels, outputs: Object.fromEntries(outs.map((o, i) => [`y${i}`, o])), derived: [] };
  const entry = planMemory({ ...lowered, kernels: [...inputsWritten(operands), ...kernels] });
  const program: Program = {
    format: 'archc-kernels/1', model: name, params: {}, bindings: [], choices: [],
    weights: inputs.flatMap((i, k) => (i && 'weight' in i ? [{ name: `w${k}`, shape: i.weight.shape, dtype: i.weight.dtype }] : [])),
    derived: [], states: spec ? [{ name: `${name}:${spec.kind}`, kind: spec.kind, per: spec.per, shape: spec.shape, ...(spec.window ? { window: spec.window } : {}), ...(opts.stateDtype ? { dtype: opts.stateDtype } : {}) }] : [],
    outputs: Object.fromEntries(outs.map((o, i) => [`y${i}`, o.width])),
    entries: { forward: entry, prefill: entry, decode: entry },
  };
  const backend = (opts.backend ?? ((p) => new CpuBackend(p)))(program);
  inputs.forEach((i, k) => { if (i && 'weight' in i) backend.uploadWeight(program.weights.find((w) => w.name === `w${k}`)!, i.upload ?? i.weight); });
  // one sequence of T tokens, or (decode) T sequences of one token, each in a fresh slot
  let seqs = mode === 'decode' ? Array.from({ length: T }, (_, t) => ({ start: t, len: 1 })) : [{ start: 0, len: T }];
  if (opts.seqs) {
    if (opts.seqs.reduce((a, b) => a + b, 0) !== T) throw new Error(`sequences of ${opts.seqs.join('+')} rows do not make ${T}`);
    let at = 0;
    seqs = opts.seqs.map((len) => ({ start: (at += len) - len, len }));
  }
  const before = seqs.map((_, i) => opts.before?.[i] ?? 0);
  const pool = backend.createStatePool(Math.max(1, T + Math.max(...before)));
  const slots = seqs.map(() => pool.acquire());
  if (opts.state) slots.forEach((slot, i) => pool.restore(slot, opts.state!(pool.slotBytes, i)));
  const positions = Int32Array.from({ length: T }, (_, t) => {
    const i = seqs.findIndex((q) => t >= q.start && t < q.start + q.len);
    return mode === 'decode' ? before[i]! : before[i]! + t - seqs[i]!.start;
  });
  const inv = backend.begin(entry, { tokens: new Int32Array(T), positions, seqs, slots, lengths: before }, pool);
  entry.kernels.forEach((k, j) => {
    if (j < inputCount(operands)) {
      const which = operands.findIndex((o, n) => o && 'buf' in o && n === Number(k.name.slice(3)));
      inv.write(k.outputs.y!, (inputs[which] as { act: Float32Array }).act);
    } else {
      for (const y of Object.values(k.outputs)) inv.write(y, new Float32Array(T * y.width).fill(NaN));
      inv.dispatch(k);
    }
  });
  return { program, inv, entry, outs, pool, slots };
}

/** Placeholder kernels (never dispatched) that mark the input buffers as written first (a copy of
 *  the buffer onto itself, so every target can render them). */
function inputsWritten(operands: readonly (Operand | null)[]): Kernel[] {
  return operands.flatMap((o, n) => (o && 'buf' in o ? [{ name: `in:${n}`, family: 'copy' as const, sizes: { W: o.width }, inputs: { x: o }, outputs: { y: o }, attrs: {}, schedule: {}, fused: ['input'], source: [] }] : []));
}

function inputCount(operands: readonly (Operand | null)[]): number {
  return operands.filter((o) => o && 'buf' in o).length;
}
