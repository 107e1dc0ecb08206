// The cost model of attention and the conv (codegen/cuda/cost-attention.ts) at Bamba-9B's shapes:
// bytes and FLOPs from first principles, the floor from them, the schedule's modelled time at or
// above it and what bounds it; a sliding window counts the keys its rows see; other families are null.

import { describe, expect, it } from 'vitest';
import { attentionCost, attentionCostAt, convCost } from '../../codegen/cuda/cost-attention.ts';
import { GPUS } from '../../codegen/cuda/cost.ts';
import { CUDA_TARGET } from '../../codegen/cuda/schedule.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { Kernel } from '../../runtime/program.ts';
import { BAMBA } from '../helpers/checkpoints.ts';

const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
const find = (entry: 'prefill' | 'decode', family: string): Kernel => nine.entries[entry].kernels.find((k) => k.family === family)!;
const [h100, h200] = [GPUS[0]!, GPUS[1]!];

describe('cost model of attention and the conv at Bamba-9B', () => {
  it('prefill attention of 4096 tokens: causal FLOPs, floor on tensor cores, the schedule within 8x of it', () => {
    const k = find('prefill', 'attention');
    const c = attentionCost(nine, 'prefill', k, { rows: 1, tokens: 4096 }, h100, CUDA_TARGET)!;
    // 32 heads of 128: 4 · H · Dh · n(n+1)/2
    expect(c.flops).toBeCloseTo(4 * 32 * 128 * (4096 * 4097) / 2, -8);
    expect(c.floorUs).toBeCloseTo((c.flops / h100.tensorFlops) * 1e6, 0);
    expect(c.modelUs / c.floorUs).toBeGreaterThan(1);
    expect(c.modelUs / c.floorUs).toBeLessThan(8);
    expect(['L2', 'shared memory', 'tensor cores (mma.sync)']).toContain(c.bound);
    // two sequences of 2048 cost about half the FLOPs of one of 4096 (causal)
    const two = attentionCost(nine, 'prefill', k, { rows: 2, tokens: 2048 }, h100, CUDA_TARGET)!;
    expect(two.flops / c.flops).toBeCloseTo(0.5, 2);
  });

  it('decode attention: the f32 KV cache at bandwidth, the split schedule within 1.3x of it at batch 1 and 8', () => {
    const k = find('decode', 'attention_decode');
    for (const gpu of [h100, h200]) {
      for (const rows of [1, 8]) {
        const c = attentionCostAt(nine, 'decode', k, { rows, tokens: 1, context: 4096 }, gpu, CUDA_TARGET)!;
        const cache = rows * 4097 * 8 * 128 * 4 * 2;
        expect(c.bytes).toBeGreaterThan(cache);
        expect(c.bytes).toBeLessThan(cache * 1.05);
        expect(c.floorUs).toBeCloseTo((c.bytes / gpu.bandwidth) * 1e6, 0);
        expect(c.modelUs / c.floorUs, `${gpu.name} batch ${rows}`).toBeLessThan(1.3);
      }
    }
    // a short context: one block a split piece, latency rather than bandwidth
    const short = attentionCostAt(nine, 'decode', k, { rows: 1, tokens: 1, context: 10 }, h100, CUDA_TARGET)!;
    expect(short.modelUs).toBeGreaterThan(short.floorUs);
  });

  it('the conv of 4096 tokens at bandwidth; other families are not modelled', () => {
    const k = find('prefill', 'conv');
    const c = convCost(nine, 'prefill', k, { rows: 1, tokens: 4096 }, h200, CUDA_TARGET)!;
    expect(c.bytes).toBeGreaterThan(2 * 4096 * 8448 * 4);
    expect(c.modelUs / c.floorUs).toBeLessThan(1.3);
    expect(convCost(nine, 'prefill', find('prefill', 'attention'), { rows: 1, tokens: 8 }, h200, CUDA_TARGET)).toBeNull();
    expect(attentionCost(nine, 'prefill', k, { rows: 1, tokens: 8 }, h200, CUDA_TARGET)).toBeNull();
  });

  it('a sliding window: the keys each row sees at most the window, in prefill and decode', () => {
    const full = find('prefill', 'attention');
    const windowed = { ...full, attrs: { ...full.attrs, window: 1024 } } as Kernel;
    const c = attentionCost(nine, 'prefill', windowed, { rows: 1, tokens: 4096 }, h100, CUDA_TARGET)!;
    expect(c.flops).toBeCloseTo(4 * 32 * 128 * ((1024 * 1025) / 2 + 3072 * 1024), -8);
    expect(c.modelUs).toBeLessThan(attentionCost(nine, 'prefill', full, { rows: 1, tokens: 4096 }, h100, CUDA_TARGET)!.modelUs / 2);
    const dec = find('decode', 'attention_decode');
    const d = attentionCostAt(nine, 'decode', { ...dec, attrs: { ...dec.attrs, window: 1024 } } as Kernel, { rows: 1, tokens: 1, context: 32768 }, h100, CUDA_TARGET)!;
    expect(d.flops).toBeCloseTo(4 * 32 * 128 * 1024, -5);
  });
});
