// The wasm backend's q8/q4 panels (runtime/wasm/layout.ts QUANT_LAYOUT): a packed weight takes the
// layout's bytes a weight in the memory (q4 0.5625, q8 1.125: codes, f16 scale bits, q8's i16 code
// sums) and its memory extends past it as far as the GEMV reads ahead (and past a bf16 weight as far
// as the bf16 products' widening tile does), and the kernels widen the f16 scale bits to the f32 values runtime/quant.ts defines, exactly,
// for scales from zero through the f16 subnormals to the largest f16: the dequantising path bit for
// bit against the same values as f32 weights, the integer-dot GEMV per column within 1e-5 of the
// column's own terms (so a scale widened wrongly in one column cannot hide behind a larger one);
// and the integer-dot GEMV at its i16 bounds (codes and digits at their largest magnitudes: q4's
// group sums of balanced digits at about -15360, q8's pair sums at 32258), where a narrower sum or a
// saturating pair would be far off.

import { beforeAll, describe, expect, it } from 'vitest';
import { wasmKernels } from '../../codegen/wasm/assemble.ts';
import { WASM_TARGETS, type WasmTarget } from '../../codegen/wasm/target.ts';
import { linear } from '../../runtime/cpu/linear.ts';
import { type QuantDType, type QuantTensor, QUANT_GROUP, dequantizeRows, quantize } from '../../runtime/quant.ts';
import { WasmKernels } from '../../runtime/wasm/kernels.ts';
import { READ_AHEAD_TAIL, TILE_READ_TAIL } from '../../runtime/wasm/layout.ts';
import { wasmModule } from '../../runtime/wasm/module.ts';
import { prng, uniform } from '../runtime/cpu/check.ts';

const modules = new Map<WasmTarget, WebAssembly.Module>();
beforeAll(async () => {
  for (const t of WASM_TARGETS) modules.set(t, await wasmModule(await wasmKernels(t)));
});

/** Bytes a weight the panels take (the targets: 144 / 288 bytes a group of 32 k × 8 columns). */
const BYTES_PER_WEIGHT: Record<QuantDType, number> = { q4: 0.5625, q8: 1.125 };

/** f16 bits from zero through the subnormals (1, 2, 0x155, 0x3ff) and the smallest normals to the
 *  largest finite f16 (0x7bff = 65504). */
const SCALES = [0, 1, 2, 0x155, 0x3ff, 0x400, 0x401, 0x1234, 0x3555, 0x3c00, 0x5a5a, 0x7bff];

/** A [N, K] weight of random codes (none zero, so no column is all zero), column n's scales all
 *  SCALES[n % SCALES.length]. */
function spanning(rand: () => number, N: number, K: number, dtype: QuantDType): QuantTensor {
  const G = K / QUANT_GROUP;
  const scales = Uint16Array.from({ length: N * G }, (_, i) => SCALES[Math.floor(i / G) % SCALES.length]!);
  const code = () => {
    const c = 1 + Math.floor(rand() * (dtype === 'q8' ? 127 : 7));
    return rand() < 0.5 ? -c : c;
  };
  if (dtype === 'q8') return { dtype, shape: [N, K], codes: Int8Array.from({ length: N * K }, code), scales };
  const codes = Uint8Array.from({ length: N * K / 2 }, () => ((code() + 8) & 15) | (((code() + 8) & 15) << 4));
  return { dtype, shape: [N, K], codes, scales };
}

describe('q8/q4 panel bytes', () => {
  for (const dtype of ['q4', 'q8'] as const) {
    it(`${dtype}: a packed weight takes ${BYTES_PER_WEIGHT[dtype]} bytes a weight (a partial panel as a whole one)`, () => {
      const rand = prng(dtype === 'q4' ? 1 : 2);
      const wk = new WasmKernels(modules.get(WASM_TARGETS[0]!)!, 1);
      try {
        for (const [N, K] of [[64, 256], [13, 96]] as const) {
          const before = wk.memories()[0]!.weightBytes;
          const q = quantize({ dtype: 'f32', shape: [N, K], data: uniform(rand, N * K) }, dtype);
          if ('reason' in q) throw new Error(q.reason);
          const p = wk.packQuant(q.q);
          const want = Math.ceil(Math.ceil(N / 8) * 8 * K * BYTES_PER_WEIGHT[dtype] / 64) * 64;
          expect(wk.memories()[0]!.weightBytes - before, `[${N}, ${K}]`).toBe(want);
          expect(wk.memory.buffer.byteLength, `[${N}, ${K}]`).toBeGreaterThanOrEqual(p.at + want + READ_AHEAD_TAIL);
        }
      } finally {
        wk.close();
      }
    });
  }

  // a weight packed one after another until one ends within `tail` of a 64 KiB page's end (a memory
  // grows by whole pages: it would end there; at most a page's worth of them), then the product that
  // reads furthest past it runs on it: the GEMV and the integer GEMM (q4) or a block's widening tile (bf16, 8 rows)
  for (const [what, tail, bytes] of [['q4, as far as the GEMV reads ahead', READ_AHEAD_TAIL, 144], ['bf16, as far as the widening tile reads ahead', TILE_READ_TAIL, 2 * 8 * 32]] as const) {
    it(`the memory extends past a packed weight (${what}), even where the weight ends a 64 KiB page's last bytes`, () => {
      const wk = new WasmKernels(modules.get(WASM_TARGETS[0]!)!, 1);
      try {
        const data = uniform(prng(3), 8 * 32), T = what.startsWith('q4') ? 1 : 8;
        const q = quantize({ dtype: 'f32', shape: [8, 32], data }, 'q4');
        if ('reason' in q) throw new Error(q.reason);
        const pack = () => (what.startsWith('q4') ? wk.packQuant(q.q) : wk.pack({ dtype: 'bf16', shape: [8, 32], data: Uint16Array.from(data, (v) => new Uint32Array(Float32Array.of(v).buffer)[0]! >>> 16) }));
        let end = 0, p = pack();
        for (let i = 0; i < 65536 / bytes && (end === 0 || end % 65536 <= 65536 - tail); i++) end = (p = pack()).at + bytes;
        expect(end % 65536).toBeGreaterThan(65536 - tail);
        expect(wk.memory.buffer.byteLength).toBeGreaterThanOrEqual(end + tail);
        const xAt = wk.allocate(4 * 8 * 32), yAt = wk.allocate(4 * 8 * 8);
        wk.linearAt(p, xAt, 32, T, yAt, 8);
        // q4: 8 rows of 8-bit activations too, the integer GEMM's tiles reading ahead as the bf16 ones do
        if (what.startsWith('q4')) { wk.activations = 'q8'; wk.linearAt(p, xAt, 32, 8, yAt, 8); }
      } finally {
        wk.close();
      }
    });
  }
});

for (const t of WASM_TARGETS) describe(`the ${t.fma ? 'fma' : 'plain'} module: f16 scales widened exactly`, () => {
  for (const dtype of ['q4', 'q8'] as const) {
    it(`${dtype}: dequantised panels give what the reference's values as f32 weights give, bit for bit`, () => {
      const rand = prng(dtype === 'q4' ? 11 : 12);
      const [T, K, N] = [t.quantDotRows + 5, 96, 2 * SCALES.length + 3];
      const q = spanning(rand, N, K, dtype);
      const f = dequantizeRows(q, 0, N);
      expect(f.some((v) => v !== 0 && Math.abs(v) < 2 ** -14), 'values from subnormal f16 scales').toBe(true);
      const wk = new WasmKernels(modules.get(t)!, 1);
      try {
        const x = uniform(rand, T * K, -2, 2);
        const a = wk.linear(wk.packQuant(q), x, T, null), b = wk.linear(wk.pack({ dtype: 'f32', shape: [N, K], data: f }), x, T, null);
        const bad = a.findIndex((v, i) => !Object.is(v, b[i]));
        expect(bad, bad >= 0 ? `[${Math.floor(bad / N)}, ${bad % N}] (scale bits 0x${SCALES[(bad % N) % SCALES.length]!.toString(16)}): ${a[bad]} vs ${b[bad]}` : '').toBe(-1);
      } finally {
        wk.close();
      }
    });

    if (t.quantDotRows > 0) {
      it(`${dtype}: the integer-dot GEMV within 1e-5 of each column's own terms of the reference (1 and 3 rows)`, () => {
        const rand = prng(dtype === 'q4' ? 21 : 22);
        const [K, N] = [160, 2 * SCALES.length + 5];
        const q = spanning(rand, N, K, dtype);
        const f = dequantizeRows(q, 0, N);
        const wk = new WasmKernels(modules.get(t)!, 1);
        try {
          const p = wk.packQuant(q);
          for (const T of [1, 3]) {
            const x = uniform(rand, T * K, -2, 2);
            const got = wk.linear(p, x, T, null), want = linear(x, T, K, q, null);
            for (let r = 0; r < T; r++) {
              for (let n = 0; n < N; n++) {
                // the column's terms: x's rounding to 20 bits of its group maximum and f32 sums err in proportion to these
                let terms = 0;
                for (let k = 0; k < K; k++) terms += Math.abs(f[n * K + k]! * x[r * K + k]!);
                const i = r * N + n, err = Math.abs(got[i]! - want[i]!);
                if (!(err <= 1e-5 * terms)) {
                  throw new Error(`${dtype} T=${T} [${r}, ${n}] (scale bits 0x${SCALES[n % SCALES.length]!.toString(16)}): got ${got[i]}, want ${want[i]}, error ${err} > 1e-5 · ${terms}`);
                }
              }
            }
          }
        } finally {
          wk.close();
        }
      });
    }
  }
});

describe('the integer-dot GEMV at its i16 bounds', () => {
  const t = WASM_TARGETS.find((v) => v.quantDotRows > 0)!;
  for (const dtype of ['q4', 'q8'] as const) {
    it(`${dtype}: every code at its largest magnitude, x's digits at theirs, = the reference`, () => {
      const [K, N] = [128, 16];
      // q4: stored codes 15 (code 7) times balanced digits -64 (xq = 2^20 - 64·(2^14 + 2^7 + 1) = -8256:
      // digits 0, -64, -64); q8: codes 127 times unsigned digits 127 (xq = 16383: z = 2^20 + 16383)
      const q: QuantTensor = dtype === 'q4'
        ? { dtype, shape: [N, K], codes: new Uint8Array(N * K / 2).fill(0xff), scales: new Uint16Array(N * K / QUANT_GROUP).fill(0x3c00) }
        : { dtype, shape: [N, K], codes: new Int8Array(N * K).fill(127), scales: new Uint16Array(N * K / QUANT_GROUP).fill(0x3c00) };
      const xq = dtype === 'q4' ? -8256 : 16383, XQ_MAX = 2 ** 19 - 1;
      // each group's first element its maximum (xq = XQ_MAX), the other 31 at xq
      const x = Float32Array.from({ length: K }, (_, k) => (k % QUANT_GROUP ? (2 * xq) / XQ_MAX : 2));
      const wk = new WasmKernels(modules.get(t)!, 1);
      try {
        const got = wk.linear(wk.packQuant(q), x, 1, null), want = linear(x, 1, K, q, null);
        const f = dequantizeRows(q, 0, 1);
        let terms = 0;
        for (let k = 0; k < K; k++) terms += Math.abs(f[k]! * x[k]!);
        for (let n = 0; n < N; n++) {
          expect(Math.abs(got[n]! - want[n]!), `column ${n}: got ${got[n]}, want ${want[n]}`).toBeLessThanOrEqual(1e-5 * terms);
        }
      } finally {
        wk.close();
      }
    });
  }
});
