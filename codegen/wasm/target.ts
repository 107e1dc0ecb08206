// The `wasm` target's records: the module variants a build ships (codegen/wasm/kernels.ts renders
// each; the runtime runs the first the engine accepts).

import { READ_AHEAD, TILE_READ_AHEAD } from '../../runtime/wasm/layout.ts';

/** The `wasm` target (codegen/wasm/): the register block and cache block of its matrix products.
 *  Its module is generic over sizes, so the record shapes the module, not each kernel's schedule. */
export interface WasmTarget {
  readonly name: 'wasm';
  /** Multiply-adds as one fused `f32x4.relaxed_madd` (the relaxed-SIMD proposal) instead of a mul
   *  then an add: twice the arithmetic per instruction where the engine has it. */
  readonly fma: boolean;
  /** Rows (tokens) per micro-tile: each loaded weight vector serves this many rows. A tile keeps
   *  2·rows f32x4 accumulators, 2 weight vectors and a broadcast x in the 15 vector registers V8
   *  allocates on x64 (a separate multiply needs one more: 4 rows without FMA, 6 with). */
  readonly rowsPerTile: number;
  /** Rows per cache block: a block of x stays in cache while every weight panel passes over it (a
   *  multiple of rowsPerTile: x is packed in tiles counted from row 0). */
  readonly tokenBlock: number;
  /** k unrolled onto this many accumulator sets in the one- and two-row micro-kernels (GEMV). */
  readonly gemvUnroll: number;
  /** One-row products (decode, batch 1) read this many panels side by side (1: as other rows). */
  readonly gemvPanels: number;
  /** Products of fewer multiply-adds run on the calling thread alone. */
  readonly splitFrom: number;
  /** bf16 weights: in a cache block of at least this many rows (>= rowsPerTile) the first tile
   *  widens each panel to f32 into the thread's scratch as it goes and the other tiles run the f32
   *  micro-kernels over it; fewer rows (decode) read bf16 and widen in registers, tile by tile.
   *  Measured at the ~100M Bamba's widths (K 768 and 1280, 2 threads): a second tile of 1 row
   *  (FMA) or 3 rows (plain) already pays for the stores; with FMA so does one tile of 6 (in registers it spills). */
  readonly widenFrom: number;
  /** A block whose last tile has at most this many rows (0: none) takes its panels in pairs (an even
   *  panel and the next) and runs that last tile over both at once (mk2: 4 vectors a row, no k
   *  unrolled), where the tile of so few rows over one panel unrolls k and stores partial sums into y
   *  to stay in registers. bf16 in a widened block (widenFrom): each panel widened by the first tile
   *  into its half of the thread's scratch; f32 (read in place) and dequantised q8/q4 panels where the
   *  block has a whole tile. 8 rows on the FMA module: 6 + 2. */
  readonly pairRows: number;
  /** q8/q4 weights: products of at most this many rows (decode) take the integer-dot GEMV (each
   *  activation row quantised per group of 32 to 20 bits, as three 7-bit digits, against the codes
   *  with relaxed SIMD's i8·i7 dot product, exact in integers; codegen/wasm/kernels.ts `mvi`); more rows,
   *  or 0 (no relaxed SIMD), dequantise each panel once per cache block into the thread's scratch
   *  and run the f32 micro-kernels. */
  readonly quantDotRows: number;
  /** 8-bit activations (runtime/act-quant.ts) over q4/q8 weights: rows per tile of the integer GEMM
   *  (codegen/wasm/gemm8.ts), each k-quad's codes loaded (q4: unpacked) once for them all; 0: the
   *  module has none (it needs relaxed SIMD's i8·i7 dot product). Divisors of tokenBlock. */
  readonly a8Tile: Readonly<Record<'q4' | 'q8', number>>;
  /** Bytes ahead of its group at which the integer-dot GEMV loads one byte of every cache line
   *  (runtime/wasm/layout.ts READ_AHEAD; 0: none, as bench/gemv-stream.ts compares). At most
   *  READ_AHEAD: the runtime keeps the memory that far past each packed weight. */
  readonly readAhead: number;
  /** Bytes ahead at which a bf16 tile that reads its panel from memory (the widening tile of a block,
   *  see widenFrom, or the tile of fewer rows) loads the lines of its panel TILE_READ_LINES at a time (runtime/wasm/layout.ts TILE_READ_AHEAD; 0: none, as
   *  bench/tile-stream.ts compares). At most TILE_READ_AHEAD: the runtime keeps the memory that far
   *  (and TILE_READ_LINES lines more) past each packed bf16 weight. */
  readonly tileReadAhead: number;
  /** Addresses for a memory declared `i64` (memory64: one memory past 4 GiB; codegen/wasm/addr.ts).
   *  Absent or false: the 32-bit form every engine runs. */
  readonly memory64?: boolean;
}

/** 128-bit SIMD alone: runs on every engine with SIMD. */
export const WASM_TARGET: WasmTarget = { name: 'wasm', fma: false, rowsPerTile: 4, tokenBlock: 64, gemvUnroll: 2, gemvPanels: 4, splitFrom: 1 << 17, widenFrom: 7, pairRows: 2, quantDotRows: 0, a8Tile: { q4: 0, q8: 0 }, readAhead: READ_AHEAD, tileReadAhead: TILE_READ_AHEAD };
/** With relaxed SIMD's fused multiply-add (Chromium >= 114, Node >= 22; Node 20 behind a flag that
 *  runtime/wasm/module.ts sets). */
export const WASM_FMA_TARGET: WasmTarget = { ...WASM_TARGET, fma: true, rowsPerTile: 6, tokenBlock: 60, widenFrom: 6, quantDotRows: 6, a8Tile: { q4: 4, q8: 2 } };
/** The module variants a build ships, in order of preference: the runtime runs the first the engine accepts. */
export const WASM_TARGETS: readonly WasmTarget[] = [WASM_FMA_TARGET, WASM_TARGET];
/** The same variants for a memory64 memory (runtime/wasm/memory64.ts picks them where the engine has it). */
export const WASM_TARGETS64: readonly WasmTarget[] = WASM_TARGETS.map((t) => ({ ...t, memory64: true }));
