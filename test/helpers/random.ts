// Seeded randomness for tests: the runtime's own PRNG (xoshiro128**), as a function returning [0, 1).

import { createRng } from '../../runtime/rng.ts';

export function prng(seed: number): () => number {
  const r = createRng(seed);
  return () => r.next();
}
