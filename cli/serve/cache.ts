// The server's state cache: saved sequences (runtime/sequences.ts SavedSequence: a Mamba layer's conv
// window and SSM state whole, the KV rows the sequence holds) keyed by the token ids they cover, in
// an LRU bounded in bytes. A request looks up the longest cached key that is a proper prefix of its
// prompt (at least one token is left to prefill, whose logits start the reply), restores it and
// prefills only the rest. Lookup is a scan over the entries (a server keeps hundreds, not millions).

import type { SavedSequence } from '../../runtime/sequences.ts';

interface Entry {
  readonly ids: readonly number[];
  readonly saved: SavedSequence;
}

export class StateCache {
  /** Key (the ids joined) to entry, least recently used first (a Map keeps insertion order). */
  private readonly entries = new Map<string, Entry>();
  private held = 0;
  hits = 0;
  misses = 0;

  /** `maxBytes`: the most bytes of saved state held; 0 turns the cache off. */
  constructor(readonly maxBytes: number) {}

  /** Bytes of saved state held now. */
  get bytes(): number {
    return this.held;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The saved state of the longest cached proper prefix of `ids`, or null; counts a hit or a miss. */
  lookup(ids: readonly number[]): Entry | null {
    let best: Entry | null = null;
    let bestKey = '';
    for (const [key, e] of this.entries) {
      if (e.ids.length >= ids.length || (best && e.ids.length <= best.ids.length)) continue;
      if (isPrefix(e.ids, ids)) {
        best = e;
        bestKey = key;
      }
    }
    if (!best) {
      this.misses++;
      return null;
    }
    this.hits++;
    this.entries.delete(bestKey);
    this.entries.set(bestKey, best);
    return best;
  }

  /** Keeps the state covering `ids` (replacing one for the same ids), then evicts the least
   *  recently used entries until the total is within the bound; a state larger than the bound is
   *  not kept. */
  put(ids: readonly number[], saved: SavedSequence): void {
    const size = saved.bytes.byteLength;
    if (size > this.maxBytes || ids.length === 0) return;
    const key = ids.join(',');
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.held -= old.saved.bytes.byteLength;
    }
    this.entries.set(key, { ids: [...ids], saved });
    this.held += size;
    for (const [k, e] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.entries.delete(k);
      this.held -= e.saved.bytes.byteLength;
    }
  }
}

function isPrefix(p: readonly number[], ids: readonly number[]): boolean {
  for (let i = 0; i < p.length; i++) if (p[i] !== ids[i]) return false;
  return true;
}
