// The `wasm` target's integer GEMM over 8-bit activations and q4/q8 weights (codegen/wasm/kernels.ts
// renders it into the module variants with relaxed SIMD): products of many rows (prefill) with
// `activations: 'q8'`, whose rows are rounded to 8 bits per group of 32 by the format's definition
// (runtime/act-quant.ts). The one-row GEMV (`mvi8_q4`, codegen/wasm/dot.ts) unpacks a panel's codes
// again for every row; here a tile of `a8Tile` rows shares each k-quad's unpacked codes, so a k-quad
// costs a q4 row one shuffle, two i8·i7 dot products and two i16 adds (the GEMV: nine instructions),
// a q8 row two broadcasts, two xors, two dot products, two widenings and two i32 adds.
//
// Layouts: the panels of QUANT_LAYOUT (runtime/wasm/layout.ts); the rows as `digits8_q4` /
// `digits8s_q8` write them with MR = a8Tile: per tile and group a block of MR · XD8_GROUP bytes, its
// rows' headers (16 bytes each: s = 2^e as f32, the row correction: q4's 8 · Σq, q8's Σ|q| over
// q < 0; 8 unused), then per k-quad the rows' digits side by side (q4: four q as i8 a row; q8: four
// |q| then four sign masks, 0 or -1, a row).

import { InternalError } from '../../dsl/diagnostics.ts';
import { QUANT_LAYOUT, READ_AHEAD_TAIL, TILE_READ_AHEAD } from '../../runtime/wasm/layout.ts';
import { ADDR32, type Addr } from './addr.ts';
import { constArgs, constParams, widenScales, XD8_GROUP } from './dot.ts';
import { get, touchLinesEvery } from './wat.ts';

const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;
type QuantType = 'q8' | 'q4';

/** The tile kernels' vector constants, parameters from gemm8 (dot.ts `constParams`: V8 11.3 rebuilds
 *  a v128.const inside the loop where it is used). */
const TILE_CONSTS = ['m15', 'c1', 'c112'] as const;

/**
 * mt8_<f>_<m>(xd, wp, s, G): the first m of a tile's R rows times one panel of q4/q8 codes into f32
 * [m][NR] at s (m < R: a last tile's rows, not the rows past T), by
 * `i16x8.relaxed_dot_i8x16_i7x16_s` (an i8 operand times an i7 one, 0..127, adjacent pairs summed in
 * i16 lanes, exactly where no sum passes ±32767), each k-quad's codes loaded (and q4's unpacked) once
 * for the tile's rows:
 *   q4: the codes as stored (code + 8, 0..15) are the i7 operand, each row's four q (spread) the i8
 *       one; pair sums within ±3810 add up in i16 over the group's eight k-quads (±30480), widened by
 *       a multiply-add with ones, less the row's 8 · Σq.
 *   q8: each row's |q| (0..127, `digits8s_q8`) is the i7 operand, the codes with q's sign the i8
 *       one: code xor m, m = -1 where q < 0 (the one's complement, -code - 1: it stays in i8 for a
 *       code of -128), so a product is code · q, less |q| where q < 0; pair sums within
 *       ±2 · 127 · 128 = ±32512, widened by a multiply-add with ones every k-quad, plus the row's
 *       Σ|q| over q < 0. One dot product per 16 codes and row, where two nibble digits of q + 128
 *       (before: pair sums small enough to add up in i16 over a group) took two, and two i16 adds:
 *       the same instructions in the k-quad, fewer in the group's sums (no digit recombination nor
 *       the panel's 128 · Σcode), 58-60 -> 66-68 GFLOP-equivalent/s at 2 rows (docs/PERF.md).
 * Either gives A = Σ code · q exactly, then s += f32(A) · scale · 2^e, the scales widened from their
 * f16 bits: the GEMV's arithmetic in its order (y = madd(f32(A) · scale, 2^e, y) per group from 0),
 * so both give the same f32 sums, bit for bit. The sums live at s, not in locals, which the
 * k-quads need for their accumulators (2 per row), the codes and the rows' digits (x64 has 16 vector
 * registers): V8 11.3 hoists a k-quad's loads above its dot products, so broadcast digits cost a
 * register a row (q4 at 4 rows spilled an accumulator per k-quad, 88 GFLOP-equivalent/s against 100
 * at 3; q8 at 3 / 4 rows 56 / 60 against 65 at 2).
 */
function tileKernel(f: QuantType, m: number, R: number, fma: boolean, A: Addr): string {
  const L = QUANT_LAYOUT[f], XB = XD8_GROUP[f], qb = f === 'q4' ? 16 : 32;
  const rows = Array.from({ length: m }, (_, r) => r);
  // one k-quad at $wq, the rows' digits at $xq; the first sets the accumulators (per row and half)
  const quad = (first: boolean) => {
    const acc = (h: string, r: number, e: string) => `(local.set $${h}${r} ${first ? e : `(${f === 'q4' ? 'i16x8' : 'i32x4'}.add ${get(`${h}${r}`)} ${e})`})`;
    if (f === 'q8') {
      // per row its |q| and sign mask (two broadcasts), per half an xor, the dot and its widening by a
      // multiply-add with ones (i32x4.relaxed_dot_i8x16_i7x16_add_s, which would be the last two, is
      // wrong in V8 11.3's baseline tier: docs/ARCHITECTURE.md)
      const lines = [`(local.set $va (v128.load ${A.w(get('wq'))}))`, `(local.set $vb (v128.load offset=16 ${A.w(get('wq'))}))`];
      for (const r of rows) {
        lines.push(`(local.set $x (v128.load32_splat offset=${8 * r} ${A.low(get('xq'))}))`, `(local.set $sg (v128.load32_splat offset=${8 * r + 4} ${A.low(get('xq'))}))`);
        for (const h of ['a', 'b']) lines.push(acc(h, r, `(i32x4.dot_i16x8_s (i16x8.relaxed_dot_i8x16_i7x16_s (v128.xor ${get(`v${h}`)} ${get('sg')}) ${get('x')}) ${get('c1')})`));
      }
      return lines.join('\n  ');
    }
    const lines = [`(local.set $v (v128.load ${A.w(get('wq'))}))`, `(local.set $va (v128.and ${get('v')} ${get('m15')}))`,
      // the high nibbles by a 16-bit shift and the mask (i8x16.shr_u is three instructions and a constant on x64)
      `(local.set $vb (v128.and (i16x8.shr_u ${get('v')} (i32.const 4)) ${get('m15')}))`];
    // the tile's rows' q of this k-quad lie side by side: loaded whole, each row's taken by a shuffle
    // (which V8 places by its use, where it hoists loads: one vector live, not R; 4 rows 106
    // GFLOP-equivalent/s, broadcasts 88)
    for (let v = 0; v < Math.ceil(R / 4); v++) lines.push(`(local.set $xv${v} (v128.load offset=${16 * v} ${A.low(get('xq'))}))`);
    for (const r of rows) {
      const bytes = Array.from({ length: 16 }, (_, i) => 4 * (r % 4) + (i % 4)).join(' ');
      lines.push(`(local.set $x (i8x16.shuffle ${bytes} ${get(`xv${r >> 2}`)} ${get(`xv${r >> 2}`)}))`);
      for (const h of ['a', 'b']) lines.push(acc(h, r, `(i16x8.relaxed_dot_i8x16_i7x16_s ${get('x')} ${get(`v${h}`)})`));
    }
    return lines.join('\n  ');
  };
  // the k-quads as a loop, one per iteration: unrolled eight to a group, V8 11.3 loads every
  // operand at the group's start and spills most of them (as it did in the GEMV, dot.ts)
  const quads = [`(local.set $xq ${add(get('xd'), 16 * R)})`, `(local.set $wq ${get('wp')})`, quad(true),
    `(local.set $we ${add(get('wp'), L.codes)})`, `(loop $q_loop`,
    `(local.set $xq ${add(get('xq'), (f === 'q4' ? 4 : 8) * R)})`, `(local.set $wq ${add(get('wq'), qb)})`, quad(false),
    `(br_if $q_loop (i32.lt_u ${add(get('wq'), qb)} ${get('we')})))`];
  const sums: string[] = [`(local.set $w0 ${widenScales(L.scales, A.w(get('wp')), get('c112'))})`, `(local.set $w1 ${widenScales(L.scales + 8, A.w(get('wp')), get('c112'))})`];
  for (const r of rows) {
    sums.push(`(local.set $k0 (v128.load32_splat offset=${r * 16 + 4} ${A.low(get('xd'))}))`);
    sums.push(`(local.set $sx (v128.load32_splat offset=${r * 16} ${A.low(get('xd'))}))`);
    ['a', 'b'].forEach((h, i) => {
      const at = `offset=${(2 * r + i) * 16} ${A.low(get('s'))}`;
      // q4: the i16 pair sums widened by a multiply-add with ones, less 8 · Σq; q8: plus Σ|q| over q < 0
      const sum = f === 'q4' ? `(i32x4.sub (i32x4.dot_i16x8_s ${get(`${h}${r}`)} ${get('c1')}) ${get('k0')})` : `(i32x4.add ${get(`${h}${r}`)} ${get('k0')})`;
      const prod = `(f32x4.mul (f32x4.convert_i32x4_s ${sum}) ${get(`w${i}`)})`;
      sums.push(`(v128.store ${at} ${fma ? `(f32x4.relaxed_madd ${prod} ${get('sx')} (v128.load ${at}))` : `(f32x4.add (v128.load ${at}) (f32x4.mul ${prod} ${get('sx')}))`})`);
    });
  }
  // every 1152 bytes of the panel (8 q4 groups, 4 q8), a byte of each of the next 18 lines
  // TILE_READ_AHEAD bytes on, loaded and dropped at once, as the bf16 tiles do (runtime/wasm/layout.ts;
  // from a last group's start that reaches at most READ_AHEAD_TAIL past the weight)
  const every = 1152 / L.group;
  if (TILE_READ_AHEAD + 18 * 64 - L.group > READ_AHEAD_TAIL) throw new InternalError(`mt8_${f}: reads past the ${READ_AHEAD_TAIL} bytes kept after a weight`);
  const ahead = touchLinesEvery('g', every, A.w(get('wp')), TILE_READ_AHEAD, 18, A.low);
  const zero = rows.flatMap((r) => [0, 1].map((i) => `(v128.store offset=${(2 * r + i) * 16} ${A.low(get('s'))} (v128.const i32x4 0 0 0 0))`));
  return `(func $mt8_${f}_${m} (param $xd i32) (param $wp i32) (param $s i32) (param $G i32)${constParams(TILE_CONSTS)}${A.param}
  (local $g i32) (local $xq i32) (local $wq i32) (local $we i32) (local $v v128) (local $va v128) (local $vb v128) (local $x v128) (local $sg v128)
  (local $k0 v128) (local $sx v128) (local $w0 v128) (local $w1 v128) (local $xv0 v128) (local $xv1 v128)
  ${rows.flatMap((r) => [`(local $a${r} v128)`, `(local $b${r} v128)`]).join(' ')}
  ${zero.join('\n  ')}
  (block $g_end (loop $g_loop
  (br_if $g_end (i32.ge_s ${get('g')} ${get('G')}))
  ${ahead}
  ${quads.join('\n  ')}
  ${sums.join('\n  ')}
  (local.set $wp ${add(get('wp'), L.group)})
  (local.set $xd ${add(get('xd'), R * XB)})
  (local.set $g ${add(get('g'), 1)})
  (br $g_loop))))`;
}

/**
 * gemm8_<f>(x, w, y, T, K, ldy, p0, p1, s): panels [p0, p1) of y = x·Wᵀ for T rows made by
 * `digits8_q4` / `digits8s_q8` with MR = R at x. Rows in blocks of `tokenBlock` (a block's rows stay in cache while
 * every panel passes over them), each panel over the block's tiles, the last by the kernel of its
 * rows; a tile's sums go to the thread's scratch s, then to y.
 */
function gemm8(f: QuantType, R: number, tokenBlock: number, A: Addr): string {
  const L = QUANT_LAYOUT[f];
  // the tile's kernel by its rows m (R for all but the last): br_table on min(m, R) - 1, case blocks innermost-first
  let call = `(br_table ${Array.from({ length: R }, (_, i) => `$m${i + 1}`).join(' ')} (i32.sub (select ${get('m')} (i32.const ${R}) (i32.lt_s ${get('m')} (i32.const ${R}))) (i32.const 1)))`;
  for (let m = 1; m <= R; m++) call = `(block $m${m}\n${call})\n(call $mt8_${f}_${m} ${get('xp')} ${get('wp')} ${get('s')} ${get('G')} ${constArgs(TILE_CONSTS)}${A.pass})\n(br $computed)`;
  const copy = Array.from({ length: R }, (_, r) => `${r ? `(br_if $copied (i32.le_s ${get('m')} (i32.const ${r})))
          (local.set $yp ${add(get('yp'), get('ldyb'))})\n          ` : ''}(v128.store ${A.low(get('yp'))} (v128.load offset=${32 * r} ${A.low(get('s'))}))
          (v128.store offset=16 ${A.low(get('yp'))} (v128.load offset=${32 * r + 16} ${A.low(get('s'))}))`).join('\n          ');
  return `(func $gemm8_${f} (export "gemm8_${f}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32) (param $s i32)${A.param}
  (local $G i32) (local $tb i32) (local $te i32) (local $p i32) (local $t i32) (local $m i32) (local $xp i32) (local $wp i32) (local $yp i32) (local $ldyb i32) (local $tileb i32)
  (local.set $G (i32.shr_s ${get('K')} (i32.const 5)))
  (local.set $ldyb (i32.shl ${get('ldy')} (i32.const 2)))
  (local.set $tileb (i32.mul ${get('G')} (i32.const ${R * XD8_GROUP[f]})))
  (block $blocks_end (loop $blocks
    (br_if $blocks_end (i32.ge_s ${get('tb')} ${get('T')}))
    (local.set $te ${add(get('tb'), tokenBlock)})
    (if (i32.gt_s ${get('te')} ${get('T')}) (then (local.set $te ${get('T')})))
    (local.set $p ${get('p0')})
    (block $panels_end (loop $panels
      (br_if $panels_end (i32.ge_s ${get('p')} ${get('p1')}))
      (local.set $wp ${add(get('w'), `(i32.mul ${get('p')} (i32.mul ${get('G')} (i32.const ${L.group})))`)})
      (local.set $t ${get('tb')})
      (block $tiles_end (loop $tiles
        (br_if $tiles_end (i32.ge_s ${get('t')} ${get('te')}))
        (local.set $m (i32.sub ${get('te')} ${get('t')}))
        (local.set $xp ${add(get('x'), `(i32.mul (i32.div_u ${get('t')} (i32.const ${R})) ${get('tileb')})`)})
        (block $computed
          ${call})
        (local.set $yp ${add(get('y'), `(i32.add (i32.mul ${get('t')} ${get('ldyb')}) (i32.shl ${get('p')} (i32.const 5)))`)})
        (block $copied
          ${copy})
        (local.set $t ${add(get('t'), R)})
        (br $tiles)))
      (local.set $p ${add(get('p'), 1)})
      (br $panels)))
    (local.set $tb ${get('te')})
    (br $blocks))))`;
}

/** The integer GEMM's functions for a module variant with `a8Tile` rows per tile (0: none). */
export function gemm8Kernels(t: { readonly a8Tile: Readonly<Record<QuantType, number>>; readonly tokenBlock: number; readonly fma: boolean }, A: Addr = ADDR32): string[] {
  return (['q4', 'q8'] as const).flatMap((f) => {
    const R = t.a8Tile[f];
    return R > 0 ? [...Array.from({ length: R }, (_, i) => tileKernel(f, i + 1, R, t.fma, A)), gemm8(f, R, t.tokenBlock, A)] : [];
  });
}
