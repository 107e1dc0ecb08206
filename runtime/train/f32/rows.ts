// The f32 engine's row-wise kernels on WebAssembly SIMD (codegen/wasm/train-rows.ts; the bytes in
// ./rows-module.ts): one instance on the calling thread over a memory of its own. Each call lays its
// operands out (16-byte aligned), copies the inputs in, runs one or two kernels and copies the
// results out into pool arrays, so the records (./ops.ts, ./seq.ts) keep their typed-array contracts.
// Where the engine has no WebAssembly SIMD the records run their JS loops instead.
// Given the product kernels' module, an instance of it runs on the same memory: `mm`, every product
// of the engine, its operands copied in and packed into tiles and panels by the module's `pack`
// (WasmKernels.product packs them in JS: about as long as a 64×64×64 product takes, and ~40 % of a
// large product's time on one thread, all of it on the calling thread); the same micro-kernels, so
// the same sums; large ones split over threads (./split.ts) where the memory is shared. A product's
// result stays in place until the next product: the row calls lay out past it. Bytes [0, 64) hold
// the products' job record. `space` lays out ./heads.ts' routines (the SSD, attention, the conv's
// backward) on the same memory, their units shared by the same threads.

import { copyRows } from './gemm.ts';
import { f32 } from './pool.ts';
import { rowModules } from './rows-compiled.ts';
import { HELPERS, type HeadEnv, type HeadSpace, ROUTINES } from './heads.ts';
import { ProductThreads } from './split.ts';
import { threadSupport, threadsHere, unsharedModule } from '../../wasm/threads.ts';

type F32 = Float32Array;
type Fn = (...a: number[]) => void;

/** `rows` rows of `width` floats, row r at data[at + r·ld]: an operand read where it lies (a slice
 *  of a wider buffer's columns), copied straight into the kernels' memory. */
export class Strided {
  constructor(readonly data: F32, readonly at: number, readonly ld: number, readonly rows: number, readonly width: number) {}
  get length(): number { return this.rows * this.width; }
}
/** An input of the row kernels: contiguous, or rows of a wider array. */
export type Src = F32 | Strided;

export class RowKernels {
  private readonly ex: Record<string, Fn>;
  /** The product kernels on this memory: gemm_f32, work, their tile and panel sizes, the size from
   *  which a product is split over the threads. */
  private readonly gemm: { f: Fn; work: Fn; MR: number; NR: number; splitFrom: number; kex: Record<string, unknown> } | null = null;
  private threads: ProductThreads | null = null;
  /** Floats the caller keeps in this memory across calls (`arena`), at LOW; the layouts start past them. */
  private kept: F32 | null = null;
  private low = LOW;
  /** The next free byte of this call's layout; where the row calls start (past the last product). */
  private top = LOW;
  private base = LOW;

  constructor(private readonly rows: WebAssembly.Module, kernels: WebAssembly.Module | null, private readonly mem: WebAssembly.Memory) {
    this.ex = new WebAssembly.Instance(rows, { env: { memory: mem } }).exports as unknown as Record<string, Fn>;
    if (kernels) {
      const k = new WebAssembly.Instance(kernels, { env: { memory: mem } }).exports as unknown as Record<string, Fn | WebAssembly.Global>;
      const v = (n: string) => (k[n] as WebAssembly.Global).value as number;
      this.gemm = { f: k.gemm_f32 as Fn, work: k.work as Fn, MR: v('MR'), NR: v('NR'), splitFrom: v('SPLIT_FROM'), kex: k };
    }
  }

  /** Starts `n` − 1 workers for the large products (`kernels`: the module in its shared-memory form). */
  async startThreads(kernels: WebAssembly.Module, n: number): Promise<void> {
    if (n > 1 && this.gemm) this.threads = await ProductThreads.start(kernels, this.rows, this.mem, n, this.gemm.work);
  }

  /** Threads that share the products and the heads' routines, this one counted. */
  get threadCount(): number {
    return this.threads?.count ?? 1;
  }

  /** Ends the workers. */
  close(): void {
    this.threads?.close();
    this.threads = null;
  }

  /** `floats` floats of this memory below every call's layout, the same block each time unless it must
   *  grow (its values are then lost), for the train entry's arena (runtime/wasm/train.ts): operands
   *  that lie there contiguous are read in place and results written in place, with no copies in or
   *  out. Null where the memory is not shared (a view of it dies when it grows) or cannot grow so far. */
  arena(floats: number): F32 | null {
    if (!((this.mem.buffer as unknown) instanceof SharedArrayBuffer)) return null;
    if (this.kept && this.kept.length >= floats) return this.kept;
    const low = LOW + Math.ceil(floats / 4) * 16, need = low + 16 - this.mem.buffer.byteLength;
    try {
      if (need > 0) this.mem.grow(Math.ceil(need / 65536));
    } catch {
      return null;
    }
    this.low = this.base = this.top = low;
    return (this.kept = new Float32Array(this.mem.buffer, LOW, floats));
  }

  /** The byte address of `x` where it lies contiguous in the kept arena, else null (copied in). */
  private inPlace(x: Src): number | null {
    const k = this.kept;
    if (!k) return null;
    if (x instanceof Float32Array) return x.buffer === k.buffer ? x.byteOffset : null;
    return x.data.buffer === k.buffer && (x.ld === x.width || x.rows === 1) ? x.data.byteOffset + 4 * x.at : null;
  }

  /** Whether `mm` runs here. */
  get products(): boolean {
    return this.gemm !== null;
  }

  /** Y [T, N] = X·Wᵀ, X[t, k] = x[xo + t·xt + k·xk], W[n, k] = w[wo + n·wn + k·wk] (as Gemm.mm):
   *  a view of Y, rows `ld` apart, valid until the next product; `split`: over the threads from the
   *  kernels' SPLIT_FROM multiply-adds (a wake-up and a wait per 64×64×64 product bought nothing:
   *  attention's and the SSD's small products share their heads instead, ./heads.ts). */
  mm(x: F32, xo: number, xt: number, xk: number, T: number, K: number, w: F32, wo: number, wn: number, wk: number, N: number, split = false): { y: F32; ld: number } {
    const { f, MR, NR, splitFrom } = this.gemm!, panels = Math.ceil(N / NR), ld = panels * NR, Tpad = Math.ceil(T / MR) * MR;
    // each operand's span of its array, copied in as is, then packed from its strides
    const xs = (T - 1) * xt + (K - 1) * xk + 1, ws = (N - 1) * wn + (K - 1) * wk + 1;
    this.top = this.low;
    // an operand in the kept arena is packed from where it lies
    const xIn = x.buffer === this.kept?.buffer ? x.byteOffset + 4 * xo : null, wIn = w.buffer === this.kept?.buffer ? w.byteOffset + 4 * wo : null;
    const xa = xIn ?? this.room(xs), wa = wIn ?? this.room(ws), tiles = this.room(Tpad * K), pan = this.room(panels * K * NR), ya = this.room(Tpad * ld);
    this.base = this.top;
    const buf = this.mem.buffer;
    if (xIn === null) new Float32Array(buf, xa, xs).set(x.subarray(xo, xo + xs));
    if (wIn === null) new Float32Array(buf, wa, ws).set(w.subarray(wo, wo + ws));
    this.ex.pack!(xa, xt, xk, T, K, tiles, MR);
    this.ex.pack!(wa, wn, wk, N, K, pan, NR);
    if (split && this.threads && T * K * N >= splitFrom && panels > 1) this.threads.run(tiles, pan, ya, T, K, ld, panels);
    else f(tiles, pan, ya, T, K, ld, 0, panels);
    return { y: new Float32Array(buf, ya, Tpad * ld), ld };
  }

  /** The memory for ./heads.ts' routines (those with products only where `products`), laid out
   *  past the kept arena (byte 64 on without one): what the last product left there is gone. Their
   *  units are shared by the threads. */
  space(): HeadSpace {
    this.top = this.low;
    const { MR, NR, kex } = this.gemm ?? { MR: 1, NR: 1, kex: null };
    const env = (): HeadEnv => {
      const buf = this.mem.buffer;
      return { f: new Float32Array(buf), d: new Float64Array(buf), i: new Int32Array(buf), ...HELPERS, rex: this.ex, kex, MR, NR };
    };
    return {
      // on cache lines of their own (64 bytes): what one thread writes shares no line with another's
      alloc: (n, zero = true) => {
        this.top = Math.ceil(this.top / 64) * 64;
        const at = this.room(n);
        if (zero) new Float32Array(this.mem.buffer, at, n).fill(0);
        return at / 4;
      },
      env,
      run: (routine, units, scratch, args, shared = true) => {
        this.top = Math.ceil(this.top / 64) * 64;
        const per = Math.ceil(scratch / 16) * 16, n = this.threadCount, scr = this.room(n * per) / 4, E = env();
        if (shared && this.threads && units > 1) return this.threads.units(routine, units, scr, per, args, E);
        const a = [...args];
        for (let u = 0; u < units; u++) (ROUTINES[routine] as (...x: unknown[]) => void)(E, u, scr, a);
      },
    };
  }

  /** Room for n elements of `bytes` each (16-byte aligned), the memory grown to hold it. */
  private room(n: number, bytes = 4): number {
    const at = this.top;
    this.top = at + Math.ceil((n * bytes) / 16) * 16 + 16;
    const need = this.top - this.mem.buffer.byteLength;
    if (need > 0) this.mem.grow(Math.ceil(need / 65536));
    return at;
  }

  /** Lays out inputs (copied in, or read where they lie in the kept arena) and outputs (room,
   *  `zero`ed where asked), runs `body` with their addresses and returns the outputs copied out (the
   *  first into `into` where given: computed there in place where it lies in the kept arena apart
   *  from every input). Outputs given as [n, 8] are f64. */
  private call(ins: readonly Src[], outs: readonly (number | [number, 8])[], body: (a: number[]) => void, zero = false, into?: F32, scratch: readonly number[] = []): (F32 | Float64Array)[] {
    this.top = this.base;
    const placed = ins.map((x) => this.inPlace(x));
    const y0 = into && typeof outs[0] === 'number' ? this.inPlace(into) : null;
    const apart = y0 !== null && placed.every((a, i) => a === null || a + 4 * ins[i]!.length <= y0 || y0 + 4 * into!.length <= a);
    // then `scratch` floats each, passed to `body` last and not copied out
    const addr = [...ins.map((x, i) => placed[i] ?? this.room(x.length)),
      ...outs.map((o, i) => (i === 0 && apart ? y0! : typeof o === 'number' ? this.room(o) : this.room(o[0], 8))), ...scratch.map((n) => this.room(n))];
    const buf = this.mem.buffer;
    ins.forEach((x, i) => {
      if (placed[i] !== null) return;
      const to = new Float32Array(buf, addr[i]!, x.length);
      if (x instanceof Float32Array) to.set(x);
      else copyRows(x.data, x.at, x.ld, to, 0, x.width, x.rows, x.width);
    });
    if (zero) outs.forEach((o, i) => (typeof o === 'number' ? new Float32Array(buf, addr[ins.length + i]!, o) : new Float64Array(buf, addr[ins.length + i]!, o[0])).fill(0));
    body(addr);
    return outs.map((o, i) => {
      if (typeof o !== 'number') return new Float64Array(buf, addr[ins.length + i]!, o[0]).slice();
      if (i === 0 && apart) return into!;
      const y = (i === 0 && into) || f32(o, false);
      y.set(new Float32Array(buf, addr[ins.length + i]!, o));
      return y;
    });
  }

  /** y = silu(x) (into `into` where given; so below). */
  siluF(x: Src, into?: F32): F32 {
    return this.call([x], [x.length], ([a, y]) => this.ex.silu_f!(a!, y!, x.length), false, into)[0] as F32;
  }

  /** dx = g · silu'(x). */
  siluB(x: Src, g: Src, into?: F32): F32 {
    return this.call([x, g], [x.length], ([a, b, d]) => this.ex.silu_b!(a!, b!, d!, x.length), false, into)[0] as F32;
  }

  /** y = a ∘ b (same lengths). */
  mulF(a: Src, b: Src, into?: F32): F32 {
    return this.call([a, b], [a.length], ([p, q, y]) => this.ex.mul_f!(p!, q!, y!, a.length), false, into)[0] as F32;
  }

  /** da = g ∘ b, db = g ∘ a (same lengths). */
  mulB(a: F32, b: F32, g: F32): [F32, F32] {
    return this.call([a, b, g], [a.length, a.length], ([p, q, r, da, db]) => this.ex.mul_b!(p!, q!, r!, da!, db!, a.length)) as [F32, F32];
  }

  /** y = a + b (same lengths). */
  addF(a: Src, b: Src, into?: F32): F32 {
    return this.call([a, b], [a.length], ([p, q, y]) => this.ex.add_f!(p!, q!, y!, a.length), false, into)[0] as F32;
  }

  /** RMSNorm over runs of gs features of x (the weight w [D] repeating): y and 1/rms per run; with
   *  z, the gated norm's h = x·silu(z) normed instead (h returned too). */
  rmsF(x: F32, z: F32 | null, w: F32, D: number, gs: number, eps: number, into?: F32): { y: F32; inv: F32; h: F32 | null } {
    const runs = x.length / gs, ins = z ? [x, z, w] : [x, w], outs = z ? [x.length, runs, x.length] : [x.length, runs];
    const r = this.call(ins, outs, (a) => {
      const [xa, wa, ya, inva, ha] = z ? [a[0]!, a[2]!, a[3]!, a[4]!, a[5]!] : [a[0]!, a[1]!, a[2]!, a[3]!, 0];
      if (z) this.ex.gate_f!(xa, a[1]!, ha, x.length);
      this.ex.rms_f!(z ? ha : xa, wa, ya, inva, runs, gs, D, eps);
    }, false, into) as F32[];
    return { y: r[0]!, inv: r[1]!, h: z ? r[2]! : null };
  }

  /** RMSNorm's backward from the normed input h (x, or the gated norm's h with x and z for the
   *  gate's backward): dh (or dx, dz through the gate) and dw [D] summed in f64. */
  rmsB(dy: F32, h: F32, inv: F32, w: F32, D: number, gs: number, gate: { x: F32; z: F32 } | null): { dx: F32; dz: F32 | null; dw: F32 } {
    const runs = h.length / gs, n = h.length;
    const ins = gate ? [dy, h, inv, w, gate.x, gate.z] : [dy, h, inv, w];
    const outs: (number | [number, 8])[] = gate ? [[D, 8], n, n, n] : [[D, 8], n];
    const r = this.call(ins, outs, (a) => {
      const dwa = a[ins.length]!, dha = a[ins.length + 1]!;
      // the gated form's dh lies in its own room, then goes through the gate into dx, dz
      this.ex.rms_b!(a[0]!, a[1]!, a[2]!, a[3]!, dha, dwa, runs, gs, D);
      if (gate) this.ex.gate_b!(a[4]!, a[5]!, dha, a[ins.length + 2]!, a[ins.length + 3]!, n);
    }, true);
    const dw = Float32Array.from(r[0]!);
    return gate ? { dx: r[2] as F32, dz: r[3] as F32, dw } : { dx: r[1] as F32, dz: null, dw };
  }

  /** rmsB from the norm's input alone, in one call: 1/rms (and the gated norm's h = x·silu(z))
   *  recomputed here, then the backward (and the gate's: dz). */
  rmsBx(dy: F32, x: F32, z: F32 | null, w: F32, D: number, gs: number, eps: number): { dx: F32; dz: F32 | null; dw: F32 } {
    const n = x.length, runs = n / gs, ins = z ? [dy, x, z, w] : [dy, x, w];
    const r = this.call(ins, z ? [[D, 8], n, n] : [[D, 8], n], (a) => {
      const [dya, xa, za, wa] = z ? a : [a[0]!, a[1]!, 0, a[2]!], o = ins.length;
      const [dwa, dxa, dza, ya, inva, ha, dha] = z ? a.slice(o) : [a[o]!, a[o + 1]!, 0, a[o + 2]!, a[o + 3]!, 0, 0];
      if (z) this.ex.gate_f!(xa!, za!, ha!, n);
      this.ex.rms_f!(z ? ha! : xa!, wa!, ya!, inva!, runs, gs, D, eps);
      this.ex.rms_b!(dya!, z ? ha! : xa!, inva!, wa!, z ? dha! : dxa!, dwa!, runs, gs, D);
      if (z) this.ex.gate_b!(xa!, za!, dha!, dxa!, dza!, n);
    }, true, undefined, z ? [n, runs, n, n] : [n, runs]);
    return { dx: r[1] as F32, dz: z ? r[2] as F32 : null, dw: Float32Array.from(r[0]!) };
  }

  /** The causal depthwise conv of x [T, C] by taps wt [K, C] (+ b), per sequence. */
  convF(x: F32, wt: F32, b: F32 | null, C: number, K: number, seqs: readonly { start: number; len: number }[], into?: F32): F32 {
    const ins = b ? [x, wt, b] : [x, wt];
    return this.call(ins, [x.length], (a) => {
      const y = a[ins.length]!;
      for (const { start, len } of seqs) this.ex.conv_f!(a[0]!, a[1]!, b ? a[2]! : 0, b ? 1 : 0, y, start, len, C, K);
    }, true, into)[0] as F32;
  }
}

/** Bytes below the layouts: the products' job record (codegen/wasm/job.ts, 48 bytes at 0). */
const LOW = 64;

/** The row kernels on this thread over an unshared memory (with `kernels`, the product kernels'
 *  module in its unshared form: the products too, on this thread alone), or null where the engine
 *  has no WebAssembly SIMD. */
export function rowKernels(kernels: WebAssembly.Module | null = null): RowKernels | null {
  const m = rowModules();
  return m ? new RowKernels(m.unshared, kernels, new WebAssembly.Memory({ initial: 16, maximum: 65536 })) : null;
}

/** The row kernels and every product on `threads` threads (the calling one counts) over a shared
 *  memory, from the product kernels' bytes (their variants: the first the engine runs, as
 *  runtime/wasm/module.ts picks); one thread over an unshared memory where this thread may not
 *  share memory or wait for others. */
export async function rowKernelsWithProducts(kernels: Uint8Array | readonly Uint8Array[], threads: number): Promise<RowKernels | null> {
  if (!rowModules()) return null;
  const { wasmModule } = await import('../../wasm/module.ts');
  const support = threadSupport(), n = threadsHere(threads, support);
  if (!support.shared || n < 2) return rowKernels(await wasmModule(kernels, unsharedModule));
  return rowKernelsOver(await wasmModule(kernels), n);
}

/** The row kernels and every product on `threads` threads over a shared memory, from the product
 *  kernels' module compiled in its shared-memory form (a WasmKernels' own: runtime/wasm/train.ts). */
export async function rowKernelsOver(kernels: WebAssembly.Module, threads: number): Promise<RowKernels | null> {
  const m = rowModules();
  if (!m) return null;
  const r = new RowKernels(new WebAssembly.Module(m.bytes as Uint8Array<ArrayBuffer>), kernels, new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true }));
  await r.startThreads(kernels, threads);
  return r;
}

