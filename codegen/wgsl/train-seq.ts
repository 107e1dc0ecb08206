// The train entry's families over sequences as WGSL passes (codegen/wgsl/train.ts has the rest and
// the table): the causal conv's and RoPE's backwards, attention_train and attention_backward, and
// ssd_backward, after runtime/cpu/train.ts. Each invocation owns what it writes; a sequence's rows
// come from its record (rowSeq, seqStart, seqLen), so nothing crosses a packed boundary.
//   attention_*      one invocation per (query row, head): the max, then the sum and the output;
//                    the backward's dq per (query row, head) (dy·y kept in scratch0), dk and dv per
//                    (key row, KV head) over the queries that see it.
//   ssd_backward     the recurrence h_t = exp(dt·A)·h_{t−1} + dt·x ⊗ B_t one invocation per
//                    (sequence, head, p): the states forward into scratch0, then dh in reverse into
//                    scratch1 (and dx); dB, dC per (row, group, n), ddt per (row, head) with dA's and
//                    dD's row terms into scratch2, and dA, dD per head. The states are recomputed
//                    from the saved inputs, as the CPU's chunk-state pass does, but per token.

import type { Pass } from '../../runtime/webgpu/shaders.ts';
import { rotaryOffset, rotaryWords } from '../../runtime/webgpu/rotary.ts';
import { type BCtx, ONE, T_ROWS, count, ctxOf, elements, rd, withScratch, wr } from './passes.ts';
import { type Shader, lit } from './shader.ts';

/** dx[t] = Σ_j w[c, j]·dy[t + K − 1 − j] within the sequence; per channel dw[c, j] = Σ_t dy[t]·x[t − K + 1 + j], db[c] = Σ dy. */
export function convBackward(c: BCtx<'conv_backward'>): Pass[] {
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
export function ropeBackward(c: BCtx<'rope_backward'>): Pass[] {
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

export function attentionTrain(c: BCtx<'attention_train'>): Pass[] {
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

export function attentionBackward(c: BCtx<'attention_backward'>): Pass[] {
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

export function ssdBackward(c: BCtx<'ssd_backward'>): Pass[] {
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
