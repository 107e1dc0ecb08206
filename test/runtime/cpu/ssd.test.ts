// The SSD scan: the token recurrence against a closed-form naive sum, and the chunked block
// algorithm against the recurrence (odd chunk sizes, groups, packing, continuation).

import { describe, expect, it } from 'vitest';
import { ssdChunked, ssdSequential, type SsdDims } from '../../../runtime/cpu/ssd.ts';
import { clones, expectClose, prng, uniform } from './check.ts';

/** Chunked vs sequential and both vs the naive sum: |err| <= 1e-5 · (1 + |ref|). */
const TOL = { atol: 1e-5, rtol: 1e-5 };

interface Inputs { x: Float32Array; dt: Float32Array; A: Float32Array; B: Float32Array; C: Float32Array; D: Float32Array }

function inputs(rand: () => number, T: number, { H, P, G, N }: SsdDims): Inputs {
  return {
    x: uniform(rand, T * H * P),
    dt: uniform(rand, T * H, 0.01, 0.6), // softplus'ed: positive
    A: uniform(rand, H, -3, -0.2),
    B: uniform(rand, T * G * N),
    C: uniform(rand, T * G * N),
    D: uniform(rand, H, 0.5, 1.5),
  };
}

/**
 * One sequence, written as a sum over source tokens instead of a recurrence:
 *   y_t = sum_{s<=t} exp(A·(dt_{s+1}+...+dt_t)) · dt_s · (C_t·B_s) · x_s
 *         + exp(A·(dt_0+...+dt_t)) · (h0 · C_t) + D · x_t
 * and the final state h = exp(A·sum dt) · h0 + sum_s exp(A·(dt_{s+1}+...)) · dt_s · x_s ⊗ B_s.
 */
function naiveSsd(inp: Inputs, L: number, { H, P, G, N }: SsdDims, h0: Float32Array) {
  const { x, dt, A, B, C, D } = inp;
  const y = new Float64Array(L * H * P);
  const hT = new Float64Array(H * P * N);
  const decay = (h: number, from: number, to: number) => { // exp(A_h · sum_{k=from..to} dt_k)
    let s = 0;
    for (let k = from; k <= to; k++) s += dt[k * H + h];
    return Math.exp(A[h] * s);
  };
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / (H / G));
    const bc = (t: number, n: number) => (t * G + g) * N + n;
    for (let t = 0; t < L; t++) {
      for (let p = 0; p < P; p++) {
        let v = D[h] * x[(t * H + h) * P + p];
        for (let s = 0; s <= t; s++) {
          let cb = 0;
          for (let n = 0; n < N; n++) cb += C[bc(t, n)] * B[bc(s, n)];
          v += decay(h, s + 1, t) * dt[s * H + h] * cb * x[(s * H + h) * P + p];
        }
        let hc = 0;
        for (let n = 0; n < N; n++) hc += h0[(h * P + p) * N + n] * C[bc(t, n)];
        y[(t * H + h) * P + p] = v + decay(h, 0, t) * hc;
      }
    }
    for (let p = 0; p < P; p++) {
      for (let n = 0; n < N; n++) {
        let v = decay(h, 0, L - 1) * h0[(h * P + p) * N + n];
        for (let s = 0; s < L; s++) v += decay(h, s + 1, L - 1) * dt[s * H + h] * x[(s * H + h) * P + p] * B[bc(s, n)];
        hT[(h * P + p) * N + n] = v;
      }
    }
  }
  return { y, hT };
}

/** Rows [a, b) of every per-token input. */
function rows(inp: Inputs, a: number, b: number, { H, P, G, N }: SsdDims): Inputs {
  return { ...inp, x: inp.x.slice(a * H * P, b * H * P), dt: inp.dt.slice(a * H, b * H), B: inp.B.slice(a * G * N, b * G * N), C: inp.C.slice(a * G * N, b * G * N) };
}

const DIMS: SsdDims[] = [{ H: 4, P: 3, G: 1, N: 8 }, { H: 4, P: 2, G: 2, N: 5 }, { H: 6, P: 4, G: 3, N: 4 }];
const dimsName = (d: SsdDims) => `H=${d.H} P=${d.P} G=${d.G} N=${d.N}`;

describe('ssdSequential', () => {
  for (const dims of DIMS) {
    it(`matches the naive closed form from a non-zero initial state (${dimsName(dims)})`, () => {
      const rand = prng(60 + dims.G);
      const L = 13;
      const inp = inputs(rand, L, dims);
      const h0 = uniform(rand, dims.H * dims.P * dims.N);
      const st = [new Float32Array(h0)];
      const y = ssdSequential(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, [{ start: 0, len: L }], st);
      const ref = naiveSsd(inp, L, dims, h0);
      expectClose(y, ref.y, TOL, `sequential y (${dimsName(dims)})`);
      expectClose(st[0], ref.hT, TOL, `sequential final state (${dimsName(dims)})`);
    });
  }
});

describe('ssdChunked', () => {
  for (const dims of DIMS) {
    for (const [L, chunk] of [[37, 8], [37, 1], [37, 37], [37, 64], [16, 8], [5, 3]]) {
      it(`equals the recurrence for L=${L}, chunk ${chunk} (${dimsName(dims)})`, () => {
        const rand = prng(70 + L + chunk + dims.H * 10 + dims.G);
        const inp = inputs(rand, L, dims);
        for (const zero of [true, false]) {
          const h0 = zero ? new Float32Array(dims.H * dims.P * dims.N) : uniform(rand, dims.H * dims.P * dims.N);
          const sSeq = [new Float32Array(h0)], sChunk = [new Float32Array(h0)];
          const seq = ssdSequential(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, [{ start: 0, len: L }], sSeq);
          const chk = ssdChunked(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, chunk, [{ start: 0, len: L }], sChunk);
          const what = `L=${L} chunk=${chunk} ${dimsName(dims)} ${zero ? 'zero' : 'non-zero'} initial state`;
          expectClose(chk, seq, TOL, `chunked vs sequential y, ${what}`);
          expectClose(sChunk[0], sSeq[0], TOL, `chunked vs sequential state, ${what}`);
        }
      });
    }
  }

  it('packed sequences equal each run alone (chunks restart at each sequence)', () => {
    const dims: SsdDims = { H: 4, P: 3, G: 2, N: 6 };
    const rand = prng(81);
    const lens = [11, 1, 20, 8];
    const T = lens.reduce((a, b) => a + b, 0);
    const seqs = lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));
    const inp = inputs(rand, T, dims);
    const init = lens.map(() => uniform(rand, dims.H * dims.P * dims.N));
    const states = clones(init);
    const packed = ssdChunked(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, 8, seqs, states);
    const S = dims.H * dims.P;
    seqs.forEach(({ start, len }, s) => {
      const r = rows(inp, start, start + len, dims);
      const alone = clones([init[s]]);
      const y = ssdChunked(r.x, r.dt, r.A, r.B, r.C, r.D, dims, 8, [{ start: 0, len }], alone);
      expectClose(packed.subarray(start * S, (start + len) * S), y, { atol: 0, rtol: 0 }, `seq ${s} packed vs alone`);
      expectClose(states[s], alone[0], { atol: 0, rtol: 0 }, `seq ${s} state packed vs alone`);
      const seqStates = clones([init[s]]);
      const ref = ssdSequential(r.x, r.dt, r.A, r.B, r.C, r.D, dims, [{ start: 0, len }], seqStates);
      expectClose(y, ref, TOL, `seq ${s} chunked vs sequential`);
    });
  });

  it('prefill in two pieces, then decode token by token, equals one prefill of the whole', () => {
    const dims: SsdDims = { H: 4, P: 2, G: 1, N: 8 };
    const rand = prng(82);
    const L = 29;
    const inp = inputs(rand, L, dims);
    const whole = [new Float32Array(dims.H * dims.P * dims.N)];
    const yWhole = ssdChunked(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, 8, [{ start: 0, len: L }], whole);
    const st = [new Float32Array(dims.H * dims.P * dims.N)];
    const S = dims.H * dims.P;
    const yParts = new Float32Array(L * S);
    for (const [a, b] of [[0, 10], [10, 23]]) {
      const r = rows(inp, a, b, dims);
      yParts.set(ssdChunked(r.x, r.dt, r.A, r.B, r.C, r.D, dims, 8, [{ start: 0, len: b - a }], st), a * S);
    }
    for (let t = 23; t < L; t++) {
      const r = rows(inp, t, t + 1, dims);
      yParts.set(ssdSequential(r.x, r.dt, r.A, r.B, r.C, r.D, dims, [{ start: 0, len: 1 }], st), t * S);
    }
    expectClose(yParts, yWhole, TOL, 'pieces + decode vs whole');
    expectClose(st[0], whole[0], TOL, 'final state pieces + decode vs whole');
  });

  it('a decode batch (T sequences of one token) equals each decoded alone', () => {
    const dims: SsdDims = { H: 2, P: 2, G: 1, N: 4 };
    const rand = prng(83);
    const T = 3;
    const inp = inputs(rand, T, dims);
    const init = [0, 1, 2].map(() => uniform(rand, dims.H * dims.P * dims.N));
    const states = clones(init);
    const seqs = [0, 1, 2].map((start) => ({ start, len: 1 }));
    const y = ssdChunked(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, 256, seqs, states);
    const ref = ssdSequential(inp.x, inp.dt, inp.A, inp.B, inp.C, inp.D, dims, seqs, clones(init));
    expectClose(y, ref, TOL, 'decode batch chunked vs sequential');
  });

  it('rejects groups that do not divide the heads and a bad chunk size', () => {
    const dims: SsdDims = { H: 3, P: 1, G: 2, N: 1 };
    const z = (n: number) => new Float32Array(n);
    expect(() => ssdSequential(z(3), z(3), z(3), z(2), z(2), z(3), dims, [], [])).toThrow(/2 groups do not divide 3 heads/);
    const ok: SsdDims = { H: 2, P: 1, G: 1, N: 1 };
    expect(() => ssdChunked(z(2), z(2), z(2), z(1), z(1), z(2), ok, 0, [{ start: 0, len: 1 }], [z(2)])).toThrow(/chunk size 0/);
  });
});
