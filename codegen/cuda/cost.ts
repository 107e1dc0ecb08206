// A cost model of the decode step's GEMVs (templates/gemv.cu.hbs), for the build report: a model, not
// a measurement (no GPU has run these kernels). Per product: the bytes it must move (W once, x, y)
// and their time at the card's bandwidth — its floor — against the time the schedule should take:
// a block's lifetime is the prologue's inverse-RMS pass (its loads at L2 latency, 4 in flight a
// thread, overlapping the first round's prefetch) then its rounds of weight loads, each a DRAM latency, `resident` blocks an SM at once
// (the launch bound's minimum), so an SM moves resident · (a block's weight bytes) per lifetime —
// Little's law: bytes in flight an SM against bandwidth · latency / SMs. Launch gaps are not
// counted (a decode step replayed as a CUDA graph is a later part of the issue).

import type { MatrixFormat } from '../../runtime/cuda/abi.ts';
import { launchOf } from '../../runtime/cuda/abi.ts';
import { type Kernel, type Program, ofFamily } from '../../runtime/program.ts';
import { gemvVector } from './gemv.ts';
import { CUDA_TARGET, type CudaTarget, cudaSchedule, productOffsets } from './schedule.ts';

/** A card as the model sees it. */
export interface GpuModel {
  readonly name: string;
  readonly bandwidth: number;  // bytes/s of HBM
  readonly sms: number;
  readonly dramLatency: number;  // s, a load's round trip under load
  readonly l2Latency: number;
  readonly tensorFlops: number;  // FLOP/s of dense bf16 products on tensor cores (mma), the whole card
  readonly fmaFlops: number;  // FLOP/s of f32 FMAs on CUDA cores, the whole card
}

export const GPUS: readonly GpuModel[] = [
  { name: 'H100 SXM', bandwidth: 3.35e12, sms: 132, dramLatency: 600e-9, l2Latency: 200e-9, tensorFlops: 989e12, fmaFlops: 67e12 },
  { name: 'H200', bandwidth: 4.8e12, sms: 132, dramLatency: 600e-9, l2Latency: 200e-9, tensorFlops: 989e12, fmaFlops: 67e12 },
];

/** One kernel of a step as the model sees it: what it must move (bytes, each tensor once) and compute
 *  (FLOPs), its floor on the card (the larger of the bytes at bandwidth and the FLOPs at the rate of
 *  the unit the work belongs on), and the time its schedule should take (`modelUs` ≥ `floorUs`),
 *  with the bound that sets it. */
export interface KernelCost {
  readonly kernel: string;
  readonly family: string;
  readonly bytes: number;
  readonly flops: number;
  readonly floorUs: number;
  readonly modelUs: number;
  readonly bound: string;
}

/** A family's model: the cost of kernel `k` of `entry` when the entry runs `rows` sequences of
 *  `tokens` tokens each (decode: tokens 1), or null where the family's schedule is not modelled. */
export type FamilyCost = (program: Program, entry: 'prefill' | 'decode', k: Kernel, shape: { rows: number; tokens: number }, gpu: GpuModel, t: CudaTarget) => KernelCost | null;

export interface GemvCost {
  readonly kernel: string;
  readonly format: MatrixFormat;
  readonly rows: number;
  readonly blocks: number;
  readonly bytes: number;
  /** Bytes of W in flight an SM (resident blocks · threads · loads a thread) against Little's law's need. */
  readonly inFlightPerSm: number;
  readonly littleNeedPerSm: number;
  readonly floorUs: number;
  readonly modelUs: number;
}

/** Bytes of one weight element in `format` (codes and their f16 scale per 32). */
const elementBytes = (f: MatrixFormat): number => (f === 'bf16' ? 2 : f === 'q8' ? 1 + 2 / 32 : 0.5 + 2 / 32);

/** The model of one decode product of `rows` rows on `gpu`. */
export function gemvCost(program: Program, k: Kernel, format: MatrixFormat, rows: number, gpu: GpuModel, t: CudaTarget = CUDA_TARGET): GemvCost | null {
  const entry = program.entries.decode;
  const s = cudaSchedule(k, t);
  const launch = launchOf(entry, k, s, rows, rows);
  if (!launch || launch.fn !== 'archc_gemv' || !s.vecGemv) return null;
  const { K, N } = ofFamily(k, 'matmul').sizes;
  const nOut = k.outputs.y!.width;
  const offsets = productOffsets(k.epilogue).length;
  const v = gemvVector(format, offsets, s.gemvPassCols as number, t);
  const passes = (s.gemvCols as number) / (s.gemvPassCols as number);
  const blocks = launch.grid[0] * launch.grid[1];
  const gated = k.prologue?.some((p) => p.kind === 'rmsnorm_gated') ? 2 : 1;
  const bytes = N * K * elementBytes(format) + rows * K * 4 * gated + rows * nOut * 4;
  const loadsPerThread = v.gemvUnroll * offsets * (s.gemvPassCols as number) * v.gemvVq;
  const resident = Math.min(v.gemvMinBlocks, Math.ceil(blocks / gpu.sms));
  const inFlightPerSm = resident * s.threads * loadsPerThread * 16;
  const littleNeedPerSm = (gpu.bandwidth * gpu.dramLatency) / gpu.sms;
  // a block: the inverse RMS of its rows, then its rounds of weight loads (a quantised product passes
  // over W once per 2 rows, all but the first from L2: their latency counts, not their bytes)
  const vectors = K / (v.vecElems * v.gemvVq);
  const rounds = passes * Math.ceil(vectors / (s.threads * v.gemvUnroll));
  const again = format !== 'bf16' ? rounds * (Math.ceil(rows / 2) - 1) * gpu.l2Latency : 0;
  // the norm's pass reads the block's rows together, 4 loads a row in flight a thread, while the
  // first round of W comes into L2 (prefetched): that round then waits on L2, not DRAM
  const prologue = k.prologue?.some((p) => p.kind !== 'gather_last') ? Math.ceil(K / s.threads / 4) * gpu.l2Latency : 0;
  const lifetime = (prologue ? Math.max(prologue, gpu.dramLatency) + gpu.l2Latency + (rounds - 1) * gpu.dramLatency : rounds * gpu.dramLatency) + again;
  const blockBytes = offsets * (s.gemvCols as number) * K * elementBytes(format);
  const floor = bytes / gpu.bandwidth;
  const waves = Math.ceil(blocks / (gpu.sms * resident));
  // an SM moves at most its share of the bandwidth; below it, what its resident blocks keep in flight
  const smRate = Math.min(gpu.bandwidth / gpu.sms, (resident * blockBytes) / lifetime);
  const model = Math.max(floor, waves * lifetime, (blocks / gpu.sms) * blockBytes / smRate);
  return { kernel: k.name, format, rows, blocks, bytes, inFlightPerSm, littleNeedPerSm, floorUs: floor * 1e6, modelUs: model * 1e6 };
}

/** build-report.json's `targets.cuda.cost.decodeGemv`: the decode step's GEMVs (only they: the
 *  step's other kernels are not modelled yet) at batch 1 and 8, matrices in bf16, q8 and q4. */
export function decodeGemvReport(program: Program): object {
  if (!program.entries.decode) return {};
  return Object.fromEntries([1, 8].map((rows) => [`batch${rows}`, Object.fromEntries((['bf16', 'q8', 'q4'] as const).map((f) => [f, decodeGemvCost(program, f, rows)]))]));
}

/** The decode step's GEMVs at `rows` rows in `format` on each card: per kernel (one of each
 *  repeated layer kind, with how many the step runs) and the step's modelled time over its floor. */
export function decodeGemvCost(program: Program, format: MatrixFormat, rows: number): object {
  const decode = program.entries.decode;
  return Object.fromEntries(GPUS.map((gpu) => {
    const per = new Map<string, GemvCost & { count: number }>();
    let floor = 0, model = 0;
    for (const k of decode.kernels) {
      if (k.family !== 'matmul') continue;
      const c = gemvCost(program, k, k.attrs.transposed || ofFamily(k, 'matmul').sizes.K % 32 ? 'bf16' : format, rows, gpu);
      if (!c) continue;
      floor += c.floorUs;
      model += c.modelUs;
      const key = k.name.replace(/layers\.\d+\./, 'layers.*.');
      const seen = per.get(key);
      per.set(key, seen ? { ...seen, count: seen.count + 1 } : { ...c, kernel: key, count: 1 });
    }
    const round = (x: number) => Number(x.toPrecision(4));
    return [gpu.name, {
      floorUs: round(floor), modelUs: round(model), ratioToFloor: round(model / floor),
      kernels: [...per.values()].map((c) => ({ ...c, floorUs: round(c.floorUs), modelUs: round(c.modelUs), ratio: round(c.modelUs / c.floorUs) })),
    }];
  }));
}
