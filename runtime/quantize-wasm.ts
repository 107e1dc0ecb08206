// Quantise-on-load in WebAssembly SIMD (the module: codegen/wasm/quantize.ts, its bytes in
// runtime/quantize-wasm-module.ts): codes and scales bit-identical to runtime/quant.ts `quantize`,
// which stays the reference and the fallback where the engine has no SIMD. `QuantPool` runs it on
// worker threads (node:worker_threads, or Web Workers where SharedArrayBuffer exists), a tensor's
// rows split among them, so the thread that reads the checkpoint reads the next tensor meanwhile.

import { type QuantDType, type QuantResult, QUANT_GROUP, quantize, shapeReason } from './quant.ts';
import { QUANTIZER_WASM } from './quantize-wasm-module.ts';
import type { Tensor } from './tensor.ts';
import { onNode } from './wasm/threads.ts';
import { Worker as NodeWorker } from 'node:worker_threads';

/** The module's bytes. */
export function quantizerBytes(): Uint8Array {
  return Uint8Array.from(atob(QUANTIZER_WASM), (c) => c.charCodeAt(0));
}

let compiled: WebAssembly.Module | null | undefined;
/** The compiled module, or null where the engine has no WebAssembly SIMD. */
export function quantizerModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    const bytes = quantizerBytes() as Uint8Array<ArrayBuffer>;
    compiled = typeof WebAssembly === 'object' && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled;
}

/** One job: rows [row0, row0 + rows) of a tensor's stored bytes into its codes and scales. The
 *  bytes lie in `input` from `inOffset`, or (`path`, Node) in that file from byte `inOffset`. */
export interface QuantJob {
  readonly input: ArrayBufferLike | null;
  readonly path?: string;
  readonly inOffset: number;
  /** 0 f32, 1 bf16, 2 f16 (the module's dtype argument), and its bytes an element. */
  readonly dtype: number;
  readonly eb: number;
  readonly K: number;
  readonly row0: number;
  readonly rows: number;
  readonly q4: boolean;
  readonly codes: ArrayBufferLike;
  readonly codesOffset: number;
  readonly scales: ArrayBufferLike;
  readonly scalesOffset: number;
}

/**
 * Runs a job through an instance of the module, in blocks of rows of about 256 KiB of input (copied
 * into its memory, or read there from the job's file by `read`, which returns the bytes it read;
 * the codes and scales copied out); returns -1 or the first refused group (its index over the whole
 * tensor, row-major). Self-contained (workers run its source text).
 */
export function quantizeBlocks(wasm: { memory: WebAssembly.Memory; quantize: (...a: number[]) => number }, job: QuantJob,
  read?: (into: Uint8Array, position: number) => number): number {
  const G = job.K / 32, rowIn = job.K * job.eb, rowCodes = job.q4 ? job.K / 2 : job.K;
  const block = Math.max(1, Math.floor(262144 / rowIn));
  const IN = 1024, CODES = IN + block * rowIn, SCALES = CODES + block * rowCodes, need = SCALES + block * G * 2;
  if (wasm.memory.buffer.byteLength < need) wasm.memory.grow(Math.ceil((need - wasm.memory.buffer.byteLength) / 65536));
  const heap = new Uint8Array(wasm.memory.buffer);
  for (let r = 0; r < job.rows; r += block) {
    const n = Math.min(block, job.rows - r), row = job.row0 + r;
    if (read) {
      const got = read(heap.subarray(IN, IN + n * rowIn), job.inOffset + row * rowIn);
      if (got < n * rowIn) throw new Error(`file ended after ${job.inOffset + row * rowIn + got} bytes, expected ${job.inOffset + (row + n) * rowIn} (truncated since it was opened?)`);
    } else heap.set(new Uint8Array(job.input!, job.inOffset + row * rowIn, n * rowIn), IN);
    const bad = wasm.quantize(IN, job.dtype, n * G, CODES, SCALES, job.q4 ? 1 : 0);
    if (bad >= 0) return row * G + bad;
    new Uint8Array(job.codes, job.codesOffset + row * rowCodes, n * rowCodes).set(heap.subarray(CODES, CODES + n * rowCodes));
    new Uint8Array(job.scales, job.scalesOffset + row * G * 2, n * G * 2).set(heap.subarray(SCALES, SCALES + n * G * 2));
  }
  return -1;
}

const DTYPE_CODE: Readonly<Record<string, { code: number; eb: number }>> = { f32: { code: 0, eb: 4 }, bf16: { code: 1, eb: 2 }, f16: { code: 2, eb: 2 } };

/** Where a quantised tensor's codes (`part` 0) and scales (1) go: a buffer of at least `bytes`. */
export type QuantMemory = (bytes: number, part: 0 | 1) => ArrayBufferLike;

/** What a job needs, and the outputs it fills; null where the module does not apply (then the
 *  reference decides, and says why it refuses). */
function plan(t: Tensor, dtype: QuantDType, memory: QuantMemory) {
  const d = DTYPE_CODE[t.dtype];
  if (!d || shapeReason(t.shape)) return null;
  const [N, K] = t.shape as [number, number];
  const nc = dtype === 'q4' ? (N * K) / 2 : N * K, ns = N * K / QUANT_GROUP;
  const codes = memory(nc, 0), scales = memory(ns * 2, 1);
  const job: Omit<QuantJob, 'row0' | 'rows'> = { input: t.data.buffer, inOffset: t.data.byteOffset, dtype: d.code, eb: d.eb, K, q4: dtype === 'q4', codes, codesOffset: 0, scales, scalesOffset: 0 };
  const result = (bad: number): QuantResult => (bad >= 0 ? quantize(t, dtype)
    : { q: { dtype, shape: [N, K], codes: dtype === 'q8' ? new Int8Array(codes, 0, nc) : new Uint8Array(codes, 0, nc), scales: new Uint16Array(scales, 0, ns) } });
  return { N, job, result };
}

let local: { memory: WebAssembly.Memory; quantize: (...a: number[]) => number } | null = null;

/** `quantize` on this thread with the module (the reference where the module cannot run). */
export function quantizeWasm(t: Tensor, dtype: QuantDType): QuantResult {
  const m = quantizerModule();
  const p = m && plan(t, dtype, (b) => new ArrayBuffer(b));
  if (!p) return quantize(t, dtype);
  local ??= new WebAssembly.Instance(m).exports as never;
  return p.result(quantizeBlocks(local!, { ...p.job, row0: 0, rows: p.N }));
}

/** A worker's loop: instantiate, then run each job it is sent and answer with its result, or
 *  { error } (a job's file: opened, read with positions and closed through `fs`, Node's). */
const WORKER_MAIN = `(module, post, listen, fs) => {
const quantizeBlocks = ${quantizeBlocks.toString()};
const wasm = new WebAssembly.Instance(module).exports;
listen((job) => {
  let fd = -1;
  try {
    if (job.path) fd = fs.openSync(job.path, 'r');
    post(quantizeBlocks(wasm, job, fd < 0 ? undefined : (into, position) => {
      let done = 0;
      for (let got = 1; done < into.length && got > 0; done += got) got = fs.readSync(fd, into, done, into.length - done, position + done);
      return done;
    }));
  } catch (e) {
    post({ error: String(e && e.message || e) });
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
});
post(-2);
}`;

/** A worker that answers one message per message sent (Node or browser). */
interface Port {
  send(job: QuantJob): Promise<number>;
  close(): void;
}

function nodePort(module: WebAssembly.Module): Promise<Port> {
  const w = new NodeWorker(`const { workerData, parentPort } = require('node:worker_threads');
(${WORKER_MAIN})(workerData, (m) => parentPort.postMessage(m), (f) => parentPort.on('message', f), require('node:fs'));`, { eval: true, workerData: module });
  return portOf(
    (f) => {
      w.on('message', f);
      w.on('error', (e) => f(e));
      w.on('exit', (code) => f(new Error(`a quantiser worker exited (code ${code})`)));
    },
    (job) => { w.ref(); w.postMessage(job); },
    () => w.unref(),
    () => void w.terminate(),
  );
}

function webPort(module: WebAssembly.Module): Promise<Port> {
  const url = URL.createObjectURL(new Blob([`self.onmessage = (e) => { self.onmessage = null;
(${WORKER_MAIN})(e.data, (m) => self.postMessage(m), (f) => { self.onmessage = (e) => f(e.data); }, null); };`], { type: 'text/javascript' }));
  const w = new Worker(url);
  w.postMessage(module);
  const port = portOf(
    (f) => { w.onmessage = (e) => f(e.data); w.onerror = (e) => { e.preventDefault(); f(new Error(e.message || 'a quantiser worker failed to start')); }; },
    (job) => w.postMessage(job),
    () => {},
    () => w.terminate(),
  );
  // the URL goes once the worker has started (or failed to)
  void port.then(() => URL.revokeObjectURL(url), () => URL.revokeObjectURL(url));
  return port;
}

/** A port over a worker's messages: the first (-2) says it is ready; each later answers the
 *  oldest job not yet answered (a worker runs its jobs in order). */
function portOf(on: (f: (m: number | Error | { error: string }) => void) => void, post: (job: QuantJob) => void, idle: () => void, end: () => void): Promise<Port> {
  const waiting: ((m: number | Error) => void)[] = [];
  on((m) => {
    if (m instanceof Error) for (const w of waiting.splice(0)) w(m);
    else waiting.shift()?.(typeof m === 'number' ? m : new Error(m.error));
    if (!waiting.length) idle();
  });
  const next = () => new Promise<number>((resolve, reject) => {
    waiting.push((m) => (m instanceof Error ? reject(m) : resolve(m)));
  });
  const port: Port = {
    send(job) { const p = next(); post(job); return p; },
    close: end,
  };
  return next().then(() => port);
}

/** Worker threads quantising with the module; a tensor's rows are split among them. */
export class QuantPool {
  private constructor(private readonly ports: readonly Port[]) {}

  /** Its worker threads. */
  get threads(): number {
    return this.ports.length;
  }

  /** A pool of `threads` workers, or null where there can be none (no WebAssembly SIMD, no
   *  SharedArrayBuffer, no workers, or they fail to start: a page's Content-Security-Policy without
   *  worker-src blob:): then the caller quantises on its own thread, and says so
   *  (Model.quantization.quantizer). */
  static async start(threads: number): Promise<QuantPool | null> {
    const module = quantizerModule();
    const shared = typeof SharedArrayBuffer === 'function' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
    const canSpawn = onNode() ? typeof NodeWorker === 'function' : typeof Worker === 'function';
    if (!module || !shared || !canSpawn || threads < 1) return null;
    const ports = await Promise.allSettled(Array.from({ length: threads }, () => (onNode() ? nodePort(module) : webPort(module))));
    const ok = ports.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
    if (ok.length === ports.length) return new QuantPool(ok);
    for (const p of ok) p.close();
    return null;
  }

  /** Memory a tensor read for `quantize` may live in (the workers read it where it lies). */
  static memory(bytes: number): SharedArrayBuffer {
    return new SharedArrayBuffer(bytes);
  }

  /** `quantize(t, dtype)`, its rows split among the workers (t's data must be in shared memory:
   *  QuantPool.memory; elsewhere it runs on this thread). The codes and scales go to `memory`
   *  (shared; default: fresh). */
  async quantize(t: Tensor, dtype: QuantDType, memory: QuantMemory = (b) => new SharedArrayBuffer(b)): Promise<QuantResult> {
    const p = t.data.buffer instanceof SharedArrayBuffer ? plan(t, dtype, memory) : null;
    if (!p) return quantizeWasm(t, dtype);
    const W = Math.min(this.ports.length, p.N), per = Math.ceil(p.N / W);
    const bad = await Promise.all(this.ports.slice(0, W).map((port, i) =>
      port.send({ ...p.job, row0: i * per, rows: Math.max(0, Math.min(per, p.N - i * per)) })));
    return p.result(bad.find((b) => b >= 0) ?? -1);
  }

  /** A tensor of a local checkpoint file quantised where it lies: each worker reads its rows
   *  itself (nothing of it passes through this thread or its memory). `info`: the tensor's file, its
   *  absolute byte range and stored dtype (runtime/safetensors.ts TensorInfo). Null where the module
   *  does not take it (the caller reads it and quantises as usual); `refused` where it refuses a
   *  group (the caller reads it for the reference's reason). Rejects with the read's failure. */
  async quantizeFile(info: { readonly file: string; readonly begin: number; readonly fileDtype: string; readonly shape: readonly number[] },
    dtype: QuantDType, memory: QuantMemory = (b) => new SharedArrayBuffer(b)): Promise<QuantResult | 'refused' | null> {
    const stored = ({ F32: 'f32', BF16: 'bf16', F16: 'f16' } as Record<string, string>)[info.fileDtype];
    const p = stored ? plan({ dtype: stored, shape: info.shape, data: new Uint16Array(0) } as unknown as Tensor, dtype, memory) : null;
    if (!p) return null;
    const W = Math.min(this.ports.length, p.N), per = Math.ceil(p.N / W);
    const bad = await Promise.all(this.ports.slice(0, W).map((port, i) =>
      port.send({ ...p.job, input: null, path: info.file, inOffset: info.begin, row0: i * per, rows: Math.max(0, Math.min(per, p.N - i * per)) })));
    return bad.some((b) => b >= 0) ? 'refused' : p.result(-1);
  }

  close(): void {
    for (const p of this.ports) p.close();
  }
}
