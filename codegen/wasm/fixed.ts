// The fixed part of the `wasm` target's program module: functions that do not depend on the program
// (the same text in every module), appended by codegen/wasm/program.ts before the kernels' own.
//   math  exp4, log4, silu4, softplus4, gelu4, gelu_tanh4 (f32x4) and exp64, exp64x2, erf64, tanh64
//         (f64), the helpers the rendered expressions and the SSD/attention steps call;
//   ssd.* the chunked SSD's steps around its matrix products (runtime/wasm/ssd.ts drives them);
//   attn.* prefill attention's steps around its products (runtime/wasm/attention.ts drives them).
// Kept as TypeScript rather than a .wat file: the polynomial coefficients are derived here (1/n!),
// not written out as literals.

import { f64lit, splat } from './wat.ts';

/**
 * The chunked SSD's steps around its matrix products (runtime/wasm/ssd.ts drives them, the
 * products run on the kernel module), the same for every kernel: addresses are bytes, strides
 * (`ld…`) floats. As runtime/cpu/ssd.ts: a_j = dt_j·A_h, the decays and segment sums in f64, each
 * result rounded to f32 where it is stored.
 *   ssd.put     dst[i, j] = src[i, j]                          (rows × cols)
 *   ssd.decays  a[i] = dt_i·A_h; din[i] = exp(a_0 + … + a_i); dout[j] = exp(a_{j+1} + … + a_{q-1})·dt_j
 *   ssd.mask    m[i, j] = exp(seg(i, j))·cb[i, j]·dt_j for j ≤ i, else 0      (q × q)
 *   ssd.out     y[i, p] = y[i, p] + din[i]·r[i, p] + D_h·x[i, p]             (q × P)
 *   ssd.xw      xw[p, j] = dout[j]·x[j, p]                                     (P × q)
 *   ssd.state   st[p, n] = total·st[p, n] + r[p, n]                            (P × N)
 */
const SSD_GLUE = (() => {
  const f = (base: string, i: string, ld: string, j: string) => `(i32.add (local.get $${base}) (i32.shl (i32.add (i32.mul (local.get $${i}) (local.get $${ld})) (local.get $${j})) (i32.const 2)))`;
  const d = (base: string, i: string) => `(i32.add (local.get $${base}) (i32.shl (local.get $${i}) (i32.const 3)))`;
  const ld32 = (addr: string) => `(f64.promote_f32 (f32.load ${addr}))`;
  let n = 0;
  const dtAt = (i: string) => `(i32.add (local.get $dt) (i32.shl (i32.mul (local.get $${i}) (local.get $ldt)) (i32.const 2)))`;
  const loop = (v: string, from: string, to: string, body: string, down = false) => {
    const [e, l] = [`$e${n}_${v}`, `$l${n++}_${v}`];
    return `(local.set $${v} ${down ? `(i32.sub ${to} (i32.const 1))` : from})
  (block ${e} (loop ${l}
    (br_if ${e} ${down ? `(i32.lt_s (local.get $${v}) ${from})` : `(i32.ge_s (local.get $${v}) ${to})`})
    ${body}
    (local.set $${v} (${down ? 'i32.sub' : 'i32.add'} (local.get $${v}) (i32.const 1)))
    (br ${l})))`;
  };
  const p = (...names: string[]) => names.map((n) => `(param $${n} i32)`).join(' ');
  const zero = '(i32.const 0)', g = (n: string) => `(local.get $${n})`;
  return `(func (export "ssd.put") ${p('src', 'lds', 'dst', 'ldd', 'rows', 'cols')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('rows'), loop('j', zero, g('cols'), `(f32.store ${f('dst', 'i', 'ldd', 'j')} (f32.load ${f('src', 'i', 'lds', 'j')}))`))})
(func (export "ssd.decays") ${p('dt', 'ldt')} (param $A f64) ${p('q', 'a', 'din', 'dout')} (local $i i32) (local $run f64)
  ${loop('i', zero, g('q'), `(f64.store ${d('a', 'i')} (f64.mul ${ld32(dtAt('i'))} (local.get $A)))
    (local.set $run (f64.add (local.get $run) (f64.load ${d('a', 'i')})))
    (f64.store ${d('din', 'i')} (call $exp64 (local.get $run)))`)}
  (local.set $run (f64.const 0))
  ${loop('i', zero, g('q'), `(f64.store ${d('dout', 'i')} (f64.mul (call $exp64 (local.get $run)) ${ld32(dtAt('i'))}))
    (local.set $run (f64.add (local.get $run) (f64.load ${d('a', 'i')})))`, true)})
(func (export "ssd.mask") ${p('cb', 'ldcb', 'dt', 'ldt', 'a', 'q', 'm', 'ldm')} (local $i i32) (local $j i32) (local $seg f64)
  ${loop('i', zero, g('q'), `${loop('j', `(i32.add (local.get $i) (i32.const 1))`, g('q'), `(f32.store ${f('m', 'i', 'ldm', 'j')} (f32.const 0))`)}
    (local.set $seg (f64.const 0))
    ${loop('j', zero, `(i32.add (local.get $i) (i32.const 1))`, `(f32.store ${f('m', 'i', 'ldm', 'j')} (f32.demote_f64 (f64.mul (f64.mul (call $exp64 (local.get $seg)) ${ld32(f('cb', 'i', 'ldcb', 'j'))}) ${ld32(dtAt('j'))})))
    (local.set $seg (f64.add (local.get $seg) (f64.load ${d('a', 'j')})))`, true)}`)})
(func (export "ssd.out") ${p('y', 'ldy', 'r', 'ldr', 'din', 'x', 'ldx')} (param $D f64) ${p('q', 'P')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('q'), loop('j', zero, g('P'), `(f32.store ${f('y', 'i', 'ldy', 'j')} (f32.demote_f64 (f64.add (f64.add ${ld32(f('y', 'i', 'ldy', 'j'))}
      (f64.mul (f64.load ${d('din', 'i')}) ${ld32(f('r', 'i', 'ldr', 'j'))})) (f64.mul (local.get $D) ${ld32(f('x', 'i', 'ldx', 'j'))}))))`))})
(func (export "ssd.xw") ${p('x', 'ldx', 'dout', 'q', 'P', 'xw', 'ldw')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('P'), loop('j', zero, g('q'), `(f32.store ${f('xw', 'i', 'ldw', 'j')} (f32.demote_f64 (f64.mul (f64.load ${d('dout', 'j')}) ${ld32(f('x', 'j', 'ldx', 'i'))})))`))})
(func (export "ssd.state") (param $st i32) (param $total f64) ${p('r', 'ldr', 'P', 'N')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('P'), loop('j', zero, g('N'), `(f32.store ${f('st', 'i', 'N', 'j')} (f32.demote_f64 (f64.add (f64.mul (local.get $total) ${ld32(f('st', 'i', 'N', 'j'))}) ${ld32(f('r', 'i', 'ldr', 'j'))})))`))})`;
})();

/**
 * Prefill attention's steps around its two products (runtime/wasm/attention.ts drives them), the
 * same for every kernel: addresses are bytes, strides floats. As runtime/wasm/attention.ts' JS
 * glue: scores scaled and the softmax in f64, its weights stored in f32, the row sums kept in f64.
 *   attn.put      dst[i, j] = src[i, j]                         (rows × cols: appending K/V to the cache)
 *   attn.softmax  row i of the scores sees keys [0, first + i]: m = max_j sc[i, j]·scale;
 *                 p[i, j] = exp(sc[i, j]·scale − m) (0 past the row's keys); sums[i] = Σ_j p[i, j]
 *                 (in f64x2 over pairs of keys: exp64x2, the sum in two lanes added at the end)
 *   attn.out      y[i, d] = pv[i, d] / sums[i]                  (rows × Dh)
 */
const ATTN_GLUE = (() => {
  const f = (base: string, i: string, ld: string, j: string) => `(i32.add (local.get $${base}) (i32.shl (i32.add (i32.mul (local.get $${i}) (local.get $${ld})) (local.get $${j})) (i32.const 2)))`;
  const d = (base: string, i: string) => `(i32.add (local.get $${base}) (i32.shl (local.get $${i}) (i32.const 3)))`;
  let n = 0;
  const loop = (v: string, from: string, to: string, body: string) => {
    const [e, l] = [`$ae${n}_${v}`, `$al${n++}_${v}`];
    return `(local.set $${v} ${from})
  (block ${e} (loop ${l}
    (br_if ${e} (i32.ge_s (local.get $${v}) ${to}))
    ${body}
    (local.set $${v} (i32.add (local.get $${v}) (i32.const 1)))
    (br ${l})))`;
  };
  const p = (...names: string[]) => names.map((x) => `(param $${x} i32)`).join(' ');
  const zero = '(i32.const 0)', g = (x: string) => `(local.get $${x})`;
  const scaled = `(f64.mul (f64.promote_f32 (f32.load ${f('sc', 'i', 'ldsc', 'j')})) (local.get $scale))`;
  const scaled2 = `(f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero ${f('sc', 'i', 'ldsc', 'j')})) (f64x2.splat (local.get $scale)))`;
  // j from 0 while < to, by 2
  const step2 = (v: string, to: string, body: string) => {
    const [e, l] = [`$ae${n}_${v}`, `$al${n++}_${v}`];
    return `(local.set $${v} (i32.const 0))
  (block ${e} (loop ${l}
    (br_if ${e} (i32.ge_s (local.get $${v}) ${to}))
    ${body}
    (local.set $${v} (i32.add (local.get $${v}) (i32.const 2)))
    (br ${l})))`;
  };
  return `(func (export "attn.put") ${p('src', 'lds', 'dst', 'ldd', 'rows', 'cols')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('rows'), loop('j', zero, g('cols'), `(f32.store ${f('dst', 'i', 'ldd', 'j')} (f32.load ${f('src', 'i', 'lds', 'j')}))`))})
(func (export "attn.softmax") ${p('sc', 'ldsc', 'rows', 'keys', 'first')} (param $scale f64) ${p('pw', 'ldp', 'sums')} (local $i i32) (local $j i32) (local $nk i32) (local $n2 i32) (local $max f64) (local $sum f64) (local $e f64) (local $mx v128) (local $s2 v128) (local $e2 v128)
  ${loop('i', zero, g('rows'), `(local.set $nk (i32.add (i32.add (local.get $first) (local.get $i)) (i32.const 1)))
    (local.set $n2 (i32.and (local.get $nk) (i32.const -2)))
    (local.set $mx (f64x2.splat (f64.const -inf)))
    ${step2('j', g('n2'), `(local.set $mx (f64x2.max (local.get $mx) ${scaled2}))`)}
    (local.set $max (f64.max (f64x2.extract_lane 0 (local.get $mx)) (f64x2.extract_lane 1 (local.get $mx))))
    ${loop('j', g('n2'), g('nk'), `(local.set $max (f64.max (local.get $max) ${scaled}))`)}
    (local.set $s2 (f64x2.splat (f64.const 0)))
    ${step2('j', g('n2'), `(local.set $e2 (call $exp64x2 (f64x2.sub ${scaled2} (f64x2.splat (local.get $max)))))
    (local.set $s2 (f64x2.add (local.get $s2) (local.get $e2)))
    (v128.store64_lane 0 ${f('pw', 'i', 'ldp', 'j')} (f32x4.demote_f64x2_zero (local.get $e2)))`)}
    (local.set $sum (f64.add (f64x2.extract_lane 0 (local.get $s2)) (f64x2.extract_lane 1 (local.get $s2))))
    ${loop('j', g('n2'), g('nk'), `(local.set $e (call $exp64 (f64.sub ${scaled} (local.get $max))))
    (local.set $sum (f64.add (local.get $sum) (local.get $e)))
    (f32.store ${f('pw', 'i', 'ldp', 'j')} (f32.demote_f64 (local.get $e)))`)}
    ${loop('j', g('nk'), g('keys'), `(f32.store ${f('pw', 'i', 'ldp', 'j')} (f32.const 0))`)}
    (f64.store ${d('sums', 'i')} (local.get $sum))`)})
(func (export "attn.out") ${p('y', 'ldy', 'pv', 'ldpv', 'sums', 'rows', 'cols')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('rows'), loop('j', zero, g('cols'), `(f32.store ${f('y', 'i', 'ldy', 'j')} (f32.demote_f64 (f64.div (f64.promote_f32 (f32.load ${f('pv', 'i', 'ldpv', 'j')})) (f64.load ${d('sums', 'i')}))))`))})`;
})();

/**
 * Math helpers. exp4: f32x4 e^x by x = n·ln2 + r (ln2 split in two, |r| ≤ ln2/2), a degree-7
 * polynomial for e^r and 2^n from the exponent bits, within ~1 ulp (inputs clamped to
 * [-87.3, 88], where the result is still normal). log4 (x ≥ 1 here): x = m·2^k with m in
 * [√½, √2), log m = 2·atanh(s) with s = (m-1)/(m+1). softplus4: x above 20, else log1p(e^x) as
 * log(1+e) corrected by (e - ((1+e) - 1))/(1+e). exp64: the f64 counterpart (degree 13), for the SSD
 * step's decay, which the reference computes in double. gelu4, gelu_tanh4: per lane in f64 as the
 * reference (its erf series; tanh from exp64).
 */
const MATH = `(func $exp4 (param $x v128) (result v128) (local $n v128) (local $r v128) (local $p v128)
  (local.set $x (f32x4.min (f32x4.max (local.get $x) ${splat(-87.3)}) ${splat(88)}))
  (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) ${splat(1.4426950408889634)})))
  (local.set $r (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) ${splat(0.693359375)})) (f32x4.mul (local.get $n) ${splat(-2.12194440e-4)})))
  (local.set $p ${splat(1 / 5040)})
  ${[1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1].map((c) => `(local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(c)}))`).join('\n  ')}
  (f32x4.mul (local.get $p) (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127)) (i32.const 23))))
(func $log4 (param $x v128) (result v128) (local $k v128) (local $m v128) (local $big v128) (local $f v128) (local $s v128) (local $z v128) (local $p v128) (local $kf v128)
  (local.set $k (i32x4.sub (i32x4.shr_u (local.get $x) (i32.const 23)) (v128.const i32x4 127 127 127 127)))
  (local.set $m (v128.or (v128.and (local.get $x) (v128.const i32x4 0x7fffff 0x7fffff 0x7fffff 0x7fffff)) (v128.const i32x4 0x3f800000 0x3f800000 0x3f800000 0x3f800000)))
  (local.set $big (f32x4.gt (local.get $m) ${splat(Math.SQRT2)}))
  (local.set $m (v128.bitselect (f32x4.mul (local.get $m) ${splat(0.5)}) (local.get $m) (local.get $big)))
  (local.set $k (i32x4.sub (local.get $k) (local.get $big)))
  (local.set $f (f32x4.sub (local.get $m) ${splat(1)}))
  (local.set $s (f32x4.div (local.get $f) (f32x4.add (local.get $f) ${splat(2)})))
  (local.set $z (f32x4.mul (local.get $s) (local.get $s)))
  (local.set $p ${splat(1 / 9)})
  ${[1 / 7, 1 / 5, 1 / 3].map((c) => `(local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $z)) ${splat(c)}))`).join('\n  ')}
  (local.set $p (f32x4.mul (f32x4.mul (f32x4.mul (local.get $s) (local.get $z)) (local.get $p)) ${splat(2)}))
  (local.set $kf (f32x4.convert_i32x4_s (local.get $k)))
  (f32x4.add (f32x4.mul (local.get $kf) ${splat(0.693359375)}) (f32x4.add (f32x4.add (f32x4.mul (local.get $s) ${splat(2)}) (local.get $p)) (f32x4.mul (local.get $kf) ${splat(-2.12194440e-4)}))))
(func $silu4 (param $x v128) (result v128)
  (f32x4.div (local.get $x) (f32x4.add ${splat(1)} (call $exp4 (f32x4.neg (local.get $x))))))
(func $softplus4 (param $x v128) (result v128) (local $e v128) (local $u v128)
  (local.set $e (call $exp4 (local.get $x)))
  (local.set $u (f32x4.add ${splat(1)} (local.get $e)))
  (v128.bitselect (local.get $x)
    (f32x4.add (call $log4 (local.get $u)) (f32x4.div (f32x4.sub (local.get $e) (f32x4.sub (local.get $u) ${splat(1)})) (local.get $u)))
    (f32x4.gt (local.get $x) ${splat(20)})))
(func $exp64 (param $x f64) (result f64) (local $n f64) (local $r f64) (local $p f64)
  (local.set $x (f64.min (f64.max (local.get $x) (f64.const -708)) (f64.const 709)))
  (local.set $n (f64.nearest (f64.mul (local.get $x) (f64.const 1.4426950408889634))))
  (local.set $r (f64.sub (f64.sub (local.get $x) (f64.mul (local.get $n) (f64.const 0.6931471803691238))) (f64.mul (local.get $n) (f64.const 1.9082149292705877e-10))))
  (local.set $p (f64.const ${1 / 6227020800}))
  ${[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => `(local.set $p (f64.add (f64.mul (local.get $p) (local.get $r)) (f64.const ${f64lit(1 / factorial(i))})))`).join('\n  ')}
  (f64.mul (local.get $p) (f64.reinterpret_i64 (i64.shl (i64.add (i64.trunc_sat_f64_s (local.get $n)) (i64.const 1023)) (i64.const 52)))))
(func $exp64x2 (param $x v128) (result v128) (local $n v128) (local $r v128) (local $p v128)
  (local.set $x (f64x2.min (f64x2.max (local.get $x) (f64x2.splat (f64.const -708))) (f64x2.splat (f64.const 709))))
  (local.set $n (f64x2.nearest (f64x2.mul (local.get $x) (f64x2.splat (f64.const 1.4426950408889634)))))
  (local.set $r (f64x2.sub (f64x2.sub (local.get $x) (f64x2.mul (local.get $n) (f64x2.splat (f64.const 0.6931471803691238)))) (f64x2.mul (local.get $n) (f64x2.splat (f64.const 1.9082149292705877e-10)))))
  (local.set $p (f64x2.splat (f64.const ${1 / 6227020800})))
  ${[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => `(local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $r)) (f64x2.splat (f64.const ${f64lit(1 / factorial(i))}))))`).join('\n  ')}
  (f64x2.mul (local.get $p) (i64x2.shl (i64x2.add (i64x2.extend_low_i32x4_s (i32x4.trunc_sat_f64x2_s_zero (local.get $n))) (v128.const i64x2 1023 1023)) (i32.const 52))))
(func $erf64 (param $z f64) (result f64) (local $a f64) (local $z2 f64) (local $term f64) (local $sum f64) (local $n f64) (local $r f64)
  (local.set $a (f64.abs (local.get $z)))
  (if (i32.eqz (f64.lt (local.get $a) (f64.const 6)))
    (then (return (if (result f64) (f64.ne (local.get $z) (local.get $z)) (then (local.get $z)) (else (f64.copysign (f64.const 1) (local.get $z)))))))
  (local.set $z2 (f64.mul (f64.const 2) (f64.mul (local.get $a) (local.get $a))))
  (local.set $term (local.get $a))
  (local.set $sum (local.get $a))
  (local.set $n (f64.const 1))
  (block $e (loop $l
    (br_if $e (i32.eqz (f64.gt (local.get $term) (f64.mul (local.get $sum) (f64.const 1e-17)))))
    (local.set $term (f64.mul (local.get $term) (f64.div (local.get $z2) (f64.add (f64.mul (f64.const 2) (local.get $n)) (f64.const 1)))))
    (local.set $sum (f64.add (local.get $sum) (local.get $term)))
    (local.set $n (f64.add (local.get $n) (f64.const 1)))
    (br $l)))
  (local.set $r (f64.mul (f64.mul (f64.const ${f64lit(2 / Math.sqrt(Math.PI))}) (call $exp64 (f64.neg (f64.mul (local.get $a) (local.get $a))))) (local.get $sum)))
  (if (result f64) (f64.eq (local.get $z) (f64.const 0)) (then (local.get $z)) (else (f64.copysign (local.get $r) (local.get $z)))))
(func $tanh64 (param $y f64) (result f64) (local $a f64)
  (local.set $a (f64.abs (local.get $y)))
  (if (f64.gt (local.get $a) (f64.const 20)) (then (return (f64.copysign (f64.const 1) (local.get $y)))))
  (f64.copysign (f64.sub (f64.const 1) (f64.div (f64.const 2) (f64.add (call $exp64 (f64.mul (f64.const 2) (local.get $a))) (f64.const 1)))) (local.get $y)))
(func $gelu64 (param $v f64) (result f32)
  (f32.demote_f64 (f64.mul (f64.mul (f64.const 0.5) (local.get $v)) (f64.add (f64.const 1) (call $erf64 (f64.mul (local.get $v) (f64.const ${f64lit(Math.SQRT1_2)})))))))
(func $gelu_tanh64 (param $v f64) (result f32)
  (f32.demote_f64 (f64.mul (f64.mul (f64.const 0.5) (local.get $v)) (f64.add (f64.const 1)
    (call $tanh64 (f64.mul (f64.const ${f64lit(Math.sqrt(2 / Math.PI))}) (f64.add (local.get $v) (f64.mul (f64.mul (f64.mul (f64.const 0.044715) (local.get $v)) (local.get $v)) (local.get $v)))))))))
${['gelu', 'gelu_tanh'].map((g) => `(func $${g}4 (param $x v128) (result v128)
  ${[0, 1, 2, 3].reduce((acc, l) => `(f32x4.replace_lane ${l} ${acc} (call $${g}64 (f64.promote_f32 (f32x4.extract_lane ${l} (local.get $x)))))`, '(local.get $x)')})`).join('\n')}`;

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

/** Every fixed function, in the module's order: the math helpers, then the SSD and attention steps. */
export const FIXED_WAT = `${MATH}\n${SSD_GLUE}\n${ATTN_GLUE}`;
