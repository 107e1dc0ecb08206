// The f32 training engine (issue 20's fast path): a TrainEngine that walks the graph forward op by
// op in f32 (./ops.ts, one record per op), saving what each backward needs, the causal-LM loss on
// the logits, then the nodes in reverse with gradients accumulated in f32 — the tape of
// compiler/grad.ts over f32 records, its products on the wasm GEMM (./gemm.ts). docs/TRAINING.md.

import type { WasmKernels } from '../../wasm/kernels.ts';
import { threadSupport, threadsHere, unsharedModule } from '../../wasm/threads.ts';
import { wasmModule } from '../../wasm/module.ts';
import type { PackedBatch } from '../data.ts';
import type { StepResult, TrainEngine } from '../engine.ts';
import { type Gemm, jsGemm, wasmGemm } from './gemm.ts';
import { rowKernelsWithProducts } from './rows.ts';
import type { Ctx32, Data32, TrainGraph } from './graph.ts';
import { NOT_YET32, OPS32 } from './ops.ts';
import { StepPool, f32, inPool } from './pool.ts';
import { RuntimeError } from '../../errors.ts';

type F32 = Float32Array;

/** A batch the engine takes (PackedBatch's first four fields). */
export type Batch32 = Pick<PackedBatch, 'tokens' | 'positions' | 'seqs' | 'labels'>;

/** The mean causal-LM loss (row t predicts labels[t + 1]; -100 ignored) in double over f32 logits,
 *  and its cotangent (softmax − onehot) / N over the N counted rows, zero elsewhere (N = 0: loss 0). */
export function lossF32(logits: F32, T: number, V: number, labels: Int32Array, grads: boolean): { loss: number; tokens: number; dlogits: F32 | null } {
  const dl = grads ? f32(T * V) : null, e = new Float64Array(V);
  let sum = 0, tokens = 0;
  for (let t = 0; t + 1 < T; t++) if (labels[t + 1] !== -100) tokens++;
  for (let t = 0; t + 1 < T; t++) {
    const y = labels[t + 1]!;
    if (y === -100) continue;
    let max = -Infinity, s = 0;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]!);
    for (let v = 0; v < V; v++) s += e[v] = Math.exp(logits[t * V + v]! - max);
    sum += max + Math.log(s) - logits[t * V + y]!;
    if (dl) {
      for (let v = 0; v < V; v++) dl[t * V + v] = e[v]! / s / tokens;
      dl[t * V + y] = (e[y]! / s - 1) / tokens;
    }
  }
  // a batch with nothing to predict (an eval file's 1-token tail) weighs nothing: loss 0 over 0 tokens
  return { loss: tokens ? sum / tokens : 0, tokens, dlogits: dl };
}

export class F32Engine implements TrainEngine {
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** The arrays of a step, reused by the next (./pool.ts). */
  private readonly pool = new StepPool();

  constructor(private readonly g: TrainGraph, readonly gemm: Gemm) {
    this.weights = g.weights.map((w) => ({ name: w.name, shape: w.shape }));
    const missing = [...new Set(g.nodes.map((n) => n.op).filter((op) => !OPS32[op]))];
    if (missing.length) {
      throw new RuntimeError('RT603', [missing.map((op) => `${op}${NOT_YET32[op] ? ` (${NOT_YET32[op]})` : ''}`).join(', ')]);
    }
  }

  step(weights: ReadonlyMap<string, F32>, batch: Batch32): StepResult {
    return this.run(weights, batch, true);
  }

  evaluate(weights: ReadonlyMap<string, F32>, batch: Batch32): StepResult {
    return this.run(weights, batch, false);
  }

  /** One pass in the engine's step pool (./pool.ts): what it returns (gradients, logits) copied out. */
  private run(weights: ReadonlyMap<string, F32>, b: Batch32, grads: boolean): StepResult & { logits: F32 } {
    return inPool(this.pool, () => {
      const r = this.pass(weights, b, grads);
      const gr = r.grads && new Map([...r.grads].map(([k, v]) => [k, (v as F32).slice()] as const));
      return { ...r, logits: r.logits.slice(), ...(gr ? { grads: gr } : {}) };
    });
  }

  /** The forward (the tape: each node's context and saved values), the loss, then the backward. */
  private pass(weights: ReadonlyMap<string, F32>, b: Batch32, grads: boolean): StepResult & { logits: F32 } {
    const g = this.g, T = b.tokens.length;
    const vals: (Data32 | null)[] = new Array(g.values.length).fill(null);
    const shape = (id: number) => g.values[id]!.type.shape.map((d) => (d === 'T' ? T : d as number));
    for (const v of g.values) {
      if (v.source.kind === 'weight') {
        const w = weights.get(v.source.name);
        if (!w) throw new Error(`F32Engine: no weight ${v.source.name}`);
        vals[v.id] = w;
      } else if (v.source.kind === 'input') vals[v.id] = v.source.name === 'tokens' ? b.tokens : b.positions;
    }
    const ctxs: Ctx32[] = [], saved: unknown[] = [];
    for (const n of g.nodes) {
      const c: Ctx32 = {
        ins: n.inputs.map((i) => (i === null ? null : vals[i]!)), shapes: n.inputs.map((i) => (i === null ? null : shape(i))),
        outShapes: n.outputs.map(shape), attrs: n.attrs, seqs: b.seqs, gemm: this.gemm,
      };
      const r = OPS32[n.op]!.forward(c);
      n.outputs.forEach((o, i) => { vals[o] = r.outs[i]!; });
      if (grads) { ctxs.push(c); saved.push(r.saved); }
    }
    const out = (g.outputs.find((o) => o.name === 'logits') ?? g.outputs[0])!.value;
    const logits = vals[out] as F32, V = logits.length / T;
    const { loss, tokens, dlogits } = lossF32(logits, T, V, b.labels, grads);
    if (!grads) return { loss, tokens, logits };
    const cot: (F32 | null)[] = new Array(g.values.length).fill(null);
    cot[out] = dlogits;
    for (let k = g.nodes.length - 1; k >= 0; k--) {
      const n = g.nodes[k]!;
      const dOuts = n.outputs.map((o) => cot[o] ?? null);
      if (dOuts.every((d) => d === null)) continue;
      const filled = dOuts.map((d, i) => d ?? f32((vals[n.outputs[i]!] as F32).length));
      const dIns = OPS32[n.op]!.backward(ctxs[k]!, saved[k], filled);
      // what this node saved and its outputs' cotangents are done with
      saved[k] = null;
      n.outputs.forEach((o) => { cot[o] = null; });
      n.inputs.forEach((id, i) => {
        const d = dIns[i];
        if (id === null || !d) return;
        const acc = cot[id];
        if (!acc) {
          // the outputs' cotangents are dropped above, so an array handed back as is (reshape's,
          // add's) changes owner; one handed to two inputs is copied for the second
          cot[id] = dIns.some((e, j) => j < i && e === d) ? d.slice() : d;
        } else for (let j = 0; j < acc.length; j++) acc[j] += d[j]!;
      });
    }
    const gr = new Map<string, F32>();
    for (const v of g.values) {
      if (v.source.kind === 'weight') gr.set(v.source.name, (cot[v.id] as F32 | null) ?? new Float32Array(weights.get(v.source.name)!.length));
    }
    return { loss, tokens, logits, grads: gr };
  }

  /** Loss, logits and gradients at once (tests; `archc forward --grads`). */
  lossGradients(weights: ReadonlyMap<string, F32>, b: Batch32): { loss: number; tokens: number; logits: F32; grads: ReadonlyMap<string, F32> } {
    const r = this.run(weights, b, true);
    return { loss: r.loss, tokens: r.tokens, logits: r.logits, grads: r.grads as ReadonlyMap<string, F32> };
  }
}

/** The wasm products and row kernels on `threads` threads (the calling thread counts), from the
 *  product kernels' bytes (codegen/wasm/assemble.ts wasmKernelVariants): every product on the row
 *  kernels' memory (./rows.ts, split over its threads by ./split.ts); where this thread may not
 *  share memory or wait for others, one thread over an unshared memory. `kernels` is a one-thread
 *  WasmKernels over the same module (its `product`, the products' reference in tests; the products
 *  themselves where the row kernels cannot run them);
 *  `kernels.close()` ends every thread. */
export async function openWasmGemm(kernels: Uint8Array | readonly Uint8Array[], threads: number): Promise<{ gemm: Gemm; kernels: WasmKernels }> {
  const { WasmKernels } = await import('../../wasm/kernels.ts');
  const support = threadSupport();
  const rows = await rowKernelsWithProducts(kernels, threads);
  // a WasmKernels whose close also ends the row kernels' threads
  const k = new (class extends WasmKernels {
    override close(): void { rows?.close(); super.close(); }
  })(await wasmModule(kernels, support.shared ? undefined : unsharedModule), rows?.products ? 1 : threadsHere(threads, support));
  await k.start();
  return { gemm: wasmGemm(k, rows), kernels: k };
}

export { jsGemm };
