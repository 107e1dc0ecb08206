// The schedules of attention and the conv (templates/attention.cu.hbs, attention_decode.cu.hbs,
// conv.cu.hbs), and the limits each asserts at build (error AC500 naming the kernel) rather than
// dropping work:
// - prefill, flash-style on tensor cores: a block of `rows` query rows of one head (16 a warp) over
//   key tiles of `keys` rows in dynamic shared memory (K, V, a warp's scores or P·V in f32, its P in
//   bf16); head dims padded to 16, at most the target's maxHeadDim (a lane holds half an output row).
//   With a sliding window, phase 2 writes the ring (a block per (sequence, KV head)).
// - decode, flash-decoding: phase 1 a block per (token, piece of its context, group of query heads
//   of one KV head) writes a partial max, sum and output to the scratch; phase 2 a block per (token,
//   head) combines the pieces (and writes a sliding window's ring).
// - conv: a block per (tile of a sequence's token rows, 128 channels).

import { fail } from '../../dsl/diagnostics.ts';
import type { CudaPhase } from '../../runtime/cuda/kernels.ts';
import { type Kernel, ofFamily } from '../../runtime/program.ts';
import type { CudaSchedule, CudaTarget } from './schedule.ts';

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
const pow2AtLeast = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));
const limit = (k: Kernel, name: string, what: string, value: number, max: number): void => {
  if (value > max) fail('AC500', undefined, [`cuda.${name}`, `kernel ${k.name} (${k.family}) ${what} ${value}`, max]);
};

/** Bytes of the prefill kernel's dynamic shared memory for head dims padded to `dp`. */
export function attentionShared(rows: number, keys: number, dp: number): number {
  const warps = rows / 16;
  return 2 * keys * (dp + 8) * 2 + warps * 16 * (Math.max(keys, dp) + 4) * 4 + warps * 16 * (keys + 8) * 2;
}

/** The decode kernel's split of the context and grouping of query heads. */
export function decodeSplit(k: Kernel, t: CudaTarget): { splits: number; group: number; dpl: number } {
  const { H, KV, Dh } = ofFamily(k, 'attention', 'attention_decode').sizes;
  const dpl = ceilDiv(Dh, t.warp);
  limit(k, 'attention.decodeHeadDim', 'has head dim', Dh, t.warp * t.attention.groupRegs);
  // the most query heads of the group (a divisor of it) whose accumulators fit groupRegs a lane
  let group = H / KV;
  while (group * dpl > t.attention.groupRegs) group = [...Array(group).keys()].reverse().find((g) => g && (H / KV) % g === 0 && g < group)!;
  const splits = Math.min(t.attention.splits, pow2AtLeast(t.attention.decodeBlocks / (KV * ((H / KV) / group))));
  return { splits, group, dpl };
}

export function attentionSchedule(k: Kernel, t: CudaTarget, base: { threads: number; rowMul: number; plusS: boolean; gridY: number }): CudaSchedule {
  const { H, KV, Dh } = ofFamily(k, 'attention', 'attention_decode').sizes;
  if (k.family === 'attention_decode') {
    const { splits, group, dpl } = decodeSplit(k, t);
    const phases: CudaPhase[] = [
      { fn: 'main', threads: base.threads, rowsOf: 'T', rowMul: splits, rowDiv: 1, plusS: false, gridY: H / group },
      { fn: 'combine', threads: base.threads, rowsOf: 'T', rowMul: 1, rowDiv: 1, plusS: false, gridY: H },
    ];
    return { ...phases[0]!, phases, scratch: { fixed: 0, perT: H * splits * (Dh + 2), perS: 0 }, splits, group, dpl, splitKeys: t.attention.splitKeys };
  }
  const dp = 16 * ceilDiv(Dh, 16);
  limit(k, 'attention.headDim', 'has head dim', Dh, t.attention.maxHeadDim);
  const { rows, keys } = t.attention;
  if (rows % 16 || keys % 16) throw new Error(`archc: the CUDA target's attention tile ${rows}x${keys} is not of 16 rows a warp by keys of 16`);
  const shared = attentionShared(rows, keys, dp);
  limit(k, 'attention.sharedBytes', 'takes shared memory (bytes)', shared, t.attention.sharedMax);
  // a warp per 16 rows; a block's rows never span two sequences (S extra blocks at most)
  // a sliding window's ring written after every block has read it: a block per (sequence, KV head)
  const phases: CudaPhase[] = [
    { fn: 'main', threads: (rows / 16) * t.warp, rowsOf: 'T', rowMul: 1, rowDiv: rows, plusS: true, gridY: H, shared },
    ...(k.attrs.window ? [{ fn: 'ring', threads: base.threads, rowsOf: 'S', rowMul: 1, rowDiv: 1, plusS: false, gridY: KV }] : []),
  ];
  return { ...phases[0]!, phases, rows, keys, dp, ringThreads: base.threads };
}

export function convSchedule(k: Kernel, t: CudaTarget, base: { threads: number; rowMul: number; plusS: boolean; gridY: number }): CudaSchedule {
  const { C, K } = ofFamily(k, 'conv', 'conv_step').sizes;
  // a tile holds at least the taps - 1 rows before the next, so only a sequence's first tile reads its state
  const rows = Math.max(t.conv.rows, K - 1);
  return { ...base, rowsOf: 'T', rowDiv: rows, plusS: true, gridY: ceilDiv(C, base.threads), tileRows: rows, unroll: t.conv.unroll };
}
