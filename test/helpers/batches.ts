// Long loops in tests, run in small batches with a yield to the event loop between them, so the
// test worker keeps answering the runner (vitest's RPC) however loaded the machine is. Budgets are
// counts, never wall time.

/** Calls `body(i)` for i = 0 … n−1, awaiting a macrotask after every `batch` calls. */
export async function forEachInBatches(n: number, batch: number, body: (i: number) => void): Promise<void> {
  for (let i = 0; i < n; i++) {
    body(i);
    if ((i + 1) % batch === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
