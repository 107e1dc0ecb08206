// The program module's functions shared by the threads of the products (runtime/wasm/kernels.ts'
// workers, which instantiate the program module on memory 0 too): a call is cut into chunks of its
// units (runtime/wasm/program.ts unitsOf: rows, SSD heads, KV heads), claimed by the calling
// thread and the workers through a call record in shared memory; each unit is computed by the same
// function over the same inputs whoever claims it, so the results are bit for bit those of one
// thread. Functions whose units read scratch of their own get one block per thread.

import type { Kernel } from '../program.ts';
import { ALL, unitsOf } from './program.ts';

/** Row-split functions are shared from `rows` rows on, and those that only map floats (a
 *  product's epilogue of maps, an elementwise kernel, an embedding's rows) from `floats` floats
 *  on: below them the threads' meeting costs more than the work (a residual add of 8 rows of 768
 *  ran slower shared). Tests lower them to share every call. */
export const SPLIT = {
  rows: Number(globalThis.process?.env?.ARCHC_SPLIT_ROWS ?? 2),
  floats: Number(globalThis.process?.env?.ARCHC_SPLIT_FLOATS ?? 16384),
};

/** How a call of `k`'s functions over `rows` rows (a matmul: its output rows; `stage` its pre or
 *  post) is shared: its units (runtime/wasm/program.ts unitsOf), whether the threads share them
 *  (the SSD step's heads and the attention's KV heads always: the batch's whole state or cache is
 *  read; norms, a norm prologue, a conv step or RoPE from SPLIT.rows rows on; maps from
 *  SPLIT.floats floats on; never a 'whole' kernel), and whether each thread reads scratch of its own. */
export function sharing(k: Kernel, rows: number, stage?: 'pre' | 'post'): { units: number; split: boolean; own: boolean } {
  const kind = unitsOf(k);
  const sizes = k.sizes as { H?: number; KV?: number; N?: number; D?: number };
  if (kind === 'head' || kind === 'kv') {
    const units = (kind === 'head' ? sizes.H : sizes.KV) ?? 1;
    return { units, split: units >= 2, own: true };
  }
  const maps = k.family === 'elementwise' || k.family === 'embedding'
    || (stage === 'post' && (k.epilogue ?? []).every((e) => e.kind === 'map'));
  const floats = rows * (k.family === 'elementwise' ? (k.outputs.y?.width ?? 0) : (sizes.N ?? sizes.D ?? 0));
  return { units: rows, split: kind === 'row' && rows >= SPLIT.rows && (!maps || floats >= SPLIT.floats), own: false };
}

/** The call record, i32 words: the claim word ((job number << 16) | chunks claimed; its low half
 *  0xffff while the record is rewritten), chunks done, the function's index (among the module's
 *  function exports, in the module's order), units, units per chunk, bytes of scratch per thread
 *  (0: every thread reads the caller's), the argument count, then the arguments. */
const CLAIM = 0, DONE = 1, FN = 2, UNITS = 3, CHUNK = 4, OWN = 5, NARGS = 6, ARGS = 8;
/** Arguments a split function may take (the fixed ones and its kernel's). */
const MAX_ARGS = 56;
export const CALL_WORDS = ARGS + MAX_ARGS;
/** Argument positions of u0 and u1 (runtime/wasm/program.ts FIXED). */
const U0 = 7, U1 = 8;
/** Reads of the count of chunks done before the caller sleeps. */
const SPIN_LOADS = 1 << 16;

/** Takes and runs chunks until none is left. The calling thread and the workers run the same
 *  code (its source is part of the workers' program, so it names no outer binding nor anything a
 *  bundler might lower to a helper, such as a spread call: the record's
 *  words by number, as above: 0 CLAIM, 1 DONE, 2 FN, 3 UNITS, 4 CHUNK, 5 OWN, 6 NARGS, 8 ARGS; the
 *  arguments scr, u0, u1 at 4, 7, 8). `thread`: 0 the caller, 1… the workers. */
function claimChunks(rec: Int32Array, fns: readonly ((...a: number[]) => void)[], args: number[], thread: number): void {
  for (;;) {
    const c = Atomics.load(rec, 0), n = c & 0xffff, units = rec[3]!, chunk = rec[4]!;
    if (n === 0xffff || n * chunk >= units) return;
    const fn = fns[rec[2]!]!, own = rec[5]!, count = rec[6]!;
    args.length = count;
    for (let i = 0; i < count; i++) args[i] = rec[8 + i]!;
    // the record was rewritten since it was read: read it again
    if (Atomics.compareExchange(rec, 0, c, c + 1) !== c) continue;
    args[4] = args[4]! + thread * own;
    args[7] = n * chunk;
    args[8] = Math.min(units, (n + 1) * chunk);
    fn.apply(null, args);
    Atomics.add(rec, 1, 1);
    Atomics.notify(rec, 1);
  }
}

/** The workers' side, as source (runtime/wasm/kernels.ts' WORKER_MAIN): given the program module,
 *  memory 0 and the call record, returns what a worker runs for a program job, (slot) => void. */
export const PROGRAM_WORKER = `(program, memory, sab) => {
const rec = new Int32Array(sab);
const ex = new WebAssembly.Instance(program, { env: { memory } }).exports;
const fns = WebAssembly.Module.exports(program).filter((e) => e.kind === 'function').map((e) => ex[e.name]);
const args = [];
const claimChunks = ${claimChunks.toString()};
return (slot) => claimChunks(rec, fns, args, slot + 1);
}`;

/** What the calling thread needs of the products' threads: their count, and waking them with a
 *  program job (WasmKernels.wakeProgram: returns the workers woken). */
export interface Wake {
  readonly threads: number;
  wakeProgram(): number;
}

/** The program module's functions, run whole or shared by the threads. */
export class ProgramCalls {
  /** The call record (shared with the workers). */
  readonly record: SharedArrayBuffer | null;
  private readonly rec: Int32Array;
  private readonly fns: ((...a: number[]) => void)[];
  private readonly index = new Map<(...a: number[]) => void, number>();
  private readonly args: number[] = [];
  private jobs = 0;

  constructor(module: WebAssembly.Module, exports: Record<string, unknown>, private readonly wake: Wake) {
    this.record = wake.threads > 1 ? new SharedArrayBuffer(4 * CALL_WORDS) : null;
    this.rec = new Int32Array(this.record ?? new ArrayBuffer(4 * CALL_WORDS));
    this.fns = WebAssembly.Module.exports(module).filter((e) => e.kind === 'function').map((e) => exports[e.name] as (...a: number[]) => void);
    this.fns.forEach((f, i) => { if (!this.index.has(f)) this.index.set(f, i); });
  }

  /**
   * Runs `fn` with `fixed` (T, S, seq, rows, scr, ldy, y0) and the kernel's `args` over `units`
   * units: whole on this thread where `split` is false (or there is one thread, or one unit), else
   * in chunks claimed by every thread; `own`: bytes of scratch each thread takes from scr on
   * (thread i at scr + i·own), 0 where they share the caller's.
   */
  run(fn: (...a: number[]) => void, fixed: readonly number[], args: readonly number[], units: number, split: boolean, own = 0): void {
    const threads = this.wake.threads;
    if (!split || threads < 2 || units < 2 || !this.record) {
      fn(...fixed, 0, ALL, ...args);
      return;
    }
    const count = fixed.length + 2 + args.length;
    if (count > MAX_ARGS) {
      fn(...fixed, 0, ALL, ...args);
      return;
    }
    const rec = this.rec;
    const chunk = Math.ceil(units / (2 * threads)), chunks = Math.ceil(units / chunk);
    const number = (++this.jobs & 0x7fff) << 16;
    Atomics.store(rec, CLAIM, number | 0xffff);
    rec[DONE] = 0;
    rec[FN] = this.index.get(fn) ?? -1;
    if (rec[FN]! < 0) throw new Error('ProgramCalls: not a function of the program module');
    rec[UNITS] = units;
    rec[CHUNK] = chunk;
    rec[OWN] = own;
    rec[NARGS] = count;
    fixed.forEach((v, i) => { rec[ARGS + i] = v; });
    rec[ARGS + U0] = 0;
    rec[ARGS + U1] = 0;
    args.forEach((v, i) => { rec[ARGS + U1 + 1 + i] = v; });
    Atomics.store(rec, CLAIM, number);
    this.wake.wakeProgram();
    claimChunks(rec, this.fns, this.args, 0);
    // the workers' last chunks end soon after the caller's: spin on the count, then sleep
    let done = Atomics.load(rec, DONE);
    for (let i = 1; done < chunks && i < SPIN_LOADS; i++) done = Atomics.load(rec, DONE);
    for (; done < chunks; done = Atomics.load(rec, DONE)) Atomics.wait(rec, DONE, done);
  }
}
