// The train entry: the packed forward's kernels (unfused, as lowering emits them; the kernel rules
// run over the whole entry afterwards, compiler/lower.ts), the causal-LM loss on the logits, then
// each node's backward in reverse node order, lowered by its VJP record's `lowerBackward`
// (compiler/vjp.ts) through a BackwardCtx. Every value gets one cotangent buffer;
// where a value is read twice (the residual stream, a tied embedding) the cotangents are summed by
// elementwise kernels. The forward buffers the backward reads are its saved activations: the
// memory plan keeps them alive until their last reader. Outputs: `loss`, `logits`, `grad:<weight>`.

import { CompileError, InternalError, diag } from '../../dsl/diagnostics.ts';
import type { Expr, Operand, Rows, TrainKernel, View } from '../../runtime/program.ts';
import type { Attrs, Graph, Node, TensorType } from '../ir.ts';
import { VJP } from '../vjp.ts';
import { type KernelList, type LoweredOf, type TrainSpec, kernelList, lowerNode, rowWidth } from './lower.ts';

/** What a VJP record's `lowerBackward` sees of the node it differentiates. */
export interface BackwardCtx {
  readonly attrs: Attrs;
  /** The node's input types in slot order (null for an absent slot), and its outputs'. */
  readonly types: readonly (TensorType | null)[];
  readonly outTypes: readonly TensorType[];
  /** The forward's operand of input `slot` (a saved activation, a weight, an integer input). */
  in(slot: number): Operand | null;
  /** The forward's output `i`. */
  out(i: number): View;
  /** The kernels the node's forward emitted (where the backward reads what they saved). */
  readonly forward: readonly TrainKernel[];
  /** The cotangent of output `i` (zeros when nothing downstream reads it). */
  dy(i: number): View;
  /** A new buffer for the cotangent of input `slot`, which the backward must write whole. */
  dx(slot: number): View;
  /** Makes `v` (written already) the cotangent of input `slot`: reshape's, add's. */
  pass(slot: number, v: View): void;
  temp(width: number, rows: Rows): View;
  emit(k: TrainSpec): void;
  /** Emits an elementwise kernel writing `y`: `leaf(o)` reads operand `o` (`w:` for a weight). */
  elementwise(y: View, body: (leaf: (o: Operand) => Expr) => Expr): void;
  /** Refuses the node with a coded error (AC412): the train entry never computes a wrong gradient. */
  refuse(why: string): never;
}

export type LoweredTrain = LoweredOf<TrainKernel, 'train'>;

/** The rows of a value's buffers: one per token, or one (a weight, a weight-only value). */
const rowsOfType = (t: TensorType): Rows => (t.shape[0] === 'T' ? 'T' : 'C');

export function lowerTrain(g: Graph): LoweredTrain {
  const l = kernelList(g);
  const forward = g.nodes.map((n) => lowerNode(l, n, 'forward', VJP[n.op]?.lowerForward));
  const out = g.outputs.find((o) => o.name === 'logits') ?? g.outputs[0] ?? fail('the graph has no output');
  const logits = l.operand.get(out.value);
  if (!logits || !('buf' in logits) || l.buffers[logits.buf]!.rows !== 'T') throw new InternalError(`train lowering: output ${out.name} is not a row per token`);
  const producer = g.nodes.find((n) => n.outputs.includes(out.value))!;
  const V = logits.width;
  const loss = l.newBuffer(2, 'C'), dlogits = l.newBuffer(V, 'T');
  l.push({ family: 'causal_lm_loss', part: 'loss', sizes: { V }, inputs: { logits, labels: { input: 'labels' } }, outputs: { loss, dlogits } }, producer);

  const cot = new Map<number, View>([[out.value, dlogits]]);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const node = g.nodes[i]!;
    if (!node.outputs.some((o) => cot.has(o))) continue;
    const dins = backward(l, node, forward[i]!, node.outputs.map((o) => cot.get(o) ?? null));
    dins.forEach((d, slot) => {
      const v = node.inputs[slot];
      if (d && v !== null && v !== undefined) cot.set(v, accumulate(l, node, cot.get(v), d));
    });
  }
  const outputs: Record<string, View> = { loss, logits };
  for (const v of g.values) {
    if (v.source.kind !== 'weight') continue;
    let d = cot.get(v.id);
    if (!d) {
      // a weight the loss does not reach: its gradient is zeros
      d = l.newBuffer(rowWidth(v.type), 'C');
      l.push({ family: 'elementwise', part: 'zero_grad', sizes: { W: d.width }, inputs: {}, body: { op: 'const', value: 0 }, outputs: { y: d } }, producer);
    }
    outputs[`grad:${v.source.name}`] = d;
  }
  return { entry: 'train', buffers: l.buffers, kernels: l.kernels, outputs, derived: [] };
}

/** Lowers `node`'s backward from its outputs' cotangents; returns its inputs' (null: none). */
function backward(l: KernelList, node: Node, forward: readonly TrainKernel[], douts: readonly (View | null)[]): (View | null)[] {
  const { g } = l;
  const rec = VJP[node.op];
  const refuse = (why: string): never => {
    const at = node.loc ? { file: node.loc.file, line: node.loc.line, col: node.loc.col, endLine: node.loc.line, endCol: node.loc.col, offset: 0, endOffset: 0 } : undefined;
    throw new CompileError([diag('AC412', at, [node.op, node.scope || 'the model', why], 'the float64 reference (archc forward --grads, archc train --engine reference) differentiates it')]);
  };
  if (!rec?.lowerBackward) return refuse('its VJP record has no kernel lowering');
  const types = node.inputs.map((v) => (v === null ? null : g.values[v]!.type));
  const outTypes = node.outputs.map((v) => g.values[v]!.type);
  const dins: (View | null)[] = node.inputs.map(() => null);
  const emit = (k: TrainSpec) => { l.push({ ...k, part: k.part ? `bwd.${k.part}` : 'bwd' } as TrainSpec, node); };
  const dys = douts.map((d, i) => {
    if (d) return d;
    // an output nothing downstream reads: a zero cotangent, as lossGradients gives it
    const z = l.newBuffer(rowWidth(outTypes[i]!), rowsOfType(outTypes[i]!));
    emit({ family: 'elementwise', part: `zero_d${i}`, sizes: { W: z.width }, inputs: {}, body: { op: 'const', value: 0 }, outputs: { y: z } });
    return z;
  });
  const c: BackwardCtx = {
    attrs: node.attrs, types, outTypes, forward,
    in: (slot) => { const v = node.inputs[slot]; return v === null || v === undefined ? null : l.operand.get(v)!; },
    out: (i) => l.operand.get(node.outputs[i]!) as View,
    dy: (i) => dys[i]!,
    dx(slot) {
      const t = types[slot] ?? fail(`${node.op} has no input ${slot}`);
      return (dins[slot] ??= l.newBuffer(rowWidth(t), rowsOfType(t)));
    },
    pass(slot, v) { dins[slot] = v; },
    temp: (width, rows) => l.newBuffer(width, rows),
    emit,
    elementwise(y, body) {
      const inputs: Record<string, Operand> = {};
      const e = body((o) => {
        if ('weight' in o) return { op: 'w', name: o.weight };
        if (!('buf' in o)) fail(`${node.op}'s backward reads the integer input ${o.input} in an expression`);
        const name = Object.entries(inputs).find(([, v]) => v === o)?.[0] ?? String.fromCharCode(97 + Object.keys(inputs).length);
        inputs[name] = o;
        return { op: 'in', name };
      });
      emit({ family: 'elementwise', sizes: { W: y.width }, inputs, body: e, outputs: { y } });
    },
    refuse,
  };
  rec.lowerBackward(c);
  return dins;
}

/** The cotangent of a value read once more: `d` alone, or the sum with what it has so far. */
function accumulate(l: KernelList, node: Node, acc: View | undefined, d: View): View {
  if (!acc) return d;
  const sum = l.newBuffer(d.width, l.buffers[d.buf]!.rows);
  l.push({ family: 'elementwise', part: 'grad_sum', sizes: { W: d.width }, inputs: { a: acc, b: d },
    body: { op: 'add', a: { op: 'in', name: 'a' }, b: { op: 'in', name: 'b' } }, outputs: { y: sum } }, node);
  return sum;
}

function fail(msg: string): never {
  throw new InternalError(`train lowering: ${msg}`);
}
