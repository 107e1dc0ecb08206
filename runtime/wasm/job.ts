// The product kernels' job record from the caller's side (codegen/wasm/job.ts renders the threads'
// side, `work`): a product posted to the threads, and its panels awaited. One layout, in two
// modules' memories: the backend's products (runtime/wasm/kernels.ts) and the f32 training
// engine's (runtime/train/f32/split.ts).

/** The record's i32 words (codegen/wasm/job.ts JOB_FIELDS / 4; memory64: the weight's base, an i64, at 12 and 13). */
export const JOB_WORDS = { claim: 0, done: 1, dt: 2, x: 3, w: 4, y: 5, T: 6, K: 7, ldy: 8, p0: 9, p1: 10, chunk: 11, wbase: 12 } as const;
/** How many times the caller reads the count of panels done before it sleeps. */
const SPIN_LOADS = 1 << 16;

/** A product over panels [p0, p1) in chunks of `chunk` panels: `dt` a PRODUCT code, x, w, y byte
 *  addresses (memory64: w an offset from `wbase`). */
export type Job = Readonly<Record<'dt' | 'x' | 'w' | 'y' | 'T' | 'K' | 'ldy' | 'p0' | 'p1' | 'chunk', number>> & { readonly wbase?: bigint };

/** Panels a chunk of a product of several rows on `threads` threads: about four chunks a thread, an
 *  even number of panels each, since the kernels pair an even panel with the next by its index
 *  (codegen/wasm/kernels.ts pairsAt: a chunk ending between them would compute the pair's first
 *  alone, with other sums, on some thread counts) and a chunk then ends on a 64-byte line of y. */
export const rowsChunk = (panels: number, threads: number): number => 2 * Math.max(Math.ceil(panels / (8 * threads)), Math.ceil(panels / 0x1ffe0));

/** Posts job number `n` (the claim word's high bits): the claim word is closed while the record is
 *  rewritten (a caller posts only once every chunk of its last job is done), then opened. */
export function postJob(job: Int32Array, n: number, j: Job): void {
  const number = (n & 0x7fff) << 16;
  Atomics.store(job, JOB_WORDS.claim, number | 0xffff);
  [0, j.dt, j.x, j.w, j.y, j.T, j.K, j.ldy, j.p0, j.p1, j.chunk].forEach((v, i) => Atomics.store(job, JOB_WORDS.done + i, v));
  if (j.wbase !== undefined) {
    Atomics.store(job, JOB_WORDS.wbase, Number(j.wbase & 0xffffffffn) | 0);
    Atomics.store(job, JOB_WORDS.wbase + 1, Number(j.wbase >> 32n));
  }
  Atomics.store(job, JOB_WORDS.claim, number);
}

/** Waits until `panels` panels of the posted job are done: the workers' last chunks end soon after
 *  the caller's, so it spins on the count, then sleeps. */
export function awaitJob(job: Int32Array, panels: number): void {
  let done = Atomics.load(job, JOB_WORDS.done);
  for (let i = 1; done < panels && i < SPIN_LOADS; i++) done = Atomics.load(job, JOB_WORDS.done);
  for (; done < panels; done = Atomics.load(job, JOB_WORDS.done)) Atomics.wait(job, JOB_WORDS.done, done);
}

/** The workers' side of a wake-up, as the text of a worker program: with \`ctl\` and \`gen\` in scope,
 *  waits until the generation word at \`ctlGen\` moves past \`gen\` and sets \`gen\` to it. It spins
 *  \`spinMs\` first: products come tens of microseconds apart in a decode step, and a sleeping worker
 *  wakes later than that (it would find the product done by the caller). */
export const awaitGenerationText = (ctlGen: number, spinMs: number): string => `let g = Atomics.load(ctl, ${ctlGen});
  if (g === gen) {
    const until = performance.now() + ${spinMs};
    for (let i = 1; (g = Atomics.load(ctl, ${ctlGen})) === gen; i++) if ((i & 1023) === 0 && performance.now() > until) break;
  }
  if (g === gen) Atomics.wait(ctl, ${ctlGen}, gen);
  gen = Atomics.load(ctl, ${ctlGen});`;

/** A worker's job slot in control words: [sequence, what, argument], written by the caller between
 *  wake-ups. The caller does not wait for its workers (it takes chunks itself and awaits the panels
 *  done), so a worker woken late may still be reading its slot when the caller, the job finished
 *  alone, writes the next one there: the sequence is odd while the slot changes, and `readSlot`
 *  reads again until it is even and the same before and after, so a worker never runs one job's
 *  kernel with another's argument. */
export function writeSlot(ctl: Int32Array, j: number, what: number, arg: number): void {
  const v = Atomics.load(ctl, j);
  Atomics.store(ctl, j, v + 1);
  Atomics.store(ctl, j + 1, what);
  Atomics.store(ctl, j + 2, arg);
  Atomics.store(ctl, j, v + 2);
}

/** The job in slot `j` as one `writeSlot` wrote it, [what, argument] (runs in the workers, as its
 *  text: nothing from outside). */
export function readSlot(ctl: Int32Array, j: number): [number, number] {
  for (;;) {
    const v = Atomics.load(ctl, j), what = Atomics.load(ctl, j + 1), arg = Atomics.load(ctl, j + 2);
    if ((v & 1) === 0 && Atomics.load(ctl, j) === v) return [what, arg];
  }
}
