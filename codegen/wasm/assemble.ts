// Assembles the `wasm` target's modules with wabt: the product kernels (codegen/wasm/kernels.ts),
// once per process and target record, and a program's own module (codegen/wasm/program.ts).
// `archc build` writes the bytes into the package; the CLI and the tests assemble the same text at
// load time.

import wabtInit from 'wabt';
import { InternalError } from '../../dsl/diagnostics.ts';
import { WASM_TARGET, WASM_TARGETS, WASM_TARGETS64, type WasmTarget } from './target.ts';
import { enableRelaxedSimd } from '../../runtime/wasm/module.ts';
import { memory64Support } from '../../runtime/wasm/memory64.ts';
import { renderWasmKernels } from './kernels.ts';

const cache = new Map<WasmTarget, Promise<Uint8Array>>();
let wabt: ReturnType<typeof wabtInit> | null = null;

/** The module's bytes for target `t` (assembled on first use, then cached). */
export function wasmKernels(t: WasmTarget = WASM_TARGET): Promise<Uint8Array> {
  let bytes = cache.get(t);
  if (!bytes) cache.set(t, (bytes = assemble(renderWasmKernels(t), 'archc-kernels.wat', t.fma, !!t.memory64)));
  return bytes;
}

/** Every variant a build ships (WASM_TARGETS: the fused multiply-add one first), for
 *  runtime/wasm/module.ts to pick from; `memory64`: their memory64 forms (WASM_TARGETS64). */
export function wasmKernelVariants(memory64 = false): Promise<Uint8Array[]> {
  return Promise.all((memory64 ? WASM_TARGETS64 : WASM_TARGETS).map((t) => wasmKernels(t)));
}

/** wabt, loaded once per process. */
export function loadWabt(): ReturnType<typeof wabtInit> {
  wabt ??= wabtInit();
  return wabt;
}

/** WebAssembly text -> a binary that the engine accepts (SIMD, shared memory, relaxed SIMD's
 *  fused multiply-add when `relaxed`, a memory64 memory when `memory64`: checked by the engine
 *  only where it has memory64, runtime/wasm/memory64.ts). */
export async function assemble(text: string, file = 'archc-kernels.wat', relaxed = false, memory64 = false): Promise<Uint8Array> {
  const w = await loadWabt();
  // wabt's own validator rejects shared memories; the engine's is the one that matters (Node 20
  // validates relaxed SIMD once its flag is set)
  if (relaxed && !(await enableRelaxedSimd())) {
    throw new InternalError('this JavaScript engine has no relaxed SIMD to check the fused multiply-add kernels with (Node >= 20 has it)');
  }
  return assembleWith(w, text, file, relaxed, memory64);
}

/** `assemble` with wabt at hand (synchronous; relaxed SIMD, if asked for, must already be enabled). */
export function assembleWith(w: Awaited<ReturnType<typeof wabtInit>>, text: string, file = 'archc-kernels.wat', relaxed = false, memory64 = false): Uint8Array {
  let bytes: Uint8Array;
  try {
    const m = w.parseWat(file, text, { simd: true, threads: true, relaxed_simd: relaxed, ...(memory64 ? { memory64: true } : {}) });
    try {
      bytes = m.toBinary({}).buffer.slice();
    } finally {
      m.destroy();
    }
  } catch (e) {
    throw new InternalError(`the wasm kernel text ${file} does not assemble: ${(e as Error).message}\n(write the text (renderWasmKernels or renderWasmProgram) to ${file} and run wat2wasm --enable-threads --enable-relaxed-simd on it to reproduce)`);
  }
  if (memory64 && !memory64Support()) return bytes;
  try {
    new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new InternalError(`the assembled wasm kernels do not validate: ${(e as Error).message}`);
  }
  return bytes;
}
