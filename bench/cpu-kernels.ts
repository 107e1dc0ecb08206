// Throughput of the CPU linear kernel (the engine's hot loop), single-threaded, in GFLOP/s.
// Run: npx tsx bench/cpu-kernels.ts

import { linear } from '../runtime/cpu/linear.ts';
import { fromF32, type DType } from '../runtime/tensor.ts';
import { median, timeCalls } from './timing.ts';

/**
 * Fastest and median seconds per call over `reps` timed calls after two warm-up calls. The fastest
 * is the kernel's speed on an idle core; the median shows what a shared machine leaves of it.
 */
function time(fn: () => void, reps: number): { best: number; median: number } {
  const samples = timeCalls(fn, reps, 2);
  return { best: samples[0]!, median: median(samples) };
}

let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296) * 2 - 1;

const K = 1024, N = 1024;
const wF32 = Float32Array.from({ length: N * K }, rand);
console.log(`linear y[T,${N}] = x[T,${K}] · W[${N},${K}]ᵀ  (2·T·K·N flops; best and median of timed calls, one thread)`);
for (const dtype of ['f32', 'bf16', 'f16'] as DType[]) {
  const w = fromF32(wF32, [N, K], dtype);
  for (const T of [1, 16, 64, 256]) {
    const x = Float32Array.from({ length: T * K }, rand);
    const out = new Float32Array(T * N);
    const reps = Math.max(9, Math.ceil(256 / T) * 3);
    const { best, median } = time(() => linear(x, T, K, w, null, out), reps);
    const rate = (s: number) => ((2 * T * K * N) / s / 1e9).toFixed(2);
    console.log(`  ${dtype.padEnd(4)} T=${String(T).padStart(3)}: best ${(best * 1000).toFixed(2).padStart(7)} ms = ${rate(best)} GFLOP/s, median ${rate(median)} GFLOP/s`);
  }
}
