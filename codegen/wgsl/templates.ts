// WGSL templates, one small one per kernel family and pass. They only fill in fields: sizes arrive
// as constants, expressions and operand readers as WGSL text made by render.ts. Compiled with
// `strict: true, noEscape: true`, so a missing field is an error and nothing is escaped. The `cpu`
// profile's own templates are templates-own.ts, the SSD families' templates-ssd.ts (both re-exported
// here); template-parts.ts holds the text they share.

import { MAIN } from './template-parts.ts';

export * from './templates-own.ts';
export * from './templates-ssd.ts';

/** Helpers every shader starts with (after its binding region): the integer buffer's fields, the
 *  kernel's operand readers and output writers. Buffers are read and written through their
 *  accessors `NAME_get(i)` / `NAME_set(i, v)` only (runtime/webgpu/shaders.ts). */
export const PRELUDE = `const HDR = {{header}}u;
fn nT() -> u32 { return ints_get(0u); }
fn nS() -> u32 { return ints_get(1u); }
fn slotFloats() -> u32 { return ints_get(3u); }
fn capacity() -> u32 { return ints_get(2u); }
fn stateAt(i: u32) -> u32 { return ints_get(4u + i); }
fn token(t: u32) -> u32 { return ints_get(HDR + t); }
fn position(t: u32) -> u32 { return ints_get(HDR + nT() + t); }
fn rowSeq(t: u32) -> u32 { return ints_get(HDR + 2u * nT() + t); }
fn seqField(s: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + {{seqFields}}u * s + f); }
fn seqStart(s: u32) -> u32 { return seqField(s, 0u); }
fn seqLen(s: u32) -> u32 { return seqField(s, 1u); }
fn seqSlot(s: u32) -> u32 { return seqField(s, 2u) * slotFloats(); }
fn seqBefore(s: u32) -> u32 { return seqField(s, 3u); }
fn chunkField(c: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + {{seqFields}}u * nS() + {{chunkFields}}u * c + f); }
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
fn softplus(v: f32) -> f32 { let x = exp(-abs(v)); let s = x / (2.0 + x); let q = s * s; return select(max(v, 0.0) + 2.0 * s * (1.0 + q * (1.0 / 3.0 + q * (0.2 + q * (1.0 / 7.0 + q * (1.0 / 9.0 + q * (1.0 / 11.0 + q / 13.0)))))), v, v > 20.0); }
fn erf(v: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(y, -y, v < 0.0);
}
fn gelu(v: f32) -> f32 { return 0.5 * v * (1.0 + erf(v * 0.7071067811865476)); }
fn gelu_tanh(v: f32) -> f32 { return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); }
{{helpers}}`;

/** A workgroup-wide sum (the first `{{wg}}` invocations each give one value; all get the total). */
const TOTAL = `var<workgroup> red: array<f32, {{wg}}>;
fn total(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = {{wg}}u / 2u; s > 0u; s = s / 2u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let t = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return t;
}`;


/** One invocation per element of `rows` x `width`: `body` sees the row r and column j. */
export const ELEMENTS = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  let rows = {{rows}};
  if (i >= rows * {{width}}u) { return; }
  let r = i / {{width}}u;
  let j = i % {{width}}u;
  {{body}}
}
`;

/** RMSNorm (plain or gated, over `groups` parts) of one row per workgroup: h(src, i) is the value
 *  normalised, nw(i) the weight, put(r, i, v) the store. */
export const RMS_ROWS = `{{prelude}}
${TOTAL}
${MAIN}
  let r = unit;
  if (r >= {{rows}}) { return; }
  let src = {{source}};
  for (var g = 0u; g < {{groups}}u; g++) {
    let g0 = g * {{part}}u;
    var ss = 0.0;
    for (var i = li; i < {{part}}u; i += {{wg}}u) { let v = h(src, g0 + i); ss += v * v; }
    let inv = inverseSqrt(total(li, ss) / {{part}}.0 + {{eps}});
    for (var i = li; i < {{part}}u; i += {{wg}}u) { put(r, g0 + i, nw(g0 + i) * (h(src, g0 + i) * inv)); }
  }
}
`;

/** LayerNorm of one row per workgroup (biased variance from the centred values). */
export const LAYER_ROWS = `{{prelude}}
${TOTAL}
${MAIN}
  let r = unit;
  if (r >= {{rows}}) { return; }
  var s = 0.0;
  for (var i = li; i < {{width}}u; i += {{wg}}u) { s += h(r, i); }
  let mean = total(li, s) / {{width}}.0;
  var ss = 0.0;
  for (var i = li; i < {{width}}u; i += {{wg}}u) { let d = h(r, i) - mean; ss += d * d; }
  let inv = inverseSqrt(total(li, ss) / {{width}}.0 + {{eps}});
  for (var i = li; i < {{width}}u; i += {{wg}}u) { put(r, i, (h(r, i) - mean) * inv * nw(i) + nb(i)); }
}
`;

/** y[r, n] = sum_k xin(r, k) · wt(n, k) + bias(n), tiled through workgroup memory: a TILE x TILE
 *  block of outputs per workgroup, one per invocation, K walked TILE at a time. */
export const MATMUL_TILED = `{{prelude}}
const TILE = {{tile}}u;
var<workgroup> xs: array<array<f32, {{tile}}>, {{tile}}>;
var<workgroup> ws: array<array<f32, {{tile}}>, {{tile}}>;
@compute @workgroup_size({{tile}}, {{tile}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let unit = wid.x + wid.y * nwg.x;
  let rows = {{rows}};
  let rowTiles = (rows + TILE - 1u) / TILE;
  let tm = unit % rowTiles;
  let tn = unit / rowTiles;
  if (tn >= {{colTiles}}u) { return; }
  let r = tm * TILE + lid.y;
  let n = tn * TILE + lid.x;
  let rl = tm * TILE + lid.x;
  let nl = tn * TILE + lid.y;
  var acc = 0.0;
  for (var k0 = 0u; k0 < {{K}}u; k0 += TILE) {
    let kl = k0 + lid.x;
    xs[lid.y][lid.x] = select(0.0, xin(tm * TILE + lid.y, kl), tm * TILE + lid.y < rows && kl < {{K}}u);
    ws[lid.y][lid.x] = select(0.0, wt(nl, kl), nl < {{N}}u && kl < {{K}}u);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE; kk++) { acc += xs[lid.y][kk] * ws[lid.x][kk]; }
    workgroupBarrier();
  }
  if (r < rows && n < {{N}}u) { put(r, n, acc + bias(n)); }
}
`;

/** The matrix-vector path (few rows): LANES invocations split K for each of COLS output columns. */
export const MATMUL_GEMV = `{{prelude}}
var<workgroup> part: array<array<f32, {{lanes}}>, {{columns}}>;
@compute @workgroup_size({{lanes}}, {{columns}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let unit = wid.x + wid.y * nwg.x;
  let colBlocks = {{colBlocks}}u;
  let r = unit / colBlocks;
  if (r >= {{rows}}) { return; }
  let n = (unit % colBlocks) * {{columns}}u + lid.y;
  var acc = 0.0;
  if (n < {{N}}u) {
    for (var k = lid.x; k < {{K}}u; k += {{lanes}}u) { acc += xin(r, k) * wt(n, k); }
  }
  part[lid.y][lid.x] = acc;
  workgroupBarrier();
  for (var s = {{lanes}}u / 2u; s > 0u; s = s / 2u) {
    if (lid.x < s) { part[lid.y][lid.x] = part[lid.y][lid.x] + part[lid.y][lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < {{N}}u) { put(r, n, part[lid.y][0] + bias(n)); }
}
`;

/** The epilogue stages of a product or convolution, one result row per workgroup: each stage is a
 *  block of WGSL run by all invocations, with a storage barrier between stages. */
export const EPILOGUE = `{{prelude}}
${MAIN}
  let r = unit;
  if (r >= {{rows}}) { return; }
{{stages}}
}
`;

/** The same, one result row per invocation (a CPU adapter): the stages run in order, no barrier. */
export const EPILOGUE_OWN = `{{prelude}}
${MAIN}
  let r = unit * {{wg}}u + li;
  if (r >= {{rows}}) { return; }
{{stages}}
}
`;

/** One epilogue stage: columns [0, width) of the row through the stage, `store` for column j. The
 *  loop starts at {{lane}} and steps by {{step}} (the workgroup's invocations share a row, or one
 *  owns it), and ends with {{barrier}} (a storage barrier, or nothing where one invocation owns the
 *  row). */
export const STAGE = `  for (var j = {{lane}}; j < {{width}}u; j += {{step}}u) { {{store}}; }
  {{barrier}}`;

/** The causal depthwise conv over packed sequences: one invocation per (sequence, channel) walks
 *  the sequence's tokens with the window in registers, starting from and leaving it in the state. */
export const CONV = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nS() * {{C}}u) { return; }
  let s = i / {{C}}u;
  let c = i % {{C}}u;
  let start = seqStart(s);
  let sb = seqSlot(s) + {{state}} + c * {{taps1}}u;
  var win: array<f32, {{taps1}}>;
  for (var j = 0u; j < {{taps1}}u; j++) { win[j] = state_get(sb + j); }
  for (var t = start; t < start + seqLen(s); t++) {
    let xv = op_x(t, c);
    var acc = 0.0;
    for (var j = 0u; j < {{taps1}}u; j++) { acc += op_w(0u, c * {{taps}}u + j) * win[j]; }
    acc += op_w(0u, c * {{taps}}u + {{taps1}}u) * xv + {{bias}};
    put(t, c, acc);
    for (var j = 0u; j + 1u < {{taps1}}u; j++) { win[j] = win[j + 1u]; }
    win[{{taps1}}u - 1u] = xv;
  }
  for (var j = 0u; j < {{taps1}}u; j++) { state_set(sb + j, win[j]); }
}
`;

/** Attention, pass 1: each token's key and value rows appended to its sequence's KV cache. */
export const KV_APPEND = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nT() * {{row}}u) { return; }
  let t = i / {{row}}u;
  let e = i % {{row}}u;
  let s = rowSeq(t);
  let at = seqSlot(s) + {{state}} + (seqBefore(s) + t - seqStart(s)) * {{row}}u + e;
  state_set(at, op_k(t, e));
  state_set(at + capacity() * {{row}}u, op_v(t, e));
}
`;

/** Attention, pass 2: one invocation per (token, query head) over its sequence's cache rows
 *  [0, before + r], an online softmax (running max and sum) in one sweep. */
export const ATTENTION = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nT() * {{H}}u) { return; }
  let t = i / {{H}}u;
  let h = i % {{H}}u;
  let s = rowSeq(t);
  let base = seqSlot(s) + {{state}} + (h / {{group}}u) * {{Dh}}u;
  let keys = seqBefore(s) + t - seqStart(s) + 1u;
  var q: array<f32, {{Dh}}>;
  var acc: array<f32, {{Dh}}>;
  for (var d = 0u; d < {{Dh}}u; d++) { q[d] = op_q(t, h * {{Dh}}u + d); acc[d] = 0.0; }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = 0u; j < keys; j++) {
    let ko = base + j * {{row}}u;
    var dot = 0.0;
    for (var d = 0u; d < {{Dh}}u; d++) { dot += q[d] * state_get(ko + d); }
    let sc = dot * {{scale}};
    let mn = max(m, sc);
    let corr = exp(m - mn);
    let pj = exp(sc - mn);
    l = l * corr + pj;
    let vo = ko + capacity() * {{row}}u;
    for (var d = 0u; d < {{Dh}}u; d++) { acc[d] = acc[d] * corr + pj * state_get(vo + d); }
    m = mn;
  }
  for (var d = 0u; d < {{Dh}}u; d++) { put(t, h * {{Dh}}u + d, acc[d] / l); }
}
`;

/** The matrix-vector path with its prologue and epilogue in the same pass (one dispatch per fused
 *  kernel). Each of COLS column slots takes output column n, whose value needs the product at M
 *  columns need(n, m); LANES invocations split K for all M at once. An RMS norm before the product
 *  folds into it: per norm group g, sum_k w_nk nw_k h_k inv_g = inv_g · sum_k w_nk nw_k h_k, so the
 *  lanes also sum h² and no pass reduces the row first. Lane 0 applies inv, the bias and the
 *  epilogue stages (functions of pval(j), the product at column j) and stores out(r, n). */
export const MATMUL_GEMV_FUSED = `{{prelude}}
const M = {{M}}u;
const G = {{groups}}u;
// per column slot and lane: M·G partial products, then G partial sums of squares
var<workgroup> part: array<array<array<f32, {{lanes}}>, {{columns}}>, {{slots}}>;
var<private> pc: array<u32, {{M}}>;
var<private> pv: array<f32, {{M}}>;
fn pval(j: u32) -> f32 {
  for (var m = 0u; m < M; m++) { if (pc[m] == j) { return pv[m]; } }
  return 0.0;
}
@compute @workgroup_size({{lanes}}, {{columns}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let unit = wid.x + wid.y * nwg.x;
  let colBlocks = {{colBlocks}}u;
  let r = unit / colBlocks;
  if (r >= {{rows}}) { return; }
  let src = {{source}};
  let n = (unit % colBlocks) * {{columns}}u + lid.y;
  var acc: array<f32, {{slots}}>;
  var live: array<bool, {{M}}>;
  for (var i = 0u; i < {{slots}}u; i++) { acc[i] = 0.0; }
  for (var m = 0u; m < M; m++) {
    pc[m] = need(n, m);
    live[m] = n < {{W}}u && pc[m] < {{N}}u;
    for (var e = 0u; e < m; e++) { if (pc[e] == pc[m]) { live[m] = false; } }
  }
  for (var k = lid.x; k < {{K}}u; k += {{lanes}}u) {
{{#if norm}}
    let g = k / {{part}}u;
    let hv = h(src, k);
    acc[M * G + g] += hv * hv;
    let xv = nw(k) * hv;
{{else}}
    let g = 0u;
    let xv = xin(src, k);
{{/if}}
    for (var m = 0u; m < M; m++) { if (live[m]) { acc[m * G + g] += xv * wt(pc[m], k); } }
  }
  for (var i = 0u; i < {{slots}}u; i++) { part[i][lid.y][lid.x] = acc[i]; }
  workgroupBarrier();
  for (var s = {{lanes}}u / 2u; s > 0u; s = s / 2u) {
    if (lid.x < s) { for (var i = 0u; i < {{slots}}u; i++) { part[i][lid.y][lid.x] = part[i][lid.y][lid.x] + part[i][lid.y][lid.x + s]; } }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < {{W}}u) {
    for (var m = 0u; m < M; m++) {
      var v = 0.0;
      for (var g = 0u; g < G; g++) {
{{#if norm}}
        v += part[m * G + g][lid.y][0] * inverseSqrt(part[M * G + g][lid.y][0] / {{part}}.0 + {{eps}});
{{else}}
        v += part[m * G + g][lid.y][0];
{{/if}}
      }
      pv[m] = v + bias(pc[m]);
    }
    {{store}};
  }
}
`;

/** Attention over a packed prefill batch, flash-style: a workgroup takes ROWS consecutive rows of
 *  the batch for the GROUP query heads of one KV head (invocation li: row li / GROUP, head li %
 *  GROUP). Block-diagonal: for each sequence the block's rows touch, K and V tiles of KEYS cache
 *  rows are staged through workgroup memory, and only that sequence's rows take them in (causal:
 *  row t sees keys [0, before + t - start]), with a running max and sum per row (online softmax).
 *  Loop bounds come from the integer buffer alone, so every barrier is in uniform control flow. */
export const FLASH_ATTENTION = `{{prelude}}
const KEYS = {{keys}}u;
const TILE = {{tileFloats}}u;
var<workgroup> ks: array<f32, {{tileFloats}}>;
var<workgroup> vs: array<f32, {{tileFloats}}>;
@compute @workgroup_size({{wg}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let blocks = (nT() + {{rows}}u - 1u) / {{rows}}u;
  let kv = unit / blocks;
  let t0 = (unit % blocks) * {{rows}}u;
  if (kv >= {{KV}}u) { return; }
  let tEnd = min(t0 + {{rows}}u, nT());
  let t = t0 + li / {{group}}u;
  let h = kv * {{group}}u + li % {{group}}u;
  let live = t < tEnd;
  let tq = min(t, tEnd - 1u);
  var q: array<f32, {{Dh}}>;
  var acc: array<f32, {{Dh}}>;
  for (var d = 0u; d < {{Dh}}u; d++) { q[d] = op_q(tq, h * {{Dh}}u + d); acc[d] = 0.0; }
  var m = -3.0e38;
  var l = 0.0;
  let mySeq = rowSeq(tq);
  for (var s = rowSeq(t0); s <= rowSeq(tEnd - 1u); s++) {
    let start = seqStart(s);
    // keys the block's rows of sequence s see: up to its last row in the block
    let keys = seqBefore(s) + min(tEnd, start + seqLen(s)) - start;
    let base = seqSlot(s) + {{state}} + kv * {{Dh}}u;
    let mine = live && mySeq == s;
    let myKeys = select(0u, seqBefore(s) + tq - start + 1u, mine);
    for (var j0 = 0u; j0 < keys; j0 += KEYS) {
      for (var e = li; e < TILE; e += {{wg}}u) {
        let j = j0 + e / {{Dh}}u;
        let at = base + min(j, keys - 1u) * {{row}}u + e % {{Dh}}u;
        ks[e] = state_get(at);
        vs[e] = state_get(at + capacity() * {{row}}u);
      }
      workgroupBarrier();
      let seen = min(KEYS, myKeys - min(myKeys, j0));
      for (var jj = 0u; jj < seen; jj++) {
        var dot = 0.0;
        for (var d = 0u; d < {{Dh}}u; d++) { dot += q[d] * ks[jj * {{Dh}}u + d]; }
        let sc = dot * {{scale}};
        let mn = max(m, sc);
        let corr = exp(m - mn);
        let pj = exp(sc - mn);
        l = l * corr + pj;
        for (var d = 0u; d < {{Dh}}u; d++) { acc[d] = acc[d] * corr + pj * vs[jj * {{Dh}}u + d]; }
        m = mn;
      }
      workgroupBarrier();
    }
  }
  if (live) {
    for (var d = 0u; d < {{Dh}}u; d++) { put(t, h * {{Dh}}u + d, acc[d] / l); }
  }
}
`;
