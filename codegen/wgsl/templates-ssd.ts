// WGSL templates of the SSD families (ssd_step's scan, the chunked SSD's four passes), filled as
// templates.ts' are (render.ts); templates.ts re-exports them.

import { BF16_PAIR, MAIN } from './template-parts.ts';

/** The SSD recurrence token by token (decode): one invocation per (sequence, head, channel). A bf16
 *  state (runtime/program.ts withSsmState) is two values a word of the f32 pool (element n in the low
 *  half when n is even): widened into registers, the call's tokens run in f32, each value rounded once
 *  as the call ends (bf16Pair), as the reference's f32States does. */
export const SSD_SCAN = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nS() * {{H}}u * {{P}}u) { return; }
  let s = i / ({{H}}u * {{P}}u);
  let h = (i / {{P}}u) % {{H}}u;
  let p = i % {{P}}u;
  let g = h / {{hpg}}u;
{{#if bf16}}
  let sb = seqSlot(s) + {{state}} + (h * {{P}}u + p) * {{N}}u / 2u;
  var st: array<f32, {{N}}>;
  for (var n = 0u; n < {{N}}u / 2u; n++) {
    let w = bitcast<u32>(state_get(sb + n));
    st[2u * n] = bitcast<f32>(w << 16u);
    st[2u * n + 1u] = bitcast<f32>(w & 0xffff0000u);
  }
{{else}}
  let sb = seqSlot(s) + {{state}} + (h * {{P}}u + p) * {{N}}u;
{{/if}}
  let start = seqStart(s);
  for (var t = start; t < start + seqLen(s); t++) {
    let d = op_dt(t, h);
    let decay = exp(d * op_A(0u, h));
    let xp = op_x(t, h * {{P}}u + p);
    var acc = 0.0;
    for (var n = 0u; n < {{N}}u; n++) {
{{#if bf16}}
      let v = st[n] * decay + d * xp * op_B(t, g * {{N}}u + n);
      st[n] = v;
{{else}}
      let v = state_get(sb + n) * decay + d * xp * op_B(t, g * {{N}}u + n);
      state_set(sb + n, v);
{{/if}}
      acc += v * op_C(t, g * {{N}}u + n);
    }
    put(t, h * {{P}}u + p, acc + op_D(0u, h) * xp);
  }
{{#if bf16}}
  for (var n = 0u; n < {{N}}u / 2u; n++) { state_set(sb + n, bf16Pair(st[2u * n], st[2u * n + 1u])); }
{{/if}}
}
{{#if bf16}}
${BF16_PAIR}
{{/if}}
`;

/** Chunked SSD, pass 0: per (chunk, group, i, j), the chunk's scores C_i·B_j (j <= i < the chunk's
 *  length; 0 elsewhere) into scratch2 [chunks, G, Q, Q], shared by the group's heads. */
export const SSD_SCORES = `{{prelude}}
${MAIN}
  let e = unit * {{wg}}u + li;
  if (e >= ({{chunks}}) * {{GQQ}}u) { return; }
  let c = e / {{GQQ}}u;
  let g = (e / {{QQ}}u) % {{G}}u;
  let i = (e / {{Q}}u) % {{Q}}u;
  let j = e % {{Q}}u;
  let t0 = chunkField(c, 0u);
  var cb = 0.0;
  if (j <= i && i < chunkField(c, 1u)) {
    for (var n = 0u; n < {{N}}u; n++) { cb += op_C(t0 + i, g * {{N}}u + n) * op_B(t0 + j, g * {{N}}u + n); }
  }
  scratch2_set(e, cb);
}
`;

/** Chunked SSD, pass 1: per (chunk, head), the diagonal block y_i = sum_{j<=i} exp(seg(i,j))
 *  (C_i·B_j) dt_j x_j plus the skip D·x_i, the chunk's own state (scratch0) and its decay (scratch1).
 *  seg(i, j) = cum_i - cum_j (cum: running sums of dt·A); the scores come from pass 0. */
export const SSD_CHUNK = `{{prelude}}
var<workgroup> dts: array<f32, {{Q}}>;
var<workgroup> cum: array<f32, {{Q}}>;
var<workgroup> wout: array<f32, {{Q}}>;
${MAIN}
  let c = unit / {{H}}u;
  let h = unit % {{H}}u;
  if (c >= {{chunks}}) { return; }
  let t0 = chunkField(c, 0u);
  let q = chunkField(c, 1u);
  let g = h / {{hpg}}u;
  if (li == 0u) {
    var run = 0.0;
    for (var i = 0u; i < q; i++) { dts[i] = op_dt(t0 + i, h); run += dts[i] * op_A(0u, h); cum[i] = run; }
    scratch1_set(c * {{H}}u + h, exp(run));
    // exp(seg(last, j)) · dt_j: token j's weight in the chunk's state
    for (var j = 0u; j < q; j++) { wout[j] = exp(run - cum[j]) * dts[j]; }
  }
  workgroupBarrier();
  let scores = (c * {{G}}u + g) * {{QQ}}u;
  for (var p = li; p < {{P}}u; p += {{lanes}}u) {
    for (var i = 0u; i < q; i++) {
      var y = 0.0;
      for (var j = 0u; j <= i; j++) {
        y += exp(cum[i] - cum[j]) * scratch2_get(scores + i * {{Q}}u + j) * dts[j] * op_x(t0 + j, h * {{P}}u + p);
      }
      put(t0 + i, h * {{P}}u + p, y + op_D(0u, h) * op_x(t0 + i, h * {{P}}u + p));
    }
    for (var n = 0u; n < {{N}}u; n++) {
      var st = 0.0;
      for (var j = 0u; j < q; j++) { st += wout[j] * op_x(t0 + j, h * {{P}}u + p) * op_B(t0 + j, g * {{N}}u + n); }
      scratch0_set(((c * {{H}}u + h) * {{P}}u + p) * {{N}}u + n, st);
    }
  }
}
`;

/** Chunked SSD, pass 2: per (sequence, head, channel, state dim), the state passed along the
 *  sequence's chunks: scratch0 of each chunk becomes the state entering it; the last leaves in the slot. */
export const SSD_PASS = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nS() * {{HPN}}u) { return; }
  let s = i / {{HPN}}u;
  let e = i % {{HPN}}u;
  let h = e / ({{P}}u * {{N}}u);
  let at = seqSlot(s) + {{state}} + e;
  var run = state_get(at);
  let first = seqField(s, 4u);
  for (var c = first; c < first + seqField(s, 5u); c++) {
    let own = scratch0_get(c * {{HPN}}u + e);
    scratch0_set(c * {{HPN}}u + e, run);
    run = scratch1_get(c * {{H}}u + h) * run + own;
  }
  state_set(at, run);
}
`;

/** SSD_PASS over a bf16 state: one invocation per pair of state values (one word of the pool),
 *  widened, carried in f32 through the chunks and rounded once at the end (as SSD_SCAN's). */
export const SSD_PASS_BF16 = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nS() * {{HPN2}}u) { return; }
  let s = i / {{HPN2}}u;
  let e = 2u * (i % {{HPN2}}u);
  let h = e / ({{P}}u * {{N}}u);
  let at = seqSlot(s) + {{state}} + e / 2u;
  let w = bitcast<u32>(state_get(at));
  var run = vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
  let first = seqField(s, 4u);
  for (var c = first; c < first + seqField(s, 5u); c++) {
    let own = vec2<f32>(scratch0_get(c * {{HPN}}u + e), scratch0_get(c * {{HPN}}u + e + 1u));
    scratch0_set(c * {{HPN}}u + e, run.x);
    scratch0_set(c * {{HPN}}u + e + 1u, run.y);
    let a = scratch1_get(c * {{H}}u + h);
    run = vec2<f32>(a * run.x + own.x, a * run.y + own.y);
  }
  state_set(at, bf16Pair(run.x, run.y));
}
${BF16_PAIR}`;

/** Chunked SSD, pass 3: per (token, head, channel), the entering state's share of the output,
 *  exp(seg(i, first-1)) · (S_in · C_i), added to pass 1's result. */
export const SSD_OUT = `{{prelude}}
${MAIN}
  let i = unit * {{wg}}u + li;
  if (i >= nT() * {{H}}u * {{P}}u) { return; }
  let t = i / ({{H}}u * {{P}}u);
  let h = (i / {{P}}u) % {{H}}u;
  let p = i % {{P}}u;
  let g = h / {{hpg}}u;
  let s = rowSeq(t);
  let k = (t - seqStart(s)) / {{Q}}u;
  let c = seqField(s, 4u) + k;
  let t0 = seqStart(s) + k * {{Q}}u;
  var cum = 0.0;
  for (var j = t0; j <= t; j++) { cum += op_dt(j, h) * op_A(0u, h); }
  var acc = 0.0;
  for (var n = 0u; n < {{N}}u; n++) { acc += scratch0_get(((c * {{H}}u + h) * {{P}}u + p) * {{N}}u + n) * op_C(t, g * {{N}}u + n); }
  put(t, h * {{P}}u + p, get_put(t, h * {{P}}u + p) + exp(cum) * acc);
}
`;
