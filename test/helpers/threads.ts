// A model on the CPU reference engine and on the wasm backend at 1, 2 and 3 threads (the program's
// own module shared by the threads), for tests that the threads change no bit of the logits; the
// kernel modules load in the calling file's beforeAll.

import { beforeAll, expect } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { expectLogitsClose } from './checkpoints.ts';

export interface OnThreads {
  readonly cpu: Model;
  /** On 1, 2 and 3 threads. */
  readonly wasm: readonly Model[];
  dispose(): void;
}

export type ThreadOptions = { quantize?: 'q4'; activations?: 'q8' };

export function useModelsOnThreads(): (program: Program, dir: string, capacity: number, opts: ThreadOptions) => Promise<OnThreads> {
  let kernels: Uint8Array[];
  beforeAll(async () => { kernels = await wasmKernelVariants(); });
  return async (program, dir, capacity, opts) => {
    const cpu = await Model.loadProgram(program, dir, { backend: 'cpu', threads: 1, capacity, ...opts });
    const own = await wasmProgram(program);
    const wasm = await Promise.all([1, 2, 3].map((threads) => Model.loadProgram(program, dir, { backend: 'wasm', threads, capacity, wasmKernels: kernels, wasmProgram: own, ...opts })));
    return { cpu, wasm, dispose: () => { cpu.dispose(); for (const m of wasm) m.dispose(); } };
  };
}

/** `got` (the runs on 1, 2 and 3 threads) the same bits, and the CPU engine's `want` within 1e-5 of
 *  the logits' scale (test/e2e/wasm.test.ts' bound). */
export function expectSameOnThreads(want: readonly Float32Array[], got: readonly (readonly Float32Array[])[], label: string, V: number): void {
  for (let t = 1; t < got.length; t++) expect(firstDifference(got[0]!, got[t]!), `${label}: 1 thread against ${t + 1}`).toBeNull();
  want.forEach((w, i) => expectLogitsClose(got[1]![i]!, w, 1e-5, `${label}: output ${i} against the CPU engine`, V));
}

/** The first element where two runs' logits differ in bits, or null. */
function firstDifference(a: readonly Float32Array[], b: readonly Float32Array[]): string | null {
  for (let i = 0; i < a.length; i++) {
    const x = new Uint32Array(a[i]!.buffer, a[i]!.byteOffset, a[i]!.length), y = new Uint32Array(b[i]!.buffer, b[i]!.byteOffset, b[i]!.length);
    if (x.length !== y.length) return `output ${i}: ${x.length} against ${y.length} values`;
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return `output ${i}, element ${j}: ${a[i]![j]} against ${b[i]![j]}`;
  }
  return null;
}
