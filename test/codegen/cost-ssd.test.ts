// The SSD kernels' cost model (codegen/cuda/cost-ssd.ts) for Bamba-9B: its FLOPs agree with the op
// record's own count (compiler/ops.ts), its bytes hold at least x, y and the states once, the floor
// is the larger of bandwidth and tensor-core time, the schedule's model never beats the floor, and
// where the model puts the chunked SSD and ssd_step against their floors (printed; a model, not a
// measurement).

import { describe, expect, it } from 'vitest';
import { GPUS } from '../../codegen/cuda/cost.ts';
import { ssdCost, ssdStepCost } from '../../codegen/cuda/cost-ssd.ts';
import { CUDA_TARGET } from '../../codegen/cuda/schedule.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { OP_BY_NAME } from '../../compiler/ops.ts';
import { BAMBA } from '../helpers/checkpoints.ts';

const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
const ssd = nine.entries.prefill.kernels.find((k) => k.family === 'ssd')!;
const step = nine.entries.decode.kernels.find((k) => k.family === 'ssd_step')!;
const mixers = nine.entries.prefill.kernels.filter((k) => k.family === 'ssd').length;

describe('the SSD cost model at Bamba-9B', () => {
  const { H, P, G, N, chunk } = ssd.sizes;

  it('prefill: FLOPs as the op counts them, the mandatory bytes, a floor the model does not beat', () => {
    const op = OP_BY_NAME.get('ssd')!;
    for (const tokens of [4096, 1000]) {
      const c = ssdCost(nine, 'prefill', ssd, { rows: 1, tokens }, GPUS[1]!, CUDA_TARGET)!;
      const perToken = op.flops([{ shape: ['T', H, P], dtype: 'f32' }, null, null, { shape: ['T', G, N], dtype: 'f32' }], [], { chunk }, { mode: 'prefill', context: tokens });
      // the op counts a chunk's triangle as Q²/2 for every chunk; the model counts the rows it has
      expect(Math.abs(c.flops / (perToken * tokens) - 1), `${tokens} tokens`).toBeLessThan(tokens === 4096 ? 0.01 : 0.15);
      expect(c.bytes).toBeGreaterThanOrEqual(tokens * 2 * H * P * 4 + 2 * H * P * N * 4);
    }
    for (const gpu of GPUS) {
      const c = ssdCost(nine, 'prefill', ssd, { rows: 1, tokens: 4096 }, gpu, CUDA_TARGET)!;
      expect(c.floorUs).toBeCloseTo(Math.max(c.bytes / gpu.bandwidth, c.flops / gpu.tensorFlops) * 1e6, 1);
      // where the schedule stands (docs/PERF.md): bound by loads in flight in the scan, within 8x the floor
      expect(c.modelUs / c.floorUs).toBeGreaterThanOrEqual(1);
      expect(c.modelUs / c.floorUs).toBeLessThan(8);
      expect(c.bound).toMatch(/longest \(5\) by loads in flight/);
      console.log(`ssd prefill 4096 on ${gpu.name}: ${(c.bytes / 1e6).toFixed(0)} MB, ${(c.flops / 1e9).toFixed(1)} GFLOP, floor ${c.floorUs} µs, model ${c.modelUs} µs (${(c.modelUs / c.floorUs).toFixed(2)}x; ${c.bound}); ${mixers} Mamba layers: ${(c.modelUs * mixers / 1000).toFixed(2)} ms`);
    }
    expect(ssdCost(nine, 'decode', step, { rows: 1, tokens: 1 }, GPUS[0]!, CUDA_TARGET)).toBeNull();
  });

  it('decode: the state read and written once a token, bandwidth-bound at batch 1 and 8', () => {
    for (const rows of [1, 8]) {
      for (const gpu of GPUS) {
        const c = ssdStepCost(nine, 'decode', step, { rows, tokens: 1 }, gpu, CUDA_TARGET)!;
        expect(c.bytes).toBeGreaterThanOrEqual(rows * 2 * H * P * N * 4);
        expect(c.modelUs / c.floorUs).toBeGreaterThanOrEqual(1);
        expect(c.modelUs / c.floorUs).toBeLessThan(1.2);
        console.log(`ssd_step batch ${rows} on ${gpu.name}: ${(c.bytes / 1e6).toFixed(2)} MB, floor ${c.floorUs} µs, model ${c.modelUs} µs (${(c.modelUs / c.floorUs).toFixed(2)}x; ${c.bound})`);
      }
    }
    expect(ssdStepCost(nine, 'prefill', ssd, { rows: 1, tokens: 4096 }, GPUS[0]!, CUDA_TARGET)).toBeNull();
  });
});
