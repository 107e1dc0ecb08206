// A cost model of attention and the conv (templates/attention.cu.hbs, attention_decode.cu.hbs,
// conv.cu.hbs) for the whole-step model (codegen/cuda/cost.ts): a model, not a measurement. Per
// kernel: the bytes it must move (each tensor once; the KV cache in f32 as the pool holds it), its
// FLOPs, the floor (bytes at bandwidth, or the products at the tensor-core rate), and the time the
// schedule should take:
// - prefill: every (block, key tile) pair costs the largest of its products at the mma.sync rate
//   (WMMA is mma.sync: about two thirds of the card's wgmma rate on sm_90), its shared-memory traffic
//   (S, P and P·V go through shared memory, since a WMMA fragment's layout is not known to the
//   lanes: the bound that sets this schedule) and the K/V tile's loads from L2, spread over the SMs.
// - decode: phase 1 reads the cache at the rate its loads in flight allow (Little's law: resident
//   blocks · warps · 4 keys · K and V rows a SM, against bandwidth · latency / SMs), each block a DRAM
//   latency per round of 4 keys a warp; phase 2 a latency and its scratch bytes.
// - conv: a thread per channel with `unroll` rows' loads in flight, on the same law.
// A sliding window counts the keys each row sees (at most the window). Other families: null.

import { type Kernel, type Program, ofFamily } from '../../runtime/program.ts';
import { decodeSplit } from './attention.ts';
import { type FamilyCost, type GpuModel, type KernelCost, kernelCost, round4 } from './cost.ts';
import type { CudaTarget } from './schedule.ts';

/** What the model assumes of an sm_90-class SM beyond GpuModel: shared memory moves 128 bytes a
 *  clock at ~1.75 GHz; L2 serves ~5.5 TB/s; mma.sync (WMMA) issues at ~2/3 of the dense bf16 rate. */
export const SM_MODEL = { sharedBytesPerS: 128 * 1.75e9, l2Bandwidth: 5.5e12, mmaSyncShare: 2 / 3 } as const;
/** The context a decode step is modelled at when the caller gives none (tokens already cached). */
export const DECODE_CONTEXT = 4096;

const cost = (k: Kernel, bytes: number, flops: number, floorS: number, modelS: number, bound: string): KernelCost =>
  kernelCost(k, round4(bytes), round4(flops), floorS, modelS, bound);

/** Attention: prefill of `rows` fresh sequences of `tokens` each, or a decode step of `rows`
 *  sequences after `context` cached tokens (default DECODE_CONTEXT). */
export function attentionCostAt(_p: Program, entry: 'prefill' | 'decode', k: Kernel, shape: { rows: number; tokens: number; context?: number }, gpu: GpuModel, t: CudaTarget): KernelCost | null {
  if (k.family !== 'attention' && k.family !== 'attention_decode') return null;
  const W = (k.attrs.window as number | undefined) || Infinity;
  const { H, KV, Dh } = ofFamily(k, 'attention', 'attention_decode').sizes;
  const { rows: seqs, tokens: n } = shape;
  if (entry === 'decode') {
    const nk = Math.min(W, (shape.context ?? DECODE_CONTEXT) + n);
    const { splits, group } = decodeSplit(k, t);
    const piece = Math.max(t.attention.splitKeys, Math.ceil(nk / splits)), used = Math.ceil(nk / piece);
    const scratch = seqs * n * H * used * (Dh + 2) * 4;
    const bytes = seqs * (nk * KV * Dh * 8 + n * (2 * H + 4 * KV) * Dh * 4) + 2 * scratch;
    const flops = seqs * n * 4 * H * Dh * nk;
    const floor = Math.max(bytes / gpu.bandwidth, flops / gpu.fmaFlops);
    const warps = t.threads / t.warp, unroll = 4, resident = 4;
    const blocks = seqs * n * KV * (H / KV / group) * used;
    const rounds = Math.ceil(piece / (warps * unroll));
    const inFlight = Math.min(resident, Math.ceil(blocks / gpu.sms)) * warps * unroll * Dh * 8;
    const smRate = Math.min(gpu.bandwidth / gpu.sms, inFlight / gpu.dramLatency);
    const phase1 = Math.max(Math.ceil(blocks / (gpu.sms * resident)) * rounds * gpu.dramLatency, (bytes - scratch) / (Math.min(blocks, gpu.sms) * smRate));
    return cost(k, bytes, flops, floor, phase1 + gpu.dramLatency + scratch / gpu.bandwidth, smRate < gpu.bandwidth / gpu.sms ? 'latency (loads in flight)' : 'bandwidth');
  }
  const { rows, keys } = t.attention;
  const dp = 16 * Math.ceil(Dh / 16);
  const bytes = seqs * n * (2 * H + 4 * KV) * Dh * 4;
  // keys seen: row p the min(p + 1, W) up to it
  const seen = W >= n ? (n * (n + 1)) / 2 : (W * (W + 1)) / 2 + (n - W) * W;
  const flops = seqs * 4 * H * Dh * seen;
  const floor = Math.max(bytes / gpu.bandwidth, flops / gpu.tensorFlops);
  // (block, key tile) pairs: a sequence's tile b of rows walks the key tiles from its first row's
  // window to its last row
  let pairs = 0;
  for (let b = 0; b < Math.ceil(n / rows); b++) pairs += seqs * H * (Math.ceil(Math.min(n, (b + 1) * rows) / keys) - Math.floor(Math.max(0, b * rows + 1 - W) / keys));
  const warps = rows / 16;
  const mma = warps * 2 * (2 * 16 * keys * dp);
  // a warp's shared traffic a tile: K and V fragments, S stored and read twice, P written and read,
  // P·V stored and read
  const shared = warps * (2 * keys * dp * 2 + 3 * 16 * keys * 4 + 2 * 16 * keys * 2 + 2 * 16 * dp * 4);
  const l2 = 2 * keys * Dh * 4;
  const per = { mma: mma / (gpu.tensorFlops * SM_MODEL.mmaSyncShare / gpu.sms), shared: shared / SM_MODEL.sharedBytesPerS, l2: l2 / (SM_MODEL.l2Bandwidth / gpu.sms) };
  const [bound, each] = Object.entries(per).reduce((a, b) => (b[1] > a[1] ? b : a));
  return cost(k, bytes, flops, floor, (pairs * each) / gpu.sms, bound === 'mma' ? 'tensor cores (mma.sync)' : bound === 'shared' ? 'shared memory' : 'L2');
}
export const attentionCost: FamilyCost = attentionCostAt;

/** The conv (prefill: `rows` sequences of `tokens`) and conv_step (decode: `rows` sequences of 1). */
export const convCost: FamilyCost = (_p, _entry, k, shape, gpu, t) => {
  if (k.family !== 'conv' && k.family !== 'conv_step') return null;
  const { C, K } = ofFamily(k, 'conv', 'conv_step').sizes;
  const { rows: seqs, tokens: n } = shape;
  const T = seqs * n;
  const bytes = 2 * T * C * 4 + C * (K + 1) * 4 + 2 * seqs * C * (K - 1) * 4;
  const flops = 2 * K * C * T;
  const floor = Math.max(bytes / gpu.bandwidth, flops / gpu.fmaFlops);
  const tileRows = Math.max(t.conv.rows, K - 1), unroll = Math.min(t.conv.unroll, n);
  const blocks = seqs * Math.ceil(n / tileRows) * Math.ceil(C / t.threads);
  // a block: its state or window rows, then a DRAM latency a round of `unroll` rows
  const lifetime = (1 + Math.ceil(Math.min(n, tileRows) / unroll)) * gpu.dramLatency;
  const resident = Math.min(16, Math.ceil(blocks / gpu.sms));
  const smRate = Math.min(gpu.bandwidth / gpu.sms, (resident * t.threads * unroll * 4) / gpu.dramLatency);
  const model = Math.max(Math.ceil(blocks / (gpu.sms * resident)) * lifetime, bytes / (Math.min(blocks, gpu.sms) * smRate));
  return cost(k, bytes, flops, floor, model, smRate < gpu.bandwidth / gpu.sms ? 'latency (loads in flight)' : 'bandwidth');
};
