// The `wasm` backend: matrix products in WebAssembly SIMD (runtime/wasm/kernels.ts, over weights
// packed into panels in shared memory, split across worker threads), every other kernel family and
// the matmul prologue and epilogue stages through the CPU reference implementations
// (runtime/cpu/families.ts) on the same arena and state slots, except the chunked SSD and prefill
// attention, whose work runs as matrix products on the same kernels (runtime/wasm/ssd.ts, attention.ts). It is the CPU backend with its
// products replaced, so the rest stays exactly the reference.

import { CpuBackend } from '../cpu/backend.ts';
import { CPU_FAMILIES, type Ctx, type Impl } from '../cpu/families.ts';
import { exprLeaves } from '../expr.ts';
import { type Entry, type Family, type Kernel, type Program, weightsRead } from '../program.ts';
import { readF32, type Tensor } from '../tensor.ts';
import { type PackedWeight, WasmKernels } from './kernels.ts';
import { ssdChunkedWasm } from './ssd.ts';
import { attentionWasm } from './attention.ts';
import { RuntimeError } from '../errors.ts';
import { threadSupport, threadsHere, unsharedModule } from './threads.ts';

/**
 * The wasm backend as this thread can run it: `threads` (default: threads.ts' defaultThreads) where
 * it may share memory with workers and wait for them (Node; a cross-origin isolated page's worker),
 * else one, over a memory that is not shared where there is no shared memory (a page that is not
 * cross-origin isolated), with the module's memory import rewritten to match. The workers are
 * running when it resolves.
 */
export async function openWasmBackend(program: Program, kernels: Uint8Array | WebAssembly.Module, threads?: number): Promise<WasmBackend> {
  const support = threadSupport();
  let module: WebAssembly.Module;
  if (kernels instanceof WebAssembly.Module) {
    if (!support.shared) throw new RuntimeError('RT303', ['a compiled wasm kernel module without shared memory (a page that is not cross-origin isolated)', 'pass the module\'s bytes (wasmKernels: Uint8Array), which are rewritten for an unshared memory']);
    module = kernels;
  } else {
    module = await WebAssembly.compile((support.shared ? kernels : unsharedModule(kernels)) as Uint8Array<ArrayBuffer>);
  }
  const backend = new WasmBackend(program, module, threadsHere(threads, support));
  try {
    await backend.start();
  } catch (e) {
    backend.dispose();
    throw e;
  }
  return backend;
}

export class WasmBackend extends CpuBackend {
  override readonly name: string = 'wasm';
  private readonly kernels: WasmKernels;
  /** Weights read as a matmul's `w` ([N, K]); those read by nothing else keep no host copy. */
  private readonly products = new Set<string>();
  private readonly elsewhere: Set<string>;
  private readonly packed = new WeakMap<Tensor, PackedWeight>();
  /** The chunked SSD and prefill attention as matrix products on the wasm kernels; the rest as the CPU engine runs them. */
  override readonly families: Readonly<Record<Family, Impl>> = { ...CPU_FAMILIES, ssd: (k, c) => this.ssd(k, c), attention: (k, c) => this.attention(k, c) };

  /** `module`: the assembled kernel module (codegen/wasm/); `threads` counts the calling thread. */
  constructor(program: Program, module: WebAssembly.Module, threads: number) {
    super(program);
    this.kernels = new WasmKernels(module, threads);
    const rest: Entry[] = [];
    for (const e of Object.values(program.entries)) {
      const kernels = e.kernels.map((k) => {
        const w = k.inputs.w;
        if (k.family !== 'matmul' || k.attrs.transposed || !w || !('weight' in w)) return k;
        this.products.add(w.weight);
        const { w: _, ...inputs } = k.inputs;
        return { ...k, inputs };
      });
      rest.push({ ...e, kernels });
    }
    // what reads a weight other than as a product's matrix: other kernels, stages, derived weights
    this.elsewhere = weightsRead(Object.fromEntries(rest.map((e, i) => [i, e])));
    for (const d of program.derived) {
      const leaves = d.from.kind === 'concat' ? d.from.parts : exprLeaves(d.from.body).flatMap((l) => (l.op === 'w' ? [l.name] : []));
      for (const p of leaves) this.elsewhere.add(p);
    }
  }

  protected override store(name: string, t: Tensor): void {
    if (!this.products.has(name) || t.shape.length !== 2 || t.dtype === 'i32') return super.store(name, t);
    const p = this.kernels.pack(t);
    // a stand-in for a weight only products read: the packed panels are its one copy
    const kept = this.elsewhere.has(name) ? t : { dtype: t.dtype, shape: t.shape, data: new Float32Array(0) };
    this.packed.set(kept, p);
    super.store(name, kept);
  }

  override linear(x: Float32Array, rows: number, K: number, w: Tensor, b: Tensor | null, split: boolean): Float32Array {
    const p = this.packed.get(w);
    if (!p) return super.linear(x, rows, K, w, b, split);
    if (p.K !== K || x.length !== rows * K) throw new RangeError(`linear: weight [${p.N}, ${p.K}] does not match x of ${rows} rows of K=${K}`);
    const bias = b ? readF32(b, 0, p.N, new Float32Array(p.N)) : null;
    return this.kernels.linear(p, x, rows, bias);
  }

  private ssd(k: Kernel, c: Ctx): void {
    const { H, P, G, N } = k.sizes as { H: number; P: number; G: number; N: number };
    const [x, dt, A, B, C, D] = ['x', 'dt', 'A', 'B', 'C', 'D'].map((n) => c.operand(k, n)) as Float32Array[];
    c.write(k.outputs.y!, ssdChunkedWasm(this.kernels, x!, dt!, A!, B!, C!, D!, { H, P, G, N }, k.sizes.chunk!, c.seqs, c.states(k.state!)));
  }

  private attention(k: Kernel, c: Ctx): void {
    const { H, KV, Dh } = k.sizes as { H: number; KV: number; Dh: number };
    const [q, kk, v] = ['q', 'k', 'v'].map((n) => c.operand(k, n)) as Float32Array[];
    c.write(k.outputs.y!, attentionWasm(this.kernels, q!, kk!, v!, c.T, H, KV, Dh, k.attrs.scale as number, c.seqs, c.caches(k.state!)));
  }

  /** Threads the products run on (the calling thread counts). */
  override get threads(): number {
    return this.kernels.threads;
  }

  /** Starts the worker threads (before the first product: a browser's workers start only while
   *  this thread runs its event loop). */
  start(): Promise<void> {
    return this.kernels.start();
  }

  override dispose(): void {
    super.dispose();
    this.kernels.close();
  }
}
