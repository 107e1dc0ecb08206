// The CUDA target's limits, asserted at build (codegen/cuda/schedule.ts cudaLimits): a model whose
// sizes would cross one — a launch's grid.y past 65,535, a phase's dynamic shared memory past a block's, the experts' hidden rows past the static
// shared memory, a head's SSD state P · N past a 32-bit index — is AC501 at the kernel's `.arch`
// line, naming the kernel, the limit and both numbers, once a line; a model within them builds.

import { describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/cuda/build.ts';
import { checkCudaLimits, CUDA_TARGET, cudaLimits, cudaSchedule } from '../../codegen/cuda/schedule.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { CompileError, type Diagnostic } from '../../dsl/diagnostics.ts';
import type { Program } from '../../runtime/program.ts';
import { compileTiny, type Params, setsFor } from '../helpers/checkpoints.ts';
import { MODELS } from '../helpers/compile.ts';

const tiny = (params: Params): Program => { const c = compileTiny(params); return lowerToProgram(c.graph, c.bindings); };

/** The AC501 diagnostics of building `p`'s CUDA kernels (none: it builds). */
function limitErrors(p: Program): Diagnostic[] {
  try {
    checkCudaLimits(p);
    return [];
  } catch (e) {
    if (e instanceof CompileError) return [...e.diagnostics];
    throw e;
  }
}

describe('CUDA target limits at build', () => {
  it('a tiny Bamba is within every limit', () => {
    const p = tiny({});
    expect(limitErrors(p)).toEqual([]);
    for (const e of Object.values(p.entries)) for (const k of e.kernels) expect(cudaLimits(k, cudaSchedule(k, CUDA_TARGET), CUDA_TARGET)).toEqual([]);
  });

  it("a vocabulary past 65,535 GEMV blocks of 16 columns: the head's grid.y, AC501 from renderProgram", () => {
    const p = tiny({ vocab: 1_100_000 });
    expect(limitErrors(p).map((d) => [d.code, d.message])).toEqual([
      ['AC501', "kernel head (matmul) exceeds the CUDA target: the GEMV's grid.y is 68750 (the limit is 65535)"],
    ]);
    expect(() => renderProgram(p)).toThrow(CompileError);
    // one below the limit builds
    expect(limitErrors(tiny({ vocab: 65_535 * 16 }))).toEqual([]);
  });

  it("a head's state of 2^31 floats: AC501 at the SSD's line, once for every layer and both entries", () => {
    // d_inner 32 · 4096 in 4 heads: P = 32,768; N = 65,536
    const d = limitErrors(tiny({ mamba_expand: 4096, d_state: 65_536 }));
    expect(d.map((x) => [x.code, x.message])).toEqual([
      ['AC501', "kernel model.layers.0.mamba:ssd (ssd) exceeds the CUDA target: a head's state P · N is 2147483648 (the limit is 2147483647)"],
    ]);
    expect(d[0]!.span?.file).toMatch(/models\/std\/mamba2\.arch$/);
    expect(d[0]!.span?.line).toBeGreaterThan(0);
    expect(limitErrors(tiny({ mamba_expand: 4096, d_state: 65_535 }))).toEqual([]);
  });

  it("an SSD chunk whose phases need more dynamic shared memory than a block has: AC501 at the SSD's line", () => {
    const d = limitErrors(tiny({ chunk: 2048 }));
    expect(d.length).toBeGreaterThan(0);
    for (const x of d) {
      expect(x.code).toBe('AC501');
      expect(x.message).toMatch(/^kernel model\.layers\.0\.mamba:ssd \(ssd\) exceeds the CUDA target: phase ssd_\w+'s dynamic shared memory \(bytes\) is \d+ \(the limit is 166912\)$/);
      expect(x.span?.file).toMatch(/models\/std\/mamba2\.arch$/);
    }
    expect(limitErrors(tiny({ chunk: 1024 }))).toEqual([]);
  });

  it("experts whose hidden rows exceed 48 KiB of shared memory: AC501", () => {
    const moe = (dff: number) => { const c = compileFile(`${MODELS}/granite4h.arch`, { set: setsFor({ d_ff: dff }) }); return lowerToProgram(c.graph, c.bindings); };
    // 6 experts a token: 6 · 4096 floats
    expect(limitErrors(moe(4096)).map((x) => x.message)).toEqual([
      "kernel model.layers.0.block_sparse_moe:experts (experts) exceeds the CUDA target: the experts' static shared memory (bytes) is 98304 (the limit is 49152)",
    ]);
    expect(limitErrors(moe(2048))).toEqual([]);
  });
});
