// The gradient of a model's mean causal-LM loss with respect to every weight, evaluated on the
// graph IR in float64 (compiler/vjp.ts: one VJP record per op): the nodes forward, saving what
// each backward needs, the loss on the logits, then the nodes in reverse. docs/TRAINING.md.

import { InternalError } from '../dsl/diagnostics.ts';
import type { SeqSlice } from '../runtime/cpu/seq.ts';
import { type Checkpoint } from '../runtime/safetensors.ts';
import { RuntimeError } from '../runtime/errors.ts';
import { checkFinite } from '../runtime/load.ts';
import { toF32 } from '../runtime/tensor.ts';
import type { Graph } from './ir.ts';
import { type Data, VJP, type VjpCtx, causalLmLossB } from './vjp.ts';

type F64 = Float64Array;

/** A packed batch: tokens and positions [T], the rows of each sequence, labels [T] (row t predicts
 *  labels[t + 1]; -100 at each sequence's first token keeps rows from predicting across). */
export interface GradBatch {
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqs: readonly SeqSlice[];
  readonly labels: Int32Array;
}

export interface LossGradients {
  readonly loss: number;
  /** Rows the loss averages over. */
  readonly tokens: number;
  /** [T, vocab] */
  readonly logits: F64;
  /** Per weight name, in the weight's shape (row-major); absent with `grads: false`. */
  readonly grads?: ReadonlyMap<string, F64>;
}

interface Evaluated {
  readonly vals: (Data | null)[];
  readonly ctxs: VjpCtx[];
  readonly saved: unknown[];
  readonly logits: number;
}

/** Runs every node of `g` forward in float64; `weights` by checkpoint name, in their shapes. */
function evaluate(g: Graph, weights: ReadonlyMap<string, F64>, b: GradBatch): Evaluated {
  const T = b.tokens.length;
  const vals: (Data | null)[] = new Array(g.values.length).fill(null);
  const shape = (id: number) => g.values[id]!.type.shape.map((d) => (d === 'T' ? T : d));
  for (const v of g.values) {
    if (v.source.kind === 'weight') {
      const w = weights.get(v.source.name);
      if (!w) throw new InternalError(`lossGradients: no weight ${v.source.name}`);
      vals[v.id] = w;
    } else if (v.source.kind === 'input') {
      vals[v.id] = v.source.name === 'tokens' ? b.tokens : b.positions;
    }
  }
  const ctxs: VjpCtx[] = [], saved: unknown[] = [];
  for (const n of g.nodes) {
    const rec = VJP[n.op];
    if (!rec) throw new InternalError(`lossGradients: op ${n.op} has no VJP record`);
    const c: VjpCtx = {
      ins: n.inputs.map((i) => (i === null ? null : vals[i]!)), shapes: n.inputs.map((i) => (i === null ? null : shape(i))),
      outShapes: n.outputs.map(shape), attrs: n.attrs, seqs: b.seqs,
    };
    const r = rec.forward(c);
    n.outputs.forEach((o, i) => { vals[o] = r.outs[i]!; });
    ctxs.push(c);
    saved.push(r.saved);
  }
  const out = g.outputs.find((o) => o.name === 'logits') ?? g.outputs[0];
  if (!out) throw new InternalError('lossGradients: the graph has no output');
  return { vals, ctxs, saved, logits: out.value };
}

/** RT301 unless the slices cover [0, T) in order, each with a token, and positions and labels
 *  have T entries; RT300 for a token id and RT320 for a label out of range; RT301 when no row is
 *  counted (the mean over nothing has no gradient). */
export function checkBatch(b: GradBatch, vocab: number, labelsVocab: number): void {
  const T = b.tokens.length;
  if (T === 0) throw new RuntimeError('RT301', ['no tokens']);
  if (b.positions.length !== T) throw new RuntimeError('RT301', [`${b.positions.length} positions for ${T} tokens`]);
  if (b.labels.length !== T) throw new RuntimeError('RT322', [b.labels.length, T]);
  let next = 0;
  b.seqs.forEach((s, i) => {
    if (s.start !== next || !Number.isInteger(s.len) || s.len < 1) throw new RuntimeError('RT301', [`sequence ${i} covers rows ${s.start}..${s.start + s.len}, expected to start at ${next} with at least one token`]);
    next += s.len;
  });
  if (next !== T) throw new RuntimeError('RT301', [`sequences cover ${next} rows of ${T}`]);
  b.tokens.forEach((id, t) => { if (id < 0 || id >= vocab) throw new RuntimeError('RT300', [id, t, vocab]); });
  b.labels.forEach((y, t) => {
    if (y !== -100 && (y < 0 || y >= labelsVocab)) throw new RuntimeError('RT320', [y, t, t === 0 ? 'no logits row predicts it' : `the target of logits row ${t - 1}`, labelsVocab]);
  });
  if (b.labels.every((y, t) => t === 0 || y === -100)) throw new RuntimeError('RT301', ['no label to predict: every label after the first is -100, so the mean loss has no gradient']);
}

/** The loss (and with `grads`, every weight's gradient) of the packed batch `b`. */
export function lossGradients(g: Graph, weights: ReadonlyMap<string, F64>, b: GradBatch, opts: { grads?: boolean } = {}): LossGradients {
  // ids index the table of the embedding that reads them; labels index the logits' last dim
  const tokensIn = g.inputs.find((i) => i.name === 'tokens')?.value;
  const embed = g.nodes.find((n) => n.op === 'embedding' && n.inputs[0] === tokensIn);
  const out = (g.outputs.find((o) => o.name === 'logits') ?? g.outputs[0])?.value;
  const last = (id: number) => g.values[id]!.type.shape.at(-1) as number;
  checkBatch(b, embed ? g.values[embed.inputs[1]!]!.type.shape[0] as number : Infinity, out === undefined ? Infinity : last(out));
  const e = evaluate(g, weights, b);
  const logits = e.vals[e.logits] as F64;
  const T = b.tokens.length, V = logits.length / T;
  const { loss, tokens, dlogits } = causalLmLossB(logits, T, V, b.labels);
  if (opts.grads === false) return { loss, tokens, logits };
  const cot: (F64 | null)[] = new Array(g.values.length).fill(null);
  cot[e.logits] = dlogits;
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k]!;
    const dOuts = n.outputs.map((o) => cot[o] ?? null);
    if (dOuts.every((d) => d === null)) continue;
    // an output nothing read still has a (zero) cotangent, so every record sees all of its outputs'
    const filled = dOuts.map((d, i) => d ?? new Float64Array((e.vals[n.outputs[i]!] as F64).length));
    const dIns = VJP[n.op]!.backward(e.ctxs[k]!, e.saved[k], filled);
    n.inputs.forEach((id, i) => {
      const d = dIns[i];
      if (id === null || !d) return;
      const acc = cot[id];
      if (!acc) cot[id] = d === cot[n.outputs[0]!] ? d.slice() : d;
      else for (let j = 0; j < acc.length; j++) acc[j] += d[j]!;
    });
  }
  const grads = new Map<string, F64>();
  for (const v of g.values) {
    if (v.source.kind === 'weight') grads.set(v.source.name, cot[v.id] ?? new Float64Array(weights.get(v.source.name)!.length));
  }
  return { loss, tokens, logits, grads };
}

/** Bytes lossGradients holds for T tokens, about: every weight and its gradient, and every other
 *  value with its cotangent, in float64 (what the ops save besides is of the same order or less). */
export function gradientBytes(g: Graph, T: number): number {
  let n = 0;
  for (const v of g.values) {
    const rows = v.type.shape.reduce<number>((p, d) => p * (d === 'T' ? T : d), 1);
    n += v.source.kind === 'input' ? 0 : 2 * rows;
  }
  return 8 * n;
}

/** Every weight of `g` read from an open checkpoint as float64 (names and shapes already checked);
 *  unless `finite` is false, a weight holding NaN or infinities is RT144 naming the file and tensor. */
export function readWeightsF64(g: Graph, ckpt: Checkpoint, finite = true): Map<string, F64> {
  const out = new Map<string, F64>();
  for (const w of g.weights) {
    const t = ckpt.read(w.name);
    if (finite) checkFinite(t, ckpt.path, w.name);
    out.set(w.name, Float64Array.from(toF32(t)));
  }
  return out;
}
