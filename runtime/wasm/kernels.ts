// The `wasm` target's matrix products at run time: packed weight panels in one or more WebAssembly
// memories (each at most 4 GiB), the kernel module instantiated on each memory on the calling thread
// and on each worker thread, and a product shared by them in chunks of weight panels (a job record in
// the weight's memory). Memory 0 holds the job record, the scratch of products over its weights, the
// caller's blocks (`allocate`: arena, state slots, program scratch) and as many weights as leave it
// room; the other weights fill "weight memories" (panels, plus a staging area where x is copied in
// and y out, so the same kernels compute the same sums, bit for bit; runtime/wasm/memories.ts). The caller
// blocks on the record's count of panels done, so the engine stays synchronous (as
// runtime/cpu/pool.ts). Where blocking is not allowed (a browser's main thread, a page without
// cross-origin isolation) it runs alone over memories that are not shared (runtime/wasm/threads.ts).
// With memory64 (a module of codegen/wasm/addr.ts' i64 form) there is one memory: every product runs
// on its one instance over the weight where it lies, the weight's base passed as a BigInt.
// Module layout: codegen/wasm/kernels.ts.

import { PRODUCT, QUANT_LAYOUT, READ_AHEAD_TAIL, TILE_READ_TAIL } from './layout.ts';
import { MEMORY_BYTES, type Mem, WasmMemories } from './memories.ts';
import { RuntimeError } from '../errors.ts';
import type { MemoryReport } from '../targets.ts';
import { QUANT_GROUP, type QuantTensor } from '../quant.ts';
import { type ActivationFormat, quantizeActivations } from '../act-quant.ts';
import { type Tensor, toF32 } from '../tensor.ts';
import { packPanels, packQuantPanels } from './pack.ts';
import { colTiles, rowTiles } from './pack-train.ts';
import { type Threads, onNode, startThreads, startThreadsNow, threadSupport } from './threads.ts';
import type { Memory64Support } from './memory64.ts';
import type { ReadAheadChoice } from './read-ahead.ts';
import { PROGRAM_WORKER } from './split.ts';
import { awaitGenerationText, awaitJob, postJob, readSlot, rowsChunk, writeSlot } from './job.ts';

/** A weight [N, K] packed into panels of NR output columns, [P][K][NR] (zeros past N); q8/q4 in
 *  panels of groups of 32 along K (codegen/wasm/kernels.ts QUANT_LAYOUT). */
export interface PackedWeight {
  readonly N: number;
  readonly K: number;
  readonly panels: number;
  /** Byte address in its memory. */
  readonly at: number;
  /** Which memory holds it (0: the one the arena and the program module share; see WasmKernels.memories;
   *  with memory64 the region of the one memory). */
  readonly mem: number;
  readonly dtype: 'f32' | 'bf16' | 'q8' | 'q4';
}

/** The bytes of a packed weight's panels in its memory (as placePanels and packQuant place them). */
export function packedBytes(w: Pick<PackedWeight, 'panels' | 'K' | 'dtype'>, NR: number): number {
  return w.dtype === 'q8' || w.dtype === 'q4' ? w.panels * (w.K / QUANT_GROUP) * QUANT_LAYOUT[w.dtype].group : w.panels * w.K * NR * (w.dtype === 'bf16' ? 2 : 4);
}

/** Control words shared with the workers: [generation, done, quit], then one job slot of JOB ints
 *  each (the workers still count `done`; products wait on the job record's count instead). A
 *  worker's job (job.ts writeSlot): [memory, s]: run `work(s)` on its instance over that memory (the
 *  product in the memory's job record; -1: none); [PROGRAM_JOB, 0]: chunks of the program module's
 *  call record (runtime/wasm/split.ts). */
const CTL_GEN = 0, CTL_DONE = 1, CTL_QUIT = 2, CTL_JOBS = 4, JOB = 10, PROGRAM_JOB = -2;
/** How long an idle worker spins on the control word before it sleeps (ms). */
const SPIN_MS = Number(globalThis.process?.env?.ARCHC_SPIN_MS ?? 2);
/** With 8-bit activations, the integer-dot GEMV takes products of up to this many rows, the integer
 *  GEMM (codegen/wasm/gemm8.ts) the others (one thread, GFLOP-equivalent/s at the ~100M's shapes,
 *  GEMM / GEMV: q4 62 / 61 at 1 row, 90 / 62 at 2, 100 / 62 at 512; q8, whose GEMV makes two dot
 *  products per 16 weights with widening, 50 / 38 at 1 row, 60 / 39 at 2, 58 / 19-39 at 512). */
export const A8_DOT_ROWS = { q4: 1, q8: 0 } as const;

/** The worker's program (threads.ts runs it in Node and in browsers): the module on each of the
 *  memories, then a loop over jobs woken by Atomics. */
const WORKER_MAIN = `({ module, memories, ctl: sab, slot, program, record }, ready) => {
const ctl = new Int32Array(sab);
const kexs = memories.map((memory) => new WebAssembly.Instance(module, { env: { memory } }).exports), works = kexs.map((e) => e.work);
const calls = program ? (${PROGRAM_WORKER})(program, memories[0], record, kexs[0]) : null;
const readSlot = ${readSlot.toString()};
ready();
let gen = 0;
for (;;) {
  ${awaitGenerationText(CTL_GEN, SPIN_MS)}
  if (Atomics.load(ctl, ${CTL_QUIT})) break;
  const [what, arg] = readSlot(ctl, ${CTL_JOBS} + slot * ${JOB});
  if (what === ${PROGRAM_JOB}) calls(slot);
  else if (what >= 0) works[what](arg);
  Atomics.add(ctl, ${CTL_DONE}, 1);
  Atomics.notify(ctl, ${CTL_DONE});
}
}`;

export class WasmKernels {
  /** Memory 0 (the arena's, the program module's, the scratch of `product`), then the weight memories. */
  private readonly mems: WasmMemories;
  /** Rows per micro-tile and columns per panel (the module's constants). */
  readonly MR: number;
  readonly NR: number;
  /** The module's multiply-adds are fused (relaxed SIMD; runtime/wasm/module.ts picks the variant). */
  readonly fma: boolean;
  private readonly splitFrom: number;
  private readonly gemvPanels: number;
  /** q8/q4 products of at most this many rows take the integer-dot GEMV (0: the module has none). */
  readonly quantDotRows: number;
  /** Rows per tile of the integer GEMM over 8-bit activations (0: the module has none). */
  readonly a8Tile: Readonly<Record<'q8' | 'q4', number>>;
  /** How q8/q4 products read x: 'q8' rounds it to 8 bits per group first (runtime/act-quant.ts):
   *  the integer-dot GEMV over one digit (q4) or two (q8), or the rounded rows into the dequantising GEMM. */
  activations: ActivationFormat = 'f32';
  /** Jobs shared so far (numbers the claim words). */
  private jobs = 0;
  private workers: Threads | null = null;
  /** The control words of the workers running now (each start gets new ones: see the constructor). */
  private ctl: Int32Array;
  private readonly shared: boolean;
  /** The program module the workers instantiate on memory 0, and its call record (`useProgram`). */
  private program: { module: WebAssembly.Module; record: SharedArrayBuffer } | null = null;

  /** `threads` counts the calling thread: 2 means one worker. Without shared memory here (see
   *  threads.ts) the memories are not shared, `module` must be threads.ts' unsharedModule of the
   *  kernels and `threads` 1. `memoryBytes`: the most one memory may hold (rounded down to 64 KiB
   *  pages; at most, and by default, 4 GiB). `memory64`: `module` is the kernels' memory64 form and
   *  one i64 memory holds everything (runtime/wasm/memory64.ts). */
  constructor(private readonly module: WebAssembly.Module, readonly threads: number, memoryBytes: number = MEMORY_BYTES, memory64: Memory64Support | null = null) {
    this.shared = threadSupport().shared;
    if (!this.shared && threads > 1) throw new RuntimeError('RT303', [`${threads} wasm threads without shared memory`, 'a browser shares memory only with a cross-origin isolated page: pass threads: 1']);
    // Workers instantiate the module on every memory when they start, and a worker blocked in
    // Atomics.wait cannot receive a message, so running workers are stopped when a memory is added
    // and started again with the whole list (`start`, or the next product in Node). Memories are
    // added while weights are packed, at load time: Model.load awaits `start` again once the weights
    // are in (WasmBackend.loaded), as a browser needs.
    this.mems = new WasmMemories(module, this.shared, threads, memoryBytes, () => { if (this.workers) this.stopWorkers(); }, memory64);
    const m = this.mems.list[0]!;
    this.MR = m.ex.MR.value as number;
    this.NR = m.ex.NR.value as number;
    this.splitFrom = m.ex.SPLIT_FROM.value as number;
    this.fma = m.ex.FMA.value === 1;
    this.gemvPanels = m.ex.GEMV_PANELS.value as number;
    this.quantDotRows = m.ex.QUANT_DOT_ROWS.value as number;
    this.a8Tile = { q4: m.ex.A8_TILE_Q4.value as number, q8: m.ex.A8_TILE_Q8.value as number };
    this.ctl = this.newCtl();
  }

  /** Memory 0: the arena, the state slots and the program module's memory. */
  get memory(): WebAssembly.Memory {
    return this.mems.list[0]!.memory;
  }

  /** The kernel module's exports on memory 0 on this thread (runtime/wasm/heads.ts' products). */
  get kernelExports(): Record<string, unknown> {
    return this.mems.list[0]!.ex as unknown as Record<string, unknown>;
  }

  /** The kernel module as compiled for these memories, and whether they are shared or memory64:
   *  the train entry's products instantiate it on a memory of their own (runtime/wasm/train.ts). */
  get compiled(): { module: WebAssembly.Module; shared: boolean; memory64: boolean } {
    return { module: this.module, shared: this.shared, memory64: this.mems.memory64 !== null };
  }

  /** 1 where the kernels are the memory64 form (their products take the weight's base last), else 0. */
  get m64(): number {
    return this.mems.memory64 ? 1 : 0;
  }

  /** The products run where the weight lies: one memory, or memory 0 for its own weights. */
  private direct(w: PackedWeight): boolean {
    return w.mem === 0 || this.mems.memory64 !== null;
  }

  /** Whether the products' kernels read their weights ahead (runtime/wasm/layout.ts READ_AHEAD_FLAG;
   *  true until set; the results are the same bits either way). */
  get readAhead(): boolean {
    return this.mems.readAhead;
  }

  set readAhead(on: boolean) {
    this.mems.readAhead = on;
  }

  /** How the backend chose `readAhead` once its weights were in (runtime/wasm/read-ahead.ts). */
  readAheadChoice: ReadAheadChoice | null = null;

  /** Where the packed weights are, memory by memory (memory 0 first). */
  memories(): MemoryReport[] {
    return this.mems.report();
  }

  private newCtl(): Int32Array {
    return new Int32Array(new (this.shared ? SharedArrayBuffer : ArrayBuffer)(4 * (CTL_JOBS + JOB * Math.max(1, this.threads))));
  }

  /** Packs W [N, K] (f32 or bf16 kept as is; f16 widened to f32) into panels in a memory (`place`);
   *  `transposed`: W is given as [K, N] (a product over an [in, out] matrix). */
  pack(w: Tensor, transposed = false, into?: PackedWeight): PackedWeight {
    const [N, K] = (transposed ? [w.shape[1], w.shape[0]] : w.shape) as [number, number];
    const NR = this.NR, panels = Math.ceil(N / NR);
    const dtype = w.dtype === 'bf16' ? 'bf16' : 'f32';
    const src = w.dtype === 'f32' || w.dtype === 'bf16' ? w.data : toF32(w);
    // `into`: panels of the same shape packed before (a weight stored again: a training step's), reused
    const { p, buffer } = into && into.N === N && into.K === K && into.dtype === dtype
      ? { p: into, buffer: this.mems.list.find((m) => m.index === into.mem)!.memory.buffer }
      : this.placePanels(N, K, dtype);
    const dst = dtype === 'bf16' ? new Uint16Array(buffer, p.at, panels * K * NR) : new Float32Array(buffer, p.at, panels * K * NR);
    // panel p holds W[p·NR + c, k] at p·K·NR + k·NR + c (runtime/wasm/pack.ts), copied as bits
    const bits = (a: Float32Array | Uint16Array, n: number) => (a instanceof Uint16Array ? a : new Uint32Array(a.buffer, a.byteOffset, n));
    packPanels(bits(dst, panels * K * NR), bits(src as Float32Array | Uint16Array, N * K), N, K, NR, transposed);
    return p;
  }

  /** Room for the panels of an f32/bf16 weight [N, K] (`pack` fills it; or the loader's threads,
   *  runtime/load-pool.ts): the weight as the products read it, and the memory's buffer it lies in. */
  placePanels(N: number, K: number, dtype: 'f32' | 'bf16'): { p: PackedWeight; buffer: ArrayBufferLike } {
    const panels = Math.ceil(N / this.NR);
    const { m, mem, at } = this.mems.place(packedBytes({ panels, K, dtype }, this.NR), K, dtype, dtype === 'bf16' ? TILE_READ_TAIL : 0);
    return { p: { N, K, panels, at, mem, dtype }, buffer: m.memory.buffer };
  }

  /**
   * Packs a q8/q4 weight [N, K] into panels of QUANT_LAYOUT groups (runtime/wasm/layout.ts):
   * codes regrouped as [group][k-quad][half][4 columns][4 k], q4 nibbles re-paired (column c low,
   * c + 4 high), scales as f16 bits, and (q8) per column and group Σcode as i16. Padding columns
   * past N: codes 0 (q4: 8, code 0) and scales 0.
   */
  packQuant(w: QuantTensor): PackedWeight {
    const [N, K] = w.shape;
    const NR = this.NR, panels = Math.ceil(N / NR), G = K / QUANT_GROUP, L = QUANT_LAYOUT[w.dtype];
    if (NR !== 8 || !Number.isInteger(G)) throw new RangeError(`packQuant: K = ${K} is not a multiple of ${QUANT_GROUP}, or panels of ${NR} columns`);
    // the GEMV's read-ahead loads reach up to READ_AHEAD_TAIL bytes past the last group: inside the memory
    const size = packedBytes({ panels, K, dtype: w.dtype }, NR);
    const { m, mem, at } = this.mems.place(size, K, w.dtype, READ_AHEAD_TAIL);
    const bytes = new Uint8Array(m.memory.buffer, at, size);
    // every byte of a whole panel is written; a partial one's missing columns keep zero scales
    if (N % NR) bytes.fill(0);
    packQuantPanels(w.dtype === 'q4', w.codes, w.scales, N, K, L, bytes);
    return { N, K, panels, at, mem, dtype: w.dtype };
  }

  /** x's T rows (floats at byte `xAt` of memory 0, `ldx` apart) at `at` as the product of `w` reads
   *  them: the integer-dot GEMV's digits (codegen/wasm/kernels.ts `digits`, signed for q4, or
   *  `digits8_<f>` over 8-bit activations; the integer GEMM's tile rows, `digits8_q4` / `digits8s_q8`
   *  with MR = a8Tile, past A8_DOT_ROWS) where it applies and every row is finite, else row tiles
   *  [ceil(T/MR)][K][MR] (rounded to 8 bits first with activations 'q8'); returns the product's
   *  PRODUCT code. `at` holds 4·ceil(T/MR)·MR·K bytes (digits take 3.5·T·K). */
  private operand(w: PackedWeight, xAt: number, ldx: number, T: number, K: number, at: number): number {
    return this.operandIn(this.mems.list[0]!, w, xAt, ldx, T, K, at);
  }

  /** `operand` in memory m (x's rows already there). */
  private operandIn(m: Mem, w: PackedWeight, xAt: number, ldx: number, T: number, K: number, at: number): number {
    const quant = w.dtype === 'q8' || w.dtype === 'q4';
    const a8 = quant && this.activations === 'q8', f = w.dtype as 'q8' | 'q4';
    if (quant && this.quantDotRows && T <= (a8 ? A8_DOT_ROWS[f] : this.quantDotRows)) {
      if (a8 ? m.ex[`digits8_${f}`]!(xAt, ldx, T, K, at, 1) : m.ex.digits!(xAt, ldx, T, K, at, f === 'q4' ? 1 : 0)) return PRODUCT[`${a8 ? 'dot8' : 'dot'}_${f}`];
    } else if (a8 && this.a8Tile[f] && m.ex[f === 'q4' ? 'digits8_q4' : 'digits8s_q8']!(xAt, ldx, T, K, at, this.a8Tile[f])) return PRODUCT[`gemm8_${f}`];
    // 8-bit activations: rounded into the tiles by the module, or here where a group is not finite
    if (a8 && m.ex.round8(xAt, ldx, T, K, at, this.MR)) return PRODUCT[w.dtype];
    if (a8) {
      const mem = new Float32Array(m.memory.buffer), rows = new Float32Array(T * K);
      quantizeActivations(mem, xAt >>> 2, ldx, T, K, rows);
      tiles(rows, 0, K, mem, at, T, K, this.MR);
    } else m.ex.tiles(xAt, ldx, T, K, at, this.MR);
    return PRODUCT[w.dtype];
  }

  /** y = x·Wᵀ + b: x [T, K] f32, bias [N] f32 or null; returns y [T, N]. */
  linear(w: PackedWeight, x: Float32Array, T: number, bias: Float32Array | null): Float32Array {
    const { N, K, panels } = w;
    const MR = this.MR, NR = this.NR;
    const Tpad = Math.ceil(T / MR) * MR, ldy = panels * NR;
    const m0 = this.mems.list[0]!;
    let yAt: number;
    if (this.direct(w)) {
      // x tiles (or digits), y, then x's rows as given
      const xAt = this.mems.reserve(m0, 4 * Tpad * (K + ldy) + 4 * T * K);
      yAt = xAt + 4 * Tpad * K;
      const rowsAt = yAt + 4 * Tpad * ldy;
      new Float32Array(m0.memory.buffer, rowsAt, T * K).set(x.subarray(0, T * K));
      const fn = this.operand(w, rowsAt, K, T, K, xAt);
      this.run(m0, fn, [xAt, w.at, yAt, T, K, ldy], 0, panels, T * K * N >= this.splitFrom);
    } else {
      // x's rows and y in memory 0, the product in the weight's memory
      yAt = this.mems.reserve(m0, 4 * Tpad * ldy + 4 * T * K);
      const rowsAt = yAt + 4 * Tpad * ldy;
      new Float32Array(m0.memory.buffer, rowsAt, T * K).set(x.subarray(0, T * K));
      this.linearAt(w, rowsAt, K, T, yAt, ldy);
    }
    // the run may have grown the memory (a bf16 panel's scratch), which detaches an unshared one's buffer
    const ys = new Float32Array(m0.memory.buffer, yAt, Tpad * ldy);
    const y = new Float32Array(T * N);
    for (let t = 0; t < T; t++) {
      const o = t * ldy, r = t * N;
      if (bias) for (let n = 0; n < N; n++) y[r + n] = ys[o + n]! + bias[n]!;
      else y.set(ys.subarray(o, o + N), r);
    }
    return y;
  }

  /**
   * Y [T, N] = X·Wᵀ for a small product on the calling thread, its operands read through strides:
   * X[t, k] = x[xo + t·xt + k·xk], W[n, k] = w[wo + n·wn + k·wk] (so a transpose or a column slice
   * costs nothing to express). Returns a view of Y, rows `ld` apart, valid until the next product.
   * Runs in memory 0; `shared`: split over the threads by panels as `linear` is, above SPLIT_FROM
   * (the training engine's products, whose weights change every step: runtime/train/f32/gemm.ts).
   */
  product(x: Float32Array, xo: number, xt: number, xk: number, T: number, K: number,
    w: Float32Array, wo: number, wn: number, wk: number, N: number, shared = false): { y: Float32Array; ld: number } {
    const MR = this.MR, NR = this.NR, panels = Math.ceil(N / NR), Tpad = Math.ceil(T / MR) * MR, ld = panels * NR;
    const m0 = this.mems.list[0]!;
    const wAt = this.mems.reserve(m0, 4 * (panels * K * NR + Tpad * K + Tpad * ld));
    const xAt = wAt + 4 * panels * K * NR, yAt = xAt + 4 * Tpad * K;
    const mem = new Float32Array(m0.memory.buffer);
    // contiguous operands take the block copies; padding columns and rows keep whatever is there
    // (their results are never read)
    const wPanels = () => new Uint32Array(mem.buffer, wAt, panels * K * NR), wWords = () => new Uint32Array(w.buffer, w.byteOffset + 4 * wo, N * K);
    if (wk === 1 && wn === K) packPanels(wPanels(), wWords(), N, K, NR, false);
    else if (wn === 1 && wk === N) packPanels(wPanels(), wWords(), N, K, NR, true);
    else for (let n = 0; n < N; n++) {
      const base = (wAt >>> 2) + Math.floor(n / NR) * K * NR + (n % NR);
      for (let k = 0, src = wo + n * wn; k < K; k++, src += wk) mem[base + k * NR] = w[src]!;
    }
    if (xk === 1) rowTiles(x, xo, xt, mem, xAt >>> 2, T, K, MR);
    else if (xt === 1) colTiles(x, xo, xk, mem, xAt >>> 2, T, K, MR);
    else for (let t = 0; t < T; t++) {
      const base = (xAt >>> 2) + (t - (t % MR)) * K + (t % MR);
      for (let k = 0, src = xo + t * xt; k < K; k++, src += xk) mem[base + k * MR] = x[src]!;
    }
    if (shared) this.run(m0, PRODUCT.f32, [xAt, wAt, yAt, T, K, ld], 0, panels, T * K * N >= this.splitFrom);
    else m0.ex.gemm_f32(xAt, wAt, yAt, T, K, ld, 0, panels, ...(this.mems.memory64 ? [0n] : []));
    return { y: new Float32Array(m0.memory.buffer).subarray(yAt >>> 2, (yAt >>> 2) + Tpad * ld), ld };
  }

  /** `bytes` of memory 0 for the caller's own use (never freed; see runtime/wasm/program.ts' Heap). */
  allocate(bytes: number): number {
    return this.mems.alloc(this.mems.list[0]!, bytes, 'the arena, state slots and scratch');
  }

  /**
   * y = x·Wᵀ with x and y in memory 0: T rows of K floats at byte address `xAt`, `ldx` floats
   * apart; y rows at `yAt`, `ldy` floats apart, of which columns [0, panels·NR) are written (the
   * caller leaves room for a partial panel's padding columns). No bias.
   */
  linearAt(w: PackedWeight, xAt: number, ldx: number, T: number, yAt: number, ldy: number): void {
    const { K, N, panels } = w;
    const MR = this.MR, Tpad = Math.ceil(T / MR) * MR;
    const split = T * K * N >= this.splitFrom;
    if (this.direct(w)) {
      const tiles = this.mems.reserve(this.mems.list[0]!, 4 * Tpad * K);
      const fn = this.operand(w, xAt, ldx, T, K, tiles);
      this.run(this.mems.list[0]!, fn, [tiles, w.at, yAt, T, K, ldy], 0, panels, split);
      return;
    }
    this.staged(w, xAt, ldx, T, yAt, ldy, split);
  }

  /**
   * linearAt for a weight in a weight memory m: x's rows copied from memory 0 into m's staging (as
   * tiles, or as rows for the integer-dot GEMV's digits, made there by m's instance), the product
   * run by m's instances (the same exports, so the same sums), y copied back to memory 0. y's
   * staging holds a chunk of panels, all of them where the memory has room (a chunk is a multiple of
   * the GEMV's panel group, so a one-row product groups its panels as in one run).
   */
  private staged(w: PackedWeight, xAt: number, ldx: number, T: number, yAt: number, ldy: number, split: boolean): void {
    const { K, panels } = w;
    const MR = this.MR, NR = this.NR, Tpad = Math.ceil(T / MR) * MR;
    const m = this.mems.list[w.mem]!, m0 = this.mems.list[0]!;
    // x's rows copied into m first where m's instance makes the operand from them: the integer-dot
    // GEMV's digits, or 8-bit activations' rounded tiles
    const quant = w.dtype === 'q8' || w.dtype === 'q4';
    const rowsHere = quant && (T <= this.quantDotRows || this.activations === 'q8');
    // the panel scratch first, for every weight here, so that the staging stays the last block and grows in place
    if (w.dtype !== 'f32') this.mems.panelScratch(m, m.maxK);
    const xBytes = 4 * Tpad * K + (rowsHere ? 4 * T * K : 0), perPanel = 4 * Tpad * NR;
    const fit = Math.floor((this.mems.memoryBytes - this.mems.stagingAt(m) - xBytes) / perPanel);
    const chunk = fit >= panels ? panels : Math.max(this.gemvPanels, fit - (fit % this.gemvPanels));
    const tilesAt = this.mems.reserve(m, xBytes + chunk * perPanel);
    const yS = tilesAt + xBytes;
    const src = new Float32Array(m0.memory.buffer), dst = new Float32Array(m.memory.buffer);
    let fn: number;
    if (rowsHere) {
      const rowsAt = tilesAt + 4 * Tpad * K;
      for (let t = 0; t < T; t++) dst.set(src.subarray((xAt >>> 2) + t * ldx, (xAt >>> 2) + t * ldx + K), (rowsAt >>> 2) + t * K);
      fn = this.operandIn(m, w, rowsAt, K, T, K, tilesAt);
    } else {
      tiles(src, xAt, ldx, dst, tilesAt, T, K, MR);
      fn = PRODUCT[w.dtype];
    }
    for (let q0 = 0; q0 < panels; q0 += chunk) {
      const q1 = Math.min(panels, q0 + chunk), cols = (q1 - q0) * NR;
      // y's staging as the module addresses it: panel p of row t at y + 4·(t·cols + p·NR)
      this.run(m, fn, [tilesAt, w.at, yS - 4 * q0 * NR, T, K, cols], q0, q1, split);
      const out = new Float32Array(m0.memory.buffer), ys = new Float32Array(m.memory.buffer);
      for (let t = 0; t < T; t++) out.set(ys.subarray((yS >>> 2) + t * cols, (yS >>> 2) + (t + 1) * cols), (yAt >>> 2) + t * ldy + q0 * NR);
    }
  }

  /**
   * Runs gemm `fn` over panels [p0, p1) of a weight in memory `m`; when `split`, the threads share
   * it in chunks of panels through m's job record (codegen/wasm/kernels.ts `work`): the calling
   * thread wakes the workers, takes chunks itself, and waits only until every panel is done, so a
   * worker that wakes late takes fewer chunks (or none) instead of holding the product up. Chunks:
   * for one row (decode) about two per thread, each a multiple of twice the GEMV's GEMV_PANELS, so
   * every thread count computes each panel with the same kernel, bit for bit; else about four per thread.
   */
  private run(m: Mem, fn: number, args: readonly number[], p0: number, p1: number, split: boolean): void {
    const [x, at, y, T, K, ldy] = args as [number, number, number, number, number, number];
    const panels = p1 - p0;
    // bf16 and dequantised q8/q4 panels widen into each thread's scratch
    const widens = fn === PRODUCT.bf16 || fn === PRODUCT.q8 || fn === PRODUCT.q4 || fn === PRODUCT.gemm8_q4 || fn === PRODUCT.gemm8_q8;
    const s = widens ? this.mems.panelScratch(m, K) : 0;
    // memory64: the weight at offset 0 from its base, passed last
    const wb = this.mems.memory64 ? BigInt(at) : null, w = wb === null ? at : 0;
    if (!split || this.threads < 2 || panels < 2) {
      const ex = m.ex;
      const call = [ex.gemm_f32, ex.gemm_bf16, ex.gemm_q8, ex.gemm_q4, ex.dot_q8, ex.dot_q4, ex.dot8_q8, ex.dot8_q4, ex.gemm8_q4, ex.gemm8_q8][fn] as ((...a: (number | bigint)[]) => void) | undefined;
      if (!call) throw new Error(`WasmKernels: the module has no product ${fn}`);
      call(x, w, y, T, K, ldy, p0, p1, ...(wb === null ? [s] : widens ? [s, wb] : [wb]));
      return;
    }
    const n = this.startWorkers();
    const job = m.job;
    // one row: two chunks a thread, each whole groups of the GEMV's panels (a chunk of two groups was
    // ~30 % slower on 2 threads, likely as each chunk's claim and count move a cache line between the cores);
    // more rows: rowsChunk, an even number of panels (64 bytes of a row of y), so two threads' chunks
    // also do not share a line of y where its rows are so aligned (the unrolled 2-row tile stores
    // into y at every other k: chunks of 3 panels at 8 rows of 768 ran 2x slower on 2 threads, 45 vs
    // 22 ms a step in bench/tile-stream.ts --cached)
    const groups = 2 * this.gemvPanels;
    const chunk = T === 1 ? Math.max(groups, Math.ceil(panels / (2 * this.threads) / groups) * groups, Math.ceil(panels / 0xfff0)) : rowsChunk(panels, this.threads);
    postJob(job, ++this.jobs, { dt: fn, x, w, y, T, K, ldy, p0, p1, chunk, wbase: wb ?? undefined });
    const mem = m.index;
    for (let i = 0; i < n; i++) writeSlot(this.ctl, CTL_JOBS + i * JOB, mem, s + (i + 1) * m.panels.stride);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    m.ex.work(s);
    awaitJob(job, panels);
  }

  /** Each worker's data: the module, the memories, the control words and its job slot (and the
   *  program module with its call record). */
  private workerData(): object[] {
    // memory64: the regions share one memory
    const memories = [...new Set(this.mems.list.map((m) => m.memory))];
    return Array.from({ length: this.threads - 1 }, (_, slot) => ({ module: this.module, memories, ctl: this.ctl.buffer, slot, program: this.program?.module, record: this.program?.record }));
  }

  /** The workers run the program module's functions too (runtime/wasm/split.ts), instantiated on
   *  memory 0: running workers stop, and start again with it. */
  useProgram(module: WebAssembly.Module, record: SharedArrayBuffer): void {
    if (this.workers) this.stopWorkers();
    this.program = { module, record };
  }

  /** Wakes the workers to take chunks of the program's call record; returns how many there are. */
  wakeProgram(): number {
    const n = this.startWorkers();
    for (let i = 0; i < n; i++) writeSlot(this.ctl, CTL_JOBS + i * JOB, PROGRAM_JOB, 0);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    return n;
  }

  /** Starts the worker threads (on every memory there is) and resolves once they run; a browser
   *  needs this before the first product, and again after a memory was added (in Node a product
   *  starts them if need be). */
  async start(): Promise<void> {
    if (!this.workers && this.threads > 1) this.workers = await startThreads(WORKER_MAIN, this.workerData());
  }

  /** The workers (started now in Node); returns their count. */
  private startWorkers(): number {
    if (!this.workers) {
      if (!onNode()) throw new Error('WasmKernels: await start() before the first product (and after loading, when weights took a new memory)');
      this.workers = startThreadsNow(WORKER_MAIN, this.workerData());
    }
    return this.workers.count;
  }

  /** Stops the workers (they leave their loop); the next start gets new control words. */
  private stopWorkers(): void {
    Atomics.store(this.ctl, CTL_QUIT, 1);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.workers?.close();
    this.workers = null;
    this.ctl = this.newCtl();
  }

  /** Stops the workers. */
  close(): void {
    this.stopWorkers();
  }
}

/** x's T rows (floats `ldx` apart from byte `xAt` of `src`) as row tiles [ceil(T/MR)][K][MR] at byte
 *  `at` of `dst`; rows past T are left as they are (their results are never read). */
function tiles(src: Float32Array, xAt: number, ldx: number, dst: Float32Array, at: number, T: number, K: number, MR: number): void {
  for (let t = 0, x0 = xAt >>> 2, t0 = at >>> 2; t < T; t++) {
    const base = t0 + (t - (t % MR)) * K + (t % MR), row = x0 + t * ldx;
    for (let k = 0; k < K; k++) dst[base + k * MR] = src[row + k]!;
  }
}
