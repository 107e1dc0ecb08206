// Timing for the benchmarks: seconds per call of `fn` over `reps` timed calls after `warmup`
// untimed ones, sorted, so callers read the fastest or the median.

export function timeCalls(fn: () => void, reps: number, warmup = 0): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    samples.push((performance.now() - t0) / 1000);
  }
  return samples.sort((a, b) => a - b);
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
