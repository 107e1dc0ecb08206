// ==== pass rmsnorm: bindings arena, ints, scratch0, w:model.layers.0.input_layernorm.weight; places 0; workgroups ceil(n(T)·1/1)·1; product rows > 4
// archc matmul (rmsnorm)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read_write> scratch0_p0: array<f32>;
fn scratch0_get(i: u32) -> f32 { return scratch0_p0[i]; }
fn scratch0_set(i: u32, v: f32) { scratch0_p0[i] = v; }
@group(0) @binding(3) var<storage, read> wb3_p0: array<u32>;
fn wb3_get(i: u32) -> u32 { return wb3_p0[i]; }
@group(0) @binding(4) var<uniform> places: array<vec4<u32>, 1>;
fn place(i: u32) -> u32 { return places[i >> 2u][i & 3u]; }
const HDR = 11u;
fn nT() -> u32 { return ints_get(0u); }
fn nS() -> u32 { return ints_get(1u); }
fn slotFloats() -> u32 { return ints_get(3u); }
fn capacity() -> u32 { return ints_get(2u); }
fn stateAt(i: u32) -> u32 { return ints_get(4u + i); }
fn token(t: u32) -> u32 { return ints_get(HDR + t); }
fn position(t: u32) -> u32 { return ints_get(HDR + nT() + t); }
fn rowSeq(t: u32) -> u32 { return ints_get(HDR + 2u * nT() + t); }
fn seqField(s: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * s + f); }
fn seqStart(s: u32) -> u32 { return seqField(s, 0u); }
fn seqLen(s: u32) -> u32 { return seqField(s, 1u); }
fn seqSlot(s: u32) -> u32 { return seqField(s, 2u) * slotFloats(); }
fn seqBefore(s: u32) -> u32 { return seqField(s, 3u); }
fn chunkField(c: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * nS() + 4u * c + f); }
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
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 32u + 0u + c); }
fn put(r: u32, i: u32, v: f32) { scratch0_set(r * 32u + i, v); }
fn h(r: u32, i: u32) -> f32 { return op_x(r, i); }
fn w3(i: u32) -> f32 { let p = wb3_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn nw(i: u32) -> f32 { return w3(i); }
var<workgroup> red: array<f32, 256>;
fn total(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = 256u / 2u; s > 0u; s = s / 2u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let t = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return t;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let r = unit;
  if (r >= nT()) { return; }
  let src = r;
  for (var g = 0u; g < 1u; g++) {
    let g0 = g * 32u;
    var ss = 0.0;
    for (var i = li; i < 32u; i += 256u) { let v = h(src, g0 + i); ss += v * v; }
    let inv = inverseSqrt(total(li, ss) / 32.0 + 0.00000999999975);
    for (var i = li; i < 32u; i += 256u) { put(r, g0 + i, nw(g0 + i) * (h(src, g0 + i) * inv)); }
  }
}

// ==== pass fused matrix-vector product: bindings arena, ints, state, w:model.layers.0.mamba.conv1d.weight, w:model.layers.0.mamba.conv1d.bias, w:model.layers.0.input_layernorm.weight, w:model.layers.0.mamba.in_proj.weight; places 0, 32, 0; workgroups ceil(n(T)·1/1)·37; product rows <= 4
// archc matmul (fused matrix-vector product)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read_write> state_p0: array<f32>;
fn state_get(i: u32) -> f32 { return state_p0[i]; }
fn state_set(i: u32, v: f32) { state_p0[i] = v; }
@group(0) @binding(3) var<storage, read> wb3_p0: array<u32>;
fn wb3_get(i: u32) -> u32 { return wb3_p0[i]; }
@group(0) @binding(4) var<storage, read> wb4_p0: array<u32>;
fn wb4_get(i: u32) -> u32 { return wb4_p0[i]; }
@group(0) @binding(5) var<storage, read> wb5_p0: array<u32>;
fn wb5_get(i: u32) -> u32 { return wb5_p0[i]; }
@group(0) @binding(6) var<storage, read> wb6_p0: array<u32>;
fn wb6_get(i: u32) -> u32 { return wb6_p0[i]; }
@group(0) @binding(7) var<uniform> places: array<vec4<u32>, 1>;
fn place(i: u32) -> u32 { return places[i >> 2u][i & 3u]; }
const HDR = 11u;
fn nT() -> u32 { return ints_get(0u); }
fn nS() -> u32 { return ints_get(1u); }
fn slotFloats() -> u32 { return ints_get(3u); }
fn capacity() -> u32 { return ints_get(2u); }
fn stateAt(i: u32) -> u32 { return ints_get(4u + i); }
fn token(t: u32) -> u32 { return ints_get(HDR + t); }
fn position(t: u32) -> u32 { return ints_get(HDR + nT() + t); }
fn rowSeq(t: u32) -> u32 { return ints_get(HDR + 2u * nT() + t); }
fn seqField(s: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * s + f); }
fn seqStart(s: u32) -> u32 { return seqField(s, 0u); }
fn seqLen(s: u32) -> u32 { return seqField(s, 1u); }
fn seqSlot(s: u32) -> u32 { return seqField(s, 2u) * slotFloats(); }
fn seqBefore(s: u32) -> u32 { return seqField(s, 3u); }
fn chunkField(c: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * nS() + 4u * c + f); }
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
fn s0(r: u32, j: u32) -> f32 { return pval(j); }
fn w3(i: u32) -> f32 { let p = wb3_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn w4(i: u32) -> f32 { let p = wb4_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn s1(r: u32, j: u32) -> f32 {
  let xv = s0(r, j);
  if (j < 64u || j >= 144u) { return xv; }
  let c = j - 64u;
  let sb = seqSlot(r) + stateAt(place(0u)) + c * 3u;
  var acc = w4(c);
  for (var t = 0u; t < 3u; t++) { acc += w3(c * 4u + t) * state_get(sb + t); }
  acc += w3(c * 4u + 3u) * xv;
  for (var t = 0u; t + 1u < 3u; t++) { state_set(sb + t, state_get(sb + t + 1u)); }
  state_set(sb + 2u, xv);
  let y = acc;
  return silu(y);
}
fn need0(j: u32, m: u32) -> u32 { return j; }
fn need1(j: u32, m: u32) -> u32 { return need0(j, m / 1u); }
fn need(j: u32, m: u32) -> u32 { return need1(j, m); }
fn get_store(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 148u + 0u + c); }
fn store(r: u32, c: u32, v: f32) { arena_set(place(1u) * nT() + (r) * 148u + 0u + c, v); }
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 32u + 0u + c); }
fn h(r: u32, i: u32) -> f32 { return op_x(r, i); }
fn w5(i: u32) -> f32 { let p = wb5_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn nw(i: u32) -> f32 { return w5(i); }
fn w6(i: u32) -> f32 { let p = wb6_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn wt(n: u32, k: u32) -> f32 { return w6(n * 32u + k); }
fn bias(n: u32) -> f32 { return 0.0; }
const M = 1u;
const G = 1u;
// per column slot and lane: M·G partial products, then G partial sums of squares
var<workgroup> part: array<array<array<f32, 64>, 4>, 2>;
var<private> pc: array<u32, 1>;
var<private> pv: array<f32, 1>;
fn pval(j: u32) -> f32 {
  for (var m = 0u; m < M; m++) { if (pc[m] == j) { return pv[m]; } }
  return 0.0;
}
@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let unit = wid.x + wid.y * nwg.x;
  let colBlocks = 37u;
  let r = unit / colBlocks;
  if (r >= nT()) { return; }
  let src = r;
  let n = (unit % colBlocks) * 4u + lid.y;
  var acc: array<f32, 2>;
  var live: array<bool, 1>;
  for (var i = 0u; i < 2u; i++) { acc[i] = 0.0; }
  for (var m = 0u; m < M; m++) {
    pc[m] = need(n, m);
    live[m] = n < 148u && pc[m] < 148u;
    for (var e = 0u; e < m; e++) { if (pc[e] == pc[m]) { live[m] = false; } }
  }
  for (var k = lid.x; k < 32u; k += 64u) {
    let g = k / 32u;
    let hv = h(src, k);
    acc[M * G + g] += hv * hv;
    let xv = nw(k) * hv;
    for (var m = 0u; m < M; m++) { if (live[m]) { acc[m * G + g] += xv * wt(pc[m], k); } }
  }
  for (var i = 0u; i < 2u; i++) { part[i][lid.y][lid.x] = acc[i]; }
  workgroupBarrier();
  for (var s = 64u / 2u; s > 0u; s = s / 2u) {
    if (lid.x < s) { for (var i = 0u; i < 2u; i++) { part[i][lid.y][lid.x] = part[i][lid.y][lid.x] + part[i][lid.y][lid.x + s]; } }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < 148u) {
    for (var m = 0u; m < M; m++) {
      var v = 0.0;
      for (var g = 0u; g < G; g++) {
        v += part[m * G + g][lid.y][0] * inverseSqrt(part[M * G + g][lid.y][0] / 32.0 + 0.00000999999975);
      }
      pv[m] = v + bias(pc[m]);
    }
    store(r, n, s1(r, n));
  }
}

// ==== pass tiled product: bindings arena, ints, w:model.layers.0.mamba.in_proj.weight, scratch0, scratch1; workgroups ceil(n(T)·1/16)·10; product rows > 4
// archc matmul (tiled product)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;
fn wb2_get(i: u32) -> u32 { return wb2_p0[i]; }
@group(0) @binding(3) var<storage, read_write> scratch0_p0: array<f32>;
fn scratch0_get(i: u32) -> f32 { return scratch0_p0[i]; }
fn scratch0_set(i: u32, v: f32) { scratch0_p0[i] = v; }
@group(0) @binding(4) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
const HDR = 11u;
fn nT() -> u32 { return ints_get(0u); }
fn nS() -> u32 { return ints_get(1u); }
fn slotFloats() -> u32 { return ints_get(3u); }
fn capacity() -> u32 { return ints_get(2u); }
fn stateAt(i: u32) -> u32 { return ints_get(4u + i); }
fn token(t: u32) -> u32 { return ints_get(HDR + t); }
fn position(t: u32) -> u32 { return ints_get(HDR + nT() + t); }
fn rowSeq(t: u32) -> u32 { return ints_get(HDR + 2u * nT() + t); }
fn seqField(s: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * s + f); }
fn seqStart(s: u32) -> u32 { return seqField(s, 0u); }
fn seqLen(s: u32) -> u32 { return seqField(s, 1u); }
fn seqSlot(s: u32) -> u32 { return seqField(s, 2u) * slotFloats(); }
fn seqBefore(s: u32) -> u32 { return seqField(s, 3u); }
fn chunkField(c: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * nS() + 4u * c + f); }
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
fn w2(i: u32) -> f32 { let p = wb2_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn xin(r: u32, k: u32) -> f32 { return scratch0_get(r * 32u + k); }
fn wt(n: u32, k: u32) -> f32 { return w2(n * 32u + k); }
fn bias(n: u32) -> f32 { return 0.0; }
fn put(r: u32, n: u32, v: f32) { scratch1_set(r * 148u + n, v); }
const TILE = 16u;
var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ws: array<array<f32, 16>, 16>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let unit = wid.x + wid.y * nwg.x;
  let rows = nT();
  let rowTiles = (rows + TILE - 1u) / TILE;
  let tm = unit % rowTiles;
  let tn = unit / rowTiles;
  if (tn >= 10u) { return; }
  let r = tm * TILE + lid.y;
  let n = tn * TILE + lid.x;
  let rl = tm * TILE + lid.x;
  let nl = tn * TILE + lid.y;
  var acc = 0.0;
  for (var k0 = 0u; k0 < 32u; k0 += TILE) {
    let kl = k0 + lid.x;
    xs[lid.y][lid.x] = select(0.0, xin(tm * TILE + lid.y, kl), tm * TILE + lid.y < rows && kl < 32u);
    ws[lid.y][lid.x] = select(0.0, wt(nl, kl), nl < 148u && kl < 32u);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE; kk++) { acc += xs[lid.y][kk] * ws[lid.x][kk]; }
    workgroupBarrier();
  }
  if (r < rows && n < 148u) { put(r, n, acc + bias(n)); }
}

// ==== pass epilogue: bindings arena, ints, scratch1, state, w:model.layers.0.mamba.conv1d.weight, w:model.layers.0.mamba.conv1d.bias; places 0, 32; workgroups ceil(n(T)·1/1)·1; product rows > 4
// archc matmul (epilogue)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
@group(0) @binding(3) var<storage, read_write> state_p0: array<f32>;
fn state_get(i: u32) -> f32 { return state_p0[i]; }
fn state_set(i: u32, v: f32) { state_p0[i] = v; }
@group(0) @binding(4) var<storage, read> wb4_p0: array<u32>;
fn wb4_get(i: u32) -> u32 { return wb4_p0[i]; }
@group(0) @binding(5) var<storage, read> wb5_p0: array<u32>;
fn wb5_get(i: u32) -> u32 { return wb5_p0[i]; }
@group(0) @binding(6) var<uniform> places: array<vec4<u32>, 1>;
fn place(i: u32) -> u32 { return places[i >> 2u][i & 3u]; }
const HDR = 11u;
fn nT() -> u32 { return ints_get(0u); }
fn nS() -> u32 { return ints_get(1u); }
fn slotFloats() -> u32 { return ints_get(3u); }
fn capacity() -> u32 { return ints_get(2u); }
fn stateAt(i: u32) -> u32 { return ints_get(4u + i); }
fn token(t: u32) -> u32 { return ints_get(HDR + t); }
fn position(t: u32) -> u32 { return ints_get(HDR + nT() + t); }
fn rowSeq(t: u32) -> u32 { return ints_get(HDR + 2u * nT() + t); }
fn seqField(s: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * s + f); }
fn seqStart(s: u32) -> u32 { return seqField(s, 0u); }
fn seqLen(s: u32) -> u32 { return seqField(s, 1u); }
fn seqSlot(s: u32) -> u32 { return seqField(s, 2u) * slotFloats(); }
fn seqBefore(s: u32) -> u32 { return seqField(s, 3u); }
fn chunkField(c: u32, f: u32) -> u32 { return ints_get(HDR + 3u * nT() + 8u * nS() + 4u * c + f); }
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
fn w4(i: u32) -> f32 { let p = wb4_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn w5(i: u32) -> f32 { let p = wb5_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn s1(r: u32, j: u32) -> f32 {
  let xv = scratch1_get(r * 148u + j);
  if (j < 64u || j >= 144u) { return xv; }
  let c = j - 64u;
  let sb = seqSlot(r) + stateAt(place(0u)) + c * 3u;
  var acc = w5(c);
  for (var t = 0u; t < 3u; t++) { acc += w4(c * 4u + t) * state_get(sb + t); }
  acc += w4(c * 4u + 3u) * xv;
  for (var t = 0u; t + 1u < 3u; t++) { state_set(sb + t, state_get(sb + t + 1u)); }
  state_set(sb + 2u, xv);
  let y = acc;
  return silu(y);
}
fn get_store(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 148u + 0u + c); }
fn store(r: u32, c: u32, v: f32) { arena_set(place(1u) * nT() + (r) * 148u + 0u + c, v); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let r = unit;
  if (r >= nT()) { return; }
  for (var j = li; j < 148u; j += 256u) { store(r, j, s1(r, j)); }
  storageBarrier();
}
