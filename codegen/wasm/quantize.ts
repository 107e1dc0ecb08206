// The q8/q4 quantiser as WebAssembly SIMD (runtime/quantize-wasm.ts runs it, off the reading thread):
// the same arithmetic as runtime/quant.ts `quantizeRow`, so codes and scales are bit-identical.
//
// One export, quantize(src, dtype, groups, codes, scales, q4) -> i32: `groups` consecutive groups of
// 32 elements (whole rows, so group n's scale is scales[n] and its codes start at codes + 32n (q8)
// or 16n (q4)); dtype 0 f32, 1 bf16, 2 f16. Returns -1, or the first group that holds a non-finite
// value or has no finite scale (the JS reference then says why). Per group:
//   - the 32 values widened to f32 into the scratch at [0, 128) (f16 exactly: bits << 13 times 2^112,
//     subnormals included, all-ones exponents made Inf/NaN first);
//   - non-finite check and max|w| in f32x4;
//   - each candidate scale amax / d in f64, to f32 (Math.fround), to f16 bits by round-to-nearest-even
//     (tensor.ts f32ToF16, integer for integer; four at a time in i32x4 lanes when none is subnormal),
//     back to its value;
//   - q4: the five candidates' squared errors in f64x2 lanes (d = 7, 7.25 | 7.5, 7.75 | 8, 8), each
//     lane summed in element order as the reference does. On |v| alone: for s > 0, x = v / s has v's
//     sign, the reference's -floor(0.5 - x) is -floor(|x| + 0.5) and its error the negated one, so
//     e = |v| − min(floor(|v| / s + 0.5), 8 if v < 0 else 7) · s gives the same e². A zero scale's
//     lane gives e = |v| (pmin keeps the limit over inf and NaN, times 0): the reference's v · v. The
//     reference stops a sum once it reaches the best (terms are >= 0, so the choice is the same);
//     the first smallest error among finite scales wins;
//   - codes for the chosen scale the same way, with v's sign; q4 packed two a byte, code + 8.

import type { QuantDType } from '../../runtime/quant.ts';
import { Q4_DIVISORS, QUANT_GROUP } from '../../runtime/quant.ts';
import { f64lit } from './wat.ts';

const g = (n: string) => `(local.get $${n})`;
const set = (n: string, v: string) => `(local.set $${n} ${v})`;
const i32 = (n: number) => `(i32.const ${n})`;
const f64 = (n: number) => `(f64.const ${f64lit(n)})`;
const LIMIT: Readonly<Record<QuantDType, number>> = { q8: 127, q4: 7 };

/** f32 -> f16 bits as runtime/tensor.ts f32ToF16 (round to nearest even; over range: Inf). */
const F32_TO_F16 = `(func $f16 (param $x f32) (result i32)
  (local $u i32) (local $sign i32) (local $exp i32) (local $mant i32) (local $e i32) (local $shift i32) (local $half i32) (local $r i32) (local $rem i32)
  ${set('u', `(i32.reinterpret_f32 ${g('x')})`)}
  ${set('sign', `(i32.and (i32.shr_u ${g('u')} ${i32(16)}) ${i32(0x8000)})`)}
  ${set('exp', `(i32.and (i32.shr_u ${g('u')} ${i32(23)}) ${i32(0xff)})`)}
  ${set('mant', `(i32.and ${g('u')} ${i32(0x7fffff)})`)}
  (if (i32.eq ${g('exp')} ${i32(0xff)}) (then (return (i32.or (i32.or ${g('sign')} ${i32(0x7c00)}) (select ${i32(0x200)} ${i32(0)} ${g('mant')})))))
  ${set('e', `(i32.sub ${g('exp')} ${i32(112)})`)}
  (if (i32.ge_s ${g('e')} ${i32(31)}) (then (return (i32.or ${g('sign')} ${i32(0x7c00)}))))
  (if (i32.le_s ${g('e')} ${i32(0)}) (then
    (if (i32.lt_s ${g('e')} ${i32(-10)}) (then (return ${g('sign')})))
    ${set('mant', `(i32.or ${g('mant')} ${i32(0x800000)})`)}
    ${set('shift', `(i32.sub ${i32(14)} ${g('e')})`)}
    ${set('half', `(i32.shl ${i32(1)} (i32.sub ${g('shift')} ${i32(1)}))`)}
    ${set('r', `(i32.shr_u ${g('mant')} ${g('shift')})`)}
    ${set('rem', `(i32.and ${g('mant')} (i32.sub (i32.shl ${i32(1)} ${g('shift')}) ${i32(1)}))`)}
    (if (i32.or (i32.gt_u ${g('rem')} ${g('half')}) (i32.and (i32.eq ${g('rem')} ${g('half')}) (i32.and ${g('r')} ${i32(1)})))
      (then ${set('r', `(i32.add ${g('r')} ${i32(1)})`)}))
    (return (i32.or ${g('sign')} ${g('r')}))))
  ;; the normal case without branches (the rounding bit is data): a carry out of the mantissa
  ;; steps the exponent, one past 30 is Inf
  ${set('r', `(i32.shr_u ${g('mant')} ${i32(13)})`)}
  ${set('rem', `(i32.and ${g('mant')} ${i32(0x1fff)})`)}
  ${set('r', `(i32.add (i32.add (i32.shl ${g('e')} ${i32(10)}) ${g('r')})
    (i32.or (i32.gt_u ${g('rem')} ${i32(0x1000)}) (i32.and (i32.eq ${g('rem')} ${i32(0x1000)}) (i32.and ${g('r')} ${i32(1)}))))`)}
  (i32.or ${g('sign')} (select ${i32(0x7c00)} ${g('r')} (i32.ge_u ${g('r')} ${i32(0x7c00)}))))`;

/** f16 bits (u32 lanes) -> f32 lanes, exact. */
const f16x4 = (h: string) => `(v128.or
  (f32x4.mul (v128.or (i32x4.shl (v128.and ${h} (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) ${i32(13)})
      (v128.and (i32x4.ge_u (v128.and ${h} (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
    (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))
  (i32x4.shl (v128.and ${h} (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) ${i32(16)}))`;

/** A scale's f16 bits -> its value as f64. */
const scaleOf = (bits: string) => `(f64.promote_f32 (f32.mul (f32.reinterpret_i32 (i32.or (i32.shl ${bits} ${i32(13)})
    (select ${i32(0x7f800000)} ${i32(0)} (i32.ge_u ${bits} ${i32(0x7c00)})))) (f32.const 0x1p112)))`;

/** The group's 32 values as f32 into [0, 128) from $p (advanced past them). */
function widen(): string {
  const f32 = Array.from({ length: 8 }, (_, k) => `(v128.store offset=${16 * k} ${i32(0)} (v128.load offset=${16 * k} ${g('p')}))`).join('\n      ');
  const half = (conv: (x: string) => string) => Array.from({ length: 4 }, (_, k) => `${set('x', `(v128.load offset=${16 * k} ${g('p')})`)}
      (v128.store offset=${32 * k} ${i32(0)} ${conv(`(i32x4.extend_low_i16x8_u ${g('x')})`)})
      (v128.store offset=${32 * k + 16} ${i32(0)} ${conv(`(i32x4.extend_high_i16x8_u ${g('x')})`)})`).join('\n      ');
  return `(if (i32.eqz ${g('dtype')})
    (then ${f32}
      ${set('p', `(i32.add ${g('p')} ${i32(128)})`)})
    (else (if (i32.eq ${g('dtype')} ${i32(1)})
      (then ${half((x) => `(i32x4.shl ${x} ${i32(16)})`)})
      (else ${half(f16x4)}))
      ${set('p', `(i32.add ${g('p')} ${i32(64)})`)}))`;
}

/** Writes a group's codes for all-zero values (q8 0, q4 the byte 0x88) at $c. */
const zeroCodes = `(if ${g('q4')}
      (then (v128.store ${g('c')} (v128.const i8x16 ${Array(16).fill('0x88').join(' ')})))
      (else (v128.store ${g('c')} (v128.const i64x2 0 0)) (v128.store offset=16 ${g('c')} (v128.const i64x2 0 0))))`;

/** Codes of elements i, i+1 (f32 at `at`) for scale $S, as i32 lanes 0 and 1:
 *  min(floor(|v| / S + 0.5), $neg if v < 0 else $pos) with v's sign. */
const codePair = (at: string) => `(i32x4.trunc_sat_f64x2_s_zero (block (result v128)
          ${set('x', `(f64x2.promote_low_f32x4 (v128.load64_zero ${at}))`)}
          (v128.or (v128.and ${g('x')} (v128.const i64x2 0x8000000000000000 0x8000000000000000))
            (f64x2.pmin (v128.bitselect ${g('neg')} ${g('pos')} (f64x2.lt ${g('x')} (v128.const i64x2 0 0)))
              (f64x2.floor (f64x2.add (f64x2.div (f64x2.abs ${g('x')}) ${g('Sx')}) (v128.const f64x2 0.5 0.5)))))))`;

/** The quantiser module's text. */
export function renderQuantizer(): string {
  const D = Q4_DIVISORS;
  if (D.length !== 5) throw new Error('renderQuantizer: the q4 lanes are laid out for five candidate divisors');
  const cands = D.map((d, j) => `${set(`b${j}`, `(call $f16 (f32.demote_f64 (f64.div ${g('ad')} ${f64(d)})))`)}
      ${set(`s${j}`, scaleOf(g(`b${j}`)))}`).join('\n      ');
  const pairs = [['s0', 's1'], ['s2', 's3'], ['s4', 's4']];
  const lanes = pairs.map(([a, b], k) => set(`P${k}`, `(f64x2.replace_lane 1 (f64x2.splat ${g(a!)}) ${g(b!)})`)).join('\n      ');
  // The same four at a time when every quotient is an f16 normal or past (the usual case): in f32x4
  // lanes (d0..d3, and d4 in each), rounded to f16 bits without branches (a carry out of the
  // mantissa steps the exponent; past 30 is Inf, min_u); a subnormal one takes the calls above.
  const vi = (n: number) => `(v128.const i32x4 ${n} ${n} ${n} ${n})`;
  const rne = (u: string) => `(i32x4.min_u (i32x4.shr_u (i32x4.add (i32x4.sub ${u} ${vi(112 << 23)})
        (i32x4.add ${vi(0xfff)} (v128.and (i32x4.shr_u ${u} ${i32(13)}) ${vi(1)}))) ${i32(13)}) ${vi(0x7c00)})`;
  const quot = (k: number) => `(f32x4.demote_f64x2_zero (f64x2.div (f64x2.splat ${g('ad')}) (v128.const f64x2 ${f64lit(D[2 * k]!)} ${f64lit(D[2 * k + 1]!)})))`;
  const shuffle = (lanes: string) => `(i8x16.shuffle ${lanes}`;
  const vector = `${set('U0', `${shuffle('0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23')} ${quot(0)} ${quot(1)})`)}
      ${set('U1', `(f32x4.splat (f32.demote_f64 (f64.div ${g('ad')} ${f64(D[4]!)})))`)}
      (if (v128.any_true (v128.or (i32x4.lt_u ${g('U0')} ${vi(113 << 23)}) (i32x4.lt_u ${g('U1')} ${vi(113 << 23)})))
        (then
      ${cands}
      ${lanes})
        (else
      ${set('U0', rne(g('U0')))}
      ${set('U1', rne(g('U1')))}
      ${[0, 1, 2, 3].map((j) => set(`b${j}`, `(i32x4.extract_lane ${j} ${g('U0')})`)).join(' ')} ${set('b4', `(i32x4.extract_lane 0 ${g('U1')})`)}
      ${set('U0', f16x4(g('U0')))}
      ${set('P0', `(f64x2.promote_low_f32x4 ${g('U0')})`)}
      ${set('P1', `(f64x2.promote_low_f32x4 ${shuffle('8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7')} ${g('U0')} ${g('U0')}))`)}
      ${set('P2', `(f64x2.promote_low_f32x4 ${f16x4(g('U1'))})`)}))
      ${pairs.map((_, k) => set(`E${k}`, '(v128.const i64x2 0 0)')).join(' ')}`;
  // |v| as f64 at [128, 384) and its limit (neg for v < 0, else pos) at [384, 640), two at a time
  const prep = Array.from({ length: 16 }, (_, k) => `${set('x', `(f64x2.promote_low_f32x4 (v128.load64_zero offset=${8 * k} ${i32(0)}))`)}
      (v128.store offset=${128 + 16 * k} ${i32(0)} (f64x2.abs ${g('x')}))
      (v128.store offset=${384 + 16 * k} ${i32(0)} (v128.bitselect ${g('neg')} ${g('pos')} (f64x2.lt ${g('x')} (v128.const i64x2 0 0))))`).join('\n      ');
  // the error sums, unrolled over the 32 elements in order
  const errs = Array.from({ length: QUANT_GROUP }, (_, i) => `${set('a', `(v128.load64_splat offset=${128 + 8 * i} ${i32(0)})`)}
      ${set('lim', `(v128.load64_splat offset=${384 + 8 * i} ${i32(0)})`)}
      ${pairs.map((_, k) => `${set('x', `(f64x2.pmin ${g('lim')} (f64x2.floor (f64x2.add (f64x2.div ${g('a')} ${g(`P${k}`)}) (v128.const f64x2 0.5 0.5))))`)}
      ${set('x', `(f64x2.sub ${g('a')} (f64x2.mul ${g('x')} ${g(`P${k}`)}))`)}
      ${set(`E${k}`, `(f64x2.add ${g(`E${k}`)} (f64x2.mul ${g('x')} ${g('x')}))`)}`).join('\n      ')}`).join('\n      ');
  // first smallest error among the finite scales (an f16 exponent of all ones is not finite)
  const pick = D.map((_, j) => {
    const err = `(f64x2.extract_lane ${j % 2} ${g(`E${j >> 1}`)})`;
    return `(if (i32.and (i32.ne (i32.and ${g(`b${j}`)} ${i32(0x7c00)}) ${i32(0x7c00)}) (f64.lt ${err} ${g('best')}))
        (then ${set('best', err)} ${set('bits', g(`b${j}`))} ${set('S', `(f64x2.extract_lane ${j % 2} ${g(`P${j >> 1}`)})`)}))`;
  }).join('\n      ');
  const absMax = Array.from({ length: 8 }, (_, k) => `${set('x', `(v128.load offset=${16 * k} ${i32(0)})`)}
    ${set('bad', `(v128.or ${g('bad')} (i32x4.eq (v128.and ${g('x')} (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))`)}
    ${set('mx', `(f32x4.max ${g('mx')} (f32x4.abs ${g('x')}))`)}`).join('\n    ');
  return `;; archc q8/q4 quantiser (codegen/wasm/quantize.ts)
(module
  (memory (export "memory") 1)
  ${F32_TO_F16}
  (func (export "quantize") (param $src i32) (param $dtype i32) (param $groups i32) (param $codes i32) (param $scales i32) (param $q4 i32) (result i32)
    (local $n i32) (local $p i32) (local $c i32) (local $i i32) (local $bits i32)
    (local $b0 i32) (local $b1 i32) (local $b2 i32) (local $b3 i32) (local $b4 i32)
    (local $v f32) (local $amax f32)
    (local $ad f64) (local $S f64) (local $best f64) (local $f f64) (local $lo f64) (local $hi f64)
    (local $s0 f64) (local $s1 f64) (local $s2 f64) (local $s3 f64) (local $s4 f64)
    (local $x v128) (local $Sx v128) (local $pos v128) (local $neg v128) (local $bad v128) (local $mx v128) (local $a v128) (local $lim v128)
    (local $U0 v128) (local $U1 v128) (local $P0 v128) (local $P1 v128) (local $P2 v128) (local $E0 v128) (local $E1 v128) (local $E2 v128)
    ${set('p', g('src'))}
    ${set('hi', `(select ${f64(LIMIT.q4)} ${f64(LIMIT.q8)} ${g('q4')})`)}
    ${set('lo', `(f64.add ${g('hi')} ${f64(1)})`)}
    ${set('pos', `(f64x2.splat ${g('hi')})`)}
    ${set('neg', `(f64x2.splat ${g('lo')})`)}
    (block $done (loop $group
      (br_if $done (i32.ge_u ${g('n')} ${g('groups')}))
      ${set('c', `(i32.add ${g('codes')} (i32.shl ${g('n')} (select ${i32(4)} ${i32(5)} ${g('q4')})))`)}
      ${widen()}
      ${set('bad', '(v128.const i64x2 0 0)')}
      ${set('mx', '(v128.const i64x2 0 0)')}
      ${absMax}
      (if (v128.any_true ${g('bad')}) (then (return ${g('n')})))
      ${set('amax', `(f32.max (f32.max (f32x4.extract_lane 0 ${g('mx')}) (f32x4.extract_lane 1 ${g('mx')})) (f32.max (f32x4.extract_lane 2 ${g('mx')}) (f32x4.extract_lane 3 ${g('mx')})))`)}
      (block $next
        (if (f32.eq ${g('amax')} (f32.const 0)) (then
          (i32.store16 (i32.add ${g('scales')} (i32.shl ${g('n')} ${i32(1)})) ${i32(0)})
          ${zeroCodes}
          (br $next)))
        ${set('ad', `(f64.promote_f32 ${g('amax')})`)}
        (if ${g('q4')}
          (then
      ${vector}
      ${prep}
      ${errs}
      ${set('best', '(f64.const inf)')}
      ${pick}
      (if (f64.eq ${g('best')} (f64.const inf)) (then (return ${g('n')}))))
          (else
            ${set('bits', `(call $f16 (f32.demote_f64 (f64.div ${g('ad')} ${f64(127)})))`)}
            (if (i32.eq (i32.and ${g('bits')} ${i32(0x7c00)}) ${i32(0x7c00)}) (then (return ${g('n')})))
            ${set('S', scaleOf(g('bits')))}))
        (i32.store16 (i32.add ${g('scales')} (i32.shl ${g('n')} ${i32(1)})) ${g('bits')})
        (if (f64.eq ${g('S')} (f64.const 0)) (then ${zeroCodes} (br $next)))
        ${set('i', i32(0))}
        ${set('Sx', `(f64x2.splat ${g('S')})`)}
        (if ${g('q4')}
          (then (loop $q4
            ${set('x', `(v128.and (i32x4.add ${codePair(g('i'))} (v128.const i32x4 8 8 8 8)) (v128.const i32x4 15 15 15 15))`)}
            (i32.store8 ${g('c')} (i32.or (i32x4.extract_lane 0 ${g('x')}) (i32.shl (i32x4.extract_lane 1 ${g('x')}) ${i32(4)})))
            ${set('c', `(i32.add ${g('c')} ${i32(1)})`)}
            ${set('i', `(i32.add ${g('i')} ${i32(8)})`)}
            (br_if $q4 (i32.lt_u ${g('i')} ${i32(128)}))))
          (else (loop $q8
            ${set('x', codePair(g('i')))}
            (i32.store8 ${g('c')} (i32x4.extract_lane 0 ${g('x')}))
            (i32.store8 offset=1 ${g('c')} (i32x4.extract_lane 1 ${g('x')}))
            ${set('c', `(i32.add ${g('c')} ${i32(2)})`)}
            ${set('i', `(i32.add ${g('i')} ${i32(8)})`)}
            (br_if $q8 (i32.lt_u ${g('i')} ${i32(128)}))))))
      ${set('n', `(i32.add ${g('n')} ${i32(1)})`)}
      (br $group)))
    ${i32(-1)}))
`;
}

/** runtime/quantize-wasm-module.ts, for the module's assembled `bytes` (the runtime ships without
 *  wabt: test/runtime/quantize-wasm.test.ts checks the file against the text, and rewrites it with
 *  ARCHC_UPDATE_GOLDEN=1). */
export function quantizerModuleSource(bytes: Uint8Array): string {
  return `// Generated from codegen/wasm/quantize.ts (renderQuantizer, assembled): do not edit.\n`
    + `// Regenerate: ARCHC_UPDATE_GOLDEN=1 npx vitest run test/runtime/quantize-wasm.test.ts\n\n`
    + `/** The q8/q4 quantiser module (${bytes.length} bytes), base64. */\n`
    + `export const QUANTIZER_WASM = ${JSON.stringify(Buffer.from(bytes).toString('base64'))};\n`;
}
