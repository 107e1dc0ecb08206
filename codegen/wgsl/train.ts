// The train entry's own families (runtime/families.ts BACKWARD_FAMILIES) as WGSL passes, after
// runtime/cpu/train.ts (the oracle). Every pass is one invocation per output unit (the ELEMENTS
// template, no barrier, so one rendering serves both profiles) and writes each output whole; sums
// the CPU takes in double are f32 here. Nothing adds into memory another invocation writes (WGSL has
// no float atomics): a sum over rows is one invocation per output element walking the rows (a weight
// gradient, the embedding's scatter-add per (table row, column) over the ids), and per-row partials
// go through scratch into a second pass. Each sequence of a packed batch is its own: the conv, the
// attention and the SSD (train-seq.ts) read their rows' sequence records.
//   causal_lm_loss   rows: lse and (softmax − onehot)/counted, the row's loss into scratch0; one
//                    invocation sums them.

import type { BackwardFamily } from '../../runtime/families.ts';
import { type BackwardKernelOf, type Entry, type Kernel, type Program, bf16States, isBackward } from '../../runtime/program.ts';
import type { KernelShaders, Pass, WgslEntry } from '../../runtime/webgpu/shaders.ts';
import { rotaryWords } from '../../runtime/webgpu/rotary.ts';
import { type BCtx, type Ctx, ONE, T_ROWS, count, ctxOf, elements, fail, rd, rowsAs, viewOf, withScratch, wr } from './passes.ts';
import { type WgslSchedule, type WgslTarget, wgslSchedule } from './schedule.ts';
import { type Dtypes, type Shader, lit } from './shader.ts';
import { attentionBackward, attentionTrain, convBackward, ropeBackward, ssdBackward } from './train-seq.ts';

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

/** The grouped experts' backward: per (row, chosen expert, hidden unit) a, b and u = W_outᵀ·dy into
 *  scratch0 as (da, db, h, u); then dx per (row, column), dgates per (row, choice), each expert's
 *  list of choices, and its dw_in and dw_out per element walking that list. */
function expertsBackward(c: BCtx<'experts_backward'>): Pass[] {
  const { E, H, I, K } = c.b.sizes, KI = K * I;
  const ops = (s: Shader) => ({ x: rd(s, c, 'x', H), idx: rd(s, c, 'idx', K), g: rd(s, c, 'gates', K), dy: rd(s, c, 'dy', H), wi: rd(s, c, 'w_in', 2 * I * H), wo: rd(s, c, 'w_out', H * I) });
  /** scratch0's slot `f` (0 da, 1 db, 2 h, 3 u) of row t, choice jk, hidden unit hu (`i` is the invocation's). */
  const at = (t: string, jk: string, hu: string, f: string) => `4u * (${t} * ${KI}u + ${jk} * ${I}u + ${hu}) + ${f}`;
  const hidden = elements(ctxOf(c), 'experts backward (hidden)', T_ROWS, KI, (s) => {
    const o = ops(s), put = (f: number, v: string) => `${s.store(s.scratch(0), at('r', 'jk', 'hu', `${f}u`), v)};`;
    return `let jk = j / ${I}u;
  let hu = j % ${I}u;
  let e = u32(${o.idx('r', 'jk')});
  var a = 0.0;
  var b = 0.0;
  var u = 0.0;
  for (var col = 0u; col < ${H}u; col++) {
    let xv = ${o.x('r', 'col')};
    a += xv * ${o.wi('0u', `(e * ${2 * I}u + hu) * ${H}u + col`)};
    b += xv * ${o.wi('0u', `(e * ${2 * I}u + ${I}u + hu) * ${H}u + col`)};
    u += ${o.dy('r', 'col')} * ${o.wo('0u', `(e * ${H}u + col) * ${I}u + hu`)};
  }
  let sg = 1.0 / (1.0 + exp(-a));
  let dh = ${o.g('r', 'jk')} * u;
  ${put(0, 'dh * b * sg * (1.0 + a * (1.0 - sg))')}
  ${put(1, 'dh * a * sg')}
  ${put(2, 'a * sg * b')}
  ${put(3, 'u')}`;
  });
  const dx = elements(ctxOf(c), 'experts backward (x)', T_ROWS, H, (s) => {
    const o = ops(s), put = wr(s, c, 'dx', H);
    return `var acc = 0.0;
  for (var jk = 0u; jk < ${K}u; jk++) {
    let e = u32(${o.idx('r', 'jk')});
    for (var i = 0u; i < ${I}u; i++) {
      acc += ${s.load(s.scratch(0), at('r', 'jk', 'i', '0u'))} * ${o.wi('0u', `(e * ${2 * I}u + i) * ${H}u + j`)}
        + ${s.load('scratch0', at('r', 'jk', 'i', '1u'))} * ${o.wi('0u', `(e * ${2 * I}u + ${I}u + i) * ${H}u + j`)};
    }
  }
  ${put('r', 'j', 'acc')};`;
  });
  const dg = elements(ctxOf(c), 'experts backward (gates)', T_ROWS, K, (s) => {
    const put = wr(s, c, 'dgates', K);
    return `var acc = 0.0;
  for (var i = 0u; i < ${I}u; i++) { acc += ${s.load(s.scratch(0), at('r', 'j', 'i', '2u'))} * ${s.load('scratch0', at('r', 'j', 'i', '3u'))}; }
  ${put('r', 'j', 'acc')};`;
  });
  // the choices of each expert, t·K + jk in row order, into scratch1 (E lists of up to T·K) and their
  // counts into scratch2; then one invocation per weight element walks its expert's list only
  const lists = elements(ctxOf(c), 'experts backward (lists)', ONE, E, (s) => {
    const o = ops(s);
    return `var n = 0u;
  for (var q = 0u; q < nT() * ${K}u; q++) {
    if (u32(${o.idx(`q / ${K}u`, `q % ${K}u`)}) == j) { ${s.store(s.scratch(1), `j * nT() * ${K}u + n`, 'f32(q)')}; n++; }
  }
  ${s.store(s.scratch(2), 'j', 'f32(n)')};`;
  });
  const walk = (s: Shader, body: string) => `var acc = 0.0;
  for (var m = 0u; m < u32(${s.load(s.scratch(2), 'e')}); m++) {
    let q = u32(${s.load(s.scratch(1), `e * nT() * ${K}u + m`)});
    let t = q / ${K}u;
    let jk = q % ${K}u;
    acc += ${body};
  }`;
  const dwIn = elements(ctxOf(c), 'experts backward (w_in)', ONE, E * 2 * I * H, (s) => {
    const o = ops(s), put = wr(s, c, 'dw_in', E * 2 * I * H);
    return `let e = j / ${2 * I * H}u;
  let row = (j / ${H}u) % ${2 * I}u;
  let col = j % ${H}u;
  ${walk(s, `${s.load(s.scratch(0), at('t', 'jk', `row % ${I}u`, `select(0u, 1u, row >= ${I}u)`))} * ${o.x('t', 'col')}`)}
  ${put('0u', 'j', 'acc')};`;
  });
  const dwOut = elements(ctxOf(c), 'experts backward (w_out)', ONE, E * H * I, (s) => {
    const o = ops(s), put = wr(s, c, 'dw_out', E * H * I);
    return `let e = j / ${H * I}u;
  let col = (j / ${I}u) % ${H}u;
  let hu = j % ${I}u;
  ${walk(s, `${o.g('t', 'jk')} * ${o.dy('t', 'col')} * ${s.load(s.scratch(0), at('t', 'jk', 'hu', '2u'))}`)}
  ${put('0u', 'j', 'acc')};`;
  });
  const scratch = { scratch0: count('T', 4 * KI, 1), scratch1: count('T', E * K, 1), scratch2: count('C', E, 1) };
  return [hidden, dx, dg, lists, dwIn, dwOut].map((p) => withScratch(p, scratch));
}

/** Each train family's passes: a table, so a family without WGSL is a type error. */
export const TRAIN_PASSES: { readonly [F in BackwardFamily]: (c: BCtx<F>) => Pass[] } = {
  causal_lm_loss: causalLmLoss, matmul_wgrad: matmulWgrad, reduce_rows: reduceRows, clamp_backward: clampBackward,
  rmsnorm_backward: rmsnormBackward, rmsnorm_gated_backward: rmsnormGatedBackward, layernorm_backward: layernormBackward,
  gelu_backward: geluBackward, softmax_backward: softmaxBackward, topk_backward: topkBackward, embedding_backward: embeddingBackward,
  conv_backward: convBackward, rope_backward: ropeBackward, attention_train: attentionTrain, attention_backward: attentionBackward,
  ssd_backward: ssdBackward, experts_backward: expertsBackward,
};

/** The passes of a train entry's own kernel `b` (the context's `k` is `b`, as the Shader reads it). */
function trainPasses(c: Omit<Ctx, 'k'>, b: BackwardKernelOf<BackwardFamily>): Pass[] {
  const ctx = { ...c, k: b as unknown as Kernel, b } as BCtx<BackwardFamily>;
  return (TRAIN_PASSES[b.family] as (c: BCtx<BackwardFamily>) => Pass[])(ctx);
}

/** The program's train entry for one profile's target: its forward kernels by `forward` (the
 *  inference families, render.ts), its own by the table above (the same for both profiles). */
export function renderTrain(program: Program, target: WgslTarget, c: { dtypes: Dtypes; header: number; rotary: Ctx['rotary'] }, forward: (c: Ctx) => Pass[]): WgslEntry {
  const train = program.train ?? fail('the program has no train entry');
  const entry = train as unknown as Entry;
  const chunks = new Set(train.kernels.flatMap((k) => (k.family === 'ssd' ? [k.sizes.chunk] : [])));
  if (chunks.size > 1) fail(`the train entry has chunked scans of different chunk lengths (${[...chunks].join(', ')})`);
  // its forward reads no state the inference entries leave: it starts from fresh f32 states
  if (bf16States(program).length) fail('a program with a train entry keeps its SSM states in f32');
  const kernels = train.kernels.map((k): KernelShaders => {
    if (isBackward(k)) return { kernel: k.name, passes: trainPasses({ ...c, entry, sched: { workgroup: target.workgroup } as WgslSchedule, wg: target.workgroup }, k) };
    const sched = wgslSchedule(k, target);
    return { kernel: k.name, passes: forward({ ...c, k, entry, sched, wg: sched.workgroup }) };
  });
  return { kernels, chunk: [...chunks][0] ?? 0 };
}
