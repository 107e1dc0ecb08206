// The `wasm` target's integer GEMM over 8-bit activations and q4 weights (codegen/wasm/kernels.ts
// renders it into the module variants with relaxed SIMD): products of many rows (prefill) with
// `activations: 'q8'`, whose rows are rounded to 8 bits per group of 32 by the format's definition
// (runtime/act-quant.ts). The one-row GEMV (`mvi8_q4`, codegen/wasm/dot.ts) unpacks a panel's codes
// again for every row; here a tile of `a8Tile` rows shares each k-quad's unpacked codes, so a k-quad
// costs a row one broadcast, two i8·i7 dot products and two i16 adds (the GEMV: nine instructions).
//
// Layouts: the panels of QUANT_LAYOUT.q4 (runtime/wasm/layout.ts); the rows as `digits8_q4` writes
// them with MR = a8Tile: per tile and group its rows' XD8_GROUP.q4 records side by side (s = 2^e as
// f32, the row correction 8 · Σq, 8 bytes unused, then per k-quad the row's four q as i8).

import { QUANT_LAYOUT } from '../../runtime/wasm/layout.ts';
import { ADDR32, type Addr } from './addr.ts';
import { widenScales, XD8_GROUP } from './dot.ts';
import { get } from './wat.ts';

const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;
const L = QUANT_LAYOUT.q4, XB = XD8_GROUP.q4;

/**
 * mt8_q4(xd, wp, s, G): R rows (one tile) times one panel of q4 codes into f32 [R][NR] at s. Per
 * group and k-quad the panel's 16 bytes unpack to the codes as stored (code + 8, 0..15: the i7
 * operand) of columns 0-3 and 4-7; each row's four q (the i8 operand, broadcast) meet both in
 * `i16x8.relaxed_dot_i8x16_i7x16_s`, pair sums within ±1920 that add up in i16 over the group's eight
 * k-quads (±15360, exact). At the group's end per row and half: the pair sums widened (a multiply-add
 * with ones), less 8 · Σq = Σ code · q exactly (|.| < 2^31), then s += f32(that) · scale · 2^e, the
 * scales widened from their f16 bits: the GEMV's arithmetic in its order (y = madd(f32(A) · scale,
 * 2^e, y) per group from 0), so both give the same f32 sums, bit for bit. The sums live at s, not in
 * locals: R = 4 rows keep 8 accumulators, the unpacked codes, the broadcast and the mask in registers
 * (V8 on x64 has 15 for vectors); 8 f32 accumulators more would spill inside the k-quads.
 */
function tileKernel(R: number, fma: boolean, A: Addr): string {
  const rows = Array.from({ length: R }, (_, r) => r);
  const dot = (x: string, w: string) => `(i16x8.relaxed_dot_i8x16_i7x16_s ${get(x)} ${get(w)})`;
  // one k-quad at $wq, the rows' q at $xq; the first sets the accumulators
  const quad = (first: boolean) => {
    const lines = [`(local.set $v (v128.load ${A.w(get('wq'))}))`, `(local.set $va (v128.and ${get('v')} ${get('m15')}))`,
      // the high nibbles by a 16-bit shift and the mask (i8x16.shr_u is three instructions and a constant on x64)
      `(local.set $vb (v128.and (i16x8.shr_u ${get('v')} (i32.const 4)) ${get('m15')}))`];
    for (const r of rows) {
      lines.push(`(local.set $x (v128.load32_splat offset=${r * XB} ${A.low(get('xq'))}))`);
      for (const h of ['a', 'b']) lines.push(`(local.set $${h}${r} ${first ? dot('x', `v${h}`) : `(i16x8.add ${get(`${h}${r}`)} ${dot('x', `v${h}`)})`})`);
    }
    return lines.join('\n  ');
  };
  // the k-quads as a loop, one per iteration: unrolled eight to a group, V8 11.3 loads every
  // operand at the group's start and spills most of them (as it did in the GEMV, dot.ts)
  const quads = [`(local.set $xq ${add(get('xd'), 16)})`, `(local.set $wq ${get('wp')})`, quad(true),
    `(local.set $we ${add(get('wp'), L.codes)})`, `(loop $q_loop`,
    `(local.set $xq ${add(get('xq'), 4)})`, `(local.set $wq ${add(get('wq'), 16)})`, quad(false),
    `(br_if $q_loop (i32.lt_u ${add(get('wq'), 16)} ${get('we')})))`];
  const sums: string[] = [`(local.set $w0 ${widenScales(L.scales, A.w(get('wp')))})`, `(local.set $w1 ${widenScales(L.scales + 8, A.w(get('wp')))})`];
  for (const r of rows) {
    sums.push(`(local.set $c (v128.load32_splat offset=${r * XB + 4} ${A.low(get('xd'))}))`, `(local.set $sx (v128.load32_splat offset=${r * XB} ${A.low(get('xd'))}))`);
    ['a', 'b'].forEach((h, i) => {
      const at = `offset=${(2 * r + i) * 16} ${A.low(get('s'))}`;
      const prod = `(f32x4.mul (f32x4.convert_i32x4_s (i32x4.sub (i32x4.dot_i16x8_s ${get(`${h}${r}`)} ${get('c1')}) ${get('c')})) ${get(`w${i}`)})`;
      sums.push(`(v128.store ${at} ${fma ? `(f32x4.relaxed_madd ${prod} ${get('sx')} (v128.load ${at}))` : `(f32x4.add (v128.load ${at}) (f32x4.mul ${prod} ${get('sx')}))`})`);
    });
  }
  const zero = rows.flatMap((r) => [0, 1].map((i) => `(v128.store offset=${(2 * r + i) * 16} ${A.low(get('s'))} (v128.const i32x4 0 0 0 0))`));
  return `(func $mt8_q4 (param $xd i32) (param $wp i32) (param $s i32) (param $G i32)${A.param}
  (local $g i32) (local $xq i32) (local $wq i32) (local $we i32) (local $v v128) (local $va v128) (local $vb v128) (local $x v128) (local $m15 v128) (local $c1 v128) (local $c v128) (local $sx v128) (local $w0 v128) (local $w1 v128)
  ${rows.map((r) => `(local $a${r} v128) (local $b${r} v128)`).join(' ')}
  (local.set $m15 (v128.const i8x16 ${Array(16).fill(15).join(' ')}))
  (local.set $c1 (v128.const i16x8 1 1 1 1 1 1 1 1))
  ${zero.join('\n  ')}
  (block $g_end (loop $g_loop
  (br_if $g_end (i32.ge_s ${get('g')} ${get('G')}))
  ${quads.join('\n  ')}
  ${sums.join('\n  ')}
  (local.set $wp ${add(get('wp'), L.group)})
  (local.set $xd ${add(get('xd'), R * XB)})
  (local.set $g ${add(get('g'), 1)})
  (br $g_loop))))`;
}

/**
 * gemm8_q4(x, w, y, T, K, ldy, p0, p1, s): panels [p0, p1) of y = x·Wᵀ for T rows made by
 * `digits8_q4` with MR = R at x. Rows in blocks of `tokenBlock` (a block's rows stay in cache while
 * every panel passes over them), each panel over the block's tiles; a tile's sums go to the thread's
 * scratch s, then its rows below T to y (rows past T are computed from whatever lies there, never stored).
 */
function gemm8(R: number, tokenBlock: number, A: Addr): string {
  const copy = Array.from({ length: R }, (_, r) => `${r ? `(br_if $copied (i32.le_s ${get('m')} (i32.const ${r})))
          (local.set $yp ${add(get('yp'), get('ldyb'))})\n          ` : ''}(v128.store ${A.low(get('yp'))} (v128.load offset=${32 * r} ${A.low(get('s'))}))
          (v128.store offset=16 ${A.low(get('yp'))} (v128.load offset=${32 * r + 16} ${A.low(get('s'))}))`).join('\n          ');
  return `(func $gemm8_q4 (export "gemm8_q4") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32) (param $s i32)${A.param}
  (local $G i32) (local $tb i32) (local $te i32) (local $p i32) (local $t i32) (local $m i32) (local $wp i32) (local $yp i32) (local $ldyb i32) (local $tileb i32)
  (local.set $G (i32.shr_s ${get('K')} (i32.const 5)))
  (local.set $ldyb (i32.shl ${get('ldy')} (i32.const 2)))
  (local.set $tileb (i32.mul ${get('G')} (i32.const ${R * XB})))
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
        (call $mt8_q4 ${add(get('x'), `(i32.mul (i32.div_u ${get('t')} (i32.const ${R})) ${get('tileb')})`)} ${get('wp')} ${get('s')} ${get('G')}${A.pass})
        (local.set $m (i32.sub ${get('te')} ${get('t')}))
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
export function gemm8Kernels(t: { readonly a8Tile: number; readonly tokenBlock: number; readonly fma: boolean }, A: Addr = ADDR32): string[] {
  return t.a8Tile > 0 ? [tileKernel(t.a8Tile, t.fma, A), gemm8(t.a8Tile, t.tokenBlock, A)] : [];
}
