// The routing families on the wasm backend's program module (codegen/wasm/route.ts) against the
// reference kernels (runtime/cpu/route.ts, what wasm ran before): CPU microseconds per call, one
// thread, interleaved rounds of each so a shared machine's load falls on both alike.
// Router-sized inputs: T tokens over E = 64 experts (softmax, top-6), gather and scatter of 4 of 8
// rows of 128 per token. Run: npx tsx bench/routing.ts [T]

import { assembleWith, loadWabt, wasmKernels } from '../codegen/wasm/assemble.ts';
import { renderWasmProgram } from '../codegen/wasm/program.ts';
import type { Attrs } from '../compiler/ops.ts';
import type { Backend } from '../runtime/backend.ts';
import { CpuBackend } from '../runtime/cpu/backend.ts';
import type { View } from '../runtime/program.ts';
import { WasmBackend } from '../runtime/wasm/backend.ts';
import { type OpInput, runOp } from '../test/helpers/kernels.ts';

const T = Number(process.argv[2] ?? 512), E = 64;
let seed = 7;
const rand = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296) * (hi - lo));
const picks = { act: Float32Array.from({ length: T * 4 }, (_, i) => (i * 3) % 8), shape: ['T', 4], dtype: 'i32' } as const;
const CASES: [string, Attrs, OpInput[]][] = [
  ['softmax', {}, [{ act: rand(T * E, -8, 8), shape: ['T', E] }]],
  ['topk', { k: 6, normalize: true }, [{ act: rand(T * E, 0, 1), shape: ['T', E] }]],
  ['gather', {}, [{ act: rand(T * 8 * 128, -1, 1), shape: ['T', 8, 128] }, picks]],
  ['scatter', { rows: 8 }, [{ act: rand(T * 4 * 128, -1, 1), shape: ['T', 4, 128] }, picks]],
];

const kernels = new WebAssembly.Module(await wasmKernels() as Uint8Array<ArrayBuffer>);
const wabt = await loadWabt();
console.log(`routing kernels, T = ${T}: CPU µs per call (one thread; 18 interleaved rounds of 10 calls after 2)`);
for (const [op, attrs, inputs] of CASES) {
  const p = runOp(op, inputs, attrs, T).program;
  const entry = p.entries.forward, k = entry.kernels.find((x) => x.family === op)!;
  const wasm = new WasmBackend(p, kernels, 1, new WebAssembly.Module(assembleWith(wabt, renderWasmProgram(p), 'bench.wat') as Uint8Array<ArrayBuffer>));
  const cpu = new CpuBackend(p);
  const begin = (b: Backend) => {
    const pool = b.createStatePool(4);
    const inv = b.begin(entry, { tokens: new Int32Array(T), positions: new Int32Array(T), seqs: [{ start: 0, len: T }], slots: [pool.acquire()], lengths: [0] }, pool);
    ['x', 'idx'].forEach((n, i) => { const v = k.inputs[n]; if (v) inv.write(v as View, (inputs[i] as { act: Float32Array }).act); });
    return inv;
  };
  const runs = [begin(cpu), begin(wasm)], us = [0, 0];
  for (let round = 0; round < 20; round++) {
    for (const b of [0, 1]) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 10; i++) runs[b]!.dispatch(k);
      const c = process.cpuUsage(c0);
      if (round >= 2) us[b]! += (c.user + c.system) / 10 / 18;
    }
  }
  console.log(`  ${op.padEnd(8)} reference ${us[0]!.toFixed(0).padStart(6)}  wasm module ${us[1]!.toFixed(0).padStart(6)}  (${(us[0]! / us[1]!).toFixed(1)}×)`);
  wasm.dispose();
  cpu.dispose();
}
