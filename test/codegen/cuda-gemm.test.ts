// The prefill GEMM (codegen/cuda/templates/matmul.cu.hbs: a prologue phase writing A once as bf16 to
// the scratch, then cp.async 16-byte copies into a ring of shared stages, ldmatrix and mma.sync), without a
// GPU: Bamba-9B's products get 128x128-class tiles and a ring of 4 stages in the CUDA target's
// schedule; two of their sources (SwiGLU's gate+up at two offsets over q4 codes with 8-bit
// activations; q/k/v with RoPE in bf16) compile for sm_80 and sm_90 without spills, their GEMM copying
// A and W by `cp.async` 16 bytes, loading fragments by `ldmatrix` and multiplying by `mma.sync`
// (m16n8k16), never loading W 2 bytes at a time; and
// products run in the emulator (whose cp.async writes shared memory only at the wait) at shapes that
// take full and partial 128-row and 128-column tiles, a K past the last whole K tile, a transposed W,
// q8 and q4 codes and rows below one tile, against the CPU reference of the same bf16-rounded
// operands (x, and W as the GEMM rounds it): within 1e-5 of the output's scale, the f32 sums differing
// only in order. And the cost model (codegen/cuda/cost-gemm.ts) on Bamba-9B's prefill of 4096 tokens.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePtxas } from '../../codegen/cuda/build.ts';
import { GPUS } from '../../codegen/cuda/cost.ts';
import { gemmCost, MMA_FRACTION } from '../../codegen/cuda/cost-gemm.ts';
import { renderKernel } from '../../codegen/cuda/render.ts';
import { CUDA_TARGET, cudaSchedule } from '../../codegen/cuda/schedule.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type SourceFormat, sourceFormats } from '../../runtime/cuda/abi.ts';
import type { Kernel } from '../../runtime/program.ts';
import { type QuantDType, dequantizeRows, isQuant } from '../../runtime/quant.ts';
import { createRng } from '../../runtime/rng.ts';
import { fromF32, toF32 } from '../../runtime/tensor.ts';
import { BAMBA } from '../helpers/checkpoints.ts';
import { relError } from '../runtime/cpu/check.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { type OpInput, runOp } from '../helpers/kernels.ts';
import { quantWeightInput } from '../helpers/quant.ts';

const run = promisify(execFile);

const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
const prefill = nine.entries.prefill;
const products = prefill.kernels.filter((k) => k.family === 'matmul');
const product = (part: string): Kernel => products.find((k) => k.name.includes(part))!;

describe('the CUDA prefill GEMM', () => {
  it("takes 128x256 tiles (128x128 at each of two offsets) and a ring of 4 stages for every Bamba-9B product, in sm_80's shared memory", () => {
    const m = CUDA_TARGET.matmul;
    for (const k of products) {
      const s = cudaSchedule(k, CUDA_TARGET);
      if (k.prologue?.some((p) => p.kind === 'gather_last')) continue;  // the head: S rows, the GEMV at batch sizes
      const what = k.name;
      expect({ what, tensor: s.tensor, tileM: s.tileM, stages: s.ringStages }).toEqual({ what, tensor: true, tileM: 128, stages: 4 });
      expect((s.tileN as number) * (s.offsets as number), what).toBe(256);
      expect(s.gemmShared as number, what).toBeLessThanOrEqual(m.gemmSharedMax);
      expect(s.phases?.map((p) => [p.fn, p.threads, p.rowDiv, p.shared ?? 0]), what).toEqual([['prep', 256, 8, 0], ['main', 256, 128, s.gemmShared]]);
      expect(s.scratch, what).toEqual({ fixed: 0, perT: k.sizes.K / 2, perS: k.sizes.K / 2 });
    }
  });

  it('compiles for sm_80 and sm_90 without spills; A and W come by cp.async 16 bytes, the fragments by ldmatrix, the products by mma.sync', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'archc-gemm-'));
    const jobs = ([['gate_proj+up_proj', 'q4a8'], ['q_proj+k_proj+v_proj', 'bf16']] as [string, SourceFormat][])
      .flatMap(([part, format]) => ['sm_80', 'sm_90'].map((arch) => ({ part, format, arch })));
    const results = [];
    for (let i = 0; i < jobs.length; i += 2) {
      results.push(...await Promise.all(jobs.slice(i, i + 2).map(async ({ part, format, arch }) => {
        const k = product(part);
        expect(sourceFormats(k), part).toContain(format);
        const base = join(dir, `${part.replace(/\W+/g, '_')}.${format}.${arch}`);
        writeFileSync(`${base}.cu`, renderKernel(nine, prefill, k, format).source);
        // the phases alone (ARCHC_GEMM_ONLY leaves the GEMV out of the compile)
        const r = await run('nvcc', ['-cubin', `-arch=${arch}`, '-DARCHC_GEMM_ONLY', '-Xptxas', '-v', '-keep', '-keep-dir', dir, '-o', `${base}.cubin`, `${base}.cu`], { maxBuffer: 1 << 24 });
        return { what: `${part} ${format} ${arch}`, usage: parsePtxas(r.stderr), ptx: readFileSync(`${base}.ptx`, 'utf8') };
      })));
    }
    for (const { what, usage, ptx } of results) {
      for (const fn of ['archc_prep', 'archc_main']) {
        expect(usage[fn], `${what} ${fn}`).toBeDefined();
        expect({ what, fn, spills: usage[fn]!.spillStores + usage[fn]!.spillLoads }).toEqual({ what, fn, spills: 0 });
      }
      const at = ptx.indexOf('.entry archc_main');
      const main = ptx.slice(at, ptx.indexOf('.entry', at + 1) > 0 ? ptx.indexOf('.entry', at + 1) : undefined);
      expect(main, what).toMatch(/cp\.async\.(cg|ca)\.shared\.global \[[^\]]+\], \[[^\]]+\], 16/);
      expect(main, what).toMatch(/mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16\.bf16\.f32/);
      expect(main, what).toMatch(/ldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16/);
      expect(main, what).toMatch(/cp\.async\.wait_group/);
      // W reaches shared memory only through the copies: no 2-byte or byte loads of it from global
      expect(main.match(/ld\.global(\.nc)?\.(u16|b16|s16|u8|s8|b8)\b/g) ?? [], what).toEqual([]);
      console.log(`gemm ${what}: archc_main ${usage.archc_main!.registers} registers, ${(main.match(/cp\.async\.(cg|ca)/g) ?? []).length} cp.async, ${(main.match(/mma\.sync/g) ?? []).length} mma.sync, ${(main.match(/ldmatrix/g) ?? []).length} ldmatrix`);
    }
  }, 600_000);

  const rng = createRng(41);
  const uniform = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
  const bf16 = (v: Float32Array) => toF32(fromF32(v, [v.length], 'bf16'));
  /** T rows, K, N; a bias; a transposed ([K, N]) W; W's codes. */
  const CASES: { what: string; T: number; K: number; N: number; bias?: boolean; transposed?: boolean; format?: QuantDType }[] = [
    { what: 'bf16: a full and a partial tile of rows and of columns, K past its last whole K tile, a bias', T: 200, K: 72, N: 264, bias: true },
    { what: 'bf16, transposed W', T: 150, K: 40, N: 136, transposed: true },
    { what: 'q8 codes', T: 130, K: 96, N: 136, format: 'q8' },
    { what: 'q4 codes', T: 130, K: 96, N: 136, format: 'q4' },
    { what: 'rows below one tile', T: 20, K: 64, N: 40 },
  ];
  const inputs = CASES.map((c) => {
    const x = uniform(c.T * c.K);
    const w: OpInput = c.format ? quantWeightInput(() => rng.next(), c.N, c.K, c.format) : { weight: fromF32(uniform(c.N * c.K), c.transposed ? [c.K, c.N] : [c.N, c.K], 'bf16') };
    const b: OpInput[] = c.bias ? [{ weight: fromF32(uniform(c.N), [c.N], 'f32') }] : [];
    return { x, w, b };
  });
  let bin = '';
  beforeAll(async () => {
    const sources = new Map<string, string>();
    CASES.forEach((c, i) => {
      const { x, w, b } = inputs[i]!;
      for (const [id, s] of programSources(runOp('linear', [{ act: x, shape: ['T', c.K] }, w, ...b], { transposed: Boolean(c.transposed) }, c.T).program)) sources.set(id, s);
    });
    bin = await buildEmulator(sources);
  }, 600_000);

  it('equals the CPU reference of the same bf16 operands within 1e-5 of the output scale, in the emulator', () => {
    CASES.forEach((c, i) => {
      const { x, w, b } = inputs[i]!;
      const attrs = { transposed: Boolean(c.transposed) };
      const got = runOp('linear', [{ act: x, shape: ['T', c.K] }, w, ...b], attrs, c.T, { backend: (p) => new EmuCudaBackend(p, bin) });
      const s = cudaSchedule(got.program.entries.forward.kernels.find((k) => k.family === 'matmul')!, CUDA_TARGET);
      expect({ what: c.what, gemm: c.T > (s.gemvUpTo as number) }).toEqual({ what: c.what, gemm: true });
      // the reference: x rounded to bf16 as the prologue phase rounds it; W as the tiles hold it (codes
      // · scale rounded to bf16)
      const wq = 'weight' in w! ? w.upload : undefined;
      const wRef: OpInput = wq && isQuant(wq) ? { weight: fromF32(bf16(dequantizeRows(wq, 0, c.N)), [c.N, c.K], 'bf16') } : w;
      const ref = runOp('linear', [{ act: bf16(x), shape: ['T', c.K] }, wRef, ...b], attrs, c.T);
      const rel = relError(got.outputs[0]!, ref.outputs[0]!, 1e-5, c.what);
      console.log(`gemm ${c.what} (T=${c.T} K=${c.K} N=${c.N}): max error ${rel.toExponential(2)} of the output's scale`);
    });
  });

  it("models Bamba-9B's prefill of 4096 tokens within 2.5x of the floor, the products bound by the tensor cores or L2", () => {
    for (const gpu of GPUS) {
      let floor = 0, model = 0;
      for (const k of products) {
        const c = gemmCost(nine, 'prefill', k, { rows: 1, tokens: 4096 }, gpu, CUDA_TARGET)!;
        const { K, N } = k.sizes;
        const gather = k.prologue?.some((p) => p.kind === 'gather_last');
        expect(c.flops, k.name).toBe(2 * (gather ? 1 : 4096) * N * K);
        expect(c.modelUs, k.name).toBeGreaterThanOrEqual(c.floorUs);
        expect(c.bound, k.name).toBe(gather ? 'gemv' : c.bound === 'l2' ? 'l2' : 'tensor');
        if (!gather) {
          // at least the tiles' FLOPs at the stated fraction of the tensor rate
          expect(c.modelUs * 1e-6, k.name).toBeGreaterThanOrEqual(c.flops / (gpu.tensorFlops * MMA_FRACTION));
          expect(c.modelUs / c.floorUs, k.name).toBeLessThan(3);
        }
        floor += c.floorUs;
        model += c.modelUs;
      }
      console.log(`gemm cost ${gpu.name}: Bamba-9B prefill 4096, ${products.length} products: model ${(model / 1e3).toFixed(1)} ms, floor ${(floor / 1e3).toFixed(1)} ms (${(model / floor).toFixed(2)}x)`);
      expect(model / floor).toBeLessThan(2.5);
      expect(model / floor).toBeGreaterThan(1 / MMA_FRACTION);
    }
    // few rows run the GEMV, and are modelled as it
    expect(gemmCost(nine, 'prefill', product('down_proj'), { rows: 1, tokens: 8 }, GPUS[0]!, CUDA_TARGET)!.bound).toBe('gemv');
  });
});
