// A wasm backend over a program's own module (rendered and assembled here) and the product kernels,
// on one thread unless told, for tests of the program module's families (`module: false`: without
// the program module, every kernel on the reference path); registered in the calling file's
// beforeAll/afterAll, every backend disposed at the end.

import { afterAll, beforeAll } from 'vitest';
import { assembleWith, loadWabt, wasmKernels } from '../../codegen/wasm/assemble.ts';
import { renderWasmProgram } from '../../codegen/wasm/program.ts';
import type { Program } from '../../runtime/program.ts';
import { WasmBackend } from '../../runtime/wasm/backend.ts';

export function useProgramBackends(): (p: Program, opts?: { module?: boolean; threads?: number }) => WasmBackend {
  let kernels: WebAssembly.Module;
  let wabt: Awaited<ReturnType<typeof loadWabt>>;
  const made: WasmBackend[] = [];
  beforeAll(async () => {
    kernels = new WebAssembly.Module(await wasmKernels() as Uint8Array<ArrayBuffer>);
    wabt = await loadWabt();
  });
  afterAll(() => { for (const b of made) b.dispose(); });
  return (p, { module = true, threads = 1 } = {}) => {
    const own = module ? new WebAssembly.Module(assembleWith(wabt, renderWasmProgram(p), 'test-program.wat') as Uint8Array<ArrayBuffer>) : undefined;
    const b = new WasmBackend(p, kernels, threads, own);
    made.push(b);
    return b;
  };
}
