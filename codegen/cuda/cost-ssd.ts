// A cost model of the SSD kernels (a model, not a measurement): prefill's chunked SSD in five phases
// (templates/ssd.cu.hbs) and decode's ssd_step (templates/ssd_step.cu.hbs). The floor moves each
// tensor the op must touch once (x, dt, B, C, y; the state read and written) and does the
// algorithm's useful FLOPs (C·Bᵀ once per chunk and group, its lower triangle; chunk states; the
// scan's two products) at the card's bf16 tensor rate. The schedule's time sums its phases, each the
// largest of: its DRAM bytes (the scratch's intermediates written and read back included) at
// bandwidth; its tensor-core FLOPs (whole tiles, zero padding included) at the tf32 rate (half the
// bf16 rate: m16n16k8); and everything its blocks load (re-reads from L2 included) at the rate
// Little's law allows — the loads a thread keeps in flight (16 a staged slice, PASS in the state
// passing) times the threads resident an SM (the launch bound's blocks, or fewer as shared memory
// allows), over a DRAM round trip for as many bytes as come from DRAM and an L2 one for the rest.

import type { Program } from '../../runtime/program.ts';
import { ofFamily } from '../../runtime/program.ts';
import { type FamilyCost, type GpuModel, kernelCost } from './cost.ts';
import type { CudaTarget } from './schedule.ts';
import { ssdSchedule } from './schedule.ts';

/** Shared memory an SM of sm_90 gives its blocks (bytes), and blocks of 128 threads it holds at most. */
const SM_SHARED = 227 * 1024;
const SM_BLOCKS = 16;
/** Loads a thread keeps in flight while it stages a slice: the template's `#pragma unroll 8` over
 *  A's and B's loads side by side (what the source allows; no SASS was read here to confirm ptxas
 *  keeps them all in flight). */
const STAGE_LOADS = 16;

interface Phase {
  readonly blocks: number;
  /** DRAM bytes; bytes loaded by all blocks (L2 hits included); tensor-core FLOPs. */
  readonly bytes: number;
  readonly loaded: number;
  readonly flops: number;
  /** Blocks an SM by the launch bound, shared bytes a block, loads in flight a thread. */
  readonly bound: number;
  readonly shared: number;
  readonly inFlight: number;
}

const cost = kernelCost;

/** Seconds one phase takes by the model, and what bounds it. */
function phaseTime(ph: Phase, gpu: GpuModel, threads: number): { t: number; bound: string } {
  const resident = Math.max(1, Math.min(ph.bound, Math.ceil(ph.blocks / gpu.sms), Math.floor(SM_SHARED / Math.max(1, ph.shared))));
  // what an SM's resident threads keep in flight, each load a DRAM round trip (up to the DRAM bytes) or an L2 one (re-reads)
  const inFlight = gpu.sms * resident * threads * ph.inFlight * 4;
  const fromDram = Math.min(ph.loaded, ph.bytes);
  const parts: [string, number][] = [
    ['bandwidth', ph.bytes / gpu.bandwidth],
    ['tensor cores (tf32)', ph.flops / (gpu.tensorFlops / 2)],
    ['loads in flight', (fromDram * gpu.dramLatency + (ph.loaded - fromDram) * gpu.l2Latency) / inFlight],
  ];
  const [bound, t] = parts.reduce((a, b) => (b[1] > a[1] ? b : a));
  return { t, bound };
}

/** Prefill's chunked SSD for `shape.rows` sequences of `shape.tokens` tokens. */
export const ssdCost: FamilyCost = (_program: Program, _entry, k, shape, gpu, t: CudaTarget) => {
  if (k.family !== 'ssd') return null;
  const { H, P, G, N, chunk } = ofFamily(k, 'ssd').sizes;
  const S = shape.rows, L = shape.tokens, T = S * L;
  const s = ssdSchedule({ H, P, G, N, chunk }, t, { threads: t.threads, rowMul: 1, plusS: false, gridY: 1 });
  const QP = s.chunkPad as number, TQ = s.tileQ as number, TP = s.tileP as number, TN = s.tileN as number, KS = s.kSlice as number;
  const tilesQ = QP / TQ, tilesP = Math.ceil(P / TP), tilesN = Math.ceil(N / TN);
  const chunksPer = Math.ceil(L / chunk), NC = S * chunksPer;
  // each sequence's chunks: full ones and a last one of `last` rows
  const last = L - (chunksPer - 1) * chunk;
  const sumQ = (f: (q: number) => number) => S * ((chunksPer - 1) * f(chunk) + f(last));
  const state = S * H * P * N * 4;
  const bytes = T * (2 * H * P + H + 2 * G * N) * 4 + 2 * state;
  const flops = sumQ((q) => G * q * (q + 1) * N + H * (2 * P * N * q + 2 * q * N * P + q * (q + 1) * P));
  const floor = Math.max(bytes / gpu.bandwidth, flops / gpu.tensorFlops);
  const sh = (i: number) => s.phases![i]!.shared ?? 0;
  const mb = t.ssd.minBlocks, K = (k: number) => Math.ceil(k / KS) * KS;
  // row tiles a chunk of q rows has (blocks past them return at once), and tile pairs up to the diagonal
  const live = (q: number) => Math.ceil(q / TQ);
  const tri = (q: number) => (live(q) * (live(q) + 1)) / 2;
  const stateBytes = NC * H * P * N * 4;
  const phases: Phase[] = [
    { blocks: NC * Math.ceil(H / 32), bytes: T * H * 4 + 2 * NC * H * QP * 4, loaded: T * H * 4, flops: 0, bound: SM_BLOCKS, shared: sh(0), inFlight: 1 },
    {
      blocks: NC * G * tri(QP), bytes: T * 2 * G * N * 4 + sumQ((q) => G * tri(q) * TQ * TQ * 4),
      loaded: sumQ((q) => G * tri(q) * 2 * TQ * N * 4), flops: sumQ((q) => G * tri(q) * 2 * TQ * TQ * K(N)), bound: mb, shared: sh(1), inFlight: STAGE_LOADS,
    },
    {
      blocks: NC * H * tilesP * tilesN, bytes: T * (H * P + G * N) * 4 + stateBytes,
      loaded: sumQ((q) => H * tilesP * tilesN * K(q) * (TP + TN) * 4), flops: sumQ((q) => H * tilesP * tilesN * 2 * TP * TN * K(q)), bound: mb, shared: sh(2), inFlight: STAGE_LOADS,
    },
    {
      blocks: S * H * Math.ceil((P * N) / (t.threads * t.ssd.passElems)), bytes: 3 * stateBytes + 2 * state, loaded: stateBytes + state,
      flops: 0, bound: SM_BLOCKS, shared: 0, inFlight: t.ssd.passElems,
    },
    {
      blocks: NC * H * tilesQ * tilesP, bytes: T * (2 * H * P + G * N) * 4 + stateBytes + sumQ((q) => G * tri(q) * TQ * TQ * 4),
      // a row tile ti loads its C rows and the entering state, then (ti + 1) tiles of C·Bᵀ and x
      loaded: sumQ((q) => H * tilesP * (live(q) * (TQ + TP) * K(N) + tri(q) * TQ * (TQ + TP)) * 4),
      flops: sumQ((q) => H * tilesP * (live(q) * 2 * TQ * TP * K(N) + tri(q) * 2 * TQ * TP * TQ)), bound: mb, shared: sh(4), inFlight: STAGE_LOADS,
    },
  ];
  const times = phases.map((ph) => phaseTime(ph, gpu, t.threads));
  const model = times.reduce((a, b) => a + b.t, 0);
  const top = times.reduce((a, b) => (b.t > a.t ? b : a));
  return cost(k, bytes, flops, floor, model, `5 phases, the longest (${times.indexOf(top) + 1}) by ${top.bound}`);
};

/** Decode's ssd_step for `shape.rows` sequences of one token: a block per (sequence, head) loads its
 *  state [P, N] at once (every load in flight), updates and stores it. */
export const ssdStepCost: FamilyCost = (_program, _entry, k, shape, gpu, t) => {
  if (k.family !== 'ssd_step') return null;
  const { H, P, G, N } = ofFamily(k, 'ssd_step').sizes;
  const rows = shape.rows * shape.tokens;
  const state = shape.rows * H * P * N * 4;
  const bytes = 2 * state + rows * (2 * H * P + H + 2 * G * N) * 4;
  const flops = rows * H * P * N * 6;
  const floor = Math.max(bytes / gpu.bandwidth, flops / gpu.fmaFlops);
  // every block a token: one DRAM round trip for its state and operands, then its stores; an SM
  // moves at most its share of the bandwidth
  const blocks = shape.rows * H;
  const perSm = Math.ceil(blocks / gpu.sms);
  const blockBytes = (2 * P * N + 2 * G * N + 2 * P) * 4;
  const latency = 2 * gpu.dramLatency, share = (perSm * blockBytes) / (gpu.bandwidth / gpu.sms);
  const model = shape.tokens * Math.max(latency, share);
  void t;
  return cost(k, bytes, flops, floor, model, latency > share ? 'latency (a load round trip, then the stores)' : 'bandwidth (an SM\'s share, whole blocks an SM)');
};
