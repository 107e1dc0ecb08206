// runtime/load-pool.ts against the layouts written out element by element: a tensor's stored bytes
// read from a file (at an offset, as a checkpoint holds them) into panels ([N, K] and transposed
// [K, N], N not a multiple of the panel width, odd K, several blocks per worker) or as stored, by
// two workers and by the calling thread: the same bits as runtime/wasm/pack.ts' packPanels and the
// definition, padding and bytes around untouched; a non-finite element found wherever it lies (each
// dtype, either half of a 16-bit pair, either worker's rows), the largest finite values passed; a
// file that ends early refused.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoadPool } from '../../runtime/load-pool.ts';
import { packPanels } from '../../runtime/wasm/pack.ts';
import { makeDir, removeDir } from '../helpers/checkpoints.ts';
import { prng } from './cpu/check.ts';

const work = makeDir('archc-load-pool-');
const pools = [LoadPool.start(1), LoadPool.start(2)];
afterAll(() => {
  for (const p of pools) p.close();
  removeDir(work);
});

const MASK = { f32: 0x7f800000, bf16: 0x7f80, f16: 0x7c00 } as const;
type D = keyof typeof MASK;
const BEGIN = 40; // where the tensor starts in the file (a safetensors header's end is as arbitrary)

/** Random finite bits of `n` elements of `d` (never all-ones exponents), written to a file at BEGIN. */
function tensorFile(name: string, d: D, n: number, seed: number): { path: string; bits: Uint32Array | Uint16Array } {
  const rand = prng(seed);
  const bits = d === 'f32' ? new Uint32Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const x = Math.floor(rand() * 2 ** 32) >>> 0;
    bits[i] = d === 'f32' ? x : x >>> 16;
    if ((bits[i]! & MASK[d]) === MASK[d]) bits[i]! ^= d === 'f32' ? 0x00800000 : MASK[d] & -MASK[d];
  }
  return { path: write(name, bits), bits };
}

function write(name: string, bits: Uint32Array | Uint16Array): string {
  const path = join(work, name);
  const bytes = new Uint8Array(BEGIN + bits.byteLength + 8).fill(0x5a);
  bytes.set(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), BEGIN);
  writeFileSync(path, bytes);
  return path;
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

const SHAPES: [number, number][] = [[67, 64], [21, 40], [8, 3], [1, 17], [203, 2048], [40, 4099]];

describe('LoadPool.read', () => {
  it('into panels: W[n, k] at (n/NR)·K·NR + k·NR + n%NR, as packPanels places it; padding columns and the bytes after untouched', async () => {
    const NR = 8, AT = 128;
    for (const d of ['f32', 'bf16'] as const) {
      for (const [N, K] of SHAPES) {
        for (const transposed of [false, true]) {
          const { path, bits } = tensorFile(`p-${d}-${N}-${K}`, d, N * K, N + K);
          const P = Math.ceil(N / NR), eb = d === 'f32' ? 4 : 2;
          const make = (sab: SharedArrayBuffer) => (d === 'f32' ? new Uint32Array(sab) : new Uint16Array(sab));
          const want = make(new SharedArrayBuffer(AT + (P * K * NR + 16) * eb)).fill(7);
          const at = AT / eb;
          for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[at + Math.floor(n / NR) * K * NR + k * NR + (n % NR)] = bits[transposed ? k * N + n : n * K + k]!;
          const packed = want.slice().fill(7);
          packPanels(packed.subarray(at) as never, bits as never, N, K, NR, transposed);
          expect(firstDiff(packed, want), `packPanels ${d} [${N}, ${K}] transposed ${transposed}`).toBe(-1);
          for (const pool of pools) {
            const got = make(new SharedArrayBuffer(want.byteLength)).fill(7);
            const bad = await pool.read(path, BEGIN, eb, MASK[d], transposed ? K : N, transposed ? N : K, { buffer: got.buffer, at: AT, N, K, NR, transposed });
            const i = firstDiff(got, want);
            expect(bad).toBe(false);
            expect(i, `${d} [${N}, ${K}] transposed ${transposed}, ${pool.threads} workers: element ${i} is ${got[i]}, want ${want[i]}`).toBe(-1);
          }
        }
      }
    }
  });

  it('as stored: the bytes at the offset given, nothing around them written', async () => {
    for (const d of ['f32', 'bf16', 'f16'] as const) {
      for (const [N, K] of SHAPES) {
        const { path, bits } = tensorFile(`s-${d}-${N}-${K}`, d, N * K, 2 * N + K);
        const bytes = new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
        for (const pool of pools) {
          // shared memory (workers write it) and an ArrayBuffer (the calling thread does)
          for (const dst of [new SharedArrayBuffer(bytes.length + 96), new ArrayBuffer(bytes.length + 96)]) {
            const got = new Uint8Array(dst).fill(0xee), want = new Uint8Array(bytes.length + 96).fill(0xee);
            want.set(bytes, 64);
            expect(await pool.read(path, BEGIN, d === 'f32' ? 4 : 2, MASK[d], N, K, { dst, dstAt: 64 })).toBe(false);
            const i = firstDiff(got, want);
            expect(i, `${d} [${N}, ${K}], ${pool.threads} workers, ${dst.constructor.name}: byte ${i}`).toBe(-1);
          }
        }
      }
    }
  });

  it('finds a NaN or infinity wherever it lies; the largest finite values and an unchecked read (mask 0) pass', async () => {
    const N = 203, K = 2048, n = N * K;
    for (const d of ['f32', 'bf16', 'f16'] as const) {
      const eb = d === 'f32' ? 4 : 2;
      const { bits } = tensorFile(`f-${d}`, d, n, 11);
      const notFinite = d === 'f32' ? [0x7fc00000, 0x7f800000, 0xff800000] : d === 'bf16' ? [0x7fc0, 0x7f80, 0xff80] : [0x7e00, 0x7c00, 0xfc00];
      const largest = d === 'f32' ? [0x7f7fffff, 0xff7fffff] : d === 'bf16' ? [0x7f7f, 0xff7f] : [0x7bff, 0xfbff];
      // first, last, an odd and an even element in the second worker's half, one in the first's
      for (const where of [0, n - 1, Math.floor(n * 0.7) | 1, Math.floor(n * 0.7) & ~1, 3 * K + 5]) {
        for (const [value, bad] of [...notFinite.map((v) => [v, true] as const), ...largest.map((v) => [v, false] as const)]) {
          const b = bits.slice();
          b[where] = value;
          const path = write(`f-${d}-x`, b);
          for (const pool of pools) {
            const what = `${d} 0x${value.toString(16)} at ${where}, ${pool.threads} workers`;
            expect(await pool.read(path, BEGIN, eb, MASK[d], N, K, { dst: new SharedArrayBuffer(n * eb), dstAt: 0 }), `${what}, as stored`).toBe(bad);
            if (d !== 'f16') {
              const buffer = new SharedArrayBuffer(Math.ceil(N / 8) * 8 * K * eb);
              expect(await pool.read(path, BEGIN, eb, MASK[d], N, K, { buffer, at: 0, N, K, NR: 8, transposed: false }), `${what}, panels`).toBe(bad);
              expect(await pool.read(path, BEGIN, eb, MASK[d], K, N, { buffer, at: 0, N: K, K: N, NR: 8, transposed: true }), `${what}, transposed panels`).toBe(bad);
            }
            if (bad) expect(await pool.read(path, BEGIN, eb, 0, N, K, { dst: new SharedArrayBuffer(n * eb), dstAt: 0 }), `${what}, unchecked`).toBe(false);
          }
        }
      }
    }
  });

  it('a file that ends before the tensor does is refused, saying where it ended', async () => {
    const { path } = tensorFile('short', 'f32', 64 * 64, 3);
    for (const pool of pools) {
      await expect(pool.read(path, BEGIN + 4096, 4, MASK.f32, 64, 64, { dst: new SharedArrayBuffer(64 * 64 * 4), dstAt: 0 })).rejects.toThrow(/file ended after \d+ bytes/);
      await expect(pool.read(path, BEGIN + 4096, 4, MASK.f32, 64, 64, { buffer: new SharedArrayBuffer(64 * 64 * 4), at: 0, N: 64, K: 64, NR: 8, transposed: false })).rejects.toThrow(/file ended/);
    }
  });
});
