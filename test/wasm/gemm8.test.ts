// The integer GEMM over 8-bit activations and q4/q8 weights (codegen/wasm/gemm8.ts; products of more
// than A8_DOT_ROWS rows with activations 'q8') against the CPU reference of the format
// (runtime/cpu/linear.ts over the rows rounded by runtime/act-quant.ts: the weights dequantised
// exactly, sums in double) and against the one-row integer-dot GEMV on the same rows:
//   - the same f32 sums as the GEMV, bit for bit (its integer group sums and its scaling order);
//   - within 1e-5 of the output's scale of the reference (the group sums are exact integers, so the
//     only difference is f32 rounding of each group's scaled sum and of the sum over groups; the
//     largest error seen is logged), on random weights and on the trained tiny-bamba-a's;
//   - bit for bit where every sum is exact in f32 (power-of-two scales, one activation scale);
//   - rows past a tile's last row (T not a multiple of the tile, nor of the cache block) never
//     written, the memory past the weight poisoned with NaN bytes first; one and three threads;
//   - the trained tiny-bamba-a end to end (packed forward, prefill and a batched decode, one token at
//     a time): the same logits, bit for bit, as with the GEMV taking every product (the logits
//     against the CPU reference: test/e2e/wasm-quant.test.ts).

import { dirname, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { wasmKernels, wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { Model } from '../../runtime/model.ts';
import { WASM_TARGETS } from '../../codegen/wasm/target.ts';
import { quantizeActivations } from '../../runtime/act-quant.ts';
import { linear } from '../../runtime/cpu/linear.ts';
import { type QuantDType, type QuantTensor, packNibbles, quantize } from '../../runtime/quant.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { A8_DOT_ROWS, WasmKernels } from '../../runtime/wasm/kernels.ts';
import type { Exports } from '../../runtime/wasm/memories.ts';
import { wasmModule } from '../../runtime/wasm/module.ts';
import { programFor } from '../helpers/checkpoints.ts';
import { spreadQuantWeight } from '../helpers/quant.ts';
import { expectClose, prng, uniform } from '../runtime/cpu/check.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32/model.safetensors');
const T8 = WASM_TARGETS.find((t) => t.a8Tile.q4 > 0)!;
let module: WebAssembly.Module;
beforeAll(async () => { module = await wasmModule(await wasmKernels(T8)); });

/** Row counts that take the GEMM: partial tiles, a whole cache block and one past it, two blocks. */
const rowsOf = (f: QuantDType) => [...new Set([A8_DOT_ROWS[f] + 1, A8_DOT_ROWS[f] + 2, T8.a8Tile[f], T8.a8Tile[f] + 1, 2 * T8.a8Tile[f] + 3, T8.tokenBlock, T8.tokenBlock + 7, 2 * T8.tokenBlock + 5])];

function rounded(x: Float32Array, T: number, K: number): Float32Array {
  const out = new Float32Array(T * K);
  quantizeActivations(x, 0, K, T, K, out);
  return out;
}

/** Activations whose groups span magnitudes 2^-10..2^9, half of them with a tie at their step. */
function activations(rand: () => number, T: number, K: number): Float32Array {
  const x = uniform(rand, T * K, -2, 2);
  for (let i = 0; i < x.length; i += 32) {
    const p = Math.floor(rand() * 20) - 10;
    for (let j = i; j < i + 32; j++) x[j] = Math.fround(x[j]! * 2 ** p);
    if (rand() < 0.5) { x[i] = 127 * 2 ** p; x[i + 1] = (Math.floor(rand() * 100) - 50 + 0.5) * 2 ** p; }
  }
  return x;
}

/** y = x·Wᵀ by WasmKernels.linearAt in memory 0, y's rows past T and the memory past the weight
 *  poisoned (NaN bytes) first; returns y [T, N] and whether the rows past T kept their poison. */
function run(wk: WasmKernels, q: QuantTensor, x: Float32Array, T: number): { y: Float32Array; kept: boolean } {
  const p = wk.packQuant(q);
  const [N, K] = q.shape, ldy = p.panels * 8, pad = 9;
  const xAt = wk.allocate(4 * T * K), yAt = wk.allocate(4 * (T + pad) * ldy);
  new Uint8Array(wk.memory.buffer, xAt).fill(0xff);
  new Float32Array(wk.memory.buffer, xAt, T * K).set(x);
  wk.linearAt(p, xAt, K, T, yAt, ldy);
  const ys = new Float32Array(wk.memory.buffer, yAt, (T + pad) * ldy);
  const y = new Float32Array(T * N);
  for (let t = 0; t < T; t++) y.set(ys.subarray(t * ldy, t * ldy + N), t * N);
  const kept = new Uint32Array(ys.buffer, yAt + 4 * T * ldy, pad * ldy).every((v) => v === 0xffffffff);
  return { y, kept };
}

/** The one-row GEMV over the same rows (`digits8_<f>`, `dot8_<f>`: `mvi8_<f>` row by row), called
 *  through the module's exports (q8 products of every row count take the GEMM). */
function gemvRows(wk: WasmKernels, q: QuantTensor, x: Float32Array, T: number): Float32Array {
  const [N, K] = q.shape, p = wk.packQuant(q), f = q.dtype, ldy = p.panels * 8;
  const ex = (wk as unknown as { mems: { list: { ex: Exports }[] } }).mems.list[0]!.ex;
  const xAt = wk.allocate(4 * T * K), dAt = wk.allocate(4 * T * K), yAt = wk.allocate(4 * T * ldy);
  new Float32Array(wk.memory.buffer, xAt, T * K).set(x);
  expect(ex[`digits8_${f}`]!(xAt, K, T, K, dAt, 1), 'finite rows').toBe(1);
  ex[`dot8_${f}`]!(dAt, p.at, yAt, T, K, ldy, 0, p.panels);
  const ys = new Float32Array(wk.memory.buffer, yAt, T * ldy), y = new Float32Array(T * N);
  for (let t = 0; t < T; t++) y.set(ys.subarray(t * ldy, t * ldy + N), t * N);
  return y;
}

describe('the one-row GEMV over 8-bit rows, q4 two panels a call (mvi8x2_q4)', () => {
  it('every range of panels, odd starts and a lone last panel included, gives each panel its one-panel call\'s sums bit for bit', () => {
    const rand = prng(41);
    const [K, N] = [160, 8 * 7 - 3];
    const q = spreadQuantWeight(rand, N, K, 'q4'), x = activations(rand, 2, K);
    const wk = new WasmKernels(module, 1);
    try {
      const p = wk.packQuant(q), ldy = p.panels * 8;
      const ex = (wk as unknown as { mems: { list: { ex: Exports }[] } }).mems.list[0]!.ex;
      const xAt = wk.allocate(4 * 2 * K), dAt = wk.allocate(4 * 2 * K), yAt = wk.allocate(4 * 2 * ldy);
      new Float32Array(wk.memory.buffer, xAt, 2 * K).set(x);
      expect(ex.digits8_q4!(xAt, K, 2, K, dAt, 1)).toBe(1);
      const ys = () => Array.from(new Uint32Array(wk.memory.buffer, yAt, 2 * ldy));
      // each panel alone
      for (let j = 0; j < p.panels; j++) ex.dot8_q4!(dAt, p.at, yAt, 2, K, ldy, j, j + 1);
      const alone = ys();
      expect(alone.some((v) => v !== 0)).toBe(true);
      for (const [p0, p1] of [[0, p.panels], [1, p.panels], [1, 6], [2, 5], [0, 1]]) {
        new Uint32Array(wk.memory.buffer, yAt, 2 * ldy).fill(0x7fc00000);
        ex.dot8_q4!(dAt, p.at, yAt, 2, K, ldy, p0!, p1!);
        const got = ys();
        for (let t = 0; t < 2; t++) for (let c = 0; c < ldy; c++) {
          const i = t * ldy + c, inside = c >= p0! * 8 && c < p1! * 8;
          expect(got[i], `panels [${p0}, ${p1}), row ${t}, column ${c}`).toBe(inside ? alone[i] : 0x7fc00000);
        }
      }
    } finally {
      wk.close();
    }
  });
});

const scaleOf = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const worst = { q4: 0, q8: 0 };
function near(got: Float32Array, want: Float32Array, what: string, f: QuantDType): void {
  const s = scaleOf(want);
  expectClose(got, want, { atol: 1e-5 * s, rtol: 0 }, what);
  got.forEach((v, i) => { worst[f] = Math.max(worst[f], Math.abs(v - want[i]!) / s); });
}

for (const f of ['q4', 'q8'] as const) describe(`the integer GEMM (${f} weights, 8-bit activations, tiles of ${T8.a8Tile[f]} rows)`, () => {
  for (const T of rowsOf(f)) {
    for (const threads of [1, 3]) {
      it(`T=${T}, ${threads} thread(s): the GEMV's sums bit for bit, the reference within 1e-5 of the scale`, () => {
        const rand = prng(T * 10 + threads + (f === 'q8' ? 5 : 0));
        const [K, N] = [480, 333];
        const q = spreadQuantWeight(rand, N, K, f);
        const x = activations(rand, T, K);
        const wk = new WasmKernels(module, threads);
        wk.activations = 'q8';
        try {
          const { y, kept } = run(wk, q, x, T);
          expect(kept, 'rows past T untouched').toBe(true);
          expect(Array.from(y)).toEqual(Array.from(gemvRows(wk, q, x, T)));
          near(y, linear(rounded(x, T, K), T, K, q, null), `T=${T}`, f);
        } finally {
          wk.close();
        }
      });
    }
  }

  it('exact sums (power-of-two scales, one activation scale): the reference bit for bit', () => {
    const rand = prng(7);
    const [T, K, N] = [T8.tokenBlock + 3, 96, 40];
    // codes over their whole range, -8 and -128 included
    const codes = Int8Array.from({ length: N * K }, () => Math.floor(rand() * (f === 'q4' ? 16 : 256)) - (f === 'q4' ? 8 : 128));
    const scales = Uint16Array.from({ length: (N * K) / 32 }, () => (Math.floor(rand() * 6) - 3 + 15) << 10);
    const q: QuantTensor = { dtype: f, shape: [N, K], codes: f === 'q4' ? packNibbles(codes) : codes, scales };
    // every group's maximum 127·2^-3: every rounded value a multiple of 2^-3, every sum exact
    const x = uniform(rand, T * K, -15, 15);
    for (let i = 0; i < x.length; i += 32) x[i] = 127 / 8;
    const wk = new WasmKernels(module, 1);
    wk.activations = 'q8';
    try {
      expect(Array.from(run(wk, q, x, T).y)).toEqual(Array.from(linear(rounded(x, T, K), T, K, q, null)));
    } finally {
      wk.close();
    }
  });

  it('the extreme codes times the extreme rows (q ±127, signs mixed): the reference bit for bit', () => {
    // every column one pattern of the extreme codes, every row one of ±127 · 2^-3: q8's pair sums
    // reach ±2 · 127 · 128 (codes -128 with q -127 and 127 with q 127 give the largest), all exact
    const [lo, hi] = f === 'q4' ? [-8, 7] : [-128, 127], T = 2 * T8.a8Tile[f] + 3, K = 64, N = 24;
    const pick = (pattern: number, i: number) => [lo, hi, i % 2 ? lo : hi, (i >> 1) % 2 ? hi : lo][pattern % 4]!;
    const codes = Int8Array.from({ length: N * K }, (_, i) => pick(Math.floor(i / K), i % K));
    const q: QuantTensor = { dtype: f, shape: [N, K], codes: f === 'q4' ? packNibbles(codes) : codes, scales: new Uint16Array((N * K) / 32).fill(15 << 10) };
    const x = Float32Array.from({ length: T * K }, (_, i) => (pick(Math.floor(i / K), i % K) < 0 ? -127 : 127) / 8);
    const wk = new WasmKernels(module, 1);
    wk.activations = 'q8';
    try {
      const { y } = run(wk, q, x, T), want = linear(rounded(x, T, K), T, K, q, null);
      expect(Array.from(y)).toEqual(Array.from(want));
      expect(Array.from(y)).toEqual(Array.from(gemvRows(wk, q, x, T)));
      expect(scaleOf(want)).toBe(K * 127 * -lo / 8);
    } finally {
      wk.close();
    }
  });

  it('trained tiny-bamba-a weights (in_proj, out_proj, gate/up, down, q_proj) with activations of their scale', () => {
    const ckpt = openCheckpoint(TINY_A);
    const wk = new WasmKernels(module, 2);
    wk.activations = 'q8';
    try {
      const names = ['model.layers.0.mamba.in_proj.weight', 'model.layers.1.mamba.out_proj.weight', 'model.layers.3.feed_forward.gate_proj.weight',
        'model.layers.4.feed_forward.down_proj.weight', 'model.layers.2.self_attn.q_proj.weight'];
      names.forEach((name, i) => {
        const r = quantize(ckpt.read(name), f);
        if ('reason' in r) throw new Error(r.reason);
        const q = r.q, [, K] = q.shape, T = rowsOf(f)[i + 1]!;
        const rand = prng(100 + i);
        // rows like a normed hidden state: unit spread, a few large channels
        const x = uniform(rand, T * K, -1.5, 1.5);
        for (let j = 0; j < x.length; j += 97) x[j]! *= 8;
        const { y } = run(wk, q, x, T);
        expect(Array.from(y), name).toEqual(Array.from(gemvRows(wk, q, x, T)));
        near(y, linear(rounded(x, T, K), T, K, q, null), name, f);
        // the product is not trivially small: its scale against the weights' own
        expect(scaleOf(y), name).toBeGreaterThan(0.1 * scaleOf(toF32(ckpt.read(name))));
      });
    } finally {
      wk.close();
      ckpt.close();
    }
    console.log(`integer GEMM, ${f}: largest error ${worst[f].toExponential(2)} of the output's scale (bound 1e-5)`);
  });
});

describe('the integer GEMM in the trained tiny-bamba-a', () => {
  for (const f of ['q4', 'q8'] as const) {
    it(`${f}a8: the logits of the GEMV path, bit for bit (packed forward, prefill, batched decode, token by token)`, async () => {
      const dir = dirname(TINY_A), program = programFor(dir);
      const m = await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 2, quantize: f, activations: 'q8' });
      const kernels = (m as unknown as { backend: { kernels: { a8Tile: Record<QuantDType, number> } } }).backend.kernels;
      const limits = A8_DOT_ROWS as Record<QuantDType, number>, [tile, rows] = [kernels.a8Tile[f], limits[f]];
      const text = Array.from(new TextEncoder().encode('The standard library of Python has a module for regular expressions.'));
      const [a, b] = [text.slice(0, 23), text.slice(23, 37)];
      const run = () => {
        const out = [m.forward({ ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] }).logits];
        const { states, logits } = m.prefill([a, b]);
        out.push(...logits, m.decode([a[0]!, b[0]!], states), m.step([a.slice(2, 6), b.slice(1, 3)], states));
        states.forEach((s) => m.releaseSequence(s));
        const s = m.newSequence();
        for (const id of a.slice(0, 5)) out.push(m.decode([id], [s]));
        m.releaseSequence(s);
        return out;
      };
      try {
        const got = run();
        // the GEMV for every row count: no tiles, no row limit
        kernels.a8Tile = { ...kernels.a8Tile, [f]: 0 };
        limits[f] = Infinity;
        const want = run();
        want.forEach((w, i) => expect(Array.from(got[i]!), `output ${i}`).toEqual(Array.from(w)));
      } finally {
        kernels.a8Tile = { ...kernels.a8Tile, [f]: tile };
        limits[f] = rows;
        m.dispose();
      }
    });
  }
});
