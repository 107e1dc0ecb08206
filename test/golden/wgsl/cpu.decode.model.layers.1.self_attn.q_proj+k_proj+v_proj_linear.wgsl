// ==== pass rmsnorm: bindings arena, ints, scratch0, w:model.layers.1.input_layernorm.weight; places 64; workgroups ceil(n(T)·1/64)·1; product rows > 4
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
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + li;
  let r = i;
  if (r >= nT()) { return; }
  let src = r;
  for (var g = 0u; g < 1u; g++) {
    let g0 = g * 32u;
    var ss = 0.0;
    for (var i = 0u; i < 32u; i++) { let v = h(src, g0 + i); ss += v * v; }
    let inv = inverseSqrt(ss / 32.0 + 0.00000999999975);
    for (var i = 0u; i < 32u; i++) { put(r, g0 + i, nw(g0 + i) * (h(src, g0 + i) * inv)); }
  }
}

// ==== pass fused matrix-vector product: bindings arena, ints, w:model.layers.1.input_layernorm.weight, w:model.layers.1.self_attn.q_proj+k_proj+v_proj.weight; places 0, 64; workgroups ceil(n(T)·8/64)·1; product rows <= 1
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
fn wp3(i: u32) -> vec2<f32> { let p = wb3_get(i >> 1u); return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u)); }
fn wp2(i: u32) -> vec2<f32> { let p = wb2_get(i >> 1u); return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u)); }
const M = 4u;
var<private> pc: array<u32, 4>;
var<private> pv: array<f32, 4>;
fn pval(j: u32) -> f32 {
  for (var m = 0u; m < M; m++) { if (pc[m] == j) { return pv[m]; } }
  return 0.0;
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + li;
  let rb = (i / 8u) * 1u;
  if (rb >= nT()) { return; }
  let nb = (i % 8u) * 8u;
  let r0 = min(rb + 0u, nT() - 1u);
  let src0 = r0;
  let n0 = min(nb + 0u, 63u);
  let n1 = min(nb + 1u, 63u);
  let n2 = min(nb + 2u, 63u);
  let n3 = min(nb + 3u, 63u);
  let n4 = min(nb + 4u, 63u);
  let n5 = min(nb + 5u, 63u);
  let n6 = min(nb + 6u, 63u);
  let n7 = min(nb + 7u, 63u);
  let c0_0 = min(need(n0, 0u), 63u);
  let c0_1 = min(need(n0, 1u), 63u);
  let c0_2 = min(need(n0, 2u), 63u);
  let c0_3 = min(need(n0, 3u), 63u);
  let c1_0 = min(need(n1, 0u), 63u);
  let c1_1 = min(need(n1, 1u), 63u);
  let c1_2 = min(need(n1, 2u), 63u);
  let c1_3 = min(need(n1, 3u), 63u);
  let c2_0 = min(need(n2, 0u), 63u);
  let c2_1 = min(need(n2, 1u), 63u);
  let c2_2 = min(need(n2, 2u), 63u);
  let c2_3 = min(need(n2, 3u), 63u);
  let c3_0 = min(need(n3, 0u), 63u);
  let c3_1 = min(need(n3, 1u), 63u);
  let c3_2 = min(need(n3, 2u), 63u);
  let c3_3 = min(need(n3, 3u), 63u);
  let c4_0 = min(need(n4, 0u), 63u);
  let c4_1 = min(need(n4, 1u), 63u);
  let c4_2 = min(need(n4, 2u), 63u);
  let c4_3 = min(need(n4, 3u), 63u);
  let c5_0 = min(need(n5, 0u), 63u);
  let c5_1 = min(need(n5, 1u), 63u);
  let c5_2 = min(need(n5, 2u), 63u);
  let c5_3 = min(need(n5, 3u), 63u);
  let c6_0 = min(need(n6, 0u), 63u);
  let c6_1 = min(need(n6, 1u), 63u);
  let c6_2 = min(need(n6, 2u), 63u);
  let c6_3 = min(need(n6, 3u), 63u);
  let c7_0 = min(need(n7, 0u), 63u);
  let c7_1 = min(need(n7, 1u), 63u);
  let c7_2 = min(need(n7, 2u), 63u);
  let c7_3 = min(need(n7, 3u), 63u);
  var v0_0_0 = 0.0;
  var v0_0_1 = 0.0;
  var v0_0_2 = 0.0;
  var v0_0_3 = 0.0;
  var v0_1_0 = 0.0;
  var v0_1_1 = 0.0;
  var v0_1_2 = 0.0;
  var v0_1_3 = 0.0;
  var v0_2_0 = 0.0;
  var v0_2_1 = 0.0;
  var v0_2_2 = 0.0;
  var v0_2_3 = 0.0;
  var v0_3_0 = 0.0;
  var v0_3_1 = 0.0;
  var v0_3_2 = 0.0;
  var v0_3_3 = 0.0;
  var v0_4_0 = 0.0;
  var v0_4_1 = 0.0;
  var v0_4_2 = 0.0;
  var v0_4_3 = 0.0;
  var v0_5_0 = 0.0;
  var v0_5_1 = 0.0;
  var v0_5_2 = 0.0;
  var v0_5_3 = 0.0;
  var v0_6_0 = 0.0;
  var v0_6_1 = 0.0;
  var v0_6_2 = 0.0;
  var v0_6_3 = 0.0;
  var v0_7_0 = 0.0;
  var v0_7_1 = 0.0;
  var v0_7_2 = 0.0;
  var v0_7_3 = 0.0;
  for (var g = 0u; g < 1u; g++) {
    var ss0 = 0.0;
    var a0_0_0 = 0.0;
    var a0_0_1 = 0.0;
    var a0_0_2 = 0.0;
    var a0_0_3 = 0.0;
    var a0_1_0 = 0.0;
    var a0_1_1 = 0.0;
    var a0_1_2 = 0.0;
    var a0_1_3 = 0.0;
    var a0_2_0 = 0.0;
    var a0_2_1 = 0.0;
    var a0_2_2 = 0.0;
    var a0_2_3 = 0.0;
    var a0_3_0 = 0.0;
    var a0_3_1 = 0.0;
    var a0_3_2 = 0.0;
    var a0_3_3 = 0.0;
    var a0_4_0 = 0.0;
    var a0_4_1 = 0.0;
    var a0_4_2 = 0.0;
    var a0_4_3 = 0.0;
    var a0_5_0 = 0.0;
    var a0_5_1 = 0.0;
    var a0_5_2 = 0.0;
    var a0_5_3 = 0.0;
    var a0_6_0 = 0.0;
    var a0_6_1 = 0.0;
    var a0_6_2 = 0.0;
    var a0_6_3 = 0.0;
    var a0_7_0 = 0.0;
    var a0_7_1 = 0.0;
    var a0_7_2 = 0.0;
    var a0_7_3 = 0.0;
    // k four at a time as vec4s (the group's length is a multiple of 4), else one at a time
    for (var k = g * 32u; k < (g + 1u) * 32u; k += 4u) {
      let nwv = vec4<f32>(wp2(k), wp2(k + 2u));
      let w0_0 = vec4<f32>(wp3(c0_0 * 32u + k), wp3(c0_0 * 32u + k + 2u));
      let w0_1 = vec4<f32>(wp3(c0_1 * 32u + k), wp3(c0_1 * 32u + k + 2u));
      let w0_2 = vec4<f32>(wp3(c0_2 * 32u + k), wp3(c0_2 * 32u + k + 2u));
      let w0_3 = vec4<f32>(wp3(c0_3 * 32u + k), wp3(c0_3 * 32u + k + 2u));
      let w1_0 = vec4<f32>(wp3(c1_0 * 32u + k), wp3(c1_0 * 32u + k + 2u));
      let w1_1 = vec4<f32>(wp3(c1_1 * 32u + k), wp3(c1_1 * 32u + k + 2u));
      let w1_2 = vec4<f32>(wp3(c1_2 * 32u + k), wp3(c1_2 * 32u + k + 2u));
      let w1_3 = vec4<f32>(wp3(c1_3 * 32u + k), wp3(c1_3 * 32u + k + 2u));
      let w2_0 = vec4<f32>(wp3(c2_0 * 32u + k), wp3(c2_0 * 32u + k + 2u));
      let w2_1 = vec4<f32>(wp3(c2_1 * 32u + k), wp3(c2_1 * 32u + k + 2u));
      let w2_2 = vec4<f32>(wp3(c2_2 * 32u + k), wp3(c2_2 * 32u + k + 2u));
      let w2_3 = vec4<f32>(wp3(c2_3 * 32u + k), wp3(c2_3 * 32u + k + 2u));
      let w3_0 = vec4<f32>(wp3(c3_0 * 32u + k), wp3(c3_0 * 32u + k + 2u));
      let w3_1 = vec4<f32>(wp3(c3_1 * 32u + k), wp3(c3_1 * 32u + k + 2u));
      let w3_2 = vec4<f32>(wp3(c3_2 * 32u + k), wp3(c3_2 * 32u + k + 2u));
      let w3_3 = vec4<f32>(wp3(c3_3 * 32u + k), wp3(c3_3 * 32u + k + 2u));
      let w4_0 = vec4<f32>(wp3(c4_0 * 32u + k), wp3(c4_0 * 32u + k + 2u));
      let w4_1 = vec4<f32>(wp3(c4_1 * 32u + k), wp3(c4_1 * 32u + k + 2u));
      let w4_2 = vec4<f32>(wp3(c4_2 * 32u + k), wp3(c4_2 * 32u + k + 2u));
      let w4_3 = vec4<f32>(wp3(c4_3 * 32u + k), wp3(c4_3 * 32u + k + 2u));
      let w5_0 = vec4<f32>(wp3(c5_0 * 32u + k), wp3(c5_0 * 32u + k + 2u));
      let w5_1 = vec4<f32>(wp3(c5_1 * 32u + k), wp3(c5_1 * 32u + k + 2u));
      let w5_2 = vec4<f32>(wp3(c5_2 * 32u + k), wp3(c5_2 * 32u + k + 2u));
      let w5_3 = vec4<f32>(wp3(c5_3 * 32u + k), wp3(c5_3 * 32u + k + 2u));
      let w6_0 = vec4<f32>(wp3(c6_0 * 32u + k), wp3(c6_0 * 32u + k + 2u));
      let w6_1 = vec4<f32>(wp3(c6_1 * 32u + k), wp3(c6_1 * 32u + k + 2u));
      let w6_2 = vec4<f32>(wp3(c6_2 * 32u + k), wp3(c6_2 * 32u + k + 2u));
      let w6_3 = vec4<f32>(wp3(c6_3 * 32u + k), wp3(c6_3 * 32u + k + 2u));
      let w7_0 = vec4<f32>(wp3(c7_0 * 32u + k), wp3(c7_0 * 32u + k + 2u));
      let w7_1 = vec4<f32>(wp3(c7_1 * 32u + k), wp3(c7_1 * 32u + k + 2u));
      let w7_2 = vec4<f32>(wp3(c7_2 * 32u + k), wp3(c7_2 * 32u + k + 2u));
      let w7_3 = vec4<f32>(wp3(c7_3 * 32u + k), wp3(c7_3 * 32u + k + 2u));
      let hv0 = vec4<f32>(h(src0, k), h(src0, k + 1u), h(src0, k + 2u), h(src0, k + 3u));
      ss0 += dot(hv0, hv0);
      let xv0 = nwv * hv0;
      a0_0_0 += dot(xv0, w0_0);
      a0_0_1 += dot(xv0, w0_1);
      a0_0_2 += dot(xv0, w0_2);
      a0_0_3 += dot(xv0, w0_3);
      a0_1_0 += dot(xv0, w1_0);
      a0_1_1 += dot(xv0, w1_1);
      a0_1_2 += dot(xv0, w1_2);
      a0_1_3 += dot(xv0, w1_3);
      a0_2_0 += dot(xv0, w2_0);
      a0_2_1 += dot(xv0, w2_1);
      a0_2_2 += dot(xv0, w2_2);
      a0_2_3 += dot(xv0, w2_3);
      a0_3_0 += dot(xv0, w3_0);
      a0_3_1 += dot(xv0, w3_1);
      a0_3_2 += dot(xv0, w3_2);
      a0_3_3 += dot(xv0, w3_3);
      a0_4_0 += dot(xv0, w4_0);
      a0_4_1 += dot(xv0, w4_1);
      a0_4_2 += dot(xv0, w4_2);
      a0_4_3 += dot(xv0, w4_3);
      a0_5_0 += dot(xv0, w5_0);
      a0_5_1 += dot(xv0, w5_1);
      a0_5_2 += dot(xv0, w5_2);
      a0_5_3 += dot(xv0, w5_3);
      a0_6_0 += dot(xv0, w6_0);
      a0_6_1 += dot(xv0, w6_1);
      a0_6_2 += dot(xv0, w6_2);
      a0_6_3 += dot(xv0, w6_3);
      a0_7_0 += dot(xv0, w7_0);
      a0_7_1 += dot(xv0, w7_1);
      a0_7_2 += dot(xv0, w7_2);
      a0_7_3 += dot(xv0, w7_3);
    }
    let inv0 = inverseSqrt(ss0 / 32.0 + 0.00000999999975);
    v0_0_0 += a0_0_0 * inv0;
    v0_0_1 += a0_0_1 * inv0;
    v0_0_2 += a0_0_2 * inv0;
    v0_0_3 += a0_0_3 * inv0;
    v0_1_0 += a0_1_0 * inv0;
    v0_1_1 += a0_1_1 * inv0;
    v0_1_2 += a0_1_2 * inv0;
    v0_1_3 += a0_1_3 * inv0;
    v0_2_0 += a0_2_0 * inv0;
    v0_2_1 += a0_2_1 * inv0;
    v0_2_2 += a0_2_2 * inv0;
    v0_2_3 += a0_2_3 * inv0;
    v0_3_0 += a0_3_0 * inv0;
    v0_3_1 += a0_3_1 * inv0;
    v0_3_2 += a0_3_2 * inv0;
    v0_3_3 += a0_3_3 * inv0;
    v0_4_0 += a0_4_0 * inv0;
    v0_4_1 += a0_4_1 * inv0;
    v0_4_2 += a0_4_2 * inv0;
    v0_4_3 += a0_4_3 * inv0;
    v0_5_0 += a0_5_0 * inv0;
    v0_5_1 += a0_5_1 * inv0;
    v0_5_2 += a0_5_2 * inv0;
    v0_5_3 += a0_5_3 * inv0;
    v0_6_0 += a0_6_0 * inv0;
    v0_6_1 += a0_6_1 * inv0;
    v0_6_2 += a0_6_2 * inv0;
    v0_6_3 += a0_6_3 * inv0;
    v0_7_0 += a0_7_0 * inv0;
    v0_7_1 += a0_7_1 * inv0;
    v0_7_2 += a0_7_2 * inv0;
    v0_7_3 += a0_7_3 * inv0;
  }
  if (rb + 0u < nT()) {
    let r = r0;
    pc[0] = need(n0, 0u);
    pv[0] = select(v0_0_0 + bias(c0_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n0, 1u);
    pv[1] = select(v0_0_1 + bias(c0_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n0, 2u);
    pv[2] = select(v0_0_2 + bias(c0_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n0, 3u);
    pv[3] = select(v0_0_3 + bias(c0_3), 0.0, pc[3] >= 64u);
    if (nb + 0u < 64u) { store(r, n0, s2(r, n0)); }
    pc[0] = need(n1, 0u);
    pv[0] = select(v0_1_0 + bias(c1_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n1, 1u);
    pv[1] = select(v0_1_1 + bias(c1_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n1, 2u);
    pv[2] = select(v0_1_2 + bias(c1_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n1, 3u);
    pv[3] = select(v0_1_3 + bias(c1_3), 0.0, pc[3] >= 64u);
    if (nb + 1u < 64u) { store(r, n1, s2(r, n1)); }
    pc[0] = need(n2, 0u);
    pv[0] = select(v0_2_0 + bias(c2_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n2, 1u);
    pv[1] = select(v0_2_1 + bias(c2_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n2, 2u);
    pv[2] = select(v0_2_2 + bias(c2_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n2, 3u);
    pv[3] = select(v0_2_3 + bias(c2_3), 0.0, pc[3] >= 64u);
    if (nb + 2u < 64u) { store(r, n2, s2(r, n2)); }
    pc[0] = need(n3, 0u);
    pv[0] = select(v0_3_0 + bias(c3_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n3, 1u);
    pv[1] = select(v0_3_1 + bias(c3_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n3, 2u);
    pv[2] = select(v0_3_2 + bias(c3_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n3, 3u);
    pv[3] = select(v0_3_3 + bias(c3_3), 0.0, pc[3] >= 64u);
    if (nb + 3u < 64u) { store(r, n3, s2(r, n3)); }
    pc[0] = need(n4, 0u);
    pv[0] = select(v0_4_0 + bias(c4_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n4, 1u);
    pv[1] = select(v0_4_1 + bias(c4_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n4, 2u);
    pv[2] = select(v0_4_2 + bias(c4_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n4, 3u);
    pv[3] = select(v0_4_3 + bias(c4_3), 0.0, pc[3] >= 64u);
    if (nb + 4u < 64u) { store(r, n4, s2(r, n4)); }
    pc[0] = need(n5, 0u);
    pv[0] = select(v0_5_0 + bias(c5_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n5, 1u);
    pv[1] = select(v0_5_1 + bias(c5_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n5, 2u);
    pv[2] = select(v0_5_2 + bias(c5_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n5, 3u);
    pv[3] = select(v0_5_3 + bias(c5_3), 0.0, pc[3] >= 64u);
    if (nb + 5u < 64u) { store(r, n5, s2(r, n5)); }
    pc[0] = need(n6, 0u);
    pv[0] = select(v0_6_0 + bias(c6_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n6, 1u);
    pv[1] = select(v0_6_1 + bias(c6_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n6, 2u);
    pv[2] = select(v0_6_2 + bias(c6_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n6, 3u);
    pv[3] = select(v0_6_3 + bias(c6_3), 0.0, pc[3] >= 64u);
    if (nb + 6u < 64u) { store(r, n6, s2(r, n6)); }
    pc[0] = need(n7, 0u);
    pv[0] = select(v0_7_0 + bias(c7_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n7, 1u);
    pv[1] = select(v0_7_1 + bias(c7_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n7, 2u);
    pv[2] = select(v0_7_2 + bias(c7_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n7, 3u);
    pv[3] = select(v0_7_3 + bias(c7_3), 0.0, pc[3] >= 64u);
    if (nb + 7u < 64u) { store(r, n7, s2(r, n7)); }
  }
}

// ==== pass fused matrix-vector product: bindings arena, ints, w:model.layers.1.input_layernorm.weight, w:model.layers.1.self_attn.q_proj+k_proj+v_proj.weight; places 0, 64; workgroups ceil(n(T)·16/64)·1; product rows <= 4; product rows > 1
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
fn wp3(i: u32) -> vec2<f32> { let p = wb3_get(i >> 1u); return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u)); }
fn wp2(i: u32) -> vec2<f32> { let p = wb2_get(i >> 1u); return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u)); }
const M = 4u;
var<private> pc: array<u32, 4>;
var<private> pv: array<f32, 4>;
fn pval(j: u32) -> f32 {
  for (var m = 0u; m < M; m++) { if (pc[m] == j) { return pv[m]; } }
  return 0.0;
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + li;
  let rb = (i / 16u) * 4u;
  if (rb >= nT()) { return; }
  let nb = (i % 16u) * 4u;
  let r0 = min(rb + 0u, nT() - 1u);
  let src0 = r0;
  let r1 = min(rb + 1u, nT() - 1u);
  let src1 = r1;
  let r2 = min(rb + 2u, nT() - 1u);
  let src2 = r2;
  let r3 = min(rb + 3u, nT() - 1u);
  let src3 = r3;
  let n0 = min(nb + 0u, 63u);
  let n1 = min(nb + 1u, 63u);
  let n2 = min(nb + 2u, 63u);
  let n3 = min(nb + 3u, 63u);
  let c0_0 = min(need(n0, 0u), 63u);
  let c0_1 = min(need(n0, 1u), 63u);
  let c0_2 = min(need(n0, 2u), 63u);
  let c0_3 = min(need(n0, 3u), 63u);
  let c1_0 = min(need(n1, 0u), 63u);
  let c1_1 = min(need(n1, 1u), 63u);
  let c1_2 = min(need(n1, 2u), 63u);
  let c1_3 = min(need(n1, 3u), 63u);
  let c2_0 = min(need(n2, 0u), 63u);
  let c2_1 = min(need(n2, 1u), 63u);
  let c2_2 = min(need(n2, 2u), 63u);
  let c2_3 = min(need(n2, 3u), 63u);
  let c3_0 = min(need(n3, 0u), 63u);
  let c3_1 = min(need(n3, 1u), 63u);
  let c3_2 = min(need(n3, 2u), 63u);
  let c3_3 = min(need(n3, 3u), 63u);
  var v0_0_0 = 0.0;
  var v0_0_1 = 0.0;
  var v0_0_2 = 0.0;
  var v0_0_3 = 0.0;
  var v0_1_0 = 0.0;
  var v0_1_1 = 0.0;
  var v0_1_2 = 0.0;
  var v0_1_3 = 0.0;
  var v0_2_0 = 0.0;
  var v0_2_1 = 0.0;
  var v0_2_2 = 0.0;
  var v0_2_3 = 0.0;
  var v0_3_0 = 0.0;
  var v0_3_1 = 0.0;
  var v0_3_2 = 0.0;
  var v0_3_3 = 0.0;
  var v1_0_0 = 0.0;
  var v1_0_1 = 0.0;
  var v1_0_2 = 0.0;
  var v1_0_3 = 0.0;
  var v1_1_0 = 0.0;
  var v1_1_1 = 0.0;
  var v1_1_2 = 0.0;
  var v1_1_3 = 0.0;
  var v1_2_0 = 0.0;
  var v1_2_1 = 0.0;
  var v1_2_2 = 0.0;
  var v1_2_3 = 0.0;
  var v1_3_0 = 0.0;
  var v1_3_1 = 0.0;
  var v1_3_2 = 0.0;
  var v1_3_3 = 0.0;
  var v2_0_0 = 0.0;
  var v2_0_1 = 0.0;
  var v2_0_2 = 0.0;
  var v2_0_3 = 0.0;
  var v2_1_0 = 0.0;
  var v2_1_1 = 0.0;
  var v2_1_2 = 0.0;
  var v2_1_3 = 0.0;
  var v2_2_0 = 0.0;
  var v2_2_1 = 0.0;
  var v2_2_2 = 0.0;
  var v2_2_3 = 0.0;
  var v2_3_0 = 0.0;
  var v2_3_1 = 0.0;
  var v2_3_2 = 0.0;
  var v2_3_3 = 0.0;
  var v3_0_0 = 0.0;
  var v3_0_1 = 0.0;
  var v3_0_2 = 0.0;
  var v3_0_3 = 0.0;
  var v3_1_0 = 0.0;
  var v3_1_1 = 0.0;
  var v3_1_2 = 0.0;
  var v3_1_3 = 0.0;
  var v3_2_0 = 0.0;
  var v3_2_1 = 0.0;
  var v3_2_2 = 0.0;
  var v3_2_3 = 0.0;
  var v3_3_0 = 0.0;
  var v3_3_1 = 0.0;
  var v3_3_2 = 0.0;
  var v3_3_3 = 0.0;
  for (var g = 0u; g < 1u; g++) {
    var ss0 = 0.0;
    var a0_0_0 = 0.0;
    var a0_0_1 = 0.0;
    var a0_0_2 = 0.0;
    var a0_0_3 = 0.0;
    var a0_1_0 = 0.0;
    var a0_1_1 = 0.0;
    var a0_1_2 = 0.0;
    var a0_1_3 = 0.0;
    var a0_2_0 = 0.0;
    var a0_2_1 = 0.0;
    var a0_2_2 = 0.0;
    var a0_2_3 = 0.0;
    var a0_3_0 = 0.0;
    var a0_3_1 = 0.0;
    var a0_3_2 = 0.0;
    var a0_3_3 = 0.0;
    var ss1 = 0.0;
    var a1_0_0 = 0.0;
    var a1_0_1 = 0.0;
    var a1_0_2 = 0.0;
    var a1_0_3 = 0.0;
    var a1_1_0 = 0.0;
    var a1_1_1 = 0.0;
    var a1_1_2 = 0.0;
    var a1_1_3 = 0.0;
    var a1_2_0 = 0.0;
    var a1_2_1 = 0.0;
    var a1_2_2 = 0.0;
    var a1_2_3 = 0.0;
    var a1_3_0 = 0.0;
    var a1_3_1 = 0.0;
    var a1_3_2 = 0.0;
    var a1_3_3 = 0.0;
    var ss2 = 0.0;
    var a2_0_0 = 0.0;
    var a2_0_1 = 0.0;
    var a2_0_2 = 0.0;
    var a2_0_3 = 0.0;
    var a2_1_0 = 0.0;
    var a2_1_1 = 0.0;
    var a2_1_2 = 0.0;
    var a2_1_3 = 0.0;
    var a2_2_0 = 0.0;
    var a2_2_1 = 0.0;
    var a2_2_2 = 0.0;
    var a2_2_3 = 0.0;
    var a2_3_0 = 0.0;
    var a2_3_1 = 0.0;
    var a2_3_2 = 0.0;
    var a2_3_3 = 0.0;
    var ss3 = 0.0;
    var a3_0_0 = 0.0;
    var a3_0_1 = 0.0;
    var a3_0_2 = 0.0;
    var a3_0_3 = 0.0;
    var a3_1_0 = 0.0;
    var a3_1_1 = 0.0;
    var a3_1_2 = 0.0;
    var a3_1_3 = 0.0;
    var a3_2_0 = 0.0;
    var a3_2_1 = 0.0;
    var a3_2_2 = 0.0;
    var a3_2_3 = 0.0;
    var a3_3_0 = 0.0;
    var a3_3_1 = 0.0;
    var a3_3_2 = 0.0;
    var a3_3_3 = 0.0;
    // k four at a time as vec4s (the group's length is a multiple of 4), else one at a time
    for (var k = g * 32u; k < (g + 1u) * 32u; k += 4u) {
      let nwv = vec4<f32>(wp2(k), wp2(k + 2u));
      let w0_0 = vec4<f32>(wp3(c0_0 * 32u + k), wp3(c0_0 * 32u + k + 2u));
      let w0_1 = vec4<f32>(wp3(c0_1 * 32u + k), wp3(c0_1 * 32u + k + 2u));
      let w0_2 = vec4<f32>(wp3(c0_2 * 32u + k), wp3(c0_2 * 32u + k + 2u));
      let w0_3 = vec4<f32>(wp3(c0_3 * 32u + k), wp3(c0_3 * 32u + k + 2u));
      let w1_0 = vec4<f32>(wp3(c1_0 * 32u + k), wp3(c1_0 * 32u + k + 2u));
      let w1_1 = vec4<f32>(wp3(c1_1 * 32u + k), wp3(c1_1 * 32u + k + 2u));
      let w1_2 = vec4<f32>(wp3(c1_2 * 32u + k), wp3(c1_2 * 32u + k + 2u));
      let w1_3 = vec4<f32>(wp3(c1_3 * 32u + k), wp3(c1_3 * 32u + k + 2u));
      let w2_0 = vec4<f32>(wp3(c2_0 * 32u + k), wp3(c2_0 * 32u + k + 2u));
      let w2_1 = vec4<f32>(wp3(c2_1 * 32u + k), wp3(c2_1 * 32u + k + 2u));
      let w2_2 = vec4<f32>(wp3(c2_2 * 32u + k), wp3(c2_2 * 32u + k + 2u));
      let w2_3 = vec4<f32>(wp3(c2_3 * 32u + k), wp3(c2_3 * 32u + k + 2u));
      let w3_0 = vec4<f32>(wp3(c3_0 * 32u + k), wp3(c3_0 * 32u + k + 2u));
      let w3_1 = vec4<f32>(wp3(c3_1 * 32u + k), wp3(c3_1 * 32u + k + 2u));
      let w3_2 = vec4<f32>(wp3(c3_2 * 32u + k), wp3(c3_2 * 32u + k + 2u));
      let w3_3 = vec4<f32>(wp3(c3_3 * 32u + k), wp3(c3_3 * 32u + k + 2u));
      let hv0 = vec4<f32>(h(src0, k), h(src0, k + 1u), h(src0, k + 2u), h(src0, k + 3u));
      ss0 += dot(hv0, hv0);
      let xv0 = nwv * hv0;
      let hv1 = vec4<f32>(h(src1, k), h(src1, k + 1u), h(src1, k + 2u), h(src1, k + 3u));
      ss1 += dot(hv1, hv1);
      let xv1 = nwv * hv1;
      let hv2 = vec4<f32>(h(src2, k), h(src2, k + 1u), h(src2, k + 2u), h(src2, k + 3u));
      ss2 += dot(hv2, hv2);
      let xv2 = nwv * hv2;
      let hv3 = vec4<f32>(h(src3, k), h(src3, k + 1u), h(src3, k + 2u), h(src3, k + 3u));
      ss3 += dot(hv3, hv3);
      let xv3 = nwv * hv3;
      a0_0_0 += dot(xv0, w0_0);
      a0_0_1 += dot(xv0, w0_1);
      a0_0_2 += dot(xv0, w0_2);
      a0_0_3 += dot(xv0, w0_3);
      a0_1_0 += dot(xv0, w1_0);
      a0_1_1 += dot(xv0, w1_1);
      a0_1_2 += dot(xv0, w1_2);
      a0_1_3 += dot(xv0, w1_3);
      a0_2_0 += dot(xv0, w2_0);
      a0_2_1 += dot(xv0, w2_1);
      a0_2_2 += dot(xv0, w2_2);
      a0_2_3 += dot(xv0, w2_3);
      a0_3_0 += dot(xv0, w3_0);
      a0_3_1 += dot(xv0, w3_1);
      a0_3_2 += dot(xv0, w3_2);
      a0_3_3 += dot(xv0, w3_3);
      a1_0_0 += dot(xv1, w0_0);
      a1_0_1 += dot(xv1, w0_1);
      a1_0_2 += dot(xv1, w0_2);
      a1_0_3 += dot(xv1, w0_3);
      a1_1_0 += dot(xv1, w1_0);
      a1_1_1 += dot(xv1, w1_1);
      a1_1_2 += dot(xv1, w1_2);
      a1_1_3 += dot(xv1, w1_3);
      a1_2_0 += dot(xv1, w2_0);
      a1_2_1 += dot(xv1, w2_1);
      a1_2_2 += dot(xv1, w2_2);
      a1_2_3 += dot(xv1, w2_3);
      a1_3_0 += dot(xv1, w3_0);
      a1_3_1 += dot(xv1, w3_1);
      a1_3_2 += dot(xv1, w3_2);
      a1_3_3 += dot(xv1, w3_3);
      a2_0_0 += dot(xv2, w0_0);
      a2_0_1 += dot(xv2, w0_1);
      a2_0_2 += dot(xv2, w0_2);
      a2_0_3 += dot(xv2, w0_3);
      a2_1_0 += dot(xv2, w1_0);
      a2_1_1 += dot(xv2, w1_1);
      a2_1_2 += dot(xv2, w1_2);
      a2_1_3 += dot(xv2, w1_3);
      a2_2_0 += dot(xv2, w2_0);
      a2_2_1 += dot(xv2, w2_1);
      a2_2_2 += dot(xv2, w2_2);
      a2_2_3 += dot(xv2, w2_3);
      a2_3_0 += dot(xv2, w3_0);
      a2_3_1 += dot(xv2, w3_1);
      a2_3_2 += dot(xv2, w3_2);
      a2_3_3 += dot(xv2, w3_3);
      a3_0_0 += dot(xv3, w0_0);
      a3_0_1 += dot(xv3, w0_1);
      a3_0_2 += dot(xv3, w0_2);
      a3_0_3 += dot(xv3, w0_3);
      a3_1_0 += dot(xv3, w1_0);
      a3_1_1 += dot(xv3, w1_1);
      a3_1_2 += dot(xv3, w1_2);
      a3_1_3 += dot(xv3, w1_3);
      a3_2_0 += dot(xv3, w2_0);
      a3_2_1 += dot(xv3, w2_1);
      a3_2_2 += dot(xv3, w2_2);
      a3_2_3 += dot(xv3, w2_3);
      a3_3_0 += dot(xv3, w3_0);
      a3_3_1 += dot(xv3, w3_1);
      a3_3_2 += dot(xv3, w3_2);
      a3_3_3 += dot(xv3, w3_3);
    }
    let inv0 = inverseSqrt(ss0 / 32.0 + 0.00000999999975);
    v0_0_0 += a0_0_0 * inv0;
    v0_0_1 += a0_0_1 * inv0;
    v0_0_2 += a0_0_2 * inv0;
    v0_0_3 += a0_0_3 * inv0;
    v0_1_0 += a0_1_0 * inv0;
    v0_1_1 += a0_1_1 * inv0;
    v0_1_2 += a0_1_2 * inv0;
    v0_1_3 += a0_1_3 * inv0;
    v0_2_0 += a0_2_0 * inv0;
    v0_2_1 += a0_2_1 * inv0;
    v0_2_2 += a0_2_2 * inv0;
    v0_2_3 += a0_2_3 * inv0;
    v0_3_0 += a0_3_0 * inv0;
    v0_3_1 += a0_3_1 * inv0;
    v0_3_2 += a0_3_2 * inv0;
    v0_3_3 += a0_3_3 * inv0;
    let inv1 = inverseSqrt(ss1 / 32.0 + 0.00000999999975);
    v1_0_0 += a1_0_0 * inv1;
    v1_0_1 += a1_0_1 * inv1;
    v1_0_2 += a1_0_2 * inv1;
    v1_0_3 += a1_0_3 * inv1;
    v1_1_0 += a1_1_0 * inv1;
    v1_1_1 += a1_1_1 * inv1;
    v1_1_2 += a1_1_2 * inv1;
    v1_1_3 += a1_1_3 * inv1;
    v1_2_0 += a1_2_0 * inv1;
    v1_2_1 += a1_2_1 * inv1;
    v1_2_2 += a1_2_2 * inv1;
    v1_2_3 += a1_2_3 * inv1;
    v1_3_0 += a1_3_0 * inv1;
    v1_3_1 += a1_3_1 * inv1;
    v1_3_2 += a1_3_2 * inv1;
    v1_3_3 += a1_3_3 * inv1;
    let inv2 = inverseSqrt(ss2 / 32.0 + 0.00000999999975);
    v2_0_0 += a2_0_0 * inv2;
    v2_0_1 += a2_0_1 * inv2;
    v2_0_2 += a2_0_2 * inv2;
    v2_0_3 += a2_0_3 * inv2;
    v2_1_0 += a2_1_0 * inv2;
    v2_1_1 += a2_1_1 * inv2;
    v2_1_2 += a2_1_2 * inv2;
    v2_1_3 += a2_1_3 * inv2;
    v2_2_0 += a2_2_0 * inv2;
    v2_2_1 += a2_2_1 * inv2;
    v2_2_2 += a2_2_2 * inv2;
    v2_2_3 += a2_2_3 * inv2;
    v2_3_0 += a2_3_0 * inv2;
    v2_3_1 += a2_3_1 * inv2;
    v2_3_2 += a2_3_2 * inv2;
    v2_3_3 += a2_3_3 * inv2;
    let inv3 = inverseSqrt(ss3 / 32.0 + 0.00000999999975);
    v3_0_0 += a3_0_0 * inv3;
    v3_0_1 += a3_0_1 * inv3;
    v3_0_2 += a3_0_2 * inv3;
    v3_0_3 += a3_0_3 * inv3;
    v3_1_0 += a3_1_0 * inv3;
    v3_1_1 += a3_1_1 * inv3;
    v3_1_2 += a3_1_2 * inv3;
    v3_1_3 += a3_1_3 * inv3;
    v3_2_0 += a3_2_0 * inv3;
    v3_2_1 += a3_2_1 * inv3;
    v3_2_2 += a3_2_2 * inv3;
    v3_2_3 += a3_2_3 * inv3;
    v3_3_0 += a3_3_0 * inv3;
    v3_3_1 += a3_3_1 * inv3;
    v3_3_2 += a3_3_2 * inv3;
    v3_3_3 += a3_3_3 * inv3;
  }
  if (rb + 0u < nT()) {
    let r = r0;
    pc[0] = need(n0, 0u);
    pv[0] = select(v0_0_0 + bias(c0_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n0, 1u);
    pv[1] = select(v0_0_1 + bias(c0_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n0, 2u);
    pv[2] = select(v0_0_2 + bias(c0_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n0, 3u);
    pv[3] = select(v0_0_3 + bias(c0_3), 0.0, pc[3] >= 64u);
    if (nb + 0u < 64u) { store(r, n0, s2(r, n0)); }
    pc[0] = need(n1, 0u);
    pv[0] = select(v0_1_0 + bias(c1_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n1, 1u);
    pv[1] = select(v0_1_1 + bias(c1_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n1, 2u);
    pv[2] = select(v0_1_2 + bias(c1_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n1, 3u);
    pv[3] = select(v0_1_3 + bias(c1_3), 0.0, pc[3] >= 64u);
    if (nb + 1u < 64u) { store(r, n1, s2(r, n1)); }
    pc[0] = need(n2, 0u);
    pv[0] = select(v0_2_0 + bias(c2_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n2, 1u);
    pv[1] = select(v0_2_1 + bias(c2_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n2, 2u);
    pv[2] = select(v0_2_2 + bias(c2_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n2, 3u);
    pv[3] = select(v0_2_3 + bias(c2_3), 0.0, pc[3] >= 64u);
    if (nb + 2u < 64u) { store(r, n2, s2(r, n2)); }
    pc[0] = need(n3, 0u);
    pv[0] = select(v0_3_0 + bias(c3_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n3, 1u);
    pv[1] = select(v0_3_1 + bias(c3_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n3, 2u);
    pv[2] = select(v0_3_2 + bias(c3_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n3, 3u);
    pv[3] = select(v0_3_3 + bias(c3_3), 0.0, pc[3] >= 64u);
    if (nb + 3u < 64u) { store(r, n3, s2(r, n3)); }
  }
  if (rb + 1u < nT()) {
    let r = r1;
    pc[0] = need(n0, 0u);
    pv[0] = select(v1_0_0 + bias(c0_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n0, 1u);
    pv[1] = select(v1_0_1 + bias(c0_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n0, 2u);
    pv[2] = select(v1_0_2 + bias(c0_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n0, 3u);
    pv[3] = select(v1_0_3 + bias(c0_3), 0.0, pc[3] >= 64u);
    if (nb + 0u < 64u) { store(r, n0, s2(r, n0)); }
    pc[0] = need(n1, 0u);
    pv[0] = select(v1_1_0 + bias(c1_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n1, 1u);
    pv[1] = select(v1_1_1 + bias(c1_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n1, 2u);
    pv[2] = select(v1_1_2 + bias(c1_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n1, 3u);
    pv[3] = select(v1_1_3 + bias(c1_3), 0.0, pc[3] >= 64u);
    if (nb + 1u < 64u) { store(r, n1, s2(r, n1)); }
    pc[0] = need(n2, 0u);
    pv[0] = select(v1_2_0 + bias(c2_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n2, 1u);
    pv[1] = select(v1_2_1 + bias(c2_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n2, 2u);
    pv[2] = select(v1_2_2 + bias(c2_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n2, 3u);
    pv[3] = select(v1_2_3 + bias(c2_3), 0.0, pc[3] >= 64u);
    if (nb + 2u < 64u) { store(r, n2, s2(r, n2)); }
    pc[0] = need(n3, 0u);
    pv[0] = select(v1_3_0 + bias(c3_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n3, 1u);
    pv[1] = select(v1_3_1 + bias(c3_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n3, 2u);
    pv[2] = select(v1_3_2 + bias(c3_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n3, 3u);
    pv[3] = select(v1_3_3 + bias(c3_3), 0.0, pc[3] >= 64u);
    if (nb + 3u < 64u) { store(r, n3, s2(r, n3)); }
  }
  if (rb + 2u < nT()) {
    let r = r2;
    pc[0] = need(n0, 0u);
    pv[0] = select(v2_0_0 + bias(c0_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n0, 1u);
    pv[1] = select(v2_0_1 + bias(c0_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n0, 2u);
    pv[2] = select(v2_0_2 + bias(c0_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n0, 3u);
    pv[3] = select(v2_0_3 + bias(c0_3), 0.0, pc[3] >= 64u);
    if (nb + 0u < 64u) { store(r, n0, s2(r, n0)); }
    pc[0] = need(n1, 0u);
    pv[0] = select(v2_1_0 + bias(c1_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n1, 1u);
    pv[1] = select(v2_1_1 + bias(c1_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n1, 2u);
    pv[2] = select(v2_1_2 + bias(c1_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n1, 3u);
    pv[3] = select(v2_1_3 + bias(c1_3), 0.0, pc[3] >= 64u);
    if (nb + 1u < 64u) { store(r, n1, s2(r, n1)); }
    pc[0] = need(n2, 0u);
    pv[0] = select(v2_2_0 + bias(c2_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n2, 1u);
    pv[1] = select(v2_2_1 + bias(c2_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n2, 2u);
    pv[2] = select(v2_2_2 + bias(c2_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n2, 3u);
    pv[3] = select(v2_2_3 + bias(c2_3), 0.0, pc[3] >= 64u);
    if (nb + 2u < 64u) { store(r, n2, s2(r, n2)); }
    pc[0] = need(n3, 0u);
    pv[0] = select(v2_3_0 + bias(c3_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n3, 1u);
    pv[1] = select(v2_3_1 + bias(c3_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n3, 2u);
    pv[2] = select(v2_3_2 + bias(c3_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n3, 3u);
    pv[3] = select(v2_3_3 + bias(c3_3), 0.0, pc[3] >= 64u);
    if (nb + 3u < 64u) { store(r, n3, s2(r, n3)); }
  }
  if (rb + 3u < nT()) {
    let r = r3;
    pc[0] = need(n0, 0u);
    pv[0] = select(v3_0_0 + bias(c0_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n0, 1u);
    pv[1] = select(v3_0_1 + bias(c0_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n0, 2u);
    pv[2] = select(v3_0_2 + bias(c0_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n0, 3u);
    pv[3] = select(v3_0_3 + bias(c0_3), 0.0, pc[3] >= 64u);
    if (nb + 0u < 64u) { store(r, n0, s2(r, n0)); }
    pc[0] = need(n1, 0u);
    pv[0] = select(v3_1_0 + bias(c1_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n1, 1u);
    pv[1] = select(v3_1_1 + bias(c1_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n1, 2u);
    pv[2] = select(v3_1_2 + bias(c1_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n1, 3u);
    pv[3] = select(v3_1_3 + bias(c1_3), 0.0, pc[3] >= 64u);
    if (nb + 1u < 64u) { store(r, n1, s2(r, n1)); }
    pc[0] = need(n2, 0u);
    pv[0] = select(v3_2_0 + bias(c2_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n2, 1u);
    pv[1] = select(v3_2_1 + bias(c2_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n2, 2u);
    pv[2] = select(v3_2_2 + bias(c2_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n2, 3u);
    pv[3] = select(v3_2_3 + bias(c2_3), 0.0, pc[3] >= 64u);
    if (nb + 2u < 64u) { store(r, n2, s2(r, n2)); }
    pc[0] = need(n3, 0u);
    pv[0] = select(v3_3_0 + bias(c3_0), 0.0, pc[0] >= 64u);
    pc[1] = need(n3, 1u);
    pv[1] = select(v3_3_1 + bias(c3_1), 0.0, pc[1] >= 64u);
    pc[2] = need(n3, 2u);
    pv[2] = select(v3_3_2 + bias(c3_2), 0.0, pc[2] >= 64u);
    pc[3] = need(n3, 3u);
    pv[3] = select(v3_3_3 + bias(c3_3), 0.0, pc[3] >= 64u);
    if (nb + 3u < 64u) { store(r, n3, s2(r, n3)); }
  }
}

// ==== pass tiled product: bindings arena, ints, w:model.layers.1.self_attn.q_proj+k_proj+v_proj.weight, scratch0, scratch1; workgroups ceil(n(T)·1/256)·16; product rows > 4
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
fn wp2(i: u32) -> vec2<f32> { let p = wb2_get(i >> 1u); return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u)); }
fn wquad(n: u32, k: u32) -> vec4<f32> { return vec4<f32>(wp2(n * 32u + k), wp2(n * 32u + k + 2u)); }
fn x4(r: u32, k: u32) -> vec4<f32> { return vec4<f32>(xin(r, k), xin(r, k + 1u), xin(r, k + 2u), xin(r, k + 3u)); }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let rows = nT();
  let rowBlocks = (rows + 256u - 1u) / 256u;
  let tn = unit / rowBlocks;
  let r = ((unit % rowBlocks) * 64u + li) * 4u;
  if (tn >= 16u || r >= rows) { return; }
  let n = tn * 4u;
  // rows and columns past the end read the last one and are not stored
  let r1 = min(r + 1u, rows - 1u);
  let r2 = min(r + 2u, rows - 1u);
  let r3 = min(r + 3u, rows - 1u);
  let n1 = min(n + 1u, 64u - 1u);
  let n2 = min(n + 2u, 64u - 1u);
  let n3 = min(n + 3u, 64u - 1u);
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  // K four at a time: rows and columns as vec4s over k, sixteen dot products
  for (var k = 0u; k < 32u; k += 4u) {
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
  for (var k = 32u; k < 32u; k++) {
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
    for (var j = 0u; j < 4u; j++) { if (n + j < 64u) { put(r + i, n + j, acc[i][j]); } }
  }
}

// ==== pass epilogue: bindings arena, ints, scratch1, scratch2; places 0; workgroups ceil(n(T)·1/64)·1; product rows > 4
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
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let r = unit * 64u + li;
  if (r >= nT()) { return; }
  for (var j = 0u; j < 64u; j += 1u) { scratch2_set(r * 64u + j, s1(r, j)); }
  
  for (var j = 0u; j < 64u; j += 1u) { store(r, j, s2(r, j)); }
  
}
