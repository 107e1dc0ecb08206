// Compiling kernel sources at load with NVRTC (through koffi), for a device the package has no
// cubin or PTX for: the same translation unit `archc build` gives nvcc (runtime/cuda/kernels.ts),
// the kernel sources and two small stand-ins for host headers passed in memory, CUDA's own
// headers (cuda_bf16.h, mma.h) from ARCHC_CUDA_INCLUDE, CUDA_HOME/include or /usr/local/cuda/include.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.ts';
import type { CudaCompiler } from './backend.ts';
import { loadKoffi } from './driver.ts';
import { translationUnit } from './kernels.ts';

const LIBRARIES = ['libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12'];

/** Host headers NVRTC does not have: what the kernels take from them. */
const STAND_INS: Readonly<Record<string, string>> = {
  'stdint.h': '#pragma once\n',
  'math.h': '#pragma once\n#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n#ifndef NAN\n#define NAN __int_as_float(0x7fffffff)\n#endif\n',
};

/** NVRTC as a CudaCompiler, or null when the library is not there. */
export async function openNvrtc(): Promise<CudaCompiler | null> {
  const koffi = await loadKoffi();
  let lib: ReturnType<typeof koffi.load> | null = null;
  for (const name of [process.env.ARCHC_LIBNVRTC, ...LIBRARIES].filter((x): x is string => Boolean(x))) {
    try { lib = koffi.load(name); break; } catch { /* the next name */ }
  }
  if (!lib) return null;
  const f = {
    create: lib.func('int nvrtcCreateProgram(_Out_ CUhandle *prog, const char *src, const char *name, int numHeaders, const char **headers, const char **includeNames)'),
    compile: lib.func('int nvrtcCompileProgram(CUhandle prog, int numOptions, const char **options)'),
    logSize: lib.func('int nvrtcGetProgramLogSize(CUhandle prog, _Out_ size_t *size)'),
    log: lib.func('int nvrtcGetProgramLog(CUhandle prog, void *log)'),
    cubinSize: lib.func('int nvrtcGetCUBINSize(CUhandle prog, _Out_ size_t *size)'),
    cubin: lib.func('int nvrtcGetCUBIN(CUhandle prog, void *cubin)'),
    destroy: lib.func('int nvrtcDestroyProgram(_Inout_ CUhandle *prog)'),
    error: lib.func('const char *nvrtcGetErrorString(int result)'),
  };
  const include = [process.env.ARCHC_CUDA_INCLUDE, process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'include'), '/usr/local/cuda/include']
    .find((d): d is string => Boolean(d) && existsSync(join(d!, 'mma.h')));
  return (ids, arch, source) => {
    const names = [...ids.map((id) => `${id}.cu`), ...Object.keys(STAND_INS)];
    const sources = ids.map(source);
    const texts = [...sources, ...Object.values(STAND_INS)];
    const prog: unknown[] = [null];
    const what = ids.length === 1 ? ids[0]! : `${ids[0]} and ${ids.length - 1} more`;
    const ok = (r: unknown, call: string) => { if (r !== 0) throw new RuntimeError('RT706', [what, arch, `${call}: ${f.error(r)}`]); };
    ok(f.create(prog, translationUnit(ids.map((id, i) => ({ id, source: sources[i]! }))), 'module.cu', names.length, texts, names), 'nvrtcCreateProgram');
    try {
      const options = [`--gpu-architecture=${arch}`, '--std=c++17', ...(include ? [`--include-path=${include}`] : [])];
      const r = f.compile(prog[0], options.length, options);
      if (r !== 0) {
        const size = [0];
        f.logSize(prog[0], size);
        const log = new Uint8Array(Number(size[0]));
        f.log(prog[0], log);
        throw new RuntimeError('RT706', [what, arch, `${f.error(r)}\n${new TextDecoder().decode(log).replace(/\0+$/, '').slice(0, 4000)}${include ? '' : '\n(no CUDA include directory found for mma.h: set ARCHC_CUDA_INCLUDE)'}`]);
      }
      const size = [0];
      ok(f.cubinSize(prog[0], size), 'nvrtcGetCUBINSize');
      const out = new Uint8Array(Number(size[0]));
      ok(f.cubin(prog[0], out), 'nvrtcGetCUBIN');
      return out;
    } finally {
      f.destroy(prog);
    }
  };
}
