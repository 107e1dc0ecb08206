// ==== pass chunk scores: bindings arena, ints, w:model.layers.0.mamba.dt_bias, w:neg(exp(w:model.layers.0.mamba.A_log)), w:model.layers.0.mamba.D, scratch0, scratch1, scratch2; places 180, 32, 260; workgroups ceil(n(chunks)·16/256)·1
// archc ssd (chunk scores)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;
fn wb2_get(i: u32) -> u32 { return wb2_p0[i]; }
@group(0) @binding(3) var<storage, read> wb3_p0: array<u32>;
fn wb3_get(i: u32) -> u32 { return wb3_p0[i]; }
@group(0) @binding(4) var<storage, read> wb4_p0: array<u32>;
fn wb4_get(i: u32) -> u32 { return wb4_p0[i]; }
@group(0) @binding(5) var<storage, read_write> scratch0_p0: array<f32>;
fn scratch0_get(i: u32) -> f32 { return scratch0_p0[i]; }
fn scratch0_set(i: u32, v: f32) { scratch0_p0[i] = v; }
@group(0) @binding(6) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
@group(0) @binding(7) var<storage, read_write> scratch2_p0: array<f32>;
fn scratch2_get(i: u32) -> f32 { return scratch2_p0[i]; }
fn scratch2_set(i: u32, v: f32) { scratch2_p0[i] = v; }
@group(0) @binding(8) var<uniform> places: array<vec4<u32>, 1>;
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
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 0u + c); }
fn w2(i: u32) -> f32 { let p = wb2_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_dt(r: u32, c: u32) -> f32 { return max(softplus((arena_get(place(1u) * nT() + (r) * 148u + 144u + c) + w2((c) % 4u))), 0.0); }
fn w3(i: u32) -> f32 { return bitcast<f32>(wb3_get(i)); }
fn op_A(r: u32, c: u32) -> f32 { return w3(c); }
fn op_B(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 64u + c); }
fn op_C(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 72u + c); }
fn w4(i: u32) -> f32 { let p = wb4_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_D(r: u32, c: u32) -> f32 { return w4(c); }
fn get_put(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 64u + 0u + c); }
fn put(r: u32, c: u32, v: f32) { arena_set(place(2u) * nT() + (r) * 64u + 0u + c, v); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let e = unit * 256u + li;
  if (e >= (seqField(nS() - 1u, 4u) + seqField(nS() - 1u, 5u)) * 16u) { return; }
  let c = e / 16u;
  let g = (e / 16u) % 1u;
  let i = (e / 4u) % 4u;
  let j = e % 4u;
  let t0 = chunkField(c, 0u);
  var cb = 0.0;
  if (j <= i && i < chunkField(c, 1u)) {
    for (var n = 0u; n < 8u; n++) { cb += op_C(t0 + i, g * 8u + n) * op_B(t0 + j, g * 8u + n); }
  }
  scratch2_set(e, cb);
}

// ==== pass chunk states: bindings arena, ints, w:model.layers.0.mamba.dt_bias, w:neg(exp(w:model.layers.0.mamba.A_log)), w:model.layers.0.mamba.D, scratch0, scratch1, scratch2; places 180, 32, 260; workgroups ceil(n(chunks)·4/1)·1
// archc ssd (chunk states)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;
fn wb2_get(i: u32) -> u32 { return wb2_p0[i]; }
@group(0) @binding(3) var<storage, read> wb3_p0: array<u32>;
fn wb3_get(i: u32) -> u32 { return wb3_p0[i]; }
@group(0) @binding(4) var<storage, read> wb4_p0: array<u32>;
fn wb4_get(i: u32) -> u32 { return wb4_p0[i]; }
@group(0) @binding(5) var<storage, read_write> scratch0_p0: array<f32>;
fn scratch0_get(i: u32) -> f32 { return scratch0_p0[i]; }
fn scratch0_set(i: u32, v: f32) { scratch0_p0[i] = v; }
@group(0) @binding(6) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
@group(0) @binding(7) var<storage, read_write> scratch2_p0: array<f32>;
fn scratch2_get(i: u32) -> f32 { return scratch2_p0[i]; }
fn scratch2_set(i: u32, v: f32) { scratch2_p0[i] = v; }
@group(0) @binding(8) var<uniform> places: array<vec4<u32>, 1>;
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
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 0u + c); }
fn w2(i: u32) -> f32 { let p = wb2_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_dt(r: u32, c: u32) -> f32 { return max(softplus((arena_get(place(1u) * nT() + (r) * 148u + 144u + c) + w2((c) % 4u))), 0.0); }
fn w3(i: u32) -> f32 { return bitcast<f32>(wb3_get(i)); }
fn op_A(r: u32, c: u32) -> f32 { return w3(c); }
fn op_B(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 64u + c); }
fn op_C(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 72u + c); }
fn w4(i: u32) -> f32 { let p = wb4_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_D(r: u32, c: u32) -> f32 { return w4(c); }
fn get_put(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 64u + 0u + c); }
fn put(r: u32, c: u32, v: f32) { arena_set(place(2u) * nT() + (r) * 64u + 0u + c, v); }
var<workgroup> dts: array<f32, 4>;
var<workgroup> cum: array<f32, 4>;
var<workgroup> wout: array<f32, 4>;
@compute @workgroup_size(16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let c = unit / 4u;
  let h = unit % 4u;
  if (c >= seqField(nS() - 1u, 4u) + seqField(nS() - 1u, 5u)) { return; }
  let t0 = chunkField(c, 0u);
  let q = chunkField(c, 1u);
  let g = h / 4u;
  if (li == 0u) {
    var run = 0.0;
    for (var i = 0u; i < q; i++) { dts[i] = op_dt(t0 + i, h); run += dts[i] * op_A(0u, h); cum[i] = run; }
    scratch1_set(c * 4u + h, exp(run));
    // exp(seg(last, j)) · dt_j: token j's weight in the chunk's state
    for (var j = 0u; j < q; j++) { wout[j] = exp(run - cum[j]) * dts[j]; }
  }
  workgroupBarrier();
  let scores = (c * 1u + g) * 16u;
  for (var p = li; p < 16u; p += 16u) {
    for (var i = 0u; i < q; i++) {
      var y = 0.0;
      for (var j = 0u; j <= i; j++) {
        y += exp(cum[i] - cum[j]) * scratch2_get(scores + i * 4u + j) * dts[j] * op_x(t0 + j, h * 16u + p);
      }
      put(t0 + i, h * 16u + p, y + op_D(0u, h) * op_x(t0 + i, h * 16u + p));
    }
    for (var n = 0u; n < 8u; n++) {
      var st = 0.0;
      for (var j = 0u; j < q; j++) { st += wout[j] * op_x(t0 + j, h * 16u + p) * op_B(t0 + j, g * 8u + n); }
      scratch0_set(((c * 4u + h) * 16u + p) * 8u + n, st);
    }
  }
}

// ==== pass state passing: bindings arena, ints, w:model.layers.0.mamba.dt_bias, w:neg(exp(w:model.layers.0.mamba.A_log)), w:model.layers.0.mamba.D, scratch0, scratch1, scratch2, state; places 180, 32, 260, 1; workgroups ceil(n(S)·512/256)·1
// archc ssd (state passing)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;
fn wb2_get(i: u32) -> u32 { return wb2_p0[i]; }
@group(0) @binding(3) var<storage, read> wb3_p0: array<u32>;
fn wb3_get(i: u32) -> u32 { return wb3_p0[i]; }
@group(0) @binding(4) var<storage, read> wb4_p0: array<u32>;
fn wb4_get(i: u32) -> u32 { return wb4_p0[i]; }
@group(0) @binding(5) var<storage, read_write> scratch0_p0: array<f32>;
fn scratch0_get(i: u32) -> f32 { return scratch0_p0[i]; }
fn scratch0_set(i: u32, v: f32) { scratch0_p0[i] = v; }
@group(0) @binding(6) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
@group(0) @binding(7) var<storage, read_write> scratch2_p0: array<f32>;
fn scratch2_get(i: u32) -> f32 { return scratch2_p0[i]; }
fn scratch2_set(i: u32, v: f32) { scratch2_p0[i] = v; }
@group(0) @binding(8) var<storage, read_write> state_p0: array<f32>;
fn state_get(i: u32) -> f32 { return state_p0[i]; }
fn state_set(i: u32, v: f32) { state_p0[i] = v; }
@group(0) @binding(9) var<uniform> places: array<vec4<u32>, 1>;
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
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 0u + c); }
fn w2(i: u32) -> f32 { let p = wb2_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_dt(r: u32, c: u32) -> f32 { return max(softplus((arena_get(place(1u) * nT() + (r) * 148u + 144u + c) + w2((c) % 4u))), 0.0); }
fn w3(i: u32) -> f32 { return bitcast<f32>(wb3_get(i)); }
fn op_A(r: u32, c: u32) -> f32 { return w3(c); }
fn op_B(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 64u + c); }
fn op_C(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 72u + c); }
fn w4(i: u32) -> f32 { let p = wb4_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_D(r: u32, c: u32) -> f32 { return w4(c); }
fn get_put(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 64u + 0u + c); }
fn put(r: u32, c: u32, v: f32) { arena_set(place(2u) * nT() + (r) * 64u + 0u + c, v); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let i = unit * 256u + li;
  if (i >= nS() * 512u) { return; }
  let s = i / 512u;
  let e = i % 512u;
  let h = e / (16u * 8u);
  let at = seqSlot(s) + stateAt(place(3u)) + e;
  var run = state_get(at);
  let first = seqField(s, 4u);
  for (var c = first; c < first + seqField(s, 5u); c++) {
    let own = scratch0_get(c * 512u + e);
    scratch0_set(c * 512u + e, run);
    run = scratch1_get(c * 4u + h) * run + own;
  }
  state_set(at, run);
}

// ==== pass state output: bindings arena, ints, w:model.layers.0.mamba.dt_bias, w:neg(exp(w:model.layers.0.mamba.A_log)), w:model.layers.0.mamba.D, scratch0, scratch1, scratch2; places 180, 32, 260; workgroups ceil(n(T)·64/256)·1
// archc ssd (state output)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read> wb2_p0: array<u32>;
fn wb2_get(i: u32) -> u32 { return wb2_p0[i]; }
@group(0) @binding(3) var<storage, read> wb3_p0: array<u32>;
fn wb3_get(i: u32) -> u32 { return wb3_p0[i]; }
@group(0) @binding(4) var<storage, read> wb4_p0: array<u32>;
fn wb4_get(i: u32) -> u32 { return wb4_p0[i]; }
@group(0) @binding(5) var<storage, read_write> scratch0_p0: array<f32>;
fn scratch0_get(i: u32) -> f32 { return scratch0_p0[i]; }
fn scratch0_set(i: u32, v: f32) { scratch0_p0[i] = v; }
@group(0) @binding(6) var<storage, read_write> scratch1_p0: array<f32>;
fn scratch1_get(i: u32) -> f32 { return scratch1_p0[i]; }
fn scratch1_set(i: u32, v: f32) { scratch1_p0[i] = v; }
@group(0) @binding(7) var<storage, read_write> scratch2_p0: array<f32>;
fn scratch2_get(i: u32) -> f32 { return scratch2_p0[i]; }
fn scratch2_set(i: u32, v: f32) { scratch2_p0[i] = v; }
@group(0) @binding(8) var<uniform> places: array<vec4<u32>, 1>;
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
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 0u + c); }
fn w2(i: u32) -> f32 { let p = wb2_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_dt(r: u32, c: u32) -> f32 { return max(softplus((arena_get(place(1u) * nT() + (r) * 148u + 144u + c) + w2((c) % 4u))), 0.0); }
fn w3(i: u32) -> f32 { return bitcast<f32>(wb3_get(i)); }
fn op_A(r: u32, c: u32) -> f32 { return w3(c); }
fn op_B(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 64u + c); }
fn op_C(r: u32, c: u32) -> f32 { return arena_get(place(0u) * nT() + (r) * 80u + 72u + c); }
fn w4(i: u32) -> f32 { let p = wb4_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_D(r: u32, c: u32) -> f32 { return w4(c); }
fn get_put(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 64u + 0u + c); }
fn put(r: u32, c: u32, v: f32) { arena_set(place(2u) * nT() + (r) * 64u + 0u + c, v); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let i = unit * 256u + li;
  if (i >= nT() * 4u * 16u) { return; }
  let t = i / (4u * 16u);
  let h = (i / 16u) % 4u;
  let p = i % 16u;
  let g = h / 4u;
  let s = rowSeq(t);
  let k = (t - seqStart(s)) / 4u;
  let c = seqField(s, 4u) + k;
  let t0 = seqStart(s) + k * 4u;
  var cum = 0.0;
  for (var j = t0; j <= t; j++) { cum += op_dt(j, h) * op_A(0u, h); }
  var acc = 0.0;
  for (var n = 0u; n < 8u; n++) { acc += scratch0_get(((c * 4u + h) * 16u + p) * 8u + n) * op_C(t, g * 8u + n); }
  put(t, h * 16u + p, get_put(t, h * 16u + p) + exp(cum) * acc);
}
