// The routing families of the program module (codegen/wasm/program.ts renders their kernels), as
// runtime/cpu/route.ts computes them: softmax over D-wide parts of a row (the max in f32x4, the
// exponentials and their sum in f64x2, each result rounded to f32 once), top-k (insertion into
// the K best of each row, ties to the lower index, NaN the largest; the kept values summed in f64),
// and rows gathered and scattered by index (f32x4 copies and sums; an index outside the rows reads
// zeros or is skipped).

import type { View } from '../../runtime/program.ts';
import { isView, ofFamily } from '../../runtime/program.ts';
import { type Fn, type RowAt, addI, get, i32, mapPass, mulI, unsupported } from './wat.ts';

const viewIn = (f: Fn, n: string): View => { const o = f.k.inputs[n]; return o && isView(o) ? o : unsupported(`operand ${n} that is not a view`); };
/** Rows of x as the kernel reads them: through its `pre` into scratch first (a sigmoid the prologue
 *  rule moved here), else in place. */
function readX(f: Fn, x: View): { first: string; row: RowAt } {
  if (!f.k.pre?.x) return { first: '', row: f.viewRow(x) };
  const row = f.scratchRow('pre:x');
  return { first: mapPass(f, { op: 'in', name: 'x' }, x.width, get('rows'), row), row };
}
const fa = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(2)})`);

/**
 * y = e^(x − max) / Σ e^(x − max) over each D-wide part of a W-wide row: the max over quads of f32
 * (f32x4.max, NaN-propagating as Math.max), then e^(x − max) in f64 over pairs (exp64x2) kept in the
 * row's scratch (`exp`, D doubles) as they are summed, each then divided by the sum in f64 and
 * rounded once — the reference's double arithmetic, its sum's order in pairs (a difference of an f64
 * ulp, not an f32 one).
 */
export function softmaxRun(f: Fn): string {
  const k = ofFamily(f.k, 'softmax'), { W, D } = k.sizes;
  const x = viewIn(f, 'x'), y = k.outputs.y ?? unsupported('no output y');
  if (x.width !== W || y.width !== W || W % D) unsupported('a softmax view');
  const Q = D - (D % 4), P = D - (D % 2);
  const r = f.fresh('r'), s = f.fresh('s'), i = f.fresh('i'), src = f.fresh('src'), dst = f.fresh('dst'), ex = f.fresh('ex');
  const mx4 = f.fresh('mx4', 'v128'), mx = f.fresh('mx', 'f32'), m2 = f.fresh('m2', 'v128'), e2 = f.fresh('e2', 'v128'), sum2 = f.fresh('sum2', 'v128'), sum = f.fresh('sum', 'f64');
  const da = (base: string, at: string) => addI(base, `(i32.shl ${at} ${i32(3)})`);
  const pair = (base: string) => `(f64x2.sub (f64x2.promote_low_f32x4 (v128.load64_zero ${fa(base, get(i))})) ${get(m2)})`;
  const last = (base: string) => `(f64.sub (f64.promote_f32 (f32.load offset=${(D - 1) * 4} ${base})) (f64x2.extract_lane 0 ${get(m2)}))`;
  const lane = (n: number) => `(f32x4.extract_lane ${n} ${get(mx4)})`;
  const part = `(local.set $${mx4} (f32x4.splat (f32.const -inf)))
${f.loop(i, i32(0), i32(Q), `(local.set $${mx4} (f32x4.max ${get(mx4)} (v128.load ${fa(get(src), get(i))})))`, 4)}
(local.set $${mx} (f32.max (f32.max ${lane(0)} ${lane(1)}) (f32.max ${lane(2)} ${lane(3)})))
${f.loop(i, i32(Q), i32(D), `(local.set $${mx} (f32.max ${get(mx)} (f32.load ${fa(get(src), get(i))})))`)}
(local.set $${m2} (f64x2.splat (f64.promote_f32 ${get(mx)})))
(local.set $${sum2} (v128.const f64x2 0 0))
${f.loop(i, i32(0), i32(P), `(local.set $${e2} (call $exp64x2 ${pair(get(src))}))
(v128.store ${da(get(ex), get(i))} ${get(e2)})
(local.set $${sum2} (f64x2.add ${get(sum2)} ${get(e2)}))`, 2)}
(local.set $${sum} (f64.add (f64x2.extract_lane 0 ${get(sum2)}) (f64x2.extract_lane 1 ${get(sum2)})))
${P < D ? `(f64.store offset=${(D - 1) * 8} ${get(ex)} (call $exp64 ${last(get(src))}))
(local.set $${sum} (f64.add ${get(sum)} (f64.load offset=${(D - 1) * 8} ${get(ex)})))` : ''}
${f.loop(i, i32(0), i32(P), `(v128.store64_lane 0 ${fa(get(dst), get(i))} (f32x4.demote_f64x2_zero (f64x2.div (v128.load ${da(get(ex), get(i))}) (f64x2.splat ${get(sum)}))))`, 2)}
${P < D ? `(f32.store offset=${(D - 1) * 4} ${get(dst)} (f32.demote_f64 (f64.div (f64.load offset=${(D - 1) * 8} ${get(ex)}) ${get(sum)})))` : ''}`;
  const xr = readX(f, x);
  return (xr.first ? `${xr.first}\n` : '') + f.loop(r, i32(0), get('rows'), f.loop(s, i32(0), i32(W / D), `(local.set $${src} ${addI(xr.row(get(r)), `(i32.shl ${mulI(get(s), D)} ${i32(2)})`)})
(local.set $${dst} ${addI(f.viewRow(y)(get(r)), `(i32.shl ${mulI(get(s), D)} ${i32(2)})`)})
(local.set $${ex} ${f.scratchRow('exp')(get(r))})
${part}`));
}

/**
 * The K largest of each D-wide row, largest first, into the rows of `values` and `indices` (integer
 * floats): each value in index order is inserted among the best so far, kept in the output rows
 * themselves, past those it beats — v beats w when v > w, or v is NaN and w is not; an equal one
 * never, so ties keep the lower index (the reference's order). With `normalize` the kept values are
 * then divided by their sum in f64.
 */
export function topkRun(f: Fn): string {
  const k = ofFamily(f.k, 'topk'), { D, K } = k.sizes;
  const x = viewIn(f, 'x'), values = k.outputs.values ?? unsupported('no output values'), indices = k.outputs.indices ?? unsupported('no output indices');
  if (x.width !== D || values.width !== K || indices.width !== K) unsupported('a topk view');
  const r = f.fresh('r'), i = f.fresh('i'), j = f.fresh('j'), n = f.fresh('n'), at = f.fresh('at'), src = f.fresh('src'), vr = f.fresh('vr'), ir = f.fresh('ir');
  const v = f.fresh('v', 'f32'), w = f.fresh('w', 'f32'), sum = f.fresh('sum', 'f64');
  const [done, up] = [f.lbl('done'), f.lbl('up')];
  const prev = (l: string) => `(i32.sub ${get(l)} ${i32(1)})`;
  const shift = `(local.set $${j} (select ${get(n)} ${i32(K - 1)} (i32.lt_s ${get(n)} ${i32(K - 1)})))
(block ${done}_s (loop ${up}_s
  (br_if ${done}_s (i32.le_s ${get(j)} ${get(at)}))
  (f32.store offset=4 ${fa(get(vr), prev(j))} (f32.load ${fa(get(vr), prev(j))}))
  (f32.store offset=4 ${fa(get(ir), prev(j))} (f32.load ${fa(get(ir), prev(j))}))
  (local.set $${j} (i32.sub ${get(j)} ${i32(1)}))
  (br ${up}_s)))`;
  const insert = `(local.set $${v} (f32.load ${fa(get(src), get(i))}))
(local.set $${at} ${get(n)})
(block ${done} (loop ${up}
  (br_if ${done} (i32.eqz ${get(at)}))
  (local.set $${w} (f32.load ${fa(get(vr), prev(at))}))
  (br_if ${done} (i32.eqz (i32.or (f32.gt ${get(v)} ${get(w)}) (i32.and (f32.ne ${get(v)} ${get(v)}) (f32.eq ${get(w)} ${get(w)})))))
  (local.set $${at} (i32.sub ${get(at)} ${i32(1)}))
  (br ${up})))
(if (i32.lt_s ${get(at)} ${i32(K)}) (then
  ${shift}
  (f32.store ${fa(get(vr), get(at))} ${get(v)})
  (f32.store ${fa(get(ir), get(at))} (f32.convert_i32_s ${get(i)}))
  (local.set $${n} (select (i32.add ${get(n)} ${i32(1)}) ${get(n)} (i32.lt_s ${get(n)} ${i32(K)})))))`;
  const normalize = k.attrs.normalize === true ? `(local.set $${sum} (f64.const 0))
${f.loop(j, i32(0), i32(K), `(local.set $${sum} (f64.add ${get(sum)} (f64.promote_f32 (f32.load ${fa(get(vr), get(j))}))))`)}
${f.loop(j, i32(0), i32(K), `(f32.store ${fa(get(vr), get(j))} (f32.demote_f64 (f64.div (f64.promote_f32 (f32.load ${fa(get(vr), get(j))})) ${get(sum)})))`)}` : '';
  const xr = readX(f, x);
  return (xr.first ? `${xr.first}\n` : '') + f.loop(r, i32(0), get('rows'), `(local.set $${src} ${xr.row(get(r))})
(local.set $${vr} ${f.viewRow(values)(get(r))})
(local.set $${ir} ${f.viewRow(indices)(get(r))})
(local.set $${n} ${i32(0)})
${f.loop(i, i32(0), i32(D), insert)}
${normalize}`);
}

/** D floats from `src` to `dst` (quads, then the rest), or zeros into `dst` when `src` is null. */
function rowCopy(f: Fn, dst: string, src: string | null, D: number, add = false): string {
  const d = f.fresh('d'), Q = D - (D % 4);
  const at = (base: string) => fa(base, get(d));
  const quad = src === null ? '(v128.const i32x4 0 0 0 0)' : add ? `(f32x4.add (v128.load ${at(dst)}) (v128.load ${at(src)}))` : `(v128.load ${at(src)})`;
  const one = src === null ? '(f32.const 0)' : add ? `(f32.add (f32.load ${at(dst)}) (f32.load ${at(src)}))` : `(f32.load ${at(src)})`;
  return `${f.loop(d, i32(0), i32(Q), `(v128.store ${at(dst)} ${quad})`, 4)}
${Q < D ? f.loop(d, i32(Q), i32(D), `(f32.store ${at(dst)} ${one})`) : ''}`;
}

/** Rows by index per token (`gather`: y[t, j] = x[t, idx[t, j]], zeros outside [0, N); `scatter`:
 *  y[t] zeroed, then x[t, j] added into row idx[t, j] in j order, skipped outside [0, N)), in f32x4
 *  over each row's D floats. An index is range-checked as a float before it becomes an address. */
function byIndexRun(f: Fn, gather: boolean): string {
  const k = ofFamily(f.k, 'gather', 'scatter'), { N, K, D } = k.sizes;
  const x = viewIn(f, 'x'), idx = viewIn(f, 'idx'), y = k.outputs.y ?? unsupported('no output y');
  if (x.width !== (gather ? N : K) * D || idx.width !== K || y.width !== (gather ? K : N) * D) unsupported(`a ${k.family} view`);
  const r = f.fresh('r'), j = f.fresh('j'), xr = f.fresh('xr'), ir = f.fresh('ir'), yr = f.fresh('yr'), e = f.fresh('e', 'f32');
  const inRange = `(i32.and (f32.ge ${get(e)} (f32.const 0)) (f32.lt ${get(e)} (f32.const ${N})))`;
  const row = (base: string, i: string) => addI(base, `(i32.shl ${mulI(i, D)} ${i32(2)})`);
  const picked = row(gather ? get(xr) : get(yr), '(i32.trunc_f32_s (local.get $' + e + '))');
  const perIndex = gather
    ? `(if ${inRange} (then ${rowCopy(f, row(get(yr), get(j)), picked, D)}) (else ${rowCopy(f, row(get(yr), get(j)), null, D)}))`
    : `(if ${inRange} (then ${rowCopy(f, picked, row(get(xr), get(j)), D, true)}))`;
  const xs = readX(f, x);
  return (xs.first ? `${xs.first}\n` : '') + f.loop(r, i32(0), get('rows'), `(local.set $${xr} ${xs.row(get(r))})
(local.set $${ir} ${f.viewRow(idx)(get(r))})
(local.set $${yr} ${f.viewRow(y)(get(r))})
${gather ? '' : rowCopy(f, get(yr), null, N * D)}
${f.loop(j, i32(0), i32(K), `(local.set $${e} (f32.load ${fa(get(ir), get(j))}))\n${perIndex}`)}`);
}

export const gatherRun = (f: Fn) => byIndexRun(f, true);
export const scatterRun = (f: Fn) => byIndexRun(f, false);
