// The `wasm` target's matrix products at run time: one shared WebAssembly memory holding packed
// weight panels and the scratch of the product in flight, the kernel module instantiated on the
// calling thread and on each worker thread, and a product shared by them in chunks of weight
// panels (a job record in the memory). The caller blocks on the record's count of panels done, so
// the engine stays synchronous (as runtime/cpu/pool.ts). Where blocking is not allowed (a browser's
// main thread, a page without cross-origin isolation) it runs alone over a memory that is not shared
// (runtime/wasm/threads.ts). Module layout: codegen/wasm/kernels.ts.

import { PRODUCT, QUANT_LAYOUT, XQ_OFFSET } from './layout.ts';
import { RuntimeError } from '../errors.ts';
import { F16_TO_F32, QUANT_GROUP, type QuantTensor } from '../quant.ts';
import { type Tensor, toF32 } from '../tensor.ts';
import { packPanels, packQuantPanels } from './pack.ts';
import { type Threads, onNode, startThreads, startThreadsNow, threadSupport } from './threads.ts';

/** A weight [N, K] packed into panels of NR output columns, [P][K][NR] (zeros past N); q8/q4 in
 *  panels of groups of 32 along K (codegen/wasm/kernels.ts QUANT_LAYOUT). */
export interface PackedWeight {
  readonly N: number;
  readonly K: number;
  readonly panels: number;
  /** Byte address in the memory. */
  readonly at: number;
  readonly dtype: 'f32' | 'bf16' | 'q8' | 'q4';
}

interface Exports {
  readonly MR: WebAssembly.Global;
  readonly NR: WebAssembly.Global;
  readonly SPLIT_FROM: WebAssembly.Global;
  readonly FMA: WebAssembly.Global;
  readonly GEMV_PANELS: WebAssembly.Global;
  readonly JOB: WebAssembly.Global;
  readonly QUANT_DOT_ROWS: WebAssembly.Global;
  gemm_f32(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  gemm_bf16(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  gemm_q8(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  gemm_q4(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  dot_q8?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  dot_q4?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  digits?(x: number, ldx: number, T: number, K: number, xd: number): number;
  work(s: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
/** Control words shared with the workers: [generation, done, quit], then one job of JOB ints each
 *  (the workers still count `done`; products wait on the job record's count instead). */
const CTL_GEN = 0, CTL_DONE = 1, CTL_QUIT = 2, CTL_JOBS = 4, JOB = 10;
/** A worker's job: its entry in the worker's function table, `work` (the product in the job record). */
const WORK = 2;
/** The job record in the module's memory (i32 fields: claim word, panels done, then the product). */
const JOB_CLAIM = 0, JOB_DONE = 1;

/** The worker's program (threads.ts runs it in Node and in browsers): the module on the same
 *  memory, then a loop over jobs woken by Atomics. */
const WORKER_MAIN = `({ module, memory, ctl: sab, slot }, ready) => {
const ctl = new Int32Array(sab);
const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
const fns = [ex.gemm_f32, ex.gemm_bf16, ex.work];
ready();
let gen = 0;
for (;;) {
  Atomics.wait(ctl, ${CTL_GEN}, gen);
  gen = Atomics.load(ctl, ${CTL_GEN});
  if (Atomics.load(ctl, ${CTL_QUIT})) break;
  const j = ${CTL_JOBS} + slot * ${JOB};
  if (ctl[j] >= 0) fns[ctl[j]](ctl[j + 1], ctl[j + 2], ctl[j + 3], ctl[j + 4], ctl[j + 5], ctl[j + 6], ctl[j + 7], ctl[j + 8]);
  Atomics.add(ctl, ${CTL_DONE}, 1);
  Atomics.notify(ctl, ${CTL_DONE});
}
}`;

export class WasmKernels {
  readonly memory: WebAssembly.Memory;
  private readonly ex: Exports;
  /** Rows per micro-tile and columns per panel (the module's constants). */
  readonly MR: number;
  readonly NR: number;
  /** The module's multiply-adds are fused (relaxed SIMD; runtime/wasm/module.ts picks the variant). */
  readonly fma: boolean;
  private readonly splitFrom: number;
  private readonly gemvPanels: number;
  /** q8/q4 products of at most this many rows take the integer-dot GEMV (0: the module has none). */
  readonly quantDotRows: number;
  /** The job record the threads share a product through (codegen/wasm/kernels.ts `work`). */
  private readonly job: Int32Array;
  /** Jobs shared so far (numbers the claim word). */
  private jobs = 0;
  /** Next free byte (the first 64 hold the job record; weights are never freed: they live as long
   *  as the backend). */
  private top = 64;
  private scratch = { at: 0, bytes: 0 };
  /** One widened bf16 panel per thread (the calling thread's first), `stride` bytes apart. */
  private panels = { at: 0, stride: 0 };
  private workers: Threads | null = null;
  private readonly ctl: Int32Array;

  /** `threads` counts the calling thread: 2 means one worker. Without shared memory here (see
   *  threads.ts) the memory is not shared, `module` must be threads.ts' unsharedModule of the
   *  kernels and `threads` 1. */
  constructor(private readonly module: WebAssembly.Module, readonly threads: number) {
    const shared = threadSupport().shared;
    if (!shared && threads > 1) throw new RuntimeError('RT303', [`${threads} wasm threads without shared memory`, 'a browser shares memory only with a cross-origin isolated page: pass threads: 1']);
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared });
    this.ex = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as Exports;
    this.MR = this.ex.MR.value as number;
    this.NR = this.ex.NR.value as number;
    this.splitFrom = this.ex.SPLIT_FROM.value as number;
    this.fma = this.ex.FMA.value === 1;
    this.job = new Int32Array(this.memory.buffer, this.ex.JOB.value as number, 12);
    this.gemvPanels = this.ex.GEMV_PANELS.value as number;
    this.quantDotRows = this.ex.QUANT_DOT_ROWS.value as number;
    this.ctl = new Int32Array(new (shared ? SharedArrayBuffer : ArrayBuffer)(4 * (CTL_JOBS + JOB * Math.max(1, threads))));
  }

  /** `bytes` of memory, 64-byte aligned, growing the memory as needed. */
  private alloc(bytes: number): number {
    const at = this.top;
    const end = at + Math.ceil(bytes / 64) * 64;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) {
        throw new RuntimeError('RT303', [`a wasm memory of ${(end / 2 ** 30).toFixed(2)} GiB (packed weights and scratch)`, 'one WebAssembly memory holds at most 4 GiB: use the cpu backend for this model']);
      }
      this.memory.grow(pages);
    }
    this.top = end;
    return at;
  }

  /** Packs W [N, K] (f32 or bf16 kept as is; f16 widened to f32) into panels in the memory;
   *  `transposed`: W is given as [K, N] (a product over an [in, out] matrix). */
  pack(w: Tensor, transposed = false): PackedWeight {
    const [N, K] = (transposed ? [w.shape[1], w.shape[0]] : w.shape) as [number, number];
    const NR = this.NR, panels = Math.ceil(N / NR);
    const dtype = w.dtype === 'bf16' ? 'bf16' : 'f32';
    const src = w.dtype === 'f32' || w.dtype === 'bf16' ? w.data : toF32(w);
    const at = this.alloc(panels * K * NR * (dtype === 'bf16' ? 2 : 4));
    const dst = dtype === 'bf16' ? new Uint16Array(this.memory.buffer, at, panels * K * NR) : new Float32Array(this.memory.buffer, at, panels * K * NR);
    // panel p holds W[p·NR + c, k] at p·K·NR + k·NR + c (runtime/wasm/pack.ts), copied as bits
    const bits = (a: Float32Array | Uint16Array, n: number) => (a instanceof Uint16Array ? a : new Uint32Array(a.buffer, a.byteOffset, n));
    packPanels(bits(dst, panels * K * NR), bits(src as Float32Array | Uint16Array, N * K), N, K, NR, transposed);
    return { N, K, panels, at, dtype };
  }

  /**
   * Packs a q8/q4 weight [N, K] into panels of QUANT_LAYOUT groups (codegen/wasm/kernels.ts):
   * codes regrouped as [group][k-quad][half][4 columns][4 k], q4 nibbles re-paired (column c low,
   * c + 4 high), scales widened from f16 to f32, and per column and group 2^20 · Σcode (wrapping
   * i32). Padding columns past N: codes 0 (q4: 8, code 0) and scales 0.
   */
  packQuant(w: QuantTensor): PackedWeight {
    const [N, K] = w.shape;
    const NR = this.NR, panels = Math.ceil(N / NR), G = K / QUANT_GROUP, L = QUANT_LAYOUT[w.dtype];
    if (NR !== 8 || !Number.isInteger(G)) throw new RangeError(`packQuant: K = ${K} is not a multiple of ${QUANT_GROUP}, or panels of ${NR} columns`);
    const at = this.alloc(panels * G * L.group);
    const bytes = new Uint8Array(this.memory.buffer, at, panels * G * L.group);
    const f32 = new Float32Array(this.memory.buffer, at, (panels * G * L.group) >> 2);
    const i32 = new Int32Array(this.memory.buffer, at, (panels * G * L.group) >> 2);
    bytes.fill(0);
    packQuantPanels(w.dtype === 'q4', w.codes, w.scales, N, K, L, bytes, f32, i32, F16_TO_F32, XQ_OFFSET);
    return { N, K, panels, at, dtype: w.dtype };
  }

  /** x's T rows (floats at byte `xAt`, `ldx` apart) at `at` as the product of `w` reads them: the
   *  integer-dot GEMV's digits (codegen/wasm/kernels.ts `digits`) where it applies and every row is
   *  finite, else row tiles [ceil(T/MR)][K][MR]; returns the product's PRODUCT code. `at` holds
   *  4·ceil(T/MR)·MR·K bytes (digits take 3.5·T·K). */
  private operand(w: PackedWeight, xAt: number, ldx: number, T: number, K: number, at: number): number {
    if ((w.dtype === 'q8' || w.dtype === 'q4') && T <= this.quantDotRows && this.ex.digits!(xAt, ldx, T, K, at)) return PRODUCT[`dot_${w.dtype}`];
    const MR = this.MR;
    const mem = new Float32Array(this.memory.buffer);
    // rows past T left as they are: their results are never read
    for (let t = 0, x0 = xAt >> 2, t0 = at >> 2; t < T; t++) {
      const base = t0 + (t - (t % MR)) * K + (t % MR), row = x0 + t * ldx;
      for (let k = 0; k < K; k++) mem[base + k * MR] = mem[row + k]!;
    }
    return PRODUCT[w.dtype];
  }

  /** Scratch for a product of T rows: x tiles [ceil(T/MR)·MR, K] then y [ceil(T/MR)·MR, P·NR]. */
  private reserve(bytes: number): number {
    if (this.scratch.bytes < bytes) this.scratch = { at: this.alloc(Math.max(bytes, 2 * this.scratch.bytes)), bytes: Math.max(bytes, 2 * this.scratch.bytes) };
    return this.scratch.at;
  }

  /** The threads' panel scratch for K (codegen/wasm/kernels.ts gemm_bf16); returns its address. */
  private panelScratch(K: number): number {
    const stride = Math.ceil(K * this.NR * 4 / 64) * 64;
    if (this.panels.stride < stride) this.panels = { at: this.alloc(stride * Math.max(1, this.threads)), stride };
    return this.panels.at;
  }

  /** y = x·Wᵀ + b: x [T, K] f32, bias [N] f32 or null; returns y [T, N]. */
  linear(w: PackedWeight, x: Float32Array, T: number, bias: Float32Array | null): Float32Array {
    const { N, K, panels } = w;
    const MR = this.MR, NR = this.NR;
    const Tpad = Math.ceil(T / MR) * MR, ldy = panels * NR;
    // x tiles (or digits), y, then x's rows as given
    const xAt = this.reserve(4 * Tpad * (K + ldy) + 4 * T * K);
    const yAt = xAt + 4 * Tpad * K, rowsAt = yAt + 4 * Tpad * ldy;
    new Float32Array(this.memory.buffer, rowsAt, T * K).set(x.subarray(0, T * K));
    const fn = this.operand(w, rowsAt, K, T, K, xAt);
    this.run(fn, [xAt, w.at, yAt, T, K, ldy], panels, T * K * N >= this.splitFrom);
    // the run may have grown the memory (a bf16 panel's scratch), which detaches an unshared one's buffer
    const ys = new Float32Array(this.memory.buffer, yAt, Tpad * ldy);
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
   */
  product(x: Float32Array, xo: number, xt: number, xk: number, T: number, K: number,
    w: Float32Array, wo: number, wn: number, wk: number, N: number): { y: Float32Array; ld: number } {
    const MR = this.MR, NR = this.NR, panels = Math.ceil(N / NR), Tpad = Math.ceil(T / MR) * MR, ld = panels * NR;
    const wAt = this.reserve(4 * (panels * K * NR + Tpad * K + Tpad * ld));
    const xAt = wAt + 4 * panels * K * NR, yAt = xAt + 4 * Tpad * K;
    const mem = new Float32Array(this.memory.buffer);
    // padding columns and rows keep whatever is there: their results are never read
    for (let n = 0; n < N; n++) {
      const base = (wAt >> 2) + Math.floor(n / NR) * K * NR + (n % NR);
      for (let k = 0, src = wo + n * wn; k < K; k++, src += wk) mem[base + k * NR] = w[src]!;
    }
    for (let t = 0; t < T; t++) {
      const base = (xAt >> 2) + (t - (t % MR)) * K + (t % MR);
      for (let k = 0, src = xo + t * xt; k < K; k++, src += xk) mem[base + k * MR] = x[src]!;
    }
    this.ex.gemm_f32(xAt, wAt, yAt, T, K, ld, 0, panels);
    return { y: mem.subarray(yAt >> 2, (yAt >> 2) + Tpad * ld), ld };
  }

  /** `bytes` of the memory for the caller's own use (never freed; see runtime/wasm/program.ts' Heap). */
  allocate(bytes: number): number {
    return this.alloc(bytes);
  }

  /**
   * y = x·Wᵀ with x and y in the memory: T rows of K floats at byte address `xAt`, `ldx` floats
   * apart; y rows at `yAt`, `ldy` floats apart, of which columns [0, panels·NR) are written (the
   * caller leaves room for a partial panel's padding columns). No bias.
   */
  linearAt(w: PackedWeight, xAt: number, ldx: number, T: number, yAt: number, ldy: number): void {
    const { K, N, panels } = w;
    const MR = this.MR, Tpad = Math.ceil(T / MR) * MR;
    const tiles = this.reserve(4 * Tpad * K);
    const fn = this.operand(w, xAt, ldx, T, K, tiles);
    this.run(fn, [tiles, w.at, yAt, T, K, ldy], panels, T * K * N >= this.splitFrom);
  }

  /**
   * Runs gemm `fn` over all panels; when `split`, the threads share it in chunks of panels through
   * the job record (codegen/wasm/kernels.ts `work`): the calling thread wakes the workers, takes
   * chunks itself, and waits only until every panel is done, so a worker that wakes late takes
   * fewer chunks (or none) instead of holding the product up. Chunks: for one row (decode) two
   * groups of the GEMV's panels, so every thread count computes each panel with the same kernel,
   * bit for bit; else about four per thread.
   */
  private run(fn: number, args: readonly number[], panels: number, split: boolean): void {
    const [x, w, y, T, K, ldy] = args as [number, number, number, number, number, number];
    // bf16 and dequantised q8/q4 panels widen into each thread's scratch
    const s = fn === PRODUCT.bf16 || fn === PRODUCT.q8 || fn === PRODUCT.q4 ? this.panelScratch(K) : 0;
    if (!split || this.threads < 2 || panels < 2) {
      const ex = this.ex;
      const call = [ex.gemm_f32, ex.gemm_bf16, ex.gemm_q8, ex.gemm_q4, ex.dot_q8, ex.dot_q4][fn];
      if (!call) throw new Error(`WasmKernels: the module has no product ${fn}`);
      call(x, w, y, T, K, ldy, 0, panels, s);
      return;
    }
    const n = this.startWorkers();
    const job = this.job;
    const chunk = Math.max(T === 1 ? 2 * this.gemvPanels : Math.ceil(panels / (4 * this.threads)), Math.ceil(panels / 0xfff0));
    // closed while the record is rewritten (every chunk of the last job is done: see below)
    const number = (++this.jobs & 0x7fff) << 16;
    Atomics.store(job, JOB_CLAIM, number | 0xffff);
    [0, fn, x, w, y, T, K, ldy, 0, panels, chunk].forEach((v, i) => Atomics.store(job, JOB_CLAIM + 1 + i, v));
    Atomics.store(job, JOB_CLAIM, number);
    for (let i = 0; i < n; i++) {
      this.ctl[CTL_JOBS + i * JOB] = WORK;
      this.ctl[CTL_JOBS + i * JOB + 1] = s + (i + 1) * this.panels.stride;
    }
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.ex.work(s);
    for (let done = Atomics.load(job, JOB_DONE); done < panels; done = Atomics.load(job, JOB_DONE)) Atomics.wait(job, JOB_DONE, done);
  }

  /** Each worker's data: the module, the memory, the control words and its job slot. */
  private workerData(): object[] {
    return Array.from({ length: this.threads - 1 }, (_, slot) => ({ module: this.module, memory: this.memory, ctl: this.ctl.buffer, slot }));
  }

  /** Starts the worker threads and resolves once they run; a browser needs this before the first
   *  product (in Node a product starts them if need be). */
  async start(): Promise<void> {
    if (!this.workers && this.threads > 1) this.workers = await startThreads(WORKER_MAIN, this.workerData());
  }

  /** The workers (started now in Node); returns their count. */
  private startWorkers(): number {
    if (!this.workers) {
      if (!onNode()) throw new Error('WasmKernels: await start() before the first product');
      this.workers = startThreadsNow(WORKER_MAIN, this.workerData());
    }
    return this.workers.count;
  }

  /** Stops the workers. */
  close(): void {
    Atomics.store(this.ctl, CTL_QUIT, 1);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.workers?.close();
    this.workers = null;
  }
}
