// The routing families of a mixture of experts as WGSL passes, one invocation per output element
// (the ELEMENTS template): softmax over D-wide parts of a row (max, then the sum of exponentials,
// per element), top-k by rank (element j of a row is the value that exactly j others precede:
// larger, or equal at a lower index), and the experts in two passes — each token's k experts' hidden
// rows silu(gate)·up into scratch1 [rows, K·I], then y = Σ_j gate_j · down_e(h_j) — reading only the
// chosen experts' weights. Sums in f32 (the tests allow 2e-4 of the CPU's). Rows by index: gather's
// element (r, j) reads row idx[r, j / D] of x (0 outside [0, N)); scatter's element (r, i·D + d) adds
// x[r, j·D + d] over the j, in order, whose index equals i (one outside [0, N) equals no i).

import type { Entry, Kernel, View } from '../../runtime/program.ts';
import { ofFamily } from '../../runtime/program.ts';
import type { Pass, RunCount } from '../../runtime/webgpu/shaders.ts';
import { pass } from './passes.ts';
import { type Dtypes, Shader } from './shader.ts';

/** What a routing pass needs of the renderer's context. */
export interface RouteCtx {
  readonly k: Kernel;
  readonly entry: Entry;
  readonly dtypes: Dtypes;
  readonly header: number;
  readonly wg: number;
}

const rowsOf = (c: RouteCtx, v: View): { wgsl: string; rows: RunCount['rows'] } => {
  const r = c.entry.buffers[v.buf]!.rows;
  return { wgsl: r === 'T' ? 'nT()' : r === 'S' ? 'nS()' : '1u', rows: r };
};

/** One invocation per element of a [rows, width] result; `body(s)` the statement for (r, j). */
function elements(c: RouteCtx, name: string, rowsView: View, width: number, body: (s: Shader) => string, scratch?: Pass['scratch']): Pass {
  const s = new Shader(c.k, c.entry, c.dtypes);
  const rows = rowsOf(c, rowsView);
  const text = body(s);
  const code = s.render('ELEMENTS', name, c.header, { wg: c.wg, rows: rows.wgsl, width, body: text });
  return pass(name, s, code, { rows: rows.rows, times: width, per: c.wg }, 1, scratch ? { scratch } : {});
}

const weightOf = (k: Kernel, n: string): string => {
  const o = k.inputs[n];
  if (!o || !('weight' in o)) throw new Error(`archc wgsl: ${k.name}: operand ${n} is not a weight`);
  return o.weight;
};

function softmax(c: RouteCtx): Pass[] {
  const { D } = ofFamily(c.k, 'softmax').sizes;
  const y = c.k.outputs.y!;
  return [elements(c, 'softmax', y, y.width, (s) => {
    const x = s.operand('x');
    return `let b = (j / ${D}u) * ${D}u;
  var mx = ${x}(r, b);
  for (var i = 1u; i < ${D}u; i++) { mx = max(mx, ${x}(r, b + i)); }
  var sum = 0.0;
  for (var i = 0u; i < ${D}u; i++) { sum += exp(${x}(r, b + i) - mx); }
  ${s.output(y)}(r, j, exp(${x}(r, j) - mx) / sum);`;
  })];
}

function topk(c: RouteCtx): Pass[] {
  const k = ofFamily(c.k, 'topk');
  const { D, K } = k.sizes;
  const values = k.outputs.values!, indices = k.outputs.indices!;
  return [elements(c, 'topk', values, K, (s) => {
    const x = s.operand('x');
    s.raw('rank', `fn rank(r: u32, i: u32) -> u32 {
  let v = ${x}(r, i);
  var n = 0u;
  for (var u = 0u; u < ${D}u; u++) { let w = ${x}(r, u); if (w > v || (w == v && u < i)) { n++; } }
  return n;
}`);
    const sum = k.attrs.normalize
      ? `var sum = 0.0;
  for (var i = 0u; i < ${D}u; i++) { if (rank(r, i) < ${K}u) { sum += ${x}(r, i); } }
  v = v / sum;`
      : '';
    return `var at = 0u;
  for (var i = 0u; i < ${D}u; i++) { if (rank(r, i) == j) { at = i; } }
  var v = ${x}(r, at);
  ${sum}
  ${s.output(values, 'put_values')}(r, j, v);
  ${s.output(indices, 'put_indices')}(r, j, f32(at));`;
  })];
}

function experts(c: RouteCtx): Pass[] {
  const k = ofFamily(c.k, 'experts');
  const { H, I, K } = k.sizes;
  const y = k.outputs.y!, x = k.inputs.x as View;
  const wIn = weightOf(k, 'w_in'), wOut = weightOf(k, 'w_out');
  const hidden = { scratch1: { rows: rowsOf(c, x).rows, times: K * I, per: 1 } };
  const up = elements(c, 'experts up', x, K * I, (s) => {
    const xi = s.operand('x'), idx = s.operand('idx'), w = s.weight(wIn);
    return `let jk = j / ${I}u; let q = j % ${I}u;
  let e = u32(${idx}(r, jk));
  let g0 = (e * ${2 * I}u + q) * ${H}u; let u0 = (e * ${2 * I}u + ${I}u + q) * ${H}u;
  var g = 0.0; var u = 0.0;
  for (var h = 0u; h < ${H}u; h++) { let xv = ${xi}(r, h); g += xv * ${w}(g0 + h); u += xv * ${w}(u0 + h); }
  ${s.store(s.scratch(1), `r * ${K * I}u + j`, 'g / (1.0 + exp(-g)) * u')};`;
  }, hidden);
  const down = elements(c, 'experts down', y, H, (s) => {
    const idx = s.operand('idx'), gates = s.operand('gates'), w = s.weight(wOut);
    return `var acc = 0.0;
  for (var jk = 0u; jk < ${K}u; jk++) {
    let e = u32(${idx}(r, jk));
    let w0 = (e * ${H}u + j) * ${I}u;
    var d = 0.0;
    for (var i = 0u; i < ${I}u; i++) { d += ${s.load('scratch1', `r * ${K * I}u + jk * ${I}u + i`)} * ${w}(w0 + i); }
    acc += ${gates}(r, jk) * d;
  }
  ${s.output(y)}(r, j, acc);`;
  }, hidden);
  return [up, down];
}

function gather(c: RouteCtx): Pass[] {
  const { N, K, D } = ofFamily(c.k, 'gather').sizes;
  const y = c.k.outputs.y!;
  return [elements(c, 'gather', y, K * D, (s) => {
    const x = s.operand('x'), idx = s.operand('idx');
    return `let e = ${idx}(r, j / ${D}u);
  var v = 0.0;
  if (e >= 0.0 && e < ${N}.0) { v = ${x}(r, u32(e) * ${D}u + j % ${D}u); }
  ${s.output(y)}(r, j, v);`;
  })];
}

function scatter(c: RouteCtx): Pass[] {
  const { N, K, D } = ofFamily(c.k, 'scatter').sizes;
  const y = c.k.outputs.y!;
  return [elements(c, 'scatter', y, N * D, (s) => {
    const x = s.operand('x'), idx = s.operand('idx');
    return `let row = f32(j / ${D}u); let d = j % ${D}u;
  var acc = 0.0;
  for (var jk = 0u; jk < ${K}u; jk++) { if (${idx}(r, jk) == row) { acc += ${x}(r, jk * ${D}u + d); } }
  ${s.output(y)}(r, j, acc);`;
  })];
}

/** The routing families' passes, for the renderer's family table. */
export const ROUTE_PASSES = { softmax, topk, experts, gather, scatter } as const;
