// The WebAssembly SIMD quantiser (codegen/wasm/quantize.ts, run by runtime/quantize-wasm.ts) against
// runtime/quant.ts `quantize`, the reference: the same codes and scales bit for bit (tolerance 0),
// and the same refusal reasons, on random weights with edge cases (all-zero groups, rounding ties,
// subnormals, scales past f16, NaN and Inf) in f32, bf16 and f16, on tiny-bamba-a's trained
// weights, on this thread and split over worker threads. Also: the module bytes the runtime ships
// are the assembled text (regenerate with ARCHC_UPDATE_GOLDEN=1), and the load's order of reads
// and uploads that lets a read overlap the quantising before it (runtime/load.ts `ahead`).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemble } from '../../codegen/wasm/assemble.ts';
import { quantizerModuleSource, renderQuantizer } from '../../codegen/wasm/quantize.ts';
import { type QuantDType, type QuantResult, quantize } from '../../runtime/quant.ts';
import { QuantPool, quantizeWasm, quantizerModule } from '../../runtime/quantize-wasm.ts';
import type { TensorSource } from '../../runtime/fetch.ts';
import { loadWeights } from '../../runtime/load.ts';
import type { Program } from '../../runtime/program.ts';
import { openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import type { LoadableBackend } from '../../runtime/targets.ts';
import { type DType, type Tensor, f32ToBf16, f32ToF16 } from '../../runtime/tensor.ts';
import { prng } from './cpu/check.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TINY_A = resolve(ROOT, '../shared/models/tiny-bamba-a');
const FORMATS: readonly QuantDType[] = ['q8', 'q4'];

/** Expects the two results equal: the same reason, or the same codes and scales (first difference named). */
function expectSame(got: QuantResult, want: QuantResult, what: string): void {
  if ('reason' in want || 'reason' in got) {
    expect('reason' in got ? got.reason : 'quantised', what).toBe('reason' in want ? want.reason : 'quantised');
    return;
  }
  const diff = (x: ArrayLike<number>, y: ArrayLike<number>) => { for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i; return x.length === y.length ? -1 : x.length; };
  const dc = diff(got.q.codes, want.q.codes), ds = diff(got.q.scales, want.q.scales);
  expect(dc, `${what}: first differing code byte ${dc}: ${got.q.codes[dc]} vs ${want.q.codes[dc]} (of ${want.q.codes.length})`).toBe(-1);
  expect(ds, `${what}: first differing scale ${ds}: ${got.q.scales[ds]} vs ${want.q.scales[ds]} (of ${want.q.scales.length})`).toBe(-1);
  expect(got.q.codes.constructor).toBe(want.q.codes.constructor);
}

/** f32 values as a tensor of `dtype` (rounded to it), in shared memory when `shared`. */
function tensorOf(values: Float32Array, N: number, K: number, dtype: DType, shared = false): Tensor {
  const n = N * K, eb = dtype === 'f32' ? 4 : 2;
  const buf = shared ? new SharedArrayBuffer(n * eb) : new ArrayBuffer(n * eb);
  if (dtype === 'f32') return { dtype, shape: [N, K], data: new Float32Array(buf).fill(0).map((_, i) => values[i]!) };
  const to = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  const data = new Uint16Array(buf);
  for (let i = 0; i < n; i++) data[i] = to(values[i]!);
  return { dtype, shape: [N, K], data };
}

/** Random weights, one group per row-group of edge cases: K = 256 (8 groups a row); `big` the
 *  magnitude of the groups whose q4 scales overflow f16 in part (an f16 tensor holds at most 65504). */
function edgeCases(seed: number, N: number, big = 1.2e5): Float32Array {
  const K = 256, rand = prng(seed), x = new Float32Array(N * K);
  const gauss = () => (rand() + rand() + rand() - 1.5) * 2;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < K / 32; g++) {
      const at = n * K + g * 32, kind = (n * 8 + g) % 12;
      for (let i = 0; i < 32; i++) {
        const u = gauss();
        x[at + i] = kind === 0 ? 0 // all zero
          : kind === 1 ? Math.max(-8, Math.min(7, Math.round(u * 3))) + (i % 8 === 3 ? 0.5 : 0) // q4 at scale 1: ties a.w.f.z.
          : kind === 2 ? Math.round(u * 40) + 0.5 // q8 at scale 1 (amax 127): every value a tie
          : kind === 3 ? (i % 5 ? u * 1e-39 : 0) // f32 subnormals and zeros: every candidate scale 0
          : kind === 4 ? u * 3e-8 // around f16's smallest subnormal: zero and non-zero scales together
          : kind === 5 ? u * 1e-5 // subnormal f16 scales
          : kind === 6 ? Math.max(-big, Math.min(big, u * big)) // q4: the smaller divisors' scales overflow f16, the larger do not
          : kind === 7 ? (i === 5 ? -0 : u * 0.02) // a negative zero among ordinary values
          : kind === 8 ? Math.max(-8, Math.min(7, Math.round(u * 3))) * (1 + 2 / 1024) // multiples of the even f16 below the tie
          : kind === 9 ? u * 0.5
          : u * 10 ** (Math.floor(rand() * 6) - 4); // ordinary, mixed magnitudes
      }
      if (kind === 1) x[at + (n % 32)] = -8;
      if (kind === 2) x[at + (n % 32)] = n % 2 ? 127 : -127;
      // amax / d exactly half-way between two f16 values (the lower one even): f16 rounding's tie
      if (kind === 8) x[at + (n % 32)] = -8 * (1 + 2.5 / 1024);
      if (kind === 9) x[at + (n % 32)] = -127 * (1 + 2.5 / 1024);
    }
  }
  return x;
}

describe('the wasm quantiser equals runtime/quant.ts quantize, bit for bit', () => {
  it('ships the module its text assembles to (ARCHC_UPDATE_GOLDEN=1 rewrites it)', async () => {
    const file = join(ROOT, 'runtime', 'quantize-wasm-module.ts');
    const text = quantizerModuleSource(await assemble(renderQuantizer(), 'archc-quantize.wat'));
    if (process.env.ARCHC_UPDATE_GOLDEN) writeFileSync(file, text);
    expect(readFileSync(file, 'utf8')).toBe(text);
    expect(quantizerModule(), 'this engine runs WebAssembly SIMD').not.toBeNull();
  });

  it('random weights with edge cases: zero groups, ties, subnormals, f16-overflowing scales; f32, bf16, f16', () => {
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      const N = 96, x = edgeCases(dtype.length, N, dtype === 'f16' ? 65504 : 1.2e5);
      const t = tensorOf(x, N, 256, dtype);
      for (const f of FORMATS) {
        const want = quantize(t, f);
        // q8 refuses the groups past 65504 · 127 only; q4's groups of kind 6 keep a finite scale
        expect('q' in want, `${dtype} ${f} quantises`).toBe(true);
        expectSame(quantizeWasm(t, f), want, `${dtype} ${f}`);
      }
    }
  });

  it('refusals give the same reason at the same place: NaN, Inf, a scale past f16', () => {
    const N = 8, K = 64;
    const cases: [string, number, number][] = [['NaN', 5 * K + 33, NaN], ['+Inf', 3 * K + 2, Infinity], ['-Inf', 7 * K + 63, -Infinity],
      ['q8 scale past f16', 2 * K + 40, 9e6], ['q4 and q8 scales past f16', 6 * K + 1, 1e30]];
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      for (const [what, at, v] of cases) {
        if (dtype === 'f16' && Number.isFinite(v)) continue; // f16 holds nothing that large
        const x = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i) * 0.1);
        x[at] = v;
        x[N * K - 1] = NaN; // a later bad group: the first one is the one reported
        const t = tensorOf(x, N, K, dtype);
        for (const f of FORMATS) {
          const want = quantize(t, f);
          expect('reason' in want, `${what} ${dtype} ${f} is refused`).toBe(true);
          expectSame(quantizeWasm(t, f), want, `${what} ${dtype} ${f}`);
        }
      }
    }
  });

  it('trained weights: every 2-D tensor of tiny-bamba-a (bf16 and f32), q8 and q4', () => {
    let tensors = 0;
    for (const stored of ['bf16', 'f32']) {
      const ck = openCheckpoint(join(TINY_A, stored));
      try {
        for (const name of ck.tensors.keys()) {
          const t = ck.read(name);
          if (t.shape.length !== 2 || t.shape[1]! % 32 !== 0) continue;
          tensors++;
          for (const f of FORMATS) expectSame(quantizeWasm(t, f), quantize(t, f), `${stored} ${name} ${f}`);
        }
      } finally {
        ck.close();
      }
    }
    expect(tensors).toBeGreaterThan(10);
  });
});

describe('QuantPool: the rows split over worker threads', () => {
  let pool: QuantPool | null = null;
  beforeAll(async () => {
    pool = await QuantPool.start(2);
  });
  afterAll(() => pool?.close());

  it('equals the reference on shared-memory tensors (row splits of several blocks), and refuses as it does', async () => {
    expect(pool, 'Node has workers and SharedArrayBuffer').not.toBeNull();
    // 1100 rows of 256 bf16 = 550 KiB: more than one 256 KiB block per worker
    const N = 1100, x = edgeCases(11, N);
    for (const dtype of ['bf16', 'f32'] as const) {
      const t = tensorOf(x, N, 256, dtype, true);
      for (const f of FORMATS) {
        const want = quantize(t, f);
        const [a, b] = await Promise.all([pool!.quantize(t, f), pool!.quantize(t, f)]); // two jobs queued on each worker
        expectSame(a, want, `pool ${dtype} ${f}`);
        expectSame(b, want, `pool ${dtype} ${f}, the second job`);
      }
      // bad groups in both halves: the reference's (the first) is reported
      const y = x.slice();
      y[1000 * 256 + 7] = NaN;
      y[700 * 256 + 100] = Infinity;
      const bad = tensorOf(y, N, 256, dtype, true);
      for (const f of FORMATS) expectSame(await pool!.quantize(bad, f), quantize(bad, f), `pool refusal ${dtype} ${f}`);
    }
  });

  it('a local checkpoint\'s tensors read by the workers themselves (quantizeFile) equal the reference; a truncated file is a read error', async () => {
    let tensors = 0;
    for (const stored of ['bf16', 'f32']) {
      const ck = openCheckpoint(join(TINY_A, stored));
      try {
        for (const [name, info] of ck.tensors) {
          const t = ck.read(name);
          for (const f of FORMATS) {
            const got = await pool!.quantizeFile(info, f);
            if (t.shape.length !== 2 || t.shape[1]! % 32 !== 0) { expect(got, `${name}: not the module's`).toBeNull(); continue; }
            expect(got).not.toBe('refused');
            expectSame(got as QuantResult, quantize(t, f), `file ${stored} ${name} ${f}`);
            tensors++;
          }
        }
      } finally {
        ck.close();
      }
    }
    expect(tensors).toBeGreaterThan(20);
    // a group past f16 refused where it lies; a byte range past the end of the file
    const dir = mkdtempSync(join(tmpdir(), 'archc-qfile-'));
    try {
      const x = edgeCases(5, 64);
      x[40 * 256 + 3] = 1e30;
      writeSafetensors(join(dir, 'w.safetensors'), [{ name: 'w', tensor: tensorOf(x, 64, 256, 'f32') }], { format: 'pt' });
      const ck = openCheckpoint(join(dir, 'w.safetensors'));
      const info = ck.tensors.get('w')!;
      ck.close();
      expect(await pool!.quantizeFile(info, 'q4')).toBe('refused');
      await expect(pool!.quantizeFile({ ...info, begin: info.begin + 4096 }, 'q8')).rejects.toThrow(/file ended after/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a tensor outside shared memory, or not [N, K·32], goes to this thread or the reference', async () => {
    const x = edgeCases(3, 40);
    const t = tensorOf(x, 40, 256, 'bf16');
    for (const f of FORMATS) expectSame(await pool!.quantize(t, f), quantize(t, f), `unshared ${f}`);
    const odd: Tensor = { dtype: 'f32', shape: [4, 48], data: new Float32Array(new SharedArrayBuffer(4 * 192)) };
    expectSame(await pool!.quantize(odd, 'q4'), quantize(odd, 'q4'), 'K = 48');
  });
});

describe('loadWeights with `ahead`: weight i + 1 is read while weight i is quantised', () => {
  it('asks for each weight before the one before it is awaited and uploaded, and uploads in order', async () => {
    const names = ['a', 'b', 'c', 'd'];
    const events: string[] = [];
    const program = { weights: names.map((name) => ({ name, shape: [2, 32] })) } as unknown as Program;
    const ckpt = { path: 'mem', tensors: new Map(names.map((n) => [n, { begin: 0, end: 256 }])) } as unknown as TensorSource;
    const backend = { uploadWeight: (w: { name: string }) => events.push(`upload ${w.name}`), complete: () => true } as unknown as LoadableBackend;
    const read = async (name: string) => {
      events.push(`read ${name}`);
      await new Promise((r) => setTimeout(r, 1));
      return { dtype: 'f32', shape: [2, 32], data: new Float32Array(64) } as const;
    };
    await loadWeights(program, ckpt, read, {}, backend, (n) => n, true);
    expect(events).toEqual(['read a', 'read b', 'upload a', 'read c', 'upload b', 'read d', 'upload c', 'upload d']);
    events.length = 0;
    await loadWeights(program, ckpt, read, {}, backend, (n) => n, false);
    expect(events).toEqual(['read a', 'upload a', 'read b', 'upload b', 'read c', 'upload c', 'read d', 'upload d']);
  });

  it('a failed read is met in order: the weight before it is uploaded first, and nothing is left unhandled', async () => {
    const names = ['a', 'b', 'c'];
    const uploaded: string[] = [];
    const program = { weights: names.map((name) => ({ name, shape: [2, 32] })) } as unknown as Program;
    const ckpt = { path: 'mem', tensors: new Map(names.map((n) => [n, { begin: 0, end: 256 }])) } as unknown as TensorSource;
    const backend = { uploadWeight: (w: { name: string }) => uploaded.push(w.name), complete: () => true } as unknown as LoadableBackend;
    const read = async (name: string) => {
      if (name === 'b') throw new Error('b is broken');
      return { dtype: 'f32', shape: [2, 32], data: new Float32Array(64) } as const;
    };
    await expect(loadWeights(program, ckpt, read, {}, backend, (n) => n, true)).rejects.toThrow('b is broken');
    expect(uploaded).toEqual(['a']);
  });
});
