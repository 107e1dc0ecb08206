import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Generous limits: they catch hangs, not slowness. The suite has to pass on 2 cores under load
    // (two CPU-bound processes beside it), where tests run several times slower than when idle.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // child processes, at least two even on 2 cores: many tests wait on CLI processes they spawn, so a
    // second worker overlaps that wait; long loops in tests yield between batches
    pool: 'forks',
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // the JSON report lets .ci/run print a plain "N passed, N failed" line
    reporters: ['default', ['json', { outputFile: '.tmp/vitest-report.json' }]],
  },
});
