// A kernel module made to import an unshared memory, apart from runtime/wasm/threads.ts so that code
// a browser bundle reaches without threads (the optimizer's module: runtime/train/optim-wasm.ts) does
// not reach Node's worker_threads.

/**
 * The kernel module with its imported memory made not shared: the same code, for a thread that has
 * no shared memory (the module uses no atomics, so only the import's limits flags differ).
 */
export function unsharedModule(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  let at = 8;
  const u32 = (): number => {
    let v = 0, shift = 0, b: number;
    do {
      b = out[at++]!;
      v |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return v >>> 0;
  };
  const limits = (): number => {
    const flags = at;
    const f = out[at++]!;
    u32();
    if (f & 1) u32();
    return flags;
  };
  if (out[0] !== 0 || out[1] !== 0x61 || out[2] !== 0x73 || out[3] !== 0x6d) throw new Error('unsharedModule: not a WebAssembly module');
  while (at < out.length) {
    const id = out[at++]!, size = u32(), end = at + size;
    if (id !== 2) {
      at = end;
      continue;
    }
    for (let n = u32(); n > 0; n--) {
      const moduleName = u32();
      at += moduleName;
      const fieldName = u32();
      at += fieldName;
      const kind = out[at++]!;
      if (kind === 0) u32(); // function: type index
      else if (kind === 1) { at++; limits(); } // table: element type, limits
      else if (kind === 2) { const f = limits(); out[f] = out[f]! & ~2; } // memory: clear the shared bit
      else if (kind === 3) at += 2; // global: value type, mutability
      else throw new Error(`unsharedModule: import of unknown kind ${kind}`);
    }
    return out;
  }
  return out;
}
