// Each train-entry family of the CPU backend (runtime/cpu/train.ts, ssd-backward.ts) against its
// float64 VJP (runtime/cpu/backward.ts, backward-seq.ts, compiler/vjp.ts) on random tiny shapes:
// packed ragged sequences with chunk boundaries inside and across them, GQA, partial rotary, a
// sliding window, several rows per token, a mixture's experts (one chosen by none). Both sides read
// the same f32 inputs; each output's ‖got − ref‖₂ / ‖ref‖₂ < 1e-5 (the f32 kernels accumulate in
// double and round once on store).

import { describe, expect, it } from 'vitest';
import { VJP, type VjpCtx } from '../../compiler/vjp.ts';
import { type F64, causalLmLossB, embeddingB, linearB, rmsnormB, rmsnormF } from '../../runtime/cpu/backward.ts';
import { attentionB, attentionF, convB, ropeF, ssdChunkedB, ssdF } from '../../runtime/cpu/backward-seq.ts';
import type { Ctx } from '../../runtime/cpu/families.ts';
import { CPU_BACKWARD } from '../../runtime/cpu/train.ts';
import type { SeqSlice } from '../../runtime/cpu/seq.ts';
import { positionsFor } from '../../runtime/engine.ts';
import type { BackwardFamily } from '../../runtime/families.ts';
import type { BackwardKernelOf, TrainOperand, View } from '../../runtime/program.ts';
import { randomF64 } from './helpers.ts';

type In = { rows: 'T' | 'C'; data: Float32Array } | { weight: Float32Array } | { input: 'tokens' | 'positions' | 'labels' };
interface Batch {
  readonly seqs: readonly SeqSlice[];
  readonly tokens?: Int32Array;
  readonly labels?: Int32Array;
}

const f32 = (n: number, seed: number, scale = 1) => Float32Array.from(randomF64(n, seed, scale));
const f64 = (a: Float32Array) => Float64Array.from(a);
const T = (b: Batch) => b.seqs.reduce((n, s) => n + s.len, 0);
const seqsOf = (lens: readonly number[]): SeqSlice[] => lens.map((len, i) => ({ start: lens.slice(0, i).reduce((a, b) => a + b, 0), len }));

/** Runs one backward kernel of `family` on the CPU implementation over inputs held apart. */
function run<F extends BackwardFamily>(family: F, sizes: BackwardKernelOf<F>['sizes'], attrs: Record<string, number | boolean>, ins: Record<string, In>,
  outs: Record<string, { width: number; rows: 'T' | 'C' }>, b: Batch): Record<string, Float32Array> {
  const n = T(b), rows: ('T' | 'C')[] = [], data: Float32Array[] = [], weights = new Map<string, Float32Array>();
  const inputs: Record<string, TrainOperand> = {}, outputs: Record<string, View> = {};
  for (const [name, x] of Object.entries(ins)) {
    if ('data' in x) {
      inputs[name] = { buf: rows.length, col: 0, width: x.data.length / (x.rows === 'T' ? n : 1) };
      rows.push(x.rows);
      data.push(x.data);
    } else if ('weight' in x) {
      weights.set(name, x.weight);
      inputs[name] = { weight: name };
    } else inputs[name] = x;
  }
  for (const [name, o] of Object.entries(outs)) {
    outputs[name] = { buf: rows.length, col: 0, width: o.width };
    rows.push(o.rows);
    data.push(new Float32Array(0));
  }
  const k = { name: `test:${family}`, family, sizes, inputs, outputs, attrs, fused: [family], source: [] } as unknown as BackwardKernelOf<F>;
  const positions = positionsFor(b.seqs, n);
  const ctx = {
    T: n, S: b.seqs.length, tokens: b.tokens ?? new Int32Array(n), positions, seqs: b.seqs, labels: b.labels,
    rows: (v: View) => (rows[v.buf] === 'T' ? n : 1),
    operand: (_k: unknown, name: string) => { const o = inputs[name]!; return 'buf' in o ? data[o.buf]! : weights.get(name)!; },
    write: (v: View, d: Float32Array) => {
      expect(d.length, `${family} writes ${v.buf}`).toBe(v.width * (rows[v.buf] === 'T' ? n : 1));
      data[v.buf] = d;
    },
  } as unknown as Ctx;
  (CPU_BACKWARD[family] as (k: BackwardKernelOf<F>, c: Ctx) => void)(k, ctx);
  return Object.fromEntries(Object.entries(outputs).map(([name, v]) => [name, data[v.buf]!]));
}

function near(what: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol = 1e-5): void {
  expect(got.length, what).toBe(ref.length);
  let a = 0, b = 0;
  for (let i = 0; i < ref.length; i++) { a += (got[i]! - ref[i]!) ** 2; b += ref[i]! ** 2; }
  expect(b, `${what}: the reference is not all zeros`).toBeGreaterThan(0);
  expect(Math.sqrt(a / b), what).toBeLessThan(tol);
}

/** A VjpCtx for one node of the float64 records. */
const vctx = (ins: (F64 | Int32Array | null)[], shapes: (number[] | null)[], outShapes: number[][], attrs: Record<string, number | boolean>, seqs: readonly SeqSlice[] = []): VjpCtx =>
  ({ ins, shapes, outShapes, attrs, seqs });

const b3: Batch = { seqs: seqsOf([7, 2, 5]) };

describe('train-entry families on the CPU against their float64 VJPs', () => {
  it('causal_lm_loss: the mean loss over counted rows and its cotangent', () => {
    const b: Batch = { seqs: seqsOf([5, 4]), labels: Int32Array.from([-100, 3, 0, 10, 7, -100, 2, -100, 9]) };
    const V = 11, logits = f32(9 * V, 1, 3);
    const got = run('causal_lm_loss', { V }, {}, { logits: { rows: 'T', data: logits }, labels: { input: 'labels' } }, { loss: { width: 2, rows: 'C' }, dlogits: { width: V, rows: 'T' } }, b);
    const ref = causalLmLossB(f64(logits), 9, V, b.labels!);
    expect(Math.abs(got.loss![0]! - ref.loss) / ref.loss).toBeLessThan(1e-6);
    expect(got.loss![1]).toBe(ref.tokens);
    near('dlogits', got.dlogits!, ref.dlogits);
  });

  for (const transposed of [false, true]) it(`matmul_wgrad${transposed ? ', transposed' : ''}: dW = dYᵀ·X over two rows per token`, () => {
    const K = 6, N = 5, n = T(b3), x = f32(n * 2 * K, 2), dy = f32(n * 2 * N, 3), w = randomF64(N * K, 4);
    const got = run('matmul_wgrad', { K, N }, transposed ? { transposed } : {}, { dy: { rows: 'T', data: dy }, x: { rows: 'T', data: x } }, { dw: { width: N * K, rows: 'C' } }, b3);
    near('dw', got.dw!, linearB(f64(dy), f64(x), 2 * n, K, N, w, transposed).dw);
  });

  it('reduce_rows: a broadcast operand\'s cotangent (add\'s db)', () => {
    const n = T(b3), dy = f32(n * 12, 5);
    const got = run('reduce_rows', { W: 12, N: 4 }, {}, { x: { rows: 'T', data: dy } }, { y: { width: 4, rows: 'C' } }, b3);
    const a = randomF64(n * 12, 6), bias = randomF64(4, 7);
    near('db', got.y!, VJP.add!.backward(vctx([a, bias], [[n, 12], [4]], [[n, 12]], {}), undefined, [f64(dy)])[1]!);
  });

  it('clamp_backward: the gradient passes where min ≤ x ≤ max, bounds included', () => {
    const n = T(b3), x = f32(n * 6, 8, 2), dy = f32(n * 6, 9);
    x[0] = 0; x[1] = 1;
    const got = run('clamp_backward', { W: 6 }, { min: 0, max: 1 }, { x: { rows: 'T', data: x }, dy: { rows: 'T', data: dy } }, { dx: { width: 6, rows: 'T' } }, b3);
    near('dx', got.dx!, VJP.clamp!.backward(vctx([f64(x)], [[n, 6]], [[n, 6]], { min: 0, max: 1 }), undefined, [f64(dy)])[0]!);
    expect(got.dx![0]).toBe(dy[0]);
  });

  it('rmsnorm_backward: over D = 8 of rows of 3 heads (QK-norm\'s shape)', () => {
    const n = T(b3), D = 8, x = f32(n * 3 * D, 10), w = f32(D, 11), dy = f32(n * 3 * D, 12);
    const got = run('rmsnorm_backward', { W: 3 * D, D }, { eps: 1e-5 }, { x: { rows: 'T', data: x }, w: { weight: w }, dy: { rows: 'T', data: dy } },
      { dx: { width: 3 * D, rows: 'T' }, dw: { width: D, rows: 'C' } }, b3);
    const { inv } = rmsnormF(f64(x), 3 * n, D, D, f64(w), 1e-5);
    const ref = rmsnormB(f64(dy), f64(x), inv, 3 * n, D, D, f64(w));
    near('dx', got.dx!, ref.dx);
    near('dw', got.dw!, ref.dw);
  });

  it('rmsnorm_gated_backward: norm after the gate, over 2 groups', () => {
    const n = T(b3), D = 12, x = f32(n * D, 13), z = f32(n * D, 14, 2), w = f32(D, 15), dy = f32(n * D, 16);
    const got = run('rmsnorm_gated_backward', { W: D, D }, { eps: 1e-5, groups: 2 },
      { x: { rows: 'T', data: x }, z: { rows: 'T', data: z }, w: { weight: w }, dy: { rows: 'T', data: dy } },
      { dx: { width: D, rows: 'T' }, dz: { width: D, rows: 'T' }, dw: { width: D, rows: 'C' } }, b3);
    const c = vctx([f64(x), f64(z), f64(w)], [[n, D], [n, D], [D]], [[n, D]], { eps: 1e-5, groups: 2 });
    const [dx, dz, dw] = VJP.rmsnorm_gated!.backward(c, VJP.rmsnorm_gated!.forward(c).saved, [f64(dy)]);
    near('dx', got.dx!, dx!);
    near('dz', got.dz!, dz!);
    near('dw', got.dw!, dw!);
  });

  it('layernorm_backward: over D = 8 of rows of 2 heads', () => {
    const n = T(b3), D = 8, x = f32(n * 2 * D, 33, 2), w = f32(D, 34), bias = randomF64(D, 35), dy = f32(n * 2 * D, 36);
    const got = run('layernorm_backward', { W: 2 * D, D }, { eps: 1e-5 }, { x: { rows: 'T', data: x }, w: { weight: w }, dy: { rows: 'T', data: dy } },
      { dx: { width: 2 * D, rows: 'T' }, dw: { width: D, rows: 'C' }, db: { width: D, rows: 'C' } }, b3);
    const c = vctx([f64(x), f64(w), bias], [[n, 2, D], [D], [D]], [[n, 2, D]], { eps: 1e-5 });
    const [dx, dw, db] = VJP.layernorm!.backward(c, VJP.layernorm!.forward(c).saved, [f64(dy)]);
    near('dx', got.dx!, dx!);
    near('dw', got.dw!, dw!);
    near('db', got.db!, db!);
  });

  for (const tanh of [false, true]) it(`gelu_backward${tanh ? ', the tanh form' : ''}`, () => {
    const n = T(b3), x = f32(n * 6, 37, 4), dy = f32(n * 6, 38);
    const got = run('gelu_backward', { W: 6 }, { tanh }, { x: { rows: 'T', data: x }, dy: { rows: 'T', data: dy } }, { dx: { width: 6, rows: 'T' } }, b3);
    near('dx', got.dx!, VJP.gelu!.backward(vctx([f64(x)], [[n, 6]], [[n, 6]], { tanh }), undefined, [f64(dy)])[0]!);
  });

  it('softmax_backward: over parts of 5 of rows of 10, from the output', () => {
    const n = T(b3), x = f32(n * 10, 39, 2), dy = f32(n * 10, 40);
    const c = vctx([f64(x)], [[n, 2, 5]], [[n, 2, 5]], {});
    const { outs: [y], saved } = VJP.softmax!.forward(c);
    const got = run('softmax_backward', { W: 10, D: 5 }, {}, { y: { rows: 'T', data: Float32Array.from(y!) }, dy: { rows: 'T', data: dy } }, { dx: { width: 10, rows: 'T' } }, b3);
    near('dx', got.dx!, VJP.softmax!.backward(c, Float64Array.from(Float32Array.from(saved as F64)), [f64(dy)])[0]!);
  });

  for (const normalize of [false, true]) it(`topk_backward: 3 of 7${normalize ? ', normalized' : ''}`, () => {
    const n = T(b3), x = f32(n * 7, 41).map((v) => 1.5 + v), dv = f32(n * 3, 42);
    const c = vctx([f64(x)], [[n, 7]], [[n, 3], [n, 3]], { k: 3, normalize });
    const { outs: [, indices], saved } = VJP.topk!.forward(c);
    const got = run('topk_backward', { D: 7, K: 3 }, { normalize }, { x: { rows: 'T', data: x }, indices: { rows: 'T', data: Float32Array.from(indices!) }, dy: { rows: 'T', data: dv } },
      { dx: { width: 7, rows: 'T' } }, b3);
    near('dx', got.dx!, VJP.topk!.backward(c, saved, [f64(dv), null])[0]!);
  });

  it('embedding_backward: scatter-add, ids repeated', () => {
    const V = 7, D = 5, b: Batch = { seqs: b3.seqs, tokens: Int32Array.from({ length: T(b3) }, (_, i) => (i * 5) % V) }, dy = f32(T(b3) * D, 17);
    const got = run('embedding_backward', { V, D }, {}, { ids: { input: 'tokens' }, dy: { rows: 'T', data: dy } }, { dw: { width: V * D, rows: 'C' } }, b);
    near('dw', got.dw!, embeddingB(f64(dy), b.tokens!, V, D));
  });

  it('conv_backward: within each sequence, K = 4 taps over sequences of 7, 2 and 5', () => {
    const n = T(b3), C = 6, K = 4, x = f32(n * C, 18), w = f32(C * K, 19), dy = f32(n * C, 20);
    const got = run('conv_backward', { C, K }, {}, { x: { rows: 'T', data: x }, w: { weight: w }, dy: { rows: 'T', data: dy } },
      { dx: { width: C, rows: 'T' }, dw: { width: C * K, rows: 'C' }, db: { width: C, rows: 'C' } }, b3);
    const ref = convB(f64(dy), f64(x), n, C, K, f64(w), b3.seqs);
    near('dx', got.dx!, ref.dx);
    near('dw', got.dw!, ref.dw);
    near('db', got.db!, ref.db);
  });

  it('rope_backward: the inverse rotation of the first 4 of 8 dims', () => {
    const n = T(b3), dy = f32(n * 3 * 8, 21);
    const got = run('rope_backward', { H: 3, Dh: 8, R: 4 }, { theta: 10000 }, { dy: { rows: 'T', data: dy }, positions: { input: 'positions' } }, { dx: { width: 24, rows: 'T' } }, b3);
    near('dx', got.dx!, ropeF(f64(dy), n, 3, 8, positionsFor(b3.seqs, n), 4, 10000, true));
  });

  for (const window of [0, 3]) {
    const n = T(b3), d = { T: n, H: 4, KV: 2, Dh: 8, scale: 8 ** -0.5, window };
    const q = f32(n * 32, 22, 2), k = f32(n * 16, 23, 2), v = f32(n * 16, 24), dy = f32(n * 32, 25);
    const attrs = { scale: d.scale, ...(window ? { window } : {}) }, sizes = { H: 4, KV: 2, Dh: 8 };
    const qkv = { q: { rows: 'T', data: q }, k: { rows: 'T', data: k }, v: { rows: 'T', data: v } } as const;
    const ref = attentionF(f64(q), f64(k), f64(v), d, b3.seqs);

    it(`attention_train: y and the saved logsumexp, GQA 4/2${window ? ', window 3' : ''}`, () => {
      const got = run('attention_train', sizes, attrs, qkv, { y: { width: 32, rows: 'T' }, lse: { width: 4, rows: 'T' } }, b3);
      near('y', got.y!, ref.y);
      near('lse', got.lse!, ref.lse);
    });

    it(`attention_backward: flash-style from the saved logsumexp, GQA 4/2${window ? ', window 3' : ''}`, () => {
      const y = Float32Array.from(ref.y), lse = Float32Array.from(ref.lse);
      const got = run('attention_backward', sizes, attrs, { ...qkv, y: { rows: 'T', data: y }, lse: { rows: 'T', data: lse }, dy: { rows: 'T', data: dy } },
        { dq: { width: 32, rows: 'T' }, dk: { width: 16, rows: 'T' }, dv: { width: 16, rows: 'T' } }, b3);
      const r = attentionB(f64(dy), f64(q), f64(k), f64(v), f64(y), f64(lse), d, b3.seqs);
      near('dq', got.dq!, r.dq);
      near('dk', got.dk!, r.dk);
      near('dv', got.dv!, r.dv);
    });
  }

  it('experts_backward: 2 of 5 experts per token (expert 4 chosen by none), [5, 2·4, 6] and [5, 6, 4] matrices', () => {
    const n = T(b3), E = 5, H = 6, I = 4, K = 2;
    const x = f32(n * H, 43), gates = f32(n * K, 44), wIn = f32(E * 2 * I * H, 45), wOut = f32(E * H * I, 46), dy = f32(n * H, 47);
    const idx = Float32Array.from({ length: n * K }, (_, q) => (Math.floor(q / K) + (q % K)) % (E - 1));
    const got = run('experts_backward', { E, H, I, K }, {}, {
      x: { rows: 'T', data: x }, idx: { rows: 'T', data: idx }, gates: { rows: 'T', data: gates }, w_in: { weight: wIn }, w_out: { weight: wOut }, dy: { rows: 'T', data: dy },
    }, { dx: { width: H, rows: 'T' }, dgates: { width: K, rows: 'T' }, dw_in: { width: E * 2 * I * H, rows: 'C' }, dw_out: { width: E * H * I, rows: 'C' } }, b3);
    const c = vctx([f64(x), Int32Array.from(idx), f64(gates), f64(wIn), f64(wOut)], [[n, H], [n, K], [n, K], [E, 2 * I, H], [E, H, I]], [[n, H]], {});
    const [dx, , dg, dwIn, dwOut] = VJP.experts!.backward(c, VJP.experts!.forward(c).saved, [f64(dy)]);
    near('dx', got.dx!, dx!);
    near('dgates', got.dgates!, dg!);
    near('dw_in', got.dw_in!, dwIn!);
    near('dw_out', got.dw_out!, dwOut!);
    expect(got.dw_in!.subarray(4 * 2 * I * H).every((v) => v === 0) && got.dw_out!.subarray(4 * H * I).every((v) => v === 0), 'the unchosen expert').toBe(true);
  });

  it('ssd_backward: chunks of 3 over sequences of 7, 2 and 5, 4 heads in 2 groups', () => {
    const n = T(b3), H = 4, P = 3, G = 2, N = 5, chunk = 3;
    const x = f32(n * H * P, 26), B = f32(n * G * N, 27), C = f32(n * G * N, 28), D = f32(H, 29), dy = f32(n * H * P, 30);
    const dt = f32(n * H, 31).map((v) => 0.55 + 0.45 * v), A = f32(H, 32).map((v) => -1.5 + v);
    const got = run('ssd_backward', { H, P, G, N, chunk }, {}, {
      x: { rows: 'T', data: x }, dt: { rows: 'T', data: dt }, A: { weight: A }, B: { rows: 'T', data: B }, C: { rows: 'T', data: C }, D: { rows: 'C', data: D }, dy: { rows: 'T', data: dy },
    }, { dx: { width: H * P, rows: 'T' }, ddt: { width: H, rows: 'T' }, dA: { width: H, rows: 'C' }, dB: { width: G * N, rows: 'T' }, dC: { width: G * N, rows: 'T' }, dD: { width: H, rows: 'C' } }, b3);
    const s = { x: f64(x), dt: f64(dt), A: f64(A), B: f64(B), C: f64(C), D: f64(D) };
    const ref = ssdChunkedB(f64(dy), s, { H, P, G, N }, chunk, b3.seqs, ssdF(s, { H, P, G, N }, chunk, b3.seqs).entering);
    near('dx', got.dx!, ref.x);
    near('ddt', got.ddt!, ref.dt);
    near('dA', got.dA!, ref.A);
    near('dB', got.dB!, ref.B);
    near('dC', got.dC!, ref.C);
    near('dD', got.dD!, ref.D);
  });
});
