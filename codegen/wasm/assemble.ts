// Assembles the `wasm` target's module (codegen/wasm/kernels.ts) with wabt, once per process and
// target record. `archc build` writes the bytes into the package; the CLI and the tests assemble
// the same text at load time.

import wabtInit from 'wabt';
import { InternalError } from '../../dsl/diagnostics.ts';
import { WASM_TARGET, WASM_TARGETS, type WasmTarget } from '../../compiler/kernel/schedule.ts';
import { enableRelaxedSimd } from '../../runtime/wasm/module.ts';
import { renderWasmKernels } from './kernels.ts';

const cache = new Map<WasmTarget, Promise<Uint8Array>>();
let wabt: ReturnType<typeof wabtInit> | null = null;

/** The module's bytes for target `t` (assembled on first use, then cached). */
export function wasmKernels(t: WasmTarget = WASM_TARGET): Promise<Uint8Array> {
  let bytes = cache.get(t);
  if (!bytes) cache.set(t, (bytes = assemble(renderWasmKernels(t), 'archc-kernels.wat', t.fma)));
  return bytes;
}

/** Every variant a build ships (WASM_TARGETS: the fused multiply-add one first), for
 *  runtime/wasm/module.ts to pick from. */
export function wasmKernelVariants(): Promise<Uint8Array[]> {
  return Promise.all(WASM_TARGETS.map((t) => wasmKernels(t)));
}

/** WebAssembly text -> a binary that the engine accepts (SIMD, shared memory, and relaxed SIMD's
 *  fused multiply-add when `relaxed`). */
export async function assemble(text: string, file = 'archc-kernels.wat', relaxed = false): Promise<Uint8Array> {
  wabt ??= wabtInit();
  const w = await wabt;
  let bytes: Uint8Array;
  try {
    const m = w.parseWat(file, text, { simd: true, threads: true, relaxed_simd: relaxed });
    try {
      bytes = m.toBinary({}).buffer.slice();
    } finally {
      m.destroy();
    }
  } catch (e) {
    throw new InternalError(`the wasm kernel text does not assemble: ${(e as Error).message}\n(write renderWasmKernels(WASM_TARGET) to a .wat file and run wat2wasm --enable-threads --enable-relaxed-simd on it to reproduce)`);
  }
  // wabt's own validator rejects shared memories; the engine's is the one that matters (Node 20
  // validates relaxed SIMD once its flag is set)
  if (relaxed && !(await enableRelaxedSimd())) {
    throw new InternalError('this JavaScript engine has no relaxed SIMD to check the fused multiply-add kernels with (Node >= 20 has it)');
  }
  try {
    new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new InternalError(`the assembled wasm kernels do not validate: ${(e as Error).message}`);
  }
  return bytes;
}
