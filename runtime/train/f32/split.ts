// The f32 engine's large products split over threads on the row kernels' shared memory
// (./rows.ts): the product kernels' own job record and `work` (codegen/wasm/job.ts, at byte 0 of
// the memory), as runtime/wasm/kernels.ts shares a product over its workers — the caller writes the
// job, wakes the workers, takes chunks of weight panels itself and waits only until every panel is
// done. Each panel is computed whole by one thread with the same micro-kernel, so the sums do not
// depend on the thread count.

import { PRODUCT } from '../../wasm/layout.ts';
import { type Threads, startThreads } from '../../wasm/threads.ts';

/** Control words shared with the workers: [generation, quit]. */
const CTL_GEN = 0, CTL_QUIT = 1;
/** The job record's i32 words (codegen/wasm/job.ts JOB_FIELDS / 4, the record at byte 0). */
const W = { claim: 0, done: 1, dt: 2, x: 3, w: 4, y: 5, T: 6, K: 7, ldy: 8, p0: 9, p1: 10, chunk: 11 } as const;
/** How long an idle worker spins before it sleeps (ms): the step's products come milliseconds apart. */
const SPIN_MS = 2;

/** The worker's program: the product kernels on the shared memory, then `work` whenever woken. */
const WORKER = `({ module, memory, ctl: sab }, ready) => {
const ctl = new Int32Array(sab);
const work = new WebAssembly.Instance(module, { env: { memory } }).exports.work;
ready();
let gen = 0;
for (;;) {
  let g = Atomics.load(ctl, ${CTL_GEN});
  if (g === gen) {
    const until = performance.now() + ${SPIN_MS};
    for (let i = 1; (g = Atomics.load(ctl, ${CTL_GEN})) === gen; i++) if ((i & 1023) === 0 && performance.now() > until) break;
  }
  if (g === gen) Atomics.wait(ctl, ${CTL_GEN}, gen);
  gen = Atomics.load(ctl, ${CTL_GEN});
  if (Atomics.load(ctl, ${CTL_QUIT})) break;
  work(0);
}
}`;

export class ProductThreads {
  private jobs = 0;

  private constructor(private readonly threads: Threads, private readonly ctl: Int32Array, private readonly job: Int32Array, private readonly work: (s: number) => void) {}

  /** `n` − 1 workers running `kernels` (shared-memory form) on `memory`; `work`: this thread's. */
  static async start(kernels: WebAssembly.Module, memory: WebAssembly.Memory, n: number, work: (s: number) => void): Promise<ProductThreads> {
    const ctl = new Int32Array(new SharedArrayBuffer(8));
    const threads = await startThreads(WORKER, Array.from({ length: n - 1 }, () => ({ module: kernels, memory, ctl: ctl.buffer })));
    return new ProductThreads(threads, ctl, new Int32Array(memory.buffer, 0, 16), work);
  }

  /** Y = X·Wᵀ over panels [0, panels) from x tiles, W panels and y rows (byte addresses). */
  run(x: number, w: number, y: number, T: number, K: number, ldy: number, panels: number): void {
    const job = this.job, n = this.threads.count + 1;
    const chunk = Math.max(Math.ceil(panels / (4 * n)), Math.ceil(panels / 0xfff0));
    // closed while the record is rewritten (the last job's chunks are all done)
    const number = (++this.jobs & 0x7fff) << 16;
    Atomics.store(job, W.claim, number | 0xffff);
    const fields: [keyof typeof W, number][] = [['done', 0], ['dt', PRODUCT.f32], ['x', x], ['w', w], ['y', y], ['T', T], ['K', K], ['ldy', ldy], ['p0', 0], ['p1', panels], ['chunk', chunk]];
    for (const [f, v] of fields) Atomics.store(job, W[f], v);
    Atomics.store(job, W.claim, number);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.work(0);
    let done = Atomics.load(job, W.done);
    for (let i = 1; done < panels && i < 1 << 16; i++) done = Atomics.load(job, W.done);
    for (; done < panels; done = Atomics.load(job, W.done)) Atomics.wait(job, W.done, done);
  }

  /** Ends the workers. */
  close(): void {
    Atomics.store(this.ctl, CTL_QUIT, 1);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.threads.close();
  }
}
