// The wasm backend's memory, chosen at load: several 32-bit memories (runtime/wasm/memories.ts) or
// one memory64 memory (runtime/wasm/memory64.ts), by LoadOptions.wasmMemory64 or, left out, by
// whether the model's packed weights fit one 32-bit memory beside its reserve.

import { RuntimeError } from '../errors.ts';
import { MEMORY0_RESERVE, MEMORY_BYTES } from './memories.ts';
import { type Memory64Support, memory64Bytes, memory64Support } from './memory64.ts';

export interface Memory64Choice {
  readonly support: Memory64Support;
  readonly kernels: Uint8Array | WebAssembly.Module | readonly Uint8Array[];
}

/** Bytes of packed weights one memory64 memory holds: region 0's share (as memory 0's) and region 1. */
export function memory64Room(s: Memory64Support): number {
  const most = memory64Bytes(s), low = Math.min(MEMORY_BYTES, most / 2);
  return most - low + Math.floor(low * (1 - MEMORY0_RESERVE));
}

/**
 * Memory64 for `weightBytes` of packed weights (runtime/load.ts loadedWeightBytes), or null for the
 * 32-bit memories. `force`: true insists (RT303 where the engine has none, the memory64 kernels were
 * not given, or the weights do not fit it, naming the bytes); false never; absent, memory64 where
 * the engine has it, its kernels are at hand, the weights outgrow one 32-bit memory and fit it.
 */
export function chooseMemory64(force: boolean | undefined, kernels64: Memory64Choice['kernels'] | undefined, weightBytes: number): Memory64Choice | null {
  if (force === false) return null;
  const support = memory64Support();
  if (force === undefined) {
    const fits = support !== null && weightBytes <= memory64Room(support);
    return support && kernels64 && fits && weightBytes > MEMORY_BYTES * (1 - MEMORY0_RESERVE) ? { support, kernels: kernels64 } : null;
  }
  const key = { key: 'wasmMemory64' };
  if (!support) throw new RuntimeError('RT303', ['wasmMemory64: true', 'this JavaScript engine has no memory64 (Chromium >= 133, Firefox >= 134, Node >= 24; Node 20 with --experimental-wasm-memory64): leave wasmMemory64 out for several 32-bit memories'], key);
  if (!kernels64) throw new RuntimeError('RT303', ['wasmMemory64: true without the kernels\' memory64 form', 'pass wasmKernels64 (archc build writes it into the package)'], key);
  if (weightBytes > memory64Room(support)) {
    throw new RuntimeError('RT303', [`${weightBytes} bytes of packed weights in one memory64 memory`, `this engine's memory64 holds at most ${memory64Room(support)} bytes of weights: leave wasmMemory64 out for several 32-bit memories, or quantize the model (quantize: 'q4')`], key);
  }
  return { support, kernels: kernels64 };
}
