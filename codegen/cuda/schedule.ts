// The CUDA target record (an NVIDIA GPU, sm_80 and later) and the schedule of one kernel from it: threads per block, tiles, and the launch
// grid as data the runtime evaluates once T and S are known (runtime/cuda/abi.ts `launchOf`; the build
// writes each kernel's launch into the package's CUDA manifest):
//   grid.x = ceil(rows(rowsOf) · rowMul / rowDiv) (+ S when plusS), grid.y = gridY.
// Matrix products carry two paths: for many rows two phases (the prologue into a bf16 copy of A in
// the kernel's scratch, then a cp.async-pipelined tensor-core GEMM), for few a GEMV (decode).

import type { Epilogue, Kernel } from '../../runtime/program.ts';
import { exprLeaves } from '../../runtime/expr.ts';
import type { CudaLaunchPlan, CudaPhase, CudaScratch } from '../../runtime/cuda/kernels.ts';
import type { MatrixFormat } from '../../runtime/cuda/abi.ts';
import { gemvSchedule } from './gemv.ts';

/** An NVIDIA GPU (sm_80 and later): warp size, threads per block, tiles of each kernel family. */
export interface CudaTarget {
  readonly name: 'cuda';
  readonly warp: number;
  readonly threads: number;
  /** Static shared memory one block may use (bytes). */
  readonly sharedBytes: number;
  /** Matrix products: for many rows a GEMM of tiles `tileM` x `tileN` (at most; `tileN` shared by
   *  the product's offsets) stepping K by `tileK`, a ring of `stages` shared stages, `warpsM` x
   *  `warpsN` warps a block, after a prologue phase of `prepRows` rows a block (a warp a row), its
   *  dynamic shared memory at most `gemmSharedMax` bytes (sm_80's 163 KiB a block); a GEMV of `gemvRows`
   *  rows by `gemvCols` columns a pass over K, `gemvPasses` passes a block (one norm pass for them all),
   *  for up to `gemvUpTo` rows (decode), each thread keeping
   *  `gemvLoads` 16-byte weight loads in flight, at least `gemvMinBlocks` blocks an SM by format (ptxas caps the registers so; a
   *  quantised vector's 32 elements a row take more than bf16's 8: codegen/cuda/gemv.ts). */
  readonly matmul: {
    readonly tileM: number; readonly tileN: number; readonly tileK: number; readonly stages: number;
    readonly warpsM: number; readonly warpsN: number; readonly prepRows: number; readonly gemmSharedMax: number;
    readonly gemvRows: number; readonly gemvCols: number; readonly gemvPasses: number; readonly gemvUpTo: number; readonly gemvLoads: number; readonly gemvMinBlocks: Readonly<Record<MatrixFormat, number>>;
  };
  /** Keys per staged attention tile (a block holds one query row per warp). */
  readonly attention: { readonly keys: number };
  /** Chunk rows per SSD output tile. */
  readonly ssd: { readonly rows: number };
}

export const CUDA_TARGET: CudaTarget = {
  name: 'cuda', warp: 32, threads: 128, sharedBytes: 48 * 1024,
  matmul: {
    tileM: 128, tileN: 256, tileK: 32, stages: 4, warpsM: 2, warpsN: 4, prepRows: 8, gemmSharedMax: 163 * 1024,
    gemvRows: 8, gemvCols: 4, gemvPasses: 4, gemvUpTo: 16, gemvLoads: 8, gemvMinBlocks: { bf16: 2, q8: 2, q4: 2 },
  },
  attention: { keys: 32 },
  ssd: { rows: 16 },
};

/** A kernel's schedule: its launch plan (what the manifest keeps for the runtime) and the tiles and
 *  sizes its source is rendered with. */
export interface CudaSchedule extends CudaLaunchPlan {
  readonly [key: string]: number | boolean | string | readonly number[] | readonly CudaPhase[] | CudaScratch | undefined;
}

const lcm = (a: number, b: number): number => {
  const gcd = (x: number, y: number): number => (y ? gcd(y, x % y) : x);
  return (a / gcd(a, b)) * b;
};
const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
/** The smallest multiple of `unit` that is at least `atLeast`. */
const multipleOf = (unit: number, atLeast: number): number => unit * Math.max(1, ceilDiv(atLeast, unit));

/** Distinct column offsets the first epilogue stage reads the product at (0 always first). */
export function productOffsets(epilogue: readonly Epilogue[] | undefined): number[] {
  const first = epilogue?.[0];
  const offs = new Set([0]);
  if (first?.kind === 'map') for (const l of exprLeaves(first.body)) if (l.op === 'x') offs.add(l.offset);
  return [...offs];
}

/** Head dim of the widest rope stage (a product tile must hold whole heads). */
function ropeHead(k: Kernel): number {
  return Math.max(1, ...(k.epilogue ?? []).map((s) => (s.kind === 'rope' ? s.headDim : 1)));
}

/** The GEMM's tiles for a product at column offsets `offs` with heads of `head` columns: BN whole
 *  heads and a multiple of the warps' 16-column ldmatrix loads, the target's tileN shared by the offsets;
 *  stages (then rows) cut until the ring — or the accumulators, which reuse it for the epilogue — fit
 *  the shared memory; null where nothing fits. `shared`: the bytes its launch gives the kernel, in any
 *  format of W (matmul.cu.hbs asserts its layout fits). */
export function gemmTiles(t: CudaTarget, offs: readonly number[], head: number): { tileM: number; tileN: number; stages: number; shared: number } | null {
  const m = t.matmul, bk = m.tileK, noff = offs.length;
  const tileN = multipleOf(lcm(16 * m.warpsN, head), m.tileN / noff);
  // a stage: A's tile and W's, bf16 rows padded by 8; a quantised W's stage holds its codes (a byte
  // a code at most: half the bf16 tile) and one bf16 tile beside the ring takes them dequantised,
  // which at 2 stages or more fits in what bf16's stages take
  const shared = (tileM: number, stages: number) => Math.max(stages * (tileM + noff * tileN) * (bk + 8) * 2, noff * tileM * (tileN + 4) * 4);
  for (let tileM = m.tileM; tileM >= 16 * m.warpsM; tileM /= 2) {
    for (let stages = m.stages; stages >= 2; stages--) if (shared(tileM, stages) <= m.gemmSharedMax) return { tileM, tileN, stages, shared: shared(tileM, stages) };
  }
  return null;
}

export function cudaSchedule(k: Kernel, t: CudaTarget): CudaSchedule {
  const threads = t.threads;
  const base = { threads, rowMul: 1, plusS: false, gridY: 1 };
  switch (k.family) {
    case 'matmul': {
      const K = k.sizes.K, N = k.sizes.N;
      const x = k.inputs.x!;
      const hpr = 'buf' in x ? x.width / K : 1;
      const gather = (k.prologue ?? []).some((p) => p.kind === 'gather_last');
      const nOut = k.outputs.y!.width / hpr;
      const offs = productOffsets(k.epilogue);
      const head = ropeHead(k);
      const groups = Math.max(1, ...(k.prologue ?? []).map((p) => (p.kind === 'rmsnorm_gated' ? p.groups : 1)));
      const g = gemmTiles(t, offs, head);
      // the GEMM copies A and W in 16-byte pieces: K (and for a transposed W, N and the offsets) whole 8s
      const tensor = g !== null && K % 8 === 0 && (!k.attrs.transposed || (N % 8 === 0 && offs.every((o) => o % 8 === 0)));
      const rows = { rowsOf: gather ? 'S' : 'x', rowMul: gather ? 1 : hpr, plusS: false };
      const tiles = g ?? { tileM: t.matmul.tileM, tileN: t.matmul.tileN, stages: t.matmul.stages, shared: 0 };
      // the bf16 copy of A: R rows of K, R = S (gather) or x's rows · hpr, in the T or the S region
      const aFloats = (hpr * K) / 2;
      return {
        ...base, ...rows, rowDiv: tiles.tileM, gridY: ceilDiv(nOut, tiles.tileN),
        ...(tensor ? {
          phases: [
            { fn: 'prep', threads: t.warp * t.matmul.prepRows, ...rows, rowDiv: t.matmul.prepRows, gridY: 1 },
            { fn: 'main', threads: t.warp * t.matmul.warpsM * t.matmul.warpsN, ...rows, rowDiv: tiles.tileM, gridY: ceilDiv(nOut, tiles.tileN), shared: tiles.shared },
          ],
          scratch: { fixed: 0, perT: gather ? 0 : aFloats, perS: aFloats },
        } : {}),
        tensor, tileM: tiles.tileM, tileN: tiles.tileN, tileK: t.matmul.tileK, ringStages: tiles.stages, gemmShared: tiles.shared,
        warpsM: t.matmul.warpsM, warpsN: t.matmul.warpsN, prepRows: t.matmul.prepRows, offsets: offs.length, groups,
        gemvRows: t.matmul.gemvRows, gemvUpTo: tensor ? t.matmul.gemvUpTo : Number.MAX_SAFE_INTEGER,
        ...gemvSchedule(k, t, nOut, multipleOf(lcm(threads / t.warp, head), t.matmul.gemvCols)),
      };
    }
    case 'embedding': case 'rope':
      return { ...base, rowsOf: 'T', rowDiv: 1 };
    case 'gather_last':
      return { ...base, rowsOf: 'S', rowDiv: 1 };
    case 'norm':
      return { ...base, rowsOf: 'x', rowMul: k.sizes.W / k.sizes.D, rowDiv: 1 };
    case 'elementwise': case 'copy':
      return { ...base, rowsOf: 'y', rowMul: k.outputs.y!.width, rowDiv: threads };
    case 'conv': case 'conv_step':
      return { ...base, rowsOf: 'S', rowDiv: 1, gridY: ceilDiv(k.sizes.C, threads) };
    case 'ssd': {
      // shared: the state [P, N], cumulative decays and dt of a chunk [2, Q], a tile of C·B [rows, Q]
      const { P, N, chunk } = k.sizes;
      let rows = t.ssd.rows;
      while (rows > 1 && 4 * (P * N + 2 * chunk + rows * chunk) > t.sharedBytes) rows /= 2;
      return { ...base, rowsOf: 'S', rowDiv: 1, gridY: k.sizes.H, tileRows: rows };
    }
    case 'ssd_step':
      return { ...base, rowsOf: 'S', rowDiv: 1, gridY: k.sizes.H };
    case 'softmax':
      return { ...base, rowsOf: 'x', rowMul: k.sizes.W / k.sizes.D, rowDiv: 1 };
    case 'topk': case 'experts':
      return { ...base, rowsOf: 'x', rowDiv: 1 };
    // rows by index: a thread per output element, as elementwise
    case 'gather': case 'scatter':
      return { ...base, rowsOf: 'y', rowMul: k.outputs.y!.width, rowDiv: threads };
    case 'attention': case 'attention_decode': {
      // one warp per query row; a block's rows never span two sequences (S extra blocks at most)
      const rows = threads / t.warp;
      // a sliding window: one block per (sequence, KV head), the only one to read and write its ring's columns
      if (k.attrs.window) return { ...base, rowsOf: 'S', rowDiv: 1, gridY: k.sizes.KV, rows, keys: t.attention.keys };
      return { ...base, rowsOf: 'T', rowDiv: rows, plusS: true, gridY: k.sizes.H, rows, keys: t.attention.keys };
    }
  }
}
