// AdamW and the global gradient norm of ./optim.ts on WebAssembly SIMD: the row kernels' module
// (codegen/wasm/train-rows.ts `adamw`, `sumsq`) computes in f64x2 the same operations in the same
// order as adamwStep and sumSquares in JS doubles, so the masters and moments are adamwStep's bit
// for bit and the norm is globalNorm's. The masters and both moments live in a memory of their own,
// sized once for the state (it never grows, so views of it stay valid), with room for each gradient
// beside them: the loop moves a state's arrays there at its first step (./trainer.ts: the state's
// params become views of this memory, with the same values) and never copies them again; a step
// copies each gradient in once. One thread: the update streams ~16 bytes a parameter.

import { rowsModule } from './f32/rows-compiled.ts';
import { type AdamWConfig, type ParamState, decays } from './optim.ts';

/** The most one memory holds (wasm32: 65,536 pages of 64 KiB); a larger state stays on ./optim.ts. */
const MAX_PAGES = 65536;

type Fn = (...a: number[]) => number;
/** A parameter's four arrays in the memory, byte offsets (16-byte aligned). */
interface Place { readonly n: number; readonly w: number; readonly m: number; readonly v: number; readonly g: number }

export class WasmAdamW {
  /** Each parameter's place by name. */
  private readonly index: ReadonlyMap<string, number>;

  private constructor(private readonly ex: Record<'adamw' | 'sumsq', Fn>, private readonly mem: WebAssembly.Memory,
    private readonly places: readonly Place[],
    /** The masters and moments as views of the memory (the state's params once moved here). */
    readonly params: readonly ParamState[]) {
    this.index = new Map(params.map((p, i) => [p.name, i]));
  }

  /** `params` copied into a memory of their own; null where the engine has no WebAssembly SIMD or
   *  the state does not fit one memory (./optim.ts in JS then runs the same steps). */
  static open(params: readonly ParamState[]): WasmAdamW | null {
    const module = rowsModule();
    if (!module) return null;
    let top = 64;
    const room = (n: number) => { const at = top; top += Math.ceil(n / 4) * 16; return at; };
    const places = params.map((p) => { const n = p.value.length; return { n, w: room(n), m: room(n), v: room(n), g: room(n) }; });
    const pages = Math.max(1, Math.ceil(top / 65536));
    if (pages > MAX_PAGES) return null;
    let mem: WebAssembly.Memory;
    try {
      mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
    } catch {
      return null; // the host would not give that much
    }
    const ex = new WebAssembly.Instance(module, { env: { memory: mem } }).exports as unknown as Record<'adamw' | 'sumsq', Fn>;
    const view = (at: number, from: Float32Array) => { const a = new Float32Array(mem.buffer, at, from.length); a.set(from); return a; };
    const moved = params.map((p, i) => {
      const q = places[i]!;
      return { name: p.name, shape: p.shape, value: view(q.w, p.value), expAvg: view(q.m, p.expAvg), expAvgSq: view(q.v, p.expAvgSq) };
    });
    return new WasmAdamW(ex, mem, places, moved);
  }

  /** Each parameter's gradient (f32, by name: one for every parameter) copied in beside it; their
   *  global norm, globalNorm(grads.values()) bit for bit (summed in the map's order, as it sums). */
  load(grads: ReadonlyMap<string, Float32Array>): number {
    let ss = 0;
    for (const [name, g] of grads) {
      const q = this.places[this.index.get(name) ?? -1];
      if (!q || g.length !== q.n) throw new RangeError(`archc runtime: a gradient of ${g.length} floats for ${name}, ${q ? `whose weight has ${q.n}` : 'which is no parameter'}`);
      new Float32Array(this.mem.buffer, q.g, q.n).set(g);
      ss += this.ex.sumsq(q.g, q.n);
    }
    if (grads.size !== this.params.length) throw new RangeError(`archc runtime: ${grads.size} gradients for ${this.params.length} parameters`);
    return Math.sqrt(ss);
  }

  /** One AdamW step of every parameter from the gradients `load` put in, each scaled by `scale`:
   *  adamwStep(p, g, t, lr, c, scale) on each, bit for bit. */
  step(t: number, lr: number, c: AdamWConfig, scale: number): void {
    const bc1 = 1 - c.beta1 ** t, bc2Sqrt = Math.sqrt(1 - c.beta2 ** t), stepSize = lr / bc1;
    this.params.forEach((p, i) => {
      const q = this.places[i]!, decay = decays(p.shape) ? 1 - lr * c.weightDecay : 1;
      this.ex.adamw(q.w, q.m, q.v, q.g, q.n, scale, c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2, decay, stepSize, bc2Sqrt, c.eps);
    });
  }
}
