// The build report's cost model of a whole step on a card (a model, not a measurement: no GPU has
// run these kernels). Each kernel of an entry is costed by its family's model (`FAMILY_COSTS`, keyed
// by family; a product launched as its GEMV is `gemv`): the bytes it must move and the FLOPs it must
// do, its floor (the bytes at the card's bandwidth or the FLOPs at the rate of the unit they belong
// on, whichever is longer) and the time its schedule should take. A step is its kernels' times plus
// a launch gap each (`LAUNCH_GAP_US`: replayed as a CUDA graph, the figure the report leads with;
// or launched one by one from the host), against the sum of their floors. A kernel whose family has
// no model is listed as unmodelled and the step's figures are then partial.
//
// The decode GEMV (templates/gemv.cu.hbs): a block's lifetime is the prologue's inverse-RMS pass
// (its loads at L2 latency, 4 in flight a thread, overlapping the first round's prefetch) then its
// rounds of weight loads, each a DRAM latency, `resident` blocks an SM at once (the launch bound's
// minimum), so an SM moves resident · (a block's weight bytes) per lifetime — Little's law: bytes in
// flight an SM against bandwidth · latency / SMs. The simple families (a block per row or a thread
// per element, strided loops whose loads wait on the stores before them through aliasing pointers)
// keep one load in flight a thread: a block lives its rounds of loads, each a round trip.

import type { MatrixFormat } from '../../runtime/cuda/abi.ts';
import { type Launch, launchOf, launchesOf, quantMatrix, viewRows } from '../../runtime/cuda/abi.ts';
import { type Entry, type Expr, type Kernel, type Program, type View, ofFamily } from '../../runtime/program.ts';
import { attentionCost, convCost } from './cost-attention.ts';
import { gemmCost } from './cost-gemm.ts';
import { ssdCost, ssdStepCost } from './cost-ssd.ts';
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

/** The batch a step is costed at: `rows` sequences of `tokens` tokens each (decode: tokens 1), the
 *  matrices loading may quantise held in `format` (bf16 when absent). */
export interface StepShape {
  readonly rows: number;
  readonly tokens: number;
  readonly format?: MatrixFormat;
}

/** Four significant digits, as the report gives its figures. */
export function round4(x: number): number { return Number(x.toPrecision(4)); }
/** A family model's record of `k`: floor and model in s (the model no faster than the floor), as µs. */
export function kernelCost(k: Kernel, bytes: number, flops: number, floorS: number, modelS: number, bound: string): KernelCost {
  return { kernel: k.name, family: k.family, bytes, flops, floorUs: round4(floorS * 1e6), modelUs: round4(Math.max(floorS, modelS) * 1e6), bound };
}

/** A family's model: the cost of kernel `k` of `entry` at `shape`, or null where the family's
 *  schedule is not modelled. */
export type FamilyCost = (program: Program, entry: 'prefill' | 'decode', k: Kernel, shape: StepShape, gpu: GpuModel, t: CudaTarget) => KernelCost | null;

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


/** The model of a product launched as its GEMV (a decode step's products, a prefill's head over the
 *  last rows) at `shape`, its matrix in `format`; null when the kernel is not launched as one. */
export function gemvCost(program: Program, entry: 'prefill' | 'decode', k: Kernel, format: MatrixFormat, shape: StepShape, gpu: GpuModel, t: CudaTarget = CUDA_TARGET): GemvCost | null {
  const e = program.entries[entry];
  const s = cudaSchedule(k, t);
  const { T, S } = sizesOf(shape);
  const launch = launchOf(e, k, s, T, S);
  if (!launch || launch.fn !== 'archc_gemv' || !s.vecGemv) return null;
  const { K, N } = ofFamily(k, 'matmul').sizes;
  const rows = k.prologue?.some((p) => p.kind === 'gather_last') ? S : T;
  const nOut = k.outputs.y!.width;
  const offsets = productOffsets(k.epilogue).length;
  const v = gemvVector(format, offsets, s.gemvPassCols as number, t);
  const passes = (s.gemvCols as number) / (s.gemvPassCols as number);
  const blocks = launch.grid[0] * launch.grid[1];
  const gated = k.prologue?.some((p) => p.kind === 'rmsnorm_gated') ? 2 : 1;
  // a one-token conv in the epilogue reads and writes each row's window (taps − 1 columns a channel)
  const windows = (k.epilogue ?? []).reduce((n, p) => n + (p.kind === 'conv_step' ? rows * p.channels * (p.taps - 1) * 4 * 2 : 0), 0);
  const bytes = N * K * elementBytes(format) + rows * K * 4 * gated + rows * nOut * 4 + windows;
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

/** The GEMV as a family's model: its matrix in the shape's format where loading may quantise it. */
const gemvFamily: FamilyCost = (program, entry, k, shape, gpu, t) => {
  const c = gemvCost(program, entry, k, quantMatrix(k) ? shape.format ?? 'bf16' : 'bf16', shape, gpu, t);
  if (!c) return null;
  const { K, N } = ofFamily(k, 'matmul').sizes;
  return { ...c, family: 'gemv', flops: 2 * c.rows * N * K, bound: c.modelUs > c.floorUs * 1.001 ? 'bytes in flight' : 'bandwidth' };
};

const sizesOf = (shape: StepShape) => ({ T: shape.rows * shape.tokens, S: shape.rows });

/** Threads and blocks an SM holds at most (sm_80, sm_90). */
const SM_THREADS = 2048, SM_BLOCKS = 32;

/** What a simple kernel does: the bytes it must move (absent: each of its views once, and its
 *  weights other than a product's or embedding's matrix), its FLOPs, and the trips to memory each
 *  thread makes one after another, to DRAM and to L2. */
interface Trips {
  readonly bytes?: number;
  readonly flops: number;
  readonly dram: number;
  readonly l2: number;
}

/** What kernel `k` does when launched as `l` for T tokens in S sequences (of `shape`, in entry `e`). */
type Work = (k: Kernel, l: Launch, T: number, S: number, shape: StepShape, e: Entry) => Trips;

/** A simple family's model: its blocks (from its launch) in waves of the blocks an SM holds, each
 *  living its threads' trips; at least its floor. */
const simple = (work: Work): FamilyCost => (program, entry, k, shape, gpu, t) => {
  const e = program.entries[entry];
  const { T, S } = sizesOf(shape);
  const launch = launchOf(e, k, cudaSchedule(k, t), T, S);
  if (!launch) return null;
  const w = work(k, launch, T, S, shape, e);
  const bytes = w.bytes ?? viewBytes(e, k, T, S) + weightBytes(program, k);
  const memory = bytes / gpu.bandwidth, compute = w.flops / gpu.fmaFlops;
  const floor = Math.max(memory, compute);
  const blocks = launch.grid[0] * launch.grid[1];
  const resident = Math.min(SM_BLOCKS, SM_THREADS / launch.block[0]);
  const latency = Math.ceil(blocks / (gpu.sms * resident)) * (w.dram * gpu.dramLatency + w.l2 * gpu.l2Latency);
  const model = Math.max(floor, latency);
  const bound = latency > floor ? 'latency' : memory >= compute ? 'bandwidth' : 'fma';
  return { kernel: k.name, family: k.family, bytes, flops: w.flops, floorUs: floor * 1e6, modelUs: model * 1e6, bound };
};

/** f32 bytes of each view of `k` (its activation operands and outputs) for T tokens in S sequences. */
function viewBytes(e: Entry, k: Kernel, T: number, S: number): number {
  const views = [...Object.values(k.inputs), ...Object.values(k.outputs)].filter((o): o is View => 'buf' in o);
  return views.reduce((n, v) => n + viewRows(e, v, T, S) * v.width * 4, 0);
}

/** f32 bytes of the weights `k` reads whole (not a product's or an embedding's matrix). */
function weightBytes(program: Program, k: Kernel): number {
  const matrix = k.family === 'matmul' || k.family === 'embedding' ? k.inputs.w : undefined;
  const shapes = new Map([...program.weights, ...program.derived].map((w) => [w.name, w.shape]));
  return Object.values(k.inputs).reduce((n, o) => n + ('weight' in o && o !== matrix ? (shapes.get(o.weight) ?? []).reduce((a, b) => a * b, 1) * 4 : 0), 0);
}

/** Nodes of an expression that compute (its FLOPs an element). */
const exprFlops = (x: Expr): number => ('a' in x ? 1 + exprFlops(x.a) + ('b' in x ? exprFlops(x.b) : 0) : 0);
const trips = (n: number, threads: number) => Math.ceil(n / threads);

/** Each family's model, by family (`gemv`: a product launched as its GEMV; `matmul`: on its
 *  tensor-core tiles). The tensor-core GEMM, the SSD, attention and the conv have their own models
 *  (cost-gemm.ts, cost-ssd.ts, cost-attention.ts), each an entry here (`matmul: gemmCost`, `ssd:
 *  ssdCost`, ...); a family missing here is listed as unmodelled in the report. */
export const FAMILY_COSTS: Readonly<Record<string, FamilyCost>> = {
  attention: attentionCost,
  attention_decode: attentionCost,
  conv: convCost,
  conv_step: convCost,
  matmul: gemmCost,
  ssd: ssdCost,
  ssd_step: ssdStepCost,
  gemv: gemvFamily,
  embedding: simple((k, l, T, S, shape) => {
    const { D } = ofFamily(k, 'embedding').sizes;
    const format = quantMatrix(k) ? shape.format ?? 'bf16' : 'bf16';
    return { bytes: T * D * (elementBytes(format) + 4) + T * 4, flops: 0, dram: trips(D, l.block[0]), l2: 0 };
  }),
  // a block a row: the sum of squares over the row from DRAM, then the row again (L2) with the weight
  norm: simple((k, l) => {
    const n = ofFamily(k, 'norm');
    const elements = l.grid[0] * n.sizes.D;
    const passes = trips(n.sizes.D, l.block[0]);
    return { flops: elements * (n.attrs.gated ? 9 : 4), dram: passes, l2: passes * (n.attrs.layer ? 2 : 1) };
  }),
  elementwise: simple((k, l, T, S, shape, e) => {
    const y = k.outputs.y!;
    const perElement = [k.body!, ...Object.values(k.pre ?? {})].reduce((n, x) => n + exprFlops(x), 0);
    return { flops: viewRows(e, y, T, S) * y.width * perElement, dram: 1, l2: 0 };
  }),
  copy: simple(() => ({ flops: 0, dram: 1, l2: 0 })),
  gather_last: simple((k, l, T, S) => {
    const W = ofFamily(k, 'gather_last').sizes.W;
    return { bytes: S * W * 8, flops: 0, dram: trips(W, l.block[0]), l2: 0 };
  }),
  // a block a token: each element reads its pair's two values (a second from L1/L2)
  rope: simple((k, l, T) => {
    const { H, Dh, R } = ofFamily(k, 'rope').sizes;
    return { flops: T * H * R * 6, dram: trips(H * Dh, l.block[0]), l2: trips(H * Dh, l.block[0]) };
  }),
  // a thread an element: the K rows it picks from (only they are read)
  gather: simple((k, l, T) => {
    const { K, D } = ofFamily(k, 'gather').sizes;
    return { bytes: T * K * (D * 8 + 4), flops: 0, dram: 2, l2: 0 };
  }),
  // a thread an element: its row's K indices, then the rows that match
  scatter: simple((k, l, T) => {
    const { N, K, D } = ofFamily(k, 'scatter').sizes;
    return { flops: T * N * D * K, dram: 2, l2: 2 * K };
  }),
  // a block a part: every thread walks the part twice (max, then the sum), then writes its columns
  softmax: simple((k, l) => {
    const D = ofFamily(k, 'softmax').sizes.D;
    return { flops: l.grid[0] * D * 4, dram: trips(D, 32), l2: 2 * D + trips(D, l.block[0]) };
  }),
  // one thread a row: each value against the K best so far
  topk: simple((k, l) => {
    const { D, K } = ofFamily(k, 'topk').sizes;
    return { flops: l.grid[0] * D * K, dram: trips(D, 32), l2: D * (K + 1) + 2 * K };
  }),
  // a block a token: its K experts' gate/up rows, a thread a hidden unit walking H; then the down
  // rows, a thread a column walking K · I; the experts' weights (f32) from DRAM once, then from L2
  experts: simple((k, l, T) => {
    const { E, H, I, K } = ofFamily(k, 'experts').sizes;
    const distinct = Math.min(E, T * K);
    return { bytes: distinct * 3 * H * I * 4 + T * (2 * H + 2 * K) * 4, flops: T * K * 6 * H * I, dram: 0, l2: trips(K * I, l.block[0]) * H + trips(H, l.block[0]) * K * I };
  }),
};

/** The gap a launch adds to a step (µs a kernel): replayed as a CUDA graph, or launched one by one
 *  from the host (3-5 µs on H100 without graphs). */
export const LAUNCH_GAP_US = { graph: 1, host: 4 } as const;

/** A step's kernels of one kind (the same layer at every depth), with how many the step runs. */
export type KernelRow = KernelCost & { readonly count: number };

export interface StepCost {
  readonly floorUs: number;
  /** The modelled kernels' times plus a graph replay's launch gap for each of their launches. */
  readonly modelUs: number;
  readonly ratioToFloor: number;
  /** The same launched from the host, kernel by kernel. */
  readonly hostModelUs: number;
  /** Launches the step makes (of kernels modelled or not; a kernel of phases makes several). */
  readonly launches: number;
  /** Some kernels have no model: the figures count only the others. */
  readonly partial: boolean;
  readonly unmodelled: readonly { readonly kernel: string; readonly family: string; readonly count: number }[];
  readonly kernels: readonly KernelRow[];
}

/** A kernel's name with its layer indices as `*` (`model.layers.*.mamba.in_proj:linear`). */
const layerKey = (name: string) => name.replace(/\.\d+(?=[.:])/g, '.*');

/** The model of `entry` at `shape` on `gpu`: every kernel that launches, by its family's model in
 *  `costs` (a product launched as its GEMV by `gemv`), or listed as unmodelled. */
export function stepCost(program: Program, entry: 'prefill' | 'decode', shape: StepShape, gpu: GpuModel, costs: Readonly<Record<string, FamilyCost>> = FAMILY_COSTS, t: CudaTarget = CUDA_TARGET): StepCost {
  const e = program.entries[entry];
  const { T, S } = sizesOf(shape);
  const rows = new Map<string, KernelRow>();
  const unmodelled = new Map<string, { kernel: string; family: string; count: number }>();
  let floor = 0, model = 0, launches = 0, modelled = 0;
  for (const k of e.kernels) {
    // a kernel of phases is several launches, each its gap
    const ls = launchesOf(e, k, cudaSchedule(k, t), T, S);
    if (!ls.length) continue;
    launches += ls.length;
    const family = ls[0]!.fn === 'archc_gemv' ? 'gemv' : k.family;
    const key = layerKey(k.name);
    const c = costs[family]?.(program, entry, k, shape, gpu, t) ?? null;
    if (!c) {
      const seen = unmodelled.get(key);
      unmodelled.set(key, { kernel: key, family, count: (seen?.count ?? 0) + 1 });
      continue;
    }
    floor += c.floorUs;
    model += c.modelUs;
    modelled += ls.length;
    const seen = rows.get(key);
    rows.set(key, seen ? { ...seen, count: seen.count + 1 } : { ...c, kernel: key, count: 1 });
  }
  const at = (gap: number) => model + modelled * gap;
  return {
    floorUs: round4(floor), modelUs: round4(at(LAUNCH_GAP_US.graph)), ratioToFloor: round4(at(LAUNCH_GAP_US.graph) / floor),
    hostModelUs: round4(at(LAUNCH_GAP_US.host)), launches, partial: unmodelled.size > 0, unmodelled: [...unmodelled.values()],
    kernels: [...rows.values()].map((c) => ({ ...c, bytes: round4(c.bytes), flops: round4(c.flops), floorUs: round4(c.floorUs), modelUs: round4(c.modelUs) })),
  };
}

/** The card, batch and format the report leads with. */
export const HEADLINE = { card: 'H200', decodeRows: 1, format: 'bf16', prefillTokens: 4096 } as const;

/** build-report.json's `targets.cuda.cost`: the decode step at batch 1 and 8 with matrices in bf16,
 *  q8 and q4, and a prefill of 4096 tokens in one sequence (bf16), on each card; each led by the
 *  headline's figures (H200, batch 1, bf16, launches replayed as a CUDA graph). */
export function costReport(program: Program) {
  const summary = (c: StepCost) => ({ floorUs: c.floorUs, modelUs: c.modelUs, ratioToFloor: c.ratioToFloor, hostModelUs: c.hostModelUs, partial: c.partial, unmodelled: c.unmodelled });
  const cards = <R>(f: (gpu: GpuModel) => R): Record<string, R> => Object.fromEntries(GPUS.map((gpu) => [gpu.name, f(gpu)]));
  const h = GPUS.find((g) => g.name === HEADLINE.card)!;
  const decode = { rows: HEADLINE.decodeRows, tokens: 1, format: HEADLINE.format };
  const prefill = { rows: 1, tokens: HEADLINE.prefillTokens, format: HEADLINE.format };
  return {
    model: 'modelled, not measured; a step is its kernels plus a launch gap each, replayed as a CUDA graph (hostModelUs: launched one by one)',
    launchGapUs: LAUNCH_GAP_US,
    decode: {
      card: HEADLINE.card, batch: HEADLINE.decodeRows, format: HEADLINE.format, ...summary(stepCost(program, 'decode', decode, h)),
      cards: cards((gpu) => Object.fromEntries([1, 8].map((rows) => [`batch${rows}`, Object.fromEntries((['bf16', 'q8', 'q4'] as const).map((format) => [format, stepCost(program, 'decode', { rows, tokens: 1, format }, gpu)]))]))),
    },
    prefill: {
      card: HEADLINE.card, tokens: HEADLINE.prefillTokens, format: HEADLINE.format, ...summary(stepCost(program, 'prefill', prefill, h)),
      cards: cards((gpu) => stepCost(program, 'prefill', prefill, gpu)),
    },
  };
}

/** The report's headline as `archc build` prints it. */
export function costSummary(r: ReturnType<typeof costReport>): string {
  const part = (c: { ratioToFloor: number; partial: boolean; unmodelled: readonly { count: number }[] }) =>
    `${c.ratioToFloor}x its floor${c.partial ? ` (partial: ${c.unmodelled.reduce((n, u) => n + u.count, 0)} kernels unmodelled)` : ''}`;
  return `cost model (${r.decode.card}, a CUDA graph): decode batch ${r.decode.batch} ${r.decode.format} ${part(r.decode)}, prefill ${r.prefill.tokens} ${part(r.prefill)}`;
}
