// Causal GQA attention over packed sequences (runtime/cpu/attention.ts, `attention`: same cache
// append, same rows attended) with the two products on the wasm micro-kernels, in blocks of query
// rows so the scores never exceed [BLOCK, keys]: per sequence, head h and block of rows,
//   S = scale · Q_blk · K[0, end)ᵀ    → softmax per row over its causal keys (max subtracted, in double)
//   O = P · V[0, end) / row sums
// Scores sum in f32 (the reference in double), so results agree to f32 rounding.

import type { KvCache, SeqSlice } from '../cpu/seq.ts';
import { checkSeqs } from '../cpu/seq.ts';
import type { WasmKernels } from './kernels.ts';

/** Query rows per block. */
const BLOCK = 64;

export function attentionWasm(wk: WasmKernels, q: Float32Array, k: Float32Array, v: Float32Array, T: number, H: number, KV: number, Dh: number,
  scale: number, seqs: readonly SeqSlice[], caches: KvCache[]): Float32Array {
  if (KV < 1 || H % KV !== 0) throw new RangeError(`attention: ${KV} kv heads do not divide ${H} query heads`);
  if (q.length !== T * H * Dh || k.length !== T * KV * Dh || v.length !== T * KV * Dh) throw new RangeError(`attention: q, k, v do not hold ${T} rows of ${H}/${KV} heads of ${Dh}`);
  checkSeqs('attention', T, seqs, caches.length);
  const rowLen = KV * Dh;
  for (let s = 0; s < seqs.length; s++) {
    const c = caches[s]!;
    if (c.len + seqs[s]!.len > c.capacity) throw new RangeError(`attention: cache ${s} has ${c.len} of ${c.capacity} rows; ${seqs[s]!.len} more do not fit`);
  }
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
