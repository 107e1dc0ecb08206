// Threads for the `wasm` kernels, wherever the runtime runs: node:worker_threads in Node, Web Workers
// (from a Blob URL of the same program) in a browser. What a thread may do decides how many run:
// the calling thread takes part in every split product and then blocks on Atomics.wait for the
// others, which a browser allows only off its main thread, and sharing the module's memory needs
// SharedArrayBuffer, which a browser gives only to a cross-origin isolated page (COOP same-origin +
// COEP require-corp). Elsewhere the kernels run on the calling thread alone, over a memory that is
// not shared, with the module's memory import rewritten to match (`unsharedModule`).

import { Worker as NodeWorker } from 'node:worker_threads';
import { defaultThreads as nodeDefaultThreads } from '../cpu/pool.ts';
import { RuntimeError } from '../errors.ts';
import { unsharedModule } from './unshared.ts';

export { unsharedModule };

/** What the calling thread can do. */
export interface ThreadSupport {
  /** Shared WebAssembly memory and SharedArrayBuffer exist (Node; a cross-origin isolated page). */
  readonly shared: boolean;
  /** Atomics.wait may block this thread (Node; a browser's workers, not its main thread). */
  readonly canBlock: boolean;
  /** Threads can be started from here (node:worker_threads; Worker in a browser). */
  readonly canSpawn: boolean;
}

export function onNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

export function threadSupport(): ThreadSupport {
  const shared = typeof SharedArrayBuffer === 'function' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
  let canBlock = false;
  if (shared) {
    // a zero timeout on a value that is not there returns at once where waiting is allowed, and
    // throws where it is not (a browser's main thread)
    try {
      canBlock = Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0) === 'not-equal';
    } catch {
      canBlock = false;
    }
  }
  const canSpawn = onNode() ? typeof NodeWorker === 'function' : typeof Worker === 'function' && typeof Blob === 'function';
  return { shared, canBlock, canSpawn };
}

/** Threads by default: in Node ARCHC_THREADS, else the cores (at most 8); in a browser the
 *  cores it reports (navigator.hardwareConcurrency, at most 8). */
export function defaultThreads(): number {
  if (onNode()) return nodeDefaultThreads();
  const n = typeof navigator === 'undefined' ? 1 : navigator.hardwareConcurrency;
  return Number.isInteger(n) && n >= 1 ? Math.min(8, n) : 1;
}

/** The threads that run here for a request of `requested` (default: defaultThreads()): 1 where this
 *  thread may not wait for others, share memory with them or start them. */
export function threadsHere(requested = defaultThreads(), support = threadSupport()): number {
  return support.shared && support.canBlock && support.canSpawn ? requested : 1;
}

/** Started threads; `close` ends them (the caller first tells them to leave their loop). */
export interface Threads {
  readonly count: number;
  close(): void;
}

/**
 * Starts one thread per entry of `data`; thread i runs `main(data[i], ready)`, where `main` is the
 * source text of a function that calls `ready()` once it is set up (its module instantiated) and may
 * then block. Resolves when every thread is ready, so the caller may block waiting for them from
 * then on (a browser starts a worker only while its creator's event loop runs).
 */
export async function startThreads(main: string, data: readonly unknown[]): Promise<Threads> {
  if (onNode()) {
    const workers = data.map((d) => nodeWorker(main, d));
    try {
      await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`a wasm worker thread exited (code ${code}) before it was ready`)));
      })));
    } catch (e) {
      for (const w of workers) void w.terminate();
      throw e;
    }
    for (const w of workers) {
      w.removeAllListeners();
      w.unref();
    }
    return { count: workers.length, close: () => {} };
  }
  const program = `self.onmessage = (e) => { self.onmessage = null; (${main})(e.data, () => self.postMessage(0)); };`;
  const url = URL.createObjectURL(new Blob([program], { type: 'text/javascript' }));
  const workers: Worker[] = [];
  try {
    for (const d of data) {
      const w = new Worker(url);
      workers.push(w);
      w.postMessage(d);
    }
    await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
      w.onmessage = () => resolve();
      w.onerror = (e) => { e.preventDefault(); reject(new RuntimeError('RT303', [`a wasm worker that failed to start (${e.message || 'blocked by the page\'s Content-Security-Policy?'})`, 'allow blob: workers (worker-src blob:) or pass threads: 1'])); };
    })));
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  } finally {
    URL.revokeObjectURL(url);
  }
  for (const w of workers) w.onmessage = w.onerror = null;
  return { count: workers.length, close: () => { for (const w of workers) w.terminate(); } };
}

/** startThreads in Node without waiting: its workers start whatever the creating thread does
 *  (they never keep the process alive). */
export function startThreadsNow(main: string, data: readonly unknown[]): Threads {
  if (!onNode()) throw new Error('startThreadsNow: a browser starts workers only while its creator runs its event loop; await startThreads');
  for (const d of data) nodeWorker(main, d).unref();
  return { count: data.length, close: () => {} };
}

function nodeWorker(main: string, data: unknown): NodeWorker {
  return new NodeWorker(`const { workerData, parentPort } = require('node:worker_threads');\n(${main})(workerData, () => parentPort.postMessage(0));`, { eval: true, workerData: data });
}

