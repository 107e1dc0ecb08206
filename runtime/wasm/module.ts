// Which of the wasm target's module variants runs (codegen/wasm/: the fused multiply-add one, built
// on relaxed SIMD, and the plain SIMD one): the first the engine's `WebAssembly.validate` accepts.
//
// Relaxed SIMD is on by default in Chromium >= 114 and Node >= 22. Node 20 (V8 11.3) has it behind
// `--experimental-wasm-relaxed-simd`; V8 reads that flag whenever it validates or compiles a module,
// so setting it at run time (node:v8 `setFlagsFromString`) before the first relaxed module is compiled
// turns it on for the whole process, worker threads included (they share the isolate group's flags).
// That is done in Node only, and only when the engine rejects the variant otherwise; if the flag does
// not help (an engine without it), the plain module runs.

/** Tries once per process to let Node's engine accept relaxed SIMD; true when it now does. */
export async function enableRelaxedSimd(): Promise<boolean> {
  if (relaxedSimdValid()) return true;
  if (typeof process === 'undefined' || !process.versions?.node) return false;
  try {
    const v8 = await import('node:v8');
    v8.setFlagsFromString?.('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return relaxedSimdValid();
}

/** A module of one function using f32x4.relaxed_madd: does the engine validate relaxed SIMD? */
function relaxedSimdValid(): boolean {
  // (func (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2)))
  const probe = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0,
    10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11);
  return WebAssembly.validate(probe);
}

/**
 * The module to run: `kernels` is one module, or its variants in order of preference (the fused
 * one first, as codegen/wasm/assemble.ts' wasmKernelVariants returns them); the first variant the
 * engine validates (after enabling relaxed SIMD where it can), passed through `prepare` (e.g. the
 * rewrite for an unshared memory), is compiled.
 */
export async function wasmModule(kernels: Uint8Array | WebAssembly.Module | readonly Uint8Array[],
  prepare: (bytes: Uint8Array) => Uint8Array = (b) => b): Promise<WebAssembly.Module> {
  if (kernels instanceof WebAssembly.Module) return kernels;
  const variants = (kernels instanceof Uint8Array ? [kernels] : kernels).map(prepare) as Uint8Array<ArrayBuffer>[];
  for (const b of variants) {
    if (WebAssembly.validate(b) || ((await enableRelaxedSimd()) && WebAssembly.validate(b))) return WebAssembly.compile(b);
  }
  // the last variant is plain SIMD: compiling it reports why the engine refuses it
  return WebAssembly.compile(variants.at(-1)!);
}
