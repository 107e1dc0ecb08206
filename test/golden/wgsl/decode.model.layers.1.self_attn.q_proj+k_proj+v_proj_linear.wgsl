// ==== pass rmsnorm: bindings arena, ints, scratch0, w:model.layers.1.input_layernorm.weight; places 64; workgroups ceil(n(T)·1/1)·1; product rows > 4
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

// ==== pass fused matrix-vector product: bindings arena, ints, w:model.layers.1.input_layernorm.weight, w:model.layers.1.self_attn.q_proj+k_proj+v_proj.weight; places 0, 64; workgroups ceil(n(T)·1/1)·16; product rows <= 4
// archc matmul (fused matrix-vector product)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;
fn wb2_get(i: u32) -> u32 { return wb2_p0[i]; }
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
fn s0(r: u32, j: u32) -> f32 { return pval(j); }
fn s1_partner(j: u32) -> u32 {
  if (!(j < 32u && (j - 0u) % 8u < 4u)) { return j; }
  return select(j - 2u, j + 2u, (j - 0u) % 8u < 2u);
}
fn s1(r: u32, j: u32) -> f32 {
  if (!(j < 32u && (j - 0u) % 8u < 4u)) { return s0(r, j); }
  let d = (j - 0u) % 8u;
  let o = j - d;
  let q = d % 2u;
  let cs = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q));
  let sn = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q + 2u));
  let lo = s0(r, o + q);
  let hi = s0(r, o + q + 2u);
  return select(lo * cs - hi * sn, hi * cs + lo * sn, d >= 2u);
}
fn s2_partner(j: u32) -> u32 {
  if (!(j >= 32u && j < 48u && (j - 32u) % 8u < 4u)) { return j; }
  return select(j - 2u, j + 2u, (j - 32u) % 8u < 2u);
}
fn s2(r: u32, j: u32) -> f32 {
  if (!(j >= 32u && j < 48u && (j - 32u) % 8u < 4u)) { return s1(r, j); }
  let d = (j - 32u) % 8u;
  let o = j - d;
  let q = d % 2u;
  let cs = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q));
  let sn = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q + 2u));
  let lo = s1(r, o + q);
  let hi = s1(r, o + q + 2u);
  return select(lo * cs - hi * sn, hi * cs + lo * sn, d >= 2u);
}
fn need0(j: u32, m: u32) -> u32 { return j; }
fn need1(j: u32, m: u32) -> u32 { return need0(select(s1_partner(j), j, m % 2u == 0u), m / 2u); }
fn need2(j: u32, m: u32) -> u32 { return need1(select(s2_partner(j), j, m % 2u == 0u), m / 2u); }
fn need(j: u32, m: u32) -> u32 { return need2(j, m); }
fn get_store(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 64u + 0u + c); }
fn store(r: u32, c: u32, v: f32) { arena_set(place(0u) * nT() + (r) * 64u + 0u + c, v); }
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 32u + 0u + c); }
fn h(r: u32, i: u32) -> f32 { return op_x(r, i); }
fn w2(i: u32) -> f32 { let p = wb2_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn nw(i: u32) -> f32 { return w2(i); }
fn w3(i: u32) -> f32 { let p = wb3_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn wt(n: u32, k: u32) -> f32 { return w3(n * 32u + k); }
fn bias(n: u32) -> f32 { return 0.0; }
const M = 4u;
const G = 1u;
// per column slot and lane: M·G partial products, then G partial sums of squares
var<workgroup> part: array<array<array<f32, 64>, 4>, 5>;
var<private> pc: array<u32, 4>;
var<private> pv: array<f32, 4>;
fn pval(j: u32) -> f32 {
  for (var m = 0u; m < M; m++) { if (pc[m] == j) { return pv[m]; } }
  return 0.0;
}
@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let unit = wid.x + wid.y * nwg.x;
  let colBlocks = 16u;
  let r = unit / colBlocks;
  if (r >= nT()) { return; }
  let src = r;
  let n = (unit % colBlocks) * 4u + lid.y;
  var acc: array<f32, 5>;
  var live: array<bool, 4>;
  for (var i = 0u; i < 5u; i++) { acc[i] = 0.0; }
  for (var m = 0u; m < M; m++) {
    pc[m] = need(n, m);
    live[m] = n < 64u && pc[m] < 64u;
    for (var e = 0u; e < m; e++) { if (pc[e] == pc[m]) { live[m] = false; } }
  }
  for (var k = lid.x; k < 32u; k += 64u) {
    let g = k / 32u;
    let hv = h(src, k);
    acc[M * G + g] += hv * hv;
    let xv = nw(k) * hv;
    for (var m = 0u; m < M; m++) { if (live[m]) { acc[m * G + g] += xv * wt(pc[m], k); } }
  }
  for (var i = 0u; i < 5u; i++) { part[i][lid.y][lid.x] = acc[i]; }
  workgroupBarrier();
  for (var s = 64u / 2u; s > 0u; s = s / 2u) {
    if (lid.x < s) { for (var i = 0u; i < 5u; i++) { part[i][lid.y][lid.x] = part[i][lid.y][lid.x] + part[i][lid.y][lid.x + s]; } }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < 64u) {
    for (var m = 0u; m < M; m++) {
      var v = 0.0;
      for (var g = 0u; g < G; g++) {
        v += part[m * G + g][lid.y][0] * inverseSqrt(part[M * G + g][lid.y][0] / 32.0 + 0.00000999999975);
      }
      pv[m] = v + bias(pc[m]);
    }
    store(r, n, s2(r, n));
  }
}

// ==== pass tiled product: bindings arena, ints, w:model.layers.1.self_attn.q_proj+k_proj+v_proj.weight, scratch0, scratch1; workgroups ceil(n(T)·1/16)·4; product rows > 4
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
fn put(r: u32, n: u32, v: f32) { scratch1_set(r * 64u + n, v); }
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
  if (tn >= 4u) { return; }
  let r = tm * TILE + lid.y;
  let n = tn * TILE + lid.x;
  let rl = tm * TILE + lid.x;
  let nl = tn * TILE + lid.y;
  var acc = 0.0;
  for (var k0 = 0u; k0 < 32u; k0 += TILE) {
    let kl = k0 + lid.x;
    xs[lid.y][lid.x] = select(0.0, xin(tm * TILE + lid.y, kl), tm * TILE + lid.y < rows && kl < 32u);
    ws[lid.y][lid.x] = select(0.0, wt(nl, kl), nl < 64u && kl < 32u);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE; kk++) { acc += xs[lid.y][kk] * ws[lid.x][kk]; }
    workgroupBarrier();
  }
  if (r < rows && n < 64u) { put(r, n, acc + bias(n)); }
}

// ==== pass epilogue: bindings arena, ints, scratch1, scratch2; places 0; workgroups ceil(n(T)·1/1)·1; product rows > 4
// archc matmul (epilogue)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
@group(0) @binding(3) var<storage, read_write> scratch2_p0: array<f32>;
fn scratch2_get(i: u32) -> f32 { return scratch2_p0[i]; }
fn scratch2_set(i: u32, v: f32) { scratch2_p0[i] = v; }
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
fn s1_partner(j: u32) -> u32 {
  if (!(j < 32u && (j - 0u) % 8u < 4u)) { return j; }
  return select(j - 2u, j + 2u, (j - 0u) % 8u < 2u);
}
fn s1(r: u32, j: u32) -> f32 {
  if (!(j < 32u && (j - 0u) % 8u < 4u)) { return scratch1_get(r * 64u + j); }
  let d = (j - 0u) % 8u;
  let o = j - d;
  let q = d % 2u;
  let cs = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q));
  let sn = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q + 2u));
  let lo = scratch1_get(r * 64u + o + q);
  let hi = scratch1_get(r * 64u + o + q + 2u);
  return select(lo * cs - hi * sn, hi * cs + lo * sn, d >= 2u);
}
fn s2_partner(j: u32) -> u32 {
  if (!(j >= 32u && j < 48u && (j - 32u) % 8u < 4u)) { return j; }
  return select(j - 2u, j + 2u, (j - 32u) % 8u < 2u);
}
fn s2(r: u32, j: u32) -> f32 {
  if (!(j >= 32u && j < 48u && (j - 32u) % 8u < 4u)) { return scratch2_get(r * 64u + j); }
  let d = (j - 32u) % 8u;
  let o = j - d;
  let q = d % 2u;
  let cs = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q));
  let sn = bitcast<f32>(ints_get(ints_get(HDR - 1u) + r * 4u + 0u + q + 2u));
  let lo = scratch2_get(r * 64u + o + q);
  let hi = scratch2_get(r * 64u + o + q + 2u);
  return select(lo * cs - hi * sn, hi * cs + lo * sn, d >= 2u);
}
fn get_store(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 64u + 0u + c); }
fn store(r: u32, c: u32, v: f32) { arena_set(place(0u) * nT() + (r) * 64u + 0u + c, v); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let r = unit;
  if (r >= nT()) { return; }
  for (var j = li; j < 64u; j += 256u) { scratch2_set(r * 64u + j, s1(r, j)); }
  storageBarrier();
  for (var j = li; j < 64u; j += 256u) { store(r, j, s2(r, j)); }
  storageBarrier();
}
