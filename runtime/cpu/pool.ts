// Worker threads for the CPU engine's matrix products. Weights live in SharedArrayBuffers registered
// with every worker once; a product splits its output columns between the calling thread and the
// workers, which run the same `linearRows` (built from its source text), so results are identical
// to a single-threaded run. The engine stays synchronous: the caller blocks on an Atomics counter.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { RuntimeError } from '../errors.ts';
import { RUNTIME_LIMITS } from '../limits.ts';
import { type HostWeight, isQuant } from '../quant.ts';
import { readF32, type Tensor } from '../tensor.ts';
import { WEIGHT_CODE, checkLinear, f16Lut, linearRows } from './linear.ts';

/** Below this many multiply-adds a product runs on the calling thread (a hand-off costs ~50 µs). */
const MIN_PARALLEL_WORK = 1 << 18;

/** The worker's program: `linearRows` from its own source, and a loop over job messages. */
function workerSource(): string {
  return `
const { parentPort } = require('node:worker_threads');
const linearRows = (${linearRows.toString()});
const weights = new Map();
let x, y, bias, lut, ctl;
parentPort.on('message', (m) => {
  if (m.type === 'init') { ({ x, y, bias, lut, ctl } = m); return; }
  if (m.type === 'weight') { weights.set(m.id, m); return; }
  if (m.type === 'drop') { weights.delete(m.id); return; }
  const w = weights.get(m.id);
  const xs = new Float32Array(x, 0, m.T * m.K);
  const ys = new Float32Array(y, 0, m.T * m.N);
  const bs = m.bias ? new Float32Array(bias, 0, m.N) : null;
  linearRows(xs, m.T, m.K, w.data, m.code, m.code >= 2 ? new Float32Array(lut) : null, bs, ys, m.N, m.n0, m.n1, w.scales);
  Atomics.add(ctl, 0, 1);
  Atomics.notify(ctl, 0);
});`;
}

export class LinearPool {
  private readonly workers: Worker[];
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  /** Scratch shared with the workers: the input, the output and the bias of the product in flight. */
  private x = new SharedArrayBuffer(0);
  private y = new SharedArrayBuffer(0);
  private bias = new SharedArrayBuffer(0);
  private readonly lut: SharedArrayBuffer;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4));

  /** `threads` counts the calling thread: a pool of 2 has one worker. Products smaller than
   *  `minWork` multiply-adds stay on the calling thread. */
  constructor(readonly threads: number, private readonly minWork = MIN_PARALLEL_WORK) {
    this.lut = new SharedArrayBuffer(65536 * 4);
    new Float32Array(this.lut).set(f16Lut());
    const source = workerSource();
    this.workers = Array.from({ length: Math.max(0, threads - 1) }, () => {
      const w = new Worker(source, { eval: true });
      w.unref();
      return w;
    });
    this.sendScratch();
  }

  /** Tells the workers the current scratch buffers (messages arrive in order, so before any job). */
  private sendScratch(): void {
    for (const w of this.workers) w.postMessage({ type: 'init', x: this.x, y: this.y, bias: this.bias, lut: this.lut, ctl: this.ctl });
  }

  /** Makes the scratch hold a product of [T, K] by [N, K]; buffers are replaced by larger ones. */
  private reserve(T: number, K: number, N: number): void {
    const need = (sab: SharedArrayBuffer, bytes: number) => (sab.byteLength >= bytes ? sab : new SharedArrayBuffer(Math.max(bytes, 2 * sab.byteLength)));
    const [x, y, bias] = [need(this.x, T * K * 4), need(this.y, T * N * 4), need(this.bias, N * 4)];
    if (x === this.x && y === this.y && bias === this.bias) return;
    [this.x, this.y, this.bias] = [x, y, bias];
    this.sendScratch();
  }

  /** A copy of `t` in shared memory, registered with every worker; use it in place of `t`. */
  share<W extends HostWeight>(t: W): W {
    // a weight read straight into shared memory (Backend.hostCopy 'shared') is not copied again
    const shared = <A extends ArrayBufferView>(src: A): A => {
      if (typeof SharedArrayBuffer !== 'undefined' && src.buffer instanceof SharedArrayBuffer) return src;
      const data = new (src.constructor as new (b: SharedArrayBuffer) => A)(new SharedArrayBuffer(src.byteLength));
      (data as unknown as Uint8Array).set(src as unknown as Uint8Array);
      return data;
    };
    const data = shared(isQuant(t) ? t.codes : t.data);
    const scales = isQuant(t) ? shared(t.scales) : null;
    const id = this.nextId++;
    this.ids.set(data, id);
    for (const w of this.workers) w.postMessage({ type: 'weight', id, data, scales });
    return (isQuant(t) ? { ...t, codes: data, scales } : { ...t, data }) as W;
  }

  /** Forgets shared weights (when their model is dropped). */
  release(tensors: Iterable<HostWeight>): void {
    for (const t of tensors) {
      const id = this.ids.get(isQuant(t) ? t.codes : t.data);
      if (id === undefined) continue;
      for (const w of this.workers) w.postMessage({ type: 'drop', id });
    }
  }

  /** `linear` (runtime/cpu/linear.ts), its columns split across the threads when it is large enough. */
  linear(x: Float32Array, T: number, K: number, w: HostWeight, bias: Tensor | null): Float32Array {
    const N = checkLinear(x, T, K, w, bias);
    const q = isQuant(w);
    const wData = q ? w.codes : w.data as Float32Array | Uint16Array;
    const scales = q ? w.scales : null;
    const id = this.ids.get(wData);
    const code = WEIGHT_CODE[w.dtype];
    const bv = bias ? readF32(bias, 0, N, new Float32Array(N)) : null;
    const lut = w.dtype === 'f16' || q ? new Float32Array(this.lut) : null;
    if (id === undefined || this.workers.length === 0 || T * K * N < this.minWork) {
      const y = new Float32Array(T * N);
      linearRows(x, T, K, wData, code, lut, bv, y, N, 0, N, scales);
      return y;
    }
    this.reserve(T, K, N);
    const xs = new Float32Array(this.x, 0, T * K);
    xs.set(x);
    const ys = new Float32Array(this.y, 0, T * N);
    if (bv) new Float32Array(this.bias, 0, N).set(bv);
    // Even column ranges (rows of W are taken in pairs), the calling thread takes the first.
    const parts = this.workers.length + 1;
    const step = Math.ceil(N / parts / 2) * 2;
    Atomics.store(this.ctl, 0, 0);
    let sent = 0;
    for (let p = 1; p < parts; p++) {
      const n0 = Math.min(N, p * step), n1 = Math.min(N, (p + 1) * step);
      if (n0 >= n1) continue;
      this.workers[p - 1]!.postMessage({ type: 'job', id, T, K, N, n0, n1, code, bias: !!bv });
      sent++;
    }
    linearRows(xs, T, K, wData, code, lut, bv, ys, N, 0, Math.min(N, step), scales);
    for (let done = Atomics.load(this.ctl, 0); done < sent; done = Atomics.load(this.ctl, 0)) Atomics.wait(this.ctl, 0, done);
    return ys.slice();
  }

  /** Stops the workers. */
  close(): void {
    for (const w of this.workers) void w.terminate();
  }
}

const pools = new Map<number, LinearPool>();

/** The process's pool of `threads` threads (made on first use; its workers never keep the process alive). */
export function linearPool(threads: number): LinearPool {
  let p = pools.get(threads);
  if (!p) pools.set(threads, (p = new LinearPool(threads)));
  return p;
}

/** Threads to use by default: ARCHC_THREADS, else the machine's parallelism (at most 8). */
export function defaultThreads(): number {
  if (typeof process === 'undefined') return 1; // a browser: no worker threads here
  const env = process.env.ARCHC_THREADS;
  if (env !== undefined && env !== '') return envThreads(env);
  return Math.min(8, availableParallelism());
}

/** ARCHC_THREADS read strictly: decimal digits, from 1 to the threads limit (RT306 naming it);
 *  `0`, `-1`, `1.5`, `abc` and `1e9` are refused, not silently replaced. */
export function envThreads(text: string): number {
  const limit = RUNTIME_LIMITS.threads;
  const n = /^\s*\d{1,9}\s*$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= limit.value)) {
    throw new RuntimeError('RT306', ['ARCHC_THREADS', JSON.stringify(text.slice(0, 40)), `an integer from 1 to ${limit.value} (limit ${limit.name})`]);
  }
  return n;
}
