// Lowering: the graph becomes one entry's list of unfused kernels. Each node is lowered by its op
// record's `lower` (compiler/ops.ts) through a LowerCtx; every node output gets a buffer of its own,
// weights and program inputs are read where they are. Reshape and split lower to copy kernels here;
// the `views` rule (rules/views.ts) turns them into views. Fusion is the kernel passes' job.

import { InternalError } from '../../dsl/diagnostics.ts';
import type { DerivedWeight, EntryName, Expr, Kernel, Operand, Rows, TrainKernel, TrainOperand, View } from '../../runtime/program.ts';
import type { AnyFamily, SizesOf } from '../../runtime/families.ts';
import type { Attrs, Graph, Node, TensorType } from '../ir.ts';
import { OP_BY_NAME } from '../ops.ts';

/** A buffer before the memory plan gives it a place. */
export interface LBuffer {
  readonly id: number;
  readonly width: number;
  readonly rows: Rows;
}

/** One entry point between lowering and the memory plan: what the kernel passes rewrite (K: the
 *  inference kernels, or a train entry's, compiler/kernel/train.ts). */
export interface LoweredOf<K, E extends string = EntryName> {
  readonly entry: E;
  readonly buffers: readonly LBuffer[];
  readonly kernels: readonly K[];
  readonly outputs: Readonly<Record<string, View>>;
  /** Weights computed at load that the kernels read (folded constants, merged matrices). */
  readonly derived: readonly DerivedWeight[];
}
export type Lowered = LoweredOf<Kernel>;

/** What a kernel looks like when an op record emits it (the lowerer adds name, fused, source);
 *  F: the inference families, or (a train entry's) any family. */
export type KernelSpec<F extends AnyFamily = Kernel['family']> = { [G in F]: KernelSpecOf<G> }[F];
/** A spec of any family: what a train entry's lowerings emit. */
export type TrainSpec = KernelSpec<AnyFamily>;
interface KernelSpecOf<F extends AnyFamily> {
  readonly family: F;
  /** Tells apart the kernels of one node in their names. */
  readonly part?: string;
  /** The sizes the family's record names (runtime/families.ts), all of them. */
  readonly sizes: SizesOf<F>;
  /** Only a train entry's own families read the labels. */
  readonly inputs: Readonly<Record<string, F extends Kernel['family'] ? Operand : TrainOperand>>;
  readonly outputs: Readonly<Record<string, View>>;
  readonly attrs?: Kernel['attrs'];
  readonly body?: Expr;
  readonly state?: number;
}

/** What an op record's `lower` sees of the node it lowers (S: the specs it may emit). */
export interface LowerCtx<S = KernelSpec> {
  /** `forward` and `prefill` lower to the packed-batch kernels, `decode` to the one-token ones. */
  readonly mode: EntryName;
  readonly attrs: Attrs;
  /** The types of the node's inputs, in slot order (null for an absent optional slot). */
  readonly types: readonly (TensorType | null)[];
  /** The state index of a stateful node. */
  readonly state?: number;
  /** Input `slot` as an operand, or null when the optional slot is absent. */
  in(slot: number): Operand | null;
  /** The view of output `i` (a buffer of its own; `rows` when they differ from the inputs'). */
  out(i: number, rows?: Rows): View;
  /** A scratch buffer for an intermediate of the node's own kernels. */
  temp(width: number, rows: Rows): View;
  emit(k: S): void;
  /** Emits an elementwise kernel: `body` gets a leaf for each input slot (`w:` for weights). */
  elementwise(body: (leaf: (slot: number) => Expr) => Expr): void;
}

/** Elements of one row of a value (all dims but a leading T). */
export function rowWidth(t: TensorType): number {
  let n = 1;
  for (const d of t.shape) if (d !== 'T') n *= d;
  return n;
}

/** The buffers and kernels of one entry as they are lowered, and the operand of each value so far. */
export interface KernelList {
  readonly g: Graph;
  readonly buffers: LBuffer[];
  readonly kernels: TrainKernel[];
  /** Each value's operand: program inputs, weights, and the outputs of the nodes lowered so far. */
  readonly operand: Map<number, Operand>;
  newBuffer(width: number, rows: Rows): View;
  rowsOf(o: Operand): Rows | null;
  /** Names `k` after `node` (unique in the entry) and appends it. */
  push(k: TrainSpec, node: Node): TrainKernel;
}

export function kernelList(g: Graph): KernelList {
  const buffers: LBuffer[] = [];
  const kernels: TrainKernel[] = [];
  const operand = new Map<number, Operand>();
  const names = new Map<string, number>();
  for (const i of g.inputs) {
    if (i.name !== 'tokens' && i.name !== 'positions') throw new InternalError(`program input ${i.name} is neither tokens nor positions`);
    operand.set(i.value, { input: i.name });
  }
  for (const v of g.values) if (v.source.kind === 'weight') operand.set(v.id, { weight: v.source.name });
  return {
    g, buffers, kernels, operand,
    newBuffer(width, rows) {
      const id = buffers.length;
      buffers.push({ id, width, rows });
      return { buf: id, col: 0, width };
    },
    rowsOf: (o) => ('buf' in o ? buffers[o.buf]!.rows : 'input' in o ? 'T' : null),
    push(k, node) {
      const done = finish(k, node, names);
      kernels.push(done);
      return done;
    },
  };
}

/** Lowers `node` through `lower` (its op record's, unless a train entry overrides it): its outputs
 *  get buffers and operands; returns the kernels it emitted. */
export function lowerNode<S extends TrainSpec>(l: KernelList, node: Node, mode: EntryName, lower?: (c: LowerCtx<S>) => void): TrainKernel[] {
  const { g, operand } = l;
  const op = OP_BY_NAME.get(node.op) ?? fail(`no op record for ${node.op}`);
  const ins = node.inputs.map((v) => (v === null ? null : operand.get(v) ?? fail(`node ${node.id} reads value ${v} before it is computed`)));
  // Rows of the node's activations: those of its activation inputs (T, or S after a gather), else
  // a constant (a weight-only subgraph).
  const inRows = ins.map((o) => (o ? l.rowsOf(o) : null)).filter((r): r is Rows => r !== null && r !== 'C');
  const rows: Rows = inRows.includes('S') ? 'S' : inRows.length ? 'T' : 'C';
  const outs: View[] = [];
  const out = (i: number, r?: Rows): View => {
    const v = node.outputs[i] ?? fail(`${node.op} has no output ${i}`);
    outs[i] ??= l.newBuffer(rowWidth(g.values[v]!.type), r ?? (g.values[v]!.type.shape[0] === 'T' ? rows : 'C'));
    return outs[i]!;
  };
  const emitted: TrainSpec[] = [];
  const stateIndex = g.state.findIndex((s) => s.node === node.id);
  const ctx: LowerCtx<S> = {
    mode, attrs: node.attrs,
    types: node.inputs.map((v) => (v === null ? null : g.values[v]!.type)),
    state: stateIndex >= 0 ? stateIndex : undefined,
    in: (slot) => ins[slot] ?? null,
    out,
    temp: (width, r) => l.newBuffer(width, r),
    emit: (k) => { emitted.push(k); },
    elementwise(body) {
      const inputs: Record<string, Operand> = {};
      const leaf = (slot: number): Expr => {
        const o = ins[slot] ?? fail(`${node.op} input ${slot} is absent`);
        if ('weight' in o) return { op: 'w', name: o.weight };
        const name = op.inputs[slot]!.name;
        inputs[name] = o;
        return { op: 'in', name };
      };
      const e = body(leaf);
      const y = out(0);
      emitted.push({ family: 'elementwise', sizes: { W: y.width }, inputs, body: e, outputs: { y } });
    },
  };
  (lower ?? (op.lower as (c: LowerCtx<S>) => void))(ctx);
  node.outputs.forEach((v, i) => operand.set(v, outs[i] ?? fail(`${node.op} did not write its output ${i}`)));
  return emitted.map((k) => l.push(k, node));
}

export function lowerGraph(g: Graph, mode: EntryName): Lowered {
  const l = kernelList(g);
  for (const node of g.nodes) lowerNode(l, node, mode);
  const outputs: Record<string, View> = {};
  for (const o of g.outputs) {
    const v = l.operand.get(o.value);
    if (!v || !('buf' in v)) throw new InternalError(`model output ${o.name} is not computed by a kernel`);
    outputs[o.name] = v;
  }
  // an op record's lower emits inference kernels only (LowerCtx<KernelSpec>)
  return { entry: mode, buffers: l.buffers, kernels: l.kernels as Kernel[], outputs, derived: [] };
}

function finish(k: TrainSpec, node: Node, names: Map<string, number>): TrainKernel {
  let name = `${node.scope ? `${node.scope}:` : ''}${node.op}${k.part ? `.${k.part}` : ''}`;
  const seen = names.get(name) ?? 0;
  names.set(name, seen + 1);
  if (seen) name += `#${seen}`;
  // sizes as int32 (shapes computed from params may be held as doubles): targets index with them
  const sizes = Object.fromEntries(Object.entries(k.sizes as Readonly<Record<string, number>>).map(([n, v]) => [n, Number.isInteger(v) ? v | 0 : v]));
  return {
    // the family's sizes, with the same names as the spec's (typed by the family there)
    name, family: k.family, sizes: sizes as typeof k.sizes, inputs: k.inputs, outputs: k.outputs, attrs: k.attrs ?? {},
    ...(k.body ? { body: k.body } : {}),
    ...(k.state !== undefined ? { state: k.state } : {}),
    fused: [node.op],
    source: node.loc ? [`${node.loc.file}:${node.loc.line}`] : [],
  } as TrainKernel; // a spread loses the family-sizes pairing the spec had; verifyKernels checks it next
}

function fail(msg: string): never {
  throw new InternalError(`lowering: ${msg}`);
}
