// The state cache's rules (cli/serve/cache.ts) on saved states of chosen sizes: the longest proper
// prefix wins, a hit refreshes an entry's place in the LRU, eviction keeps the bytes within the bound
// from the least recently used end, a state over the bound is not kept, and a key put again replaces
// its entry. Real saved states are exercised end to end in server.test.ts.

import { describe, expect, it } from 'vitest';
import { StateCache } from '../../cli/serve/cache.ts';
import type { SavedSequence } from '../../runtime/sequences.ts';

const saved = (length: number, bytes: number): SavedSequence => ({ length, bytes: new Uint8Array(bytes) });

describe('StateCache', () => {
  it('finds the longest cached proper prefix, and counts hits and misses', () => {
    const c = new StateCache(1000);
    c.put([1, 2], saved(2, 10));
    c.put([1, 2, 3, 4], saved(4, 10));
    c.put([1, 2, 3, 4, 5, 6], saved(6, 10));
    c.put([9, 2, 3], saved(3, 10));
    expect(c.lookup([1, 2, 3, 4, 5])!.ids).toEqual([1, 2, 3, 4]);
    // an exact match is not a proper prefix: a token must be left to prefill
    expect(c.lookup([1, 2, 3, 4, 5, 6])!.ids).toEqual([1, 2, 3, 4]);
    expect(c.lookup([1, 3])).toBeNull();
    expect(c.lookup([1, 2])).toBeNull();
    expect([c.hits, c.misses]).toEqual([2, 2]);
  });

  it('evicts the least recently used down to the byte bound; a hit counts as a use', () => {
    const c = new StateCache(100);
    c.put([1], saved(1, 40));
    c.put([2], saved(1, 40));
    expect(c.lookup([1, 5])!.ids).toEqual([1]); // [1] is now the most recent
    c.put([3], saved(1, 40)); // 120 > 100: [2] goes
    expect(c.bytes).toBe(80);
    expect(c.lookup([2, 5])).toBeNull();
    expect(c.lookup([1, 5])).not.toBeNull();
    expect(c.lookup([3, 5])).not.toBeNull();
  });

  it('keeps no state over the bound, replaces a key put again, and keeps nothing when off', () => {
    const c = new StateCache(100);
    c.put([1], saved(1, 101));
    expect([c.size, c.bytes]).toEqual([0, 0]);
    c.put([1], saved(1, 30));
    c.put([1], saved(1, 50));
    expect([c.size, c.bytes]).toEqual([1, 50]);
    const off = new StateCache(0);
    off.put([1], saved(1, 1));
    expect(off.size).toBe(0);
  });
});
