// The f32 training engine's row-wise kernels (runtime/train/f32/rows.ts) as WebAssembly text: the
// records that are not products (silu, the gate of the gated norm, elementwise mul/add, RMSNorm over
// runs of features and its backward, the causal depthwise conv and its backward) in f32x4 lanes with
// a scalar tail, on one thread over the module's own memory (the caller copies operands in and
// results out; a call's work is a few MB, so the copies cost little beside JS's per-element loops).
// Sums across rows (a weight's gradient) are in f64, as the JS records sum them; exp is Cephes'
// polynomial (max relative error ~2 ulp in [-87, 88], the argument clamped there). The runtime ships
// the assembled bytes (runtime/train/f32/rows-module.ts; test/train/f32-rows.test.ts checks them).

/** Two spellings of each instruction: four lanes (`v`) or one (`s`), so one body gives both the
 *  vector loop and its tail. */
interface Width { readonly v: boolean; readonly ty: string; readonly step: number; load(a: string): string; store(a: string, x: string): string; c(n: number): string; op(o: string, ...a: string[]): string }
const V: Width = {
  v: true, ty: 'v128', step: 16,
  load: (a) => `(v128.load ${a})`, store: (a, x) => `(v128.store ${a} ${x})`,
  c: (n) => `(v128.const f32x4 ${n} ${n} ${n} ${n})`, op: (o, ...a) => `(f32x4.${o} ${a.join(' ')})`,
};
const S: Width = {
  v: false, ty: 'f32', step: 4,
  load: (a) => `(f32.load ${a})`, store: (a, x) => `(f32.store ${a} ${x})`,
  c: (n) => `(f32.const ${n})`, op: (o, ...a) => `(f32.${o} ${a.join(' ')})`,
};
const g = (n: string) => `(local.get $${n})`;
const at = (p: string, i = 'i') => `(i32.add ${g(p)} ${g(i)})`;
const exp = (w: Width, x: string) => (w.v ? `(call $exp4 ${x})` : `(f32x4.extract_lane 0 (call $exp4 (f32x4.splat ${x})))`);
const sigmoid = (w: Width, x: string) => w.op('div', w.c(1), w.op('add', w.c(1), exp(w, w.op('neg', x))));

/** An elementwise kernel over n floats: `body(w)` stores element i's results (byte offset $i from
 *  each pointer), the vector loop over whole fours, then the tail one at a time. */
function elementwise(name: string, ptrs: readonly string[], locals: readonly string[], body: (w: Width) => string): string {
  const loop = (w: Width, id: string, bound: string) => `(block $${id}_end (loop $${id}
      (br_if $${id}_end (i32.gt_u (i32.add ${g('i')} (i32.const ${w.step})) ${bound}))
      ${body(w)}
      (local.set $i (i32.add ${g('i')} (i32.const ${w.step})))
      (br $${id})))`;
  return `(func (export "${name}") ${ptrs.map((p) => `(param $${p} i32)`).join(' ')} (param $n i32)
    (local $i i32) (local $end i32) ${locals.map((l) => `(local $${l}v v128) (local $${l}s f32)`).join(' ')}
    (local.set $end (i32.shl ${g('n')} (i32.const 2)))
    ${loop(V, 'vec', g('end'))}
    ${loop(S, 'one', g('end'))})`;
}
/** A local of the width's type: `$<name>v` or `$<name>s`. */
const L = (w: Width, n: string) => `$${n}${w.v ? 'v' : 's'}`;
const set = (w: Width, n: string, x: string) => `(local.set ${L(w, n)} ${x})`;
const lg = (w: Width, n: string) => `(local.get ${L(w, n)})`;

const EXP4 = `(func $exp4 (param $x v128) (result v128) (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.min (f32x4.max ${g('x')} ${V.c(-87)}) ${V.c(88)}))
    (local.set $n (f32x4.nearest (f32x4.mul ${g('x')} ${V.c(1.44269504088896341)})))
    (local.set $r (f32x4.sub (f32x4.sub ${g('x')} (f32x4.mul ${g('n')} ${V.c(0.693359375)})) (f32x4.mul ${g('n')} ${V.c(-2.12194440e-4)})))
    (local.set $p ${V.c(1.9875691500e-4)})
    ${[1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1].map((k) => `(local.set $p (f32x4.add (f32x4.mul ${g('p')} ${g('r')}) ${V.c(k)}))`).join('\n    ')}
    (local.set $p (f32x4.add (f32x4.add (f32x4.mul ${g('p')} (f32x4.mul ${g('r')} ${g('r')})) ${g('r')}) ${V.c(1)}))
    (f32x4.mul ${g('p')} (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s ${g('n')}) (v128.const i32x4 127 127 127 127)) (i32.const 23))))`;

const KERNELS = [
  // y = x·σ(x)
  elementwise('silu_f', ['x', 'y'], ['a'], (w) => `${set(w, 'a', w.load(at('x')))}
      ${w.store(at('y'), w.op('mul', lg(w, 'a'), sigmoid(w, lg(w, 'a'))))}`),
  // dx = g·σ(x)·(1 + x·(1 − σ(x)))
  elementwise('silu_b', ['x', 'g', 'dx'], ['a', 's'], (w) => `${set(w, 'a', w.load(at('x')))} ${set(w, 's', sigmoid(w, lg(w, 'a')))}
      ${w.store(at('dx'), w.op('mul', w.op('mul', w.load(at('g')), lg(w, 's')), w.op('add', w.c(1), w.op('mul', lg(w, 'a'), w.op('sub', w.c(1), lg(w, 's'))))))}`),
  // the gated norm's gate: h = x·z·σ(z)
  elementwise('gate_f', ['x', 'z', 'h'], ['a'], (w) => `${set(w, 'a', w.load(at('z')))}
      ${w.store(at('h'), w.op('mul', w.op('mul', w.load(at('x')), lg(w, 'a')), sigmoid(w, lg(w, 'a'))))}`),
  // dx = dh·z·σ(z), dz = dh·x·σ(z)·(1 + z·(1 − σ(z)))
  elementwise('gate_b', ['x', 'z', 'dh', 'dx', 'dz'], ['a', 's', 'd'], (w) => `${set(w, 'a', w.load(at('z')))} ${set(w, 's', sigmoid(w, lg(w, 'a')))} ${set(w, 'd', w.load(at('dh')))}
      ${w.store(at('dx'), w.op('mul', w.op('mul', lg(w, 'd'), lg(w, 'a')), lg(w, 's')))}
      ${w.store(at('dz'), w.op('mul', w.op('mul', w.op('mul', lg(w, 'd'), w.load(at('x'))), lg(w, 's')), w.op('add', w.c(1), w.op('mul', lg(w, 'a'), w.op('sub', w.c(1), lg(w, 's'))))))}`),
  elementwise('mul_f', ['a', 'b', 'y'], [], (w) => w.store(at('y'), w.op('mul', w.load(at('a')), w.load(at('b'))))),
  // da = g·b, db = g·a
  elementwise('mul_b', ['a', 'b', 'g', 'da', 'db'], ['d'], (w) => `${set(w, 'd', w.load(at('g')))}
      ${w.store(at('da'), w.op('mul', lg(w, 'd'), w.load(at('b'))))} ${w.store(at('db'), w.op('mul', lg(w, 'd'), w.load(at('a'))))}`),
  elementwise('add_f', ['a', 'b', 'y'], [], (w) => w.store(at('y'), w.op('add', w.load(at('a')), w.load(at('b'))))),
];

/** f64 accumulators [n] at `acc` += the four (or one) f32 values `x` at byte offset 2·$i. */
const accumulate = (w: Width, acc: string, x: string) => (w.v
  ? `(local.set $t ${x})
      (v128.store ${at(acc, 'j')} (f64x2.add (v128.load ${at(acc, 'j')}) (f64x2.promote_low_f32x4 (local.get $t))))
      (v128.store offset=16 ${at(acc, 'j')} (f64x2.add (v128.load offset=16 ${at(acc, 'j')}) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $t) (local.get $t)))))`
  : `(f64.store ${at(acc, 'j')} (f64.add (f64.load ${at(acc, 'j')}) (f64.promote_f32 ${x})))`);

/** A loop over the features of one run (byte offsets $i from 0 to $end, $j = 2·$i for f64 arrays):
 *  fours, then the tail. */
function runLoop(id: string, body: (w: Width) => string, pairIndex = true): string {
  const loop = (w: Width, k: string) => `(block $${k}_end (loop $${k}
        (br_if $${k}_end (i32.gt_u (i32.add ${g('i')} (i32.const ${w.step})) ${g('end')}))
        ${pairIndex ? `(local.set $j (i32.shl ${g('i')} (i32.const 1)))\n        ` : ''}${body(w)}
        (local.set $i (i32.add ${g('i')} (i32.const ${w.step})))
        (br $${k})))`;
  return `(local.set $i (i32.const 0))
      ${loop(V, `${id}v`)}
      ${loop(S, `${id}s`)}`;
}

/** Σ over the run of f(w) (four lanes each) in f64 into $acc. */
const sumRun = (id: string, f: (w: Width) => string) => `(local.set $accv (v128.const i64x2 0 0)) (local.set $acc (f64.const 0))
      ${runLoop(id, (w) => (w.v
    ? `(local.set $t ${f(w)})
        (local.set $accv (f64x2.add ${g('accv')} (f64x2.add (f64x2.promote_low_f32x4 ${g('t')}) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${g('t')} ${g('t')})))))`
    : `(local.set $acc (f64.add ${g('acc')} (f64.promote_f32 ${f(w)})))`))}
      (local.set $acc (f64.add ${g('acc')} (f64.add (f64x2.extract_lane 0 ${g('accv')}) (f64x2.extract_lane 1 ${g('accv')}))))`;

// RMSNorm over `runs` runs of gs features (the weight [D] repeating every D/gs runs):
//   rms_f: y = w·x·r, r = 1/sqrt(mean(x²) + eps) stored per run in inv;
//   rms_b: dx = r·(dy·w − x·r²·mean(dy·w·x)), dw [D] (f64) += dy·x·r.
// Products of two f32s summed: each is exact in f64 only when widened first, so the squares and
// dy·w·x are formed in f32 and widened (a relative error of 2⁻²⁴ per term, far under the checks).
const RUN_LOCALS = '(local $r i32) (local $i i32) (local $j i32) (local $end i32) (local $xr i32) (local $wr i32) (local $acc f64) (local $accv v128) (local $t v128) (local $rs f32) (local $rv v128) (local $cs f32) (local $cv v128)';
const RMS = `(func (export "rms_f") (param $x i32) (param $w i32) (param $y i32) (param $inv i32) (param $runs i32) (param $gs i32) (param $D i32) (param $eps f32)
    ${RUN_LOCALS}
    (local.set $end (i32.shl ${g('gs')} (i32.const 2)))
    (block $done (loop $run
      (br_if $done (i32.ge_u ${g('r')} ${g('runs')}))
      (local.set $xr (i32.add ${g('x')} (i32.mul ${g('r')} ${g('end')})))
      (local.set $wr (i32.add ${g('w')} (i32.shl (i32.rem_u (i32.mul ${g('r')} ${g('gs')}) ${g('D')}) (i32.const 2))))
      ${sumRun('ss', (w) => w.op('mul', w.load(at('xr')), w.load(at('xr'))))}
      (local.set $rs (f32.demote_f64 (f64.div (f64.const 1) (f64.sqrt (f64.add (f64.div ${g('acc')} (f64.convert_i32_u ${g('gs')})) (f64.promote_f32 ${g('eps')}))))))
      (local.set $rv (f32x4.splat ${g('rs')}))
      (f32.store (i32.add ${g('inv')} (i32.shl ${g('r')} (i32.const 2))) ${g('rs')})
      ${runLoop('y', (w) => w.store(`(i32.add ${at('y')} (i32.mul ${g('r')} ${g('end')}))`, w.op('mul', w.op('mul', w.load(at('wr')), w.load(at('xr'))), lg(w, 'r'))))}
      (local.set $r (i32.add ${g('r')} (i32.const 1)))
      (br $run))))
  (func (export "rms_b") (param $dy i32) (param $x i32) (param $inv i32) (param $w i32) (param $dx i32) (param $dw i32) (param $runs i32) (param $gs i32) (param $D i32)
    ${RUN_LOCALS} (local $dr i32) (local $ox i32) (local $dwr i32)
    (local.set $end (i32.shl ${g('gs')} (i32.const 2)))
    (block $done (loop $run
      (br_if $done (i32.ge_u ${g('r')} ${g('runs')}))
      (local.set $xr (i32.add ${g('x')} (i32.mul ${g('r')} ${g('end')})))
      (local.set $dr (i32.add ${g('dy')} (i32.mul ${g('r')} ${g('end')})))
      (local.set $ox (i32.add ${g('dx')} (i32.mul ${g('r')} ${g('end')})))
      (local.set $wr (i32.add ${g('w')} (i32.shl (i32.rem_u (i32.mul ${g('r')} ${g('gs')}) ${g('D')}) (i32.const 2))))
      (local.set $dwr (i32.add ${g('dw')} (i32.shl (i32.rem_u (i32.mul ${g('r')} ${g('gs')}) ${g('D')}) (i32.const 3))))
      (local.set $rs (f32.load (i32.add ${g('inv')} (i32.shl ${g('r')} (i32.const 2)))))
      ${sumRun('gx', (w) => w.op('mul', w.op('mul', w.load(at('dr')), w.load(at('wr'))), w.load(at('xr'))))}
      (local.set $cs (f32.demote_f64 (f64.div (f64.mul (f64.mul (f64.promote_f32 ${g('rs')}) (f64.promote_f32 ${g('rs')})) ${g('acc')}) (f64.convert_i32_u ${g('gs')}))))
      (local.set $rv (f32x4.splat ${g('rs')})) (local.set $cv (f32x4.splat ${g('cs')}))
      ${runLoop('dx', (w) => `${w.store(at('ox'), w.op('mul', lg(w, 'r'), w.op('sub', w.op('mul', w.load(at('dr')), w.load(at('wr'))), w.op('mul', w.load(at('xr')), lg(w, 'c')))))}
        ${accumulate(w, 'dwr', w.op('mul', w.op('mul', w.load(at('dr')), w.load(at('xr'))), lg(w, 'r')))}`)}
      (local.set $r (i32.add ${g('r')} (i32.const 1)))
      (br $run))))`;

// The causal depthwise conv of one sequence, rows [t0, t0 + len) of x [T, C], taps wt [K, C] (tap
// j reads row t − (K−1) + j; none before t0):
//   conv_f: y[t] = b + Σ_j wt[j]·x[t − (K−1) + j] (b: $hasB, else 0);
//   conv_b: dx[s] = Σ_j wt[j]·dy[s + (K−1) − j] over the rows t = s + (K−1) − j of the sequence
//   (the transposed conv as a gather: each dx row written once), dwt [K, C] (f64) += dy[t]·x[src],
//   db [C] (f64) += dy[t].
const CONV_LOCALS = '(local $t i32) (local $j i32) (local $j0 i32) (local $i i32) (local $end i32) (local $row i32) (local $src i32) (local $accv v128) (local $accs f32) (local $t2 i32) (local $jk i32)';
const CONV = `(func (export "conv_f") (param $x i32) (param $wt i32) (param $b i32) (param $hasB i32) (param $y i32) (param $t0 i32) (param $len i32) (param $C i32) (param $K i32)
    ${CONV_LOCALS}
    (local.set $end (i32.shl ${g('C')} (i32.const 2)))
    (local.set $t ${g('t0')})
    (block $done (loop $rows
      (br_if $done (i32.ge_u ${g('t')} (i32.add ${g('t0')} ${g('len')})))
      (local.set $row (i32.mul ${g('t')} ${g('end')}))
      ;; first tap inside the sequence: max(0, t0 − t + K − 1)
      (local.set $j0 (select (i32.sub (i32.add ${g('t0')} (i32.sub ${g('K')} (i32.const 1))) ${g('t')}) (i32.const 0) (i32.gt_s (i32.sub (i32.add ${g('t0')} (i32.sub ${g('K')} (i32.const 1))) ${g('t')}) (i32.const 0))))
      ${convRowLoop('f', (w) => `${set(w, 'acc', `(select ${w.load(at('b'))} ${w.c(0)} ${g('hasB')})`)}
        (local.set $j ${g('j0')})
        (block $tapsend (loop $taps
          (br_if $tapsend (i32.ge_u ${g('j')} ${g('K')}))
          (local.set $src (i32.mul (i32.sub (i32.add ${g('t')} ${g('j')}) (i32.sub ${g('K')} (i32.const 1))) ${g('end')}))
          ${set(w, 'acc', w.op('add', lg(w, 'acc'), w.op('mul', w.load(`(i32.add ${at('wt')} (i32.mul ${g('j')} ${g('end')}))`), w.load(`(i32.add ${at('x')} ${g('src')})`))))}
          (local.set $j (i32.add ${g('j')} (i32.const 1)))
          (br $taps)))
        ${w.store(`(i32.add ${at('y')} ${g('row')})`, lg(w, 'acc'))}`)}
      (local.set $t (i32.add ${g('t')} (i32.const 1)))
      (br $rows))))
  (func (export "conv_b") (param $x i32) (param $wt i32) (param $dy i32) (param $dx i32) (param $dwt i32) (param $db i32) (param $t0 i32) (param $len i32) (param $C i32) (param $K i32)
    ${CONV_LOCALS} (local $tv v128) (local $last i32)
    (local.set $end (i32.shl ${g('C')} (i32.const 2)))
    (local.set $last (i32.sub (i32.add ${g('t0')} ${g('len')}) (i32.const 1)))
    (local.set $t ${g('t0')})
    (block $done (loop $rows
      (br_if $done (i32.gt_s ${g('t')} ${g('last')}))
      (local.set $row (i32.mul ${g('t')} ${g('end')}))
      ;; dx row t (as s): taps j with s + K − 1 − j <= last, i.e. j >= s + K − 1 − last
      (local.set $j0 (select (i32.sub (i32.add ${g('t')} (i32.sub ${g('K')} (i32.const 1))) ${g('last')}) (i32.const 0) (i32.gt_s (i32.sub (i32.add ${g('t')} (i32.sub ${g('K')} (i32.const 1))) ${g('last')}) (i32.const 0))))
      ${convRowLoop('b', (w) => `${set(w, 'acc', w.c(0))}
        (local.set $j ${g('j0')})
        (block $tapsend (loop $taps
          (br_if $tapsend (i32.ge_u ${g('j')} ${g('K')}))
          (local.set $src (i32.mul (i32.sub (i32.add ${g('t')} (i32.sub ${g('K')} (i32.const 1))) ${g('j')}) ${g('end')}))
          ${set(w, 'acc', w.op('add', lg(w, 'acc'), w.op('mul', w.load(`(i32.add ${at('wt')} (i32.mul ${g('j')} ${g('end')}))`), w.load(`(i32.add ${at('dy')} ${g('src')})`))))}
          (local.set $j (i32.add ${g('j')} (i32.const 1)))
          (br $taps)))
        ${w.store(`(i32.add ${at('dx')} ${g('row')})`, lg(w, 'acc'))}
        ;; dwt and db from dy row t: taps j >= max(0, t0 − t + K − 1), source row t − (K−1) + j
        (local.set $jk (i32.shl ${g('i')} (i32.const 1)))
        ${dbAcc(w)}
        (local.set $j (select (i32.sub (i32.add ${g('t0')} (i32.sub ${g('K')} (i32.const 1))) ${g('t')}) (i32.const 0) (i32.gt_s (i32.sub (i32.add ${g('t0')} (i32.sub ${g('K')} (i32.const 1))) ${g('t')}) (i32.const 0))))
        (block $wend (loop $wtaps
          (br_if $wend (i32.ge_u ${g('j')} ${g('K')}))
          (local.set $src (i32.mul (i32.sub (i32.add ${g('t')} ${g('j')}) (i32.sub ${g('K')} (i32.const 1))) ${g('end')}))
          (local.set $t2 (i32.add ${g('dwt')} (i32.add (i32.shl (i32.mul ${g('j')} ${g('end')}) (i32.const 1)) ${g('jk')})))
          ${w.v
    ? `(local.set $tv (f32x4.mul ${w.load(`(i32.add ${at('dy')} ${g('row')})`)} ${w.load(`(i32.add ${at('x')} ${g('src')})`)}))
          (v128.store ${g('t2')} (f64x2.add (v128.load ${g('t2')}) (f64x2.promote_low_f32x4 ${g('tv')})))
          (v128.store offset=16 ${g('t2')} (f64x2.add (v128.load offset=16 ${g('t2')}) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${g('tv')} ${g('tv')}))))`
    : `(f64.store ${g('t2')} (f64.add (f64.load ${g('t2')}) (f64.promote_f32 (f32.mul ${w.load(`(i32.add ${at('dy')} ${g('row')})`)} ${w.load(`(i32.add ${at('x')} ${g('src')})`)}))))`}
          (local.set $j (i32.add ${g('j')} (i32.const 1)))
          (br $wtaps)))`)}
      (local.set $t (i32.add ${g('t')} (i32.const 1)))
      (br $rows))))`;

/** db [C] (f64) += dy row t's channels at $i. */
function dbAcc(w: Width): string {
  const d = w.load(`(i32.add ${at('dy')} ${g('row')})`);
  return w.v
    ? `(local.set $tv ${d})
        (v128.store ${at('db', 'jk')} (f64x2.add (v128.load ${at('db', 'jk')}) (f64x2.promote_low_f32x4 ${g('tv')})))
        (v128.store offset=16 ${at('db', 'jk')} (f64x2.add (v128.load offset=16 ${at('db', 'jk')}) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${g('tv')} ${g('tv')}))))`
    : `(f64.store ${at('db', 'jk')} (f64.add (f64.load ${at('db', 'jk')}) (f64.promote_f32 ${d})))`;
}

/** The channels of one row, byte offset $i: fours, then the tail (no pair index). */
function convRowLoop(id: string, body: (w: Width) => string): string {
  return runLoop(id, body, false);
}

// Attention's softmax rows over one sequence and query head: scores s [n, lds] (f32), row i's keys
// [j0, i] (j0 = max(0, i − window + 1) with a window, else 0), the scale applied first:
//   attn_stats: out[2i] = max_j s·scale, out[2i + 1] = Σ_j exp(s·scale − max) (the caller takes
//   the log: lse = max + log(sum));
//   attn_p: p [n, n] row i's keys = exp(s·scale − lse[i]) (p zeroed by the caller elsewhere).
const ATTN_LOCALS = '(local $i i32) (local $j0 i32) (local $k i32) (local $end i32) (local $row i32) (local $mv v128) (local $ms f32) (local $sv v128) (local $ss f32) (local $l v128)';
/** A loop over byte offsets $k from 4·$j0 to $end (fours, then the tail). */
function keyLoop(id: string, body: (w: Width) => string): string {
  const loop = (w: Width, k: string) => `(block $${k}_end (loop $${k}
        (br_if $${k}_end (i32.gt_u (i32.add ${g('k')} (i32.const ${w.step})) ${g('end')}))
        ${body(w)}
        (local.set $k (i32.add ${g('k')} (i32.const ${w.step})))
        (br $${k})))`;
  return `(local.set $k (i32.shl ${g('j0')} (i32.const 2)))
      ${loop(V, `${id}v`)}
      ${loop(S, `${id}s`)}`;
}
const rowStart = `(local.set $j0 (select (i32.sub (i32.add ${g('i')} (i32.const 1)) ${g('window')}) (i32.const 0)
        (i32.and (i32.ne ${g('window')} (i32.const 0)) (i32.gt_s (i32.sub (i32.add ${g('i')} (i32.const 1)) ${g('window')}) (i32.const 0)))))
      (local.set $end (i32.shl (i32.add ${g('i')} (i32.const 1)) (i32.const 2)))
      (local.set $row (i32.add ${g('s')} (i32.mul ${g('i')} (i32.shl ${g('lds')} (i32.const 2)))))`;
const sv = (w: Width) => w.op('mul', w.load(`(i32.add ${g('row')} ${g('k')})`), w.v ? `(f32x4.splat ${g('scale')})` : g('scale'));
const ATTN = `(func (export "attn_stats") (param $s i32) (param $lds i32) (param $n i32) (param $scale f32) (param $window i32) (param $out i32)
    ${ATTN_LOCALS}
    (block $done (loop $rows
      (br_if $done (i32.ge_u ${g('i')} ${g('n')}))
      ${rowStart}
      (local.set $mv (v128.const f32x4 -inf -inf -inf -inf)) (local.set $ms (f32.const -inf))
      ${keyLoop('mx', (w) => (w.v ? `(local.set $mv (f32x4.max ${g('mv')} ${sv(w)}))` : `(local.set $ms (f32.max ${g('ms')} ${sv(w)}))`))}
      (local.set $ms (f32.max (f32.max (f32.max ${g('ms')} (f32x4.extract_lane 0 ${g('mv')})) (f32.max (f32x4.extract_lane 1 ${g('mv')}) (f32x4.extract_lane 2 ${g('mv')}))) (f32x4.extract_lane 3 ${g('mv')})))
      (local.set $mv (f32x4.splat ${g('ms')}))
      (local.set $sv (v128.const i32x4 0 0 0 0)) (local.set $ss (f32.const 0))
      ${keyLoop('sm', (w) => (w.v ? `(local.set $sv (f32x4.add ${g('sv')} ${exp(w, `(f32x4.sub ${sv(w)} ${g('mv')})`)}))` : `(local.set $ss (f32.add ${g('ss')} ${exp(w, `(f32.sub ${sv(w)} ${g('ms')})`)}))`))}
      (f32.store (i32.add ${g('out')} (i32.shl ${g('i')} (i32.const 3))) ${g('ms')})
      (f32.store offset=4 (i32.add ${g('out')} (i32.shl ${g('i')} (i32.const 3)))
        (f32.add ${g('ss')} (f32.add (f32.add (f32x4.extract_lane 0 ${g('sv')}) (f32x4.extract_lane 1 ${g('sv')})) (f32.add (f32x4.extract_lane 2 ${g('sv')}) (f32x4.extract_lane 3 ${g('sv')})))))
      (local.set $i (i32.add ${g('i')} (i32.const 1)))
      (br $rows))))
  (func (export "attn_p") (param $s i32) (param $lds i32) (param $p i32) (param $n i32) (param $scale f32) (param $window i32) (param $lse i32)
    ${ATTN_LOCALS} (local $prow i32)
    (block $done (loop $rows
      (br_if $done (i32.ge_u ${g('i')} ${g('n')}))
      ${rowStart}
      (local.set $prow (i32.add ${g('p')} (i32.mul ${g('i')} (i32.shl ${g('n')} (i32.const 2)))))
      (local.set $ms (f32.load (i32.add ${g('lse')} (i32.shl ${g('i')} (i32.const 2)))))
      (local.set $l (f32x4.splat ${g('ms')}))
      ${keyLoop('p', (w) => w.store(`(i32.add ${g('prow')} ${g('k')})`, exp(w, w.op('sub', sv(w), w.v ? g('l') : g('ms')))))}
      (local.set $i (i32.add ${g('i')} (i32.const 1)))
      (br $rows))))`;

// A product's operands in the layouts of the product kernels (codegen/wasm/kernels.ts: x row tiles
// [ceil(T/MR)][K][MR], W panels [P][K][NR]), from any strides: pack(src, so, si, R, K, dst, M) puts
// element (r, k) = src[r·so + k·si] at tile r/M, row k, lane r%M (lanes past R left as they are).
// Tile by tile, k by k, the tile's m ≤ M lanes: the writes in order, the reads M streams along k
// (rows, si = 1) or runs of M (columns, so = 1).
const PACK = `(func (export "pack") (param $src i32) (param $so i32) (param $si i32) (param $R i32) (param $K i32) (param $dst i32) (param $M i32)
    (local $t0 i32) (local $m i32) (local $k i32) (local $rr i32) (local $s i32) (local $sk i32) (local $d i32) (local $sob i32) (local $sib i32)
    (local.set $sob (i32.shl ${g('so')} (i32.const 2))) (local.set $sib (i32.shl ${g('si')} (i32.const 2)))
    (block $done (loop $tiles
      (br_if $done (i32.ge_u ${g('t0')} ${g('R')}))
      (local.set $m (select (i32.sub ${g('R')} ${g('t0')}) ${g('M')} (i32.lt_u (i32.sub ${g('R')} ${g('t0')}) ${g('M')})))
      ;; the tile's first float, and its rows' first source element
      (local.set $d (i32.add ${g('dst')} (i32.shl (i32.mul ${g('t0')} ${g('K')}) (i32.const 2))))
      (local.set $sk (i32.add ${g('src')} (i32.mul ${g('t0')} ${g('sob')})))
      (local.set $k (i32.const 0))
      (block $kend (loop $ks
        (br_if $kend (i32.ge_u ${g('k')} ${g('K')}))
        (local.set $s ${g('sk')}) (local.set $rr (i32.const 0))
        ;; a column operand (so = 1): the tile's lanes of this k lie side by side, four at a time
        (if (i32.eq ${g('so')} (i32.const 1)) (then
          (block $vend (loop $vs
            (br_if $vend (i32.gt_u (i32.add ${g('rr')} (i32.const 4)) ${g('m')}))
            (v128.store (i32.add ${g('d')} (i32.shl ${g('rr')} (i32.const 2))) (v128.load ${g('s')}))
            (local.set $s (i32.add ${g('s')} (i32.const 16)))
            (local.set $rr (i32.add ${g('rr')} (i32.const 4)))
            (br $vs)))))
        (block $rend (loop $rs
          (br_if $rend (i32.ge_u ${g('rr')} ${g('m')}))
          (f32.store (i32.add ${g('d')} (i32.shl ${g('rr')} (i32.const 2))) (f32.load ${g('s')}))
          (local.set $s (i32.add ${g('s')} ${g('sob')}))
          (local.set $rr (i32.add ${g('rr')} (i32.const 1)))
          (br $rs)))
        (local.set $d (i32.add ${g('d')} (i32.shl ${g('M')} (i32.const 2))))
        (local.set $sk (i32.add ${g('sk')} ${g('sib')}))
        (local.set $k (i32.add ${g('k')} (i32.const 1)))
        (br $ks)))
      (local.set $t0 (i32.add ${g('t0')} ${g('M')}))
      (br $tiles))))`;

// AdamW and the gradients' sum of squares (runtime/train/f32/optimizer.ts), in f64 as
// runtime/train/optim.ts computes them in JS doubles, operation for operation, so the masters and
// moments are the same bit for bit (no fused multiply-add; the moments rounded to f32 as stored
// before the update reads them):
//   adamw: gi = g·scale; m = β1·m + (1 − β1)·gi; v = β2·v + ((1 − β2)·gi)·gi;
//   w = w·decay − (stepSize·m)/(√v/bc2 + eps), each of w, m, v rounded to f32 once, stored;
//   sumsq: Σ g² in the order optim.ts sumSquares documents: four lanes (element i in lane i mod 4)
//   over the whole fours, (lane0 + lane2) + (lane1 + lane3), then the tail in order.
// Two elements per f64x2: a four's low pair and its high pair (i8x16.shuffle brings it low).
const ADAM_PARAMS = ['scale', 'b1', 'c1', 'b2', 'c2', 'decay', 'step', 'bc2', 'eps'];
/** f64 of f32 lanes: the low pair of `x`, or its high pair. */
const widen = (x: string, hi: boolean) => `(f64x2.promote_low_f32x4 ${hi ? `(i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${x} ${x})` : x})`;
/** The update of one element (f64) or two (f64x2) from widened g, m, v, w: sets $m, $v (rounded to
 *  f32 as stored) and $w, of the width's suffix (`s` or a half's name). */
function adamUpdate(v: boolean, at: string, gx: string, mx: string, vx: string, wx: string): string {
  const o = (op: string, ...a: string[]) => `(${v ? 'f64x2' : 'f64'}.${op} ${a.join(' ')})`;
  const p = (n: string) => g(v ? `${n}v` : n);
  const round = (x: string) => (v ? `(f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero ${x}))` : `(f64.promote_f32 (f32.demote_f64 ${x}))`);
  return `(local.set $g${at} ${o('mul', gx, p('scale'))})
        (local.set $m${at} ${round(o('add', o('mul', p('b1'), mx), o('mul', p('c1'), g(`g${at}`))))})
        (local.set $v${at} ${round(o('add', o('mul', p('b2'), vx), o('mul', o('mul', p('c2'), g(`g${at}`)), g(`g${at}`))))})
        (local.set $w${at} ${o('sub', o('mul', wx, p('decay')), o('div', o('mul', p('step'), g(`m${at}`)), o('add', o('div', o('sqrt', g(`v${at}`)), p('bc2')), p('eps'))))})`;
}
/** Two f64x2 halves (low, high) as one f32x4. */
const narrow = (lo: string, hi: string) => `(i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero ${lo}) (f32x4.demote_f64x2_zero ${hi}))`;
const OPTIM = `(func (export "adamw") (param $w i32) (param $m i32) (param $v i32) (param $g i32) (param $n i32) ${ADAM_PARAMS.map((n) => `(param $${n} f64)`).join(' ')}
    (local $i i32) (local $end i32) (local $G v128) (local $M v128) (local $V v128) (local $W v128)
    ${['lo', 'hi'].flatMap((h) => ['g', 'm', 'v', 'w'].map((x) => `(local $${x}${h} v128)`)).join(' ')} (local $gs f64) (local $ms f64) (local $vs f64) (local $ws f64)
    ${ADAM_PARAMS.map((n) => `(local $${n}v v128)`).join(' ')}
    ${ADAM_PARAMS.map((n) => `(local.set $${n}v (f64x2.splat ${g(n)}))`).join(' ')}
    (local.set $end (i32.shl ${g('n')} (i32.const 2)))
    (block $vec_end (loop $vec
      (br_if $vec_end (i32.gt_u (i32.add ${g('i')} (i32.const 16)) ${g('end')}))
      (local.set $G (v128.load ${at('g')})) (local.set $M (v128.load ${at('m')})) (local.set $V (v128.load ${at('v')})) (local.set $W (v128.load ${at('w')}))
      ${[false, true].map((hi) => adamUpdate(true, hi ? 'hi' : 'lo', widen(g('G'), hi), widen(g('M'), hi), widen(g('V'), hi), widen(g('W'), hi))).join('\n      ')}
      (v128.store ${at('m')} ${narrow(g('mlo'), g('mhi'))})
      (v128.store ${at('v')} ${narrow(g('vlo'), g('vhi'))})
      (v128.store ${at('w')} ${narrow(g('wlo'), g('whi'))})
      (local.set $i (i32.add ${g('i')} (i32.const 16)))
      (br $vec)))
    (block $one_end (loop $one
      (br_if $one_end (i32.ge_u ${g('i')} ${g('end')}))
      ${adamUpdate(false, 's', `(f64.promote_f32 (f32.load ${at('g')}))`, `(f64.promote_f32 (f32.load ${at('m')}))`, `(f64.promote_f32 (f32.load ${at('v')}))`, `(f64.promote_f32 (f32.load ${at('w')}))`)}
      (f32.store ${at('m')} (f32.demote_f64 ${g('ms')}))
      (f32.store ${at('v')} (f32.demote_f64 ${g('vs')}))
      (f32.store ${at('w')} (f32.demote_f64 ${g('ws')}))
      (local.set $i (i32.add ${g('i')} (i32.const 4)))
      (br $one))))
  (func (export "sumsq") (param $g i32) (param $n i32) (result f64)
    (local $i i32) (local $end i32) (local $G v128) (local $lo v128) (local $hi v128) (local $x f64) (local $ss f64)
    (local.set $end (i32.shl ${g('n')} (i32.const 2)))
    (block $vec_end (loop $vec
      (br_if $vec_end (i32.gt_u (i32.add ${g('i')} (i32.const 16)) ${g('end')}))
      (local.set $G (v128.load ${at('g')}))
      (local.set $lo (f64x2.add ${g('lo')} (f64x2.mul ${widen(g('G'), false)} ${widen(g('G'), false)})))
      (local.set $hi (f64x2.add ${g('hi')} (f64x2.mul ${widen(g('G'), true)} ${widen(g('G'), true)})))
      (local.set $i (i32.add ${g('i')} (i32.const 16)))
      (br $vec)))
    ;; (lane0 + lane2) + (lane1 + lane3)
    (local.set $lo (f64x2.add ${g('lo')} ${g('hi')}))
    (local.set $ss (f64.add (f64x2.extract_lane 0 ${g('lo')}) (f64x2.extract_lane 1 ${g('lo')})))
    (block $one_end (loop $one
      (br_if $one_end (i32.ge_u ${g('i')} ${g('end')}))
      (local.set $x (f64.promote_f32 (f32.load ${at('g')})))
      (local.set $ss (f64.add ${g('ss')} (f64.mul ${g('x')} ${g('x')})))
      (local.set $i (i32.add ${g('i')} (i32.const 4)))
      (br $one)))
    ${g('ss')})`;

/** The module's text: its memory imported (shared; runtime/wasm/threads.ts unsharedModule makes the
 *  unshared form), so that the product kernels' module runs on the same one (runtime/train/f32/rows.ts). */
export function renderTrainRows(): string {
  return `;; archc f32 training engine's row-wise kernels (codegen/wasm/train-rows.ts)
(module
  (import "env" "memory" (memory 1 65536 shared))
  ${PACK}
  ${EXP4}
  ${KERNELS.join('\n  ')}
  ${RMS}
  ${CONV}
  ${ATTN}
  ${OPTIM})
`;
}

/** runtime/train/f32/rows-module.ts for the module's assembled `bytes` (the runtime ships without
 *  wabt: test/train/f32-rows.test.ts checks the file against the text, and rewrites it with
 *  ARCHC_UPDATE_GOLDEN=1). */
export function trainRowsModuleSource(bytes: Uint8Array): string {
  return `// Generated from codegen/wasm/train-rows.ts (renderTrainRows, assembled): do not edit.\n`
    + `// Regenerate: ARCHC_UPDATE_GOLDEN=1 npx vitest run test/train/f32-rows.test.ts\n\n`
    + `/** The f32 training engine's row-wise kernels (${bytes.length} bytes), base64. */\n`
    + `export const TRAIN_ROWS_WASM = ${JSON.stringify(Buffer.from(bytes).toString('base64'))};\n`;
}
