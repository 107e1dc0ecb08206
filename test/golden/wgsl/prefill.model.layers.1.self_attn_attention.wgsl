// ==== pass kv append: bindings arena, ints, state; places 2, 0; workgroups ceil(n(T)·16/256)·1
// archc attention (kv append)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read_write> state_p0: array<f32>;
fn state_get(i: u32) -> f32 { return state_p0[i]; }
fn state_set(i: u32, v: f32) { state_p0[i] = v; }
@group(0) @binding(3) var<uniform> places: array<vec4<u32>, 1>;
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
fn op_k(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 64u + 32u + c); }
fn op_v(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 64u + 48u + c); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let i = unit * 256u + li;
  if (i >= nT() * 16u) { return; }
  let t = i / 16u;
  let e = i % 16u;
  let s = rowSeq(t);
  let at = seqSlot(s) + stateAt(place(0u)) + (seqBefore(s) + t - seqStart(s)) * 16u + e;
  state_set(at, op_k(t, e));
  state_set(at + capacity() * 16u, op_v(t, e));
}

// ==== pass flash attention: bindings arena, ints, state; places 2, 0, 96; workgroups ceil(n(T)·1/64)·2
// archc attention (flash attention)
@group(0) @binding(0) var<storage, read_write> arena_p0: array<f32>;
fn arena_get(i: u32) -> f32 { return arena_p0[i]; }
fn arena_set(i: u32, v: f32) { arena_p0[i] = v; }
@group(0) @binding(1) var<storage, read> ints_p0: array<u32>;
fn ints_get(i: u32) -> u32 { return ints_p0[i]; }
@group(0) @binding(2) var<storage, read_write> state_p0: array<f32>;
fn state_get(i: u32) -> f32 { return state_p0[i]; }
fn state_set(i: u32, v: f32) { state_p0[i] = v; }
@group(0) @binding(3) var<uniform> places: array<vec4<u32>, 1>;
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
fn op_q(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 64u + 0u + c); }
fn get_put(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 32u + 0u + c); }
fn put(r: u32, c: u32, v: f32) { arena_set(place(2u) * nT() + (r) * 32u + 0u + c, v); }
const KEYS = 16u;
const TILE = 128u;
var<workgroup> ks: array<f32, 128>;
var<workgroup> vs: array<f32, 128>;
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let blocks = (nT() + 64u - 1u) / 64u;
  let kv = unit / blocks;
  let t0 = (unit % blocks) * 64u;
  if (kv >= 2u) { return; }
  let tEnd = min(t0 + 64u, nT());
  let t = t0 + li / 2u;
  let h = kv * 2u + li % 2u;
  let live = t < tEnd;
  let tq = min(t, tEnd - 1u);
  var q: array<f32, 8>;
  var acc: array<f32, 8>;
  for (var d = 0u; d < 8u; d++) { q[d] = op_q(tq, h * 8u + d); acc[d] = 0.0; }
  var m = -3.0e38;
  var l = 0.0;
  let mySeq = rowSeq(tq);
  for (var s = rowSeq(t0); s <= rowSeq(tEnd - 1u); s++) {
    let start = seqStart(s);
    // keys the block's rows of sequence s see: up to its last row in the block
    let keys = seqBefore(s) + min(tEnd, start + seqLen(s)) - start;
    let base = seqSlot(s) + stateAt(place(0u)) + kv * 8u;
    let mine = live && mySeq == s;
    let myKeys = select(0u, seqBefore(s) + tq - start + 1u, mine);
    for (var j0 = 0u; j0 < keys; j0 += KEYS) {
      for (var e = li; e < TILE; e += 128u) {
        let j = j0 + e / 8u;
        let at = base + min(j, keys - 1u) * 16u + e % 8u;
        ks[e] = state_get(at);
        vs[e] = state_get(at + capacity() * 16u);
      }
      workgroupBarrier();
      let seen = min(KEYS, myKeys - min(myKeys, j0));
      for (var jj = 0u; jj < seen; jj++) {
        var dot = 0.0;
        for (var d = 0u; d < 8u; d++) { dot += q[d] * ks[jj * 8u + d]; }
        let sc = dot * 0.353553385;
        let mn = max(m, sc);
        let corr = exp(m - mn);
        let pj = exp(sc - mn);
        l = l * corr + pj;
        for (var d = 0u; d < 8u; d++) { acc[d] = acc[d] * corr + pj * vs[jj * 8u + d]; }
        m = mn;
      }
      workgroupBarrier();
    }
  }
  if (live) {
    for (var d = 0u; d < 8u; d++) { put(t, h * 8u + d, acc[d] / l); }
  }
}
