// What the wasm kernel module and the backend that packs its weights agree on (codegen/wasm/kernels.ts
// renders the module from these; runtime/wasm/kernels.ts packs weights and fills work records by them).

type QuantType = 'q8' | 'q4';

/**
 * One group (32 k) of one panel of q8/q4 codes, in bytes: `codes` bytes of codes in 8 k-quads,
 * each k-quad two halves (columns 0-3, then 4-7; q4: one half, columns 0-3 in the low nibbles and
 * 4-7 in the high ones), a half [4 columns][4 k]: byte 4c + j holds column c's code at k 4q + j
 * (q8: the signed code; q4: code + 8, 0..15, as stored). Then at `scales` the NR f16 scales
 * widened to f32, and at `corr` NR i32: 2^20 · (sum of the group's signed codes of that column),
 * wrapping (the offset the integer-dot GEMV's digits carry; see `mvi`).
 */
export const QUANT_LAYOUT: Readonly<Record<QuantType, { group: number; codes: number; scales: number; corr: number }>> = {
  q8: { group: 320, codes: 256, scales: 256, corr: 288 },
  q4: { group: 192, codes: 128, scales: 128, corr: 160 },
};
/** The integer-dot GEMV's activations are carried as xq + XQ_OFFSET (so the panels' corrections
 *  are XQ_OFFSET · Σcode). */
export const XQ_OFFSET = 1 << 20;
/** The work record's product codes (`dt`): f32, bf16, q8/q4 dequantised per panel, q8/q4 integer dot. */
export const PRODUCT = { f32: 0, bf16: 1, q8: 2, q4: 3, dot_q8: 4, dot_q4: 5 } as const;
