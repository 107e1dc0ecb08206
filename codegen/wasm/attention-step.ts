// The one-token attention of the program module (codegen/wasm/program.ts renders its kernels): per
// sequence its K/V rows appended to the cache in its slot (a ring under a sliding window), then per
// row and query head the scores, the softmax and the weighted values; a call computes the KV heads
// [u0, u1) (their cache columns and their query heads), so threads share it (runtime/wasm/split.ts).

import type { View } from '../../runtime/program.ts';
import { isView } from '../../runtime/program.ts';
import { type Fn, addI, f64lit, get, i32, mulI, unsupported } from './wat.ts';

/**
 * The one-token attention (and any causal GQA attention) as runtime/cpu/attention.ts: per sequence
 * its k, v rows appended to the KV cache in its slot ([capacity, KV, Dh] keys, then values), then
 * per row and head the scores q·k_j·scale, the softmax (max subtracted) and the weighted sum of the
 * values: in f32x4 where Dh is a multiple of 4 (decodeHead4), else all in f64 (f64x2 across the head
 * dim), rounded to f32 at the end. Scratch: the scores [capacity] at scr (f64 slots), then the sum [Dh].
 */
export function attentionDecodeRun(f: Fn): string {
  const k = f.k, { H, KV, Dh } = k.sizes as { H: number; KV: number; Dh: number };
  if (KV < 1 || H % KV) unsupported('kv heads that do not divide heads');
  if (Object.keys(k.pre ?? {}).length) unsupported('attention operands with a pre-expression');
  const views = ['q', 'k', 'v'].map((n) => { const o = k.inputs[n]; return o && isView(o) ? o : unsupported(`attention operand ${n}`); });
  const [qv, kv, vv] = views as [View, View, View];
  const y = k.outputs.y ?? unsupported('no output y');
  if (qv.width !== H * Dh || kv.width !== KV * Dh || vv.width !== KV * Dh || y.width !== H * Dh) unsupported('an attention view');
  if (views.some((v) => v.buf === y.buf)) unsupported('an attention output sharing a buffer with an operand');
  const group = H / KV, rowLen = KV * Dh, pairs = Dh - (Dh % 2);
  const s = f.fresh('s'), t = f.fresh('t'), r = f.fresh('r'), h = f.fresh('h'), j = f.fresh('j'), dd = f.fresh('d');
  const start = f.fresh('start'), len = f.fresh('len'), before = f.fresh('before'), kc = f.fresh('kc'), vc = f.fresh('vc'), nk = f.fresh('nk');
  const qo = f.fresh('qo'), ko = f.fresh('ko'), yo = f.fresh('yo'), acc = f.fresh('acc');
  // this call's KV heads [g0, g1): cache columns [g0·Dh, g1·Dh), query heads [g0·group, g1·group)
  const g0 = f.fresh('g0'), g1 = f.fresh('g1');
  const units = `(local.set $${g0} ${get('u0')})
(local.set $${g1} (select ${get('u1')} ${i32(KV)} (i32.lt_s ${get('u1')} ${i32(KV)})))`;
  const heads = (body: string) => f.loop(h, mulI(get(g0), group), mulI(get(g1), group), body);
  const cols = (body: string) => f.loop(dd, mulI(get(g0), Dh), mulI(get(g1), Dh), body);
  const dot = f.fresh('dot', 'v128'), v2 = f.fresh('v2', 'v128'), sc = f.fresh('sc', 'f64'), max = f.fresh('max', 'f64'), sum = f.fresh('sum', 'f64'), pj = f.fresh('pj', 'f64');
  const seqAt = addI(get('seq'), mulI(get(s), 12));
  const fa = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(2)})`);
  const da = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(3)})`);
  const pair = (base: string) => `(f64x2.promote_low_f32x4 (v128.load64_zero ${fa(base, get(dd))}))`;
  const one = (base: string) => `(f64.promote_f32 (f32.load ${fa(base, get(dd))}))`;
  // keys of row r: [0, before + r]; K row j of kv head h/group at kc + (j·rowLen + (h/group)·Dh)·4
  const kvHead = mulI(`(i32.div_u ${get(h)} ${i32(group)})`, Dh);
  const scores = f.loop(j, i32(0), get(nk), `(local.set $${ko} ${fa(get(kc), addI(mulI(get(j), rowLen), kvHead))})
(local.set $${dot} (v128.const f64x2 0 0))
${f.loop(dd, i32(0), i32(pairs), `(local.set $${dot} (f64x2.add ${get(dot)} (f64x2.mul ${pair(get(qo))} ${pair(get(ko))})))`, 2)}
(local.set $${sc} (f64.add (f64x2.extract_lane 0 ${get(dot)}) (f64x2.extract_lane 1 ${get(dot)})))
${Dh % 2 ? `(local.set $${dd} ${i32(Dh - 1)})
(local.set $${sc} (f64.add ${get(sc)} (f64.mul ${one(get(qo))} ${one(get(ko))})))` : ''}
(local.set $${sc} (f64.mul ${get(sc)} (f64.const ${f64lit(k.attrs.scale as number)})))
(f64.store ${da(get('scr'), get(j))} ${get(sc)})
(local.set $${max} (f64.max ${get(max)} ${get(sc)}))`);
  const accAt = (i: string) => da(get(acc), i);
  const weigh = f.loop(j, i32(0), get(nk), `(local.set $${pj} (call $exp64 (f64.sub (f64.load ${da(get('scr'), get(j))}) ${get(max)})))
(local.set $${sum} (f64.add ${get(sum)} ${get(pj)}))
(local.set $${ko} ${fa(get(vc), addI(mulI(get(j), rowLen), kvHead))})
(local.set $${v2} (f64x2.splat ${get(pj)}))
${f.loop(dd, i32(0), i32(pairs), `(v128.store ${accAt(get(dd))} (f64x2.add (v128.load ${accAt(get(dd))}) (f64x2.mul ${get(v2)} ${pair(get(ko))})))`, 2)}
${Dh % 2 ? `(local.set $${dd} ${i32(Dh - 1)})
(f64.store ${accAt(get(dd))} (f64.add (f64.load ${accAt(get(dd))}) (f64.mul ${get(pj)} ${one(get(ko))})))` : ''}`);
  const rows = `(local.set $${qo} ${addI(f.viewRow(qv)(addI(get(start), get(r))), `(i32.shl ${mulI(get(h), Dh)} ${i32(2)})`)})
(local.set $${yo} ${addI(f.viewRow(y)(addI(get(start), get(r))), `(i32.shl ${mulI(get(h), Dh)} ${i32(2)})`)})`;
  const head = Dh % 4 === 0 ? `${rows}\n${decodeHead4(f, { Dh, rowLen, kvHead, scale: k.attrs.scale as number, j, nk, kc, vc, qo, yo })}` : `${rows}
(local.set $${max} (f64.const -inf))
${scores}
(local.set $${sum} (f64.const 0))
${f.loop(dd, i32(0), i32(Dh), `(f64.store ${accAt(get(dd))} (f64.const 0))`)}
${weigh}
${f.loop(dd, i32(0), i32(Dh), `(f32.store ${fa(get(yo), get(dd))} (f32.demote_f64 (f64.div (f64.load ${accAt(get(dd))}) ${get(sum)})))`)}`;
  const append = (src: View, cache: string) => f.loop(t, i32(0), get(len), cols(
    `(f32.store ${fa(cache, addI(mulI(addI(get(before), get(t)), rowLen), get(dd)))} (f32.load ${fa(f.viewRow(src)(addI(get(start), get(t))), get(dd))}))`));
  // rows no sequence covers stay as written before: the reference writes them zero
  const zero = f.loop(t, i32(0), get('T'), f.loop(dd, mulI(get(g0), group * Dh), mulI(get(g1), group * Dh), `(f32.store ${fa(f.viewRow(y)(get(t)), get(dd))} (f32.const 0))`));
  if (k.attrs.window) return `${units}\n${zero}\n${windowedDecode(f, k.attrs.window as number, { s, r, dd, start, len, before, kc, vc, nk, acc, seqAt, rowLen, heads: heads(head), cols, kv, vv })}`;
  return `${units}
${zero}
(local.set $${acc} ${addI(get('scr'), `(i32.shl (i32.load ${addI(get('seq'), `(i32.shl ${get('S')} ${i32(4)})`)}) ${i32(3)})`)})
${f.loop(s, i32(0), get('S'), `(local.set $${start} (i32.load ${seqAt}))
(local.set $${len} (i32.load offset=4 ${seqAt}))
(local.set $${kc} ${addI(`(i32.load offset=8 ${seqAt})`, f.state(k.state ?? unsupported('an attention without a cache')))})
(local.set $${vc} ${addI(get(kc), `(i32.shl (i32.mul (i32.load ${addI(get('seq'), `(i32.shl ${get('S')} ${i32(4)})`)}) ${i32(rowLen)}) ${i32(2)})`)})
(local.set $${before} (i32.load ${addI(addI(get('seq'), mulI(get('S'), 12)), `(i32.shl ${get(s)} ${i32(2)})`)}))
${append(kv, get(kc))}
${append(vv, get(vc))}
${f.loop(r, i32(0), get(len), `(local.set $${nk} ${addI(addI(get(before), get(r)), 1)})
${heads(head)}`)}`)}`;
}

/**
 * One query head of the one-token attention in f32x4 (Dh a multiple of 4): the scores q·k_j·scale
 * (f32 at scr), four keys at a time (q's quads read once for the four, four sums in flight), their
 * maximum; then four keys at a time exp4(score − max) (codegen/wasm/fixed.ts, a few ulps), the
 * weights summed in four lanes and stored over the scores; then y = Σ_j w_j·v_j / sum, up to 8 quads
 * of the head's columns at a time in registers over every key (a weight splat and a row of values a
 * key, nothing stored until the end). Each sum is the one it was with the accumulator in memory
 * (the same terms in the same order, bit for bit); the registers drop its per-key loads and stores
 * (the ~100M, a layer on one thread in cache: 8 sequences at ~100 keys 296-300 → 200-208 µs, one at
 * ~930 keys 526 → 289).
 * The reference sums in double; the trained tiny-bamba-a decoded over 600 tokens stays within 1e-5
 * of the logits' scale (test/e2e/wasm.test.ts).
 */
function decodeHead4(f: Fn, o: { Dh: number; rowLen: number; kvHead: string; scale: number; j: string; nk: string; kc: string; vc: string; qo: string; yo: string }): string {
  const { Dh, rowLen, kvHead, j, nk } = o;
  const Q = Dh / 4, KEYS = 4, BLOCK = 8;
  const e = f.fresh('e4', 'v128'), sumv = f.fresh('sum4', 'v128'), pv = f.fresh('p4', 'v128'), qv = f.fresh('q4', 'v128');
  const dots = Array.from({ length: KEYS }, (_, i) => f.fresh(`dot${i}_`, 'v128'));
  const accs = Array.from({ length: Math.min(BLOCK, Q) }, (_, i) => f.fresh(`acc${i}_`, 'v128'));
  const sc = f.fresh('sc32', 'f32'), max = f.fresh('max32', 'f32'), sum = f.fresh('sumt', 'f32'), ko = f.fresh('ko4'), vo = f.fresh('vo4'), n4 = f.fresh('n4');
  const fa = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(2)})`);
  const row = (cache: string, key: string) => fa(cache, addI(mulI(key, rowLen), kvHead));
  const lanes = (v: string) => `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 2 ${v})) (f32.add (f32x4.extract_lane 1 ${v}) (f32x4.extract_lane 3 ${v})))`;
  // key j + i's score from its sum, stored at scr, into the maximum
  const score = (d: string, i: number) => `(local.set $${sc} (f32.mul ${lanes(get(d))} (f32.const ${f64lit(Math.fround(o.scale))})))
(f32.store offset=${4 * i} ${fa(get('scr'), get(j))} ${get(sc)})
(local.set $${max} (f32.max ${get(max)} ${get(sc)}))`;
  // keys j … j + n − 1 (rows rowLen floats apart from ko): their sums over the head's quads in order
  const dotsOf = (n: number) => `(local.set $${ko} ${row(get(o.kc), get(j))})
${dots.slice(0, n).map((d) => `(local.set $${d} (v128.const f32x4 0 0 0 0))`).join('\n')}
${Array.from({ length: Q }, (_, q) => `(local.set $${qv} (v128.load offset=${16 * q} ${get(o.qo)}))
${dots.slice(0, n).map((d, i) => `(local.set $${d} (f32x4.add ${get(d)} (f32x4.mul ${get(qv)} (v128.load offset=${16 * q + 4 * rowLen * i} ${get(ko)}))))`).join('\n')}`).join('\n')}
${dots.slice(0, n).map((d, i) => score(d, i)).join('\n')}`;
  const scores = `${f.loop(j, i32(0), get(n4), dotsOf(KEYS), KEYS)}
${f.loop(j, get(n4), get(nk), dotsOf(1))}`;
  // the weights over the scores: four keys at a time, the rest one at a time (its lane 0 summed)
  const weights = `${f.loop(j, i32(0), get(n4), `(local.set $${e} (call $exp4 (f32x4.sub (v128.load ${fa(get('scr'), get(j))}) (f32x4.splat ${get(max)}))))
(local.set $${sumv} (f32x4.add ${get(sumv)} ${get(e)}))
(v128.store ${fa(get('scr'), get(j))} ${get(e)})`, 4)}
${f.loop(j, get(n4), get(nk), `(local.set $${e} (call $exp4 (f32x4.splat (f32.sub (f32.load ${fa(get('scr'), get(j))}) ${get(max)}))))
(local.set $${sum} (f32.add ${get(sum)} (f32x4.extract_lane 0 ${get(e)})))
(f32.store ${fa(get('scr'), get(j))} (f32x4.extract_lane 0 ${get(e)}))`)}`;
  // quads [q0, q0 + n) of y over every key, in registers
  const block = (q0: number, n: number) => `${accs.slice(0, n).map((a) => `(local.set $${a} (v128.const f32x4 0 0 0 0))`).join('\n')}
${f.loop(j, i32(0), get(nk), `(local.set $${vo} ${row(get(o.vc), get(j))})
(local.set $${pv} (v128.load32_splat ${fa(get('scr'), get(j))}))
${accs.slice(0, n).map((a, i) => `(local.set $${a} (f32x4.add ${get(a)} (f32x4.mul ${get(pv)} (v128.load offset=${16 * (q0 + i)} ${get(vo)}))))`).join('\n')}`)}
${accs.slice(0, n).map((a, i) => `(v128.store offset=${16 * (q0 + i)} ${get(o.yo)} (f32x4.div ${get(a)} (f32x4.splat ${get(sum)})))`).join('\n')}`;
  const blocks = Array.from({ length: Math.ceil(Q / BLOCK) }, (_, b) => block(b * BLOCK, Math.min(BLOCK, Q - b * BLOCK))).join('\n');
  return `(local.set $${max} (f32.const -inf))
(local.set $${n4} (i32.and ${get(nk)} ${i32(-4)}))
${scores}
(local.set $${sumv} (v128.const f32x4 0 0 0 0))
(local.set $${sum} (f32.const 0))
${weights}
(local.set $${sum} (f32.add ${get(sum)} ${lanes(get(sumv))}))
${blocks}`;
}

/**
 * attentionDecodeRun's sequence loop with a sliding window: the cache is a ring of rows =
 * min(window, capacity) (runtime/program.ts kvRows: keys [rows, KV, Dh], then values); row r of a
 * sequence writes its k, v at ring row (before + r) % rows and then attends to ring rows
 * [0, min(before + r + 1, rows)), which hold exactly its window (key order does not matter to the
 * softmax). Writing row by row keeps a row's keys from being overwritten by a later row's.
 */
function windowedDecode(f: Fn, window: number, l: { s: string; r: string; dd: string; start: string; len: string; before: string; kc: string; vc: string; nk: string; acc: string;
  seqAt: string; rowLen: number; heads: string; cols: (body: string) => string; kv: View; vv: View }): string {
  const rows = f.fresh('rows'), at = f.fresh('at');
  const cap = `(i32.load ${addI(get('seq'), `(i32.shl ${get('S')} ${i32(4)})`)})`;
  const fa = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(2)})`);
  // l.cols loops l.dd over this call's columns
  const put = (src: View, cache: string) => l.cols(
    `(f32.store ${fa(cache, addI(get(at), get(l.dd)))} (f32.load ${fa(f.viewRow(src)(addI(get(l.start), get(l.r))), get(l.dd))}))`);
  return `(local.set $${l.acc} ${addI(get('scr'), `(i32.shl ${cap} ${i32(3)})`)})
(local.set $${rows} (select ${i32(window)} ${cap} (i32.lt_u ${i32(window)} ${cap})))
${f.loop(l.s, i32(0), get('S'), `(local.set $${l.start} (i32.load ${l.seqAt}))
(local.set $${l.len} (i32.load offset=4 ${l.seqAt}))
(local.set $${l.kc} ${addI(`(i32.load offset=8 ${l.seqAt})`, f.state(f.k.state ?? unsupported('an attention without a cache')))})
(local.set $${l.vc} ${addI(get(l.kc), `(i32.shl (i32.mul ${get(rows)} ${i32(l.rowLen)}) ${i32(2)})`)})
(local.set $${l.before} (i32.load ${addI(addI(get('seq'), mulI(get('S'), 12)), `(i32.shl ${get(l.s)} ${i32(2)})`)}))
${f.loop(l.r, i32(0), get(l.len), `(local.set $${at} ${mulI(`(i32.rem_u ${addI(get(l.before), get(l.r))} ${get(rows)})`, l.rowLen)})
${put(l.kv, get(l.kc))}
${put(l.vv, get(l.vc))}
(local.set $${l.nk} ${addI(get(l.before), get(l.r))})
(local.set $${l.nk} (select ${addI(get(l.nk), 1)} ${get(rows)} (i32.lt_u ${get(l.nk)} ${get(rows)})))
${l.heads}`)}`)}`;
}
