// The whole pipeline for one program, as `archc build` runs it short of packaging: compile (front
// end and graph passes), lower to the kernel program, and render it for every build target — wasm
// (assembled), WGSL and CUDA source (not nvcc). What the program fuzz runs in its child process.

import { compileModel } from '../../compiler/pipeline.ts';
import type { CompileOptions } from '../../compiler/compile.ts';

export async function throughPipeline(file: string, opts: CompileOptions): Promise<void> {
  const { program } = compileModel(file, opts);
  const [{ renderProgram: wgsl }, { renderProgram: cuda }, { wasmProgram }] = await Promise.all([
    import('../../codegen/wgsl/render.ts'), import('../../codegen/cuda/build.ts'), import('../../codegen/wasm/program.ts'),
  ]);
  wgsl(program);
  cuda(program);
  await wasmProgram(program);
}
