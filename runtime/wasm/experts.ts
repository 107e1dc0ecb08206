// The experts family on the wasm backend: tokens grouped by expert, each group's rows through the
// expert's gate/up matrix and then its down matrix on the wasm product kernels, the results added
// back to their tokens weighted (in expert order, as the reference). An expert's matrices are packed
// into the memory the first time a token picks it, each its own product weight, so a step reads
// only the chosen experts' panels; `read` counts the bytes of the panels each product reads.

import type { Ctx } from '../cpu/families.ts';
import type { KernelOf } from '../program.ts';
import type { Tensor } from '../tensor.ts';
import type { PackedWeight } from './kernels.ts';

export interface ExpertProducts {
  /** Expert e's [rows, cols] slice of a stored [E, rows, cols] weight, packed (once). */
  panel(weight: string, e: number): PackedWeight;
  /** y = x · Wᵀ over n rows on the product kernels. */
  product(w: PackedWeight, x: Float32Array, n: number): Float32Array;
  /** Bytes of expert panels read so far. */
  read: number;
}

const BYTES = { f32: 4, bf16: 2, q8: 1, q4: 0.5 } as const;

/** Expert e of a stored [E, rows, cols] tensor, as a [rows, cols] tensor over the same data. */
export function expertSlice(t: Tensor, e: number): Tensor {
  const [, rows, cols] = t.shape as [number, number, number];
  const n = rows * cols;
  return { dtype: t.dtype, shape: [rows, cols], data: (t.data as Float32Array).subarray(e * n, (e + 1) * n) };
}

export function runExperts(k: KernelOf<'experts'>, c: Ctx, p: ExpertProducts): void {
  const { E, H, I, K } = k.sizes;
  const x = c.operand(k, 'x'), idx = c.operand(k, 'idx'), gates = c.operand(k, 'gates');
  const wIn = (k.inputs.w_in as { weight: string }).weight, wOut = (k.inputs.w_out as { weight: string }).weight;
  const T = x.length / H;
  const rowsOf: number[][] = Array.from({ length: E }, () => []);
  for (let q = 0; q < T * K; q++) {
    const e = idx[q]!;
    if (!(e >= 0 && e < E && Number.isInteger(e))) throw new RangeError(`experts: token ${Math.floor(q / K)} routed to expert ${e}, outside 0..${E - 1}`);
    rowsOf[e]!.push(q);
  }
  const y = new Float32Array(T * H);
  for (let e = 0; e < E; e++) {
    const rows = rowsOf[e]!, n = rows.length;
    if (!n) continue;
    const xs = new Float32Array(n * H);
    rows.forEach((q, i) => xs.set(x.subarray(Math.floor(q / K) * H, (Math.floor(q / K) + 1) * H), i * H));
    const up = p.panel(wIn, e), down = p.panel(wOut, e);
    const gu = p.product(up, xs, n);
    const h = new Float32Array(n * I);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < I; j++) {
        const g = gu[i * 2 * I + j]!;
        h[i * I + j] = Math.fround(Math.fround(g / (1 + Math.exp(-g))) * gu[i * 2 * I + I + j]!);
      }
    }
    const d = p.product(down, h, n);
    p.read += BYTES[up.dtype] * (up.N * up.K + down.N * down.K);
    rows.forEach((q, i) => {
      const t = Math.floor(q / K), g = gates[q]!;
      for (let col = 0; col < H; col++) y[t * H + col] = Math.fround(y[t * H + col]! + Math.fround(d[i * H + col]! * g));
    });
  }
  c.write(k.outputs.y!, y);
}
