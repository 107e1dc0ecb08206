// The `wasm` target's integer-dot GEMV (codegen/wasm/kernels.ts renders it into the kernel module):
// one activation row times a panel of q8/q4 codes by relaxed SIMD's i8·i7 dot products, over the
// row's digits: three 7-bit digits of a 20-bit rounding (f32 activations: only x's rounding to 20
// bits of its group's maximum differs from the reference), or 8-bit activations (runtime/act-quant.ts:
// one digit for q4, two for q8; exactly the definition's sums). `digits` / `digits8_<f>` make the
// rows, `mvi*` multiply one row by one panel, `dot*_<f>` run panels by rows.

import { ACT_ZERO_BITS } from '../../runtime/act-quant.ts';
import { QUANT_LAYOUT, READ_AHEAD, XQ_OFFSET } from '../../runtime/wasm/layout.ts';
import { NR } from './kernels.ts';
import { ADDR32, type Addr } from './addr.ts';
import { ifReadAhead } from './wat.ts';

type QuantType = 'q8' | 'q4';

const get = (n: string) => `(local.get $${n})`;
const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;
/** A reduction of v's four lanes by `op`. */
const lane = (v: string, op: string, ty: 'f32' | 'i32') => `(${ty}.${op} (${ty}.${op} (${ty}x4.extract_lane 0 ${v}) (${ty}x4.extract_lane 1 ${v})) (${ty}.${op} (${ty}x4.extract_lane 2 ${v}) (${ty}x4.extract_lane 3 ${v})))`;

/** The loops of the row-making functions over x's T rows of K floats (at byte $x, $ldx floats apart)
 *  by groups of 32: $xp at group $g of row $t, then `body` (which uses locals $t, $g, $xp). */
function overGroups(body: string): string {
  return `(block $t_end (loop $t_loop
    (br_if $t_end (i32.ge_s ${get('t')} ${get('T')}))
    (local.set $g (i32.const 0))
    (block $g_end (loop $g_loop
      (br_if $g_end (i32.ge_s (i32.shl ${get('g')} (i32.const 5)) ${get('K')}))
      (local.set $xp ${add(get('x'), `(i32.shl (i32.add (i32.mul ${get('t')} ${get('ldx')}) (i32.shl ${get('g')} (i32.const 5))) (i32.const 2))`)})
      ${body}
      (local.set $g ${add(get('g'), 1)})
      (br $g_loop)))
    (local.set $t ${add(get('t'), 1)})
    (br $t_loop)))`;
}

/** $amax: the group's largest |x| at $xp (locals $mv, $amax); the function returns 0 where it is
 *  not finite (NaN fails the comparison, an infinity passes it). */
const groupMax = (A: Addr) => `(local.set $mv (f32x4.abs (v128.load ${A.low(get('xp'))})))
      ${Array.from({ length: 7 }, (_, q) => `(local.set $mv (f32x4.max ${get('mv')} (f32x4.abs (v128.load offset=${(q + 1) * 16} ${A.low(get('xp'))}))))`).join('\n      ')}
      (local.set $amax ${lane(get('mv'), 'max', 'f32')})
      (if (i32.eqz (f32.lt ${get('amax')} (f32.const inf))) (then (return (i32.const 0))))`;

/** The 8-bit rounding's scale from $amax (runtime/act-quant.ts): $eb the biased exponent of s = 2^e
 *  (m's exponent, rounded up past 127/64 of its binade, less 6), $inv = 2^-e splat, and with `withS`
 *  $s = 2^e splat; a group below 2^-96 is zeros ($eb 0, $inv and $s 0). */
const act8Scale = (withS: boolean) => `(local.set $bits (i32.reinterpret_f32 ${get('amax')}))
      (local.set $eb (i32.sub (i32.shr_u (i32.add ${get('bits')} (i32.const 0x1ffff)) (i32.const 23)) (i32.const 6)))
      (if (i32.lt_u ${get('bits')} (i32.const ${ACT_ZERO_BITS}))
        (then (local.set $eb (i32.const 0)) (local.set $inv (v128.const i32x4 0 0 0 0))${withS ? ` (local.set $s (v128.const i32x4 0 0 0 0))` : ''})
        (else (local.set $inv (i32x4.splat (i32.shl (i32.sub (i32.const 254) ${get('eb')}) (i32.const 23))))${withS ? `
              (local.set $s (i32x4.splat (i32.shl ${get('eb')} (i32.const 23))))` : ''}))`;

/** Bytes of one group of one activation row for the integer-dot GEMV: f32 scale, i32 row
 *  correction (8 · Σxq, q4's), 8 bytes unused, then per k-quad the three digits' 4 bytes (high,
 *  middle, low). */
export const XD_GROUP = 112;
/** The same over 8-bit activations (runtime/act-quant.ts; `digits8`): f32 scale 2^e, i32 row
 *  correction (q4's 8 · Σq), 8 bytes unused, then per k-quad q4's one digit (q itself, i8) or q8's
 *  two (of q + 128: high 0..1, low 0..127). */
export const XD8_GROUP: Readonly<Record<QuantType, number>> = { q4: 16 + 32, q8: 16 + 64 };
/** Digits per activation: 20-bit rows (XD_GROUP), 8-bit rows (XD8_GROUP). */
const DIGITS = (f: QuantType, a8: boolean) => (a8 ? (f === 'q4' ? 1 : 2) : 3);
const xdGroup = (f: QuantType, a8: boolean) => (a8 ? XD8_GROUP[f] : XD_GROUP);
/** The integer-dot GEMV's activations: xq in ±XQ_MAX (20 bits), as q8 takes them carried as xq +
 *  XQ_OFFSET in unsigned 7-bit digits (see runtime/wasm/layout.ts), as q4 takes them in balanced
 *  base-128 digits (each in [-64, 63]): those of z = xq + XQ_SIGNED, each less 64. */
const XQ_MAX = (1 << 19) - 1;
const XQ_SIGNED = 64 * ((1 << 14) + (1 << 7) + 1);

/** f16 scale bits -> f32, exactly (scales are finite and >= 0): the 16 bits moved up 13 are an f32
 *  with the f16's exponent field and mantissa, 2^-112 times the value (subnormals and zero included,
 *  as f32 subnormals), so one multiply by 2^112 (exact: a power of two, the result in range; `c112`
 *  that constant's operand). */
export const widenScales = (off: number, p: string, c112 = C112) => `(f32x4.mul (i32x4.shl (v128.load16x4_u offset=${off} ${p}) (i32.const 13)) ${c112})`;
const C112 = '(v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112)';

/** Vector constants the integer products use (the nibble mask, 1, 2^7, 2^14 in i16 lanes, 2^112),
 *  which a kernel takes from its caller as parameters (`constParams`, `constArgs`): V8 11.3 (Node 20)
 *  places a v128.const, or a splat of any value, where it is used, inside a kernel's loop, three
 *  instructions on x64 each time (two on the vector ports these loops are bound by); a parameter
 *  stays in a register or is reloaded from the stack (a load port). */
const splat16 = (v: number) => `(v128.const i16x8 ${Array(8).fill(v).join(' ')})`;
const KCONST = { m15: `(v128.const i8x16 ${Array(16).fill(15).join(' ')})`, c1: splat16(1), c7: splat16(1 << 7), c14: splat16(1 << 14), c112: C112 } as const;
type KConst = keyof typeof KCONST;
/** A kernel's parameters $<name> for these constants, and a call's operands for them. */
export const constParams = (names: readonly KConst[]) => names.map((c) => ` (param $${c} v128)`).join('');
export const constArgs = (names: readonly KConst[]) => names.map((c) => KCONST[c]).join(' ');
const MVI_CONSTS: readonly KConst[] = ['m15', 'c1', 'c7', 'c14', 'c112'];
/** Over 8-bit rows, q4's GEMV takes two panels a call while two are left (`mvi8x2_q4`): each broadcast
 *  of x and each turn of the k-quad loop serve both, and each panel's lines are read ahead (one
 *  thread, CPU time, Bamba-9B's q4 shapes from memory: 6.5-7.0 -> 8.2-8.4 GB/s, the same sums). q8's
 *  two digits a panel would leave too few registers for a second. */
export const PAIRED: Readonly<Record<QuantType, boolean>> = { q4: true, q8: false };

/**
 * mvi_<f>(xd, wp0, yp, G): one activation row times one panel of q8/q4 codes by integer dot
 * products (mvi8x2_q4: times two adjacent panels, y of the second 8 floats on). The row comes quantised per group (runtime/wasm/kernels.ts `digits`): xq = round(x /
 * sx) in ±(2^19 - 1), sx = max|x| / (2^19 - 1), in three 7-bit digits d2·2^14 + d1·2^7 + d0.
 * `i16x8.relaxed_dot_i8x16_i7x16_s` multiplies an i8 operand by an i7 one (0..127) and sums
 * adjacent pairs in i16 lanes:
 *   q8: the signed codes are the i8 operand, the digits those of z = xq + 2^20 (0..127); pair sums
 *       within ±32258, widened (a multiply-add with ones) at every k-quad. Per group and column
 *       the digit sums D2, D1, D0 (i32) recombine, wrapping, to (D2 << 14) + (D1 << 7) + D0 -
 *       (Σcode << 20) (Σcode from the panel, i16) = Σ code · xq.
 *   q4: the codes as stored (code + 8, 0..15) are the i7 operand, the digits balanced ([-64, 63])
 *       the i8 one; pair sums within ±1920 add up in i16 over the group's 8 k-quads (±15360) and
 *       widen once, times their digit's weight (2 · 15360 · 2^14 < 2^31). The recombined sum less
 *       8 · Σxq (from the row) = Σ code · xq; the panel holds no correction.
 * |Σ code · xq| < 2^31 (32 · 128 · (2^19 - 1)), exact; then y += f32(A) · scale · sx, the scale
 * widened from its f16 bits. So the only difference from the reference is x's rounding to 20 bits
 * of its group's maximum (relative 2^-20) and f32 sums per group. The k-quads are a loop, one or two
 * a turn: unrolled eight to a group, V8 11.3 (Node 20) loaded every operand at the group's start and
 * spilled most of them (one thread, CPU time, three digits: q4 13 → 16, q8 9 → 15 G weights/s).
 * (i32x4.relaxed_dot_i8x16_i7x16_add_s would fold the widening and the add, but Node 20's V8
 * computes it wrongly in its baseline tier, twice the dot and the addend dropped, and its
 * optimising tier emits the same three instructions as q8's widening here, no vpdpbusd, on this
 * AVX512-VNNI machine.)
 */
export function dotKernel(f: QuantType, fma: boolean, a8 = false, A: Addr = ADDR32, readAhead = READ_AHEAD, np = 1): string {
  const L = QUANT_LAYOUT[f];
  const D = DIGITS(f, a8);
  // the digits, highest first, and each one's weight (a shift): 20-bit rows 14, 7, 0; 8-bit q8 7, 0; q4 0
  const ds = Array.from({ length: D }, (_, i) => D - 1 - i);
  const name = `${a8 ? 'mvi8' : 'mvi'}${np > 1 ? `x${np}` : ''}_${f}`;
  const js = Array.from({ length: np }, (_, j) => j);
  // the i8 operand first: q8's codes, q4's signed digits
  const dot = (w: string, x: string) => (f === 'q8' ? `(i16x8.relaxed_dot_i8x16_i7x16_s ${get(w)} ${get(x)})` : `(i16x8.relaxed_dot_i8x16_i7x16_s ${get(x)} ${get(w)})`);
  // q8's pair sums widen by a multiply-add with ones (in a local: a constant operand V8 rebuilds per use)
  // which digits' pair sums add up in i16 over the group (widened once, in `sum`): q4's all; q8's
  // high 8-bit digit (0 or 1: pair sums within ±254, ±2032 over the group); the others widen per k-quad
  const narrow = (d: number) => f === 'q4' || (a8 && d === 1);
  const acc = (a: string, d: number, e: string, first: boolean) => {
    const n = narrow(d);
    const v = n ? e : `(i32x4.dot_i16x8_s ${e} ${get('c1')})`;
    return `(local.set $${a} ${first ? v : `(${n ? 'i16x8' : 'i32x4'}.add ${get(a)} ${v})`})`;
  };
  // one k-quad: one half's codes at a time, so fewer vectors are live at once
  const qb = f === 'q8' ? 32 : 16;
  const quad = (first: boolean, xo = 0, wo = 0) => {
    const lines = ds.map((d, j) => `(local.set $x${d} (v128.load32_splat offset=${xo + j * 4} ${A.low(get('xq'))}))`);
    for (const j of js) {
      const wq = get(`wq${j}`);
      lines.push(f === 'q8' ? `(local.set $va (v128.load offset=${wo} ${A.w(wq)}))` : `(local.set $v (v128.load offset=${wo} ${A.w(wq)}))\n(local.set $va (v128.and ${get('v')} ${get('m15')}))`);
      for (const d of ds) lines.push(acc(`a${d}_${j}`, d, dot('va', `x${d}`), first));
      // q4's high nibbles: a 16-bit shift and the mask (i8x16.shr_u is three instructions and a constant on x64)
      lines.push(f === 'q8' ? `(local.set $vb (v128.load offset=${wo + 16} ${A.w(wq)}))` : `(local.set $vb (v128.and (i16x8.shr_u ${get('v')} (i32.const 4)) ${get('m15')}))`);
      for (const d of ds) lines.push(acc(`b${d}_${j}`, d, dot('vb', `x${d}`), first));
    }
    return lines.join('\n  ');
  };
  // the group's k-quads (of `np` panels side by side): the first `per` set the accumulators, a loop of
  // `per` a turn adds the others. 8-bit rows take two a turn: unrolled eight to a group, V8 11.3 loaded every quad's operands at the
  // group's start and spilled them, and built each broadcast's address apart (~30 of ~140 instructions
  // a group); two a turn it does neither (one thread, CPU time, Bamba-9B's q4 shapes from memory:
  // 6.2-6.4 -> 7.1-7.5 GB/s; four a turn 6.9). Three-digit rows, with more vectors live, one a turn.
  const per = a8 ? 2 : 1;
  const turn = (first: boolean) => Array.from({ length: per }, (_, q) => quad(first && q === 0, 4 * D * q, qb * q)).join('\n  ');
  const step = (v: string, by: number) => `(local.set $${v} ${add(get(v), by)})`;
  const quads = `${turn(true)}
  ${step('xq', per * 4 * D)}
  ${js.map((j) => `(local.set $wq${j} ${add(get(`wp${j}`), per * qb)})`).join('\n  ')}
  (local.set $we ${add(get('wp0'), L.codes)})
  (loop $q_loop
  ${turn(false)}
  ${step('xq', per * 4 * D)}
  ${js.map((j) => step(`wq${j}`, per * qb)).join('\n  ')}
  (br_if $q_loop (i32.lt_u ${get('wq0')} ${get('we')})))`;
  const sum = (h: 'a' | 'b', i: number, j: number) => {
    // q4: each i16 pair sum widens times its digit's weight in one multiply-add (2 · 15360 · 2^14 < 2^31;
    // one 8-bit digit: 8 · 2 · 15 · 127 = 30480 fits the i16 lanes)
    const c = ['c1', 'c7', 'c14'];
    const wp = get(`wp${j}`);
    let e = f === 'q4' ? ds.map((d) => `(i32x4.dot_i16x8_s ${get(`${h}${d}_${j}`)} ${get(c[d]!)})`).reduce((a, b) => `(i32x4.add ${a} ${b})`)
      : ds.map((d) => (narrow(d) ? `(i32x4.dot_i16x8_s ${get(`${h}${d}_${j}`)} ${get('c7')})` : d ? `(i32x4.shl ${get(`${h}${d}_${j}`)} (i32.const ${7 * d}))` : get(`${h}${d}_${j}`))).reduce((a, b) => `(i32x4.add ${a} ${b})`);
    // q8: less the offset's share, Σcode · 2^20 (20-bit rows) or Σcode · 2^7 (8-bit rows: z = q + 128)
    e = f === 'q8' ? `(i32x4.sub ${e} (i32x4.shl (v128.load16x4_s offset=${L.corr! + 8 * i} ${A.w(wp)}) (i32.const ${a8 ? 7 : 20})))`
      : `(i32x4.sub ${e} (v128.load32_splat offset=4 ${A.low(get('xd'))}))`;
    const prod = `(f32x4.mul (f32x4.convert_i32x4_s ${e}) ${widenScales(L.scales + 8 * i, A.w(wp), get('c112'))})`;
    // y in locals over the groups, stored once (y in memory, loaded and stored per group, was
    // 2-5% slower; the k-quad loop does not spill with them live)
    const yl = `y${2 * j + i}`, y = get(yl);
    return `(local.set $${yl} ${fma ? `(f32x4.relaxed_madd ${prod} ${get('sx')} ${y})` : `(f32x4.add ${y} (f32x4.mul ${prod} ${get('sx')}))`})`;
  };
  // one byte of every cache line `readAhead` bytes on (runtime/wasm/layout.ts READ_AHEAD): a load per
  // 64 bytes of the group covers each line whatever the group's alignment
  if (readAhead > READ_AHEAD) throw new RangeError(`dotKernel: reads ${readAhead} bytes ahead, past the ${READ_AHEAD} kept after each weight`);
  const ahead = readAhead ? ifReadAhead(A.low, js.flatMap((j) => Array.from({ length: Math.ceil(L.group / 64) }, (_, i) => `(drop (i32.load8_u offset=${readAhead + 64 * i} ${A.w(get(`wp${j}`))}))`)).join('\n  ')) : '';
  const locals = [...ds.flatMap((d) => js.flatMap((j) => [`(local $a${d}_${j} v128)`, `(local $b${d}_${j} v128)`])), ...ds.map((d) => `(local $x${d} v128)`),
    ...js.flatMap((j) => [`(local $wq${j} i32)`, ...(j ? [`(local $wp${j} i32)`] : [])]), ...js.flatMap((j) => [`(local $y${2 * j} v128)`, `(local $y${2 * j + 1} v128)`])].join(' ');
  // panel j's groups start G · group bytes after panel j - 1's
  const panels = js.slice(1).map((j) => `(local.set $wp${j} ${add(get('wp0'), `(i32.mul ${get('G')} (i32.const ${j * L.group}))`)})`).join('\n  ');
  return `(func $${name} (param $xd i32) (param $wp0 i32) (param $yp i32) (param $G i32)${constParams(MVI_CONSTS)}${A.param}
  (local $g i32) (local $xq i32) (local $we i32) ${locals}
  (local $v v128) (local $va v128) (local $vb v128) (local $sx v128)
  ${panels}
  (block $g_end (loop $g_loop
  (br_if $g_end (i32.ge_s ${get('g')} ${get('G')}))
  (local.set $xq ${add(get('xd'), 16)})
  ${js.map((j) => `(local.set $wq${j} ${get(`wp${j}`)})`).join('\n  ')}
  ${ahead}
  ${quads}
  (local.set $sx (v128.load32_splat ${A.low(get('xd'))}))
  ${js.flatMap((j) => [sum('a', 0, j), sum('b', 1, j)]).join('\n  ')}
  ${js.map((j) => step(`wp${j}`, L.group)).join('\n  ')}
  ${step('xd', xdGroup(f, a8))}
  ${step('g', 1)}
  (br $g_loop)))
  ${js.flatMap((j) => [0, 1].map((i) => `(v128.store offset=${(2 * j + i) * 16} ${A.low(get('yp'))} ${get(`y${2 * j + i}`)})`)).join('\n  ')})`;
}

/**
 * digits(x, ldx, T, K, xd, signed) -> 1, or 0 where a row holds a value that is not finite (nothing
 * usable written: the product then dequantises, carrying NaN and infinities as the reference does):
 * T rows of K f32 at byte x, ldx floats apart, as `mvi` reads them at xd, per row [K/32] groups of
 * XD_GROUP bytes: sx = max|x| / (2^19 - 1) (f32, 0 for a group of zeros), xq = nearest(x · (1 /
 * sx)) clamped to ±(2^19 - 1), z = xq + o as its digits z >> 14, (z >> 7) & 127, z & 127, each less
 * b (4 bytes each per k-quad), and the row correction 8 · Σxq. q8 (signed 0): o = 2^20, b = 0,
 * unsigned digits of xq + 2^20; q4 (signed 1): o = 64 · (2^14 + 2^7 + 1), b = 64, xq's balanced
 * digits (z within 0.5 · 2^20 .. 1.51 · 2^20: its top digit 32..96, the others 0..127).
 */
export function digitsKernel(A: Addr = ADDR32): string {
  const quads: string[] = [];
  for (let q = 0; q < 8; q++) {
    quads.push(`(local.set $z (i32x4.add (i32x4.max_s (i32x4.min_s (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=${q * 16} ${A.low(get('xp'))}) ${get('inv')})))
      (v128.const i32x4 ${Array(4).fill(XQ_MAX).join(' ')})) (v128.const i32x4 ${Array(4).fill(-XQ_MAX).join(' ')})) ${get('off')}))`,
    `(local.set $zs (i32x4.add ${get('zs')} ${get('z')}))`);
    const digit = ['(i32x4.shr_u $z (i32.const 14))', '(v128.and (i32x4.shr_u $z (i32.const 7)) $m)', '(v128.and $z $m)'].map((e) => `(i32x4.sub ${e} ${get('b')})`.replaceAll('$z', get('z')).replaceAll('$m', get('m127')));
    digit.forEach((e, j) => quads.push(`(local.set $n (i16x8.narrow_i32x4_s ${e} ${e}))`, `(v128.store32_lane offset=${16 + q * 12 + j * 4} 0 ${A.low(get('dp'))} (i8x16.narrow_i16x8_s ${get('n')} ${get('n')}))`));
  }
  return `(func (export "digits") (param $x i32) (param $ldx i32) (param $T i32) (param $K i32) (param $xd i32) (param $signed i32) (result i32)
  (local $t i32) (local $g i32) (local $xp i32) (local $dp i32) (local $o i32) (local $amax f32) (local $sx f32) (local $mv v128) (local $inv v128) (local $z v128) (local $zs v128) (local $n v128) (local $m127 v128) (local $off v128) (local $b v128)
  (local.set $m127 (v128.const i32x4 127 127 127 127))
  (local.set $o (select (i32.const ${XQ_SIGNED}) (i32.const ${XQ_OFFSET}) ${get('signed')}))
  (local.set $off (i32x4.splat ${get('o')}))
  (local.set $b (i32x4.splat (select (i32.const 64) (i32.const 0) ${get('signed')})))
  (local.set $dp ${get('xd')})
  ${overGroups(`${groupMax(A)}
      (local.set $sx (f32.div ${get('amax')} (f32.const ${XQ_MAX})))
      (local.set $inv (f32x4.splat (select (f32.div (f32.const 1) ${get('sx')}) (f32.const 0) (f32.gt ${get('sx')} (f32.const 0)))))
      (local.set $zs (v128.const i32x4 0 0 0 0))
      ${quads.join('\n      ')}
      (f32.store ${A.low(get('dp'))} ${get('sx')})
      ;; 8 · Σxq = 8 · (Σz - 32 · o), wrapping
      (i32.store offset=4 ${A.low(get('dp'))} (i32.shl (i32.sub ${lane(get('zs'), 'add', 'i32')} (i32.shl ${get('o')} (i32.const 5))) (i32.const 3)))
      (local.set $dp ${add(get('dp'), XD_GROUP)})`)}
  (i32.const 1))`;
}

/**
 * digits8_<f>(x, ldx, T, K, xd, MR) -> 1, or 0 where a group holds a value that is not finite (the
 * product then takes the rows as act-quant.ts leaves such a group: as they are): x's T rows rounded
 * to 8 bits per group (runtime/act-quant.ts, bit for bit: m = max|x|; below 2^-96 a zero group; else
 * s = 2^e from m's exponent bits, q = nearest(x · 2^-e), exact) in groups of XD8_GROUP[f] bytes: s
 * (f32), the row correction (q4: 8 · Σq; q8 with `signs`: Σ|q| over q < 0), then per k-quad q4's q
 * (i8) or q8's digits of q + 128 (high 0..1, low 0..127; with `signs`, digits8s_q8, as the integer
 * GEMM takes them: |q| and q's sign mask, 0 or -1 a byte).
 * Row t's group g in the block of group (t - t % MR) · K/32 + g · MR (MR groups' bytes): its header
 * (s, the correction) at 16 · (t % MR), its k-quad q's digits at 16 · MR + 4 · D · (MR · q + t % MR)
 * (D digits a value). MR 1: a row's groups one after another, as `mvi8_<f>` reads them; the integer
 * GEMM's tiles (codegen/wasm/gemm8.ts) read a k-quad's rows side by side.
 */
export function digits8Kernel(f: QuantType, A: Addr = ADDR32, signs = false): string {
  const quads: string[] = [];
  const D = DIGITS(f, true);
  for (let q = 0; q < 8; q++) {
    quads.push(`(local.set $z (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=${q * 16} ${A.low(get('xp'))}) ${get('inv')}))))`,
      `(local.set $zs (i32x4.add ${get('zs')} ${signs ? `(i32x4.min_s ${get('z')} (v128.const i32x4 0 0 0 0))` : get('z')}))`);
    const digit = f === 'q4' ? [get('z')] : signs ? [`(i32x4.abs ${get('z')})`, `(i32x4.lt_s ${get('z')} (v128.const i32x4 0 0 0 0))`]
      : [`(i32x4.shr_u (i32x4.add ${get('z')} $c128) (i32.const 7))`, `(v128.and (i32x4.add ${get('z')} $c128) ${get('m127')})`].map((e) => e.replaceAll('$c128', '(v128.const i32x4 128 128 128 128)'));
    digit.forEach((e, j) => quads.push(`(local.set $n (i16x8.narrow_i32x4_s ${e} ${e}))`, `(v128.store32_lane offset=${j * 4} 0 ${A.low(get('dq'))} (i8x16.narrow_i16x8_s ${get('n')} ${get('n')}))`));
    quads.push(`(local.set $dq ${add(get('dq'), get('step'))})`);
  }
  const r = `(i32.rem_u ${get('t')} ${get('MR')})`;
  return `(func (export "digits8${signs ? 's' : ''}_${f}") (param $x i32) (param $ldx i32) (param $T i32) (param $K i32) (param $xd i32) (param $MR i32) (result i32)
  (local $t i32) (local $g i32) (local $xp i32) (local $dp i32) (local $dq i32) (local $step i32) (local $amax f32) (local $bits i32) (local $eb i32) (local $mv v128) (local $inv v128) (local $z v128) (local $zs v128) (local $n v128) (local $m127 v128)
  (local.set $m127 (v128.const i32x4 127 127 127 127))
  (local.set $step (i32.mul ${get('MR')} (i32.const ${4 * D})))
  ${overGroups(`;; the tile's group block, this row's header in it, then its digits
      (local.set $dp ${add(get('xd'), `(i32.mul (i32.add (i32.mul (i32.sub ${get('t')} ${r}) (i32.shr_u ${get('K')} (i32.const 5))) (i32.mul ${get('g')} ${get('MR')})) (i32.const ${XD8_GROUP[f]}))`)})
      (local.set $dq ${add(get('dp'), `(i32.add (i32.shl ${get('MR')} (i32.const 4)) (i32.mul ${r} (i32.const ${4 * D})))`)})
      (local.set $dp ${add(get('dp'), `(i32.shl ${r} (i32.const 4))`)})
      ${groupMax(A)}
      ${act8Scale(false)}
      (local.set $zs (v128.const i32x4 0 0 0 0))
      ${quads.join('\n      ')}
      (i32.store ${A.low(get('dp'))} (i32.shl ${get('eb')} (i32.const 23)))
      (i32.store offset=4 ${A.low(get('dp'))} ${signs ? `(i32.sub (i32.const 0) ${lane(get('zs'), 'add', 'i32')})` : `(i32.shl ${lane(get('zs'), 'add', 'i32')} (i32.const 3))`})`)}
  (i32.const 1))`;
}

/** dot_<f>(xd, w, y, T, K, ldy, p0, p1): panels [p0, p1) for T rows by `mvi`, rows inner (a
 *  panel's groups stay in cache for the rows after the first). */
export function dotProduct(f: QuantType, a8 = false, A: Addr = ADDR32): string {
  const dn = a8 ? 'dot8' : 'dot', mn = a8 ? 'mvi8' : 'mvi';
  // 8-bit rows over q4: two panels a call while two are left (PAIRED)
  const np = a8 && PAIRED[f] ? 2 : 1;
  const rows = (fn: string) => `(local.set $wp ${add(get('w'), `(i32.mul ${get('p')} (i32.mul ${get('G')} (i32.const ${QUANT_LAYOUT[f].group})))`)})
    (local.set $t (i32.const 0))
    (block $t_end (loop $t_loop
      (br_if $t_end (i32.ge_s ${get('t')} ${get('T')}))
      (call $${fn} ${add(get('x'), `(i32.mul ${get('t')} (i32.mul ${get('G')} (i32.const ${xdGroup(f, a8)})))`)} ${get('wp')}
        ${add(get('y'), `(i32.shl (i32.add (i32.mul ${get('t')} ${get('ldy')}) (i32.mul ${get('p')} (i32.const ${NR}))) (i32.const 2))`)} ${get('G')}
        ${constArgs(MVI_CONSTS)}${A.pass})
      (local.set $t ${add(get('t'), 1)})
      (br $t_loop)))`;
  const loop = (label: string, fn: string, n: number) => `(block $${label}_end (loop $${label}
    (br_if $${label}_end (i32.gt_s ${add(get('p'), n)} ${get('p1')}))
    ${rows(fn)}
    (local.set $p ${add(get('p'), n)})
    (br $${label})))`;
  return `(func $${dn}_${f} (export "${dn}_${f}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32)${A.param}
  (local $G i32) (local $p i32) (local $t i32) (local $wp i32)
  (local.set $G (i32.shr_s ${get('K')} (i32.const 5)))
  (local.set $p ${get('p0')})
  ${np > 1 ? loop('pairs', `${mn}x2_${f}`, 2) : ''}
  ${loop('p', `${mn}_${f}`, 1)})`;
}

/**
 * round8(x, ldx, T, K, out, MR) -> 1, or 0 where a group holds a value that is not finite (nothing
 * usable written; the caller then rounds the rows as act-quant.ts does, such a group kept): x's T
 * rows rounded to 8 bits per group (runtime/act-quant.ts, bit for bit, as `digits8_<f>`) and written
 * as f32 (q · 2^e) in the dequantising GEMM's row tiles at `out`: row t, column k at float
 * (t - t % MR) · K + t % MR + k · MR.
 */
export function round8Kernel(A: Addr = ADDR32): string {
  const stores: string[] = [];
  for (let q = 0; q < 8; q++) {
    stores.push(`(local.set $z (f32x4.mul (f32x4.nearest (f32x4.mul (v128.load offset=${q * 16} ${A.low(get('xp'))}) ${get('inv')})) ${get('s')}))`);
    for (let l = 0; l < 4; l++) stores.push(`(f32.store ${A.low(add(get('op'), `(i32.mul ${get('step')} (i32.const ${q * 4 + l}))`))} (f32x4.extract_lane ${l} ${get('z')}))`);
  }
  return `(func (export "round8") (param $x i32) (param $ldx i32) (param $T i32) (param $K i32) (param $out i32) (param $MR i32) (result i32)
  (local $t i32) (local $g i32) (local $xp i32) (local $op i32) (local $step i32) (local $amax f32) (local $bits i32) (local $eb i32) (local $mv v128) (local $inv v128) (local $s v128) (local $z v128)
  (local.set $step (i32.shl ${get('MR')} (i32.const 2)))
  ${overGroups(`;; row t's tile: (t - t % MR) · K + t % MR, then column 32g
      (local.set $op ${add(get('out'), `(i32.shl (i32.add (i32.add (i32.mul (i32.sub ${get('t')} (i32.rem_u ${get('t')} ${get('MR')})) ${get('K')}) (i32.rem_u ${get('t')} ${get('MR')})) (i32.mul (i32.shl ${get('g')} (i32.const 5)) ${get('MR')})) (i32.const 2))`)})
      ${groupMax(A)}
      ${act8Scale(true)}
      ${stores.join('\n      ')}`)}
  (i32.const 1))`;
}
