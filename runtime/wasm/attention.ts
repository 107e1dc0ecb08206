// Causal GQA attention over packed sequences (runtime/cpu/attention.ts, `attention`: same cache
// append, same rows attended) with the two products on the wasm micro-kernels, in blocks of query
// rows so the scores never exceed [BLOCK, keys]: per sequence, head h and block of rows,
//   S = scale · Q_blk · K[0, end)ᵀ    → softmax per row over its causal keys (max subtracted, in double)
//   O = P · V[0, end) / row sums
// Scores sum in f32 (the reference in double), so results agree to f32 rounding.
// attentionAt: the same over the shared memory, the steps between the products (appending K/V,
// the softmax, the division by the row sums) in the program module (codegen/wasm/program.ts,
// ATTN_GLUE), the query heads shared by the products' threads (runtime/wasm/heads.ts);
// attentionWasm: in JS, where there is no such module.

import type { KvCache, SeqSlice } from '../cpu/seq.ts';
import { checkSeqs } from '../cpu/seq.ts';
import type { WasmKernels } from './kernels.ts';
import { type At, zeroUncovered } from './ssd.ts';
import { BLOCK, attnHeadBytes } from './heads.ts';
import type { ProgramCalls } from './split.ts';

/** The heads divide, the sequences tile T, and every cache holds its sequence's new rows. */
function checkAttention(T: number, H: number, KV: number, seqs: readonly SeqSlice[], caches: readonly { len: number; capacity: number }[]): void {
  if (KV < 1 || H % KV !== 0) throw new RangeError(`attention: ${KV} kv heads do not divide ${H} query heads`);
  checkSeqs('attention', T, seqs, caches.length);
  for (let s = 0; s < seqs.length; s++) {
    const c = caches[s]!;
    if (c.len + seqs[s]!.len > c.capacity) throw new RangeError(`attention: cache ${s} has ${c.len} of ${c.capacity} rows; ${seqs[s]!.len} more do not fit`);
  }
}


export function attentionWasm(wk: WasmKernels, q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, KV: number, Dh: number,
  scale: number, seqs: readonly SeqSlice[], caches: KvCache[], window = 0): Float32Array {
  if (q.length !== T * H * Dh || k.length !== T * KV * Dh || v.length !== T * KV * Dh) throw new RangeError(`attention: q, k, v do not hold ${T} rows of ${H}/${KV} heads of ${Dh}`);
  checkAttention(T, H, KV, seqs, caches);
  if (window) return windowedWasm(wk, q, k, v, T, H, KV, Dh, scale, seqs, caches, window);
  const rowLen = KV * Dh;
  const group = H / KV;
  const out = new Float32Array(T * H * Dh);
  let maxKeys = 0;
  for (let s = 0; s < seqs.length; s++) maxKeys = Math.max(maxKeys, caches[s]!.len + seqs[s]!.len);
  const p = new Float32Array(BLOCK * maxKeys);
  const sums = new Float64Array(BLOCK);

  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s]!;
    const cache = caches[s]!;
    const before = cache.len;
    cache.k.set(k.subarray(start * rowLen, (start + len) * rowLen), before * rowLen);
    cache.v.set(v.subarray(start * rowLen, (start + len) * rowLen), before * rowLen);
    cache.len = before + len;
    for (let r0 = 0; r0 < len; r0 += BLOCK) {
      const rows = Math.min(BLOCK, len - r0);
      const keys = before + r0 + rows; // the block's last row sees keys [0, keys)
      for (let h = 0; h < H; h++) {
        const kvo = Math.floor(h / group) * Dh;
        const q0 = ((start + r0) * H + h) * Dh;
        const sc = wk.product(q, q0, H * Dh, 1, rows, Dh, cache.k, kvo, rowLen, 1, keys);
        for (let i = 0; i < rows; i++) {
          const nk = before + r0 + i + 1, o = i * sc.ld;
          let max = -Infinity;
          for (let j = 0; j < nk; j++) max = Math.max(max, sc.y[o + j]! * scale);
          let sum = 0;
          for (let j = 0; j < nk; j++) {
            const e = Math.exp(sc.y[o + j]! * scale - max);
            sum += e;
            p[i * keys + j] = e;
          }
          p.fill(0, i * keys + nk, (i + 1) * keys);
          sums[i] = sum;
        }
        const pv = wk.product(p, 0, keys, 1, rows, keys, cache.v, kvo, 1, rowLen, Dh);
        for (let i = 0; i < rows; i++) {
          const o = ((start + r0 + i) * H + h) * Dh;
          for (let d = 0; d < Dh; d++) out[o + d] = pv.y[i * pv.ld + d]! / sums[i]!;
        }
      }
    }
  }
  return out;
}

/**
 * attentionWasm with a sliding window over ring caches (cpu/attention.ts: position p at row p % rows):
 * per sequence its history — the ring's positions [from, before) that its first row still sees, then
 * its own rows — gathered into one run of rows, so that a block of rows takes its keys [a, b) of it
 * through the two products; row p's softmax keeps keys [p − window + 1, p] (the band), zero past
 * them. Then its last min(len, rows) rows go to the ring.
 */
function windowedWasm(wk: WasmKernels, q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, KV: number, Dh: number,
  scale: number, seqs: readonly SeqSlice[], caches: KvCache[], window: number): Float32Array {
  const rowLen = KV * Dh, group = H / KV;
  const out = new Float32Array(T * H * Dh);
  const sums = new Float64Array(BLOCK);
  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s]!;
    const cache = caches[s]!, rows = cache.rows ?? cache.capacity, before = cache.len;
    const from = Math.max(0, before - window + 1), n = before - from + len; // history: positions [from, before + len)
    const hk = new Float32Array(n * rowLen), hv = new Float32Array(n * rowLen);
    for (let p = from; p < before; p++) {
      const r = (p % rows) * rowLen;
      hk.set(cache.k.subarray(r, r + rowLen), (p - from) * rowLen);
      hv.set(cache.v.subarray(r, r + rowLen), (p - from) * rowLen);
    }
    hk.set(k.subarray(start * rowLen, (start + len) * rowLen), (before - from) * rowLen);
    hv.set(v.subarray(start * rowLen, (start + len) * rowLen), (before - from) * rowLen);
    for (let r0 = 0; r0 < len; r0 += BLOCK) {
      const m = Math.min(BLOCK, len - r0), p0 = before + r0;
      const a = Math.max(from, p0 - window + 1) - from, b = p0 + m - from, keys = b - a; // the block's keys [a, b) of the history
      const pw = new Float32Array(m * keys);
      for (let h = 0; h < H; h++) {
        const kvo = Math.floor(h / group) * Dh;
        const sc = wk.product(q, ((start + r0) * H + h) * Dh, H * Dh, 1, m, Dh, hk, a * rowLen + kvo, rowLen, 1, keys);
        for (let i = 0; i < m; i++) {
          // row p0 + i sees history [max(0, p − window + 1) − from, p − from], here [lo, hi) of the block's keys
          const p = p0 + i, lo = Math.max(0, p - window + 1) - from - a, hi = p - from - a + 1, o = i * sc.ld;
          let max = -Infinity;
          for (let j = lo; j < hi; j++) max = Math.max(max, sc.y[o + j]! * scale);
          let sum = 0;
          pw.fill(0, i * keys, (i + 1) * keys);
          for (let j = lo; j < hi; j++) {
            const e = Math.exp(sc.y[o + j]! * scale - max);
            sum += e;
            pw[i * keys + j] = e;
          }
          sums[i] = sum;
        }
        const pv = wk.product(pw, 0, keys, 1, m, keys, hv, a * rowLen + kvo, 1, rowLen, Dh);
        for (let i = 0; i < m; i++) {
          const o = ((start + r0 + i) * H + h) * Dh;
          for (let d = 0; d < Dh; d++) out[o + d] = pv.y[i * pv.ld + d]! / sums[i]!;
        }
      }
    }
    for (let i = Math.max(0, len - rows); i < len; i++) {
      const o = ((before + i) % rows) * rowLen, at = (start + i) * rowLen;
      cache.k.set(k.subarray(at, at + rowLen), o);
      cache.v.set(v.subarray(at, at + rowLen), o);
    }
    cache.len = before + len;
  }
  return out;
}

/** The program module's fixed steps of prefill attention (codegen/wasm/program.ts, ATTN_GLUE). */
export interface AttnGlue {
  put(src: number, lds: number, dst: number, ldd: number, rows: number, cols: number): void;
  softmax(sc: number, ldsc: number, rows: number, keys: number, first: number, scale: number, p: number, ldp: number, sums: number): void;
  out(y: number, ldy: number, pv: number, ldpv: number, sums: number, rows: number, cols: number): void;
}

/** One sequence's KV cache in the shared memory: byte addresses of its keys and values
 *  ([capacity, KV, Dh] each), the rows it holds and its capacity. */
export interface KvAt {
  readonly k: number;
  readonly v: number;
  readonly len: number;
  readonly capacity: number;
  /** Rows k and v hold: a sliding window's ring (capacity when absent). */
  readonly rows?: number;
}

/** Bytes of work space attentionAt needs for sequences attending to up to `maxKeys` keys: the
 *  scale and each thread's scratch (runtime/wasm/heads.ts); with a window (`rowLen` > 0) `maxKeys`
 *  is the longest history, whose K and V rows it gathers there too, on this thread. */
export const attentionWorkBytes = (maxKeys: number, rowLen: number, Dh: number, wk: { MR: number; NR: number; threads: number }) =>
  rowLen ? 16 + 8 * BLOCK + 4 * BLOCK * maxKeys + 8 * maxKeys * rowLen : 32 + wk.threads * attnHeadBytes(maxKeys, Dh, wk.MR, wk.NR);

/**
 * attentionWasm with q [T, H·Dh], k, v [T, KV·Dh] and the output y at their addresses in the
 * shared memory (rows `ld` floats apart; y written whole, never aliasing an operand), the caches
 * in the slots, and the steps between the products in the program module (`glue`); `work`
 * holds attentionWorkBytes of the longest sequence's keys. Per sequence its keys and values go to
 * the cache, then its query heads are shared by the threads (`calls`: runtime/wasm/heads.ts
 * attnHeads, each head's blocks of rows; a window's run on this thread, windowedAt). The caches'
 * rows grow by each sequence's; their new lengths are the caller's to keep.
 */
export function attentionAt(wk: WasmKernels, glue: AttnGlue, calls: ProgramCalls, memory: WebAssembly.Memory, q: At, k: At, v: At, y: At, T: number, H: number, KV: number, Dh: number,
  scale: number, seqs: readonly SeqSlice[], caches: readonly KvAt[], work: number, window = 0): void {
  checkAttention(T, H, KV, seqs, caches);
  if (window) return windowedAt(wk, glue, memory, q, k, v, y, T, H, KV, Dh, scale, seqs, caches, Math.ceil(work / 8) * 8, window);
  if (!calls.heads) throw new Error('attentionAt: the program calls have no head routines (no kernel instance)');
  const rowLen = KV * Dh;
  let maxKeys = 1;
  seqs.forEach((s, i) => { maxKeys = Math.max(maxKeys, caches[i]!.len + s.len); });
  // the scale (f64), then each thread's scratch
  const consts = Math.ceil(work / 16) * 16, scr = consts + 16, own = attnHeadBytes(maxKeys, Dh, wk.MR, wk.NR);
  new Float64Array(memory.buffer, consts, 1)[0] = scale;
  zeroUncovered(memory, y, T, H * Dh, seqs);
  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s]!;
    const cache = caches[s]!;
    const before = cache.len;
    glue.put(k.at + 4 * start * k.ld, k.ld, cache.k + 4 * before * rowLen, rowLen, len, rowLen);
    glue.put(v.at + 4 * start * v.ld, v.ld, cache.v + 4 * before * rowLen, rowLen, len, rowLen);
    calls.run(calls.heads.attn, [T, 0, 0, T, scr, 0, 0], [q.at, q.ld, y.at, y.ld, cache.k, cache.v, H, KV, Dh,
      start, len, before, consts, BLOCK, wk.MR, wk.NR, wk.m64], H, true, own);
  }
}

/** A score the softmax step weighs as nothing (exp64 clamps at e^-708, and the f32 weight is 0). */
const MASKED = -3e38;

/**
 * attentionAt with a sliding window over ring caches (windowedWasm's steps in the shared memory):
 * per sequence its history — the ring's positions [from, before) its first row still sees, then its
 * own rows — gathered by `attn.put` into `work` after the softmax space; per block of rows the
 * products over its keys [a, b) of the history, the scores below each row's band set to MASKED
 * (`attn.softmax` bounds them above), and the block's output; then the sequence's last min(len,
 * rows) rows put into the ring (two runs where they wrap).
 */
function windowedAt(wk: WasmKernels, glue: AttnGlue, memory: WebAssembly.Memory, q: At, k: At, v: At, y: At, T: number, H: number, KV: number, Dh: number,
  scale: number, seqs: readonly SeqSlice[], caches: readonly KvAt[], work: number, window: number): void {
  const rowLen = KV * Dh, group = H / KV;
  let longest = 1;
  seqs.forEach((s, i) => { longest = Math.max(longest, Math.min(caches[i]!.len, window - 1) + s.len); });
  const sums = work, p = work + 8 * BLOCK, hk = p + 4 * BLOCK * longest, hv = hk + 4 * longest * rowLen;
  zeroUncovered(memory, y, T, H * Dh, seqs);
  const f = (at: number) => at >>> 2;
  // rows [p0, p0 + n) of a ring of `rows` rows (n <= rows) to or from `dst`, in at most two runs
  const ring = (base: number, rows: number, p0: number, n: number, put: (ringAt: number, i: number, m: number) => void) => {
    const r0 = p0 % rows, first = Math.min(n, rows - r0);
    if (first > 0) put(base + 4 * r0 * rowLen, 0, first);
    if (n > first) put(base, first, n - first);
  };
  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s]!;
    const cache = caches[s]!, rows = cache.rows ?? cache.capacity, before = cache.len;
    const from = Math.max(0, before - window + 1);
    for (const [c, h] of [[cache.k, hk], [cache.v, hv]] as const) ring(c, rows, from, before - from, (at, i, m) => glue.put(at, rowLen, h + 4 * i * rowLen, rowLen, m, rowLen));
    glue.put(k.at + 4 * start * k.ld, k.ld, hk + 4 * (before - from) * rowLen, rowLen, len, rowLen);
    glue.put(v.at + 4 * start * v.ld, v.ld, hv + 4 * (before - from) * rowLen, rowLen, len, rowLen);
    for (let r0 = 0; r0 < len; r0 += BLOCK) {
      const m = Math.min(BLOCK, len - r0), p0 = before + r0;
      const a = Math.max(from, p0 - window + 1) - from, keys = p0 + m - from - a; // the block's keys [a, a + keys) of the history
      for (let h = 0; h < H; h++) {
        const kvo = Math.floor(h / group) * Dh;
        let mem = new Float32Array(memory.buffer);
        const sc = wk.product(mem, f(q.at + 4 * ((start + r0) * q.ld + h * Dh)), q.ld, 1, m, Dh, mem, f(hk) + a * rowLen + kvo, rowLen, 1, keys);
        // row p0 + i sees history [max(0, p − window + 1) − from, p − from]: below it, masked
        for (let i = 0; i < m; i++) sc.y.fill(MASKED, i * sc.ld, i * sc.ld + Math.max(0, p0 + i - window + 1) - from - a);
        glue.softmax(sc.y.byteOffset, sc.ld, m, keys, p0 - from - a, scale, p, keys, sums);
        mem = new Float32Array(memory.buffer);
        const pv = wk.product(mem, f(p), keys, 1, m, keys, mem, f(hv) + a * rowLen + kvo, 1, rowLen, Dh);
        glue.out(y.at + 4 * ((start + r0) * y.ld + h * Dh), y.ld, pv.y.byteOffset, pv.ld, sums, m, Dh);
      }
    }
    const n = Math.min(len, rows), skip = len - n; // the last n rows of the batch, positions before + skip ..
    for (const [src, c] of [[k, cache.k], [v, cache.v]] as const) {
      ring(c, rows, before + skip, n, (at, i, cnt) => glue.put(src.at + 4 * (start + skip + i) * src.ld, src.ld, at, rowLen, cnt, rowLen));
    }
  }
}
