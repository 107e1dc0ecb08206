// The integer-dot GEMV (codegen/wasm/dot.ts `mvi`) streaming weights from memory, as a Bamba-9B decode
// step reads them: the four products of a layer (in_proj [16768, 4096], out_proj [4096, 8192], the
// MLP's gate/up [28672, 4096] and down [4096, 14336]) over `--layers` layers (each its own copy, so
// the weights do not stay in cache between steps), one activation row, on `--threads` threads.
// Weight GB/s for the module as built and for the same module without its read-ahead
// (WasmTarget.readAhead 0), alternating round by round in one process; beside them the most a thread
// reads from memory here (a WebAssembly loop that sums 1 GiB, 64 bytes an iteration, no arithmetic
// to speak of) and the memory-copy anchor of bench/bamba9b.ts.
//
// Writes bench/results/gemv-stream.json.
//
// Run: npx tsx bench/gemv-stream.ts [--layers 6] [--threads 2] [--dtype q4|q8] [--activations q8|f32] [--rounds 3]

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { assemble, wasmKernels } from '../codegen/wasm/assemble.ts';
import { WASM_FMA_TARGET, type WasmTarget } from '../codegen/wasm/target.ts';
import type { ActivationFormat } from '../runtime/act-quant.ts';
import { type QuantDType, type QuantTensor, quantize } from '../runtime/quant.ts';
import { type PackedWeight, WasmKernels } from '../runtime/wasm/kernels.ts';
import { QUANT_LAYOUT } from '../runtime/wasm/layout.ts';
import { wasmModule } from '../runtime/wasm/module.ts';
import { copyBench } from './memcopy.ts';

const argv = process.argv;
const arg = (name: string, dflt: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : dflt);
const LAYERS = Number(arg('--layers', '6')), THREADS = Number(arg('--threads', '2')), ROUNDS = Number(arg('--rounds', '3'));
const DTYPE = arg('--dtype', 'q4') as QuantDType, ACTS = arg('--activations', 'q8') as ActivationFormat;
const SHAPES: readonly [number, number][] = [[16768, 4096], [4096, 8192], [28672, 4096], [4096, 14336]];
const f2 = (x: number) => x.toFixed(2);

function weight(N: number, K: number): QuantTensor {
  const v = new Float32Array(N * K);
  for (let i = 0; i < v.length; i++) v[i] = Math.sin(i * 12.9898) * 0.05;
  const q = quantize({ dtype: 'f32', shape: [N, K], data: v }, DTYPE);
  if ('reason' in q) throw new Error(q.reason);
  return q.q;
}

/** A module's kernels with every layer's weights packed; `step` runs one decode step's products. */
async function variant(t: WasmTarget, ws: readonly QuantTensor[]) {
  const wk = new WasmKernels(await wasmModule(await wasmKernels(t)), THREADS);
  wk.activations = ACTS;
  const xAt = wk.allocate(4 * 16384), yAt = wk.allocate(4 * 32768);
  new Float32Array(wk.memory.buffer, xAt, 16384).forEach((_, i, a) => { a[i] = Math.cos(i) * 3; });
  const packed: PackedWeight[] = [];
  for (let l = 0; l < LAYERS; l++) for (const w of ws) packed.push(wk.packQuant(w));
  const bytes = packed.reduce((a, p) => a + p.panels * (p.K / 32) * QUANT_LAYOUT[DTYPE].group, 0);
  const step = () => { for (const p of packed) wk.linearAt(p, xAt, p.K, 1, yAt, p.panels * 8); };
  step();
  return { wk, bytes, step };
}

/** Seconds of the fastest of `n` calls. */
function fastest(fn: () => void, n: number): number {
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

const READ_WAT = `(module (import "env" "memory" (memory 1 65536 shared))
 (func (export "sum") (param $p i32) (param $e i32) (result i32) (local $a v128) (local $b v128) (local $c v128) (local $d v128)
  (loop $l
   (local.set $a (i32x4.add (local.get $a) (v128.load (local.get $p))))
   (local.set $b (i32x4.add (local.get $b) (v128.load offset=16 (local.get $p))))
   (local.set $c (i32x4.add (local.get $c) (v128.load offset=32 (local.get $p))))
   (local.set $d (i32x4.add (local.get $d) (v128.load offset=48 (local.get $p))))
   (local.set $p (i32.add (local.get $p) (i32.const 64)))
   (br_if $l (i32.lt_u (local.get $p) (local.get $e))))
  (i32x4.extract_lane 0 (i32x4.add (i32x4.add (local.get $a) (local.get $b)) (i32x4.add (local.get $c) (local.get $d))))))`;
const READ_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { memory, module, lo, hi, ctl: c } = workerData;
const ctl = new Int32Array(c), ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
parentPort.postMessage(0);
let gen = 0, s = 0;
for (;;) {
  Atomics.wait(ctl, 0, gen); gen = Atomics.load(ctl, 0);
  if (Atomics.load(ctl, 2)) break;
  s += ex.sum(lo, hi); Atomics.add(ctl, 1, 1); Atomics.notify(ctl, 1);
}`;

/** GB/s of `threads` workers summing one GiB of a shared WebAssembly memory, each its own part (best of 5). */
async function readBandwidth(threads: number): Promise<number> {
  const BYTES = 1 << 30;
  const memory = new WebAssembly.Memory({ initial: BYTES / 65536 + 1, maximum: 65536, shared: true });
  new Uint8Array(memory.buffer).fill(3);
  const module = await WebAssembly.compile(await assemble(READ_WAT, 'read.wat') as BufferSource);
  const ctl = new Int32Array(new SharedArrayBuffer(12));
  const part = BYTES / threads;
  const workers = Array.from({ length: threads }, (_, i) => new Worker(READ_WORKER, { eval: true, workerData: { memory, module, lo: i * part, hi: (i + 1) * part, ctl: ctl.buffer } }));
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
  const once = () => {
    Atomics.store(ctl, 1, 0);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    for (let d = 0; d < threads; d = Atomics.load(ctl, 1)) Atomics.wait(ctl, 1, d, 100);
  };
  once();
  const s = fastest(once, 5);
  Atomics.store(ctl, 2, 1);
  Atomics.add(ctl, 0, 1);
  Atomics.notify(ctl, 0);
  await Promise.all(workers.map((w) => w.terminate()));
  return BYTES / s / 1e9;
}

const ws = SHAPES.map(([N, K]) => weight(N, K));
const built = await variant(WASM_FMA_TARGET, ws);
const none = await variant({ ...WASM_FMA_TARGET, readAhead: 0 }, ws);
console.log(`${DTYPE}, activations ${ACTS}, ${THREADS} threads, ${LAYERS} layers: ${f2(built.bytes / 1e9)} GB of panels a step; read-ahead ${WASM_FMA_TARGET.readAhead} bytes`);
const rates: Record<string, number[]> = { [`read-ahead ${WASM_FMA_TARGET.readAhead}`]: [], 'no read-ahead': [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, v] of [[`read-ahead ${WASM_FMA_TARGET.readAhead}`, built], ['no read-ahead', none]] as const) rates[name]!.push(v.bytes / fastest(v.step, 3) / 1e9);
}
for (const [name, r] of Object.entries(rates)) console.log(`  ${name.padEnd(16)} ${r.map(f2).join(', ')} GB/s of weights (best of 3 steps, by round)`);
built.wk.close();
none.wk.close();
const read = { one: await readBandwidth(1), all: await readBandwidth(THREADS) };
console.log(`a read loop over 1 GiB: 1 thread ${f2(read.one)} GB/s, ${THREADS} threads ${f2(read.all)} GB/s`);
const n = 512 << 20;
const copy = { one: 2 * n / copyBench(n, 1, 5) / 1e9, all: 2 * n / copyBench(n, THREADS, 5) / 1e9 };
console.log(`memory copy (read + write counted, 512 MiB): 1 thread ${f2(copy.one)} GB/s, ${THREADS} threads ${f2(copy.all)} GB/s`);
const results = join(import.meta.dirname, 'results');
mkdirSync(results, { recursive: true });
writeFileSync(join(results, 'gemv-stream.json'), JSON.stringify({ dtype: DTYPE, activations: ACTS, threads: THREADS, layers: LAYERS, bytes: built.bytes, readAhead: WASM_FMA_TARGET.readAhead, weightGBs: rates, readGBs: read, copyGBs: copy }, null, 2) + '\n');
process.exit(0);
