// The decode GEMV (codegen/cuda/templates/gemv.cu.hbs) at Bamba-9B's sizes, without a GPU: its code
// for the 9B decode products compiles for sm_80 and sm_90 with no spills and reads the weights in
// 16-byte read-only loads (ld.global.nc.v4 in the PTX); and products with 9B's K (4096, 14336), in
// bf16, q8 and q4, for 1 and several rows, run in the emulator equal the CPU reference within 1e-5
// of the output's scale (f32 sums; split-K over 128 threads changes their order, not their terms).

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePtxas } from '../../codegen/cuda/build.ts';
import { renderKernel } from '../../codegen/cuda/render.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { type SourceFormat, sourceFormats } from '../../runtime/cuda/abi.ts';
import type { Kernel } from '../../runtime/program.ts';
import { QUANT_DTYPES } from '../../runtime/quant.ts';
import { createRng } from '../../runtime/rng.ts';
import { BAMBA } from '../helpers/checkpoints.ts';
import { relError } from '../runtime/cpu/check.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { type OpInput, runOp } from '../helpers/kernels.ts';
import { quantiseOnUpload } from '../helpers/quant.ts';
import { fromF32 } from '../../runtime/tensor.ts';

const run = promisify(execFile);

/** Bamba-9B's decode products, one source each of the shapes that differ: q/k/v with RoPE (column
 *  pairs), gate+up (two offsets) and out_proj (gated norm, 8-bit activations), a format each. */
const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
const decode = nine.entries.decode;
const product = (part: string): Kernel => decode.kernels.find((k) => k.family === 'matmul' && k.name.includes(part))!;
const CHECKED: [string, SourceFormat][] = [['q_proj+k_proj+v_proj', 'bf16'], ['gate_proj+up_proj', 'q8'], ['mamba.out_proj', 'q4a8']];

describe('CUDA decode GEMV at Bamba-9B sizes', () => {
  it('compiles for sm_80 and sm_90 without spills, W read in 16-byte read-only loads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'archc-gemv-'));
    const jobs = CHECKED.flatMap(([part, format]) => ['sm_80', 'sm_90'].map((arch) => ({ part, format, arch })));
    const src = (part: string, format: SourceFormat) => {
      const k = product(part);
      expect(sourceFormats(k), part).toContain(format);
      return renderKernel(nine, decode, k, format).source;
    };
    // the GEMV alone (ARCHC_GEMV_ONLY leaves the tensor-core tiles out of the compile), two at a time
    const results = [];
    for (let i = 0; i < jobs.length; i += 2) {
      results.push(...await Promise.all(jobs.slice(i, i + 2).map(async ({ part, format, arch }) => {
        const base = join(dir, `${part.replace(/\W+/g, '_')}.${format}.${arch}`);
        writeFileSync(`${base}.cu`, src(part, format));
        const r = await run('nvcc', ['-cubin', `-arch=${arch}`, '-DARCHC_GEMV_ONLY', '-Xptxas', '-v', '-keep', '-keep-dir', dir, '-o', `${base}.cubin`, `${base}.cu`], { maxBuffer: 1 << 24 });
        const ptx = readFileSync(`${base}.ptx`, 'utf8');
        return { part, format, arch, usage: parsePtxas(r.stderr).archc_gemv, ptx };
      })));
    }
    for (const { part, format, arch, usage, ptx } of results) {
      const what = `${part} ${format} ${arch}`;
      expect(usage, what).toBeDefined();
      expect({ what, spills: usage!.spillStores + usage!.spillLoads }).toEqual({ what, spills: 0 });
      const body = ptx.slice(ptx.indexOf('.entry archc_gemv'));
      expect(body, what).toMatch(/ld\.global\.nc\.v4\.u32/);
      // and no weight comes through a narrower load: no 2-byte loads of bf16 elements, no byte loads
      // of codes (what else is narrow is x's f32, the f16 scales, the pointer table and libm's tables)
      const narrow = format === 'bf16' ? /ld\.global(\.nc)?\.(u16|b16|s16)\b/g : /ld\.global(\.nc)?\.(u8|s8|b8)\b/g;
      expect(body.match(narrow) ?? [], what).toEqual([]);
      console.log(`gemv ${what}: ${usage!.registers} registers, ${usage!.sharedBytes} bytes shared, ${(body.match(/ld\.global\.nc\.v4\.u32/g) ?? []).length} ld.global.nc.v4.u32`);
    }
  }, 600_000);

  const rng = createRng(23);
  const act = (T: number, K: number): OpInput => ({ act: Float32Array.from({ length: T * K }, () => rng.next() * 2 - 1), shape: ['T', K] });
  const weight = (N: number, K: number): OpInput => ({ weight: fromF32(Float32Array.from({ length: N * K }, () => rng.next() - 0.5), [N, K], 'bf16') });
  // N = 6: a block of 4 columns and one with 2 past N; T: 1 row, 3 (a 4-row pass), 8 (8 rows, or two 4-row passes)
  const SIZES = [4096, 14336].map((K) => ({ K, w: weight(6, K), x: act(8, K) }));
  let bin = '';
  beforeAll(async () => {
    const sources = new Map<string, string>();
    for (const { K } of SIZES) for (const [id, s] of programSources(runOp('linear', [act(1, K), weight(6, K)], {}, 1).program)) sources.set(id, s);
    bin = await buildEmulator(sources);
  }, 600_000);

  it('products with 9B K in bf16, q8 and q4, 1 to 8 rows, equal the CPU reference within 1e-5 of the output scale', () => {
    for (const { K, w, x } of SIZES) {
      for (const T of [1, 3, 8]) {
        const xs: OpInput = { act: (x as { act: Float32Array }).act.slice(0, T * K), shape: ['T', K] };
        for (const format of ['bf16', ...QUANT_DTYPES] as const) {
          const backend = (p: Parameters<typeof quantiseOnUpload>[1], b: CpuBackend | EmuCudaBackend, n: { n: number }) => (format === 'bf16' ? b : quantiseOnUpload(b, p, format, n));
          const counts = { n: 0 }, emuCounts = { n: 0 };
          const ref = runOp('linear', [xs, w], {}, T, { backend: (p) => backend(p, new CpuBackend(p), counts) });
          const got = runOp('linear', [xs, w], {}, T, { backend: (p) => backend(p, new EmuCudaBackend(p, bin), emuCounts) });
          if (format !== 'bf16') expect([counts.n, emuCounts.n]).toEqual([1, 1]);
          const rel = relError(got.outputs[0]!, ref.outputs[0]!, 1e-5, `${format} K=${K} T=${T}`);
          console.log(`gemv ${format} K=${K} T=${T}: max error ${rel.toExponential(2)} of the output's scale`);
        }
      }
    }
  });
});
