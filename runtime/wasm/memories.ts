// The wasm backend's WebAssembly memories: memory 0 (the job record, the arena, state slots and
// scratch, and the packed weights that leave it room) and the weight memories (packed panels and a
// staging area for the product in flight), each with the kernel module instantiated on it on the
// calling thread; where each weight goes, and every allocation within the per-memory limit. The
// products over them: runtime/wasm/kernels.ts.
// With memory64 (runtime/wasm/memory64.ts) there is one memory and two regions of it: region 0, the
// first 4 GiB (2 where the engine's maximum is 4), is memory 0's (the job record, arena, slots,
// scratch and weights as above: the kernels address it with i32 offsets), and region 1 from there
// holds the other weights, read in place (a weight's base is an i64 argument; no staging).

import { RuntimeError } from '../errors.ts';
import type { MemoryReport } from '../targets.ts';
import { type Memory64Support, grow64, memory64Bytes, newMemory64 } from './memory64.ts';
import { READ_AHEAD_FLAG } from './layout.ts';

const flag = (memory: WebAssembly.Memory, on: boolean) => Atomics.store(new Int32Array(memory.buffer, READ_AHEAD_FLAG, 1), 0, on ? 1 : 0);

/** The kernel module's exports (codegen/wasm/kernels.ts). */
export interface Exports {
  readonly MR: WebAssembly.Global;
  readonly NR: WebAssembly.Global;
  readonly SPLIT_FROM: WebAssembly.Global;
  readonly FMA: WebAssembly.Global;
  readonly GEMV_PANELS: WebAssembly.Global;
  readonly JOB: WebAssembly.Global;
  readonly QUANT_DOT_ROWS: WebAssembly.Global;
  readonly A8_TILE_Q4: WebAssembly.Global;
  readonly A8_TILE_Q8: WebAssembly.Global;
  // memory64 form: every product takes the weight's base (a BigInt) last (codegen/wasm/addr.ts)
  gemm_f32(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, wb?: bigint): void;
  gemm_bf16(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  gemm_q8(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  gemm_q4(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  dot_q8?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  dot_q4?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  digits?(x: number, ldx: number, T: number, K: number, xd: number, signed: number): number;
  dot8_q8?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  dot8_q4?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void;
  digits8_q8?(x: number, ldx: number, T: number, K: number, xd: number, MR: number): number;
  digits8_q4?(x: number, ldx: number, T: number, K: number, xd: number, MR: number): number;
  digits8s_q8?(x: number, ldx: number, T: number, K: number, xd: number, MR: number): number;
  gemm8_q4?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  gemm8_q8?(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number): void;
  round8(x: number, ldx: number, T: number, K: number, out: number, MR: number): number;
  /** x's T rows as the products' row tiles (codegen/wasm/kernels.ts `tiles`). */
  tiles(x: number, ldx: number, T: number, K: number, out: number, MR: number): void;
  work(s: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
/** What one WebAssembly memory (32-bit addresses) can hold: the default per-memory limit. */
export const MEMORY_BYTES = MAX_PAGES * PAGE;
/** Memory 0 takes packed weights only while they leave it this share of the limit (1 GiB of 4) for
 *  what grows after loading: the arena (with the logits of a long prompt), the state slots of the
 *  open sequences (Bamba-9B: ~120 MB each), per-run tables, the products' scratch, embedding tables'
 *  f32 copies. A weight that does not fit goes to a weight memory instead, at the cost of copying x
 *  in and y out (T·(K + N) floats against K·N weights read). Memory 0 itself may grow to 4 GiB
 *  whatever the limit: those needs are the run's, not the loader's to bound. */
export const MEMORY0_RESERVE = 1 / 4;
/** A weight memory takes weights only while they leave it this share of the limit (512 MiB of 4)
 *  for its staging: x's row tiles, the threads' widened panels and (in chunks of panels, if need be)
 *  y; and at least what a product of STAGED_ROWS rows over each of its weights needs (which matters
 *  for small limits only). */
export const STAGING_RESERVE = 1 / 8;
const STAGED_ROWS = 128;

/** One WebAssembly memory and the kernel module instantiated on it on the calling thread. */
export interface Mem {
  readonly memory: WebAssembly.Memory;
  readonly ex: Exports;
  /** Its index (0: the arena's; with memory64, the region's). */
  readonly index: number;
  /** The job record the threads share a product over this memory's weights through. */
  readonly job: Int32Array;
  /** Next free byte (the first 64 hold the job record; nothing is freed: weights live as long as
   *  the backend, and the blocks handed out for the arena are reused by runtime/wasm/program.ts' Heap). */
  top: number;
  /** Bytes of packed weights here, and how many. */
  weightBytes: number;
  weights: number;
  /** The largest K of its weights that widen into the panel scratch (bf16, q8, q4), and the staging
   *  its weights need at least (`stagingNeed`). */
  maxK: number;
  need: number;
  /** The product in flight's scratch (x tiles or digits, then y). */
  scratch: { at: number; bytes: number };
  /** One widened bf16 (or dequantised q8/q4) panel per thread (the calling thread's first), `stride` bytes apart. */
  panels: { at: number; stride: number };
}

export class WasmMemories {
  /** Memory 0, then the weight memories. */
  readonly list: Mem[] = [];
  /** Bytes one memory may reach (whole pages; LoadOptions.wasmMemoryBytes). */
  readonly memoryBytes: number;
  /** memory64: where region 1 starts (the end of what i32 offsets address), and the memory's most bytes. */
  private readonly low: number;
  private readonly most: number;
  /** The product kernels read ahead (layout.ts READ_AHEAD_FLAG; `readAhead`). */
  private ahead = true;
  /** Columns per panel and panels per GEMV group (the module's constants). */
  private readonly NR: number;
  private readonly gemvPanels: number;

  /** Memory 0 with the module on it; `onAdd` is told of every memory added after it. */
  constructor(private readonly module: WebAssembly.Module, private readonly shared: boolean, private readonly threads: number,
    memoryBytes: number, private readonly onAdd: () => void, readonly memory64: Memory64Support | null = null) {
    if (!Number.isSafeInteger(memoryBytes) || memoryBytes < PAGE || memoryBytes > MEMORY_BYTES) {
      throw new RuntimeError('RT303', [`wasmMemoryBytes ${memoryBytes}`, `give an integer from ${PAGE} (64 KiB) to ${MEMORY_BYTES} (4 GiB, the default)`], { key: 'wasmMemoryBytes' });
    }
    this.memoryBytes = Math.floor(memoryBytes / PAGE) * PAGE;
    this.most = memory64 ? memory64Bytes(memory64) : MEMORY_BYTES;
    this.low = Math.min(MEMORY_BYTES, Math.floor(this.most / 2 / PAGE) * PAGE);
    const m = this.add();
    this.NR = m.ex.NR.value as number;
    this.gemvPanels = m.ex.GEMV_PANELS.value as number;
  }

  /** Where the packed weights are, memory by memory (memory 0 first). */
  report(): MemoryReport[] {
    if (this.memory64) {
      const sum = (f: (m: Mem) => number) => this.list.reduce((a, m) => a + f(m), 0);
      return [{ memory: 0, bytes: this.list[0]!.memory.buffer.byteLength, weightBytes: sum((m) => m.weightBytes), weights: sum((m) => m.weights), address: 'i64' }];
    }
    return this.list.map((m) => ({ memory: m.index, bytes: m.memory.buffer.byteLength, weightBytes: m.weightBytes, weights: m.weights }));
  }

  /** A new memory with the module on it. */
  private add(): Mem {
    if (this.memory64 && this.list.length) {
      // region 1: the one memory and its instance, from `low` on
      const m0 = this.list[0]!;
      const m: Mem = { ...m0, index: 1, top: this.low, weightBytes: 0, weights: 0, maxK: 0, need: 0, scratch: { at: 0, bytes: 0 }, panels: { at: 0, stride: 0 } };
      this.list.push(m);
      return m;
    }
    let memory: WebAssembly.Memory;
    try {
      memory = this.memory64 ? newMemory64(this.memory64, this.shared) : new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: this.shared });
    } catch (e) {
      throw new RuntimeError('RT303', [`wasm memory ${this.list.length}: the engine refused a new WebAssembly.Memory (${(e as Error).message})`, 'the machine is out of memory (or address space) for this model: quantize it (quantize: \'q4\') or use a smaller one'], {}, { cause: e });
    }
    const ex = new WebAssembly.Instance(this.module, { env: { memory } }).exports as unknown as Exports;
    const m: Mem = { memory, ex, index: this.list.length, job: new Int32Array(memory.buffer, ex.JOB.value as number, 14), top: 64, weightBytes: 0, weights: 0, maxK: 0, need: 0, scratch: { at: 0, bytes: 0 }, panels: { at: 0, stride: 0 } };
    this.list.push(m);
    flag(memory, this.ahead);
    if (m.index > 0) this.onAdd();
    return m;
  }

  /** Whether the product kernels read ahead (runtime/wasm/layout.ts READ_AHEAD_FLAG), in every
   *  memory, those added later too (a worker reads it in the memory, so it needs no restart). */
  get readAhead(): boolean {
    return this.ahead;
  }

  set readAhead(on: boolean) {
    this.ahead = on;
    for (const m of this.list) flag(m.memory, on);
  }

  /** `bytes` of memory `m`, 64-byte aligned, growing it as needed, within its cap. */
  alloc(m: Mem, bytes: number, what: string): number {
    const at = this.grown(m, bytes, what);
    m.top = at + Math.ceil(bytes / 64) * 64;
    return at;
  }

  /** The most bytes `m` may reach: a weight memory the limit; memory 0 4 GiB (its weights stay
   *  within the limit, `place`; what a run needs besides is not the loader's to bound). */
  cap(m: Mem): number {
    if (this.memory64) return m.index === 0 ? this.low : this.most;
    return m.index === 0 ? MEMORY_BYTES : this.memoryBytes;
  }

  /** Where `bytes` from `at` end in `m`, the memory grown to hold them (not yet taken). */
  private grown(m: Mem, bytes: number, what: string, at = m.top): number {
    const end = at + Math.ceil(bytes / 64) * 64;
    const i = m.index;
    if (end > this.cap(m)) {
      if (this.memory64 && i > 0) throw new RuntimeError('RT303', [`a memory64 memory of ${end} bytes (${what})`, `this engine's memory64 holds at most ${this.most} bytes: quantize the model (quantize: 'q4') or use a smaller one`]);
      const limited = i > 0 && this.memoryBytes < MEMORY_BYTES;
      throw new RuntimeError('RT303', [`wasm memory ${i} of ${(end / 2 ** 20).toFixed(1)} MiB (${what})`, `one memory holds at most ${(this.cap(m) / 2 ** 20).toFixed(1)} MiB${limited ? ' (the load option wasmMemoryBytes)' : ''}${i === 0 ? ': memory 0 keeps the arena and state slots: fewer sequences, a smaller capacity or shorter prompts need less' : ': prefill in shorter pieces'}`], limited ? { key: 'wasmMemoryBytes' } : {});
    }
    const have = m.memory.buffer.byteLength;
    if (end > have) {
      try {
        if (this.memory64) grow64(this.memory64, m.memory, Math.ceil((end - have) / PAGE));
        else m.memory.grow(Math.ceil((end - have) / PAGE));
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        throw new RuntimeError('RT303', [`growing wasm memory ${i} to ${end} bytes (${what})`, `the machine could not allocate ${end - have} more bytes (${e.message}): free memory, quantize the model (quantize: 'q4') or use a smaller one`], {}, { cause: e });
      }
    }
    return at;
  }

  /** The staging a weight memory holds at least for a weight [N, K] of `dtype`: the threads' panel
   *  scratch, x tiles of STAGED_ROWS rows and y for a chunk of as many rows and 2 GEMV panel groups. */
  private stagingNeed(K: number, dtype: string): number {
    const panel = Math.ceil(2 * K * this.NR * 4 / 64) * 64;
    return (dtype === 'f32' ? 0 : panel * Math.max(1, this.threads)) + 4 * STAGED_ROWS * (K + 2 * this.gemvPanels * this.NR) + 128;
  }

  /**
   * Memory and address for a packed weight of `bytes` ([N, K] of `dtype`), the memory at least `tail`
   * bytes longer than its end (a kernel's read-ahead): memory 0 while its
   * weights leave it MEMORY0_RESERVE of the limit, else the newest weight memory while they leave it
   * its staging (STAGING_RESERVE, or what its weights need), else a new weight memory.
   */
  place(bytes: number, K: number, dtype: string, tail = 0): { m: Mem; mem: number; at: number } {
    const size = Math.ceil(bytes / 64) * 64;
    const need = this.stagingNeed(K, dtype);
    const fits = (m: Mem) => m.index === 0
      ? m.top + size <= Math.floor(this.memoryBytes * (1 - MEMORY0_RESERVE))
      : m.top + size + Math.max(Math.floor(this.memoryBytes * STAGING_RESERVE), m.need, need) <= this.memoryBytes;
    const last = this.list.at(-1)!;
    let m = fits(this.list[0]!) ? this.list[0]! : last.index > 0 && (this.memory64 || fits(last)) ? last : null;
    if (!m && this.memory64) m = this.add();
    if (!m) {
      const most = this.memoryBytes - 64 - Math.max(Math.floor(this.memoryBytes * STAGING_RESERVE), need);
      if (size > most) {
        throw new RuntimeError('RT303', [`a packed weight of ${(bytes / 2 ** 20).toFixed(2)} MiB`, `a wasm weight memory of ${(this.memoryBytes / 2 ** 20).toFixed(2)} MiB${this.memoryBytes < MEMORY_BYTES ? ' (the load option wasmMemoryBytes)' : ''} holds at most ${(Math.max(0, most) / 2 ** 20).toFixed(2)} MiB of it beside its staging: quantize it (quantize: 'q8' or 'q4')`], this.memoryBytes < MEMORY_BYTES ? { key: 'wasmMemoryBytes' } : {});
      }
      m = this.add();
    }
    const at = this.alloc(m, bytes, 'packed weights');
    // `tail` bytes past the weight readable (what follows is not the weight's, but the memory ends no sooner)
    if (tail) this.grown(m, tail, 'the read-ahead past packed weights', m.top);
    m.weightBytes += size;
    m.weights++;
    if (m.index > 0) m.need = Math.max(m.need, need);
    // memory64: every product runs in region 0, its panel scratch there
    const runs = this.memory64 ? this.list[0]! : m;
    if (dtype !== 'f32') runs.maxK = Math.max(runs.maxK, K);
    return { m, mem: m.index, at };
  }

  /** Scratch of `bytes` in `m` for a product (memory 0: x tiles [ceil(T/MR)·MR, K] then y
   *  [ceil(T/MR)·MR, P·NR]; a weight memory: its staging), grown in place where it is the last block. */
  reserve(m: Mem, bytes: number): number {
    if (m.scratch.bytes < bytes) {
      const at = this.stagingAt(m);
      const want = Math.max(bytes, 2 * m.scratch.bytes);
      const size = Math.ceil((at + want <= this.cap(m) ? want : bytes) / 64) * 64;
      this.grown(m, size, 'the scratch of a product', at);
      m.scratch = { at, bytes: size };
      m.top = at + size;
    }
    return m.scratch.at;
  }

  /** Where `m`'s scratch starts when it grows: in place where it is the last block, else at the top. */
  stagingAt(m: Mem): number {
    return m.scratch.bytes > 0 && m.scratch.at + m.scratch.bytes === m.top ? m.scratch.at : m.top;
  }

  /** The threads' panel scratch in `m` for K, two widened panels each (codegen/wasm/kernels.ts gemm_bf16); returns its address.
   *  Sized for the memory's longest K at once, never moved after: a worker that finishes its last
   *  chunk of one product late can go on to claim chunks of the next with the scratch it was given
   *  for the first (runtime/wasm/kernels.ts run), which must therefore still be its own. */
  panelScratch(m: Mem, K: number): number {
    const stride = Math.ceil(2 * Math.max(K, m.maxK) * this.NR * 4 / 64) * 64;
    if (m.panels.stride < stride) m.panels = { at: this.alloc(m, stride * Math.max(1, this.threads), 'the threads\' panel scratch'), stride };
    return m.panels.at;
  }
}
