// Compiling a program's CUDA kernels: every kernel is rendered to a `.cu` — a product or embedding
// whose matrix loading may quantise once per format (bf16, q8, q4), since the format is chosen at
// load — and kernels that render alike (the same family, sizes and fused stages: the same layer at
// every depth) share one source,
// `cuda/kernels/<id>.cu`, always carried by the package. Where nvcc exists, the distinct sources
// are compiled per architecture to cubins in a few translation units (one per job, each kernel in
// its own namespace with its entry functions renamed `<name>_<id>` (`archc_main_<id>`, …): see
// translationUnit), cached by content; the lowest architecture's PTX comes along for newer GPUs;
// ptxas' report gives each kernel's registers, shared memory and spills. A rejection names the
// kernel's file and a command that reproduces it.

import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { InternalError } from '../../dsl/diagnostics.ts';
import { type EntryName, type Program, bf16States } from '../../runtime/program.ts';
import { type SourceFormat, sourceFormats } from '../../runtime/cuda/abi.ts';
import { launchPlan, translationUnit, type CudaKernels, type CudaLaunchPlan, type CudaManifest, type CudaManifestKernel, type CudaModuleInfo } from '../../runtime/cuda/kernels.ts';
import { renderKernel } from './render.ts';
import { checkCudaLimits } from './schedule.ts';

const run = promisify(execFile);

export interface CudaKernelFile {
  readonly entry: EntryName;
  readonly index: number;
  readonly name: string;
  readonly family: string;
  /** The format of its matrix this source reads (bf16 for kernels without one; q8a8 / q4a8: a
   *  product over 8-bit activations, runtime/cuda/abi.ts `sourceFormats`). */
  readonly format: SourceFormat;
  /** Path in the package of its (shared) source: `cuda/kernels/<id>.cu`. */
  readonly path: string;
  readonly id: string;
  readonly source: string;
  /** How the runtime launches it (from its schedule). */
  readonly launch: CudaLaunchPlan;
}

export interface FunctionUsage {
  readonly registers: number;
  readonly sharedBytes: number;
  readonly stackBytes: number;
  readonly spillStores: number;
  readonly spillLoads: number;
}

export interface CudaBuild {
  readonly kernels: readonly CudaKernelFile[];
  /** The states its kernels keep in bf16 (runtime/program.ts withSsmState), where any are. */
  readonly bf16States?: readonly number[];
  /** Compiled modules (package path -> bytes), per architecture; empty without nvcc. */
  readonly modules: ReadonlyMap<string, Uint8Array>;
  /** For the build report and the runtime: where each kernel's functions live, and their usage. */
  readonly report: {
    readonly nvcc: string | null;
    readonly archs: readonly string[];
    /** The compiled modules: file, architecture, cubin or PTX, and the kernel ids each holds. */
    readonly modules: readonly CudaModuleInfo[];
    /** Distinct kernel sources. */
    readonly sources: number;
    /** ptxas usage per arch, kernel id and function. */
    readonly usage: Readonly<Record<string, Readonly<Record<string, Readonly<Record<string, FunctionUsage>>>>>>;
    readonly compileMs: number;
    readonly cached: number;
    readonly compiled: number;
  };
}

/** A compiler rejection: the kernel's file, the command that reproduces it, nvcc's words. */
export class CudaCompileError extends InternalError {}

export const kernelId = (src: string): string => createHash('sha256').update(src).digest('hex').slice(0, 16);

/** nvcc's version line, or null when there is no nvcc on the PATH. */
export function nvccVersion(nvcc = 'nvcc'): string | null {
  try {
    return execFileSync(nvcc, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop() ?? '';
  } catch {
    return null;
  }
}

export function renderProgram(program: Program): CudaKernelFile[] {
  checkCudaLimits(program);
  const out: CudaKernelFile[] = [];
  for (const [entry, e] of Object.entries(program.entries) as [EntryName, Program['entries'][EntryName]][]) {
    e.kernels.forEach((k, index) => {
      for (const format of sourceFormats(k)) {
        const r = renderKernel(program, e, k, format);
        const id = kernelId(r.source);
        out.push({ entry, index, name: k.name, family: k.family, format, path: `cuda/kernels/${id}.cu`, id, source: r.source, launch: launchPlan(r.schedule) });
      }
    });
  }
  return out;
}

export interface CudaBuildOptions {
  readonly archs: readonly string[];
  readonly nvcc?: string;
  readonly jobs?: number;
  readonly cacheDir?: string;
}

/** Renders every kernel and, where nvcc exists, compiles the distinct ones for each architecture. */
export async function buildCuda(program: Program, opts: CudaBuildOptions): Promise<CudaBuild> {
  const t0 = performance.now();
  const kernels = renderProgram(program);
  const nvcc = opts.nvcc ?? 'nvcc';
  const version = nvccVersion(nvcc);
  const modules = new Map<string, Uint8Array>();
  const where: CudaModuleInfo[] = [];
  const usage: Record<string, Record<string, Record<string, FunctionUsage>>> = {};
  let cached = 0, compiled = 0;
  if (version !== null) {
    const byId = new Map(kernels.map((k) => [k.id, k]));
    const ids = [...byId.keys()].sort();
    const jobs = Math.max(1, Math.min(opts.jobs ?? availableParallelism(), ids.length));
    const groups = Array.from({ length: jobs }, (_, g) => ids.filter((_, i) => i % jobs === g));
    const cache = opts.cacheDir ?? join(homedir(), '.cache', 'archc', 'cuda');
    mkdirSync(cache, { recursive: true });
    const tasks = opts.archs.flatMap((arch) => groups.map((g, gi) => ({ arch, g, gi })));
    // PTX of the lowest architecture, which a newer GPU's driver compiles at load
    const ptxArch = [...opts.archs].sort((a, b) => archNumber(a) - archNumber(b))[0];
    // at most `jobs` nvcc processes at a time
    let next = 0;
    const worker = async () => {
      while (next < tasks.length) {
        const { arch, g, gi } = tasks[next++]!;
        const tu = translationUnit(g.map((id) => ({ id, source: byId.get(id)!.source })));
        const key = kernelId(`${version}\n${arch}\n${tu}\n${g.map((id) => byId.get(id)!.source).join('\n')}`);
        const dir = join(cache, key);
        const cubin = join(dir, 'module.cubin'), log = join(dir, 'ptxas.txt'), ptx = join(dir, 'keep', 'module.ptx');
        if (!existsSync(cubin)) {
          mkdirSync(join(dir, 'keep'), { recursive: true });
          for (const id of g) writeFileSync(join(dir, `${id}.cu`), byId.get(id)!.source);
          writeFileSync(join(dir, 'module.cu'), tu);
          try {
            // -keep leaves the PTX the cubin was made from
            const r = await run(nvcc, ['-cubin', `-arch=${arch}`, '-Xptxas', '-v', '-keep', '-keep-dir', 'keep', '-o', `${cubin}.tmp`, 'module.cu'], { cwd: dir, maxBuffer: 1 << 26 });
            writeFileSync(log, r.stderr);
            renameSync(`${cubin}.tmp`, cubin);
            compiled++;
          } catch (e) {
            throw rejection(e as { stderr?: string; message: string }, arch, g.map((id) => byId.get(id)!), kernels);
          }
        } else cached++;
        const file = `cuda/${arch}/module${gi}.cubin`;
        modules.set(file, readFileSync(cubin));
        where.push({ file, arch, kind: 'cubin', ids: g });
        if (arch === ptxArch && existsSync(ptx)) {
          const pfile = `cuda/${arch}/module${gi}.ptx`;
          modules.set(pfile, readFileSync(ptx));
          where.push({ file: pfile, arch, kind: 'ptx', ids: g });
        }
        const fns = parsePtxas(readFileSync(log, 'utf8'));
        for (const id of g) {
          ((usage[arch] ??= {})[id] = Object.fromEntries(Object.entries(fns).filter(([f]) => f.endsWith(`_${id}`)).map(([f, u]) => [f.replace(`_${id}`, ''), u])));
        }
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
  }
  const bf16 = bf16States(program);
  return {
    kernels, modules, ...(bf16.length ? { bf16States: bf16 } : {}),
    report: { nvcc: version, archs: opts.archs, sources: new Set(kernels.map((k) => k.id)).size, modules: where.sort((a, b) => a.file.localeCompare(b.file)), usage, compileMs: Math.round(performance.now() - t0), cached, compiled },
  };
}

/** The manifest of a build (cuda/manifest.json in a package). */
export function cudaManifest(b: CudaBuild): CudaManifest {
  return { archs: b.report.archs, entries: manifestEntries(b.kernels), modules: b.report.modules, ...(b.bf16States ? { bf16States: b.bf16States } : {}) };
}

/** Each entry's kernels in order: the bf16 source's id and launch, the quantised formats' ids. */
export function manifestEntries(kernels: readonly CudaKernelFile[]): CudaManifest['entries'] {
  const entries: Record<string, CudaManifestKernel[]> = {};
  const formats = new Map<CudaManifestKernel, Record<string, string>>();
  for (const k of kernels) {
    if (k.format !== 'bf16') continue;
    const mk = { name: k.name, id: k.id, launch: k.launch };
    (entries[k.entry] ??= [])[k.index] = mk;
  }
  for (const k of kernels) {
    if (k.format === 'bf16') continue;
    const mk = entries[k.entry]?.[k.index] ?? fail(`kernel ${k.name} has a ${k.format} source and no bf16 one`);
    if (JSON.stringify(k.launch) !== JSON.stringify(mk.launch)) fail(`kernel ${k.name} launches differently as ${k.format}`);
    const f = formats.get(mk) ?? formats.set(mk, {}).get(mk)!;
    f[k.format] = k.id;
  }
  for (const ks of Object.values(entries)) ks.forEach((mk, i) => { const f = formats.get(mk); if (f) ks[i] = { ...mk, formats: f }; });
  return entries as unknown as CudaManifest['entries'];
}

function fail(msg: string): never {
  throw new InternalError(`CUDA build: ${msg}`);
}

/** A build's kernels as the CUDA backend loads them, without writing a package. */
export function buildKernels(b: CudaBuild): CudaKernels {
  const sources = new Map(b.kernels.map((k) => [k.id, k.source]));
  return {
    manifest: cudaManifest(b),
    source: (id) => sources.get(id) ?? '',
    module: (file) => b.modules.get(file) ?? new Uint8Array(0),
  };
}

/** 80 for sm_80. */
const archNumber = (arch: string): number => Number(/(\d+)/.exec(arch)?.[1] ?? 0);

/** ptxas -v output -> usage per entry function. */
export function parsePtxas(text: string): Record<string, FunctionUsage> {
  const out: Record<string, FunctionUsage> = {};
  let fn: string | null = null;
  let stack = 0, stores = 0, loads = 0;
  for (const line of text.split('\n')) {
    const f = /Compiling entry function '(\w+)'/.exec(line) ?? /Function properties for (\w+)/.exec(line);
    if (f) { fn = f[1]!; continue; }
    const s = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (s && fn) { [stack, stores, loads] = [Number(s[1]), Number(s[2]), Number(s[3])]; continue; }
    // (sm_80's line goes on to constant memory: `..., 34208 bytes smem, 592 bytes cmem[0]`)
    const u = /Used (\d+) registers/.exec(line);
    if (u && fn) out[fn] = { registers: Number(u[1]), sharedBytes: Number(/(\d+) bytes smem/.exec(line)?.[1] ?? 0), stackBytes: stack, spillStores: stores, spillLoads: loads };
  }
  return out;
}

function rejection(e: { stderr?: string; message: string }, arch: string, group: readonly CudaKernelFile[], all: readonly CudaKernelFile[]): CudaCompileError {
  const text = e.stderr ?? e.message;
  const at = /(\w{16})\.cu\((\d+)\)/.exec(text);
  const k = (at && all.find((x) => x.id === at[1])) ?? group[0]!;
  const line = at ? Number(at[2]) : 1;
  const lines = k.source.split('\n');
  const frame = lines.slice(Math.max(0, line - 4), line + 2).map((l, i) => `${String(Math.max(1, line - 3) + i).padStart(5)} | ${l}`).join('\n');
  const errors = text.split('\n').filter((l) => /error/i.test(l)).slice(0, 8).map((l) => l.replace(/\w{16}\.cu/g, k.path)).join('\n');
  const shared = all.filter((x) => x.id === k.id).length;
  return new CudaCompileError(`nvcc rejected kernel ${k.name} (${k.family}${shared > 1 ? `; its source serves ${shared} kernels` : ''}) for ${arch}:\n${errors}\n${frame}\n`
    + `reproduce: nvcc -cubin -arch=${arch} ${k.path}   (the file is in the package; the source follows)\n${k.source}`);
}
