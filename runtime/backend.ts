// The backend interface: what every target (cpu now; webgpu, cuda, wasm later) implements to run a
// kernel program — upload weights, allocate the arena and the state pool, run kernels, read
// outputs — and the one executor that drives it. The CPU backend (runtime/cpu/backend.ts) is the
// reference implementation and the oracle for the others.

import type { SeqSlice } from './cpu/seq.ts';
import type { Entry, EntryName, Kernel, Program, ProgramWeight, View } from './program.ts';
import type { HostWeight, QuantDType } from './quant.ts';

/** One run of an entry: a packed batch of sequences, each in its own state slot. */
export interface RunBatch {
  /** Token ids of all sequences, concatenated: [T]. */
  readonly tokens: Int32Array;
  /** Position of each token within its sequence: [T]. */
  readonly positions: Int32Array;
  /** Rows of each sequence, in order, covering [0, T). */
  readonly seqs: readonly SeqSlice[];
  /** The state slot of each sequence. */
  readonly slots: readonly number[];
  /** Tokens each sequence held before this batch (where its KV rows continue). */
  readonly lengths: readonly number[];
  /** A train entry's labels [T] (row t predicts labels[t + 1]; -100: none). */
  readonly labels?: Int32Array;
}

/**
 * Slots of per-sequence state: in each, the conv window and SSM state of every Mamba layer and the
 * KV cache of every attention layer (up to `capacity` tokens). A slot is the unit of copying,
 * saving and restoring a sequence.
 */
export interface StatePool {
  readonly capacity: number;
  /** Bytes of one slot. */
  readonly slotBytes: number;
  /** A free slot, zeroed (a fresh sequence). */
  acquire(): number;
  release(slot: number): void;
  /** Slot `to` becomes a copy of slot `from`. */
  copy(from: number, to: number): void;
  /** The slot's bytes (for saving a sequence). */
  save(slot: number): Uint8Array;
  /** The same, once the work submitted so far has run (a GPU pool reads only this way). */
  saveAsync?(slot: number): Promise<Uint8Array>;
  restore(slot: number, bytes: Uint8Array): void;
  /** Frees the pool's device memory (a GPU pool); the pool must not be used again. */
  dispose?(): void;
}

/** One entry run in progress: the arena is sized for the batch; kernels run in order. */
export interface Invocation {
  /** Fills a view's rows (f32 [rows, width]): inputs of a single kernel under test, or poison. */
  write(v: View, data: Float32Array): void;
  dispatch(k: Kernel): void;
  /** A view's rows as f32 [rows, width]. */
  read(v: View): Float32Array;
  /** The same, once the kernels dispatched so far have run (a GPU backend reads only this way). */
  readAsync(v: View): Promise<Float32Array>;
  /** read without the copy where the rows lie in host memory (the CPU and wasm arenas): valid until
   *  the backend's next run, which overwrites them. */
  readView?(v: View): Float32Array;
}

export interface Backend {
  readonly name: string;
  /** Threads its kernels run on, where it uses several (the calling thread counts; absent: 1). */
  readonly threads?: number;
  /** Quantised weight formats it reads (runtime/quant.ts); a model is never loaded with quantised
   *  weights onto a backend that does not list their format (RT171), so none falls back silently. */
  readonly quantFormats?: readonly QuantDType[];
  /** Takes one checkpoint tensor (in its stored dtype, or quantised where `quantFormats` lists its
   *  format); derived weights are made as soon as their parts are in, and parts no kernel reads
   *  are then dropped. */
  uploadWeight(w: ProgramWeight, t: HostWeight): void;
  /** Where the loader may read a float weight's bytes for `uploadWeight`: `none` (the backend keeps
   *  no reference to the host tensor after the call: a reused buffer will do), `shared` (it keeps
   *  it in a SharedArrayBuffer for its threads: read straight into one) or `own` (absent: a fresh
   *  buffer it keeps). */
  hostCopy?(weight: string): 'none' | 'shared' | 'own';
  createStatePool(capacity: number): StatePool;
  begin(entry: Entry, batch: RunBatch, pool: StatePool): Invocation;
  /** Frees what the backend holds (worker threads, device memory). */
  dispose(): void;
}

/** A copy of `a`. Over shared memory (the wasm arena) V8 copies element by element; eight bytes at a
 *  time where `a` lies on a multiple of 8 bytes is twice as fast (1 MB of logits: 0.6 -> 0.3 ms). */
export function copyFloats(a: Float32Array): Float32Array {
  // (a page without cross-origin isolation has no SharedArrayBuffer at all)
  if (typeof SharedArrayBuffer === 'undefined' || !(a.buffer instanceof SharedArrayBuffer) || a.byteOffset % 8 || a.length % 2) return a.slice();
  const out = new Float32Array(a.length);
  new Float64Array(out.buffer).set(new Float64Array(a.buffer, a.byteOffset, a.length / 2));
  return out;
}

/** The view's columns of `rows` rows laid `stride` floats apart in `all` (from its row 0), as
 *  contiguous rows: `all` itself when the view spans the rows, else a copy. */
export function viewColumns(all: Float32Array, rows: number, stride: number, v: View, alloc: (n: number) => Float32Array = (n) => new Float32Array(n)): Float32Array {
  if (v.col === 0 && v.width === stride) return all.length === rows * stride ? all : all.subarray(0, rows * stride);
  const out = alloc(rows * v.width), w = v.width;
  // narrow columns element by element: a subarray per row costs more than the copy of a short row
  if (w >= 64) for (let r = 0; r < rows; r++) out.set(all.subarray(r * stride + v.col, r * stride + v.col + w), r * w);
  else for (let r = 0, o = 0; r < rows; r++) for (let i = 0, s = r * stride + v.col; i < w; i++) out[o++] = all[s + i]!;
  return out;
}

/** runEntry for any backend, GPU ones included: the outputs are read once the kernels have run.
 *  `view`: where the backend can, as views valid until its next run (Invocation.readView). */
export async function runEntryAsync(backend: Backend, program: Program, name: EntryName, batch: RunBatch, pool: StatePool, view = false): Promise<Map<string, Float32Array>> {
  const entry = program.entries[name];
  const inv = backend.begin(entry, batch, pool);
  for (const k of entry.kernels) inv.dispatch(k);
  const out = new Map<string, Float32Array>();
  for (const [n, v] of Object.entries(entry.outputs)) out.set(n, view && inv.readView ? inv.readView(v) : await inv.readAsync(v));
  return out;
}

/** Runs entry `name` of `program` on `backend`; returns each model output as [rows, width]. */
export function runEntry(backend: Backend, program: Program, name: EntryName, batch: RunBatch, pool: StatePool): Map<string, Float32Array> {
  const entry = program.entries[name];
  const inv = backend.begin(entry, batch, pool);
  for (const k of entry.kernels) inv.dispatch(k);
  return new Map(Object.entries(entry.outputs).map(([n, v]) => [n, inv.read(v)]));
}
