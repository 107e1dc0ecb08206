// The f32 engine's large products split over threads on the row kernels' shared memory
// (./rows.ts): the product kernels' own job record and `work` (codegen/wasm/job.ts, written and
// awaited by runtime/wasm/job.ts; at byte 0 of the memory), as runtime/wasm/kernels.ts shares a product over its workers — the caller writes the
// job, wakes the workers, takes chunks of weight panels itself and waits only until every panel is
// done. Each panel is computed whole by one thread with the same micro-kernel, so the sums do not
// depend on the thread count.

import { PRODUCT } from '../../wasm/layout.ts';
import { type Threads, startThreads } from '../../wasm/threads.ts';
import { awaitGenerationText, awaitJob, postJob } from '../../wasm/job.ts';

/** Control words shared with the workers: [generation, quit]. */
const CTL_GEN = 0, CTL_QUIT = 1;
/** How long an idle worker spins before it sleeps (ms): the step's products come milliseconds apart. */
const SPIN_MS = 2;

/** The worker's program: the product kernels on the shared memory, then `work` whenever woken. */
const WORKER = `({ module, memory, ctl: sab }, ready) => {
const ctl = new Int32Array(sab);
const work = new WebAssembly.Instance(module, { env: { memory } }).exports.work;
ready();
let gen = 0;
for (;;) {
  ${awaitGenerationText(CTL_GEN, SPIN_MS)}
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
    postJob(job, ++this.jobs, { dt: PRODUCT.f32, x, w, y, T, K, ldy, p0: 0, p1: panels, chunk });
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.work(0);
    awaitJob(job, panels);
  }

  /** Ends the workers. */
  close(): void {
    Atomics.store(this.ctl, CTL_QUIT, 1);
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
    this.threads.close();
  }
}
