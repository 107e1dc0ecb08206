// runtime/wasm/job.ts writeSlot / readSlot: the job slot a caller rewrites while a worker woken late
// may still be reading it. A writer thread rewrites one slot as fast as it can with pairs whose
// argument follows from the job (as a product's scratch follows from its memory), a reader thread
// reads it with readSlot, the text the wasm workers run, and must never see one job's argument with
// another's: with plain reads of the two words, a worker once ran a program job's slot as a product
// (the suite's "works[ctl[j]] is not a function") and could run a product with another memory's scratch.

import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { readSlot, writeSlot } from '../../../runtime/wasm/job.ts';

/** Words: [stop, reads, changes, torn], then the slot at 8. */
const STOP = 0, READS = 1, CHANGES = 2, TORN = 3, SLOT = 8;
/** The reader's budget: it stops after this many changes of the job seen, or this many reads. */
const CHANGES_WANTED = 20_000, READS_MOST = 20_000_000;

const argOf = (what: number) => what * 7919 + 13;

function thread(body: string, sab: SharedArrayBuffer): Promise<void> {
  const w = new Worker(`const { workerData } = require('node:worker_threads');
const ctl = new Int32Array(workerData);
const writeSlot = ${writeSlot.toString()}, readSlot = ${readSlot.toString()};
const argOf = ${argOf.toString()};
${body}`, { eval: true, workerData: sab });
  return new Promise((resolve, reject) => { w.once('error', reject); w.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`)))); });
}

describe('a job slot rewritten while a worker reads it', () => {
  it('readSlot never returns one job with another\'s argument', async () => {
    const sab = new SharedArrayBuffer(64), ctl = new Int32Array(sab);
    writeSlot(ctl, SLOT, 0, argOf(0));
    const writer = thread(`for (let i = 1; !Atomics.load(ctl, ${STOP}); i++) { const what = (i % 5) - 2; writeSlot(ctl, ${SLOT}, what, argOf(what)); }`, sab);
    const reader = thread(`let last = 0, reads = 0, changes = 0, torn = 0;
for (; reads < ${READS_MOST} && changes < ${CHANGES_WANTED}; reads++) {
  const [what, arg] = readSlot(ctl, ${SLOT});
  if (arg !== argOf(what)) torn++;
  if (what !== last) { changes++; last = what; }
}
Atomics.store(ctl, ${READS}, reads); Atomics.store(ctl, ${CHANGES}, changes); Atomics.store(ctl, ${TORN}, torn);
Atomics.store(ctl, ${STOP}, 1);`, sab);
    await Promise.all([reader, writer]);
    const reads = ctl[READS]!, changes = ctl[CHANGES]!;
    // the reader saw the slot change under it often enough for a torn read to have had its chance
    expect(changes, `${reads} reads`).toBeGreaterThanOrEqual(100);
    expect(ctl[TORN], `torn reads among ${reads} (${changes} changes of the job)`).toBe(0);
  });
});
