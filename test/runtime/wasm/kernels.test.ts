// The wasm backend's matrix products against the CPU reference backend, kernel by kernel, on random
// inputs with outputs poisoned first (test/helpers/kernels.ts): every row count around the
// micro-tile and cache-block edges, widths that leave partial panels, f32/bf16/f16 weights (bf16
// both widened per tile and widened per cache block into each thread's scratch), bias,
// the head's gather_last prologue, decode batches, and one or two threads; and the chunked SSD and
// prefill attention, whose work runs as products on the same kernels. Every module variant a build
// ships (fused multiply-add, plain SIMD) runs every case.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernels, wasmKernelVariants } from '../../../codegen/wasm/assemble.ts';
import { renderWasmKernels } from '../../../codegen/wasm/kernels.ts';
import { JOB_FIELDS, JOB_WBASE } from '../../../codegen/wasm/job.ts';
import { WASM_FMA_TARGET, WASM_TARGET, WASM_TARGETS, WASM_TARGETS64, type WasmTarget } from '../../../codegen/wasm/target.ts';
import type { Backend } from '../../../runtime/backend.ts';
import type { EntryName, Program } from '../../../runtime/program.ts';
import { f32ToBf16, f32ToF16, type DType, type Tensor } from '../../../runtime/tensor.ts';
import { WasmBackend } from '../../../runtime/wasm/backend.ts';
import { WasmKernels } from '../../../runtime/wasm/kernels.ts';
import { JOB_WORDS } from '../../../runtime/wasm/job.ts';
import { wasmModule } from '../../../runtime/wasm/module.ts';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

// every module variant a build ships (the fused multiply-add one first, then plain SIMD)
const modules = new Map<WasmTarget, WebAssembly.Module>();
const made: Backend[] = [];
beforeAll(async () => {
  for (const t of WASM_TARGETS) {
    const bytes = await wasmKernels(t);
    expect(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>), `the ${t.fma ? 'fma' : 'plain'} variant validates`).toBe(true);
    modules.set(t, await wasmModule(bytes));
  }
});
afterAll(() => { for (const b of made) b.dispose(); });

const backendOf = (t: WasmTarget, threads: number) => (p: Program): Backend => {
  const b = new WasmBackend(p, modules.get(t)!, threads);
  made.push(b);
  return b;
};
const variantName = (t: WasmTarget) => (t.fma ? 'fma' : 'plain');

function weight(rand: () => number, shape: [number, number], dtype: DType): Tensor {
  const v = uniform(rand, shape[0] * shape[1]);
  if (dtype === 'f32') return { dtype, shape, data: v };
  return { dtype, shape, data: Uint16Array.from(v, dtype === 'bf16' ? f32ToBf16 : f32ToF16) };
}

/** f32 sums in k order against the engine's double sums: a wrong row, column or panel is off by O(1). */
const TOL = { atol: 2e-5, rtol: 2e-5 };

interface Case { T: number; K: number; N: number; dtype: DType; bias: boolean; mode?: EntryName; split?: boolean }

// each variant on ragged shapes: its own micro-tile and cache-block edges
for (const t of WASM_TARGETS) describe(`the ${variantName(t)} module`, () => {
  const wasm = (threads: number) => backendOf(t, threads);
  const MR = t.rowsPerTile, TB = t.tokenBlock;
  const CASES: Case[] = [
    ...[1, 2, MR - 1, MR, MR + 1, 2 * MR + 3].map((T) => ({ T, K: 19, N: 13, dtype: 'f32' as const, bias: false })),
    { T: TB + MR + 2, K: 67, N: 37, dtype: 'f32', bias: true },
    { T: 5, K: 64, N: 16, dtype: 'f32', bias: true },
    { T: 6, K: 33, N: 21, dtype: 'bf16', bias: false },
    { T: 1, K: 40, N: 24, dtype: 'bf16', bias: true },
    { T: 3, K: 17, N: 9, dtype: 'f16', bias: true },
    { T: 5, K: 23, N: 11, dtype: 'f32', bias: true, mode: 'decode' },
    { T: 3, K: 31, N: 17, dtype: 'bf16', bias: false, mode: 'decode' },
    // one row over several groups of `gemvPanels` panels and a remainder; split across threads at a
    // panel that starts no group
    { T: 1, K: 29, N: 8 * (2 * t.gemvPanels + 2) - 5, dtype: 'f32', bias: false },
    { T: 1, K: 35, N: 8 * (2 * t.gemvPanels + 1) + 3, dtype: 'bf16', bias: true, mode: 'decode' },
    { T: 1, K: 512, N: 300, dtype: 'f32', bias: false },
    { T: 1, K: 384, N: 390, dtype: 'bf16', bias: false },
    // bf16 at prefill-like sizes: a block of rows that widens each panel into the thread's scratch,
    // then a remainder below `widenFrom` (widened in registers); a block of exactly `widenFrom`
    // rows; a last block one row short of it. Each large enough to split across threads.
    { T: TB + MR + 2, K: 67, N: 37, dtype: 'bf16', bias: true, split: true },
    { T: t.widenFrom, K: 240, N: 95, dtype: 'bf16', bias: false, split: true },
    { T: 2 * TB + t.widenFrom - 1, K: 45, N: 50, dtype: 'bf16', bias: true, split: true },
    // a batch decoding as a whole tile and one of two rows (bf16: widened, the last tile over two
    // panels at once, 9 panels: the last alone); widened blocks whose last tile of 1 or 2 rows
    // follows whole tiles (pairRows), on an even number of panels and an odd one
    { T: MR + 2, K: 384, N: 72, dtype: 'bf16', bias: false, mode: 'decode', split: true },
    { T: 2 * MR + 1, K: 340, N: 43, dtype: 'bf16', bias: true, split: true },
    { T: 2 * MR + 2, K: 250, N: 75, dtype: 'bf16', bias: false, mode: 'decode', split: true },
    { T: MR + 2, K: 61, N: 30, dtype: 'f32', bias: true, mode: 'decode' },
  ];

  describe('matrix products = CPU backend', () => {
    for (const c of CASES) {
      for (const threads of [1, 2]) {
        it(`linear T=${c.T} K=${c.K} N=${c.N} ${c.dtype}${c.bias ? ' +bias' : ''} ${c.mode ?? 'forward'}, ${threads} thread(s)`, () => {
          if (c.split) expect(c.T * c.K * c.N, 'the product is large enough to split').toBeGreaterThanOrEqual(t.splitFrom);
          const rand = prng(c.T * 1000 + c.K * 10 + c.N);
          const inputs: OpInput[] = [
            { act: uniform(rand, c.T * c.K, -2, 2), shape: ['T', c.K] },
            { weight: weight(rand, [c.N, c.K], c.dtype) },
            c.bias ? { weight: { dtype: 'f32', shape: [c.N], data: uniform(rand, c.N) } } : null,
          ];
          const ref = runOp('linear', inputs, { transposed: false }, c.T, { mode: c.mode });
          const got = runOp('linear', inputs, { transposed: false }, c.T, { mode: c.mode, backend: wasm(threads) });
          expectClose(got.outputs[0]!, ref.outputs[0]!, TOL, `linear ${JSON.stringify(c)}`);
        });
      }
    }

    for (const [T, K, N, dtype] of [[TB + 5, 96, 200, 'f32'], [TB + 5, 96, 200, 'bf16'], [2 * MR + 2, 384, 325, 'bf16'], [2 * MR + 1, 384, 325, 'f32'], [1, 512, 300, 'f32'], [1, 640, 530, 'bf16']] as const) {
      it(`a product shared by three threads equals one thread bit for bit (T=${T} K=${K} N=${N} ${dtype})`, () => {
        const rand = prng(7);
        expect(T * K * N, 'the product is large enough to split').toBeGreaterThanOrEqual(t.splitFrom);
        const inputs: OpInput[] = [{ act: uniform(rand, T * K), shape: ['T', K] }, { weight: weight(rand, [N, K], dtype) }, null];
        const one = runOp('linear', inputs, { transposed: false }, T, { backend: wasm(1) }).outputs[0]!;
        // repeated: which thread takes which chunk varies from run to run
        for (let r = 0; r < 3; r++) {
          const three = runOp('linear', inputs, { transposed: false }, T, { backend: wasm(3) }).outputs[0]!;
          expect(Array.from(three)).toEqual(Array.from(one));
        }
      });
    }

    it('products back to back on three threads, one and many rows (a worker that wakes late finds its chunks taken)', () => {
      const rand = prng(11);
      const [K, N] = [256, 600];
      const w: Tensor = weight(rand, [N, K], 'bf16');
      const one = new WasmKernels(modules.get(t)!, 1), three = new WasmKernels(modules.get(t)!, 3);
      try {
        const [p1, p3] = [one.pack(w), three.pack(w)];
        for (let i = 0; i < 200; i++) {
          const T = i % 5 === 4 ? 9 : 1;
          const x = uniform(rand, T * K);
          expect(T * K * N).toBeGreaterThanOrEqual(t.splitFrom);
          const want = one.linear(p1, x, T, null), got = three.linear(p3, x, T, null);
          if (!want.every((v, j) => Object.is(v, got[j]))) throw new Error(`product ${i} (T=${T}) differs on three threads`);
        }
      } finally {
        one.close();
        three.close();
      }
    });

    it('bf16 products of many rows back to back on three threads: each thread widens panels in its own scratch', () => {
      const rand = prng(12);
      const [T, K, N] = [3 * TB + 2 * MR, 256, 640];
      const w: Tensor = weight(rand, [N, K], 'bf16');
      const one = new WasmKernels(modules.get(t)!, 1), three = new WasmKernels(modules.get(t)!, 3);
      try {
        const [p1, p3] = [one.pack(w), three.pack(w)];
        for (let i = 0; i < 40; i++) {
          const x = uniform(rand, T * K);
          const want = one.linear(p1, x, T, null), got = three.linear(p3, x, T, null);
          if (!want.every((v, j) => Object.is(v, got[j]))) throw new Error(`product ${i} differs on three threads`);
        }
      } finally {
        one.close();
        three.close();
      }
    });

    it('the head over [T, heads, K] rows, and a transposed linear (left to the CPU kernels)', () => {
      const rand = prng(8);
      const x = { act: uniform(rand, 4 * 3 * 10), shape: ['T', 3, 10] as const };
      const head: OpInput[] = [x, { weight: weight(rand, [11, 10], 'bf16') }];
      expectClose(runOp('head', head, {}, 4, { backend: wasm(1) }).outputs[0]!, runOp('head', head, {}, 4).outputs[0]!, TOL, 'head');
      const tr: OpInput[] = [x, { weight: weight(rand, [10, 6], 'f32') }, null];
      expectClose(runOp('linear', tr, { transposed: true }, 4, { backend: wasm(1) }).outputs[0]!, runOp('linear', tr, { transposed: true }, 4).outputs[0]!, TOL, 'transposed');
    });
  });

  it('tiles: rows as the products read them, [ceil(T/MR)][K][MR], k in fours and a tail; rows past T untouched', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 2, shared: true });
    const ex = new WebAssembly.Instance(modules.get(t)!, { env: { memory } }).exports as unknown as { tiles(...a: number[]): void };
    const T = 2 * MR + 1, K = 19, ldx = 23, out = 16384, f = new Float32Array(memory.buffer);
    for (let i = 0; i < T * ldx; i++) f[64 + i] = i + 0.5;
    const want = new Float32Array(3 * MR * K + 8).fill(-1);
    f.set(want, out / 4);
    ex.tiles(256, ldx, T, K, out, MR);
    for (let r = 0; r < T; r++) for (let k = 0; k < K; k++) want[(r - (r % MR)) * K + k * MR + (r % MR)] = r * ldx + k + 0.5;
    expect(Array.from(f.subarray(out / 4, out / 4 + want.length))).toEqual(Array.from(want));
  });

  describe('chunked SSD = CPU backend', () => {
    const CASES = [
      { T: 13, H: 4, P: 12, G: 2, N: 6, chunk: 5 },
      { T: 21, H: 2, P: 8, G: 1, N: 16, chunk: 16 },
      { T: 20, H: 3, P: 5, G: 3, N: 9, chunk: 4 },
    ];
    for (const c of CASES) {
      it(`T=${c.T} H=${c.H} P=${c.P} G=${c.G} N=${c.N} chunk=${c.chunk}`, () => {
        const rand = prng(c.T * 31 + c.N);
        const act = (n: number, w: readonly (number | 'T')[], lo = -1, hi = 1) => ({ act: uniform(rand, n, lo, hi), shape: w });
        const inputs: OpInput[] = [
          act(c.T * c.H * c.P, ['T', c.H, c.P]),
          act(c.T * c.H, ['T', c.H], 0.05, 1), // dt after softplus
          { weight: { dtype: 'f32', shape: [c.H], data: uniform(rand, c.H, -1.5, -0.2) } },
          act(c.T * c.G * c.N, ['T', c.G, c.N]),
          act(c.T * c.G * c.N, ['T', c.G, c.N]),
          { weight: { dtype: 'f32', shape: [c.H], data: uniform(rand, c.H) } },
        ];
        const ref = runOp('ssd', inputs, { chunk: c.chunk }, c.T);
        const got = runOp('ssd', inputs, { chunk: c.chunk }, c.T, { backend: wasm(1) });
        expect(ref.program.entries.forward.kernels.some((k) => k.family === 'ssd'), 'the chunked family runs').toBe(true);
        expectClose(got.outputs[0]!, ref.outputs[0]!, TOL, `ssd ${JSON.stringify(c)}`);
      });
    }
  });

  describe('attention = CPU backend', () => {
    // T past one block of query rows; GQA groups; a head dim that leaves a partial panel
    const CASES = [{ T: 5, H: 4, KV: 2, Dh: 8 }, { T: 70, H: 2, KV: 1, Dh: 12 }, { T: 9, H: 3, KV: 3, Dh: 5 }];
    for (const c of CASES) {
      it(`T=${c.T} H=${c.H} KV=${c.KV} Dh=${c.Dh}`, () => {
        const rand = prng(c.T * 7 + c.Dh);
        const inputs: OpInput[] = [
          { act: uniform(rand, c.T * c.H * c.Dh, -2, 2), shape: ['T', c.H, c.Dh] },
          { act: uniform(rand, c.T * c.KV * c.Dh, -2, 2), shape: ['T', c.KV, c.Dh] },
          { act: uniform(rand, c.T * c.KV * c.Dh), shape: ['T', c.KV, c.Dh] },
        ];
        const attrs = { scale: 1 / Math.sqrt(c.Dh) };
        const ref = runOp('attention', inputs, attrs, c.T);
        const got = runOp('attention', inputs, attrs, c.T, { backend: wasm(1) });
        expect(ref.program.entries.forward.kernels.some((k) => k.family === 'attention'), 'the prefill family runs').toBe(true);
        expectClose(got.outputs[0]!, ref.outputs[0]!, TOL, `attention ${JSON.stringify(c)}`);
      });
    }
  });
});

describe('the module variants', () => {
  /** f32x4.relaxed_madd's opcode (0xfd, then 0x105 as LEB128) in a module's bytes. */
  const hasMadd = (b: Uint8Array) => b.some((x, i) => x === 0xfd && b[i + 1] === 0x85 && b[i + 2] === 0x02);

  it('a build ships the fused multiply-add module first, then the plain one; this engine runs the fused one', async () => {
    const [fma, plain] = await wasmKernelVariants();
    expect(hasMadd(fma!), 'the fma variant multiply-adds with f32x4.relaxed_madd').toBe(true);
    expect(hasMadd(plain!), 'the plain variant needs no relaxed SIMD').toBe(false);
    const wk = new WasmKernels(await wasmModule([fma!, plain!]), 1);
    expect(wk.fma, 'Node >= 20 accepts relaxed SIMD (its flag set at run time on Node 20)').toBe(true);
    wk.close();
  });

  it('a variant the engine rejects is passed over for the next', async () => {
    const plain = await wasmKernels(WASM_TARGET);
    // the fma module with a SIMD opcode no engine knows in place of its relaxed_madd
    const fma = (await wasmKernels(WASM_FMA_TARGET)).slice();
    const at = fma.findIndex((x, i) => x === 0xfd && fma[i + 1] === 0x85 && fma[i + 2] === 0x02);
    fma[at + 1] = 0xff;
    fma[at + 2] = 0x7f;
    expect(WebAssembly.validate(fma)).toBe(false);
    const wk = new WasmKernels(await wasmModule([fma, plain]), 1);
    expect(wk.fma).toBe(false);
    wk.close();
  });
});

describe('the wasm module text', () => {
  // a change to the generator shows its exact effect here; regenerate with
  // `ARCHC_UPDATE_GOLDEN=1 npx vitest run test/runtime/wasm`; the memory64 form of the fused
  // variant (codegen/wasm/addr.ts) beside them
  for (const [t, name] of [[WASM_TARGET, 'wasm-kernels.wat'], [WASM_FMA_TARGET, 'wasm-kernels-fma.wat'], [WASM_TARGETS64[0]!, 'wasm-kernels-fma-memory64.wat']] as const) {
    it(`renders as test/golden/${name}`, () => {
      const text = renderWasmKernels(t);
      const file = join(import.meta.dirname, '..', '..', 'golden', name);
      if (process.env.ARCHC_UPDATE_GOLDEN || !existsSync(file)) {
        if (process.env.CI) throw new Error(`golden file ${file} is missing`);
        writeFileSync(file, text);
      }
      expect(text).toBe(readFileSync(file, 'utf8'));
    });
  }

  it('the integer products\' inner kernels (mvi*, mt8_*) take their vector constants as parameters', () => {
    // V8 11.3 rebuilds a v128.const inside the loop that uses it (codegen/wasm/dot.ts constParams);
    // zeros are one instruction that needs no port
    const funcs = renderWasmKernels(WASM_FMA_TARGET).split('\n(func ').filter((f) => /^\$(mvi|mt8_)/.test(f));
    expect(funcs.length).toBeGreaterThanOrEqual(6);
    for (const f of funcs) expect(/v128\.const (?!i32x4 0 0 0 0\))/.test(f), f.slice(0, f.indexOf(' '))).toBe(false);
  });

  it('and the runtime writes its job record where the module reads it (runtime/wasm/job.ts)', () => {
    const { wbase, ...words } = JOB_WORDS;
    expect(Object.fromEntries(Object.entries(words).map(([k, i]) => [k, 4 * i]))).toEqual(JOB_FIELDS);
    expect(4 * wbase).toBe(JOB_WBASE);
  });
});
