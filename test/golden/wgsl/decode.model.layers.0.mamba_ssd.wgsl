// ==== pass scan: bindings arena, ints, state, w:model.layers.0.mamba.dt_bias, w:neg(exp(w:model.layers.0.mamba.A_log)), w:model.layers.0.mamba.D; places 1, 32, 180; workgroups ceil(n(S)·64/256)·1
// archc ssd_step (scan)
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
fn op_x(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 148u + 64u + c); }
fn w3(i: u32) -> f32 { let p = wb3_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_dt(r: u32, c: u32) -> f32 { return max(softplus((arena_get(place(1u) * nT() + (r) * 148u + 144u + c) + w3((c) % 4u))), 0.0); }
fn w4(i: u32) -> f32 { return bitcast<f32>(wb4_get(i)); }
fn op_A(r: u32, c: u32) -> f32 { return w4(c); }
fn op_B(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 148u + 128u + c); }
fn op_C(r: u32, c: u32) -> f32 { return arena_get(place(1u) * nT() + (r) * 148u + 136u + c); }
fn w5(i: u32) -> f32 { let p = wb5_get(i >> 1u); return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }
fn op_D(r: u32, c: u32) -> f32 { return w5(c); }
fn get_put(r: u32, c: u32) -> f32 { return arena_get(place(2u) * nT() + (r) * 64u + 0u + c); }
fn put(r: u32, c: u32, v: f32) { arena_set(place(2u) * nT() + (r) * 64u + 0u + c, v); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let unit = wid.x + wid.y * nwg.x;
  let i = unit * 256u + li;
  if (i >= nS() * 4u * 16u) { return; }
  let s = i / (4u * 16u);
  let h = (i / 16u) % 4u;
  let p = i % 16u;
  let g = h / 4u;
  let sb = seqSlot(s) + stateAt(place(0u)) + (h * 16u + p) * 8u;
  let start = seqStart(s);
  for (var t = start; t < start + seqLen(s); t++) {
    let d = op_dt(t, h);
    let decay = exp(d * op_A(0u, h));
    let xp = op_x(t, h * 16u + p);
    var acc = 0.0;
    for (var n = 0u; n < 8u; n++) {
      let v = state_get(sb + n) * decay + d * xp * op_B(t, g * 8u + n);
      state_set(sb + n, v);
      acc += v * op_C(t, g * 8u + n);
    }
    put(t, h * 16u + p, acc + op_D(0u, h) * xp);
  }
}
