// The `wasm` target's per-program module as WebAssembly text: one function per kernel (or per
// matmul stage) for the families the generic product module does not cover — the matmul prologue
// (gather_last, RMSNorm, gated RMSNorm, LayerNorm) and epilogue (maps, RoPE, the one-token conv),
// embedding, norm, elementwise, conv, conv_step, ssd_step, attention_decode and rope — with the kernel's sizes,
// columns and row strides as constants, over the arena, state slots and weights in the shared memory.
// Only what depends on the program is rendered here: the fixed functions (math helpers, the chunked
// SSD's and prefill attention's steps) are codegen/wasm/fixed.ts', the WAT vocabulary and the passes
// families share codegen/wasm/wat.ts'. The calling convention and the scratch layout are
// runtime/wasm/program.ts'; assembled by codegen/wasm/assemble.ts.
//
// Numerics follow the reference (runtime/cpu/): expressions in f32x4, every step rounded to f32 as
// the unfused kernels store it (exp, log1p, SiLU and softplus as f32 module helpers accurate to a
// few ulps; GELU per lane in f64, as the reference computes it); norms, the conv, the SSD step and
// RoPE in f64 scalar or f64x2 where the reference sums in double, rounded to f32 where it stores;
// the one-token attention's scores, softmax and weighted values in f64 (f64x2), as the reference.
// Which kernels get functions is runtime/wasm/plan.ts' decision (the backend dispatches by the same
// plan); the rest run on the reference families.

import { exprLeaves } from '../../runtime/expr.ts';
import type { Epilogue, Expr, Kernel, Program, View } from '../../runtime/program.ts';
import { isView, ofFamily } from '../../runtime/program.ts';
import { exportName, kernelArgs, programHash, unitsOf } from '../../runtime/wasm/program.ts';
import { InternalError } from '../../dsl/diagnostics.ts';
import { type Placement, wasmPlan } from '../../runtime/wasm/plan.ts';
import { STATE_READ_AHEAD } from '../../runtime/wasm/layout.ts';
import { assemble } from './assemble.ts';
import { attentionDecodeRun } from './attention-step.ts';
import { FIXED_WAT } from './fixed.ts';
import { gatherRun, scatterRun, softmaxRun, topkRun } from './route.ts';
import { Fn, type RowAt, Unsupported, addI, get, i32, mapPass, mulI, normPass, ropePass, touchLines, unsupported } from './wat.ts';

/** The one-token conv in place on columns [col, col + C) of row r = sequence r, through the
 *  sequence's window (state), then `post` in place. Each channel sums its taps in f64 in order, as
 *  the reference; with four taps (Mamba's d_conv) the products are made two at a time in f64x2 and
 *  summed in the same order (the same values, about half the instructions). */
function convStepPass(f: Fn, s: Extract<Epilogue, { kind: 'conv_step' }>, rows: string, cur: RowAt): string {
  const { channels: C, taps: K } = s;
  const r = f.fresh('r'), c = f.fresh('c'), rb = f.fresh('rb'), st = f.fresh('st'), st0 = f.fresh('st0'), acc = f.fresh('acc', 'f64'), x = f.fresh('x', 'f32');
  const w = f.weight(s.weight), b = s.bias ? f.weight(s.bias) : null;
  const S1 = K - 1;
  const stAt = (j: number) => `offset=${j * 4} ${get(st)}`;
  const wAt = addI(w, `(i32.shl ${mulI(get(c), K)} ${i32(2)})`);
  const taps: string[] = [], shift: string[] = [];
  if (K === 4) {
    // v = [s0, s1, s2, x], wv = the channel's four weights; p = w·v in f64, low and high pairs
    const v = f.fresh('v4', 'v128'), wv = f.fresh('wv', 'v128'), lo = f.fresh('plo', 'v128'), hi = f.fresh('phi', 'v128');
    const high = (e: string) => `(i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${e} ${e})`;
    taps.push(`(local.set $${v} (f32x4.replace_lane 3 (f32x4.replace_lane 2 (v128.load64_zero ${stAt(0)}) (f32.load ${stAt(2)})) ${get(x)}))
(local.set $${wv} (v128.load ${wAt}))
(local.set $${lo} (f64x2.mul (f64x2.promote_low_f32x4 ${get(wv)}) (f64x2.promote_low_f32x4 ${get(v)})))
(local.set $${hi} (f64x2.mul (f64x2.promote_low_f32x4 ${high(get(wv))}) (f64x2.promote_low_f32x4 ${high(get(v))})))
(local.set $${acc} (f64.add (f64.add (f64.add (f64.add (f64.const 0) (f64x2.extract_lane 0 ${get(lo)})) (f64x2.extract_lane 1 ${get(lo)})) (f64x2.extract_lane 0 ${get(hi)})) (f64x2.extract_lane 1 ${get(hi)})))`);
    // the window moves by one: [s1, s2] as one 8-byte word, then x
    shift.push(`(i64.store ${stAt(0)} (i64x2.extract_lane 0 (i8x16.shuffle 4 5 6 7 8 9 10 11 4 5 6 7 8 9 10 11 ${get(v)} ${get(v)})))`, `(f32.store ${stAt(2)} ${get(x)})`);
  } else {
    taps.push(`(local.set $${acc} (f64.const 0))`);
    for (let j = 0; j < K; j++) {
      const v = j < S1 ? `(f64.promote_f32 (f32.load ${stAt(j)}))` : `(f64.promote_f32 ${get(x)})`;
      taps.push(`(local.set $${acc} (f64.add ${get(acc)} (f64.mul (f64.promote_f32 (f32.load offset=${j * 4} ${wAt})) ${v})))`);
    }
    for (let j = 0; j < S1; j++) shift.push(`(f32.store ${stAt(j)} ${j + 1 < S1 ? `(f32.load ${stAt(j + 1)})` : get(x)})`);
  }
  const at = addI(get(rb), `(i32.shl ${get(c)} ${i32(2)})`);
  const body = f.loop(c, i32(0), i32(C), `(local.set $${x} (f32.load ${at}))
(local.set $${st} ${addI(get(st0), `(i32.shl ${mulI(get(c), S1)} ${i32(2)})`)})
${taps.join('\n')}
(f32.store ${at} (f32.demote_f64 (f64.add ${get(acc)} ${b ? `(f64.promote_f32 (f32.load ${addI(b, `(i32.shl ${get(c)} ${i32(2)})`)}))` : '(f64.const 0)'})))
${shift.join('\n')}`);
  const conv = f.rowLoop(r, rows, `(local.set $${rb} ${addI(cur(get(r)), s.col * 4)})
(local.set $${st0} ${addI(`(i32.load offset=8 ${addI(get('seq'), mulI(get(r), 12))})`, f.state(s.state))})
${body}`);
  if (!s.post) return conv;
  if (!xOffsetsZero(s.post)) unsupported('a conv post-expression reading other columns');
  const here: RowAt = (row) => addI(cur(row), s.col * 4);
  return `${conv}\n${mapPass(f, s.post, C, rows, here, here)}`;
}

function xOffsetsZero(e: Expr): boolean {
  return exprLeaves(e).every((l) => l.op !== 'x' || l.offset === 0);
}

/**
 * The epilogue chain from a result of `width` columns at `src` to the kernel's output `y`: maps go
 * through the scratch rows y1/y2 (the last map straight into y), RoPE and the one-token conv in
 * place where the result is; without a map the result is copied into y at the end. `bias` is a
 * weight added first (a product's); `cols`: the maps over columns [from, to) only (a conv's channels).
 */
function epilogueChain(f: Fn, src: RowAt, width: number, rows: string, bias: string | null, cols?: [string, string]): string {
  const out = f.k.outputs.y ?? unsupported('a kernel without output y');
  const stages: Epilogue[] = [...(bias ? [{ kind: 'map' as const, body: { op: 'add' as const, a: { op: 'x' as const, offset: 0 }, b: { op: 'w' as const, name: bias } }, width }] : []), ...(f.k.epilogue ?? [])];
  const lastMap = stages.map((s) => s.kind).lastIndexOf('map');
  const parts: string[] = [];
  let cur = src, curName = 'y0';
  stages.forEach((s, i) => {
    if (s.kind === 'map') {
      const name = i === lastMap ? 'out' : curName === 'y1' ? 'y2' : 'y1';
      const dst = name === 'out' ? f.viewRow(out) : f.scratchRow(name);
      parts.push(mapPass(f, s.body, s.width, rows, dst, cur, undefined, cols));
      [cur, curName, width] = [dst, name, s.width];
    } else if (s.kind === 'rope') {
      parts.push(ropePass(f, rows, cur, cur, s.col, s.heads, s.headDim, s.rotaryDim, f.rope(s.rotaryDim, s.theta), false));
    } else {
      parts.push(convStepPass(f, s, rows, cur));
    }
  });
  if (lastMap < 0) parts.push(mapPass(f, { op: 'x', offset: 0 }, width, rows, f.viewRow(out), cur));
  if (width !== out.width) unsupported('an epilogue that does not end at the output width');
  return parts.join('\n');
}

// ---- families ---------------------------------------------------------------------------------

const lastRowOf = (r: string) => `(i32.sub ${addI(`(i32.load ${addI(get('seq'), mulI(r, 12))})`, `(i32.load offset=4 ${addI(get('seq'), mulI(r, 12))})`)} ${i32(1)})`;

/** The matmul prologue: x (gathered, normed) into scratch x [rows', K]. */
function matmulPre(f: Fn): string {
  const k = ofFamily(f.k, 'matmul'), K = k.sizes.K;
  const xv = k.inputs.x as View;
  if (xv.width !== K) unsupported('a product over several rows of its input view');
  const stages = k.prologue ?? [];
  const gather = stages[0]?.kind === 'gather_last';
  const rest = stages.slice(gather ? 1 : 0);
  if (rest.some((p) => p.kind === 'gather_last')) unsupported('gather_last after a norm');
  const rows = gather ? get('S') : get('rows');
  const srcRow = gather ? lastRowOf : (r: string) => r;
  const X = f.scratchRow('x');
  const parts: string[] = [];
  let fromView = true;
  // the operand as read (its `pre`, gathered) into X, unless the first stage reads the view itself
  const first = rest[0];
  if (!first || gather || k.pre?.x || first.kind === 'rmsnorm_gated') {
    const body: Expr = first?.kind === 'rmsnorm_gated' ? { op: 'mul', a: { op: 'in', name: 'x' }, b: { op: 'silu', a: { op: 'in', name: 'z' } } } : { op: 'in', name: 'x' };
    if (first?.kind === 'rmsnorm_gated' && !(k.inputs.z && isView(k.inputs.z))) unsupported('a gated norm without z');
    parts.push(mapPass(f, body, K, rows, X, undefined, srcRow));
    fromView = false;
  }
  rest.forEach((p, i) => {
    const src = i === 0 && fromView ? (r: string) => f.viewRow(xv)(srcRow(r)) : X;
    if (p.kind === 'rmsnorm') parts.push(normPass(f, 'rms', rows, src, X, K, K, f.weight(p.weight), null, p.eps));
    else if (p.kind === 'layernorm') parts.push(normPass(f, 'layer', rows, src, X, K, K, f.weight(p.weight), p.bias ? f.weight(p.bias) : null, p.eps));
    else if (p.kind === 'rmsnorm_gated') {
      if (i > 0) unsupported('a gated norm after another stage');
      parts.push(normPass(f, 'rms', rows, X, X, K, K / p.groups, f.weight(p.weight), null, p.eps));
    }
  });
  return parts.join('\n');
}

function matmulPost(f: Fn): string {
  const k = f.k;
  const rows = k.prologue?.[0]?.kind === 'gather_last' ? get('S') : get('rows');
  const b = k.inputs.b;
  if (b && !('weight' in b)) unsupported('a bias that is not a weight');
  const y0: RowAt = (r) => addI(get('y0'), `(i32.shl (i32.mul ${r} ${get('ldy')}) ${i32(2)})`);
  return epilogueChain(f, y0, ofFamily(k, 'matmul').sizes.N, rows, b && 'weight' in b ? b.weight : null);
}

function normRun(f: Fn): string {
  const k = ofFamily(f.k, 'norm'), W = k.sizes.W, D = k.sizes.D;
  const x = k.inputs.x as View, y = k.outputs.y!;
  if (k.pre && Object.keys(k.pre).length) unsupported('a norm with a pre-expression');
  if (x.width !== W || y.width !== W || W % D !== 0) unsupported('a norm view');
  const segs = W / D;
  const vrows = mulI(get('rows'), segs);
  const seg = (v: View): RowAt => (r) => (segs === 1 ? f.viewRow(v)(r) : addI(f.viewRow(v)(`(i32.div_u ${r} ${i32(segs)})`), `(i32.shl (i32.mul (i32.rem_u ${r} ${i32(segs)}) ${i32(D)}) ${i32(2)})`));
  const w = f.weight((k.inputs.w as { weight: string }).weight);
  const eps = k.attrs.eps as number;
  if (k.attrs.layer) {
    const b = k.inputs.b;
    if (b && !('weight' in b)) unsupported('a layernorm bias that is not a weight');
    return normPass(f, 'layer', vrows, seg(x), seg(y), D, D, w, b && 'weight' in b ? f.weight(b.weight) : null, eps);
  }
  if (k.attrs.gated) {
    const z = k.inputs.z;
    if (!z || !isView(z) || segs !== 1) unsupported('a gated norm view');
    const groups = (k.attrs.groups as number) | 0;
    const h = mapPass(f, { op: 'mul', a: { op: 'in', name: 'x' }, b: { op: 'silu', a: { op: 'in', name: 'z' } } }, W, get('rows'), f.viewRow(y));
    return `${h}\n${normPass(f, 'rms', get('rows'), f.viewRow(y), f.viewRow(y), D, D / groups, w, null, eps)}`;
  }
  return normPass(f, 'rms', vrows, seg(x), seg(y), D, D, w, null, eps);
}

/** Rows of the table [V, D] by the run's token ids (or positions) through the epilogue into y; an id
 *  outside the table traps (the backend checks the ids first and reports one as the reference does). */
function embeddingRun(f: Fn): string {
  const k = f.k, { V, D } = k.sizes as { V: number; D: number };
  const ids = k.inputs.ids, w = k.inputs.w;
  if (!ids || !('input' in ids) || !w || !('weight' in w)) return unsupported('an embedding by computed ids or of an activation');
  const table = f.weight(w.weight), at = f.ids(ids.input);
  const id = (r: string) => `(i32.load ${addI(at, `(i32.shl ${r} ${i32(2)})`)})`;
  const r = f.fresh('r');
  const guard = f.loop(r, i32(0), get('rows'), `(if (i32.ge_u ${id(get(r))} ${i32(V)}) (then unreachable))`);
  return `${guard}\n${epilogueChain(f, (row) => addI(table, `(i32.shl ${mulI(id(row), D)} ${i32(2)})`), D, get('rows'), null)}`;
}

function elementwiseRun(f: Fn): string {
  const y = f.k.outputs.y!;
  return mapPass(f, f.k.body ?? unsupported('no body'), y.width, get('rows'), f.viewRow(y));
}

function ropeRun(f: Fn): string {
  const k = f.k, { H, Dh, R } = k.sizes as { H: number; Dh: number; R: number };
  const x = k.inputs.x as View, y = k.outputs.y!;
  if (R % 2 || R > Dh || x.width !== H * Dh || y.width !== H * Dh) unsupported('a rope view');
  return ropePass(f, get('T'), f.viewRow(x), f.viewRow(y), 0, H, Dh, R, f.rope(R, k.attrs.theta as number), true);
}

/** Operands with a `pre` into their scratch rows first; returns each operand's row (a weight: its
 *  one row). */
function materialise(f: Fn, names: readonly string[]): { parts: string[]; row: (n: string) => RowAt } {
  const parts: string[] = [];
  const rows = new Map<string, RowAt>();
  for (const n of names) {
    const o = f.k.inputs[n] ?? unsupported(`operand ${n}`);
    if ('weight' in o) {
      if (f.k.pre?.[n]) unsupported('a weight operand with a pre-expression');
      const w = f.weight(o.weight);
      rows.set(n, () => w);
    } else if (!isView(o)) unsupported('an integer operand');
    else if (f.k.pre?.[n]) {
      const dst = f.scratchRow(`pre:${n}`);
      parts.push(mapPass(f, { op: 'in', name: n }, o.width, f.bufferOf(o).rows, dst));
      rows.set(n, dst);
    } else rows.set(n, f.viewRow(o));
  }
  return { parts, row: (n) => rows.get(n)! };
}

function convRun(f: Fn): string {
  const k = f.k, { C, K } = k.sizes as { C: number; K: number };
  const wIn = k.inputs.w, bIn = k.inputs.b;
  if (!wIn || !('weight' in wIn) || (bIn && !('weight' in bIn))) return unsupported('a conv whose weights are activations');
  const { parts, row } = materialise(f, ['x']);
  const x = row('x');
  const w = f.weight(wIn.weight), b = bIn && 'weight' in bIn ? f.weight(bIn.weight) : null;
  const out: RowAt = k.epilogue?.length ? f.scratchRow('y0') : f.viewRow(k.outputs.y!);
  const S1 = K - 1;
  const s = f.fresh('s'), i = f.fresh('i'), c = f.fresh('c'), start = f.fresh('start'), len = f.fresh('len'), st = f.fresh('st'), acc = f.fresh('acc', 'f64');
  const yr = f.fresh('yr');
  // channels [c0, c1): quads [u0, u1) where the threads share it (runtime/wasm/program.ts unitsOf 'quad'), else all
  const quads = unitsOf(k) === 'quad', Cq = Math.ceil(C / 4);
  const c0 = quads ? `(i32.shl ${get('u0')} ${i32(2)})` : i32(0);
  const c1 = quads ? `(select ${i32(C)} (i32.shl ${get('u1')} ${i32(2)}) (i32.ge_s ${get('u1')} ${i32(Cq)}))` : i32(C);
  // win[m] for m = i + j: the state below K-1, else x row start + m - (K-1)
  const win = (m: string, branchy: boolean) => {
    const fromX = `(f64.promote_f32 (f32.load ${addI(x(`(i32.sub ${addI(get(start), m)} ${i32(S1)})`), `(i32.shl ${get(c)} ${i32(2)})`)}))`;
    if (!branchy) return fromX;
    return `(if (result f64) (i32.lt_s ${m} ${i32(S1)}) (then (f64.promote_f32 (f32.load ${addI(get(st), `(i32.shl ${addI(mulI(get(c), S1), m)} ${i32(2)})`)}))) (else ${fromX}))`;
  };
  const token = (branchy: boolean) => f.loop(c, c0, c1, `(local.set $${acc} (f64.const 0))
${Array.from({ length: K }, (_, j) => `(local.set $${acc} (f64.add ${get(acc)} (f64.mul (f64.promote_f32 (f32.load offset=${j * 4} ${addI(w, `(i32.shl ${mulI(get(c), K)} ${i32(2)})`)})) ${win(addI(get(i), j), branchy)})))`).join('\n')}
(f32.store ${addI(get(yr), `(i32.shl ${get(c)} ${i32(2)})`)} (f32.demote_f64 (f64.add ${get(acc)} ${b ? `(f64.promote_f32 (f32.load ${addI(b, `(i32.shl ${get(c)} ${i32(2)})`)}))` : '(f64.const 0)'})))`);
  const tokens = (from: string, to: string, branchy: boolean) => f.loop(i, from, to, `(local.set $${yr} ${out(addI(get(start), get(i)))})\n${token(branchy)}`);
  const firstEnd = `(select ${get(len)} ${i32(S1)} (i32.lt_s ${get(len)} ${i32(S1)}))`;
  // the window after the sequence's last row: st[c, j] = win[len + j]
  const keep = S1 > 0 ? f.loop(c, c0, c1, f.loop(i, i32(0), i32(S1), `(f32.store ${addI(get(st), `(i32.shl ${addI(mulI(get(c), S1), get(i))} ${i32(2)})`)} (f32.demote_f64 ${win(addI(get(len), get(i)), true)}))`)) : '';
  parts.push(f.loop(s, i32(0), get('S'), `(local.set $${start} (i32.load ${addI(get('seq'), mulI(get(s), 12))}))
(local.set $${len} (i32.load offset=4 ${addI(get('seq'), mulI(get(s), 12))}))
(local.set $${st} ${addI(`(i32.load offset=8 ${addI(get('seq'), mulI(get(s), 12))})`, f.state(k.state ?? unsupported('a conv without state')))})
${tokens(i32(0), firstEnd, true)}
${tokens(i32(S1), get(len), false)}
${keep}`));
  if (k.epilogue?.length) parts.push(epilogueChain(f, out, C, get('rows'), null, quads ? [c0, c1] : undefined));
  return parts.join('\n');
}

/** Four f32 lanes plus half a bf16 ulp: their top halves are the values rounded to bf16 as
 *  runtime/tensor.ts roundBf16 rounds them (to nearest, ties away from zero). */
const biasBf16x4 = (x: string): string => `(i32x4.add ${x} (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))`;

function ssdStepRun(f: Fn): string {
  const k = f.k, { H, P, G, N } = k.sizes as { H: number; P: number; G: number; N: number };
  if (H % G) unsupported('groups that do not divide heads');
  const hpg = H / G;
  const { parts, row } = materialise(f, ['x', 'dt', 'A', 'B', 'C', 'D']);
  const y = f.viewRow(k.outputs.y!);
  const s = f.fresh('s'), t = f.fresh('t'), h = f.fresh('h'), p = f.fresh('p'), n = f.fresh('n'), end = f.fresh('end'), st0 = f.fresh('st0'), so = f.fresh('so');
  const xr = f.fresh('xr'), dtr = f.fresh('dtr'), br = f.fresh('br'), cr = f.fresh('cr'), yr = f.fresh('yr'), bo = f.fresh('bo'), co = f.fresh('co');
  const d = f.fresh('d', 'f64'), decay = f.fresh('decay', 'v128'), xp = f.fresh('xp', 'f32'), dx = f.fresh('dx', 'v128'), acc = f.fresh('acc', 'v128'), v = f.fresh('v', 'v128'), a = f.fresh('a', 'f32');
  const fl = (base: string, i: string) => `(f32.load ${addI(base, `(i32.shl ${i} ${i32(2)})`)})`;
  const nb = `(i32.shl ${get(n)} ${i32(2)})`;
  // the state's entries as the slot stores them (ProgramState.dtype): f32, or bf16, widened where read and
  // rounded where stored (tensor.ts roundBf16; one token a sequence, so once a call, as cpu f32States)
  const bf16 = f.program.states[k.state!]?.dtype === 'bf16', E = bf16 ? 2 : 4;
  const sAt = addI(get(so), bf16 ? `(i32.shl ${get(n)} ${i32(1)})` : nb);
  const loadQuad = bf16 ? `(i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero ${sAt})) (i32.const 16))` : `(v128.load ${sAt})`;
  // bf16: the rounded lanes' top halves, gathered into the low 8 bytes
  const storeQuad = bf16 ? `(v128.store64_lane 0 ${sAt} (i8x16.shuffle 2 3 6 7 10 11 14 15 2 3 6 7 10 11 14 15 ${biasBf16x4(get(v))} (v128.const i32x4 0 0 0 0)))` : `(v128.store ${sAt} ${get(v)})`;
  const loadOne = (at: number) => (bf16 ? `(f32.reinterpret_i32 (i32.shl (i32.load16_u offset=${at * 2} ${get(so)}) (i32.const 16)))` : `(f32.load offset=${at * 4} ${get(so)})`);
  const storeOne = (at: number) => (bf16 ? `(i32.store16 offset=${at * 2} ${get(so)} (i32.shr_u (i32.add (i32.reinterpret_f32 ${get(xp)}) (i32.const 0x8000)) (i32.const 16)))` : `(f32.store offset=${at * 4} ${get(so)} ${get(xp)})`);
  // four state entries a step, in f32: v = s·decay + dx·B stored, acc += v·C (the reference computes
  // each entry in double and rounds it once; this differs by an ulp a step, and decay < 1 keeps it there)
  const quads = f.loop(n, i32(0), i32(N - (N % 4)), `(local.set $${v} (f32x4.add (f32x4.mul ${loadQuad} ${get(decay)}) (f32x4.mul ${get(dx)} (v128.load ${addI(get(bo), nb)}))))
${storeQuad}
(local.set $${acc} (f32x4.add ${get(acc)} (f32x4.mul ${get(v)} (v128.load ${addI(get(co), nb)}))))`, 4);
  const tail = Array.from({ length: N % 4 }, (_, i) => {
    const at = N - (N % 4) + i;
    return `(local.set $${xp} (f32.add (f32.mul ${loadOne(at)} (f32x4.extract_lane 0 ${get(decay)})) (f32.mul (f32x4.extract_lane 0 ${get(dx)}) ${fl(get(bo), i32(at))})))
${storeOne(at)}
(local.set $${a} (f32.add ${get(a)} (f32.mul ${get(xp)} ${fl(get(co), i32(at))})))`;
  }).join('\n');
  // the state row STATE_READ_AHEAD bytes on, a byte of each line loaded and dropped, so that the lines
  // of the states, read once a step from memory, are in flight well before their row (runtime/wasm/layout.ts)
  const ahead = touchLines(get(so), STATE_READ_AHEAD, Math.ceil((N * E) / 64));
  const perP = f.loop(p, i32(0), i32(P), `(local.set $${dx} (f32x4.splat (f32.demote_f64 (f64.mul ${get(d)} (f64.promote_f32 ${fl(get(xr), addI(mulI(get(h), P), get(p)))})))))
(local.set $${so} ${addI(get(st0), `(i32.shl ${mulI(addI(mulI(get(h), P), get(p)), N)} ${i32(E >> 1)})`)})
(local.set $${acc} (v128.const f32x4 0 0 0 0))
(local.set $${a} (f32.const 0))
${ahead}
${quads}
${tail}
(f32.store ${addI(get(yr), `(i32.shl ${addI(mulI(get(h), P), get(p))} ${i32(2)})`)} (f32.demote_f64 (f64.add
  (f64.add (f64.add (f64.promote_f32 (f32.add (f32x4.extract_lane 0 ${get(acc)}) (f32x4.extract_lane 2 ${get(acc)}))) (f64.promote_f32 (f32.add (f32x4.extract_lane 1 ${get(acc)}) (f32x4.extract_lane 3 ${get(acc)})))) (f64.promote_f32 ${get(a)}))
  (f64.mul (f64.promote_f32 ${fl(row('D')(i32(0)), get(h))}) (f64.promote_f32 ${fl(get(xr), addI(mulI(get(h), P), get(p)))})))))`);
  // heads [u0, min(u1, H)) of every row: each thread its own (runtime/wasm/split.ts)
  const perH = f.loop(h, get('u0'), `(select ${get('u1')} ${i32(H)} (i32.lt_s ${get('u1')} ${i32(H)}))`, `(local.set $${d} (f64.promote_f32 ${fl(get(dtr), get(h))}))
(local.set $${decay} (f32x4.splat (f32.demote_f64 (call $exp64 (f64.mul ${get(d)} (f64.promote_f32 ${fl(row('A')(i32(0)), get(h))}))))))
(local.set $${bo} ${addI(get(br), `(i32.shl ${mulI(`(i32.div_u ${get(h)} ${i32(hpg)})`, N)} ${i32(2)})`)})
(local.set $${co} ${addI(get(cr), `(i32.shl ${mulI(`(i32.div_u ${get(h)} ${i32(hpg)})`, N)} ${i32(2)})`)})
${perP}`);
  parts.push(f.loop(s, i32(0), get('S'), `(local.set $${t} (i32.load ${addI(get('seq'), mulI(get(s), 12))}))
(local.set $${end} ${addI(get(t), `(i32.load offset=4 ${addI(get('seq'), mulI(get(s), 12))})`)})
(local.set $${st0} ${addI(`(i32.load offset=8 ${addI(get('seq'), mulI(get(s), 12))})`, f.state(k.state ?? unsupported('an SSD step without state')))})
(block $te (loop $tl
  (br_if $te (i32.ge_s ${get(t)} ${get(end)}))
  (local.set $${xr} ${row('x')(get(t))})
  (local.set $${dtr} ${row('dt')(get(t))})
  (local.set $${br} ${row('B')(get(t))})
  (local.set $${cr} ${row('C')(get(t))})
  (local.set $${yr} ${y(get(t))})
  ${perH}
  (local.set $${t} ${addI(get(t), 1)})
  (br $tl)))`));
  return parts.join('\n');
}

// ---- module -----------------------------------------------------------------------------------

/** The functions of one kernel by stage: none where the plan (runtime/wasm/plan.ts) places it on
 *  the reference families; one it places in the module that cannot be rendered is a compiler bug. */
function renderKernel(k: Kernel, program: Program, buffers: readonly { width: number; rows: string }[], placed: Placement): Partial<Record<'run' | 'pre' | 'post', Fn & { body: string }>> {
  if (placed.path === 'reference') return {};
  const args = kernelArgs(k);
  const make = (render: (f: Fn) => string) => {
    const f = new Fn(k, args, program, buffers);
    return Object.assign(f, { body: render(f) });
  };
  try {
    switch (k.family) {
      case 'matmul': {
        // post is always there (the runtime skips it where the product can write y itself)
        const pre = k.prologue?.length || k.pre?.x ? make(matmulPre) : undefined;
        return { ...(pre ? { pre } : {}), post: make(matmulPost) };
      }
      case 'norm': return { run: make(normRun) };
      case 'elementwise': return { run: make(elementwiseRun) };
      case 'rope': return { run: make(ropeRun) };
      case 'conv': case 'conv_step': return { run: make(convRun) };
      case 'ssd_step': return { run: make(ssdStepRun) };
      case 'attention_decode': return { run: make(attentionDecodeRun) };
      // the chunked SSD's operands read through their `pre` (dt's bias, softplus, clamp) into
      // scratch; the rest is the module's fixed ssd.* steps around the products
      case 'ssd': return Object.keys(k.pre ?? {}).length ? { pre: make((f) => materialise(f, ['x', 'dt', 'B', 'C']).parts.join('\n')) } : {};
      // prefill attention is the module's fixed attn.* steps around the products
      case 'attention': return {};
      case 'embedding': return { run: make(embeddingRun) };
      // the experts are the module's products per expert (runtime/wasm/experts.ts)
      case 'experts': return {};
      // the routers' softmax and top-k (codegen/wasm/route.ts)
      case 'softmax': return { run: make(softmaxRun) };
      case 'topk': return { run: make(topkRun) };
      case 'gather': return { run: make(gatherRun) };
      case 'scatter': return { run: make(scatterRun) };
      case 'copy': case 'gather_last': return unsupported(`no ${k.family} family`);
    }
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e;
    throw new InternalError(`the wasm plan (runtime/wasm/plan.ts) places ${k.name} (${k.family}) in the program module, but it cannot be rendered: ${e.message}`);
  }
}

/** The program's module, assembled (`archc build` ships it beside the product kernels). */
export function wasmProgram(program: Program): Promise<Uint8Array> {
  return assemble(renderWasmProgram(program), 'archc-program.wat');
}

/** The program's module: each distinct function once, exported under every kernel that uses it. */
export function renderWasmProgram(program: Program): string {
  const funcs = new Map<string, { name: string; exports: string[] }>();
  const plan = wasmPlan(program);
  for (const [entry, e] of Object.entries(program.entries) as [keyof Program['entries'], Program['entries'][keyof Program['entries']]][]) {
    const buffers = e.buffers.map((b) => ({ width: b.width, rows: b.rows === 'T' ? get('T') : b.rows === 'S' ? get('S') : i32(1) }));
    e.kernels.forEach((k, i) => {
      for (const [stage, f] of Object.entries(renderKernel(k, program, buffers, plan[entry][i]!)) as ['run' | 'pre' | 'post', Fn & { body: string }][]) {
        const text = f.text('NAME', f.body);
        let fn = funcs.get(text);
        if (!fn) funcs.set(text, (fn = { name: `k${funcs.size}`, exports: [] }));
        fn.exports.push(exportName(entry, i, stage));
      }
    });
  }
  const defs = [...funcs].map(([text, fn]) => `;; ${fn.exports.join(' ')}\n${text.replace('$NAME', `$${fn.name}`)}\n${fn.exports.map((x) => `(export "${x}" (func $${fn.name}))`).join('\n')}`);
  return `;; archc wasm program: ${program.model}'s kernels over the arena (generated; see codegen/wasm/program.ts)
(module
(import "env" "memory" (memory 1 65536 shared))
(global (export "PROGRAM") i32 (i32.const ${programHash(program)}))
${FIXED_WAT}
${defs.join('\n')}
)
`;
}
