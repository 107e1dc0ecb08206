// archc forward --loss --grads FILE: the gradient of the mean causal-LM loss with respect to every
// weight, from the float64 reference (compiler/grad.ts, docs/TRAINING.md), with --engine wasm the
// f32 training engine (runtime/train/f32/), with --engine kernels the kernel program's train entry on
// the --backend (cpu, wasm: runtime/wasm/train.ts, or webgpu: cli/train-webgpu.ts), written as one f32 safetensors file whole or not at all. Loaded only when --grads is given.

import { resolve } from 'node:path';
import { type Compiled, compileFile } from '../compiler/compile.ts';
import { type GradBatch, checkBatch, gradientBytes, lossGradients, readWeightsF64 } from '../compiler/grad.ts';
import type { Graph } from '../compiler/ir.ts';
import { positionsFor, seqsFromCuSeqlens, seqsFromPositions } from '../runtime/engine.ts';
import { RuntimeError } from '../runtime/errors.ts';
import { RUN_TARGETS } from '../runtime/targets.ts';
import { gradientsFile } from '../runtime/grad.ts';
import { availableMemory } from '../runtime/load.ts';
import { assertShapes } from '../runtime/checkpoint-shapes.ts';
import { openCheckpoint } from '../runtime/safetensors.ts';
import { checkParent, writeOutputFile } from './fsutil.ts';
import type { QuantFlags } from './quant.ts';
import { type LoadFlags, optionsFor, usage } from './run.ts';

/** --grads: with --loss, not with --step or --quantize (the gradient is of the checkpoint's own
 *  weights, through the packed forward); its directory must exist. */
export function checkGradsFlags(o: QuantFlags & { loss?: boolean; step?: boolean; grads?: string; engine?: string; backend?: string }): void {
  if (!o.loss) usage('--grads', 'it needs --loss (the gradient is that of the mean causal-LM loss)');
  if (o.engine !== undefined && !['reference', 'wasm', 'kernels'].includes(o.engine)) usage('--engine', `${JSON.stringify(o.engine)} is not an engine`, 'one of reference, wasm, kernels');
  const runs: string[] = RUN_TARGETS.filter((t) => t.trainEntry).map((t) => t.name);
  if (o.engine === 'kernels' && o.backend !== undefined && !runs.includes(o.backend)) usage('--backend', `the train entry does not run on ${o.backend}`, `--backend ${runs.join(' or ')} with --engine kernels`);
  if (o.step) usage('--grads', 'it cannot be combined with --step', 'the gradient is taken through the packed forward');
  if (o.quantize) usage('--grads', 'it cannot be combined with --quantize', 'the gradient is of the checkpoint\'s weights as stored');
  checkParent(resolve(o.grads!));
}

/** The gradient of the mean loss over the packed batch (sequences and labels as the forward's),
 *  evaluated on the graph in float64 (compiler/grad.ts), written as one f32 safetensors file.
 *  Returns the gradients' global L2 norm (over every weight, in float64). */
export async function writeGradients(file: string, o: LoadFlags & { engine?: string }, ids: number[], positions: number[] | undefined, cu: number[] | undefined, out: string): Promise<number> {
  const c = compileFile(file, optionsFor(file, o, o.weights)), g = c.graph;
  const T = ids.length;
  const seqs = cu ? seqsFromCuSeqlens(cu, T) : positions ? seqsFromPositions(Int32Array.from(positions)) : [{ start: 0, len: T }];
  const labels = Int32Array.from(ids);
  for (const s of seqs) labels[s.start] = -100;
  const f32 = o.engine === 'wasm' || o.engine === 'kernels';
  await checkGradientMemory(o.weights, gradientBytes(g, T) / (f32 ? 2 : 1));
  const ckpt = openCheckpoint(o.weights);
  let weights: Map<string, Float64Array>;
  try {
    assertShapes(ckpt, g.weights.map((w) => ({ name: w.name, shape: w.shape })), { allowExtra: true });
    weights = readWeightsF64(g, ckpt, o.checkWeights !== false);
  } finally {
    ckpt.close();
  }
  const batch = { tokens: Int32Array.from(ids), positions: positions ? Int32Array.from(positions) : positionsFor(seqs, T), seqs, labels };
  const grads = o.engine === 'wasm' ? await f32Gradients(g, weights, batch) : o.engine === 'kernels' ? await trainEntryGradients(c, weights, batch, o.backend)
    : lossGradients(g, weights, batch).grads!;
  await writeOutputFile(out, gradientsFile(g.weights.map((w) => ({ name: w.name, shape: w.shape, data: grads.get(w.name)! }))));
  let ss = 0;
  for (const d of grads.values()) for (const v of d) ss += v * v;
  return Math.sqrt(ss);
}

/** The batch checked as the reference checks it (ids and labels against the embedding and the logits). */
function checkFor(g: Graph, b: GradBatch): void {
  const tokensIn = g.inputs.find((i) => i.name === 'tokens')?.value;
  const embed = g.nodes.find((n) => n.op === 'embedding' && n.inputs[0] === tokensIn);
  const out = (g.outputs.find((o) => o.name === 'logits') ?? g.outputs[0])!.value;
  checkBatch(b, embed ? g.values[embed.inputs[1]!]!.type.shape[0] as number : Infinity, g.values[out]!.type.shape.at(-1) as number);
}

/** --engine kernels: the train entry (compiler/kernel/train.ts) on the CPU, wasm or WebGPU backend, f32 weights. */
async function trainEntryGradients(c: Compiled, weights: ReadonlyMap<string, Float64Array>, b: GradBatch, backend: string | undefined): Promise<Map<string, Float64Array>> {
  checkFor(c.graph, b);
  if (backend === 'webgpu') {
    const grads = await (await import('./train-webgpu.ts')).webgpuGradients(c, new Map([...weights].map(([n, v]) => [n, Float32Array.from(v)])), b);
    return new Map([...grads].map(([n, v]) => [n, Float64Array.from(v)]));
  }
  const [{ trainEntryBackend }, { runTrain }] = await Promise.all([import('./train-entry.ts'), import('../runtime/cpu/train.ts')]);
  const be = await trainEntryBackend(c, backend ?? 'wasm');
  try {
    be.updateWeights(new Map([...weights].map(([n, v]) => [n, Float32Array.from(v)])));
    return new Map([...runTrain(be, b).grads].map(([n, v]) => [n, Float64Array.from(v)]));
  } finally {
    be.dispose();
  }
}

/** --engine wasm: the f32 engine (runtime/train/f32/) on the batch the reference would take (checked
 *  as it checks it), its gradients widened exactly. */
async function f32Gradients(g: Graph, weights: ReadonlyMap<string, Float64Array>, b: GradBatch): Promise<Map<string, Float64Array>> {
  checkFor(g, b);
  const [{ wasmKernelVariants }, { F32Engine, openWasmGemm }, { defaultThreads }] = await Promise.all([
    import('../codegen/wasm/assemble.ts'), import('../runtime/train/f32/engine.ts'), import('../runtime/wasm/threads.ts')]);
  const { gemm, kernels } = await openWasmGemm(await wasmKernelVariants(), defaultThreads());
  try {
    const r = new F32Engine(g, gemm).lossGradients(new Map([...weights].map(([n, v]) => [n, Float32Array.from(v)])), b);
    return new Map([...r.grads].map(([n, v]) => [n, Float64Array.from(v)]));
  } finally {
    kernels.close();
  }
}

/** RT146 before anything is read when the float64 evaluation would not fit in the memory this
 *  process may take (`avail` overrides the machine's figure). */
export async function checkGradientMemory(dir: string, needed: number, avail?: { bytes: number; source: string } | null): Promise<void> {
  const room = avail !== undefined ? avail : await availableMemory();
  if (!room || needed <= room.bytes) return;
  throw new RuntimeError('RT146', [dir, needed.toLocaleString('en-US'), 'cpu', ' and the float64 gradient reference (--grads)', room.bytes.toLocaleString('en-US'), room.source,
    '--grads keeps every activation in float64: give fewer tokens, or use a smaller model'], { file: dir });
}
