// Assembles the `wasm` target's module (codegen/wasm/kernels.ts) with wabt, once per process and
// target record. `archc build` writes the bytes into the package; the CLI and the tests assemble
// the same text at load time.

import wabtInit from 'wabt';
import { InternalError } from '../../dsl/diagnostics.ts';
import { WASM_TARGET, type WasmTarget } from '../../compiler/kernel/schedule.ts';
import { renderWasmKernels } from './kernels.ts';

const cache = new Map<WasmTarget, Promise<Uint8Array>>();
let wabt: ReturnType<typeof wabtInit> | null = null;

/** The module's bytes for target `t` (assembled on first use, then cached). */
export function wasmKernels(t: WasmTarget = WASM_TARGET): Promise<Uint8Array> {
  let bytes = cache.get(t);
  if (!bytes) cache.set(t, (bytes = assemble(renderWasmKernels(t))));
  return bytes;
}

/** wabt, loaded once per process. */
export function loadWabt(): ReturnType<typeof wabtInit> {
  wabt ??= wabtInit();
  return wabt;
}

/** WebAssembly text -> a binary that the engine accepts (SIMD and shared memory). */
export async function assemble(text: string, file = 'archc-kernels.wat'): Promise<Uint8Array> {
  return assembleWith(await loadWabt(), text, file);
}

/** `assemble` with wabt at hand (synchronous). */
export function assembleWith(w: Awaited<ReturnType<typeof wabtInit>>, text: string, file = 'archc-kernels.wat'): Uint8Array {
  let bytes: Uint8Array;
  try {
    const m = w.parseWat(file, text, { simd: true, threads: true });
    try {
      bytes = m.toBinary({}).buffer.slice();
    } finally {
      m.destroy();
    }
  } catch (e) {
    throw new InternalError(`the wasm kernel text ${file} does not assemble: ${(e as Error).message}\n(write the text (renderWasmKernels or renderWasmProgram) to ${file} and run wat2wasm --enable-threads on it to reproduce)`);
  }
  // wabt's own validator rejects shared memories; the engine's is the one that matters
  try {
    new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new InternalError(`the assembled wasm kernels do not validate: ${(e as Error).message}`);
  }
  return bytes;
}
