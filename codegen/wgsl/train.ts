// The train entry's own families (runtime/families.ts BACKWARD_FAMILIES) as WGSL passes, after
// runtime/cpu/train.ts (the oracle). Every pass is one invocation per output unit (the ELEMENTS
// template, no barrier, so one rendering serves both profiles) and writes each output whole; sums
// the CPU takes in double are f32 here. Nothing adds into memory another invocation writes (WGSL has
// no float atomics): a sum over rows is one invocation per output element walking the rows (a weight
// gradient, the embedding's scatter-add per (table row, column) over the ids), and per-row partials
// go through scratch into a second pass. Each sequence of a packed batch is its own: the conv, the
// attention and the SSD read their rows' sequence records.
//   causal_lm_loss   rows: lse and (softmax − onehot)/counted, the row's loss into scratch0; one
//                    invocation sums them.
//   attention_*      one invocation per (query row, head): online max, then the sum and the output;
//                    the backward's dq per (query row, head) (dy·y kept in scratch0), dk and dv per
//                    (key row, KV head) over the queries that see it.
//   ssd_backward     the recurrence h_t = exp(dt·A)·h_{t−1} + dt·x ⊗ B_t one invocation per
//                    (sequence, head, p): the states forward into scratch0, then dh in reverse into
//                    scratch1 (and dx); dB, dC per (row, group, n), ddt per (row, head) with dA's and
//                    dD's row terms into scratch2, and dA, dD per head. The states are recomputed
//                    from the saved inputs, as the CPU's chunk-state pass does, but per token.

import type { BackwardFamily } from '../../runtime/families.ts';
import type { BackwardKernelOf, Kernel, View } from '../../runtime/program.ts';
import type { Pass, RunCount } from '../../runtime/webgpu/shaders.ts';
import { rotaryOffset, rotaryWords } from '../../runtime/webgpu/rotary.ts';
import { type Ctx, count, elements, fail, flat, rowsOf } from './passes.ts';
import { type Shader, lit } from './shader.ts';

type BCtx<F extends BackwardFamily> = Ctx & { readonly b: BackwardKernelOf<F> };
type Rows = { readonly wgsl: string; readonly rows: RunCount['rows']; readonly times?: number };

const T_ROWS: Rows = { wgsl: 'nT()', rows: 'T' };
const ONE: Rows = { wgsl: '1u', rows: 'C' };

function viewOf(c: BCtx<BackwardFamily>, name: string): View {
  const o = c.b.inputs[name];
  if (!o || !('buf' in o)) fail(`${c.b.name}: operand ${name} is not an activation view`);
  return o;
}

/** Operand `name` read as rows of `width` ((r, i) → WGSL); a weight or a constant row by its flat index. */
function rd(s: Shader, c: BCtx<BackwardFamily>, name: string, width: number): (r: string, i: string) => string {
  const o = c.b.inputs[name] ?? fail(`${c.b.name} has no operand ${name}`);
  if ('buf' in o && c.entry.buffers[o.buf]!.rows !== 'C') return flat(s, name, o, width);
  const op = s.operand(name);
  return (_r, i) => `${op}(0u, ${i})`;
}

/** The statement storing `val` at (r, i) of output `name` taken as rows of `width`. */
function wr(s: Shader, c: BCtx<BackwardFamily>, name: string, width: number): (r: string, i: string, val: string) => string {
  const v = c.b.outputs[name] ?? fail(`${c.b.name} has no output ${name}`);
  const put = s.output(v, `put_${name}`);
  return v.width === width ? (r, i, val) => `${put}(${r}, ${i}, ${val})`
    : (r, i, val) => `${put}((${r} * ${width}u + ${i}) / ${v.width}u, (${r} * ${width}u + ${i}) % ${v.width}u, ${val})`;
}

/** The rows of view `v` taken as rows of `width`. */
function rowsAs(c: BCtx<BackwardFamily>, v: View, width: number): Rows {
  const r = rowsOf(c.entry, v), times = v.width / width;
  if (!Number.isInteger(times)) fail(`${c.b.name}: a view ${v.width} wide read as rows of ${width}`);
  return { wgsl: times === 1 ? r.wgsl : `(${r.wgsl} * ${times}u)`, rows: r.rows, times };
}

const withScratch = (p: Pass, scratch: Pass['scratch']): Pass => ({ ...p, scratch });
const ctxOf = (c: BCtx<BackwardFamily>): Ctx => c;

/** label(t): the batch's label of row t, after the rotary table in the integer buffer. */
function labels(s: Shader, c: BCtx<BackwardFamily>): void {
  s.raw('label', `fn label(t: u32) -> i32 { return bitcast<i32>(${s.load('ints', `${s.load('ints', 'HDR - 1u')} + nT() * ${rotaryWords(c.rotary)}u + t`)}); }`);
  s.raw('counted', 'fn counted() -> f32 { var n = 0.0; for (var t = 1u; t < nT(); t++) { if (label(t) != -100) { n += 1.0; } } return n; }');
}

function causalLmLoss(c: BCtx<'causal_lm_loss'>): Pass[] {
  const V = c.b.sizes.V;
  const rows = elements(ctxOf(c), 'loss rows', T_ROWS, 1, (s) => {
    labels(s, c);
    const x = rd(s, c, 'logits', V), put = wr(s, c, 'dlogits', V);
    return `var y = -100;
  if (r + 1u < nT()) { y = label(r + 1u); }
  if (y == -100) {
    for (var v = 0u; v < ${V}u; v++) { ${put('r', 'v', '0.0')}; }
    ${s.store(s.scratch(0), 'r', '0.0')};
    return;
  }
  let n = counted();
  var mx = ${x('r', '0u')};
  for (var v = 1u; v < ${V}u; v++) { mx = max(mx, ${x('r', 'v')}); }
  var sum = 0.0;
  for (var v = 0u; v < ${V}u; v++) { sum += exp(${x('r', 'v')} - mx); }
  let lse = mx + log(sum);
  for (var v = 0u; v < ${V}u; v++) { ${put('r', 'v', `exp(${x('r', 'v')} - lse) / n`)}; }
  ${put('r', 'u32(y)', `(exp(${x('r', 'u32(y)')} - lse) - 1.0) / n`)};
  ${s.store('scratch0', 'r', `lse - ${x('r', 'u32(y)')}`)};`;
  });
  const mean = elements(ctxOf(c), 'loss', ONE, 1, (s) => {
    labels(s, c);
    const put = wr(s, c, 'loss', 2);
    return `var sum = 0.0;
  for (var t = 0u; t < nT(); t++) { sum += ${s.load(s.scratch(0), 't')}; }
  let n = counted();
  ${put('0u', '0u', 'sum / n')};
  ${put('0u', '1u', 'n')};`;
  });
  const scratch = { scratch0: count('T', 1, 1) };
  return [withScratch(rows, scratch), withScratch(mean, scratch)];
}

/** dw[n, k] = Σ_r dy[r, n]·x[r, k]: each invocation owns a 4 × 4 block of dw (four rows of n as vec4s
 *  over k), so one pass over the rows reads 8 values for 16 products. */
function matmulWgrad(c: BCtx<'matmul_wgrad'>): Pass[] {
  const { K, N } = c.b.sizes, rows = rowsAs(c, viewOf(c, 'x'), K), KB = Math.ceil(K / 4), NB = Math.ceil(N / 4);
  const quad = [0, 1, 2, 3];
  return [elements(ctxOf(c), 'weight gradient', ONE, NB * KB, (s) => {
    const x = rd(s, c, 'x', K), dy = rd(s, c, 'dy', N), put = wr(s, c, 'dw', N * K);
    const at = (d: number) => (c.b.attrs.transposed ? `(kb + ${d}u) * ${N}u + nb + a` : `(nb + a) * ${K}u + kb + ${d}u`);
    return `let nb = (j / ${KB}u) * 4u;
  let kb = (j % ${KB}u) * 4u;
  ${quad.map((a) => `var a${a} = vec4<f32>(0.0);`).join('\n  ')}
  for (var t = 0u; t < ${rows.wgsl}; t++) {
    let xv = vec4<f32>(${quad.map((d) => x('t', `min(kb + ${d}u, ${K - 1}u)`)).join(', ')});
    ${quad.map((a) => `a${a} += ${dy('t', `min(nb + ${a}u, ${N - 1}u)`)} * xv;`).join('\n    ')}
  }
  for (var a = 0u; a < 4u; a++) {
    if (nb + a >= ${N}u) { break; }
    let v = select(select(a3, a2, a == 2u), select(a1, a0, a == 0u), a < 2u);
    ${quad.map((d) => `if (kb + ${d}u < ${K}u) { ${put('0u', at(d), `v[${d}]`)}; }`).join('\n    ')}
  }`;
  })];
}

function reduceRows(c: BCtx<'reduce_rows'>): Pass[] {
  const { W, N } = c.b.sizes, rows = rowsAs(c, viewOf(c, 'x'), W);
  return [elements(ctxOf(c), 'reduce rows', ONE, N, (s) => {
    const x = rd(s, c, 'x', W), put = wr(s, c, 'y', N);
    return `var acc = 0.0;
  for (var t = 0u; t < ${rows.wgsl}; t++) { for (var i = j; i < ${W}u; i += ${N}u) { acc += ${x('t', 'i')}; } }
  ${put('0u', 'j', 'acc')};`;
  })];
}

/** dx = dy · f(x) per element of a W-wide row (`f` may add helpers to the shader). */
function pointwise(c: BCtx<'clamp_backward' | 'gelu_backward'>, name: string, f: (s: Shader, x: string) => string): Pass[] {
  const W = c.b.sizes.W;
  return [elements(ctxOf(c), name, rowsAs(c, viewOf(c, 'x'), W), W, (s) => {
    const x = rd(s, c, 'x', W), dy = rd(s, c, 'dy', W), put = wr(s, c, 'dx', W);
    return `let v = ${x('r', 'j')};
  ${put('r', 'j', `${dy('r', 'j')} * ${f(s, 'v')}`)};`;
  })];
}

/** 1 where min ≤ x ≤ max (an infinite bound is no test: WGSL has no infinite literal). */
const clampBackward = (c: BCtx<'clamp_backward'>): Pass[] => pointwise(c, 'clamp backward', (_s, v) => {
  const lo = c.b.attrs.min as number, hi = c.b.attrs.max as number;
  const tests = [...(Number.isFinite(lo) ? [`${v} >= ${lit(lo)}`] : []), ...(Number.isFinite(hi) ? [`${v} <= ${lit(hi)}`] : [])];
  return tests.length ? `select(0.0, 1.0, ${tests.join(' && ')})` : '1.0';
});

/** gelu'(v) = Φ(v) + v·φ(v); of the tanh form ½(1 + t) + ½v(1 − t²)·k(1 + 3·0.044715v²). */
const geluBackward = (c: BCtx<'gelu_backward'>): Pass[] => pointwise(c, 'gelu backward', (s, v) => {
  if (!c.b.attrs.tanh) return `(0.5 * (1.0 + erf(${v} * 0.7071067811865476)) + ${v} * exp(-0.5 * ${v} * ${v}) * 0.3989422804014327)`;
  s.raw('gelu_tanh_d', `fn gelu_tanh_d(v: f32) -> f32 {
  let t = tanh(0.7978845608028654 * (v + 0.044715 * v * v * v));
  return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v);
}`);
  return `gelu_tanh_d(${v})`;
});

/**
 * The RMS norms' backward over runs of `part` features (with inv = 1/√(mean(h²) + eps), g = dy·w:
 * dh = inv·(g − h·inv²·mean(g·h))): one invocation per run writes dh's consumers and inv into
 * scratch0; then one per feature of D sums dw = Σ dy·h·inv over the rows.
 */
function rmsPasses(c: BCtx<'rmsnorm_backward' | 'rmsnorm_gated_backward'>, part: number, h: (s: Shader) => (r: string, i: string) => string,
  store: (s: Shader, dh: string) => string): Pass[] {
  const D = c.b.sizes.D, eps = lit(c.b.attrs.eps as number), runs = rowsAs(c, viewOf(c, 'x'), part);
  const w = (s: Shader) => s.operand('w');
  const first = elements(ctxOf(c), 'norm backward', runs, 1, (s) => {
    const hv = h(s), dy = rd(s, c, 'dy', part), wt = w(s);
    s.raw('wcol', `fn wcol(r: u32, i: u32) -> f32 { return ${wt}(0u, (r * ${part}u + i) % ${D}u); }`);
    return `var ss = 0.0;
  var gh = 0.0;
  for (var i = 0u; i < ${part}u; i++) { let v = ${hv('r', 'i')}; ss += v * v; gh += ${dy('r', 'i')} * wcol(r, i) * v; }
  let inv = 1.0 / sqrt(ss / ${part}.0 + ${eps});
  let m = inv * inv * gh / ${part}.0;
  for (var i = 0u; i < ${part}u; i++) {
    let dh = inv * (${dy('r', 'i')} * wcol(r, i) - ${hv('r', 'i')} * m);
    ${store(s, 'dh')}
  }
  ${s.store(s.scratch(0), 'r', 'inv')};`;
  });
  const rows = rowsAs(c, viewOf(c, 'x'), D);
  const dw = elements(ctxOf(c), 'norm weight gradient', ONE, D, (s) => {
    const hv = h(s), put = wr(s, c, 'dw', D);
    const dyD = rd(s, c, 'dy', D);
    const hD = (r: string, i: string) => hv(`((${r} * ${D}u + ${i}) / ${part}u)`, `((${r} * ${D}u + ${i}) % ${part}u)`);
    return `var acc = 0.0;
  for (var t = 0u; t < ${rows.wgsl}; t++) { acc += ${dyD('t', 'j')} * ${hD('t', 'j')} * ${s.load(s.scratch(0), `(t * ${D}u + j) / ${part}u`)}; }
  ${put('0u', 'j', 'acc')};`;
  });
  const scratch = { scratch0: count(runs.rows, runs.times!, 1) };
  return [withScratch(first, scratch), withScratch(dw, scratch)];
}

const rmsnormBackward = (c: BCtx<'rmsnorm_backward'>): Pass[] => {
  const D = c.b.sizes.D;
  return rmsPasses(c, D, (s) => rd(s, c, 'x', D), (s, dh) => `${wr(s, c, 'dx', D)('r', 'i', dh)};`);
};

/** h = x · silu(z): dx = dh · silu(z), dz = dh · x · σ(z)(1 + z(1 − σ(z))). */
const rmsnormGatedBackward = (c: BCtx<'rmsnorm_gated_backward'>): Pass[] => {
  const part = c.b.sizes.D / (c.b.attrs.groups as number);
  const hOf = (s: Shader) => {
    const x = rd(s, c, 'x', part), z = rd(s, c, 'z', part);
    s.raw('hg', `fn hg(r: u32, i: u32) -> f32 { return ${x('r', 'i')} * silu(${z('r', 'i')}); }`);
    return (r: string, i: string) => `hg(${r}, ${i})`;
  };
  return rmsPasses(c, part, hOf, (s, dh) => {
    const x = rd(s, c, 'x', part), z = rd(s, c, 'z', part);
    return `let zv = ${z('r', 'i')};
    let sg = 1.0 / (1.0 + exp(-zv));
    ${wr(s, c, 'dx', part)('r', 'i', `${dh} * zv * sg`)};
    ${wr(s, c, 'dz', part)('r', 'i', `${dh} * ${x('r', 'i')} * sg * (1.0 + zv * (1.0 - sg))`)};`;
  });
};

/** With xhat = (x − mean)·inv, g = dy·w: dx = inv·(g − mean(g) − xhat·mean(g·xhat)); mean and inv
 *  into scratch0; dw = Σ dy·xhat, db = Σ dy per feature. */
function layernormBackward(c: BCtx<'layernorm_backward'>): Pass[] {
  const D = c.b.sizes.D, eps = lit(c.b.attrs.eps as number), rows = rowsAs(c, viewOf(c, 'x'), D);
  const first = elements(ctxOf(c), 'layernorm backward', rows, 1, (s) => {
    const x = rd(s, c, 'x', D), dy = rd(s, c, 'dy', D), w = s.operand('w'), put = wr(s, c, 'dx', D);
    return `var mean = 0.0;
  for (var i = 0u; i < ${D}u; i++) { mean += ${x('r', 'i')}; }
  mean = mean / ${D}.0;
  var vr = 0.0;
  for (var i = 0u; i < ${D}u; i++) { let d = ${x('r', 'i')} - mean; vr += d * d; }
  let inv = 1.0 / sqrt(vr / ${D}.0 + ${eps});
  var mg = 0.0;
  var mgx = 0.0;
  for (var i = 0u; i < ${D}u; i++) { let g = ${dy('r', 'i')} * ${w}(0u, i); mg += g; mgx += g * (${x('r', 'i')} - mean) * inv; }
  mg = mg / ${D}.0;
  mgx = mgx / ${D}.0;
  for (var i = 0u; i < ${D}u; i++) { ${put('r', 'i', `inv * (${dy('r', 'i')} * ${w}(0u, i) - mg - (${x('r', 'i')} - mean) * inv * mgx)`)}; }
  ${s.store(s.scratch(0), '2u * r', 'mean')};
  ${s.store('scratch0', '2u * r + 1u', 'inv')};`;
  });
  const wb = elements(ctxOf(c), 'layernorm weight gradient', ONE, D, (s) => {
    const x = rd(s, c, 'x', D), dy = rd(s, c, 'dy', D), dw = wr(s, c, 'dw', D), db = wr(s, c, 'db', D);
    return `var aw = 0.0;
  var ab = 0.0;
  for (var t = 0u; t < ${rows.wgsl}; t++) {
    let g = ${dy('t', 'j')};
    aw += g * (${x('t', 'j')} - ${s.load(s.scratch(0), '2u * t')}) * ${s.load('scratch0', '2u * t + 1u')};
    ab += g;
  }
  ${dw('0u', 'j', 'aw')};
  ${db('0u', 'j', 'ab')};`;
  });
  const scratch = { scratch0: count(rows.rows, 2 * rows.times!, 1) };
  return [withScratch(first, scratch), withScratch(wb, scratch)];
}

function softmaxBackward(c: BCtx<'softmax_backward'>): Pass[] {
  const D = c.b.sizes.D;
  return [elements(ctxOf(c), 'softmax backward', rowsAs(c, viewOf(c, 'y'), D), 1, (s) => {
    const y = rd(s, c, 'y', D), dy = rd(s, c, 'dy', D), put = wr(s, c, 'dx', D);
    return `var sd = 0.0;
  for (var i = 0u; i < ${D}u; i++) { sd += ${dy('r', 'i')} * ${y('r', 'i')}; }
  for (var i = 0u; i < ${D}u; i++) { ${put('r', 'i', `${y('r', 'i')} * (${dy('r', 'i')} - sd)`)}; }`;
  })];
}

function topkBackward(c: BCtx<'topk_backward'>): Pass[] {
  const { D, K } = c.b.sizes;
  return [elements(ctxOf(c), 'topk backward', rowsAs(c, viewOf(c, 'x'), D), 1, (s) => {
    const x = rd(s, c, 'x', D), idx = rd(s, c, 'indices', K), dv = rd(s, c, 'dy', K), put = wr(s, c, 'dx', D);
    const get = `get_put_dx`;
    return `var sum = 0.0;
  var dot = 0.0;
  for (var q = 0u; q < ${K}u; q++) { let v = ${x('r', `u32(${idx('r', 'q')})`)}; sum += v; dot += ${dv('r', 'q')} * v; }
  for (var i = 0u; i < ${D}u; i++) { ${put('r', 'i', '0.0')}; }
  for (var q = 0u; q < ${K}u; q++) {
    let at = u32(${idx('r', 'q')});
    ${put('r', 'at', `${get}(r, at) + ${c.b.attrs.normalize ? `${dv('r', 'q')} / sum - dot / (sum * sum)` : dv('r', 'q')}`)};
  }`;
  })];
}

/** One invocation per (table row, column) walking the ids: no two write one element. */
function embeddingBackward(c: BCtx<'embedding_backward'>): Pass[] {
  const { V, D } = c.b.sizes, ids = c.b.inputs.ids as { input: string };
  const id = ids.input === 'tokens' ? 'token(t)' : 'position(t)';
  return [elements(ctxOf(c), 'embedding backward', ONE, V * D, (s) => {
    const dy = rd(s, c, 'dy', D), put = wr(s, c, 'dw', V * D);
    return `let v = j / ${D}u;
  let col = j % ${D}u;
  var acc = 0.0;
  for (var t = 0u; t < nT(); t++) { if (${id} == v) { acc += ${dy('t', 'col')}; } }
  ${put('0u', 'j', 'acc')};`;
  })];
}

/** dx[t] = Σ_j w[c, j]·dy[t + K − 1 − j] within the sequence; per channel dw[c, j] = Σ_t dy[t]·x[t − K + 1 + j], db[c] = Σ dy. */
function convBackward(c: BCtx<'conv_backward'>): Pass[] {
  const { C, K } = c.b.sizes;
  const dx = elements(ctxOf(c), 'conv backward', T_ROWS, C, (s) => {
    const dy = rd(s, c, 'dy', C), w = s.operand('w'), put = wr(s, c, 'dx', C);
    return `let sq = rowSeq(r);
  let end = seqStart(sq) + seqLen(sq);
  var acc = 0.0;
  for (var q = 0u; q < ${K}u; q++) {
    let t = r + ${K - 1}u - q;
    if (t < end) { acc += ${w}(0u, j * ${K}u + q) * ${dy('t', 'j')}; }
  }
  ${put('r', 'j', 'acc')};`;
  });
  const dwb = elements(ctxOf(c), 'conv weight gradient', ONE, C, (s) => {
    const x = rd(s, c, 'x', C), dy = rd(s, c, 'dy', C), dw = wr(s, c, 'dw', C * K), db = wr(s, c, 'db', C);
    return `var acc: array<f32, ${K}>;
  var ab = 0.0;
  for (var t = 0u; t < nT(); t++) {
    let g = ${dy('t', 'j')};
    let st = seqStart(rowSeq(t));
    ab += g;
    for (var q = 0u; q < ${K}u; q++) { if (t + q >= st + ${K - 1}u) { acc[q] += g * ${x(`t + q - ${K - 1}u`, 'j')}; } }
  }
  for (var q = 0u; q < ${K}u; q++) { ${dw('0u', `j * ${K}u + q`, 'acc[q]')}; }
  ${db('0u', 'j', 'ab')};`;
  });
  return [dx, dwb];
}

/** The inverse rotation, from the run's rotary table (the forward's cos and sin). */
function ropeBackward(c: BCtx<'rope_backward'>): Pass[] {
  const { H, Dh, R } = c.b.sizes, half = R / 2;
  return [elements(ctxOf(c), 'rope backward', T_ROWS, H * Dh, (s) => {
    const dy = rd(s, c, 'dy', H * Dh), put = wr(s, c, 'dx', H * Dh);
    if (half === 0) return `${put('r', 'j', dy('r', 'j'))};`;
    const at = `${s.load('ints', 'HDR - 1u')} + r * ${rotaryWords(c.rotary)}u + ${rotaryOffset(c.rotary, R, c.b.attrs.theta as number)}u + q`;
    return `let d = j % ${Dh}u;
  if (d >= ${R}u) { ${put('r', 'j', dy('r', 'j'))}; return; }
  let o = j - d;
  let q = d % ${half}u;
  let cs = bitcast<f32>(${s.load('ints', at)});
  let sn = bitcast<f32>(${s.load('ints', `${at} + ${half}u`)});
  let lo = ${dy('r', 'o + q')};
  let hi = ${dy('r', `o + q + ${half}u`)};
  ${put('r', 'j', `select(lo * cs + hi * sn, hi * cs - lo * sn, d >= ${half}u)`)};`;
  })];
}

/** score(i, h, j): q_i·k_j of head h (its KV head's keys), scaled; first(i): the first key row query i sees. */
function attentionHelpers(s: Shader, c: BCtx<'attention_train' | 'attention_backward'>): { q: (r: string, i: string) => string; k: (r: string, i: string) => string; v: (r: string, i: string) => string } {
  const { H, KV, Dh } = c.b.sizes, win = c.b.attrs.window as number | undefined;
  const q = rd(s, c, 'q', H * Dh), k = rd(s, c, 'k', KV * Dh), v = rd(s, c, 'v', KV * Dh);
  s.raw('score', `fn score(i: u32, h: u32, j: u32) -> f32 {
  let kh = h / ${H / KV}u;
  var d = 0.0;
  for (var e = 0u; e < ${Dh}u; e++) { d += ${q('i', `h * ${Dh}u + e`)} * ${k('j', `kh * ${Dh}u + e`)}; }
  return d * ${lit(c.b.attrs.scale as number)};
}`);
  s.raw('first', `fn first(i: u32) -> u32 {
  let st = seqStart(rowSeq(i));
  ${win ? `return select(st, max(st, i + 1u - ${win}u), i + 1u >= ${win}u);` : 'return st;'}
}`);
  return { q, k, v };
}

function attentionTrain(c: BCtx<'attention_train'>): Pass[] {
  const { H, KV, Dh } = c.b.sizes;
  return [elements(ctxOf(c), 'attention', T_ROWS, H, (s) => {
    const { v } = attentionHelpers(s, c), y = wr(s, c, 'y', H * Dh), lse = wr(s, c, 'lse', H);
    return `let kh = j / ${H / KV}u;
  var mx = -3.0e38;
  for (var t = first(r); t <= r; t++) { mx = max(mx, score(r, j, t)); }
  var sum = 0.0;
  var acc: array<f32, ${Dh}>;
  for (var t = first(r); t <= r; t++) {
    let p = exp(score(r, j, t) - mx);
    sum += p;
    for (var e = 0u; e < ${Dh}u; e++) { acc[e] += p * ${v('t', `kh * ${Dh}u + e`)}; }
  }
  for (var e = 0u; e < ${Dh}u; e++) { ${y('r', `j * ${Dh}u + e`, 'acc[e] / sum')}; }
  ${lse('r', 'j', 'mx + log(sum)')};`;
  })];
}

function attentionBackward(c: BCtx<'attention_backward'>): Pass[] {
  const { H, KV, Dh } = c.b.sizes, group = H / KV, win = c.b.attrs.window as number | undefined, scale = lit(c.b.attrs.scale as number);
  const dq = elements(ctxOf(c), 'attention backward (queries)', T_ROWS, H, (s) => {
    const { k, v } = attentionHelpers(s, c), y = rd(s, c, 'y', H * Dh), dy = rd(s, c, 'dy', H * Dh), lse = rd(s, c, 'lse', H), put = wr(s, c, 'dq', H * Dh);
    return `let kh = j / ${group}u;
  var rd = 0.0;
  for (var e = 0u; e < ${Dh}u; e++) { rd += ${dy('r', `j * ${Dh}u + e`)} * ${y('r', `j * ${Dh}u + e`)}; }
  ${s.store(s.scratch(0), `r * ${H}u + j`, 'rd')};
  var acc: array<f32, ${Dh}>;
  for (var t = first(r); t <= r; t++) {
    let p = exp(score(r, j, t) - ${lse('r', 'j')});
    var dp = 0.0;
    for (var e = 0u; e < ${Dh}u; e++) { dp += ${dy('r', `j * ${Dh}u + e`)} * ${v('t', `kh * ${Dh}u + e`)}; }
    let ds = p * (dp - rd) * ${scale};
    for (var e = 0u; e < ${Dh}u; e++) { acc[e] += ds * ${k('t', `kh * ${Dh}u + e`)}; }
  }
  for (var e = 0u; e < ${Dh}u; e++) { ${put('r', `j * ${Dh}u + e`, 'acc[e]')}; }`;
  });
  const dkv = elements(ctxOf(c), 'attention backward (keys)', T_ROWS, KV, (s) => {
    const { q, v } = attentionHelpers(s, c), dy = rd(s, c, 'dy', H * Dh), lse = rd(s, c, 'lse', H);
    const dk = wr(s, c, 'dk', KV * Dh), dv = wr(s, c, 'dv', KV * Dh);
    const sq = 'rowSeq(r)';
    return `let end = ${win ? `min(seqStart(${sq}) + seqLen(${sq}), r + ${win}u)` : `seqStart(${sq}) + seqLen(${sq})`};
  var ak: array<f32, ${Dh}>;
  var av: array<f32, ${Dh}>;
  for (var i = r; i < end; i++) {
    for (var h = j * ${group}u; h < (j + 1u) * ${group}u; h++) {
      let p = exp(score(i, h, r) - ${lse('i', 'h')});
      var dp = 0.0;
      for (var e = 0u; e < ${Dh}u; e++) { dp += ${dy('i', `h * ${Dh}u + e`)} * ${v('r', `j * ${Dh}u + e`)}; }
      let ds = p * (dp - ${s.load(s.scratch(0), `i * ${H}u + h`)}) * ${scale};
      for (var e = 0u; e < ${Dh}u; e++) {
        av[e] += p * ${dy('i', `h * ${Dh}u + e`)};
        ak[e] += ds * ${q('i', `h * ${Dh}u + e`)};
      }
    }
  }
  for (var e = 0u; e < ${Dh}u; e++) {
    ${dk('r', `j * ${Dh}u + e`, 'ak[e]')};
    ${dv('r', `j * ${Dh}u + e`, 'av[e]')};
  }`;
  });
  const scratch = { scratch0: count('T', H, 1) };
  return [withScratch(dq, scratch), withScratch(dkv, scratch)];
}

function ssdBackward(c: BCtx<'ssd_backward'>): Pass[] {
  const { H, P, G, N } = c.b.sizes, hpg = H / G, HPN = H * P * N;
  const ops = (s: Shader) => ({
    x: rd(s, c, 'x', H * P), dt: rd(s, c, 'dt', H), B: rd(s, c, 'B', G * N), C: rd(s, c, 'C', G * N), dy: rd(s, c, 'dy', H * P),
    A: (h: string) => `${s.operand('A')}(0u, ${h})`, D: (h: string) => `${s.operand('D')}(0u, ${h})`,
  });
  const at = (t: string, h: string, p: string, n: string) => `((${t} * ${H}u + ${h}) * ${P}u + ${p}) * ${N}u + ${n}`;
  const scan = elements(ctxOf(c), 'ssd backward (scan)', { wgsl: 'nS()', rows: 'S' }, H * P, (s) => {
    const o = ops(s), dx = wr(s, c, 'dx', H * P);
    const s0 = s.scratch(0), s1 = s.scratch(1);
    return `let h = j / ${P}u;
  let p = j % ${P}u;
  let g = h / ${hpg}u;
  let st = seqStart(r);
  let end = st + seqLen(r);
  let a = ${o.A('h')};
  var hs: array<f32, ${N}>;
  for (var t = st; t < end; t++) {
    let dtv = ${o.dt('t', 'h')};
    let da = exp(dtv * a);
    let xv = dtv * ${o.x('t', 'j')};
    for (var n = 0u; n < ${N}u; n++) {
      hs[n] = da * hs[n] + xv * ${o.B('t', `g * ${N}u + n`)};
      ${s.store(s0, at('t', 'h', 'p', 'n'), 'hs[n]')};
    }
  }
  var carry: array<f32, ${N}>;
  let dd = ${o.D('h')};
  for (var u = end; u > st; u--) {
    let t = u - 1u;
    let dtv = ${o.dt('t', 'h')};
    let da = exp(dtv * a);
    let dyv = ${o.dy('t', 'j')};
    var bd = 0.0;
    for (var n = 0u; n < ${N}u; n++) {
      let dh = carry[n] + ${o.C('t', `g * ${N}u + n`)} * dyv;
      ${s.store(s1, at('t', 'h', 'p', 'n'), 'dh')};
      bd += ${o.B('t', `g * ${N}u + n`)} * dh;
      carry[n] = da * dh;
    }
    ${dx('t', 'j', 'dd * dyv + dtv * bd')};
  }`;
  });
  const bc = elements(ctxOf(c), 'ssd backward (B, C)', T_ROWS, G * N, (s) => {
    const o = ops(s), dB = wr(s, c, 'dB', G * N), dC = wr(s, c, 'dC', G * N);
    return `let g = j / ${N}u;
  let n = j % ${N}u;
  var ab = 0.0;
  var ac = 0.0;
  for (var h = g * ${hpg}u; h < (g + 1u) * ${hpg}u; h++) {
    let dtv = ${o.dt('r', 'h')};
    for (var p = 0u; p < ${P}u; p++) {
      let i = ${at('r', 'h', 'p', 'n')};
      ab += dtv * ${o.x('r', `h * ${P}u + p`)} * ${s.load(s.scratch(1), 'i')};
      ac += ${o.dy('r', `h * ${P}u + p`)} * ${s.load(s.scratch(0), 'i')};
    }
  }
  ${dB('r', 'j', 'ab')};
  ${dC('r', 'j', 'ac')};`;
  });
  const dt = elements(ctxOf(c), 'ssd backward (dt)', T_ROWS, H, (s) => {
    const o = ops(s), ddt = wr(s, c, 'ddt', H);
    return `let g = j / ${hpg}u;
  let head = r == seqStart(rowSeq(r));
  let a = ${o.A('j')};
  let dtv = ${o.dt('r', 'j')};
  let da = exp(dtv * a);
  var xb = 0.0;
  var hd = 0.0;
  var yx = 0.0;
  for (var p = 0u; p < ${P}u; p++) {
    var bd = 0.0;
    for (var n = 0u; n < ${N}u; n++) {
      let i = ${at('r', 'j', 'p', 'n')};
      let dh = ${s.load(s.scratch(1), 'i')};
      bd += ${o.B('r', `g * ${N}u + n`)} * dh;
      if (!head) { hd += ${s.load(s.scratch(0), `i - ${HPN}u`)} * dh; }
    }
    let xv = ${o.x('r', `j * ${P}u + p`)};
    xb += xv * bd;
    yx += ${o.dy('r', `j * ${P}u + p`)} * xv;
  }
  ${ddt('r', 'j', 'xb + a * da * hd')};
  ${s.store(s.scratch(2), `2u * (r * ${H}u + j)`, 'dtv * da * hd')};
  ${s.store('scratch2', `2u * (r * ${H}u + j) + 1u`, 'yx')};`;
  });
  const ad = elements(ctxOf(c), 'ssd backward (A, D)', ONE, H, (s) => {
    const dA = wr(s, c, 'dA', H), dD = wr(s, c, 'dD', H);
    return `var aa = 0.0;
  var ad = 0.0;
  for (var t = 0u; t < nT(); t++) { aa += ${s.load(s.scratch(2), `2u * (t * ${H}u + j)`)}; ad += ${s.load('scratch2', `2u * (t * ${H}u + j) + 1u`)}; }
  ${dA('0u', 'j', 'aa')};
  ${dD('0u', 'j', 'ad')};`;
  });
  const scratch = { scratch0: count('T', HPN, 1), scratch1: count('T', HPN, 1), scratch2: count('T', 2 * H, 1) };
  return [scan, bc, dt, ad].map((p) => withScratch(p, scratch));
}

/** Each train family's passes: a table, so a family without WGSL is a type error. */
export const TRAIN_PASSES: { readonly [F in BackwardFamily]: (c: BCtx<F>) => Pass[] } = {
  causal_lm_loss: causalLmLoss, matmul_wgrad: matmulWgrad, reduce_rows: reduceRows, clamp_backward: clampBackward,
  rmsnorm_backward: rmsnormBackward, rmsnorm_gated_backward: rmsnormGatedBackward, layernorm_backward: layernormBackward,
  gelu_backward: geluBackward, softmax_backward: softmaxBackward, topk_backward: topkBackward, embedding_backward: embeddingBackward,
  conv_backward: convBackward, rope_backward: ropeBackward, attention_train: attentionTrain, attention_backward: attentionBackward,
  ssd_backward: ssdBackward,
};

/** The passes of a train entry's own kernel `b` (the context's `k` is `b`, as the Shader reads it). */
export function trainPasses(c: Omit<Ctx, 'k'>, b: BackwardKernelOf<BackwardFamily>): Pass[] {
  const ctx = { ...c, k: b as unknown as Kernel, b } as BCtx<BackwardFamily>;
  return (TRAIN_PASSES[b.family] as (c: BCtx<BackwardFamily>) => Pass[])(ctx);
}
