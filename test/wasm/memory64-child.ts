// Run by test/wasm/memory64.test.ts in a child Node started with --experimental-wasm-memory64 (Node
// 20's memory64 is behind that flag): a checkpoint loaded on the wasm backend twice, once on one
// 32-bit memory and once on one memory64 memory with weights pushed past memory 0's share by a small
// wasmMemoryBytes, both without the program module (it has no memory64 form); prints, as JSON, each
// run's memory report and the first bitwise difference of every output (null: equal; the last is
// three greedy tokens), and what runtime/wasm/choice.ts picks for weights around one 32-bit memory.
// One process serves every run of the test file: each line of stdin is a job, JSON { dir, quantize?,
// activations?, plain?, threads, limit, a, b }, answered in order by a line `RESULT <json>` (or
// `FAILED <json message>`) on stdout; it ends with stdin.

import { createInterface } from 'node:readline';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { type LoadOptions, Model } from '../../runtime/model.ts';
import { memory64Support } from '../../runtime/wasm/memory64.ts';
import { chooseMemory64, memory64Room } from '../../runtime/wasm/choice.ts';
import { MEMORY0_RESERVE, MEMORY_BYTES } from '../../runtime/wasm/memories.ts';
import { programFor } from '../helpers/checkpoints.ts';
import { firstDiff, memory64Outputs } from '../helpers/memory64.ts';

interface Job { dir: string; quantize?: 'q8' | 'q4'; activations?: 'q8'; plain?: boolean; threads: number; limit: number; a: number[]; b: number[] }

async function run({ dir, quantize, activations, plain, threads, limit, a, b }: Job) {
  const program = programFor(dir);
  // the program module as a package passes it: the 32-bit run leaves it out (null), memory64 has no form of it
  // `plain`: the plain SIMD variant of both forms (no fused multiply-add, no integer-dot GEMV)
  const pick = (vs: Uint8Array[]) => (plain ? vs.at(-1)! : vs);
  const opts: LoadOptions = { backend: 'wasm', wasmKernels: pick(await wasmKernelVariants()), wasmKernels64: pick(await wasmKernelVariants(true)), wasmProgram: await wasmProgram(program), threads, ...(quantize ? { quantize } : {}), ...(activations ? { activations } : {}) };
  const one = await Model.loadProgram(program, dir, { ...opts, wasmMemory64: false, wasmProgram: null });
  const wide = await Model.loadProgram(program, dir, { ...opts, wasmMemory64: true, wasmMemoryBytes: limit });
  const want = await memory64Outputs(one, a, b), got = await memory64Outputs(wide, a, b);
  const support = memory64Support()!;
  const room = memory64Room(support), k64 = opts.wasmKernels64!;
  const refused = (f: () => unknown) => { try { f(); return null; } catch (e) { return { code: (e as { code?: string }).code, key: (e as { key?: string }).key, message: (e as Error).message }; } };
  const choice = {
    room,
    // one 32-bit memory's share holds it: 32-bit; past it and within the room: memory64; past the room: 32-bit memories
    fits32: chooseMemory64(undefined, k64, MEMORY_BYTES * (1 - MEMORY0_RESERVE)) !== null,
    past32: chooseMemory64(undefined, k64, Math.min(room, MEMORY_BYTES * (1 - MEMORY0_RESERVE) + 2 ** 20)) !== null,
    pastRoom: chooseMemory64(undefined, k64, room + 1) !== null,
    noKernels: chooseMemory64(undefined, undefined, room) !== null,
    never: chooseMemory64(false, k64, room) !== null,
    forcedPastRoom: refused(() => chooseMemory64(true, k64, room + 1)),
    forcedNoKernels: refused(() => chooseMemory64(true, undefined, 1)),
  };
  const result = {
    support, choice,
    one: one.memories, wide: wide.memories,
    diffs: want.map((w, i) => firstDiff(got[i]!, w)),
    nonzero: want.map((w) => w.some((v) => v !== 0)),
    outputs: want.length,
  };
  one.dispose();
  wide.dispose();
  return result;
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    process.stdout.write(`RESULT ${JSON.stringify(await run(JSON.parse(line) as Job))}\n`);
  } catch (e) {
    process.stdout.write(`FAILED ${JSON.stringify(e instanceof Error ? e.stack ?? e.message : String(e))}\n`);
  }
  // the runs' memories (the memory64 one reaches past 2 GiB) go before the next job's
  (globalThis as { gc?: () => void }).gc?.();
}
