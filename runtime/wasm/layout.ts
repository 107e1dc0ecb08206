// What the wasm kernel module and the backend that packs its weights agree on (codegen/wasm/kernels.ts
// renders the module from these; runtime/wasm/kernels.ts packs weights and fills work records by them).

type QuantType = 'q8' | 'q4';

/**
 * One group (32 k) of one panel of q8/q4 codes, in bytes: `codes` bytes of codes in 8 k-quads,
 * each k-quad two halves (columns 0-3, then 4-7; q4: one half, columns 0-3 in the low nibbles and
 * 4-7 in the high ones), a half [4 columns][4 k]: byte 4c + j holds column c's code at k 4q + j
 * (q8: the signed code; q4: code + 8, 0..15, as stored). Then at `scales` the NR f16 scales as
 * their bits (the kernels widen them exactly), and q8 only, at `corr`, NR i16: the sum of the
 * group's signed codes of that column (|sum| <= 32 · 128; the integer-dot GEMV takes XQ_OFFSET ·
 * sum off its unsigned digits' sums; q4's digits are signed and need none: see `mvi`).
 * q4 0.5625 bytes a weight, q8 1.125.
 */
export const QUANT_LAYOUT: Readonly<Record<QuantType, { group: number; codes: number; scales: number; corr?: number }>> = {
  q8: { group: 288, codes: 256, scales: 256, corr: 272 },
  q4: { group: 144, codes: 128, scales: 128 },
};
/**
 * The integer-dot GEMV's read-ahead (codegen/wasm/dot.ts `mvi`): at each group it loads, and drops,
 * one byte of every cache line READ_AHEAD bytes on (WebAssembly has no prefetch; V8 keeps a load that
 * may trap), so the lines are in flight long before their group: out-of-order execution alone keeps
 * few in flight and the stream prefetcher does not close the gap. Over Bamba-9B's q4 shapes from
 * memory, 2 threads, the one-panel kernel: 10.7 GB/s without, 13.0-15.0 with 1536 bytes; the kernel
 * as it is now (two k-quads a turn, q4 two panels a call) with memory faster: none 16.1-16.3, 768
 * 15.8-16.4, 1536 16.2-16.4, 3072 14.0-14.6 (bench/gemv-stream.ts). A memory holding a packed q8/q4
 * weight extends at least READ_AHEAD_TAIL bytes past its end (runtime/wasm/kernels.ts packQuant).
 */
export const READ_AHEAD = 1536;
/**
 * Whether the product kernels read ahead at all (READ_AHEAD, TILE_READ_AHEAD): the i32 at this byte
 * of each memory (past the job record; codegen/wasm/job.ts), non-zero to read ahead. The loads help
 * where one core keeps few lines in flight and cost where it keeps many, so the backend times the
 * products both ways over the loaded weights and keeps the faster (runtime/wasm/read-ahead.ts). The
 * ~100M Bamba's products from memory, 2 threads (bench/tile-stream.ts, bench/gemv-stream.ts): on an
 * AVX-512 Xeon, bf16 at 8 rows 39-41 ms a step without, 23.6-23.9 with; on a Zen 5 EPYC, 20.7-22.0
 * without, 26.6-27.8 with (in cache 18.9 / 19.1), and q4's GEMV 26.4-27.1 GB/s without, 22.7-24.4 with.
 */
export const READ_AHEAD_FLAG = 60;
export const READ_AHEAD_TAIL = READ_AHEAD + QUANT_LAYOUT.q8.group;
/**
 * The bf16 products' read-ahead (codegen/wasm/kernels.ts: the tiles that read a panel from memory, the
 * widening tile `mkw` of a block of at least WasmTarget.widenFrom rows and the tile of fewer): every
 * TILE_READ_LINES lines of the panel it loads, and drops, one byte of each of the TILE_READ_LINES
 * lines TILE_READ_AHEAD bytes on, back to back. A load that misses holds up retirement until its line
 * arrives, so loads spread one per k step leave only the few lines in flight that the reorder window
 * spans between them (the tile's loop is ~25 instructions a k step); issued together, they are in
 * flight at once. The ~100M Bamba's products from memory (200 MB of bf16 panels; bench/tile-stream.ts),
 * 8 rows, fastest step: one thread (CPU time) none 70-72 ms, one load a k step 2048 / 4096 / 6144
 * bytes on 65 / 55 / 59, 16 lines at once 256-768 on 44, 1024 45-48, 2048 49-51, 8 lines 48-50, 32
 * lines 47-51; two threads none 39-41 ms, 16 lines 256-768 on 23.6-23.9, 1024 on 24.7-25.0 (with the
 * weights in cache: 20.6). 4 rows (one tile of 4), two threads: 31.8-32.9 -> 16.7-17.0 ms (512). The
 * one-row GEMV (4 panels side by side) gained nothing from it (19.7 -> 23.7 ms) and has none. A memory
 * holding a packed bf16 weight extends TILE_READ_TAIL bytes past its end.
 */
export const TILE_READ_AHEAD = 512;
export const TILE_READ_LINES = 16;
export const TILE_READ_TAIL = TILE_READ_AHEAD + 64 * TILE_READ_LINES;

/** q8's integer-dot GEMV carries its activations as xq + XQ_OFFSET, in unsigned digits (so the
 *  kernel takes XQ_OFFSET · Σcode, from the panel's sums, off again). */
export const XQ_OFFSET = 1 << 20;
/** The work record's product codes (`dt`): f32, bf16, q8/q4 dequantised per panel, q8/q4 integer
 *  dot (f32 activations to 20 bits), q8/q4 integer dot over 8-bit activations (runtime/act-quant.ts),
 *  the integer GEMM over 8-bit activations (codegen/wasm/gemm8.ts). */
export const PRODUCT = { f32: 0, bf16: 1, q8: 2, q4: 3, dot_q8: 4, dot_q4: 5, dot8_q8: 6, dot8_q4: 7, gemm8_q4: 8, gemm8_q8: 9 } as const;

/**
 * The decode SSD step's read-ahead (codegen/wasm/program.ts ssd_step): at each row of a head's state
 * it loads, and drops, a byte of each line of the row STATE_READ_AHEAD bytes on. A step reads and
 * writes every state once, from memory (the weights pass through the cache in between). The ~100M
 * Bamba at 8 sequences, one thread (bench/decode.ts --profile --threads 1 --batch 8, alternating
 * runs): ssd_step 6.9-7.6 ms a step without, 5.3-5.4 with 4096 bytes, 5.6 with 2048. A slot is
 * STATE_READ_TAIL bytes longer than its states (runtime/wasm/program.ts WasmStatePool).
 */
export const STATE_READ_AHEAD = 4096;
export const STATE_READ_TAIL = STATE_READ_AHEAD + 64;
