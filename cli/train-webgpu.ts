// The kernel program's train entry on WebGPU (Dawn in Node) for `archc forward --grads FILE --engine
// kernels --backend webgpu` (runtime/webgpu/train.ts runTrainAsync: the gradients read back) and
// `archc train --engine kernels --backend webgpu` (runtime/train/webgpu-engine.ts: whole steps on the
// device, the optimizer there too). The program is lowered with its train entry, every weight f32,
// and rendered to WGSL here (the runtime carries no compiler); `archc build --train` ships the same.

import type { Compiled } from '../compiler/compile.ts';
import type { TrainBatch } from '../runtime/cpu/train.ts';
import type { Program } from '../runtime/program.ts';
import type { TrainEngine } from '../runtime/train/engine.ts';
import type { WgslProgram } from '../runtime/webgpu/shaders.ts';

/** `c`'s program with its train entry, every weight f32 (also what `archc build --train` ships). */
export async function trainProgram(c: Compiled): Promise<Program> {
  const [{ lowerToProgram }, { f32Weights }] = await Promise.all([import('../compiler/lower.ts'), import('../runtime/webgpu/optim.ts')]);
  return f32Weights(lowerToProgram(c.graph, c.bindings, { train: true }));
}

async function trainWgsl(c: Compiled): Promise<{ program: Program; wgsl: WgslProgram }> {
  const [program, { renderProgram }] = await Promise.all([trainProgram(c), import('../codegen/wgsl/render.ts')]);
  return { program, wgsl: renderProgram(program) };
}

/** The loss's gradient of every weight (f32 `weights`) on `batch`, from the train entry on WebGPU. */
export async function webgpuGradients(c: Compiled, weights: ReadonlyMap<string, Float32Array>, batch: TrainBatch): Promise<ReadonlyMap<string, Float32Array>> {
  const [{ program, wgsl }, { createWebGpuBackend }, { runTrainAsync }] = await Promise.all([
    trainWgsl(c), import('../runtime/webgpu/backend.ts'), import('../runtime/webgpu/train.ts')]);
  const gpu = await createWebGpuBackend(program, wgsl);
  try {
    for (const w of program.weights) gpu.uploadWeight(w, { dtype: 'f32', shape: w.shape, data: weights.get(w.name)! });
    return (await runTrainAsync(gpu, batch)).grads;
  } finally {
    gpu.dispose();
  }
}

/** `archc train --engine kernels --backend webgpu`: steps whole on the device. */
export async function webgpuEngine(c: Compiled): Promise<{ engine: TrainEngine; close: () => void }> {
  const [{ program, wgsl }, { WebGpuTrainEngine }] = await Promise.all([trainWgsl(c), import('../runtime/train/webgpu-engine.ts')]);
  const engine = await WebGpuTrainEngine.open(program, wgsl);
  return { engine, close: () => engine.close() };
}
