// The f32 engine's threads on the row kernels' shared memory (./rows.ts), one pool for two kinds
// of job. A large product: the product kernels' own job record and `work` (codegen/wasm/job.ts,
// written and awaited by runtime/wasm/job.ts; at byte 0 of the memory), as runtime/wasm/kernels.ts
// shares a product over its workers — the caller writes the job, wakes the workers, takes chunks of
// weight panels itself and waits only until every panel is done. The heads of attention and the SSD:
// a routine of ./heads.ts over units (heads, KV heads, chunks) claimed one at a time by the caller
// and the workers (./heads.ts claimUnits). Each panel or unit is computed whole by one thread with
// the same code, so the results do not depend on the thread count.

import { PRODUCT } from '../../wasm/layout.ts';
import { type Threads, startThreads } from '../../wasm/threads.ts';
import { awaitGenerationText, awaitJob, postJob, rowsChunk } from '../../wasm/job.ts';
import { HELPERS, type HeadEnv, ROUTINES, claimUnits } from './heads.ts';

/** Control words shared with the workers: [generation, quit, the job's kind (0 a product, 1 a
 *  routine's units), then claimUnits' words: the claim, units done, the routine, units, scratch,
 *  scratch per thread, the argument count]; the routine's arguments f64 from byte 64. */
const CTL_GEN = 0, CTL_QUIT = 1, CTL_KIND = 2, CLAIM = 3, DONE = 4;
const ARGS_AT = 64, MAX_ARGS = 32;
/** How long an idle worker spins before it sleeps (ms): the step's products come milliseconds apart. */
const SPIN_MS = 2;
/** Reads of the count of units done before the caller sleeps. */
const SPIN_LOADS = 1 << 16;

/** The worker's program: the product kernels and the row kernels on the shared memory, the
 *  routines over them, then a product's `work` or a routine's units whenever woken. */
const WORKER = `({ module, rows, memory, ctl: sab, slot }, ready) => {
const ctl = new Int32Array(sab), argv = new Float64Array(sab, ${ARGS_AT}, ${MAX_ARGS});
const kex = new WebAssembly.Instance(module, { env: { memory } }).exports, work = kex.work;
const rex = new WebAssembly.Instance(rows, { env: { memory } }).exports;
const E = { f: new Float32Array(memory.buffer), d: new Float64Array(memory.buffer), i: new Int32Array(memory.buffer),
  ${Object.entries(HELPERS).map(([k, f]) => `${k}: ${f.toString()}`).join(',\n  ')},
  rex, kex, MR: kex.MR.value, NR: kex.NR.value };
const routines = [${ROUTINES.map((r) => r.toString()).join(',\n')}];
const claimUnits = ${claimUnits.toString()};
const args = [];
ready();
let gen = 0;
for (;;) {
  ${awaitGenerationText(CTL_GEN, SPIN_MS)}
  if (Atomics.load(ctl, ${CTL_QUIT})) break;
  if (Atomics.load(ctl, ${CTL_KIND})) claimUnits(ctl, argv, args, routines, E, memory, slot + 1);
  else work(0);
}
}`;

export class ProductThreads {
  private jobs = 0;
  private unitJobs = 0;
  private readonly argv: Float64Array;
  private readonly args: number[] = [];

  private constructor(private readonly threads: Threads, private readonly ctl: Int32Array, private readonly job: Int32Array, private readonly work: (s: number) => void) {
    this.argv = new Float64Array(ctl.buffer, ARGS_AT, MAX_ARGS);
  }

  /** `n` − 1 workers running `kernels` and `rows` (shared-memory forms) on `memory`; `work`: this thread's. */
  static async start(kernels: WebAssembly.Module, rows: WebAssembly.Module, memory: WebAssembly.Memory, n: number, work: (s: number) => void): Promise<ProductThreads> {
    const ctl = new Int32Array(new SharedArrayBuffer(ARGS_AT + 8 * MAX_ARGS));
    const threads = await startThreads(WORKER, Array.from({ length: n - 1 }, (_, slot) => ({ module: kernels, rows, memory, ctl: ctl.buffer, slot })));
    return new ProductThreads(threads, ctl, new Int32Array(memory.buffer, 0, 16), work);
  }

  /** Threads, the calling one counted. */
  get count(): number {
    return this.threads.count + 1;
  }

  /** Y = X·Wᵀ over panels [0, panels) from x tiles, W panels and y rows (byte addresses). */
  run(x: number, w: number, y: number, T: number, K: number, ldy: number, panels: number): void {
    const job = this.job, n = this.threads.count + 1;
    postJob(job, ++this.jobs, { dt: PRODUCT.f32, x, w, y, T, K, ldy, p0: 0, p1: panels, chunk: rowsChunk(panels, n) });
    Atomics.store(this.ctl, CTL_KIND, 0);
    this.wake();
    this.work(0);
    awaitJob(job, panels);
  }

  /** ROUTINES[routine] over units [0, units) (at most 0xfffe), thread i's scratch at scr + i·per
   *  (float indices); E: the calling thread's views. */
  units(routine: number, units: number, scr: number, per: number, args: readonly number[], E: HeadEnv): void {
    const ctl = this.ctl, number = (++this.unitJobs & 0x7fff) << 16;
    if (args.length > MAX_ARGS || units > 0xfffe) throw new RangeError(`ProductThreads.units: ${args.length} arguments, ${units} units`);
    // the claim closed while the job is written
    Atomics.store(ctl, CLAIM, number | 0xffff);
    [0, routine, units, scr, per, args.length].forEach((v, i) => Atomics.store(ctl, DONE + i, v));
    this.argv.set(args);
    Atomics.store(ctl, CTL_KIND, 1);
    Atomics.store(ctl, CLAIM, number);
    this.wake();
    claimUnits(ctl, this.argv, this.args, ROUTINES, E, null, 0);
    // the workers' last units end soon after the caller's: spin on the count, then sleep
    let done = Atomics.load(ctl, DONE);
    for (let i = 1; done < units && i < SPIN_LOADS; i++) done = Atomics.load(ctl, DONE);
    for (; done < units; done = Atomics.load(ctl, DONE)) Atomics.wait(ctl, DONE, done);
  }

  private wake(): void {
    Atomics.add(this.ctl, CTL_GEN, 1);
    Atomics.notify(this.ctl, CTL_GEN);
  }

  /** Ends the workers. */
  close(): void {
    Atomics.store(this.ctl, CTL_QUIT, 1);
    this.wake();
    this.threads.close();
  }
}
