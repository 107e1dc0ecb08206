// The stand-in libcuda (fake-cuda/libcuda.c) for the CUDA backend's tests: compiled once per process,
// its own functions bound (what the last launch received, what the graphs did, the log of launches
// run), and a program's kernels as one "module" naming every function.

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CudaKernelFile } from '../../codegen/cuda/build.ts';
import { manifestEntries } from '../../codegen/cuda/build.ts';
import { ARGS_BYTES } from '../../runtime/cuda/abi.ts';
import { loadKoffi } from '../../runtime/cuda/driver.ts';
import { type CudaKernels, type CudaLaunchPlan, type CudaManifest, entryFunctions, functionName, kernelIds } from '../../runtime/cuda/kernels.ts';
import type { EntryName } from '../../runtime/program.ts';

export interface FakeCuda {
  /** The library's path (a `library` for openDriver / openCudaBackend). */
  readonly lib: string;
  launches(): number;
  last(name: Uint8Array, dims: Uint32Array, args: Uint8Array): number;
  /** [captures begun, graphs instantiated, graph launches, executable graphs alive, capturing now]. */
  graphs(): number[];
  /** The launches run since the last reset: [count, hash]; `reset` starts a new log. */
  runLog(reset?: boolean): [number, bigint];
}

let fake: Promise<FakeCuda> | null = null;

/** The stand-in library, built and bound once. */
export function fakeCuda(): Promise<FakeCuda> {
  return (fake ??= (async () => {
    const dir = join(tmpdir(), `archc-fake-cuda-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const lib = join(dir, 'libcuda.so.1');
    execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-o', lib, join(import.meta.dirname, 'fake-cuda', 'libcuda.c')]);
    process.env.FAKE_CUDA_ARGS_BYTES = String(ARGS_BYTES);
    const l = (await loadKoffi()).load(lib);
    const graphs = l.func('int fake_graphs(_Out_ int *out)') as unknown as (out: Int32Array) => number;
    const runLog = l.func('int fake_run_log(_Out_ uint32_t *out, int reset)') as unknown as (out: Uint32Array, reset: number) => number;
    return {
      lib,
      launches: l.func('int fake_launches(void)') as () => number,
      last: l.func('int fake_last_launch(void *name, void *dims, void *args)') as FakeCuda['last'],
      graphs: () => { const out = new Int32Array(5); graphs(out); return [...out]; },
      runLog: (reset = false) => { const out = new Uint32Array(3); runLog(out, reset ? 1 : 0); return [out[0]!, BigInt(out[1]!) | (BigInt(out[2]!) << 32n)]; },
    };
  })());
}

/** The entry functions of sources `ids` of `rendered`, named as in a module. */
export const moduleFunctions = (rendered: readonly CudaKernelFile[], ids: readonly string[]): string =>
  ids.map((id) => entryFunctions(rendered.find((r) => r.id === id)!.source).map((f) => functionName(f, id)).join(' ')).join(' ');

/** Kernels whose one "module" names every function of `rendered` (the stand-in finds functions by
 *  name), or `image` instead; rendered for a program keeping `bf16States` in bf16. */
export function fakeKernels(rendered: readonly CudaKernelFile[], image?: string, bf16States?: readonly number[]): CudaKernels {
  const ids = [...new Set(rendered.map((k) => k.id))].sort();
  const manifest: CudaManifest = { archs: ['sm_90'], entries: manifestEntries(rendered), modules: [{ file: 'cuda/sm_90/module0.cubin', arch: 'sm_90', kind: 'cubin', ids }], ...(bf16States ? { bf16States } : {}) };
  const text = image ?? moduleFunctions(rendered, ids);
  return { manifest, source: () => '', module: () => new TextEncoder().encode(`${text}\0`) };
}

/** Two phases for a kernel of `withPhases`: `archc_one` over T / 2 x 3 blocks of 64 threads, then
 *  `archc_two` over S blocks of 128 threads with 96 KiB of dynamic shared memory (above 48 KiB:
 *  its limit must be raised). */
export const PHASES = [
  { fn: 'one', threads: 64, rowsOf: 'T', rowMul: 1, rowDiv: 2, plusS: false, gridY: 3 },
  { fn: 'two', threads: 128, rowsOf: 'S', rowMul: 1, rowDiv: 1, plusS: false, gridY: 1, shared: 96 * 1024 },
] as const;

/** `kernels` with the last kernel of `entry` (the head: a product of few rows, here without its GEMV,
 *  so that its phases run) run as PHASES and a workspace, `plan` over that; the module names the
 *  phases' functions too. (A source's functions are looked up once, by the first kernel naming it:
 *  a source shared by several entries takes its phases in each.) */
export function withPhases(kernels: CudaKernels, entry: EntryName, plan: Partial<CudaLaunchPlan> = {}): CudaKernels {
  const ks = [...kernels.manifest.entries[entry]];
  const last = ks[ks.length - 1]!;
  const ps = [...ks.slice(0, -1), { ...last, launch: { ...last.launch, gemvRows: undefined, gemvUpTo: undefined, phases: PHASES, scratch: { fixed: 1000, perT: 7, perS: 5 }, ...plan } }];
  const before = new TextDecoder().decode(kernels.module('')).replace(/\0$/, '');
  const image = `${before} ${kernelIds(last).map((id) => `archc_one_${id} archc_two_${id}`).join(' ')}`;
  return { ...kernels, manifest: { ...kernels.manifest, entries: { ...kernels.manifest.entries, [entry]: ps } }, module: () => new TextEncoder().encode(`${image}\0`) };
}
