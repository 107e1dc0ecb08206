// The kernel program's train entry on a backend, for `archc forward --grads FILE --engine kernels`
// (--backend: a run target whose trainEntry is true) and `archc train --engine kernels` (wasm): the
// program lowered with its train entry; the wasm backend's product kernels on ARCHC_THREADS
// threads, without the program module (the train entry's forward stages run on the reference
// families, its products and backward families on the wasm kernels: runtime/wasm/train.ts). Zero
// weights stored first, so the panels are placed (and the workers know every memory) before the
// first step.

import type { Compiled } from '../compiler/compile.ts';
import type { CpuBackend } from '../runtime/cpu/backend.ts';

/** `backend`: a run target whose `trainEntry` is true (runtime/targets.ts), checked by the caller. */
export async function trainEntryBackend(c: Compiled, backend: string): Promise<CpuBackend> {
  const [{ lowerToProgram }, { CpuBackend }] = await Promise.all([import('../compiler/lower.ts'), import('../runtime/cpu/backend.ts')]);
  const program = lowerToProgram(c.graph, c.bindings, { train: true });
  const zeros = new Map(program.weights.map((w) => [w.name, new Float32Array(w.shape.reduce((a, b) => a * b, 1))]));
  if (backend === 'cpu') {
    const be = new CpuBackend(program);
    be.updateWeights(zeros);
    return be;
  }
  const [{ wasmKernelVariants }, { openWasmBackend }, { defaultThreads }] = await Promise.all([
    import('../codegen/wasm/assemble.ts'), import('../runtime/wasm/backend.ts'), import('../runtime/wasm/threads.ts')]);
  const be = await openWasmBackend(program, await wasmKernelVariants(), defaultThreads());
  be.updateWeights(zeros);
  await be.loaded();
  return be;
}
