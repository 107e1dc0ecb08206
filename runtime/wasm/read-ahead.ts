// Whether the wasm products read their weights ahead on this machine (runtime/wasm/layout.ts
// READ_AHEAD_FLAG): timed both ways over the loaded weights, once, after loading. The loads ahead
// help a core that keeps few lines in flight and slow one that keeps many, and which kind of core
// runs a page or a process is not known beforehand; the products give the same bits either way.

import { type PackedWeight, type WasmKernels, packedBytes } from './kernels.ts';

/** The weights timed: those packed first, up to this many bytes (far past any L3, so each pass reads
 *  them from memory), and none at all below LEAST_BYTES (they stay in cache, where the loads ahead
 *  cost nothing either way). */
const SAMPLE_BYTES = 256 * 2 ** 20, LEAST_BYTES = 64 * 2 ** 20;
/** Passes each way, alternated; the fastest of each is compared. */
const ROUNDS = 3;
/** Without the loads ahead only where a pass is this much faster (noise keeps them). */
const MARGIN = 0.97;
/** Rows of a bf16 product timed: a decode step of several sequences (one row's bf16 GEMV has no loads
 *  ahead); q8/q4: one row, a decode step's integer-dot GEMV. */
const BF16_ROWS = 8;

export interface ReadAheadChoice {
  readonly readAhead: boolean;
  /** The fastest pass each way (ms) and the bytes of weights a pass read; absent where nothing was
   *  timed (the option given, or too few weights that read ahead). */
  readonly timed?: { readonly on: number; readonly off: number; readonly bytes: number };
}

/** Sets `kernels.readAhead`: `given` where the load options say, else the faster way over `weights`
 *  (in packing order), else on (the weights too few to tell). `clock`: ms (tests). */
export function chooseReadAhead(kernels: WasmKernels, weights: readonly PackedWeight[], given?: boolean, clock: () => number = () => performance.now()): ReadAheadChoice {
  if (given !== undefined) {
    kernels.readAhead = given;
    return { readAhead: given };
  }
  const sample: PackedWeight[] = [];
  let bytes = 0;
  for (const w of weights) {
    // f32 panels have no loads ahead
    if (w.dtype === 'f32') continue;
    if (bytes >= SAMPLE_BYTES) break;
    sample.push(w);
    bytes += packedBytes(w, kernels.NR);
  }
  if (bytes < LEAST_BYTES) {
    kernels.readAhead = true;
    return { readAhead: true };
  }
  const rows = (w: PackedWeight) => (w.dtype === 'bf16' ? BF16_ROWS : 1);
  const x = new Float32Array(BF16_ROWS * Math.max(...sample.map((w) => w.K))).map((_, i) => Math.sin(i) / 8);
  const pass = (on: boolean): number => {
    kernels.readAhead = on;
    const t0 = clock();
    for (const w of sample) kernels.linear(w, x, rows(w), null);
    return clock() - t0;
  };
  const times = { on: [] as number[], off: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    times.on.push(pass(true));
    times.off.push(pass(false));
  }
  const on = Math.min(...times.on), off = Math.min(...times.off);
  kernels.readAhead = !(off < on * MARGIN);
  return { readAhead: kernels.readAhead, timed: { on, off, bytes } };
}
