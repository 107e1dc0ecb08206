// A wasm backend over a program's own module (rendered and assembled here) and the product kernels,
// on one thread, for tests of the program module's families; registered in the calling file's
// beforeAll/afterAll, every backend disposed at the end.

import { afterAll, beforeAll } from 'vitest';
import { assembleWith, loadWabt, wasmKernels } from '../../codegen/wasm/assemble.ts';
import { renderWasmProgram } from '../../codegen/wasm/program.ts';
import type { Program } from '../../runtime/program.ts';
import { WasmBackend } from '../../runtime/wasm/backend.ts';

export function useProgramBackends(): (p: Program) => WasmBackend {
  let kernels: WebAssembly.Module;
  let wabt: Awaited<ReturnType<typeof loadWabt>>;
  const made: WasmBackend[] = [];
  beforeAll(async () => {
    kernels = new WebAssembly.Module(await wasmKernels() as Uint8Array<ArrayBuffer>);
    wabt = await loadWabt();
  });
  afterAll(() => { for (const b of made) b.dispose(); });
  return (p) => {
    const own = new WebAssembly.Module(assembleWith(wabt, renderWasmProgram(p), 'test-program.wat') as Uint8Array<ArrayBuffer>);
    const b = new WasmBackend(p, kernels, 1, own);
    made.push(b);
    return b;
  };
}
