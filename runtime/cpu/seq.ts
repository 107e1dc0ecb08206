// Packed-batch bookkeeping shared by the stateful CPU kernels: sequence slices, KV caches, checks.

/** Rows [start, start + len) of a packed [T, ...] activation belong to one sequence. */
export interface SeqSlice {
  readonly start: number;
  readonly len: number;
}

/**
 * One sequence's attention cache for one layer. k, v: [rows, KV, Dh] row-major, position p at row
 * p % rows: rows = capacity holds every position (p < capacity); a sliding window's ring holds the
 * last rows = min(window, capacity). `len` positions have been written; `attention` appends.
 */
export interface KvCache {
  k: Float32Array;
  v: Float32Array;
  len: number;
  /** The most positions the sequence may reach. */
  readonly capacity: number;
  /** Rows k and v hold (capacity when absent). */
  readonly rows?: number;
}

/** Throws unless every slice lies inside [0, T) and there is one state (or cache) per slice. */
export function checkSeqs(kernel: string, T: number, seqs: readonly SeqSlice[], perSeq: number): void {
  if (perSeq !== seqs.length) throw new RangeError(`${kernel}: ${seqs.length} sequences but ${perSeq} states`);
  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s];
    if (!Number.isInteger(start) || !Number.isInteger(len) || start < 0 || len < 0 || start + len > T) {
      throw new RangeError(`${kernel}: sequence ${s} covers rows [${start}, ${start + len}) outside [0, ${T})`);
    }
  }
}

/** Throws unless `x` holds exactly `n` elements. */
export function checkLen(kernel: string, name: string, x: { readonly length: number }, n: number): void {
  if (x.length !== n) throw new RangeError(`${kernel}: ${name} has ${x.length} elements, expected ${n}`);
}
