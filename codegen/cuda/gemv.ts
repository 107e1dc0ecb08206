// The decode GEMV's schedule (templates/gemv.cu.hbs): columns per block, RoPE's column pairs, and the
// 16-byte vectors each thread reads per weight row — sized so a thread keeps `gemvLoads` loads in
// flight. A transposed W ([K, N]) or a K of odd vectors takes the scalar GEMV (a warp per column).

import { type Kernel, ofFamily } from '../../runtime/program.ts';
import type { MatrixFormat } from '../../runtime/cuda/abi.ts';
import { type CudaTarget, productOffsets } from './schedule.ts';

export interface GemvSchedule {
  /** The vector GEMV (16-byte weight loads), else the scalar one. */
  readonly vecGemv: boolean;
  readonly gemvCols: number;
  /** Columns one pass over K takes (the block's gemvCols in gemvCols / gemvPassCols passes). */
  readonly gemvPassCols: number;
  readonly gemvGridY: number;
  /** Columns paired for RoPE: heads of ropeHead columns, rotary dim ropeRot (2, 2 when unpaired). */
  readonly gemvPairs: boolean;
  readonly ropeHead: number;
  readonly ropeRot: number;
}

const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** The GEMV's columns and grid for a product of `nOut` output columns whose tile holds whole heads of
 *  `head` (`wholeHeads`: the columns a scalar GEMV block takes, whole heads). */
export function gemvSchedule(k: Kernel, t: CudaTarget, nOut: number, wholeHeads: number): GemvSchedule {
  const K = ofFamily(k, 'matmul').sizes.K;
  const vecGemv = !k.attrs.transposed && K % 8 === 0;
  const ropes = (k.epilogue ?? []).flatMap((s) => (s.kind === 'rope' ? [s] : []));
  const [h, rot] = [ropes[0]?.headDim ?? 2, ropes[0]?.rotaryDim ?? 2];
  // every rope stage on whole heads of one size and rotary dim, the rest of a head in twos
  const pairs = vecGemv && ropes.length > 0 && ropes.every((s) => s.headDim === h && s.rotaryDim === rot && s.col % h === 0) && rot % 2 === 0 && (h - rot) % 2 === 0;
  // a product at several offsets (SwiGLU's gate and up) reads that many weight rows per column
  const offsets = productOffsets(k.epilogue).length;
  const pass = Math.max(2, t.matmul.gemvCols / offsets);
  const cols = vecGemv && (pairs || !ropes.length) ? pass * t.matmul.gemvPasses : wholeHeads;
  const gridY = pairs ? ceilDiv(ceilDiv(nOut, h) * (h / 2), cols / 2) : ceilDiv(nOut, cols);
  return { vecGemv, gemvCols: cols, gemvPassCols: vecGemv && (pairs || !ropes.length) ? pass : cols, gemvGridY: gridY, gemvPairs: pairs, ropeHead: pairs ? h : 2, ropeRot: pairs ? rot : 2 };
}

/** A weight vector of `format`: 16-byte loads (gemvVq) of vecElems elements each (8 bf16, 16 q8 or
 *  32 q4 codes: q8 takes two so a vector is a whole group of 32), and how many vectors of each of
 *  a pass's `offsets · passCols` columns a thread loads before using any; the blocks an SM
 *  holds at least (its launch bound); the rows one pass over W serves (a quantised vector's 32
 *  elements a row: 2 rows, else its registers spill; more rows pass over W again, from L1/L2). */
export function gemvVector(format: MatrixFormat, offsets: number, passCols: number, t: CudaTarget): { gemvVq: number; vecElems: number; gemvUnroll: number; gemvMinBlocks: number; gemvRowsMax: number } {
  const vq = format === 'q8' ? 2 : 1;
  const vecElems = format === 'bf16' ? 8 : format === 'q8' ? 16 : 32;
  return { gemvVq: vq, vecElems, gemvUnroll: Math.max(1, Math.floor(t.matmul.gemvLoads / (offsets * passCols * vq))), gemvMinBlocks: t.matmul.gemvMinBlocks[format], gemvRowsMax: format === 'bf16' ? 8 : 2 };
}
