// The machine's memory-copy bandwidth, the anchor decode speeds are set against: one copy of a
// buffer split over `threads` threads (plain TypedArray.set; worker threads woken by Atomics).

import { Worker } from 'node:worker_threads';
import { median, timeCalls } from './timing.ts';

const COPY_WORKER = `
const { workerData } = require('node:worker_threads');
const { src, dst, ctl: c, lo, hi } = workerData;
const ctl = new Int32Array(c), s = new Uint8Array(src), d = new Uint8Array(dst);
let gen = 0;
for (;;) {
  Atomics.wait(ctl, 0, gen); gen = Atomics.load(ctl, 0);
  if (Atomics.load(ctl, 2)) break;
  d.set(s.subarray(lo, hi), lo);
  Atomics.add(ctl, 1, 1); Atomics.notify(ctl, 1);
}`;

/** Seconds (median of `reps`) for one copy of `bytes` bytes with `threads` threads. A copy reads
 *  and writes every byte: STREAM's convention counts 2 × bytes. */
export function copyBench(bytes: number, threads: number, reps: number): number {
  const src = new SharedArrayBuffer(bytes), dst = new SharedArrayBuffer(bytes);
  new Uint8Array(src).fill(1);
  new Uint8Array(dst).fill(2);
  const ctl = new Int32Array(new SharedArrayBuffer(12));
  const part = Math.ceil(bytes / threads / 64) * 64;
  const workers = Array.from({ length: threads - 1 }, (_, i) => new Worker(COPY_WORKER, { eval: true, workerData: { src, dst, ctl: ctl.buffer, lo: (i + 1) * part, hi: Math.min(bytes, (i + 2) * part) } }));
  const s = new Uint8Array(src), d = new Uint8Array(dst);
  const once = () => {
    Atomics.store(ctl, 1, 0);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    d.set(s.subarray(0, Math.min(bytes, part)));
    for (let n = Atomics.load(ctl, 1); n < threads - 1; n = Atomics.load(ctl, 1)) Atomics.wait(ctl, 1, n);
  };
  const t = median(timeCalls(once, reps, 1));
  Atomics.store(ctl, 2, 1);
  Atomics.add(ctl, 0, 1);
  Atomics.notify(ctl, 0);
  for (const w of workers) void w.terminate();
  return t;
}
