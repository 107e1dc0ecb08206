// The measurement of bench/wasm-memory64.ts, free of Node's modules so that it runs in Node and in
// a browser page alike: the same products on a 32-bit kernel module and on its memory64 form,
// rounds interleaved; returns weight GB/s per format, row count and form.

import { quantize } from '../../runtime/quant.ts';
import { createRng } from '../../runtime/rng.ts';
import { type Tensor, fromF32 } from '../../runtime/tensor.ts';
import { type PackedWeight, WasmKernels } from '../../runtime/wasm/kernels.ts';
import { memory64Support } from '../../runtime/wasm/memory64.ts';
import { wasmModule } from '../../runtime/wasm/module.ts';

export const FORMATS = ['f32', 'bf16', 'q8', 'q4'] as const;
type Format = typeof FORMATS[number];
export interface Row { readonly format: Format; readonly T: number; readonly i32GBs: number; readonly memory64GBs: number; readonly ratio: number }

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `count` weights [n, n] per format on each form, `threads` threads, `rounds` rounds; `say` gets
 *  progress lines. Returns the rows and where the memory64 weights start (bytes). */
export async function measure(kernels: Uint8Array[], kernels64: Uint8Array[], opts: { threads: number; rounds: number; n: number; count: number },
  say: (s: string) => void): Promise<{ rows: Row[]; at64: number }> {
  const support = memory64Support();
  if (!support) throw new Error('no memory64 here: Node 20 needs --experimental-wasm-memory64; Chromium >= 133 has it');
  const { threads, rounds, n: N, count } = opts, K = N;
  const forms = {
    i32: new WasmKernels(await wasmModule(kernels), threads),
    // a one-page limit: every weight past memory 0's three quarters of it goes to region 1
    i64: new WasmKernels(await wasmModule(kernels64), threads, 65536, support),
  };
  await Promise.all(Object.values(forms).map((k) => k.start()));
  const rand = createRng(5), rng = (): number => rand.next();
  const weights = new Map<string, PackedWeight[]>();
  for (const f of FORMATS) {
    for (const name of Object.keys(forms)) weights.set(`${name} ${f}`, []);
    for (let i = 0; i < count; i++) {
      const data = new Float32Array(N * K);
      for (let j = 0; j < data.length; j++) data[j] = (rng() - 0.5) * 0.1;
      const t: Tensor = fromF32(data, [N, K], f === 'bf16' ? 'bf16' : 'f32');
      const q = f === 'q8' || f === 'q4' ? quantize(t, f) : null;
      if (q && !('q' in q)) throw new Error(q.reason);
      for (const [name, k] of Object.entries(forms)) weights.get(`${name} ${f}`)!.push(q ? k.packQuant(q.q) : k.pack(t));
    }
    say(`packed ${f}`);
  }
  const bytesOf = (f: Format): number => N * K * { f32: 4, bf16: 2, q8: 1 + 4 / 32, q4: 0.5 + 2 / 32 }[f];
  const samples = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const T of [1, 64]) {
      const x = new Float32Array(T * K).map(() => rng() - 0.5);
      for (const f of FORMATS) {
        for (const [name, k] of Object.entries(forms)) {
          const ws = weights.get(`${name} ${f}`)!;
          if (r === 0) for (const w of ws) k.linear(w, x, T, null);
          const t0 = performance.now();
          for (const w of ws) k.linear(w, x, T, null);
          const key = `${f} ${T} ${name}`;
          samples.set(key, [...(samples.get(key) ?? []), (performance.now() - t0) / 1000]);
        }
      }
    }
    say(`round ${r + 1} of ${rounds}`);
  }
  const at64 = weights.get('i64 f32')![0]!.at;
  for (const k of Object.values(forms)) k.close();
  const rows: Row[] = [];
  for (const T of [1, 64]) {
    for (const f of FORMATS) {
      const gbs = (name: string) => count * bytesOf(f) / median(samples.get(`${f} ${T} ${name}`)!) / 1e9;
      const [a, b] = [gbs('i32'), gbs('i64')];
      rows.push({ format: f, T, i32GBs: a, memory64GBs: b, ratio: b / a });
    }
  }
  return { rows, at64 };
}
