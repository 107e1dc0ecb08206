// Stored f32/bf16/f16 tensors of a local checkpoint (Node) read on worker threads, each worker its
// share of a tensor's rows from the file in blocks of about 256 KiB: checked finite (RT144's test,
// the exponent bits) while the block is in cache, and written where the backend keeps it — as stored
// (the cpu backend's weights), or packed into panels in the wasm backend's memory (runtime/wasm/
// pack.ts' layout, bit for bit). The loading thread only hands out the rows; with no worker
// (threads 1) it runs the same blocks itself. Nothing of a tensor is held twice: the blocks are
// per-worker buffers reused from tensor to tensor.

import * as fs from 'node:fs';
import { Worker as NodeWorker } from 'node:worker_threads';
import { nonFinite, panelRows16, panelRows32, panelRowsT } from './wasm/pack.ts';

/** The loops `loadRows` runs (passed in: the workers define them from their source text). */
const PACK = { nonFinite, panelRows32, panelRows16, panelRowsT };

/** Where a product weight's panels go ([P][K][NR], runtime/wasm/pack.ts): W [N, K] (`transposed`:
 *  stored as [K, N]) at byte `at` of `buffer` (the wasm memory, reserved already; padding columns
 *  past N are left as they are). */
export interface PanelTarget {
  readonly buffer: ArrayBufferLike;
  readonly at: number;
  readonly N: number;
  readonly K: number;
  readonly NR: number;
  readonly transposed: boolean;
}

/** One job: source rows [r0, r1) of a tensor stored from byte `begin` of `path`, rows of `width`
 *  elements of `eb` bytes; the exponent `mask` of the dtype (0: no check). Into `dst` from byte
 *  `dstAt` as stored (row r at dstAt + r·width·eb), or packed as `panels` says (rows on panel
 *  boundaries unless transposed). */
export interface RowsJob {
  readonly path: string;
  readonly begin: number;
  readonly eb: number;
  readonly mask: number;
  readonly width: number;
  readonly r0: number;
  readonly r1: number;
  readonly dst: ArrayBufferLike;
  readonly dstAt: number;
  readonly panels: { readonly N: number; readonly K: number; readonly NR: number; readonly transposed: boolean } | null;
}

/**
 * Runs a job with `read` (fills a Uint8Array from a file position; returns the bytes read) and
 * `scratch` (the block buffer, grown as needed) in blocks of about BLOCK bytes (whole panels when
 * packing [N, K]), each tested finite while it is in cache; returns whether an element is not
 * (the job stops there). Self-contained: the workers run its source text, given `fns` from the
 * source text of runtime/wasm/pack.ts' loops.
 */
export function loadRows(job: RowsJob, read: (into: Uint8Array, position: number) => number, scratch: { buf: ArrayBuffer }, fns: typeof PACK): boolean {
  const { nonFinite, panelRows32, panelRows16, panelRowsT } = fns;
  const BLOCK = 262144;
  const rowBytes = job.width * job.eb, p = job.panels;
  let block = Math.max(1, Math.floor(BLOCK / rowBytes));
  if (p && !p.transposed) block = Math.max(p.NR, block - (block % p.NR));
  const need = Math.min(block, job.r1 - job.r0) * rowBytes;
  if (p && scratch.buf.byteLength < need) scratch.buf = new ArrayBuffer(need);
  const wide = job.eb === 4;
  // the panels' own elements ([P][K][NR]), not the rest of the buffer: a memory64 memory runs past 4 GiB
  const len = p ? Math.ceil(p.N / p.NR) * p.K * p.NR : 0;
  const d32 = p && wide ? new Uint32Array(job.dst, job.dstAt, len) : null, d16 = p && !wide ? new Uint16Array(job.dst, job.dstAt, len) : null;
  for (let r = job.r0; r < job.r1; r += block) {
    const n = Math.min(block, job.r1 - r), bytes = n * rowBytes;
    // as stored: straight into the destination; packed: into the block buffer
    const into = p ? new Uint8Array(scratch.buf, 0, bytes) : new Uint8Array(job.dst, job.dstAt + r * rowBytes, bytes);
    const got = read(into, job.begin + r * rowBytes);
    if (got < bytes) throw new Error(`file ended after ${job.begin + r * rowBytes + got} bytes, expected ${job.begin + (r + n) * rowBytes} (truncated since it was opened?)`);
    let bad: boolean;
    if (!p) bad = nonFinite(into.buffer, into.byteOffset, n * job.width, job.eb, job.mask);
    else if (d32) {
      const src = new Uint32Array(scratch.buf, 0, bytes >> 2);
      bad = p.transposed ? panelRowsT(d32, src, 0, r, n, p.N, p.K, p.NR, job.mask) : panelRows32(d32, src, 0, r, n, p.K, p.NR, job.mask);
    } else {
      const src = new Uint16Array(scratch.buf, 0, bytes >> 1);
      bad = p.transposed ? panelRowsT(d16!, src, 0, r, n, p.N, p.K, p.NR, job.mask) : panelRows16(d16!, src, 0, r, n, p.K, p.NR, job.mask);
    }
    if (bad) return true;
  }
  return false;
}

/** Reads with positions from `fd` until `into` is full or the file ends (`files`: node:fs, passed
 *  in: the workers run this source text). */
function readAt(files: typeof fs, fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  for (let got = 1; done < into.length && got > 0; done += got) got = files.readSync(fd, into, done, into.length - done, position + done);
  return done;
}

/** A worker's loop: each job its file opened, run, closed; answers the result or { error }. */
const WORKER_MAIN = `(post, listen, fs) => {
const fns = { ${Object.entries(PACK).map(([name, f]) => `${name}: ${f.toString()}`).join(',\n')} };
const loadRows = ${loadRows.toString()};
const readAt = ${readAt.toString()};
const scratch = { buf: new ArrayBuffer(0) };
listen((job) => {
  let fd = -1;
  try {
    fd = fs.openSync(job.path, 'r');
    post(loadRows(job, (into, position) => readAt(fs, fd, into, position), scratch, fns));
  } catch (e) {
    post({ error: String(e && e.message || e) });
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
});
}`;

interface Port {
  send(job: RowsJob): Promise<boolean>;
  close(): void;
}

/** A worker answering its jobs in order. */
function nodePort(): Port {
  const w = new NodeWorker(`const { parentPort } = require('node:worker_threads');
(${WORKER_MAIN})((m) => parentPort.postMessage(m), (f) => parentPort.on('message', f), require('node:fs'));`, { eval: true });
  w.unref();
  const waiting: { resolve: (bad: boolean) => void; reject: (e: Error) => void }[] = [];
  const failAll = (e: Error) => { for (const x of waiting.splice(0)) x.reject(e); };
  w.on('message', (m: boolean | { error: string }) => {
    const x = waiting.shift();
    if (typeof m === 'boolean') x?.resolve(m);
    else x?.reject(new Error(m.error));
    if (!waiting.length) w.unref();
  });
  w.on('error', failAll);
  w.on('exit', (code) => failAll(new Error(`a loading worker exited (code ${code})`)));
  return {
    send: (job) => new Promise<boolean>((resolve, reject) => {
      waiting.push({ resolve, reject });
      w.ref();
      w.postMessage(job);
    }),
    close: () => void w.terminate(),
  };
}

/** Worker threads reading tensors of local files (none: the calling thread runs the jobs). */
export class LoadPool {
  private readonly scratch = { buf: new ArrayBuffer(0) };

  private constructor(private readonly ports: readonly Port[]) {}

  /** `threads` workers (Node, with SharedArrayBuffer); with 1, or where workers cannot start, the
   *  calling thread reads (still block by block, packing from a reused buffer). */
  static start(threads: number): LoadPool {
    const can = threads > 1 && typeof SharedArrayBuffer === 'function' && typeof NodeWorker === 'function';
    return new LoadPool(can ? Array.from({ length: threads }, nodePort) : []);
  }

  /** Worker threads (0: the calling thread). */
  get threads(): number {
    return this.ports.length;
  }

  /**
   * Reads a tensor of `rows` rows of `width` elements (`eb` bytes each) from byte `begin` of `path`
   * into `dst` (as stored, from `dstAt`) or into `panels`, its rows split among the workers; returns
   * whether an element is not finite (`mask` its dtype's exponent bits; 0: none checked).
   * Rejects with the read's failure. `here`: on the calling thread (memory the workers would keep a
   * reference to until they collect garbage: a tensor the backend may drop soon).
   */
  async read(path: string, begin: number, eb: number, mask: number, rows: number, width: number,
    to: { dst: ArrayBufferLike; dstAt: number } | PanelTarget, here = false): Promise<boolean> {
    const panels = 'N' in to ? { N: to.N, K: to.K, NR: to.NR, transposed: to.transposed } : null;
    const base: Omit<RowsJob, 'r0' | 'r1'> = { path, begin, eb, mask, width, panels, ...('N' in to ? { dst: to.buffer, dstAt: to.at } : to) };
    // workers write only into shared memory
    if (!this.ports.length || here || !(base.dst instanceof SharedArrayBuffer)) {
      const fd = fs.openSync(path, 'r');
      try {
        return loadRows({ ...base, r0: 0, r1: rows }, (into, position) => readAt(fs, fd, into, position), this.scratch, PACK);
      } finally {
        fs.closeSync(fd);
      }
    }
    // whole panels to each worker for [N, K] panels, else rows
    const unit = panels && !panels.transposed ? panels.NR : 1;
    const units = Math.ceil(rows / unit), W = Math.min(this.ports.length, units), per = Math.ceil(units / W) * unit;
    const got = await Promise.all(this.ports.slice(0, W).map((port, i) => port.send({ ...base, r0: Math.min(rows, i * per), r1: Math.min(rows, (i + 1) * per) })));
    return got.some((b) => b);
  }

  close(): void {
    for (const p of this.ports) p.close();
  }
}
