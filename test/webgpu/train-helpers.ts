// Shared by the WebGPU train-entry tests: a program with its train entry over f32 masters, the CPU
// and WebGPU backends holding the same weights, and the whole-entry comparison (loss within 1e-4
// relative; the gradient's rel L2 ‖gpu − cpu‖₂ / ‖cpu‖₂ over all weights at once and per weight < 1e-4).

import { expect } from 'vitest';
import type { Compiled } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { type TrainBatch, runTrain } from '../../runtime/cpu/train.ts';
import type { Program } from '../../runtime/program.ts';
import { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { f32Weights } from '../../runtime/webgpu/optim.ts';
import { runTrainAsync } from '../../runtime/webgpu/train.ts';
import { compareGrads } from '../grad/helpers.ts';
import { testDevice } from './gpu.ts';

export const TOL = 1e-4;

/** `c`'s program with its train entry, its weights f32 masters (as training keeps them). */
export function f32TrainProgram(c: Compiled): Program {
  return f32Weights(lowerToProgram(c.graph, c.bindings, { train: true }));
}

const opened: WebGpuBackend[] = [];

/** The CPU and WebGPU (the test device) backends of `c`'s train program, holding the f32 weights `w`;
 *  WebGPU runs the rendering for the adapter's shape unless `profile` names one. */
export async function backends(c: Compiled, w: ReadonlyMap<string, Float32Array>, profile?: WgslProfile): Promise<{ cpu: CpuBackend; gpu: WebGpuBackend; program: Program }> {
  const { device, adapter } = await testDevice();
  const program = f32TrainProgram(c);
  const cpu = new CpuBackend(program);
  const gpu = new WebGpuBackend(program, renderProgram(program), device, adapter, false, {}, profile ?? (/swiftshader|llvmpipe|lavapipe/i.test(adapter) ? 'cpu' : 'gpu'));
  opened.push(gpu);
  for (const x of program.weights) {
    const t = { dtype: 'f32' as const, shape: x.shape, data: w.get(x.name)! };
    cpu.uploadWeight(x, t);
    gpu.uploadWeight(x, t);
  }
  return { cpu, gpu, program };
}

/** Frees the WebGPU backends `backends` made. */
export function disposeBackends(): void {
  for (const b of opened.splice(0)) b.dispose();
}

/** The whole train entry on WebGPU against the CPU's: the loss and every gradient. */
export async function expectTrainClose(what: string, c: Compiled, w: ReadonlyMap<string, Float32Array>, b: TrainBatch, profile?: WgslProfile): Promise<void> {
  const { cpu, gpu } = await backends(c, w, profile);
  const want = runTrain(cpu, b), got = await runTrainAsync(gpu, b);
  expect(got.tokens).toBe(want.tokens);
  const dl = Math.abs(got.loss - want.loss) / want.loss;
  const e = compareGrads(got.grads, want.grads);
  console.log(`${what} on WebGPU: loss ${got.loss.toFixed(6)} (CPU ${want.loss.toFixed(6)}, rel ${dl.toExponential(2)}); gradient rel L2 ${e.all.toExponential(2)}, worst weight ${e.name} ${e.worst.toExponential(2)}`);
  expect(dl, `${what}: loss`).toBeLessThan(TOL);
  expect(e.all, `${what}: all weights`).toBeLessThan(TOL);
  expect(e.worst, `${what}: ${e.name}`).toBeLessThan(TOL);
}
