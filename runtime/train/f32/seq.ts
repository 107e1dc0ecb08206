// The f32 engine's sequence ops over packed sequences: causal conv, rope, attention, SSD. Every
// loop walks the batch's sequence slices as the forward does (runtime/cpu/backward-seq.ts, the
// float64 reference, is the oracle), so no gradient crosses a boundary. The conv runs on the row
// kernels (./rows.ts, WebAssembly SIMD) where the Gemm has them (its backward's sequences shared by
// their threads), else in JS. Attention (flash-style backward from the saved row logsumexp) and the
// chunked SSD (backward from the saved chunk-entering states) run ./attention.ts and ./ssd.ts, their
// heads shared by the threads.

import { attentionBackward32, attentionForward32 } from './attention.ts';
import { invFreqs } from '../../cpu/attention.ts';
import type { Ctx32, Op32 } from './graph.ts';
import { ROUTINE, put, take } from './heads.ts';
import { f32 } from './pool.ts';
import type { RowKernels } from './rows.ts';
import type { SeqSlice } from '../../cpu/seq.ts';
import { type SsdIn32, ssdBackward32, ssdForward32 } from './ssd.ts';

type F32 = Float32Array;
const f = (c: Ctx32, i: number) => c.ins[i] as F32;
const num = (c: Ctx32, k: string) => c.attrs[k] as number;
const narrow = (a: Float64Array) => Float32Array.from(a);

/** y[t, c] = b[c] + Σ_j w[c, j] · x[t − (K−1) + j, c], taps before the sequence's first row zero;
 *  row by row over the channels, with w's taps as rows wt [K, C]. */
function taps(w: F32, C: number, K: number): F32 {
  const wt = f32(K * C);
  for (let ch = 0; ch < C; ch++) for (let j = 0; j < K; j++) wt[j * C + ch] = w[ch * K + j]!;
  return wt;
}

function convF(c: Ctx32): F32 {
  const [T, C] = c.shapes[0]! as [number, number], K = c.shapes[1]![2]!, x = f(c, 0), wt = taps(f(c, 1), C, K), b = c.ins[2] as F32 | null;
  if (c.gemm.rows) return c.gemm.rows.convF(x, wt, b, C, K, c.seqs);
  const y = f32(T * C);
  for (const { start, len } of c.seqs) {
    for (let t = start; t < start + len; t++) {
      const o = t * C;
      if (b) y.set(b, o);
      for (let j = Math.max(0, start - t + K - 1); j < K; j++) {
        const s = (t - (K - 1) + j) * C, wo = j * C;
        for (let ch = 0; ch < C; ch++) y[o + ch] += wt[wo + ch]! * x[s + ch]!;
      }
    }
  }
  return y;
}

/** The transposed conv of x [T, C] by w [C, K]: dx[src] += w · dy[t]; dw[c, j] = Σ dy[t] · x[src];
 *  db = Σ dy. On the row kernels where given (`rows`), a sequence a unit shared by their threads,
 *  each one's parts of dw and db summed in sequence order after (./heads.ts convBackwardSeq); else
 *  in JS. Also the wasm backend's conv_backward. */
export function convBackward32(rows: RowKernels | null | undefined, x: F32, w: F32, dy: F32, C: number, K: number, seqs: readonly SeqSlice[]): { dx: F32; dw: F32; db: F32 } {
  const wt = taps(w, C, K), dwt = new Float64Array(K * C), db = new Float64Array(C);
  let dx: F32;
  if (rows) {
    const sp = rows.space(), n = seqs.length, a = [put(sp, x), put(sp, wt), put(sp, dy), sp.alloc(x.length), sp.alloc(2 * n * (K * C + C)) / 2, sp.alloc(2 * n), C, K];
    const I = sp.env().i;
    seqs.forEach((s, i) => I.set([s.start, s.len], a[5]! + 2 * i));
    sp.run(ROUTINE.convBackward, n, 0, a);
    const d = sp.env().d;
    for (let u = 0, o = a[4]!; u < n; u++, o += K * C + C) {
      for (let i = 0; i < K * C; i++) dwt[i] += d[o + i]!;
      for (let i = 0; i < C; i++) db[i] += d[o + K * C + i]!;
    }
    dx = take(sp, a[3]!, x.length);
  } else {
    dx = f32(x.length);
    for (const { start, len } of seqs) {
      for (let t = start; t < start + len; t++) {
        const o = t * C;
        for (let ch = 0; ch < C; ch++) db[ch] += dy[o + ch]!;
        for (let j = Math.max(0, start - t + K - 1); j < K; j++) {
          const s = (t - (K - 1) + j) * C, wo = j * C;
          for (let ch = 0; ch < C; ch++) {
            const g = dy[o + ch]!;
            dx[s + ch] += wt[wo + ch]! * g;
            dwt[wo + ch] += g * x[s + ch]!;
          }
        }
      }
    }
  }
  const dw = f32(C * K);
  for (let ch = 0; ch < C; ch++) for (let j = 0; j < K; j++) dw[ch * K + j] = dwt[j * C + ch]!;
  return { dx, dw, db: narrow(db) };
}

function convB(c: Ctx32, dy: F32): (F32 | null)[] {
  const C = c.shapes[0]![1]!, K = c.shapes[1]![2]!, r = convBackward32(c.gemm.rows, f(c, 0), f(c, 1), dy, C, K, c.seqs);
  return [r.dx, r.dw, c.ins[2] ? r.db : null];
}

/** Rotary embedding of the first R dims of each head at each row's own position; `inverse`: the
 *  transposed rotation (its backward). x: [T, Hn, Dh]. */
function rope(x: F32, c: Ctx32, inverse: boolean): F32 {
  const [T, Hn, Dh] = c.shapes[0]! as [number, number, number], positions = c.ins[1] as Int32Array;
  const R = num(c, 'rotary_dim'), half = R / 2, inv = invFreqs(R, num(c, 'theta')), out = new Float32Array(x);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[t]! * inv[i]!), cos = Math.cos(angle), sin = (inverse ? -1 : 1) * Math.sin(angle);
      for (let h = 0; h < Hn; h++) {
        const o = (t * Hn + h) * Dh, lo = x[o + i]!, hi = x[o + i + half]!;
        out[o + i] = lo * cos - hi * sin;
        out[o + i + half] = hi * cos + lo * sin;
      }
    }
  }
  return out;
}

function attnDims(c: Ctx32) {
  const [T, H, Dh] = c.shapes[0]! as [number, number, number];
  return { T, H, KV: c.shapes[1]![1]!, Dh, scale: num(c, 'scale'), window: (c.attrs.window as number | undefined) ?? 0 };
}
const ssdDims = (c: Ctx32) => ({ H: c.shapes[0]![1]!, P: c.shapes[0]![2]!, G: c.shapes[3]![1]!, N: c.shapes[3]![2]! });
const ssdIn = (c: Ctx32): SsdIn32 => ({ x: f(c, 0), dt: f(c, 1), A: f(c, 2), B: f(c, 3), C: f(c, 4), D: f(c, 5) });

export const SEQ_OPS: Readonly<Record<string, Op32>> = {
  causal_conv1d: { forward: (c) => ({ outs: [convF(c)] }), backward: (c, _s, d) => convB(c, d[0]!) },
  rope: { forward: (c) => ({ outs: [rope(f(c, 0), c, false)] }), backward: (c, _s, d) => [rope(d[0]!, c, true), null] },
  attention: {
    forward(c) {
      const r = attentionForward32(c.gemm, f(c, 0), f(c, 1), f(c, 2), attnDims(c), c.seqs);
      return { outs: [r.y], saved: r };
    },
    backward(c, saved, d) {
      const { y, lse } = saved as { y: F32; lse: F32 };
      const r = attentionBackward32(c.gemm, d[0]!, f(c, 0), f(c, 1), f(c, 2), y, lse, attnDims(c), c.seqs);
      return [r.dq, r.dk, r.dv];
    },
  },
  ssd: {
    forward(c) {
      const r = ssdForward32(c.gemm, ssdIn(c), ssdDims(c), num(c, 'chunk'), c.seqs);
      return { outs: [r.y], saved: r.entering };
    },
    backward(c, entering, d) {
      const g = ssdBackward32(c.gemm, d[0]!, ssdIn(c), ssdDims(c), num(c, 'chunk'), c.seqs, entering as F32);
      return [g.x, g.dt, g.A, g.B, g.C, g.D];
    },
  },
};
