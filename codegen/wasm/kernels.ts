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
import { PRODUCT, QUANT_LAYOUT, TILE_READ_AHEAD, TILE_READ_LINES, XQ_OFFSET } from '../../runtime/wasm/layout.ts';
import { JOB, work } from './job.ts';
import { ADDR32, type Addr, MEMORY64_PAGES, addrOf } from './addr.ts';
import { PAIRED, digitsKernel, digits8Kernel, dotKernel, dotProduct, round8Kernel, widenScales } from './dot.ts';
import { gemm8Kernels } from './gemm8.ts';
import { touchLinesEvery } from './wat.ts';

export { PRODUCT, QUANT_LAYOUT, XQ_OFFSET };
export { XD_GROUP, XD8_GROUP } from './dot.ts';
export { CLOSED, JOB, JOB_FIELDS } from './job.ts';

/** Panel width in output columns: two f32x4 vectors. */
export const NR = 8;

type WeightType = 'f32' | 'bf16';
const BYTES: Record<WeightType, number> = { f32: 4, bf16: 2 };
type QuantType = 'q8' | 'q4';
const QUANT_TYPES: readonly QuantType[] = ['q8', 'q4'];



const get = (n: string) => `(local.get $${n})`;
const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;

/** The two f32x4 weight vectors of one k step, loaded at `wp` + `off` into locals $w0 and $w1. */
function loadWeights(dt: WeightType, off: number, A: Addr, wp = 'wp'): string {
  if (dt === 'f32') {
    return `(local.set $w0 (v128.load offset=${off} ${A.w(get(wp))}))\n(local.set $w1 (v128.load offset=${off + 16} ${A.w(get(wp))}))`;
  }
  // bf16 -> f32 is the 16 bits moved to the top of a 32-bit lane: interleave with zeros
  return `(local.set $wv (v128.load offset=${off} ${A.w(get(wp))}))
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
function microKernel(dt: WeightType, m: number, mr: number, unroll: number, fma: boolean, widenTo = false, A: Addr = ADDR32, readAhead = 0): string {
  const wb = NR * BYTES[dt];
  const rowAt = (r: number) => A.low(r ? add(get('yp'), `(i32.mul (i32.const ${r}) ${get('ldyb')})`) : get('yp'));
  const accs: string[] = [];
  for (let u = 0; u < unroll; u++) for (let r = 0; r < m; r++) for (let c = 0; c < 2; c++) accs.push(`$acc${u}_${r}_${c}`);
  const step = (u: number, of: number) => {
    const lines = [loadWeights(dt, u * wb, A)];
    // a tile that reads its panel from memory (bf16: the widening tile, or each of fewer rows): every
    // TILE_READ_LINES·64 bytes of the panel it loads and drops one byte of each of the next
    // TILE_READ_LINES lines `readAhead` bytes on, all at once (runtime/wasm/layout.ts)
    if (readAhead && u === 0) {
      const every = TILE_READ_LINES * 64 / wb;
      if (readAhead > TILE_READ_AHEAD || every % unroll) throw new InternalError(`mk_${dt}_${m}: reads ${readAhead} bytes ahead (at most ${TILE_READ_AHEAD}) every ${every} k steps, k unrolled by ${unroll}`);
      lines.push(touchLinesEvery('k', every, A.w(get('wp')), readAhead, TILE_READ_LINES, A.low));
    }
    if (widenTo) lines.push(`(v128.store offset=${u * NR * 4} ${A.low(get('sp'))} ${get('w0')})`, `(v128.store offset=${u * NR * 4 + 16} ${A.low(get('sp'))} ${get('w1')})`);
    for (let r = 0; r < m; r++) {
      lines.push(`(local.set $xv (v128.load32_splat offset=${(u * mr + r) * 4} ${A.low(get('xp'))}))`);
      for (let c = 0; c < 2; c++) {
        const acc = get(`acc${u}_${r}_${c}`), w = get(`w${c}`);
        lines.push(`(local.set $acc${u}_${r}_${c} ${fma ? `(f32x4.relaxed_madd ${get('xv')} ${w} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${get('xv')} ${w}))`})`);
      }
    }
    // rows unrolled: the first step's sums stored where the tile's go (overwritten at the end), else V8
    // loads both steps' operands before the multiply-adds and spills (2 rows: 16 registers; docs/PERF.md)
    if (of > 1 && u === 0 && m > 1) for (let r = 0; r < m; r++) for (let c = 0; c < 2; c++) lines.push(`(v128.store offset=${c * 16} ${rowAt(r)} ${get(`acc0_${r}_${c}`)})`);
    return lines.join('\n');
  };
  const loop = (name: string, u: number) => `(block $${name}_end (loop $${name}
  (br_if $${name}_end (i32.gt_s ${add(get('k'), u)} ${get('K')}))
  ${Array.from({ length: u }, (_, i) => step(i, u)).join('\n')}
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
      stores.push(`(v128.store offset=${c * 16} ${rowAt(r)} ${sum})`);
    }
  }
  return `(func $mk${widenTo ? 'w' : ''}_${dt}_${m} (param $xp i32) (param $wp i32) (param $yp i32) (param $K i32) (param $ldyb i32)${widenTo ? ' (param $sp i32)' : ''}${A.param}
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
function gemvKernel(dt: WeightType, q: number, mr: number, fma: boolean, A: Addr = ADDR32): string {
  const wb = NR * BYTES[dt];
  const accs: string[] = [];
  for (let j = 0; j < q; j++) for (let c = 0; c < 2; c++) accs.push(`$acc${j}_${c}`);
  const body = [`(local.set $xv (v128.load32_splat ${A.low(get('xp'))}))`];
  for (let j = 0; j < q; j++) {
    body.push(loadWeights(dt, 0, A, `wp${j}`));
    for (let c = 0; c < 2; c++) {
      const a = `acc${j}_${c}`, acc = get(a), w = get(`w${c}`);
      body.push(`(local.set $${a} ${fma ? `(f32x4.relaxed_madd ${get('xv')} ${w} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${get('xv')} ${w}))`})`);
    }
  }
  const stores: string[] = [];
  for (let j = 0; j < q; j++) for (let c = 0; c < 2; c++) stores.push(`(v128.store offset=${(j * 2 + c) * 16} ${A.low(get('yp'))} ${get(`acc${j}_${c}`)})`);
  return `(func $mv_${dt} (param $xp i32) (param $wp i32) (param $yp i32) (param $K i32) (param $panelb i32)${A.param}
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
function tiles(dt: WeightType, mr: number, wp: string, from = get('tb'), base = '', end = get('te'), tag: string = dt): string {
  const cases = Array.from({ length: mr }, (_, i) => i + 1);
  // br_table on m - 1: case blocks nested innermost-first
  let body = `(br_table ${cases.map((m) => `$m${m}_${tag}`).join(' ')} (i32.sub ${get('m')} (i32.const 1)))`;
  for (const m of cases) {
    body = `(block $m${m}_${tag}\n${body})\n(call $mk_${dt}_${m} ${get('xp')} ${get('wp')} ${get('yp')} ${get('K')} ${get('ldyb')}${base})\n(br $tiles_next_${tag})`;
  }
  return `(local.set $wp ${wp})
      (local.set $t ${from})
      (block $tiles_end_${tag} (loop $tiles_${tag}
        (br_if $tiles_end_${tag} (i32.ge_s ${get('t')} ${end}))
        (local.set $m (i32.sub ${end} ${get('t')}))
        (if (i32.gt_s ${get('m')} (i32.const ${mr})) (then (local.set $m (i32.const ${mr}))))
        ${tileAt()}
        (block $tiles_next_${tag}
          ${body})
        (local.set $t ${add(get('t'), mr)})
        (br $tiles_${tag})))`;
}

/**
 * mk2_f32_<m>(xp, wp, wq, yp, K, ldyb): rows 0..m-1 of one row tile times two f32 panels, wp and wq
 * (widened into the thread's scratch; `packed`: mk2p, the weight's own panels, read from its base
 * as weights are), whose columns lie side by side in y: 4m accumulators, enough chains for the
 * multiply-adds with k not unrolled, so nothing is stored before the end (see WasmTarget.pairRows).
 * The sums are in k order, one accumulator each.
 */
function pairKernel(m: number, mr: number, fma: boolean, A: Addr, packed = false): string {
  const accs: string[] = [];
  for (let r = 0; r < m; r++) for (let c = 0; c < 4; c++) accs.push(`$acc_${r}_${c}`);
  const at = packed ? A.w : A.low;
  const body = [0, 1, 2, 3].map((c) => `(local.set $w${c} (v128.load offset=${(c % 2) * 16} ${at(get(c < 2 ? 'wp' : 'wq'))}))`);
  for (let r = 0; r < m; r++) {
    body.push(`(local.set $xv (v128.load32_splat offset=${r * 4} ${A.low(get('xp'))}))`);
    for (let c = 0; c < 4; c++) {
      const acc = get(`acc_${r}_${c}`), w = get(`w${c}`);
      body.push(`(local.set $acc_${r}_${c} ${fma ? `(f32x4.relaxed_madd ${get('xv')} ${w} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${get('xv')} ${w}))`})`);
    }
  }
  const rowAt = (r: number) => A.low(r ? add(get('yp'), `(i32.mul (i32.const ${r}) ${get('ldyb')})`) : get('yp'));
  const stores: string[] = [];
  for (let r = 0; r < m; r++) for (let c = 0; c < 4; c++) stores.push(`(v128.store offset=${c * 16} ${rowAt(r)} ${get(`acc_${r}_${c}`)})`);
  return `(func $mk2${packed ? 'p' : ''}_f32_${m} (param $xp i32) (param $wp i32) (param $wq i32) (param $yp i32) (param $K i32) (param $ldyb i32)${packed ? A.param : ''}
  (local $k i32) (local $xv v128) (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128)
  ${accs.map((a) => `(local ${a} v128)`).join(' ')}
  (block $k_end (loop $k_loop
  (br_if $k_end (i32.ge_s ${get('k')} ${get('K')}))
  ${body.join('\n  ')}
  (local.set $xp ${add(get('xp'), mr * 4)})
  (local.set $wp ${add(get('wp'), NR * 4)})
  (local.set $wq ${add(get('wq'), NR * 4)})
  (local.set $k ${add(get('k'), 1)})
  (br $k_loop)))
  ${stores.join('\n  ')})`;
}

/**
 * Panels p and p + 1 (p even) through the thread's scratch, where the block's last tile has
 * 1..pairRows rows: `fill(dst)` puts panel $p at dst in the f32 panel layout (bf16: the block's first
 * tile widening it as it computes; q8/q4: dequantised), p at s and p + 1 at s + K·NR·4; then the
 * whole tiles from row `from` over each, and the last tile over both (mk2); leaves $p at p + 1. Which
 * kernel computes a panel depends on its index and the block only, not on how the threads split the
 * panels (chunks are even: runtime/wasm/kernels.ts), so the sums are the same on any thread count.
 */
function pairedScratch(fill: (dst: string) => string, from: string, mr: number, pairRows: number, A: Addr, tag: string): string {
  const s2 = add(get('s'), `(i32.mul ${get('K')} (i32.const ${NR * 4}))`), full = `(i32.sub ${get('te')} ${get('rem')})`;
  return `${fill(get('s'))}
      (local.set $p ${add(get('p'), 1)})
      ${fill(s2)}
      ${tiles('f32', mr, s2, from, A.zero, full, `${tag}1`)}
      (local.set $p (i32.sub ${get('p')} (i32.const 1)))
      ${tiles('f32', mr, get('s'), from, A.zero, full, `${tag}0`)}
      ${lastPairTile(pairRows, get('s'), s2, full, '')}`;
}

/** The last tile of 1..pairRows rows (from row `full`) over panels p and p + 1 at wp and wq (mk2,
 *  `p` the packed weights' mk2p), then $p at p + 1. */
function lastPairTile(pairRows: number, wp: string, wq: string, full: string, p: '' | 'p', wb = ''): string {
  const cases = Array.from({ length: pairRows }, (_, i) => i + 1);
  let last = `(br_table ${cases.map((m) => `$pm${m}${p}`).join(' ')} (i32.sub ${get('rem')} (i32.const 1)))`;
  for (const m of cases) last = `(block $pm${m}${p}\n${last})\n(call $mk2${p}_f32_${m} ${get('xp')} ${wp} ${wq} ${get('yp')} ${get('K')} ${get('ldyb')}${wb})\n(br $pm_done${p})`;
  return `(local.set $t ${full})
      ${tileAt()}
      (block $pm_done${p}
      ${last})
      (local.set $p ${add(get('p'), 1)})`;
}

/** gemm_f32's panels p and p + 1 (p even) when the block has a whole tile and its last has
 *  1..pairRows rows: the whole tiles over each panel, then the last over both (mk2p); $p at p + 1. */
function pairedF32(mr: number, pairRows: number, panelAt: string, A: Addr): string {
  const full = `(i32.sub ${get('te')} ${get('rem')})`;
  return `${tiles('f32', mr, panelAt, undefined, A.pass, full, 'fpair0')}
      (local.set $p ${add(get('p'), 1)})
      ${tiles('f32', mr, panelAt, undefined, A.pass, full, 'fpair1')}
      (local.set $p (i32.sub ${get('p')} (i32.const 1)))
      ${lastPairTile(pairRows, panelAt, add(panelAt, get('panelb')), full, 'p', A.pass)}`;
}

/**
 * tiles(x, ldx, T, K, out, MR): x's T rows (floats `ldx` apart from byte x) as the products' row
 * tiles [ceil(T/MR)][K][MR] at byte out: row t's k-th float at ((t − t % MR)·K + k·MR + t % MR)·4.
 * Four floats of a row are read at once and stored MR floats apart; rows past T are left as they
 * are (their results are never read). Called before every product over f32 activations, on the
 * calling thread alone, so its cost is not shared: a JS element loop took ~8.5 µs at 8 rows of 768.
 */
function tilesKernel(A: Addr): string {
  const at = (o: number) => A.low(o ? add(get('op'), `(i32.mul ${get('step')} (i32.const ${o}))`) : get('op'));
  return `(func (export "tiles") (param $x i32) (param $ldx i32) (param $T i32) (param $K i32) (param $out i32) (param $MR i32)
  (local $t i32) (local $k i32) (local $xp i32) (local $op i32) (local $step i32) (local $v v128)
  (local.set $step (i32.shl ${get('MR')} (i32.const 2)))
  (block $rows_end (loop $rows
    (br_if $rows_end (i32.ge_u ${get('t')} ${get('T')}))
    (local.set $xp ${add(get('x'), `(i32.shl (i32.mul ${get('t')} ${get('ldx')}) (i32.const 2))`)})
    (local.set $op ${add(get('out'), `(i32.shl (i32.add (i32.mul (i32.sub ${get('t')} (i32.rem_u ${get('t')} ${get('MR')})) ${get('K')}) (i32.rem_u ${get('t')} ${get('MR')})) (i32.const 2))`)})
    (local.set $k (i32.const 0))
    (block $quads_end (loop $quads
      (br_if $quads_end (i32.gt_u ${add(get('k'), 4)} ${get('K')}))
      (local.set $v (v128.load ${A.low(get('xp'))}))
      ${[0, 1, 2, 3].map((l) => `(v128.store32_lane ${l} ${at(l)} ${get('v')})`).join(' ')}
      (local.set $xp ${add(get('xp'), 16)})
      (local.set $op ${add(get('op'), `(i32.shl ${get('step')} (i32.const 2))`)})
      (local.set $k ${add(get('k'), 4)})
      (br $quads)))
    (block $tail_end (loop $tail
      (br_if $tail_end (i32.ge_u ${get('k')} ${get('K')}))
      (f32.store ${A.low(get('op'))} (f32.load ${A.low(get('xp'))}))
      (local.set $xp ${add(get('xp'), 4)})
      (local.set $op ${add(get('op'), get('step'))})
      (local.set $k ${add(get('k'), 1)})
      (br $tail)))
    (local.set $t ${add(get('t'), 1)})
    (br $rows))))`;
}

/** Where panel $p of the weight at $w starts ($panelb bytes a panel). */
const panelAt = add(get('w'), `(i32.mul ${get('p')} ${get('panelb')})`);

/** Whether panel p pairs with p + 1 in this block: p even, p + 1 in range, the last tile 1..pairRows rows. */
const pairsAt = (t: WasmTarget) => `(i32.and (i32.and (i32.eqz (i32.and ${get('p')} (i32.const 1))) (i32.lt_s ${add(get('p'), 1)} ${get('p1')}))
        (i32.lt_u (i32.sub ${get('rem')} (i32.const 1)) (i32.const ${t.pairRows})))`;
/** The same for f32 weights and the dequantised q8/q4 panels, in a block with at least one whole tile. */
const f32Pairs = (t: WasmTarget) => `(i32.and ${pairsAt(t)} (i32.gt_s (i32.sub ${get('te')} ${get('tb')}) (i32.const ${t.rowsPerTile})))`;

/**
 * gemm_<dt>(x, w, y, T, K, ldy, p0, p1[, s]): panels [p0, p1) of y = x·Wᵀ for all T rows. Rows go
 * in blocks of `tokenBlock` (a block of x stays in cache while every panel passes over it), each
 * block in tiles of MR rows. bf16 takes `s`, the calling thread's own 2·K·NR·4 bytes: in a block of at
 * least `widenFrom` rows (>= MR) the first tile widens each panel there (mkw) and the other tiles
 * run the f32 micro-kernels over it (panels in pairs where the last tile is short: pairedScratch);
 * fewer rows widen in registers, tile by tile.
 */
function gemm(dt: WeightType, t: WasmTarget): string {
  const mr = t.rowsPerTile, A = addrOf(t);
  // the block's first tile over panel $p, widening it into dst as it goes
  const widen = (dst: string) => `(local.set $t ${get('tb')})
      ${tileAt()}
      (call $mkw_bf16_${mr} ${get('xp')} ${panelAt} ${get('yp')} ${get('K')} ${get('ldyb')} ${dst}${A.pass})`;
  const single = `${widen(get('s'))}
      ${tiles('f32', mr, get('s'), add(get('tb'), mr), A.zero)}`;
  const pairs = pairsAt(t);
  const perPanel = dt === 'f32' ? (t.pairRows ? `(if ${f32Pairs(t)}
      (then ${pairedF32(mr, t.pairRows, panelAt, A)})
      (else ${tiles('f32', mr, panelAt, undefined, A.pass)}))` : tiles('f32', mr, panelAt, undefined, A.pass)) : `(if (i32.ge_s (i32.sub ${get('te')} ${get('tb')}) (i32.const ${t.widenFrom}))
      (then
      ;; the first tile widens the panel into s as it goes; the others read s
      ${t.pairRows ? `(if ${pairs}
        (then ${pairedScratch(widen, add(get('tb'), mr), mr, t.pairRows, A, 'pair')})
        (else ${single}))` : single})
      (else
      ${tiles('bf16', mr, panelAt, undefined, A.pass)}))`;
  return `(func $gemm_${dt} (export "gemm_${dt}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32)${dt === 'bf16' ? ' (param $s i32)' : ''}${A.param}
  (local $tb i32) (local $te i32) (local $p i32) (local $t i32) (local $m i32) (local $xp i32) (local $wp i32) (local $yp i32) (local $ldyb i32) (local $panelb i32) (local $rem i32)
  (local.set $ldyb (i32.shl ${get('ldy')} (i32.const 2)))
  (local.set $panelb (i32.mul ${get('K')} (i32.const ${NR * BYTES[dt]})))${t.gemvPanels > 1 ? `
  ;; one row: q panels at a time, then the rest one by one below
  (if (i32.eq ${get('T')} (i32.const 1)) (then
    (local.set $p ${get('p0')})
    (block $mv_end (loop $mv
      (br_if $mv_end (i32.gt_s ${add(get('p'), t.gemvPanels)} ${get('p1')}))
      (call $mv_${dt} ${get('x')} ${add(get('w'), `(i32.mul ${get('p')} ${get('panelb')})`)} ${add(get('y'), `(i32.mul ${get('p')} (i32.const ${NR * 4}))`)} ${get('K')} ${get('panelb')}${A.pass})
      (local.set $p ${add(get('p'), t.gemvPanels)})
      (br $mv)))
    (local.set $p0 ${get('p')})))` : ''}
  (block $blocks_end (loop $blocks
    (br_if $blocks_end (i32.ge_s ${get('tb')} ${get('T')}))
    (local.set $te ${add(get('tb'), t.tokenBlock)})
    (if (i32.gt_s ${get('te')} ${get('T')}) (then (local.set $te ${get('T')})))
    (local.set $rem (i32.rem_u (i32.sub ${get('te')} ${get('tb')}) (i32.const ${mr})))
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
function loadCodes(f: QuantType, q: number, signed: boolean, A: Addr): string {
  if (f === 'q8') return `(local.set $va (v128.load offset=${q * 32} ${A.w(get('wp'))}))\n(local.set $vb (v128.load offset=${q * 32 + 16} ${A.w(get('wp'))}))`;
  const lo = `(v128.and ${get('v')} (v128.const i8x16 ${Array(16).fill(15).join(' ')}))`, hi = `(i8x16.shr_u ${get('v')} (i32.const 4))`;
  const eight = `(v128.const i8x16 ${Array(16).fill(8).join(' ')})`;
  const fix = (e: string) => (signed ? `(i8x16.sub ${e} ${eight})` : e);
  return `(local.set $v (v128.load offset=${q * 16} ${A.w(get('wp'))}))\n(local.set $va ${fix(lo)})\n(local.set $vb ${fix(hi)})`;
}

/**
 * dq_<f>(wp, sp, K): one panel of q8/q4 codes dequantised to f32 at sp in the f32 panel layout
 * [K][NR]. A half's 16 codes widen (i8 → i16 → i32 → f32) to four vectors, one column × 4 k each,
 * transposed by shuffles to one k × 4 columns each and multiplied by the columns' scales: value =
 * f32(code) · scale, the one rounding runtime/quant.ts defines (exact), so the f32 micro-kernels
 * over it compute what the reference does.
 */
function dequantKernel(f: QuantType, A: Addr = ADDR32): string {
  const L = QUANT_LAYOUT[f];
  const half = (v: string, s: string, off: number) => {
    const lines = [`(local.set $lo (i16x8.extend_low_i8x16_s ${get(v)}))`, `(local.set $hi (i16x8.extend_high_i8x16_s ${get(v)}))`];
    ['lo', 'lo', 'hi', 'hi'].forEach((h, c) => lines.push(`(local.set $c${c} (f32x4.convert_i32x4_s (i32x4.extend_${c % 2 ? 'high' : 'low'}_i16x8_s ${get(h)})))`));
    lines.push(`(local.set $t0 (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${get('c0')} ${get('c1')}))`, `(local.set $t1 (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${get('c0')} ${get('c1')}))`,
      `(local.set $t2 (i8x16.shuffle ${lanes(0, 4, 1, 5)} ${get('c2')} ${get('c3')}))`, `(local.set $t3 (i8x16.shuffle ${lanes(2, 6, 3, 7)} ${get('c2')} ${get('c3')}))`);
    const rows = [['t0', 't2', lanes(0, 1, 4, 5)], ['t0', 't2', lanes(2, 3, 6, 7)], ['t1', 't3', lanes(0, 1, 4, 5)], ['t1', 't3', lanes(2, 3, 6, 7)]];
    rows.forEach(([a, b, l], j) => lines.push(`(v128.store offset=${off + j * NR * 4} ${A.low(get('sp'))} (f32x4.mul (i8x16.shuffle ${l} ${get(a!)} ${get(b!)}) ${get(s)}))`));
    return lines.join('\n  ');
  };
  const quads: string[] = [];
  for (let q = 0; q < 8; q++) quads.push(loadCodes(f, q, true, A), half('va', 's0', q * 4 * NR * 4), half('vb', 's1', q * 4 * NR * 4 + 16));
  return `(func $dq_${f} (param $wp i32) (param $sp i32) (param $K i32)${A.param}
  (local $g i32) (local $s0 v128) (local $s1 v128) (local $v v128) (local $va v128) (local $vb v128) (local $lo v128) (local $hi v128)
  (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
  (block $g_end (loop $g_loop
  (br_if $g_end (i32.ge_s ${get('g')} (i32.shr_s ${get('K')} (i32.const 5))))
  (local.set $s0 ${widenScales(L.scales, A.w(get('wp')))})
  (local.set $s1 ${widenScales(L.scales + 8, A.w(get('wp')))})
  ${quads.join('\n  ')}
  (local.set $wp ${add(get('wp'), L.group)})
  (local.set $sp ${add(get('sp'), 32 * NR * 4)})
  (local.set $g ${add(get('g'), 1)})
  (br $g_loop))))`;
}

/** gemm_<f>(x, w, y, T, K, ldy, p0, p1, s): as gemm_f32 over x tiles, each panel of q8/q4 codes
 *  dequantised once per cache block into the thread's scratch `s` (dq), then the f32 micro-kernels. */
/** gemm_<q8|q4>'s panel $p dequantised into dst. */
const dequant = (f: QuantType, A: Addr) => (dst: string) => `(call $dq_${f} ${panelAt} ${dst} ${get('K')}${A.pass})`;

function gemmQuant(f: QuantType, t: WasmTarget): string {
  const mr = t.rowsPerTile, A = addrOf(t);
  // gemm_<q8|q4>'s panel $p: dequantised into s, then every tile over it
  const single = `${dequant(f, A)(get('s'))}
      ${tiles('f32', mr, get('s'), undefined, A.zero)}`;
  return `(func $gemm_${f} (export "gemm_${f}") (param $x i32) (param $w i32) (param $y i32) (param $T i32) (param $K i32) (param $ldy i32) (param $p0 i32) (param $p1 i32) (param $s i32)${A.param}
  (local $tb i32) (local $te i32) (local $p i32) (local $t i32) (local $m i32) (local $xp i32) (local $wp i32) (local $yp i32) (local $ldyb i32) (local $panelb i32) (local $rem i32)
  (local.set $ldyb (i32.shl ${get('ldy')} (i32.const 2)))
  (local.set $panelb (i32.mul (i32.shr_s ${get('K')} (i32.const 5)) (i32.const ${QUANT_LAYOUT[f].group})))
  (block $blocks_end (loop $blocks
    (br_if $blocks_end (i32.ge_s ${get('tb')} ${get('T')}))
    (local.set $te ${add(get('tb'), t.tokenBlock)})
    (if (i32.gt_s ${get('te')} ${get('T')}) (then (local.set $te ${get('T')})))
    (local.set $rem (i32.rem_u (i32.sub ${get('te')} ${get('tb')}) (i32.const ${mr})))
    (local.set $p ${get('p0')})
    (block $panels_end (loop $panels
      (br_if $panels_end (i32.ge_s ${get('p')} ${get('p1')}))
      ${t.pairRows ? `(if ${f32Pairs(t)}
        (then ${pairedScratch(dequant(f, A), get('tb'), mr, t.pairRows, A, 'qpair')})
        (else ${single}))` : single}
      (local.set $p ${add(get('p'), 1)})
      (br $panels)))
    (local.set $tb ${get('te')})
    (br $blocks))))`;
}

/** The whole module: imports the shared memory, exports the products, the tile constants and
 *  which variant it is (FMA: 1 when its multiply-adds are fused; QUANT_DOT_ROWS: rows up to which
 *  q8/q4 products take the integer-dot GEMV, 0 where it has none; A8_TILE_Q4/Q8: rows per tile of
 *  the integer GEMM over 8-bit activations, codegen/wasm/gemm8.ts, 0 where it has none). */
export function renderWasmKernels(t: WasmTarget): string {
  if (t.tokenBlock % t.rowsPerTile !== 0) throw new InternalError(`wasm target: tokenBlock ${t.tokenBlock} is not a multiple of rowsPerTile ${t.rowsPerTile}`);
  if (t.widenFrom < t.rowsPerTile) throw new InternalError(`wasm target: widenFrom ${t.widenFrom} is below rowsPerTile ${t.rowsPerTile} (the first tile of a widened block is whole)`);
  if (t.pairRows >= t.rowsPerTile) throw new InternalError(`wasm target: pairRows ${t.pairRows} is not below rowsPerTile ${t.rowsPerTile} (a short last tile pairs panels)`);
  if (t.quantDotRows > 0 && !t.fma) throw new InternalError('wasm target: the integer-dot GEMV (quantDotRows) needs relaxed SIMD, as the fma variant has');
  const { q4: r4, q8: r8 } = t.a8Tile;
  if ((r4 > 0) !== (r8 > 0) || (r4 > 0 && (!t.quantDotRows || t.tokenBlock % r4 !== 0 || t.tokenBlock % r8 !== 0))) {
    throw new InternalError(`wasm target: the integer GEMM's tiles (a8Tile q4 ${r4}, q8 ${r8}) are both present or both absent, need the integer-dot GEMV's rows (quantDotRows) and divide tokenBlock ${t.tokenBlock}`);
  }
  const dts: WeightType[] = ['f32', 'bf16'];
  const funcs: string[] = [];
  const A = addrOf(t);
  for (const dt of dts) {
    for (let m = 1; m <= t.rowsPerTile; m++) funcs.push(microKernel(dt, m, t.rowsPerTile, m <= 2 ? t.gemvUnroll : 1, t.fma, false, A, dt === 'bf16' ? t.tileReadAhead : 0));
    if (dt === 'f32') funcs.push(...Array.from({ length: t.pairRows }, (_, i) => pairKernel(i + 1, t.rowsPerTile, t.fma, A, true)));
    if (dt === 'bf16') funcs.push(microKernel(dt, t.rowsPerTile, t.rowsPerTile, 1, t.fma, true, A, t.tileReadAhead), ...Array.from({ length: t.pairRows }, (_, i) => pairKernel(i + 1, t.rowsPerTile, t.fma, A)));
    if (t.gemvPanels > 1) funcs.push(gemvKernel(dt, t.gemvPanels, t.rowsPerTile, t.fma, A));
    funcs.push(gemm(dt, t));
  }
  for (const f of QUANT_TYPES) {
    funcs.push(dequantKernel(f, A), gemmQuant(f, t));
    if (t.quantDotRows > 0) funcs.push(dotKernel(f, t.fma, false, A, t.readAhead), dotProduct(f, false, A), dotKernel(f, t.fma, true, A, t.readAhead), ...(PAIRED[f] ? [dotKernel(f, t.fma, true, A, t.readAhead, 2)] : []), dotProduct(f, true, A), digits8Kernel(f, A));
    if (f === 'q8' && t.a8Tile.q8 > 0) funcs.push(digits8Kernel(f, A, true));
  }
  if (t.quantDotRows > 0) funcs.push(digitsKernel(A));
  funcs.push(...gemm8Kernels(t, A));
  funcs.push(round8Kernel(A), tilesKernel(A));
  funcs.push(work(t.quantDotRows > 0, A, r4 > 0));
  return `;; archc wasm kernels${t.fma ? ' (fused multiply-add: relaxed SIMD)' : ''}: matrix products over packed weight panels (generated; see codegen/wasm/kernels.ts)
(module
(import "env" "memory" (memory${A.memory64 ? ` i64 1 ${MEMORY64_PAGES}` : ' 1 65536'} shared))
(global (export "MR") i32 (i32.const ${t.rowsPerTile}))
(global (export "NR") i32 (i32.const ${NR}))
(global (export "SPLIT_FROM") i32 (i32.const ${t.splitFrom}))
(global (export "FMA") i32 (i32.const ${t.fma ? 1 : 0}))
(global (export "JOB") i32 (i32.const ${JOB}))
(global (export "GEMV_PANELS") i32 (i32.const ${t.gemvPanels}))
(global (export "QUANT_DOT_ROWS") i32 (i32.const ${t.quantDotRows}))
(global (export "A8_TILE_Q4") i32 (i32.const ${r4}))
(global (export "A8_TILE_Q8") i32 (i32.const ${r8}))
${funcs.join('\n')}
)
`;
}
