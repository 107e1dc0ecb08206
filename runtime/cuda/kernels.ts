// Where a program's compiled CUDA kernels come from: the package's cuda/ folder (manifest.json,
// one `.cu` per distinct kernel source, cubins per architecture, PTX of the lowest), chosen for the
// device at load — a cubin for its architecture, else PTX its driver compiles, else the source
// compiled by NVRTC. Every module is one translation unit of several kernels, each in its own
// namespace with its entry functions renamed <name>_<id> (archc_main_<id>, archc_gemv_<id>, …).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EntryName } from '../program.ts';
import type { QuantDType } from '../quant.ts';
import { RuntimeError } from '../errors.ts';

/** A compiled module of a package: its file, the architecture it is for, and the kernels it holds. */
export interface CudaModuleInfo {
  /** Path in the package, e.g. `cuda/sm_90/module0.cubin`. */
  readonly file: string;
  /** `sm_90`: a cubin runs on exactly that architecture; PTX on it and every later one. */
  readonly arch: string;
  readonly kind: 'cubin' | 'ptx';
  readonly ids: readonly string[];
}

/** The grid of a launch, once T and S are known: grid.x = ceil(rows(rowsOf) · rowMul / rowDiv)
 *  (+ S when plusS), grid.y = gridY. */
export interface CudaGrid {
  readonly threads: number;
  /** Whose rows count the grid: a view of the kernel (`x`, `y`), or the batch's T or S. */
  readonly rowsOf: string;
  readonly rowMul: number;
  readonly rowDiv: number;
  readonly plusS: boolean;
  readonly gridY: number;
}

/** One launch of a kernel that runs as several: the source's `__global__` function `archc_<fn>`, its
 *  grid, and its bytes of dynamic shared memory (`ARCHC_DYNAMIC_SHARED` in the prelude). */
export interface CudaPhase extends CudaGrid {
  readonly fn: string;
  readonly shared?: number;
}

/** A kernel's workspace in floats for T tokens in S sequences: fixed + perT·T + perS·S. Every kernel
 *  of a step gets the same one (`a.scratch`); they run in order on one stream. */
export interface CudaScratch {
  readonly fixed: number;
  readonly perT: number;
  readonly perS: number;
}

/** How a kernel is launched, from its CUDA schedule (codegen/cuda/schedule.ts): one `archc_main` of
 *  the plan's grid — a product of at most `gemvUpTo` rows runs its GEMV instead, ceil(rows /
 *  gemvRows) x gemvGridY blocks — or, when the plan has phases, each phase's function in turn. */
export interface CudaLaunchPlan extends CudaGrid {
  readonly gemvUpTo?: number;
  readonly gemvRows?: number;
  readonly gemvGridY?: number;
  readonly phases?: readonly CudaPhase[];
  readonly scratch?: CudaScratch;
}

/** The launch fields of a schedule (what the manifest keeps of it). */
export function launchPlan(s: CudaLaunchPlan): CudaLaunchPlan {
  const { threads, rowsOf, rowMul, rowDiv, plusS, gridY, gemvUpTo, gemvRows, gemvGridY, phases, scratch } = s;
  return {
    threads, rowsOf, rowMul, rowDiv, plusS, gridY,
    ...(gemvRows !== undefined ? { gemvUpTo, gemvRows, gemvGridY } : {}),
    ...(phases ? { phases: phases.map(({ fn, threads, rowsOf, rowMul, rowDiv, plusS, gridY, shared }) => ({ fn, threads, rowsOf, rowMul, rowDiv, plusS, gridY, ...(shared ? { shared } : {}) })) } : {}),
    ...(scratch ? { scratch: { fixed: scratch.fixed, perT: scratch.perT, perS: scratch.perS } } : {}),
  };
}

/** One kernel of an entry in the manifest: its name, its source id (its matrix in bf16) and its
 *  launch; a kernel whose matrix loading may quantise also has a source per quantised format (the
 *  same launch), the backend picking by the format its weight was uploaded in, and a product one per
 *  format over 8-bit activations (`q8a8`, `q4a8`: LoadOptions.activations 'q8'). */
export interface CudaManifestKernel {
  readonly name: string;
  readonly id: string;
  readonly launch: CudaLaunchPlan;
  readonly formats?: Readonly<Partial<Record<QuantDType | `${QuantDType}a8`, string>>>;
}

/** Every source id of a manifest kernel: bf16, then its quantised formats'. */
export const kernelIds = (k: CudaManifestKernel): string[] => [k.id, ...Object.values(k.formats ?? {})];

/** cuda/manifest.json. */
export interface CudaManifest {
  readonly archs: readonly string[];
  /** Each entry's kernels in order. */
  readonly entries: Readonly<Record<EntryName, readonly CudaManifestKernel[]>>;
  readonly modules: readonly CudaModuleInfo[];
  /** The states the kernels keep in bf16 (runtime/program.ts withSsmState), where any are: a program
   *  loads only with kernels rendered for its own state formats. */
  readonly bf16States?: readonly number[];
}

/** Everything the backend may load kernels from. */
export interface CudaKernels {
  readonly manifest: CudaManifest;
  /** The `.cu` source of kernel id `id` (for NVRTC). */
  source(id: string): string;
  /** The bytes of a module file. */
  module(file: string): Uint8Array;
}

/** The kernels of a built package's cuda/ folder. */
export function kernelsFromDir(dir: string): CudaKernels {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) throw new RuntimeError('RT705', [dir, 'it has no manifest.json; build the package with `archc build`']);
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as CudaManifest;
  return {
    manifest,
    source: (id) => readFileSync(join(dir, 'kernels', `${id}.cu`), 'utf8'),
    module: (file) => readFileSync(join(dir, '..', file)),
  };
}

/** The `__global__` functions a kernel source defines (`archc_main`, `archc_gemv`, phases' `archc_<fn>`). */
export function entryFunctions(source: string): string[] {
  return [...new Set([...source.matchAll(/__global__\b[^;{]*?\b(archc_\w+)\s*\(/g)].map((m) => m[1]!))];
}

/** One translation unit holding the kernels `units` (their sources included as `<id>.cu`), each in
 *  its own namespace with its entry functions renamed `<name>_<id>`. The headers come first, at file
 *  scope: inside each namespace their include guards skip them. */
export function translationUnit(units: readonly { readonly id: string; readonly source: string }[]): string {
  return '#include <cuda_bf16.h>\n#include <mma.h>\n#include <cuda_pipeline.h>\n#include <stdint.h>\n#include <math.h>\n'
    + units.map(({ id, source }) => `namespace k_${id} {\n${renamedInclude(id, source)}}\n`).join('');
}

/** `#include "<id>.cu"` with the source's entry functions renamed `<name>_<id>` around it. */
export function renamedInclude(id: string, source: string): string {
  const fns = entryFunctions(source);
  return `${fns.map((f) => `#define ${f} ${functionName(f, id)}\n`).join('')}#include "${id}.cu"\n${fns.map((f) => `#undef ${f}\n`).join('')}`;
}

/** Entry function `fn` of kernel `id` in its module. */
export const functionName = (fn: string, id: string): string => `${fn}_${id}`;

const archNumber = (arch: string): number => Number(/(\d+)/.exec(arch)?.[1] ?? 0);

export interface ModulePlan {
  /** Modules to load as they are (cubins for the device, else PTX for an older architecture). */
  readonly load: readonly CudaModuleInfo[];
  /** Kernel ids no module covers: NVRTC compiles them. */
  readonly compile: readonly string[];
}

/** Which modules to load on a device of architecture `arch` (`sm_90`), and what is left to compile. */
export function planModules(m: CudaManifest, arch: string): ModulePlan {
  const want = new Set(Object.values(m.entries).flatMap((ks) => ks.flatMap(kernelIds)));
  const load: CudaModuleInfo[] = [];
  const take = (mods: readonly CudaModuleInfo[]) => {
    for (const mod of mods) {
      if (!mod.ids.some((id) => want.has(id))) continue;
      load.push(mod);
      for (const id of mod.ids) want.delete(id);
    }
  };
  take(m.modules.filter((x) => x.kind === 'cubin' && x.arch === arch));
  // PTX of the newest architecture the device can run
  take(m.modules.filter((x) => x.kind === 'ptx' && archNumber(x.arch) <= archNumber(arch)).sort((a, b) => archNumber(b.arch) - archNumber(a.arch)));
  return { load, compile: [...want].sort() };
}
