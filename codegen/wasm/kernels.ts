// The `wasm` target's kernel module as WebAssembly text: register-blocked f32x4 micro-kernels for the
// matrix product, generated from the target record (rows per micro-tile, token block, weight
// dtypes), then assembled by codegen/wasm/assemble.ts. Sizes (K, panels, rows) are arguments: the
// inner loop runs over K, which is long at every model size, so constant trip counts would buy
// nothing measurable, and one module serves every program.
//
// Layouts (all in the one shared memory; byte addresses):
//   weights  packed panels [P][K][NR] of f32 or bf16: panel p holds output columns p·NR … p·NR+NR-1
//            (zero rows past N), so a k step reads NR consecutive weights and each panel is one
//            contiguous stream (prefill re-reads it from L1 for every row tile; decode streams it).
//   x        packed row tiles [ceil(T/MR)][K][MR] f32: a k step reads MR consecutive floats.
//   y        [Tpad][ldy] f32 with ldy = P·NR.
//   q8/q4    packed panels [P][K/32 groups] of QUANT_LAYOUT[fmt].group bytes: a group's codes
//            [8 k-quads][NR][4 k] (codes of 4 consecutive k side by side, as the i8·i7 dot product
//            multiplies and sums them), then its NR f16 scales, then (q8) NR i16 code sums (see
//            runtime/wasm/layout.ts); a panel is again one contiguous stream.
//   xd       the integer-dot GEMV's activation rows: per row [K/32] groups of XD_GROUP bytes (see
//            `mvi` below).
//   job      the product being shared by the threads, 48 bytes at JOB (see `work` below).
//   scratch  per thread, one panel widened from bf16 (or dequantised from q8/q4) to f32 [K][NR]
//            (see `gemm` below).
// Every output element is one f32 sum in k order (the CPU engine sums in double: results agree to
// f32 rounding, not bit for bit).

import type { WasmTarget } from './target.ts';
import { InternalError } from '../../dsl/diagnostics.ts';
import { PRODUCT, QUANT_LAYOUT, XQ_OFFSET } from '../../runtime/wasm/layout.ts';
import { JOB, work } from './job.ts';

export { PRODUCT, QUANT_LAYOUT, XQ_OFFSET };
export { CLOSED, JOB, JOB_FIELDS } from './job.ts';

/** Panel width in output columns: two f32x4 vectors. */
export const NR = 8;

type WeightType = 'f32' | 'bf16';
const BYTES: Record<WeightType, number> = { f32: 4, bf16: 2 };
type QuantType = 'q8' | 'q4';
const QUANT_TYPES: readonly QuantType[] = ['q8', 'q4'];

/** Bytes of one group of one activation row for the integer-dot GEMV: f32 scale, i32 row
 *  correction (8 · Σxq, q4's), 8 bytes unused, then per k-quad the three digits' 4 bytes (high,
 *  middle, low). */
export const XD_GROUP = 112;
/** The integer-dot GEMV's activations: xq in ±XQ_MAX (20 bits), as q8 takes them carried as xq +
 *  XQ_OFFSET in unsigned 7-bit digits (see runtime/wasm/layout.ts), as q4 takes them in balanced
 *  base-128 digits (each in [-64, 63]): those of z = xq + XQ_SIGNED, each less 64. */
const XQ_MAX = (1 << 19) - 1;
const XQ_SIGNED = 64 * ((1 << 14) + (1 << 7) + 1);

/** f16 scale bits -> f32, exactly (scales are finite and >= 0): the 16 bits moved up 13 are an f32
 *  with the f16's exponent field and mantissa, 2^-112 times the value (subnormals and zero included,
 *  as f32 subnormals), so one multiply by 2^112 (exact: a power of two, the result in range). */
const widenScales = (off: number, p: string) => `(f32x4.mul (i32x4.shl (v128.load16x4_u offset=${off} ${p}) (i32.const 13)) (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))`;

const get = (n: string) => `(local.get $${n})`;
const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;

/** The two f32x4 weight vectors of one k step, loaded at `wp` + `off` into locals $w0 and $w1. */
function loadWeights(dt: WeightType, off: number): string {
  if (dt === 'f32') {
    return `(local.set $w0 (v128.load offset=${off} ${get('wp')}))\n(local.set $w1 (v128.load offset=${off + 16} ${get('wp')}))`;
  }
  // bf16 -> f32 is the 16 bits moved to the top of a 32-bit lane: interleave with zeros
  return `(local.set $wv (v128.load offset=${off} ${get('wp')}))
(local.set $w0 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (v128.const i32x4 0 0 0 0) ${get('wv')}))
(local.set $w1 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (v128.const i32x4 0 0 0 0) ${get('wv')}))`;
}

/**
 * mk_<dt>_<m>(xp, wp, yp, K, ldyb): rows 0..m-1 of one row tile times one panel. Accumulators
 * acc<u>_<r>_<c> (unroll set u, row r, vector c); with few rows (the GEMV case) k is unrolled by
 * `unroll` onto separate accumulator sets, so the adds do not wait on each other. With `widenTo`
 * (bf16), mkw_bf16_<m>(…, sp) also stores the weights it widened at `sp` in the f32 panel layout, so
 * the first tile of a cache block widens the panel for the tiles after it at the cost of two stores.
 */
function microKernel(dt: WeightType, m: number, mr: number, unroll: number, fma: boolean, widenTo = false): string {
  const wb = NR * BYTES[dt];
  const accs: string[] = [];
  for (let u = 0; u < unroll; u++) for (let r = 0; r < m; r++) for (let c = 0; c < 2; c++) accs.push(`$acc${u}_${r}_${c}`);
  const step = (u: number) => {
    const lines = [loadWeights(dt, u * wb)];
    if (widenTo) lines.push(`(v128.store offset=${u * NR * 4} ${get('sp')} ${get('w0')})`, `(v128.store offset=${u * NR * 4 + 16} ${get('sp')} ${get('w1')})`);
    for (let r = 0; r < m; r++) {
      lines.push(`(local.set $xv (v128.load32_splat offset=${(u * mr + r) * 4} ${get('xp')}))`);
      for (let c = 0; c < 2; c++) {
        const acc = get(`acc${u}_${r}_${c}`), w = get(`w${c}`);
        lines.push(`(local.set $acc${u}_${r}_${c} ${fma ? `(f32x4.relaxed_madd ${get('xv')} ${w} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${get('xv')} ${w}))`})`);
      }
    }
    return lines.join('\n');
  };
  const loop = (name: string, u: number) => `(block $${name}_end (loop $${name}
  (br_if $${name}_end (i32.gt_s ${add(get('k'), u)} ${get('K')}))
  ${Array.from({ length: u }, (_, i) => step(i)).join('\n')}
  (local.set $xp ${add(get('xp'), u * mr * 4)})
  (local.set $wp ${add(get('wp'), u * wb)})${widenTo ? `
  (local.set $sp ${add(get('sp'), u * NR * 4)})` : ''}
  (local.set $k ${add(get('k'), u)})
  (br $${name})))`;
  const stores: string[] = [];
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < 2; c++) {
      let sum = get(`acc0_${r}_${c}`);
      for (let u = 1; u < unroll; u++) sum = `(f32x4.add ${sum} ${get(`acc${u}_${r}_${c}`)})`;
      stores.push(`(v128.store offset=${c * 16} ${r ? add(get('yp'), `(i32.mul (i32.const ${r}) ${get('ldyb')})`) : get('yp')} ${sum})`);
    }
  }
  return `(func $mk${widenTo ? 'w' : ''}_${dt}_${m} (param $xp i32) (param $wp i32) (param $yp i32) (param $K i32) (param $ldyb i32)${widenTo ? ' (param $sp i32)' : ''}
  (local $k i32) (local $xv v128) (local $w0 v128) (local $w1 v128) (local $wv v128)
  ${accs.map((a) => `(local ${a} v128)`).join(' ')}
  ${unroll > 1 ? loop('main', unroll) : ''}
  ${loop('tail', 1)}
  ${stores.join('\n  ')})`;
}

/**
 * mv_<dt>(xp, wp, yp, K, panelb): one row times q = `gemvPanels` adjacent panels (a GEMV: decode
 * with one token). The panels are read as q streams side by side: one broadcast x serves q·NR
 * columns, and the 2q accumulators acc<j>_<c> (panel j, vector c) are chains enough that the
 * multiply-adds do not wait on each other.
 */
function gemvKernel(dt: WeightType, q: number, mr: number, fma: boolean): string {
  const wb = NR * BYTES[dt];
  const accs: string[] = [];
  for (let j = 0; j < q; j++) for (let c = 0; c < 2; c++) accs.push(`$acc${j}_${c}`);
  const body = [`(local.set $xv (v128.load32_splat ${get('xp')}))`];
  for (let j = 0; j < q; j++) {
    body.push(loadWeights(dt, 0).replaceAll('$wp', `$wp${j}`));
    for (let c = 0; c < 2; c++) {
      const a = `acc${j}_${c}`, acc = get(a), w = get(`w${c}`);
      body.push(`(local.set $${a} ${fma ? `(f32x4.relaxed_madd ${get('xv')} ${w} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${get('xv')} ${w}))`})`);
    }
  }
  const stores: string[] = [];
  for (let j = 0; j < q; j++) for (let c = 0; c < 2; c++) stores.push(`(v128.store offset=${(j * 2 + c) * 16} ${get('yp')} ${get(`acc${j}_${c}`)})`);
  return `(func $mv_${dt} (param $xp i32) (param $wp i32) (param $yp i32) (param $K i32) (param $panelb i32)
  (local $k i32) (local $xv v128) (local $w0 v128) (local $w1 v128) (local $wv v128)
  ${Array.from({ length: q }, (_, j) => `(local $wp${j} i32)`).join(' ')}
  ${accs.map((a) => `(local ${a} v128)`).join(' ')}
  ${Array.from({ length: q }, (_, j) => `(local.set $wp${j} ${j ? add(get('wp'), `(i32.mul ${get('panelb')} (i32.const ${j}))`) : get('wp')})`).join('\n  ')}
  (block $k_end (loop $k_loop
  (br_if $k_end (i32.ge_s ${get('k')} ${get('K')}))
  ${body.join('\n  ')}
  (local.set $xp ${add(get('xp'), mr * 4)})
  ${Array.from({ length: q }, (_, j) => `(local.set $wp${j} ${add(get(`wp${j}`), wb)})`).join('\n  ')}
  (local.set $k ${add(get('k'), 1)})
  (br $k_loop)))
  ${stores.join('\n  ')})`;
}

/** $xp and $yp of the row tile at row $t, panel $p. */
const tileAt = () => `(local.set $xp ${add(get('x'), `(i32.shl (i32.mul ${get('t')} ${get('K')}) (i32.const 2))`)})
        (local.set $yp ${add(get('y'), `(i32.add (i32.mul ${get('t')} ${get('ldyb')}) (i32.mul ${get('p')} (i32.const ${NR * 4})))`)})`;

/** The row tiles [tb, te) of one panel, whose weights start at `wp`, with the micro-kernels of `dt`;
 *  the last tile takes the micro-kernel of its row count. Labels are suffixed with `dt`. */
function tiles(dt: WeightType, mr: number, wp: string, from = get('tb')): string {
  const cases = Array.from({ length: mr }, (_, i) => i + 1);
  // br_table on m - 1: case blocks nested innermost-first
  let body = `(br_table ${cases.map((m) => `$m${m}_${dt}`).join(' ')} (i32.sub ${get('m')} (i32.const 1)))`;
  for (const m of cases) {
    body = `(block $m${m}_${dt}\n${body})\n(call $mk_${dt}_${m} ${get('xp')} ${get('wp')} ${get('yp')} ${get('K')} ${get('ldyb')})\n(br $tiles_next_${dt})`;
  }
  return `(local.set $wp ${wp})
      (local.set $t ${from})
      (block $tiles_end_${dt} (loop $tiles_${dt}
        (br_if $tiles_end_${dt} (i32.ge_s ${get('t')} ${get('te')}))
        (local.set $m (i32.sub ${get('te')} ${get('t')}))
        (if (i32.gt_s ${get('m')} (i32.const ${mr})) (then (local.set $m (i32.const ${mr}))))
        ${tileAt()}
        (block $tiles_next_${dt}
          ${body})
        (local.set $t ${add(get('t'), mr)})
        (br $tiles_${dt})))`;
}

/**
 * gemm_<dt>(x, w, y, T, K, ldy, p0, p1[, s]): panels [p0, p1) of y = x·Wᵀ for all T rows. Rows go
 * in blocks of `tokenBlock` (a block of x stays in cache while every panel passes over it), each
 * block in tiles of MR rows. bf16 takes `s`, the calling thread's own K·NR·4 bytes: in a block of at
 * least `widenFrom` rows (>= MR) the first tile widens each panel there (mkw) and the other tiles
 * run the f32 micro-kernels over it; fewer rows widen in registers, tile by tile.
 */
function gemm(dt: WeightType, t: WasmTarget): string {
  const mr = t.rowsPerTile;
  const panelAt = add(get('w'), `(i32.mul ${get('p')} ${get('panelb')})`);
  const perPanel = dt === 'f32' ? tiles('f32', mr, panelAt) : `(if (i32.ge_s (i32.sub ${get('te')} ${get('tb')}) (i32.const ${t.widenFrom}))
      (then
      ;; the first tile widens the panel into s as it goes; the others read s
      (local.set $t ${get('tb')})
      ${tileAt()}
      (call $mkw_bf16_${mr} ${get('xp')} ${panelAt} ${get('yp')} ${get('K')} ${get('ldyb')} ${get('s')})
      ${tiles('f32', mr, get('s'), add(get('tb'), mr))})
      (else
      ${tiles('bf16', mr, panelAt)}))`;
  return `(func $gemm_${dt} (export "gemm_${dt}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32)${dt === 'bf16' ? ' (param $s i32)' : ''}
  (local $tb i32) (local $te i32) (local $p i32) (local $t i32) (local $m i32) (local $xp i32) (local $wp i32) (local $yp i32) (local $ldyb i32) (local $panelb i32)
  (local.set $ldyb (i32.shl ${get('ldy')} (i32.const 2)))
  (local.set $panelb (i32.mul ${get('K')} (i32.const ${NR * BYTES[dt]})))${t.gemvPanels > 1 ? `
  ;; one row: q panels at a time, then the rest one by one below
  (if (i32.eq ${get('T')} (i32.const 1)) (then
    (local.set $p ${get('p0')})
    (block $mv_end (loop $mv
      (br_if $mv_end (i32.gt_s ${add(get('p'), t.gemvPanels)} ${get('p1')}))
      (call $mv_${dt} ${get('x')} ${add(get('w'), `(i32.mul ${get('p')} ${get('panelb')})`)} ${add(get('y'), `(i32.mul ${get('p')} (i32.const ${NR * 4}))`)} ${get('K')} ${get('panelb')})
      (local.set $p ${add(get('p'), t.gemvPanels)})
      (br $mv)))
    (local.set $p0 ${get('p')})))` : ''}
  (block $blocks_end (loop $blocks
    (br_if $blocks_end (i32.ge_s ${get('tb')} ${get('T')}))
    (local.set $te ${add(get('tb'), t.tokenBlock)})
    (if (i32.gt_s ${get('te')} ${get('T')}) (then (local.set $te ${get('T')})))
    (local.set $p ${get('p0')})
    (block $panels_end (loop $panels
      (br_if $panels_end (i32.ge_s ${get('p')} ${get('p1')}))
      ${perPanel}
      (local.set $p ${add(get('p'), 1)})
      (br $panels)))
    (local.set $tb ${get('te')})
    (br $blocks))))`;
}


/** Byte indices of an i8x16.shuffle picking f32 lanes `l` (0-3 of a, 4-7 of b). */
const lanes = (...l: number[]) => l.flatMap((i) => [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]).join(' ');

/** The two i8x16 halves of k-quad `q` (columns 0-3, 4-7) into $va, $vb: q8 as stored; q4 nibbles
 *  unpacked to 0..15, then less 8 where `signed` (the dequantising path) or left as code + 8. */
function loadCodes(f: QuantType, q: number, signed: boolean): string {
  if (f === 'q8') return `(local.set $va (v128.load offset=${q * 32} ${get('wp')}))\n(local.set $vb (v128.load offset=${q * 32 + 16} ${get('wp')}))`;
  const lo = `(v128.and ${get('v')} (v128.const i8x16 ${Array(16).fill(15).join(' ')}))`, hi = `(i8x16.shr_u ${get('v')} (i32.const 4))`;
  const eight = `(v128.const i8x16 ${Array(16).fill(8).join(' ')})`;
  const fix = (e: string) => (signed ? `(i8x16.sub ${e} ${eight})` : e);
  return `(local.set $v (v128.load offset=${q * 16} ${get('wp')}))\n(local.set $va ${fix(lo)})\n(local.set $vb ${fix(hi)})`;
}

/**
 * dq_<f>(wp, sp, K): one panel of q8/q4 codes dequantised to f32 at sp in the f32 panel layout
 * [K][NR]. A half's 16 codes widen (i8 → i16 → i32 → f32) to four vectors, one column × 4 k each,
 * transposed by shuffles to one k × 4 columns each and multiplied by the columns' scales: value =
 * f32(code) · scale, the one rounding runtime/quant.ts defines (exact), so the f32 micro-kernels
 * over it compute what the reference does.
 */
function dequantKernel(f: QuantType): string {
  const L = QUANT_LAYOUT[f];
  const half = (v: string, s: string, off: number) => {
    const lines = [`(local.set $lo (i16x8.extend_low_i8x16_s ${get(v)}))`, `(local.set $hi (i16x8.extend_high_i8x16_s ${get(v)}))`];
    ['lo', 'lo', 'hi', 'hi'].forEach((h, c) => lines.push(`(local.set $c${c} (f32x4.convert_i32x4_s (i32x4.extend_${c % 2 ? 'high' : 'low'}_i16x8_s ${get(h)})))`));
    lines.push(`(local.set $t0 (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${get('c0')} ${get('c1')}))`, `(local.set $t1 (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${get('c0')} ${get('c1')}))`,
      `(local.set $t2 (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${get('c2')} ${get('c3')}))`, `(local.set $t3 (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${get('c2')} ${get('c3')}))`);
    const rows = [['t0', 't2', lanes(0, 1, 4, 5)], ['t0', 't2', lanes(2, 3, 6, 7)], ['t1', 't3', lanes(0, 1, 4, 5)], ['t1', 't3', lanes(2, 3, 6, 7)]];
    rows.forEach(([a, b, l], j) => lines.push(`(v128.store offset=${off + j * NR * 4} ${get('sp')} (f32x4.mul (i8x16.shuffle ${l} ${get(a!)} ${get(b!)}) ${get(s)}))`));
    return lines.join('\n  ');
  };
  const quads: string[] = [];
  for (let q = 0; q < 8; q++) quads.push(loadCodes(f, q, true), half('va', 's0', q * 4 * NR * 4), half('vb', 's1', q * 4 * NR * 4 + 16));
  return `(func $dq_${f} (param $wp i32) (param $sp i32) (param $K i32)
  (local $g i32) (local $s0 v128) (local $s1 v128) (local $v v128) (local $va v128) (local $vb v128) (local $lo v128) (local $hi v128)
  (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
  (block $g_end (loop $g_loop
  (br_if $g_end (i32.ge_s ${get('g')} (i32.shr_s ${get('K')} (i32.const 5))))
  (local.set $s0 ${widenScales(L.scales, get('wp'))})
  (local.set $s1 ${widenScales(L.scales + 8, get('wp'))})
  ${quads.join('\n  ')}
  (local.set $wp ${add(get('wp'), L.group)})
  (local.set $sp ${add(get('sp'), 32 * NR * 4)})
  (local.set $g ${add(get('g'), 1)})
  (br $g_loop))))`;
}

/**
 * mvi_<f>(xd, wp, yp, G): one activation row times one panel of q8/q4 codes by integer dot
 * products. The row comes quantised per group (runtime/wasm/kernels.ts `digits`): xq = round(x /
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
 * of its group's maximum (relative 2^-20) and f32 sums per group. The k-quads are a loop, one per
 * iteration: unrolled eight to a group, V8 11.3 (Node 20) loaded every operand at the group's
 * start and spilled most of them (one thread, CPU time: q4 13 → 16, q8 9 → 15 G weights/s).
 * (i32x4.relaxed_dot_i8x16_i7x16_add_s would fold the widening and the add, but Node 20's V8
 * computes it wrongly in its baseline tier, twice the dot and the addend dropped, and its
 * optimising tier emits the same three instructions as q8's widening here, no vpdpbusd, on this
 * AVX512-VNNI machine.)
 */
function dotKernel(f: QuantType, fma: boolean): string {
  const L = QUANT_LAYOUT[f];
  // the i8 operand first: q8's codes, q4's signed digits
  const dot = (w: string, x: string) => (f === 'q8' ? `(i16x8.relaxed_dot_i8x16_i7x16_s ${get(w)} ${get(x)})` : `(i16x8.relaxed_dot_i8x16_i7x16_s ${get(x)} ${get(w)})`);
  // q8's pair sums widen by a multiply-add with ones (in a local: a constant operand V8 rebuilds per use)
  const acc = (a: string, e: string, first: boolean) => {
    const v = f === 'q4' ? e : `(i32x4.dot_i16x8_s ${e} ${get('c1')})`;
    return `(local.set $${a} ${first ? v : `(${f === 'q4' ? 'i16x8' : 'i32x4'}.add ${get(a)} ${v})`})`;
  };
  // one k-quad: one half's codes at a time, so fewer vectors are live at once
  const qb = f === 'q8' ? 32 : 16;
  // the group's first k-quad sets the accumulators (no zeroing, no adds), the loop adds the other seven
  const quad = (first: boolean) => {
    const lines = [...['x2', 'x1', 'x0'].map((x, d) => `(local.set $${x} (v128.load32_splat offset=${d * 4} ${get('xq')}))`)];
    lines.push(f === 'q8' ? `(local.set $va (v128.load ${get('wq')}))` : `(local.set $v (v128.load ${get('wq')}))\n(local.set $va (v128.and ${get('v')} ${get('m15')}))`);
    for (const d of [2, 1, 0]) lines.push(acc(`a${d}`, dot('va', `x${d}`), first));
    // q4's high nibbles: a 16-bit shift and the mask (i8x16.shr_u is three instructions and a constant on x64)
    lines.push(f === 'q8' ? `(local.set $vb (v128.load offset=16 ${get('wq')}))` : `(local.set $vb (v128.and (i16x8.shr_u ${get('v')} (i32.const 4)) ${get('m15')}))`);
    for (const d of [2, 1, 0]) lines.push(acc(`b${d}`, dot('vb', `x${d}`), first));
    return lines.join('\n  ');
  };
  const sum = (h: 'a' | 'b', i: number) => {
    // q4: each i16 pair sum widens times its digit's weight in one multiply-add (2 · 15360 · 2^14 < 2^31)
    let e = f === 'q4' ? `(i32x4.add (i32x4.add (i32x4.dot_i16x8_s ${get(`${h}2`)} ${get('c14')}) (i32x4.dot_i16x8_s ${get(`${h}1`)} ${get('c7')})) (i32x4.dot_i16x8_s ${get(`${h}0`)} ${get('c1')}))`
      : `(i32x4.add (i32x4.add (i32x4.shl ${get(`${h}2`)} (i32.const 14)) (i32x4.shl ${get(`${h}1`)} (i32.const 7))) ${get(`${h}0`)})`;
    e = f === 'q8' ? `(i32x4.sub ${e} (i32x4.shl (v128.load16x4_s offset=${L.corr! + 8 * i} ${get('wp')}) (i32.const 20)))`
      : `(i32x4.sub ${e} (v128.load32_splat offset=4 ${get('xd')}))`;
    const prod = `(f32x4.mul (f32x4.convert_i32x4_s ${e}) ${widenScales(L.scales + 8 * i, get('wp'))})`;
    // y in two locals over the groups, stored once (y in memory, loaded and stored per group, was
    // 2-5% slower; the k-quad loop does not spill with them live)
    const y = get(`y${i}`);
    return `(local.set $y${i} ${fma ? `(f32x4.relaxed_madd ${prod} ${get('sx')} ${y})` : `(f32x4.add ${y} (f32x4.mul ${prod} ${get('sx')}))`})`;
  };
  const splat16 = (v: number) => `(v128.const i16x8 ${Array(8).fill(v).join(' ')})`;
  return `(func $mvi_${f} (param $xd i32) (param $wp i32) (param $yp i32) (param $G i32)
  (local $g i32) (local $xq i32) (local $wq i32) (local $we i32) (local $a2 v128) (local $a1 v128) (local $a0 v128) (local $b2 v128) (local $b1 v128) (local $b0 v128)
  (local $x2 v128) (local $x1 v128) (local $x0 v128) (local $v v128) (local $va v128) (local $vb v128) (local $sx v128) (local $m15 v128) (local $c1 v128) (local $c7 v128) (local $c14 v128) (local $y0 v128) (local $y1 v128)
  (local.set $m15 (v128.const i8x16 ${Array(16).fill(15).join(' ')}))
  (local.set $c1 ${splat16(1)}) (local.set $c7 ${splat16(1 << 7)}) (local.set $c14 ${splat16(1 << 14)})
  (block $g_end (loop $g_loop
  (br_if $g_end (i32.ge_s ${get('g')} ${get('G')}))
  (local.set $xq ${add(get('xd'), 16)})
  (local.set $wq ${get('wp')})
  ${quad(true)}
  (local.set $xq ${add(get('xd'), 28)})
  (local.set $wq ${add(get('wp'), qb)})
  (local.set $we ${add(get('wp'), L.codes)})
  (loop $q_loop
  ${quad(false)}
  (local.set $xq ${add(get('xq'), 12)})
  (local.set $wq ${add(get('wq'), qb)})
  (br_if $q_loop (i32.lt_u ${get('wq')} ${get('we')})))
  (local.set $sx (v128.load32_splat ${get('xd')}))
  ${sum('a', 0)}
  ${sum('b', 1)}
  (local.set $wp ${add(get('wp'), L.group)})
  (local.set $xd ${add(get('xd'), XD_GROUP)})
  (local.set $g ${add(get('g'), 1)})
  (br $g_loop)))
  (v128.store ${get('yp')} ${get('y0')})
  (v128.store offset=16 ${get('yp')} ${get('y1')}))`;
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
function digitsKernel(): string {
  const quads: string[] = [];
  for (let q = 0; q < 8; q++) {
    quads.push(`(local.set $z (i32x4.add (i32x4.max_s (i32x4.min_s (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=${q * 16} ${get('xp')}) ${get('inv')})))
      (v128.const i32x4 ${Array(4).fill(XQ_MAX).join(' ')})) (v128.const i32x4 ${Array(4).fill(-XQ_MAX).join(' ')})) ${get('off')}))`,
    `(local.set $zs (i32x4.add ${get('zs')} ${get('z')}))`);
    const digit = ['(i32x4.shr_u $z (i32.const 14))', '(v128.and (i32x4.shr_u $z (i32.const 7)) $m)', '(v128.and $z $m)'].map((e) => `(i32x4.sub ${e} ${get('b')})`.replaceAll('$z', get('z')).replaceAll('$m', get('m127')));
    digit.forEach((e, j) => quads.push(`(local.set $n (i16x8.narrow_i32x4_s ${e} ${e}))`, `(v128.store32_lane offset=${16 + q * 12 + j * 4} 0 ${get('dp')} (i8x16.narrow_i16x8_s ${get('n')} ${get('n')}))`));
  }
  const lane = (v: string, op: string, ty: 'f32' | 'i32') => `(${ty}.${op} (${ty}.${op} (${ty}x4.extract_lane 0 ${v}) (${ty}x4.extract_lane 1 ${v})) (${ty}.${op} (${ty}x4.extract_lane 2 ${v}) (${ty}x4.extract_lane 3 ${v})))`;
  return `(func (export "digits") (param $x i32) (param $ldx i32) (param $T i32) (param $K i32) (param $xd i32) (param $signed i32) (result i32)
  (local $t i32) (local $g i32) (local $xp i32) (local $dp i32) (local $o i32) (local $amax f32) (local $sx f32) (local $mv v128) (local $inv v128) (local $z v128) (local $zs v128) (local $n v128) (local $m127 v128) (local $off v128) (local $b v128)
  (local.set $m127 (v128.const i32x4 127 127 127 127))
  (local.set $o (select (i32.const ${XQ_SIGNED}) (i32.const ${XQ_OFFSET}) ${get('signed')}))
  (local.set $off (i32x4.splat ${get('o')}))
  (local.set $b (i32x4.splat (select (i32.const 64) (i32.const 0) ${get('signed')})))
  (local.set $dp ${get('xd')})
  (block $t_end (loop $t_loop
    (br_if $t_end (i32.ge_s ${get('t')} ${get('T')}))
    (local.set $g (i32.const 0))
    (block $g_end (loop $g_loop
      (br_if $g_end (i32.ge_s (i32.shl ${get('g')} (i32.const 5)) ${get('K')}))
      (local.set $xp ${add(get('x'), `(i32.shl (i32.add (i32.mul ${get('t')} ${get('ldx')}) (i32.shl ${get('g')} (i32.const 5))) (i32.const 2))`)})
      (local.set $mv (f32x4.abs (v128.load ${get('xp')})))
      ${Array.from({ length: 7 }, (_, q) => `(local.set $mv (f32x4.max ${get('mv')} (f32x4.abs (v128.load offset=${(q + 1) * 16} ${get('xp')}))))`).join('\n      ')}
      (local.set $amax ${lane(get('mv'), 'max', 'f32')})
      ;; NaN fails the comparison, an infinity passes it
      (if (i32.eqz (f32.lt ${get('amax')} (f32.const inf))) (then (return (i32.const 0))))
      (local.set $sx (f32.div ${get('amax')} (f32.const ${XQ_MAX})))
      (local.set $inv (f32x4.splat (select (f32.div (f32.const 1) ${get('sx')}) (f32.const 0) (f32.gt ${get('sx')} (f32.const 0)))))
      (local.set $zs (v128.const i32x4 0 0 0 0))
      ${quads.join('\n      ')}
      (f32.store ${get('dp')} ${get('sx')})
      ;; 8 · Σxq = 8 · (Σz - 32 · o), wrapping
      (i32.store offset=4 ${get('dp')} (i32.shl (i32.sub ${lane(get('zs'), 'add', 'i32')} (i32.shl ${get('o')} (i32.const 5))) (i32.const 3)))
      (local.set $dp ${add(get('dp'), XD_GROUP)})
      (local.set $g ${add(get('g'), 1)})
      (br $g_loop)))
    (local.set $t ${add(get('t'), 1)})
    (br $t_loop)))
  (i32.const 1))`;
}

/** dot_<f>(xd, w, y, T, K, ldy, p0, p1): panels [p0, p1) for T rows by `mvi`, rows inner (a
 *  panel's groups stay in cache for the rows after the first). */
function dotProduct(f: QuantType): string {
  return `(func $dot_${f} (export "dot_${f}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32)
  (local $G i32) (local $p i32) (local $t i32) (local $wp i32)
  (local.set $G (i32.shr_s ${get('K')} (i32.const 5)))
  (local.set $p ${get('p0')})
  (block $p_end (loop $p_loop
    (br_if $p_end (i32.ge_s ${get('p')} ${get('p1')}))
    (local.set $wp ${add(get('w'), `(i32.mul ${get('p')} (i32.mul ${get('G')} (i32.const ${QUANT_LAYOUT[f].group})))`)})
    (local.set $t (i32.const 0))
    (block $t_end (loop $t_loop
      (br_if $t_end (i32.ge_s ${get('t')} ${get('T')}))
      (call $mvi_${f} ${add(get('x'), `(i32.mul ${get('t')} (i32.mul ${get('G')} (i32.const ${XD_GROUP})))`)} ${get('wp')}
        ${add(get('y'), `(i32.shl (i32.add (i32.mul ${get('t')} ${get('ldy')}) (i32.mul ${get('p')} (i32.const ${NR}))) (i32.const 2))`)} ${get('G')})
      (local.set $t ${add(get('t'), 1)})
      (br $t_loop)))
    (local.set $p ${add(get('p'), 1)})
    (br $p_loop))))`;
}

/** gemm_<f>(x, w, y, T, K, ldy, p0, p1, s): as gemm_f32 over x tiles, each panel of q8/q4 codes
 *  dequantised once per cache block into the thread's scratch `s` (dq), then the f32 micro-kernels. */
function gemmQuant(f: QuantType, t: WasmTarget): string {
  const mr = t.rowsPerTile;
  return `(func $gemm_${f} (export "gemm_${f}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32) (param $s i32)
  (local $tb i32) (local $te i32) (local $p i32) (local $t i32) (local $m i32) (local $xp i32) (local $wp i32) (local $yp i32) (local $ldyb i32) (local $panelb i32)
  (local.set $ldyb (i32.shl ${get('ldy')} (i32.const 2)))
  (local.set $panelb (i32.mul (i32.shr_s ${get('K')} (i32.const 5)) (i32.const ${QUANT_LAYOUT[f].group})))
  (block $blocks_end (loop $blocks
    (br_if $blocks_end (i32.ge_s ${get('tb')} ${get('T')}))
    (local.set $te ${add(get('tb'), t.tokenBlock)})
    (if (i32.gt_s ${get('te')} ${get('T')}) (then (local.set $te ${get('T')})))
    (local.set $p ${get('p0')})
    (block $panels_end (loop $panels
      (br_if $panels_end (i32.ge_s ${get('p')} ${get('p1')}))
      (call $dq_${f} ${add(get('w'), `(i32.mul ${get('p')} ${get('panelb')})`)} ${get('s')} ${get('K')})
      ${tiles('f32', mr, get('s'))}
      (local.set $p ${add(get('p'), 1)})
      (br $panels)))
    (local.set $tb ${get('te')})
    (br $blocks))))`;
}

/** The whole module: imports the shared memory, exports the products, the tile constants and
 *  which variant it is (FMA: 1 when its multiply-adds are fused; QUANT_DOT_ROWS: rows up to which
 *  q8/q4 products take the integer-dot GEMV, 0 where it has none). */
export function renderWasmKernels(t: WasmTarget): string {
  if (t.tokenBlock % t.rowsPerTile !== 0) throw new InternalError(`wasm target: tokenBlock ${t.tokenBlock} is not a multiple of rowsPerTile ${t.rowsPerTile}`);
  if (t.widenFrom < t.rowsPerTile) throw new InternalError(`wasm target: widenFrom ${t.widenFrom} is below rowsPerTile ${t.rowsPerTile} (the first tile of a widened block is whole)`);
  if (t.quantDotRows > 0 && !t.fma) throw new InternalError('wasm target: the integer-dot GEMV (quantDotRows) needs relaxed SIMD, as the fma variant has');
  const dts: WeightType[] = ['f32', 'bf16'];
  const funcs: string[] = [];
  for (const dt of dts) {
    for (let m = 1; m <= t.rowsPerTile; m++) funcs.push(microKernel(dt, m, t.rowsPerTile, m <= 2 ? t.gemvUnroll : 1, t.fma));
    if (dt === 'bf16') funcs.push(microKernel(dt, t.rowsPerTile, t.rowsPerTile, 1, t.fma, true));
    if (t.gemvPanels > 1) funcs.push(gemvKernel(dt, t.gemvPanels, t.rowsPerTile, t.fma));
    funcs.push(gemm(dt, t));
  }
  for (const f of QUANT_TYPES) {
    funcs.push(dequantKernel(f), gemmQuant(f, t));
    if (t.quantDotRows > 0) funcs.push(dotKernel(f, t.fma), dotProduct(f));
  }
  if (t.quantDotRows > 0) funcs.push(digitsKernel());
  funcs.push(work(t.quantDotRows > 0));
  return `;; archc wasm kernels${t.fma ? ' (fused multiply-add: relaxed SIMD)' : ''}: matrix products over packed weight panels (generated; see codegen/wasm/kernels.ts)
(module
(import "env" "memory" (memory 1 65536 shared))
(global (export "MR") i32 (i32.const ${t.rowsPerTile}))
(global (export "NR") i32 (i32.const ${NR}))
(global (export "SPLIT_FROM") i32 (i32.const ${t.splitFrom}))
(global (export "FMA") i32 (i32.const ${t.fma ? 1 : 0}))
(global (export "JOB") i32 (i32.const ${JOB}))
(global (export "GEMV_PANELS") i32 (i32.const ${t.gemvPanels}))
(global (export "QUANT_DOT_ROWS") i32 (i32.const ${t.quantDotRows}))
${funcs.join('\n')}
)
`;
}
