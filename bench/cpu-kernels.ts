// Throughput of the CPU linear kernel (the engine's hot loop), single-threaded, in GFLOP/s.
// Run: npx tsx bench/cpu-kernels.ts

import { linear } from '../runtime/cpu/linear.ts';
import { fromF32, type DType } from '../runtime/tensor.ts';

/** Median seconds per call over `reps` timed calls after two warm-up calls. */
function time(fn: () => void, reps: number): number {
  fn();
  fn();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    samples.push((performance.now() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296) * 2 - 1;

const K = 1024, N = 1024;
const wF32 = Float32Array.from({ length: N * K }, rand);
console.log(`linear y[T,${N}] = x[T,${K}] · W[${N},${K}]ᵀ  (2·T·K·N flops, median of timed calls)`);
for (const dtype of ['f32', 'bf16', 'f16', 'f32'] as DType[]) {
  const w = fromF32(wF32, [N, K], dtype);
  for (const T of [1, 16, 64, 256]) {
    const x = Float32Array.from({ length: T * K }, rand);
    const out = new Float32Array(T * N);
    const reps = Math.max(5, Math.ceil(64 / T) * 5);
    const s = time(() => linear(x, T, K, w, null, out), reps);
    const gflops = (2 * T * K * N) / s / 1e9;
    console.log(`  ${dtype.padEnd(4)} T=${String(T).padStart(3)}: ${(s * 1000).toFixed(2).padStart(7)} ms  ${gflops.toFixed(2)} GFLOP/s`);
  }
}
