// A cost model of a prefill product (templates/matmul.cu.hbs), for the build report: a model, not a
// measurement. Many rows run two phases: the prologue (x, and z for a gated norm, read once and A
// written as bf16 to the scratch, at the card's bandwidth) and the GEMM over tiles of BM x BN
// (waves of tiles over the SMs, one block an SM, each tile's K steps at a stated fraction of the
// tensor-core rate for mma.sync fed from a cp.async ring, plus the ring's fill and the epilogue's pass
// through shared memory). The GEMM's traffic is counted where it comes from: W from DRAM once (a
// column of tiles runs within a wave or two); A from L2 once per column of tiles, and from DRAM
// once per wave where the bf16 A does not fit in L2 beside W's columns. Few rows (R ≤ gemvUpTo) run
// the GEMV, modelled by cost.ts's gemvCost. The floor: the larger of the bytes the product must move
// (x and the epilogue's operands, W, y; each once) at bandwidth and 2·R·N·K at the tensor rate.

import type { Entry, View } from '../../runtime/program.ts';
import { ofFamily } from '../../runtime/program.ts';
import { type FamilyCost, type KernelCost, gemvCost, kernelCost } from './cost.ts';
import { cudaSchedule, productOffsets } from './schedule.ts';

/** H100 and H200 alike: 50 MB of L2 at ~5.5 TB/s. */
export const L2_BYTES = 50e6;
export const L2_BANDWIDTH = 5.5e12;
/** The fraction of the card's tensor rate (wgmma's, on Hopper) the GEMM's K loop issues at: mma.sync
 *  (sm_80's instruction) peaks near two thirds of wgmma's rate on sm_90, and one block of 8 warps an
 *  SM, its ldmatrix loads not pipelined across k steps within a warp, about three quarters of that. */
export const MMA_FRACTION = 0.5;

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** Rows of view `v` for a batch of `tokens` rows in `seqs` sequences. */
function rowsOf(e: Entry, v: View, tokens: number, seqs: number): number {
  const r = e.buffers[v.buf]!.rows;
  return r === 'T' ? tokens : r === 'S' ? seqs : 1;
}

export const gemmCost: FamilyCost = (program, entry, k, shape, gpu, t) => {
  if (k.family !== 'matmul') return null;
  const e = program.entries[entry];
  const s = cudaSchedule(k, t);
  const { K, N } = ofFamily(k, 'matmul').sizes;
  const T = shape.rows * shape.tokens, S = shape.rows;
  const x = k.inputs.x as View;
  const hpr = x.width / K;
  const gather = (k.prologue ?? []).some((p) => p.kind === 'gather_last');
  const R = gather ? S : rowsOf(e, x, T, S) * hpr;
  if (!R) return null;
  const nOut = k.outputs.y!.width / hpr;
  // bytes each tensor once: activation operands (x, z, the epilogue's), W in bf16, y; FLOPs of the product
  const reads = Object.values(k.inputs).filter((o): o is View => 'buf' in o).reduce((b, v) => b + (gather && v === x ? S : rowsOf(e, v, T, S)) * v.width * 4, 0);
  const bytes = reads + N * K * 2 + Object.values(k.outputs).reduce((b, v) => b + rowsOf(e, v, T, S) * v.width * 4, 0);
  const flops = 2 * R * N * K;
  const floor = Math.max(bytes / gpu.bandwidth, flops / gpu.tensorFlops);
  const cost = (modelS: number, bound: string): KernelCost => kernelCost(k, bytes, flops, floor, modelS, bound);
  if (!s.tensor || R <= (s.gemvUpTo as number)) {
    // the GEMV: cost.ts's model of it, over this entry's rows
    const g = gemvCost(program, entry, k, 'bf16', shape, gpu, t);
    return g ? cost(g.modelUs / 1e6, 'gemv') : null;
  }
  const BM = s.tileM as number, BN = s.tileN as number, BK = s.tileK as number, noff = productOffsets(k.epilogue).length;
  // phase 1: x (and z) read, A written in bf16
  const gated = (k.prologue ?? []).some((p) => p.kind === 'rmsnorm_gated') ? 2 : 1;
  const prep = (R * K * 4 * gated + R * K * 2) / gpu.bandwidth;
  // phase 2: waves of tiles, one block an SM
  const gx = ceilDiv(R, BM), gy = ceilDiv(nOut, BN);
  const tiles = gx * gy, waves = ceilDiv(tiles, gpu.sms);
  const kPad = ceilDiv(K, BK) * BK;
  const tileFlops = 2 * BM * noff * BN * kPad;
  const smRate = (gpu.tensorFlops / gpu.sms) * MMA_FRACTION;
  // a tile: the ring's fill (a DRAM round trip before the first product), its K loop, then its
  // accumulators through shared memory and BM x BN floats out at the SM's share of the bandwidth
  const tileTime = gpu.dramLatency + tileFlops / smRate + (BM * BN * 4) / (gpu.bandwidth / gpu.sms);
  const compute = waves * tileTime;
  const aBytes = R * K * 2, wBytes = noff * nOut * K * 2;
  const l2Bytes = tiles * (BM + noff * BN) * kPad * 2;
  // a wave's W columns (gpu.sms / gx of them) beside all of A: beyond L2, A comes from DRAM each wave
  const waveW = Math.min(wBytes, ceilDiv(gpu.sms, gx) * noff * BN * K * 2);
  const dramBytes = wBytes + (aBytes + waveW > L2_BYTES ? waves * aBytes : aBytes) + R * nOut * 4;
  const terms: [string, number][] = [['tensor', compute], ['dram', dramBytes / gpu.bandwidth], ['l2', l2Bytes / L2_BANDWIDTH]];
  const [bound, gemm] = terms.reduce((a, b) => (b[1] > a[1] ? b : a));
  return cost(prep + gemm, bound);
};
