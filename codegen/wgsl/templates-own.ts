// WGSL templates of the `cpu` profile (adapters that run shaders on CPU cores: SwiftShader,
// llvmpipe, WARP): each invocation owns whole outputs, no workgroup memory, no barrier. Filled as
// templates.ts' are (render.ts); templates.ts re-exports them.

/** Invocation i = unit·wg + li of a one-dimensional grid. */
const OWN_ROW = `@compute @workgroup_size({{wg}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * {{wg}}u + li;`;

/** RMSNorm (plain or gated, over `groups` parts), one row per invocation. */
export const RMS_ROW_OWN = `{{prelude}}
${OWN_ROW}
  let r = i;
  if (r >= {{rows}}) { return; }
  let src = {{source}};
  for (var g = 0u; g < {{groups}}u; g++) {
    let g0 = g * {{part}}u;
    var ss = 0.0;
    for (var i = 0u; i < {{part}}u; i++) { let v = h(src, g0 + i); ss += v * v; }
    let inv = inverseSqrt(ss / {{part}}.0 + {{eps}});
    for (var i = 0u; i < {{part}}u; i++) { put(r, g0 + i, nw(g0 + i) * (h(src, g0 + i) * inv)); }
  }
}
`;

/** LayerNorm, one row per invocation. */
export const LAYER_ROW_OWN = `{{prelude}}
${OWN_ROW}
  let r = i;
  if (r >= {{rows}}) { return; }
  var s = 0.0;
  for (var i = 0u; i < {{width}}u; i++) { s += h(r, i); }
  let mean = s / {{width}}.0;
  var ss = 0.0;
  for (var i = 0u; i < {{width}}u; i++) { let d = h(r, i) - mean; ss += d * d; }
  let inv = inverseSqrt(ss / {{width}}.0 + {{eps}});
  for (var i = 0u; i < {{width}}u; i++) { put(r, i, (h(r, i) - mean) * inv * nw(i) + nb(i)); }
}
`;

/** The matrix-vector path on a CPU adapter: each invocation owns four adjacent output columns of
 *  one row and walks K four at a time (x and each column's weights as vec4, four dot products). */
export const MATMUL_GEMV_OWN = `{{prelude}}
{{w4}}
${OWN_ROW}
  let r = i / {{colBlocks}}u;
  if (r >= {{rows}}) { return; }
  let n = (i % {{colBlocks}}u) * 4u;
  // columns past N read the last one and are not stored
  let n1 = min(n + 1u, {{N}}u - 1u);
  let n2 = min(n + 2u, {{N}}u - 1u);
  let n3 = min(n + 3u, {{N}}u - 1u);
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < {{K4}}u; k += 4u) {
    let xv = vec4<f32>(xin(r, k), xin(r, k + 1u), xin(r, k + 2u), xin(r, k + 3u));
    acc += vec4<f32>(dot(xv, wquad(n, k)), dot(xv, wquad(n1, k)), dot(xv, wquad(n2, k)), dot(xv, wquad(n3, k)));
  }
  for (var k = {{K4}}u; k < {{K}}u; k++) {
    let xv = xin(r, k);
    acc += xv * vec4<f32>(wt(n, k), wt(n1, k), wt(n2, k), wt(n3, k));
  }
  put(r, n, acc.x + bias(n));
  if (n + 1u < {{N}}u) { put(r, n + 1u, acc.y + bias(n1)); }
  if (n + 2u < {{N}}u) { put(r, n + 2u, acc.z + bias(n2)); }
  if (n + 3u < {{N}}u) { put(r, n + 3u, acc.w + bias(n3)); }
}
`;

/** The product over many rows on a CPU adapter: each invocation owns a 4 x 4 block of outputs in
 *  registers (rows as vec4 accumulators over four columns), walking K once, four k at a time. A workgroup's
 *  invocations take consecutive row tiles of one column tile, so they share its weights. */
export const MATMUL_TILED_OWN = `{{prelude}}
{{w4}}
fn x4(r: u32, k: u32) -> vec4<f32> { return vec4<f32>(xin(r, k), xin(r, k + 1u), xin(r, k + 2u), xin(r, k + 3u)); }
@compute @workgroup_size({{wg}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let rows = {{rows}};
  let rowBlocks = (rows + {{rowsPerGroup}}u - 1u) / {{rowsPerGroup}}u;
  let tn = unit / rowBlocks;
  let r = ((unit % rowBlocks) * {{wg}}u + li) * 4u;
  if (tn >= {{colTiles}}u || r >= rows) { return; }
  let n = tn * 4u;
  // rows and columns past the end read the last one and are not stored
  let r1 = min(r + 1u, rows - 1u);
  let r2 = min(r + 2u, rows - 1u);
  let r3 = min(r + 3u, rows - 1u);
  let n1 = min(n + 1u, {{N}}u - 1u);
  let n2 = min(n + 2u, {{N}}u - 1u);
  let n3 = min(n + 3u, {{N}}u - 1u);
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  // K four at a time: rows and columns as vec4s over k, sixteen dot products
  for (var k = 0u; k < {{K4}}u; k += 4u) {
    let w0 = wquad(n, k);
    let w1 = wquad(n1, k);
    let w2 = wquad(n2, k);
    let w3 = wquad(n3, k);
    let x0 = x4(r, k);
    let x1 = x4(r1, k);
    let x2 = x4(r2, k);
    let x3 = x4(r3, k);
    a0 += vec4<f32>(dot(x0, w0), dot(x0, w1), dot(x0, w2), dot(x0, w3));
    a1 += vec4<f32>(dot(x1, w0), dot(x1, w1), dot(x1, w2), dot(x1, w3));
    a2 += vec4<f32>(dot(x2, w0), dot(x2, w1), dot(x2, w2), dot(x2, w3));
    a3 += vec4<f32>(dot(x3, w0), dot(x3, w1), dot(x3, w2), dot(x3, w3));
  }
  for (var k = {{K4}}u; k < {{K}}u; k++) {
    let wv = vec4<f32>(wt(n, k), wt(n1, k), wt(n2, k), wt(n3, k));
    a0 += xin(r, k) * wv;
    a1 += xin(r1, k) * wv;
    a2 += xin(r2, k) * wv;
    a3 += xin(r3, k) * wv;
  }
  let b = vec4<f32>(bias(n), bias(n1), bias(n2), bias(n3));
  let acc = array<vec4<f32>, 4>(a0 + b, a1 + b, a2 + b, a3 + b);
  for (var i = 0u; i < 4u; i++) {
    if (r + i >= rows) { break; }
    for (var j = 0u; j < 4u; j++) { if (n + j < {{N}}u) { put(r + i, n + j, acc[i][j]); } }
  }
}
`;

/** The fused matrix-vector pass on a CPU adapter: each invocation owns COLS adjacent output
 *  columns of R rows and sums the product columns they need (M each; under a norm, each group's
 *  squares once per row for all of them) itself, reading each weight once for all R rows; the
 *  per-row and per-column statements are unrolled by the renderer. */
export const MATMUL_GEMV_FUSED_OWN = `{{prelude}}
const M = {{M}}u;
var<private> pc: array<u32, {{M}}>;
var<private> pv: array<f32, {{M}}>;
fn pval(j: u32) -> f32 {
  for (var m = 0u; m < M; m++) { if (pc[m] == j) { return pv[m]; } }
  return 0.0;
}
${OWN_ROW}
  let rb = (i / {{colBlocks}}u) * {{R}}u;
  if (rb >= {{rows}}) { return; }
  let nb = (i % {{colBlocks}}u) * {{cols}}u;
{{columns}}
  for (var g = 0u; g < {{groups}}u; g++) {
{{zero}}
    // k four at a time as vec4s (the group's length is a multiple of 4), else one at a time
    for (var k = g * {{part}}u; k < (g + 1u) * {{part}}u; k += {{step}}u) {
{{#if norm}}
      let nwv = {{nwv}};
{{/if}}
{{load}}
{{accumulate}}
    }
{{gather}}
  }
{{finish}}
}
`;

/** Sliding-window attention (codegen/wgsl/window.ts, both profiles), pass 1: one invocation per
 *  (token, query head). Row t at position p = before + t − start sees positions
 *  [max(0, p − window + 1), p]: those before the batch from its ring (position j at row j % rows,
 *  rows = min(window, capacity): keys [rows, KV, Dh] then values), the batch's own from k and v; an
 *  online softmax (running max and sum) as ATTENTION. The ring is written after (KV_RING). */
export const ATTENTION_WINDOW = `{{prelude}}
${OWN_ROW}
  if (i >= nT() * {{H}}u) { return; }
  let t = i / {{H}}u;
  let h = i % {{H}}u;
  let s = rowSeq(t);
  let before = seqBefore(s);
  let start = seqStart(s);
  let p = before + t - start;
  let rows = min({{window}}u, capacity());
  let kvo = (h / {{group}}u) * {{Dh}}u;
  let base = seqSlot(s) + {{state}} + kvo;
  var q: array<f32, {{Dh}}>;
  var acc: array<f32, {{Dh}}>;
  for (var d = 0u; d < {{Dh}}u; d++) { q[d] = op_q(t, h * {{Dh}}u + d); acc[d] = 0.0; }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = select(0u, p + 1u - {{window}}u, p + 1u > {{window}}u); j <= p; j++) {
    let ko = base + (j % rows) * {{row}}u;
    let vo = ko + rows * {{row}}u;
    var dot = 0.0;
    if (j < before) {
      for (var d = 0u; d < {{Dh}}u; d++) { dot += q[d] * state_get(ko + d); }
    } else {
      for (var d = 0u; d < {{Dh}}u; d++) { dot += q[d] * op_k(start + j - before, kvo + d); }
    }
    let sc = dot * {{scale}};
    let mn = max(m, sc);
    let corr = exp(m - mn);
    let pj = exp(sc - mn);
    l = l * corr + pj;
    if (j < before) {
      for (var d = 0u; d < {{Dh}}u; d++) { acc[d] = acc[d] * corr + pj * state_get(vo + d); }
    } else {
      for (var d = 0u; d < {{Dh}}u; d++) { acc[d] = acc[d] * corr + pj * op_v(start + j - before, kvo + d); }
    }
    m = mn;
  }
  for (var d = 0u; d < {{Dh}}u; d++) { put(t, h * {{Dh}}u + d, acc[d] / l); }
}
`;

/** Sliding-window attention, pass 2: each sequence's last min(len, rows) key and value rows into its
 *  ring (position p at row p % rows); earlier rows of the batch would be overwritten by later ones. */
export const KV_RING = `{{prelude}}
${OWN_ROW}
  if (i >= nT() * {{row}}u) { return; }
  let t = i / {{row}}u;
  let e = i % {{row}}u;
  let s = rowSeq(t);
  let r = t - seqStart(s);
  let rows = min({{window}}u, capacity());
  if (r + rows < seqLen(s)) { return; }
  let at = seqSlot(s) + {{state}} + ((seqBefore(s) + r) % rows) * {{row}}u + e;
  state_set(at, op_k(t, e));
  state_set(at + rows * {{row}}u, op_v(t, e));
}
`;
