// The row kernels' module (./rows-module.ts) compiled once, in both memory forms, apart from ./rows.ts
// and its threads: the optimizer's module (../optim-wasm.ts) is reached from code a browser bundles.

import { TRAIN_ROWS_WASM } from './rows-module.ts';
import { unsharedModule } from '../../wasm/unshared.ts';

let compiled: { bytes: Uint8Array; unshared: WebAssembly.Module } | null | undefined;

/** The module compiled for an unshared memory, or null where the engine has no WebAssembly SIMD. */
export const rowsModule = (): WebAssembly.Module | null => rowModules()?.unshared ?? null;

/** The module's bytes (shared-memory form) and its unshared form compiled. */
export function rowModules(): { bytes: Uint8Array; unshared: WebAssembly.Module } | null {
  if (compiled === undefined) {
    const bytes = Uint8Array.from(atob(TRAIN_ROWS_WASM), (c) => c.charCodeAt(0)), plain = unsharedModule(bytes) as Uint8Array<ArrayBuffer>;
    compiled = typeof WebAssembly === 'object' && WebAssembly.validate(plain) ? { bytes, unshared: new WebAssembly.Module(plain) } : null;
  }
  return compiled;
}
