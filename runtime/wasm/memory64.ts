// memory64 where the engine has it: one WebAssembly memory declared `i64`, past 4 GiB, instead of
// several 32-bit ones (runtime/wasm/memories.ts lays it out; codegen/wasm/addr.ts is the kernels'
// memory64 form). Found by validating a tiny module, never assumed from a version.
//
// Two JS APIs exist: the final one (`address: 'i64'`, sizes and `grow` in BigInt; Chromium >= 133,
// Node >= 24), up to 16 GiB a memory in V8; and the proposal's draft in Node 20 (V8 11.3) behind
// `--experimental-wasm-memory64` (`index: 'i64'`, sizes in numbers), which validates the final
// binary encoding (the limits' flag bit 4, i64 addresses in loads, stores and atomics) but holds a
// memory to 65536 pages, 4 GiB: there the memory64 path runs, with nothing past 4 GiB. The flag is
// not set here at run time: an experimental engine feature is the caller's choice (a command line).

const PAGE = 65536;

export interface Memory64Support {
  /** How the JS API spells an i64 memory. */
  readonly api: 'address' | 'index';
  /** The most 64 KiB pages one memory may have here. */
  readonly maxPages: number;
}

let found: Memory64Support | null | undefined;

// (module (memory i64 1))
const PROBE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 4, 1);
// (module (import "e" "m" (memory i64 1)))
const IMPORTS = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 2, 8, 1, 1, 101, 1, 109, 2, 4, 1);

/** The engine's memory64, or null: it validates an i64 memory and its JS API makes one that a
 *  module importing an i64 memory accepts (once per process). */
export function memory64Support(): Memory64Support | null {
  if (found !== undefined) return found;
  found = null;
  if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(PROBE)) return found;
  const tries: [Memory64Support['api'], number][] = [['address', 262144], ['address', 65536], ['index', 262144], ['index', 65536]];
  for (const [api, maxPages] of tries) {
    try {
      const memory = make(api, 1, maxPages, false);
      new WebAssembly.Instance(new WebAssembly.Module(IMPORTS), { e: { m: memory } });
      return (found = { api, maxPages });
    } catch {
      // another spelling, or a smaller maximum
    }
  }
  return found;
}

function make(api: Memory64Support['api'], initial: number, maximum: number, shared: boolean): WebAssembly.Memory {
  const d = api === 'address' ? { initial: BigInt(initial), maximum: BigInt(maximum), address: 'i64', shared } : { initial, maximum, index: 'i64', shared };
  return new WebAssembly.Memory(d as unknown as WebAssembly.MemoryDescriptor);
}

/** A new i64 memory of one page, growable to the engine's maximum. */
export function newMemory64(s: Memory64Support, shared: boolean): WebAssembly.Memory {
  return make(s.api, 1, s.maxPages, shared);
}

/** Grows an i64 memory by `pages`. */
export function grow64(s: Memory64Support, memory: WebAssembly.Memory, pages: number): void {
  (memory.grow as (n: number | bigint) => unknown)(s.api === 'address' ? BigInt(pages) : pages);
}

/** Bytes one i64 memory may hold here. */
export const memory64Bytes = (s: Memory64Support): number => s.maxPages * PAGE;
