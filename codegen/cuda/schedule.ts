// The CUDA target record (an NVIDIA GPU, sm_80 and later) and the schedule of one kernel from it: threads per block, tiles, and the launch
// grid as data the runtime evaluates once T and S are known (runtime/cuda/abi.ts `launchOf`; the build
// writes each kernel's launch into the package's CUDA manifest):
//   grid.x = ceil(rows(rowsOf) · rowMul / rowDiv) (+ S when plusS), grid.y = gridY.
// Matrix products carry two paths: for many rows two phases (the prologue into a bf16 copy of A in
// the kernel's scratch, then a cp.async-pipelined tensor-core GEMM), for few a GEMV (decode).

import type { Epilogue, Kernel, Program } from '../../runtime/program.ts';
import { CompileError, type Diagnostic, diag } from '../../dsl/diagnostics.ts';
import { exprLeaves } from '../../runtime/expr.ts';
import type { CudaLaunchPlan, CudaPhase, CudaScratch } from '../../runtime/cuda/kernels.ts';
import type { MatrixFormat } from '../../runtime/cuda/abi.ts';
import { gemvSchedule } from './gemv.ts';
import { attentionSchedule, convSchedule } from './attention.ts';

/** An NVIDIA GPU (sm_80 and later): warp size, threads per block, tiles of each kernel family. */
export interface CudaTarget {
  readonly name: 'cuda';
  readonly warp: number;
  readonly threads: number;
  /** Static shared memory one block may use (bytes); dynamic shared memory one block may be given
   *  with its limit raised (sm_80's 163 KiB, the least of the architectures built for). */
  readonly sharedBytes: number;
  readonly dynamicSharedBytes: number;
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
  /** Attention (templates/attention.cu.hbs, attention_decode.cu.hbs). Prefill: a block of
   *  `rows` query rows of one head (16 a warp, WMMA tiles: rows / 16 warps) walks key tiles of `keys` rows, head dims
   *  padded to 16 up to `maxHeadDim` (each lane keeps half a row of the output in registers), in at
   *  most `sharedMax` bytes of dynamic shared memory (sm_80's most a block).
   *  Decode (flash-decoding): the context is split over up to `splits` blocks a (token, KV head),
   *  each at least `splitKeys` keys, for about `decodeBlocks` blocks at batch 1; a block takes the
   *  query heads of its KV head `groupRegs` / (head dims a lane) at a time. */
  readonly attention: { readonly rows: number; readonly keys: number; readonly maxHeadDim: number; readonly sharedMax: number; readonly splits: number; readonly splitKeys: number; readonly decodeBlocks: number; readonly groupRegs: number };
  /** Token rows per conv block (a thread per channel walks them, `unroll` rows' loads at a time). */
  readonly conv: { readonly rows: number; readonly unroll: number };
  /** The chunked SSD's tensor-core tiles (templates/ssd.cu.hbs): at most `tile` rows or columns a
   *  side (multiples of 32: 2x2 warps of 16x16 fragments), `kSlice` of the reduction staged at a time,
   *  `passElems` state elements a thread in the state passing, the tile phases bound to `minBlocks`
   *  blocks an SM (ptxas caps their registers so). */
  readonly ssd: { readonly tile: number; readonly kSlice: number; readonly passElems: number; readonly minBlocks: number };
  /** What a launch and a kernel's source may not exceed (cudaLimits). */
  readonly limits: { readonly gridY: number; readonly int: number };
}

export const CUDA_TARGET: CudaTarget = {
  name: 'cuda', warp: 32, threads: 128, sharedBytes: 48 * 1024, dynamicSharedBytes: 163 * 1024,
  matmul: {
    tileM: 128, tileN: 256, tileK: 32, stages: 4, warpsM: 2, warpsN: 4, prepRows: 8, gemmSharedMax: 163 * 1024,
    gemvRows: 8, gemvCols: 4, gemvPasses: 4, gemvUpTo: 16, gemvLoads: 8, gemvMinBlocks: { bf16: 2, q8: 2, q4: 2 },
  },
  attention: { rows: 128, keys: 64, maxHeadDim: 128, sharedMax: 163 * 1024, splits: 64, splitKeys: 64, decodeBlocks: 256, groupRegs: 32 },
  conv: { rows: 64, unroll: 8 },
  ssd: { tile: 64, kSlice: 32, passElems: 8, minBlocks: 3 },
  limits: { gridY: 65_535, int: 2 ** 31 - 1 },
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
      return convSchedule(k, t, base);
    case 'ssd':
      return ssdSchedule(k.sizes as SsdSizes, t, base);
    case 'ssd_step':
      return { ...base, rowsOf: 'S', rowDiv: 1, gridY: k.sizes.H };
    case 'softmax':
      return { ...base, rowsOf: 'x', rowMul: k.sizes.W / k.sizes.D, rowDiv: 1 };
    case 'topk': case 'experts':
      return { ...base, rowsOf: 'x', rowDiv: 1 };
    // rows by index: a thread per output element, as elementwise
    case 'gather': case 'scatter':
      return { ...base, rowsOf: 'y', rowMul: k.outputs.y!.width, rowDiv: threads };
    case 'attention': case 'attention_decode':
      return attentionSchedule(k, t, base);
  }
}

/** The limits a kernel's schedule and source must keep, or the work past them would fail at launch
 *  or come out wrong without a word: the launch's grid.y (its GEMV's too), each phase's dynamic
 *  shared memory, the experts' hidden rows
 *  in static shared memory, and the products of sizes the sources index in 32-bit ints (a head's
 *  state P · N). Each one crossed: [what, its value, the limit]. */
export function cudaLimits(k: Kernel, s: CudaSchedule, t: CudaTarget): [string, number, number][] {
  const out: [string, number, number][] = [];
  const atMost = (what: string, value: number, limit: number) => { if (value > limit) out.push([what, value, limit]); };
  atMost('grid.y', s.gridY, t.limits.gridY);
  if (s.gemvGridY !== undefined) atMost("the GEMV's grid.y", s.gemvGridY, t.limits.gridY);
  // a phase's dynamic shared memory (the chunked SSD's grows with its chunk, attention's with its head dim)
  for (const p of s.phases ?? []) atMost(`phase ${p.fn}'s dynamic shared memory (bytes)`, p.shared ?? 0, t.dynamicSharedBytes);
  switch (k.family) {
    case 'experts': atMost("the experts' static shared memory (bytes)", 4 * k.sizes.K * k.sizes.I, t.sharedBytes); break;
    // (a row's heads · head dim is within the rows' bound, 2^28 elements: compiler/ops.ts inferUse)
    case 'ssd': case 'ssd_step': atMost("a head's state P · N", k.sizes.P * k.sizes.N, t.limits.int); break;
  }
  return out;
}

/** cudaLimits over every kernel of `program`: AC501 at the kernel's first `.arch` line for each
 *  limit crossed (once a line: the same layer at every depth crosses it alike), all in one CompileError. */
export function checkCudaLimits(program: Program, t: CudaTarget = CUDA_TARGET): void {
  const found: Diagnostic[] = [];
  for (const e of Object.values(program.entries)) {
    for (const k of e.kernels) {
      const at = /^(.*):(\d+)$/.exec(k.source[0] ?? '');
      const span = at ? { file: at[1]!, line: Number(at[2]), col: 1, endLine: Number(at[2]), endCol: 1, offset: 0, endOffset: 0 } : undefined;
      for (const [what, value, limit] of cudaLimits(k, cudaSchedule(k, t), t)) {
        if (!found.some((d) => d.span?.file === span?.file && d.span?.line === span?.line && d.message.includes(what))) found.push(diag('AC501', span, [k.name, k.family, what, value, limit], 'a smaller size here: a package ships the CUDA kernels beside the others (archc run --backend wasm runs it)'));
      }
    }
  }
  if (found.length) throw new CompileError(found);
}

interface SsdSizes { readonly H: number; readonly P: number; readonly G: number; readonly N: number; readonly chunk: number }

/** Floats of one tensor-core tile's shared memory in templates/ssd.cu.hbs (`Tile<BM, BN>::FLOATS`):
 *  both operands' slices (padded by 4 a row) or the stored tile, which reuses them. */
const ssdTileFloats = (bm: number, bn: number, ks: number): number =>
  Math.max(Math.max(bm * (ks + 4), ks * (bm + 4)) + Math.max(bn * (ks + 4), ks * (bn + 4)), bm * (bn + 4));

/** The chunked SSD in five phases over chunks × heads (templates/ssd.cu.hbs): chunk blocks are
 *  ceil(T / chunk) + S (each sequence chunked on its own), its scratch one set of intermediates per
 *  chunk block (dt and cumulative decays [H, QP], C·Bᵀ [G, QP, QP], states [H, P, N]). */
export function ssdSchedule(z: SsdSizes, t: CudaTarget, base: { threads: number; rowMul: number; plusS: boolean; gridY: number }): CudaSchedule {
  const { H, P, G, N, chunk } = z;
  const side = (n: number) => Math.min(t.ssd.tile, multipleOf(32, n));
  const tileQ = side(chunk), tileP = side(P), tileN = side(N), ks = t.ssd.kSlice, pass = t.ssd.passElems;
  const chunkPad = multipleOf(tileQ, chunk);
  const tilesQ = chunkPad / tileQ, tilesP = ceilDiv(P, tileP), tilesN = ceilDiv(N, tileN);
  const chunks = { rowsOf: 'T', rowMul: 1, rowDiv: chunk, plusS: true };
  const phases: CudaPhase[] = [
    { fn: 'ssd_cumsum', threads: base.threads, ...chunks, gridY: ceilDiv(H, 32), shared: 4 * (chunkPad * 33 + 4 * 32) },
    { fn: 'ssd_cb', threads: base.threads, ...chunks, gridY: G * (tilesQ * (tilesQ + 1)) / 2, shared: 4 * ssdTileFloats(tileQ, tileQ, ks) },
    { fn: 'ssd_states', threads: base.threads, ...chunks, gridY: H * tilesP * tilesN, shared: 4 * (ssdTileFloats(tileP, tileN, ks) + chunkPad) },
    { fn: 'ssd_pass', threads: base.threads, rowsOf: 'S', rowMul: 1, rowDiv: 1, plusS: false, gridY: H * ceilDiv(P * N, base.threads * pass) },
    { fn: 'ssd_scan', threads: base.threads, ...chunks, gridY: H * tilesQ * tilesP, shared: 4 * (ssdTileFloats(tileQ, tileP, ks) + 2 * chunkPad) },
  ];
  // per chunk block: dt and cum [2, H, QP], C·Bᵀ [G, QP, QP], states [H, P, N]; ceil(T/Q) + S blocks
  const perChunk = 2 * H * chunkPad + G * chunkPad * chunkPad + H * P * N;
  return {
    ...base, ...chunks, gridY: phases[4]!.gridY, phases, scratch: { fixed: perChunk, perT: ceilDiv(perChunk, chunk), perS: perChunk },
    chunkPad, tileQ, tileP, tileN, kSlice: ks, passElems: pass, minBlocks: t.ssd.minBlocks,
  };
}
