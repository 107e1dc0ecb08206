// The `wasm` target's per-program module as WebAssembly text: one function per kernel (or per
// matmul stage) for the families the generic product module does not cover — the matmul prologue
// (gather_last, RMSNorm, gated RMSNorm, LayerNorm) and epilogue (maps, RoPE, the one-token conv),
// norm, elementwise, conv, conv_step, ssd_step, attention_decode and rope — with the kernel's sizes, columns and row
// strides as constants, over the arena, state slots and weights in the shared memory. The calling
// convention and the scratch layout are runtime/wasm/program.ts'; assembled by codegen/wasm/assemble.ts.
//
// Numerics follow the reference (runtime/cpu/): expressions in f32x4, every step rounded to f32 as
// the unfused kernels store it (exp, log1p, SiLU and softplus as f32 module helpers accurate to a
// few ulps; GELU per lane in f64, as the reference computes it); norms, the conv, the SSD step and
// RoPE in f64 scalar or f64x2 where the reference sums in double, rounded to f32 where it stores;
// the one-token attention's scores, softmax and weighted values in f64 (f64x2), as the reference.
// A kernel this file cannot render (a shape of stage it does not know) gets no function and runs on
// the reference families.

import type { Epilogue, Expr, Kernel, Program, View } from '../../runtime/program.ts';
import { isView } from '../../runtime/program.ts';
import { type Arg, FIXED, exportName, kernelArgs, programHash, scratchPlan } from '../../runtime/wasm/program.ts';
import { assemble } from './assemble.ts';

/** Thrown (and caught per kernel) where a kernel has something this renderer does not handle. */
class Unsupported extends Error {}
function unsupported(why: string): never {
  throw new Unsupported(why);
}

const i32 = (n: number) => `(i32.const ${n | 0})`;
const get = (n: string) => `(local.get $${n})`;
const addI = (a: string, b: string | number) => (b === 0 ? a : `(i32.add ${a} ${typeof b === 'number' ? i32(b) : b})`);
const mulI = (a: string, b: number) => (b === 1 ? a : `(i32.mul ${a} ${i32(b)})`);

/** An f32 literal of Math.fround(v). */
function f32lit(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const f = Math.fround(v);
  return Object.is(f, -0) ? '-0' : String(f);
}
const f64lit = (v: number) => (Object.is(v, -0) ? '-0' : String(v));
const splat = (v: number) => `(f32x4.splat (f32.const ${f32lit(v)}))`;

/** Where a row of floats starts: a byte address expression for row `r`. */
type RowAt = (r: string) => string;

/** One function being rendered: its locals, labels and the kernel's arguments. */
class Fn {
  private readonly locals = new Map<string, string>();
  private label = 0;
  constructor(readonly k: Kernel, readonly args: readonly Arg[], readonly program: Program, readonly entryBuffers: readonly { width: number; rows: string }[]) {}

  local(name: string, type = 'i32'): string {
    this.locals.set(name, type);
    return name;
  }

  /** A label unique in the function. */
  lbl(prefix: string): string {
    return `$${prefix}${this.label++}`;
  }

  fresh(prefix: string, type = 'i32'): string {
    return this.local(`${prefix}${this.label++}`, type);
  }

  private argIndex(match: (a: Arg) => boolean, what: string): string {
    const i = this.args.findIndex(match);
    if (i < 0) throw new Error(`archc wasm program: ${this.k.name} has no argument for ${what}`);
    return get(`a${i}`);
  }

  buf(b: number): string { return this.argIndex((a) => a.kind === 'buf' && a.buf === b, `buffer ${b}`); }
  weight(n: string): string { return this.argIndex((a) => a.kind === 'weight' && a.name === n, `weight ${n}`); }
  state(i: number): string { return this.argIndex((a) => a.kind === 'state' && a.index === i, `state ${i}`); }
  rope(r: number, theta: number): string { return this.argIndex((a) => a.kind === 'rope' && a.rotaryDim === r && a.theta === theta, 'rotary table'); }

  /** Floats per row of a view's buffer, and its row count as an expression (T, S or 1). */
  bufferOf(v: View): { width: number; rows: string } {
    return this.entryBuffers[v.buf] ?? unsupported(`buffer ${v.buf}`);
  }

  /** Row r of a view (column `col` of row r of its buffer). */
  viewRow(v: View): RowAt {
    const { width } = this.bufferOf(v);
    return (r) => addI(this.buf(v.buf), `(i32.shl ${addI(mulI(r, width), v.col)} ${i32(2)})`);
  }

  /** A scratch array of the plan: row r. */
  scratchRow(name: string): RowAt {
    const plan = scratchPlan(this.k);
    const i = plan.findIndex((p) => p.name === name);
    if (i < 0) throw new Error(`archc wasm program: ${this.k.name} has no scratch ${name}`);
    const before = plan.slice(0, i).reduce((a, p) => a + p.perRow, 0);
    const per = plan[i]!.perRow;
    return (r) => addI(addI(get('scr'), `(i32.shl ${mulI(get('rows'), before)} ${i32(2)})`), `(i32.shl ${mulI(r, per)} ${i32(2)})`);
  }

  /** The length of a weight (for `w:` leaves read at column mod length). */
  weightLength(n: string): number {
    const w = this.program.weights.find((x) => x.name === n) ?? this.program.derived.find((x) => x.name === n) ?? unsupported(`weight ${n}`);
    return w.shape.reduce((a, b) => a * b, 1);
  }

  /** A counted loop: `v` from `from` while < `to`, by `step`. */
  loop(v: string, from: string, to: string, body: string, step = 1): string {
    this.local(v);
    const l = this.label++;
    return `(local.set $${v} ${from})
(block $e${l} (loop $l${l}
  (br_if $e${l} (i32.ge_s ${get(v)} ${to}))
  ${body}
  (local.set $${v} ${addI(get(v), step)})
  (br $l${l})))`;
  }

  text(name: string, body: string): string {
    const params = [...FIXED, ...this.args.map((_, i) => `a${i}`)].map((p) => `(param $${p} i32)`).join(' ');
    const locals = [...this.locals].filter(([n]) => !(FIXED as readonly string[]).includes(n)).map(([n, t]) => `(local $${n} ${t})`).join(' ');
    return `(func $${name} ${params}\n  ${locals}\n  ${body.split('\n').join('\n  ')})`;
  }
}

// ---- expressions -------------------------------------------------------------------------------

/** Where an expression's leaves read, for one pass over columns $j of a row. */
interface Leaves {
  /** `x` at column j + off: a byte address of column 0 of the current row (a local). */
  readonly x?: string;
}

/** An expression as an f32x4 value over columns j..j+V-1 (V = 4, or 1 with the value in lane 0). */
function expr(f: Fn, e: Expr, env: Leaves, V: 4 | 1, width: number, xOff = 0): string {
  const load = (addr: string, off: number) => (V === 4 ? `(v128.load offset=${off * 4} ${addr})` : `(f32x4.splat (f32.load offset=${off * 4} ${addr}))`);
  const col = `(i32.shl ${get('j')} ${i32(2)})`;
  const sub = (a: Expr) => expr(f, a, env, V, width, xOff);
  switch (e.op) {
    case 'x': return load(addI(env.x ?? unsupported('x'), col), e.offset + xOff);
    case 'in': {
      const o = f.k.inputs[e.name] ?? unsupported(`operand ${e.name}`);
      if ('weight' in o) return expr(f, { op: 'w', name: o.weight }, env, V, width);
      if (!isView(o)) return unsupported('an integer input in an expression');
      const rowLocal = `in_${e.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
      const pre = f.k.pre?.[e.name];
      // the operand read through its `pre` expression, its `x` reading the operand itself
      return pre ? expr(f, pre, { x: get(rowLocal) }, V, width) : load(addI(get(rowLocal), col), 0);
    }
    case 'w': {
      const n = f.weightLength(e.name);
      const at = n >= width ? col : `(i32.shl (i32.rem_u ${get('j')} ${i32(n)}) ${i32(2)})`;
      return load(addI(f.weight(e.name), at), 0);
    }
    case 'const': return splat(e.value);
    case 'silu': return `(call $silu4 ${sub(e.a)})`;
    case 'softplus': return `(call $softplus4 ${sub(e.a)})`;
    case 'exp': return `(call $exp4 ${sub(e.a)})`;
    case 'gelu': return `(call $gelu4 ${sub(e.a)})`;
    case 'gelu_tanh': return `(call $gelu_tanh4 ${sub(e.a)})`;
    case 'neg': return `(f32x4.neg ${sub(e.a)})`;
    case 'add': return `(f32x4.add ${sub(e.a)} ${sub(e.b)})`;
    case 'mul': return `(f32x4.mul ${sub(e.a)} ${sub(e.b)})`;
    case 'clamp': return `(f32x4.min (f32x4.max ${sub(e.a)} ${splat(e.min)}) ${splat(e.max)})`;
  }
}

/** The operands an expression reads (through `in` leaves, and the leaves of their `pre`). */
function operandsOf(k: Kernel, e: Expr, out = new Set<string>()): Set<string> {
  const walk = (x: Expr) => {
    switch (x.op) {
      case 'in': {
        const o = k.inputs[x.name];
        if (o && isView(o) && !out.has(x.name)) {
          out.add(x.name);
          const pre = k.pre?.[x.name];
          if (pre) walk(pre);
        }
        break;
      }
      case 'x': case 'w': case 'const': break;
      case 'add': case 'mul': walk(x.a); walk(x.b); break;
      default: walk(x.a);
    }
  };
  walk(e);
  return out;
}

/** Does every `w:` leaf allow 4 columns at a time (a length that is a multiple of 4, or covers the width)? */
function vectorizable(f: Fn, e: Expr, width: number): boolean {
  switch (e.op) {
    case 'w': { const n = f.weightLength(e.name); return n >= width || n % 4 === 0; }
    case 'in': {
      const o = f.k.inputs[e.name];
      if (o && 'weight' in o) return vectorizable(f, { op: 'w', name: o.weight }, width);
      const pre = f.k.pre?.[e.name];
      return pre ? vectorizable(f, pre, width) : true;
    }
    case 'x': case 'const': return true;
    case 'add': case 'mul': return vectorizable(f, e.a, width) && vectorizable(f, e.b, width);
    default: return vectorizable(f, e.a, width);
  }
}

/**
 * out[r, j] = e(r, j) for rows [0, rows), columns [0, width): `x` reads row r of `x` (if given),
 * `in` leaves row `srcRow(r)` of their operand (a single-row buffer broadcasts).
 */
function mapPass(f: Fn, e: Expr, width: number, rows: string, dst: RowAt, x?: RowAt, srcRow: (r: string) => string = (r) => r): string {
  const r = f.fresh('r'), xr = f.fresh('xr'), dr = f.fresh('dr');
  f.local('j');
  const sets: string[] = [];
  for (const name of operandsOf(f.k, e)) {
    const v = f.k.inputs[name] as View;
    const local = f.local(`in_${name.replace(/[^A-Za-z0-9_]/g, '_')}`);
    const { rows: n } = f.bufferOf(v);
    const row = n === i32(1) ? i32(0) : `(i32.mul ${srcRow(get(r))} (i32.ne ${n} ${i32(1)}))`;
    sets.push(`(local.set $${local} ${f.viewRow(v)(row)})`);
  }
  if (x) sets.push(`(local.set $${xr} ${x(get(r))})`);
  sets.push(`(local.set $${dr} ${dst(get(r))})`);
  const env: Leaves = { x: x ? get(xr) : undefined };
  const at = addI(get(dr), `(i32.shl ${get('j')} ${i32(2)})`);
  const [ve, vl, se, sl] = [f.lbl('ve'), f.lbl('vl'), f.lbl('se'), f.lbl('sl')];
  const vec = vectorizable(f, e, width) && width >= 4
    ? `(block ${ve} (loop ${vl}
  (br_if ${ve} (i32.gt_s ${addI(get('j'), 4)} ${i32(width)}))
  (v128.store ${at} ${expr(f, e, env, 4, width)})
  (local.set $j ${addI(get('j'), 4)})
  (br ${vl})))`
    : '';
  const body = `${sets.join('\n')}
(local.set $j ${i32(0)})
${vec}
(block ${se} (loop ${sl}
  (br_if ${se} (i32.ge_s ${get('j')} ${i32(width)}))
  (f32.store ${at} (f32x4.extract_lane 0 ${expr(f, e, env, 1, width)}))
  (local.set $j ${addI(get('j'), 1)})
  (br ${sl})))`;
  return f.loop(r, i32(0), rows, body);
}

// ---- norms ------------------------------------------------------------------------------------

/** A row norm in f64, as runtime/cpu/norm.ts: src row → dst row (may be the same), D floats in
 *  groups of `gs`; rms: w · f32(h · inv); layer: f32((h − mean) · inv · w + b). */
function normPass(f: Fn, kind: 'rms' | 'layer', rows: string, src: RowAt, dst: RowAt, D: number, gs: number, w: string, b: string | null, eps: number): string {
  const r = f.fresh('r'), s = f.fresh('s'), d = f.fresh('d'), g = f.fresh('g'), i = f.fresh('i');
  const acc = f.fresh('acc', 'f64'), mean = f.fresh('mean', 'f64'), inv = f.fresh('inv', 'f64'), h = f.fresh('h', 'f64');
  const at = (base: string, off: string) => addI(base, `(i32.shl ${off} ${i32(2)})`);
  const ld = (base: string, off: string) => `(f64.promote_f32 (f32.load ${at(base, off)}))`;
  const gi = addI(get(g), get(i));
  let body: string;
  if (kind === 'rms') {
    body = f.loop(g, i32(0), i32(D), `(local.set $${acc} (f64.const 0))
${f.loop(i, i32(0), i32(gs), `(local.set $${h} ${ld(get(s), gi)})
(local.set $${acc} (f64.add ${get(acc)} (f64.mul ${get(h)} ${get(h)})))`)}
(local.set $${inv} (f64.div (f64.const 1) (f64.sqrt (f64.add (f64.div ${get(acc)} (f64.const ${gs})) (f64.const ${f64lit(eps)})))))
${f.loop(i, i32(0), i32(gs), `(f32.store ${at(get(d), gi)} (f32.mul (f32.load ${at(w, gi)}) (f32.demote_f64 (f64.mul ${ld(get(s), gi)} ${get(inv)}))))`)}`, gs);
  } else {
    const x = ld(get(s), get(i));
    body = `(local.set $${acc} (f64.const 0))
${f.loop(i, i32(0), i32(D), `(local.set $${acc} (f64.add ${get(acc)} ${x}))`)}
(local.set $${mean} (f64.div ${get(acc)} (f64.const ${D})))
(local.set $${acc} (f64.const 0))
${f.loop(i, i32(0), i32(D), `(local.set $${h} (f64.sub ${x} ${get(mean)}))
(local.set $${acc} (f64.add ${get(acc)} (f64.mul ${get(h)} ${get(h)})))`)}
(local.set $${inv} (f64.div (f64.const 1) (f64.sqrt (f64.add (f64.div ${get(acc)} (f64.const ${D})) (f64.const ${f64lit(eps)})))))
${f.loop(i, i32(0), i32(D), `(f32.store ${at(get(d), get(i))} (f32.demote_f64 (f64.add (f64.mul (f64.mul (f64.sub ${x} ${get(mean)}) ${get(inv)}) ${ld(w, get(i))}) ${b ? ld(b, get(i)) : '(f64.const 0)'})))`)}`;
  }
  return f.loop(r, i32(0), rows, `(local.set $${s} ${src(get(r))})\n(local.set $${d} ${dst(get(r))})\n${body}`);
}

// ---- epilogue stages --------------------------------------------------------------------------

/** RoPE on columns [col, col + heads·Dh) of each row: src → dst (the same row for in place). */
function ropePass(f: Fn, rows: string, src: RowAt, dst: RowAt, col: number, heads: number, Dh: number, R: number, table: string, passThrough: boolean): string {
  const half = R / 2;
  const r = f.fresh('r'), h = f.fresh('h'), i = f.fresh('i'), s = f.fresh('s'), d = f.fresh('d'), c = f.fresh('c'), sn = f.fresh('sn');
  const lo = f.fresh('lo', 'f64'), hi = f.fresh('hi', 'f64'), cs = f.fresh('cs', 'f64'), si = f.fresh('si', 'f64');
  const fa = (base: string, k: string) => addI(base, `(i32.shl ${k} ${i32(2)})`);
  const hb = (base: string) => addI(base, `(i32.shl ${addI(mulI(get(h), Dh), col)} ${i32(2)})`);
  const rot = f.loop(i, i32(0), i32(half), `(local.set $${lo} (f64.promote_f32 (f32.load ${fa(hb(get(s)), get(i))})))
(local.set $${hi} (f64.promote_f32 (f32.load offset=${half * 4} ${fa(hb(get(s)), get(i))})))
(local.set $${cs} (f64.load ${addI(get(c), `(i32.shl ${get(i)} ${i32(3)})`)}))
(local.set $${si} (f64.load ${addI(get(sn), `(i32.shl ${get(i)} ${i32(3)})`)}))
(f32.store ${fa(hb(get(d)), get(i))} (f32.demote_f64 (f64.sub (f64.mul ${get(lo)} ${get(cs)}) (f64.mul ${get(hi)} ${get(si)}))))
(f32.store offset=${half * 4} ${fa(hb(get(d)), get(i))} (f32.demote_f64 (f64.add (f64.mul ${get(hi)} ${get(cs)}) (f64.mul ${get(lo)} ${get(si)}))))`);
  const pass = passThrough && R < Dh ? f.loop(i, i32(R), i32(Dh), `(f32.store ${fa(hb(get(d)), get(i))} (f32.load ${fa(hb(get(s)), get(i))}))`) : '';
  return f.loop(r, i32(0), rows, `(local.set $${s} ${src(get(r))})
(local.set $${d} ${dst(get(r))})
(local.set $${c} ${addI(table, `(i32.shl ${mulI(get(r), half)} ${i32(3)})`)})
(local.set $${sn} ${addI(table, `(i32.shl ${mulI(addI(get('T'), get(r)), half)} ${i32(3)})`)})
${f.loop(h, i32(0), i32(heads), `${rot}\n${pass}`)}`);
}

/** The one-token conv in place on columns [col, col + C) of row r = sequence r, through the
 *  sequence's window (state), then `post` in place. */
function convStepPass(f: Fn, s: Extract<Epilogue, { kind: 'conv_step' }>, rows: string, cur: RowAt): string {
  const { channels: C, taps: K } = s;
  const r = f.fresh('r'), c = f.fresh('c'), rb = f.fresh('rb'), st = f.fresh('st'), acc = f.fresh('acc', 'f64'), x = f.fresh('x', 'f32');
  const w = f.weight(s.weight), b = s.bias ? f.weight(s.bias) : null;
  const S1 = K - 1;
  const stAt = (j: number) => `offset=${j * 4} ${get(st)}`;
  const taps: string[] = [];
  for (let j = 0; j < K; j++) {
    const v = j < S1 ? `(f64.promote_f32 (f32.load ${stAt(j)}))` : `(f64.promote_f32 ${get(x)})`;
    taps.push(`(local.set $${acc} (f64.add ${get(acc)} (f64.mul (f64.promote_f32 (f32.load offset=${j * 4} ${addI(w, `(i32.shl ${mulI(get(c), K)} ${i32(2)})`)})) ${v})))`);
  }
  const shift: string[] = [];
  for (let j = 0; j < S1; j++) shift.push(`(f32.store ${stAt(j)} ${j + 1 < S1 ? `(f32.load ${stAt(j + 1)})` : get(x)})`);
  const at = addI(get(rb), `(i32.shl ${get(c)} ${i32(2)})`);
  const body = f.loop(c, i32(0), i32(C), `(local.set $${x} (f32.load ${at}))
(local.set $${st} ${addI(addI(`(i32.load offset=8 ${addI(get('seq'), mulI(get(r), 12))})`, f.state(s.state)), `(i32.shl ${mulI(get(c), S1)} ${i32(2)})`)})
(local.set $${acc} (f64.const 0))
${taps.join('\n')}
(f32.store ${at} (f32.demote_f64 (f64.add ${get(acc)} ${b ? `(f64.promote_f32 (f32.load ${addI(b, `(i32.shl ${get(c)} ${i32(2)})`)}))` : '(f64.const 0)'})))
${shift.join('\n')}`);
  const conv = f.loop(r, i32(0), rows, `(local.set $${rb} ${addI(cur(get(r)), s.col * 4)})\n${body}`);
  if (!s.post) return conv;
  if (!xOffsetsZero(s.post)) unsupported('a conv post-expression reading other columns');
  const here: RowAt = (row) => addI(cur(row), s.col * 4);
  return `${conv}\n${mapPass(f, s.post, C, rows, here, here)}`;
}

function xOffsetsZero(e: Expr): boolean {
  switch (e.op) {
    case 'x': return e.offset === 0;
    case 'in': case 'w': case 'const': return true;
    case 'add': case 'mul': return xOffsetsZero(e.a) && xOffsetsZero(e.b);
    default: return xOffsetsZero(e.a);
  }
}

/**
 * The epilogue chain from a result of `width` columns at `src` to the kernel's output `y`: maps go
 * through the scratch rows y1/y2 (the last map straight into y), RoPE and the one-token conv in
 * place where the result is; without a map the result is copied into y at the end. `bias` is a
 * weight added first (a product's).
 */
function epilogueChain(f: Fn, src: RowAt, width: number, rows: string, bias: string | null): string {
  const out = f.k.outputs.y ?? unsupported('a kernel without output y');
  const stages: Epilogue[] = [...(bias ? [{ kind: 'map' as const, body: { op: 'add' as const, a: { op: 'x' as const, offset: 0 }, b: { op: 'w' as const, name: bias } }, width }] : []), ...(f.k.epilogue ?? [])];
  const lastMap = stages.map((s) => s.kind).lastIndexOf('map');
  const parts: string[] = [];
  let cur = src, curName = 'y0';
  stages.forEach((s, i) => {
    if (s.kind === 'map') {
      const name = i === lastMap ? 'out' : curName === 'y1' ? 'y2' : 'y1';
      const dst = name === 'out' ? f.viewRow(out) : f.scratchRow(name);
      parts.push(mapPass(f, s.body, s.width, rows, dst, cur));
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
  const k = f.k, K = k.sizes.K!;
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
  return epilogueChain(f, y0, k.sizes.N!, rows, b && 'weight' in b ? b.weight : null);
}

function normRun(f: Fn): string {
  const k = f.k, W = k.sizes.W!, D = k.sizes.D!;
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
  // win[m] for m = i + j: the state below K-1, else x row start + m - (K-1)
  const win = (m: string, branchy: boolean) => {
    const fromX = `(f64.promote_f32 (f32.load ${addI(x(`(i32.sub ${addI(get(start), m)} ${i32(S1)})`), `(i32.shl ${get(c)} ${i32(2)})`)}))`;
    if (!branchy) return fromX;
    return `(if (result f64) (i32.lt_s ${m} ${i32(S1)}) (then (f64.promote_f32 (f32.load ${addI(get(st), `(i32.shl ${addI(mulI(get(c), S1), m)} ${i32(2)})`)}))) (else ${fromX}))`;
  };
  const token = (branchy: boolean) => f.loop(c, i32(0), i32(C), `(local.set $${acc} (f64.const 0))
${Array.from({ length: K }, (_, j) => `(local.set $${acc} (f64.add ${get(acc)} (f64.mul (f64.promote_f32 (f32.load offset=${j * 4} ${addI(w, `(i32.shl ${mulI(get(c), K)} ${i32(2)})`)})) ${win(addI(get(i), j), branchy)})))`).join('\n')}
(f32.store ${addI(get(yr), `(i32.shl ${get(c)} ${i32(2)})`)} (f32.demote_f64 (f64.add ${get(acc)} ${b ? `(f64.promote_f32 (f32.load ${addI(b, `(i32.shl ${get(c)} ${i32(2)})`)}))` : '(f64.const 0)'})))`);
  const tokens = (from: string, to: string, branchy: boolean) => f.loop(i, from, to, `(local.set $${yr} ${out(addI(get(start), get(i)))})\n${token(branchy)}`);
  const firstEnd = `(select ${get(len)} ${i32(S1)} (i32.lt_s ${get(len)} ${i32(S1)}))`;
  // the window after the sequence's last row: st[c, j] = win[len + j]
  const keep = S1 > 0 ? f.loop(c, i32(0), i32(C), f.loop(i, i32(0), i32(S1), `(f32.store ${addI(get(st), `(i32.shl ${addI(mulI(get(c), S1), get(i))} ${i32(2)})`)} (f32.demote_f64 ${win(addI(get(len), get(i)), true)}))`)) : '';
  parts.push(f.loop(s, i32(0), get('S'), `(local.set $${start} (i32.load ${addI(get('seq'), mulI(get(s), 12))}))
(local.set $${len} (i32.load offset=4 ${addI(get('seq'), mulI(get(s), 12))}))
(local.set $${st} ${addI(`(i32.load offset=8 ${addI(get('seq'), mulI(get(s), 12))})`, f.state(k.state ?? unsupported('a conv without state')))})
${tokens(i32(0), firstEnd, true)}
${tokens(i32(S1), get(len), false)}
${keep}`));
  if (k.epilogue?.length) parts.push(epilogueChain(f, out, C, get('rows'), null));
  return parts.join('\n');
}

function ssdStepRun(f: Fn): string {
  const k = f.k, { H, P, G, N } = k.sizes as { H: number; P: number; G: number; N: number };
  if (H % G) unsupported('groups that do not divide heads');
  const hpg = H / G;
  const { parts, row } = materialise(f, ['x', 'dt', 'A', 'B', 'C', 'D']);
  const y = f.viewRow(k.outputs.y!);
  const s = f.fresh('s'), t = f.fresh('t'), h = f.fresh('h'), p = f.fresh('p'), n = f.fresh('n'), end = f.fresh('end'), st0 = f.fresh('st0'), so = f.fresh('so');
  const xr = f.fresh('xr'), dtr = f.fresh('dtr'), br = f.fresh('br'), cr = f.fresh('cr'), yr = f.fresh('yr'), bo = f.fresh('bo'), co = f.fresh('co');
  const d = f.fresh('d', 'f64'), decay = f.fresh('decay', 'f64'), xp = f.fresh('xp', 'f64'), dx = f.fresh('dx', 'f64'), acc = f.fresh('acc', 'v128'), v = f.fresh('v', 'v128'), a = f.fresh('a', 'f64');
  const fl = (base: string, i: string) => `(f64.promote_f32 (f32.load ${addI(base, `(i32.shl ${i} ${i32(2)})`)}))`;
  const nb = `(i32.shl ${get(n)} ${i32(2)})`;
  const pairs = f.loop(n, i32(0), i32(N - (N % 2)), `(local.set $${v} (f32x4.demote_f64x2_zero (f64x2.add (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero ${addI(get(so), nb)})) (f64x2.splat ${get(decay)}))
  (f64x2.mul (f64x2.splat ${get(dx)}) (f64x2.promote_low_f32x4 (v128.load64_zero ${addI(get(bo), nb)}))))))
(v128.store64_lane 0 ${addI(get(so), nb)} ${get(v)})
(local.set $${acc} (f64x2.add ${get(acc)} (f64x2.mul (f64x2.promote_low_f32x4 ${get(v)}) (f64x2.promote_low_f32x4 (v128.load64_zero ${addI(get(co), nb)})))))`, 2);
  const odd = N % 2 ? `(local.set $${a} (f64.promote_f32 (f32.demote_f64 (f64.add (f64.mul ${fl(get(so), i32(N - 1))} ${get(decay)}) (f64.mul ${get(dx)} ${fl(get(bo), i32(N - 1))})))))
(f32.store offset=${(N - 1) * 4} ${get(so)} (f32.demote_f64 ${get(a)}))
(local.set $${a} (f64.mul ${get(a)} ${fl(get(co), i32(N - 1))}))` : `(local.set $${a} (f64.const 0))`;
  const perP = f.loop(p, i32(0), i32(P), `(local.set $${xp} ${fl(get(xr), addI(mulI(get(h), P), get(p)))})
(local.set $${dx} (f64.mul ${get(d)} ${get(xp)}))
(local.set $${so} ${addI(get(st0), `(i32.shl ${mulI(addI(mulI(get(h), P), get(p)), N)} ${i32(2)})`)})
(local.set $${acc} (v128.const f64x2 0 0))
${pairs}
${odd}
(f32.store ${addI(get(yr), `(i32.shl ${addI(mulI(get(h), P), get(p))} ${i32(2)})`)} (f32.demote_f64 (f64.add
  (f64.add (f64.add (f64x2.extract_lane 0 ${get(acc)}) (f64x2.extract_lane 1 ${get(acc)})) ${get(a)})
  (f64.mul ${fl(row('D')(i32(0)), get(h))} ${get(xp)}))))`);
  const perH = f.loop(h, i32(0), i32(H), `(local.set $${d} ${fl(get(dtr), get(h))})
(local.set $${decay} (call $exp64 (f64.mul ${get(d)} ${fl(row('A')(i32(0)), get(h))})))
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

/**
 * The one-token attention (and any causal GQA attention) as runtime/cpu/attention.ts: per sequence
 * its k, v rows appended to the KV cache in its slot ([capacity, KV, Dh] keys, then values), then
 * per row and head the scores q·k_j·scale, the softmax (max subtracted) and the weighted sum of the
 * values, all in f64 (f64x2 across the head dim), rounded to f32 at the end. Scratch: f64 scores
 * [capacity] at scr, then the f64 sum [Dh].
 */
function attentionDecodeRun(f: Fn): string {
  const k = f.k, { H, KV, Dh } = k.sizes as { H: number; KV: number; Dh: number };
  if (KV < 1 || H % KV) unsupported('kv heads that do not divide heads');
  if (Object.keys(k.pre ?? {}).length) unsupported('attention operands with a pre-expression');
  const views = ['q', 'k', 'v'].map((n) => { const o = k.inputs[n]; return o && isView(o) ? o : unsupported(`attention operand ${n}`); });
  const [qv, kv, vv] = views as [View, View, View];
  const y = k.outputs.y ?? unsupported('no output y');
  if (qv.width !== H * Dh || kv.width !== KV * Dh || vv.width !== KV * Dh || y.width !== H * Dh) unsupported('an attention view');
  if (views.some((v) => v.buf === y.buf)) unsupported('an attention output sharing a buffer with an operand');
  const group = H / KV, rowLen = KV * Dh, pairs = Dh - (Dh % 2);
  const s = f.fresh('s'), t = f.fresh('t'), r = f.fresh('r'), h = f.fresh('h'), j = f.fresh('j'), dd = f.fresh('d');
  const start = f.fresh('start'), len = f.fresh('len'), before = f.fresh('before'), kc = f.fresh('kc'), vc = f.fresh('vc'), nk = f.fresh('nk');
  const qo = f.fresh('qo'), ko = f.fresh('ko'), yo = f.fresh('yo'), acc = f.fresh('acc');
  const dot = f.fresh('dot', 'v128'), v2 = f.fresh('v2', 'v128'), sc = f.fresh('sc', 'f64'), max = f.fresh('max', 'f64'), sum = f.fresh('sum', 'f64'), pj = f.fresh('pj', 'f64');
  const seqAt = addI(get('seq'), mulI(get(s), 12));
  const fa = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(2)})`);
  const da = (base: string, i: string) => addI(base, `(i32.shl ${i} ${i32(3)})`);
  const pair = (base: string) => `(f64x2.promote_low_f32x4 (v128.load64_zero ${fa(base, get(dd))}))`;
  const one = (base: string) => `(f64.promote_f32 (f32.load ${fa(base, get(dd))}))`;
  // keys of row r: [0, before + r]; K row j of kv head h/group at kc + (j·rowLen + (h/group)·Dh)·4
  const kvHead = mulI(`(i32.div_u ${get(h)} ${i32(group)})`, Dh);
  const scores = f.loop(j, i32(0), get(nk), `(local.set $${ko} ${fa(get(kc), addI(mulI(get(j), rowLen), kvHead))})
(local.set $${dot} (v128.const f64x2 0 0))
${f.loop(dd, i32(0), i32(pairs), `(local.set $${dot} (f64x2.add ${get(dot)} (f64x2.mul ${pair(get(qo))} ${pair(get(ko))})))`, 2)}
(local.set $${sc} (f64.add (f64x2.extract_lane 0 ${get(dot)}) (f64x2.extract_lane 1 ${get(dot)})))
${Dh % 2 ? `(local.set $${dd} ${i32(Dh - 1)})
(local.set $${sc} (f64.add ${get(sc)} (f64.mul ${one(get(qo))} ${one(get(ko))})))` : ''}
(local.set $${sc} (f64.mul ${get(sc)} (f64.const ${f64lit(k.attrs.scale as number)})))
(f64.store ${da(get('scr'), get(j))} ${get(sc)})
(local.set $${max} (f64.max ${get(max)} ${get(sc)}))`);
  const accAt = (i: string) => da(get(acc), i);
  const weigh = f.loop(j, i32(0), get(nk), `(local.set $${pj} (call $exp64 (f64.sub (f64.load ${da(get('scr'), get(j))}) ${get(max)})))
(local.set $${sum} (f64.add ${get(sum)} ${get(pj)}))
(local.set $${ko} ${fa(get(vc), addI(mulI(get(j), rowLen), kvHead))})
(local.set $${v2} (f64x2.splat ${get(pj)}))
${f.loop(dd, i32(0), i32(pairs), `(v128.store ${accAt(get(dd))} (f64x2.add (v128.load ${accAt(get(dd))}) (f64x2.mul ${get(v2)} ${pair(get(ko))})))`, 2)}
${Dh % 2 ? `(local.set $${dd} ${i32(Dh - 1)})
(f64.store ${accAt(get(dd))} (f64.add (f64.load ${accAt(get(dd))}) (f64.mul ${get(pj)} ${one(get(ko))})))` : ''}`);
  const head = `(local.set $${qo} ${addI(f.viewRow(qv)(addI(get(start), get(r))), `(i32.shl ${mulI(get(h), Dh)} ${i32(2)})`)})
(local.set $${yo} ${addI(f.viewRow(y)(addI(get(start), get(r))), `(i32.shl ${mulI(get(h), Dh)} ${i32(2)})`)})
(local.set $${max} (f64.const -inf))
${scores}
(local.set $${sum} (f64.const 0))
${f.loop(dd, i32(0), i32(Dh), `(f64.store ${accAt(get(dd))} (f64.const 0))`)}
${weigh}
${f.loop(dd, i32(0), i32(Dh), `(f32.store ${fa(get(yo), get(dd))} (f32.demote_f64 (f64.div (f64.load ${accAt(get(dd))}) ${get(sum)})))`)}`;
  const append = (src: View, cache: string) => f.loop(t, i32(0), get(len), f.loop(dd, i32(0), i32(rowLen),
    `(f32.store ${fa(cache, addI(mulI(addI(get(before), get(t)), rowLen), get(dd)))} (f32.load ${fa(f.viewRow(src)(addI(get(start), get(t))), get(dd))}))`));
  // rows no sequence covers stay as written before: the reference writes them zero
  const zero = f.loop(t, i32(0), get('T'), f.loop(dd, i32(0), i32(H * Dh), `(f32.store ${fa(f.viewRow(y)(get(t)), get(dd))} (f32.const 0))`));
  return `${zero}
(local.set $${acc} ${addI(get('scr'), `(i32.shl (i32.load ${addI(get('seq'), `(i32.shl ${get('S')} ${i32(4)})`)}) ${i32(3)})`)})
${f.loop(s, i32(0), get('S'), `(local.set $${start} (i32.load ${seqAt}))
(local.set $${len} (i32.load offset=4 ${seqAt}))
(local.set $${kc} ${addI(`(i32.load offset=8 ${seqAt})`, f.state(k.state ?? unsupported('an attention without a cache')))})
(local.set $${vc} ${addI(get(kc), `(i32.shl (i32.mul (i32.load ${addI(get('seq'), `(i32.shl ${get('S')} ${i32(4)})`)}) ${i32(rowLen)}) ${i32(2)})`)})
(local.set $${before} (i32.load ${addI(addI(get('seq'), mulI(get('S'), 12)), `(i32.shl ${get(s)} ${i32(2)})`)}))
${append(kv, get(kc))}
${append(vv, get(vc))}
${f.loop(r, i32(0), get(len), `(local.set $${nk} ${addI(addI(get(before), get(r)), 1)})
${f.loop(h, i32(0), i32(H), head)}`)}`)}`;
}

// ---- module -----------------------------------------------------------------------------------

/** The functions of one kernel by stage, or none where it is not rendered. */
function renderKernel(k: Kernel, program: Program, buffers: readonly { width: number; rows: string }[]): Partial<Record<'run' | 'pre' | 'post', Fn & { body: string }>> {
  const args = kernelArgs(k);
  const make = (render: (f: Fn) => string) => {
    const f = new Fn(k, args, program, buffers);
    return Object.assign(f, { body: render(f) });
  };
  try {
    switch (k.family) {
      case 'matmul': {
        const w = k.inputs.w;
        if (k.attrs.transposed || !w || !('weight' in w) || !isView(k.inputs.x!)) return {};
        if ((k.inputs.x as View).width !== k.sizes.K) return {};
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
      default: return {};
    }
  } catch (e) {
    if (e instanceof Unsupported) return {};
    throw e;
  }
}

/** The program's module, assembled (`archc build` ships it beside the product kernels). */
export function wasmProgram(program: Program): Promise<Uint8Array> {
  return assemble(renderWasmProgram(program), 'archc-program.wat');
}

/** The program's module: each distinct function once, exported under every kernel that uses it. */
export function renderWasmProgram(program: Program): string {
  const funcs = new Map<string, { name: string; exports: string[] }>();
  for (const [entry, e] of Object.entries(program.entries) as [keyof Program['entries'], Program['entries'][keyof Program['entries']]][]) {
    const buffers = e.buffers.map((b) => ({ width: b.width, rows: b.rows === 'T' ? get('T') : b.rows === 'S' ? get('S') : i32(1) }));
    e.kernels.forEach((k, i) => {
      for (const [stage, f] of Object.entries(renderKernel(k, program, buffers)) as ['run' | 'pre' | 'post', Fn & { body: string }][]) {
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
${MATH}
${SSD_GLUE}
${ATTN_GLUE}
${defs.join('\n')}
)
`;
}

/**
 * The chunked SSD's steps around its matrix products (runtime/wasm/ssd.ts drives them, the
 * products run on the kernel module), the same for every kernel: addresses are bytes, strides
 * (`ld…`) floats. As runtime/cpu/ssd.ts: a_j = dt_j·A_h, the decays and segment sums in f64, each
 * result rounded to f32 where it is stored.
 *   ssd.put     dst[i, j] = src[i, j]                          (rows × cols)
 *   ssd.decays  a[i] = dt_i·A_h; din[i] = exp(a_0 + … + a_i); dout[j] = exp(a_{j+1} + … + a_{q-1})·dt_j
 *   ssd.mask    m[i, j] = exp(seg(i, j))·cb[i, j]·dt_j for j ≤ i, else 0      (q × q)
 *   ssd.out     y[i, p] = y[i, p] + din[i]·r[i, p] + D_h·x[i, p]             (q × P)
 *   ssd.xw      xw[p, j] = dout[j]·x[j, p]                                     (P × q)
 *   ssd.state   st[p, n] = total·st[p, n] + r[p, n]                            (P × N)
 */
const SSD_GLUE = (() => {
  const f = (base: string, i: string, ld: string, j: string) => `(i32.add (local.get $${base}) (i32.shl (i32.add (i32.mul (local.get $${i}) (local.get $${ld})) (local.get $${j})) (i32.const 2)))`;
  const d = (base: string, i: string) => `(i32.add (local.get $${base}) (i32.shl (local.get $${i}) (i32.const 3)))`;
  const ld32 = (addr: string) => `(f64.promote_f32 (f32.load ${addr}))`;
  let n = 0;
  const dtAt = (i: string) => `(i32.add (local.get $dt) (i32.shl (i32.mul (local.get $${i}) (local.get $ldt)) (i32.const 2)))`;
  const loop = (v: string, from: string, to: string, body: string, down = false) => {
    const [e, l] = [`$e${n}_${v}`, `$l${n++}_${v}`];
    return `(local.set $${v} ${down ? `(i32.sub ${to} (i32.const 1))` : from})
  (block ${e} (loop ${l}
    (br_if ${e} ${down ? `(i32.lt_s (local.get $${v}) ${from})` : `(i32.ge_s (local.get $${v}) ${to})`})
    ${body}
    (local.set $${v} (${down ? 'i32.sub' : 'i32.add'} (local.get $${v}) (i32.const 1)))
    (br ${l})))`;
  };
  const p = (...names: string[]) => names.map((n) => `(param $${n} i32)`).join(' ');
  const zero = '(i32.const 0)', g = (n: string) => `(local.get $${n})`;
  return `(func (export "ssd.put") ${p('src', 'lds', 'dst', 'ldd', 'rows', 'cols')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('rows'), loop('j', zero, g('cols'), `(f32.store ${f('dst', 'i', 'ldd', 'j')} (f32.load ${f('src', 'i', 'lds', 'j')}))`))})
(func (export "ssd.decays") ${p('dt', 'ldt')} (param $A f64) ${p('q', 'a', 'din', 'dout')} (local $i i32) (local $run f64)
  ${loop('i', zero, g('q'), `(f64.store ${d('a', 'i')} (f64.mul ${ld32(dtAt('i'))} (local.get $A)))
    (local.set $run (f64.add (local.get $run) (f64.load ${d('a', 'i')})))
    (f64.store ${d('din', 'i')} (call $exp64 (local.get $run)))`)}
  (local.set $run (f64.const 0))
  ${loop('i', zero, g('q'), `(f64.store ${d('dout', 'i')} (f64.mul (call $exp64 (local.get $run)) ${ld32(dtAt('i'))}))
    (local.set $run (f64.add (local.get $run) (f64.load ${d('a', 'i')})))`, true)})
(func (export "ssd.mask") ${p('cb', 'ldcb', 'dt', 'ldt', 'a', 'q', 'm', 'ldm')} (local $i i32) (local $j i32) (local $seg f64)
  ${loop('i', zero, g('q'), `${loop('j', `(i32.add (local.get $i) (i32.const 1))`, g('q'), `(f32.store ${f('m', 'i', 'ldm', 'j')} (f32.const 0))`)}
    (local.set $seg (f64.const 0))
    ${loop('j', zero, `(i32.add (local.get $i) (i32.const 1))`, `(f32.store ${f('m', 'i', 'ldm', 'j')} (f32.demote_f64 (f64.mul (f64.mul (call $exp64 (local.get $seg)) ${ld32(f('cb', 'i', 'ldcb', 'j'))}) ${ld32(dtAt('j'))})))
    (local.set $seg (f64.add (local.get $seg) (f64.load ${d('a', 'j')})))`, true)}`)})
(func (export "ssd.out") ${p('y', 'ldy', 'r', 'ldr', 'din', 'x', 'ldx')} (param $D f64) ${p('q', 'P')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('q'), loop('j', zero, g('P'), `(f32.store ${f('y', 'i', 'ldy', 'j')} (f32.demote_f64 (f64.add (f64.add ${ld32(f('y', 'i', 'ldy', 'j'))}
      (f64.mul (f64.load ${d('din', 'i')}) ${ld32(f('r', 'i', 'ldr', 'j'))})) (f64.mul (local.get $D) ${ld32(f('x', 'i', 'ldx', 'j'))}))))`))})
(func (export "ssd.xw") ${p('x', 'ldx', 'dout', 'q', 'P', 'xw', 'ldw')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('P'), loop('j', zero, g('q'), `(f32.store ${f('xw', 'i', 'ldw', 'j')} (f32.demote_f64 (f64.mul (f64.load ${d('dout', 'j')}) ${ld32(f('x', 'j', 'ldx', 'i'))})))`))})
(func (export "ssd.state") (param $st i32) (param $total f64) ${p('r', 'ldr', 'P', 'N')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('P'), loop('j', zero, g('N'), `(f32.store ${f('st', 'i', 'N', 'j')} (f32.demote_f64 (f64.add (f64.mul (local.get $total) ${ld32(f('st', 'i', 'N', 'j'))}) ${ld32(f('r', 'i', 'ldr', 'j'))})))`))})`;
})();

/**
 * Prefill attention's steps around its two products (runtime/wasm/attention.ts drives them), the
 * same for every kernel: addresses are bytes, strides floats. As runtime/wasm/attention.ts' JS
 * glue: scores scaled and the softmax in f64, its weights stored in f32, the row sums kept in f64.
 *   attn.put      dst[i, j] = src[i, j]                         (rows × cols: appending K/V to the cache)
 *   attn.softmax  row i of the scores sees keys [0, first + i]: m = max_j sc[i, j]·scale;
 *                 p[i, j] = exp(sc[i, j]·scale − m) (0 past the row's keys); sums[i] = Σ_j p[i, j]
 *                 (in f64x2 over pairs of keys: exp64x2, the sum in two lanes added at the end)
 *   attn.out      y[i, d] = pv[i, d] / sums[i]                  (rows × Dh)
 */
const ATTN_GLUE = (() => {
  const f = (base: string, i: string, ld: string, j: string) => `(i32.add (local.get $${base}) (i32.shl (i32.add (i32.mul (local.get $${i}) (local.get $${ld})) (local.get $${j})) (i32.const 2)))`;
  const d = (base: string, i: string) => `(i32.add (local.get $${base}) (i32.shl (local.get $${i}) (i32.const 3)))`;
  let n = 0;
  const loop = (v: string, from: string, to: string, body: string) => {
    const [e, l] = [`$ae${n}_${v}`, `$al${n++}_${v}`];
    return `(local.set $${v} ${from})
  (block ${e} (loop ${l}
    (br_if ${e} (i32.ge_s (local.get $${v}) ${to}))
    ${body}
    (local.set $${v} (i32.add (local.get $${v}) (i32.const 1)))
    (br ${l})))`;
  };
  const p = (...names: string[]) => names.map((x) => `(param $${x} i32)`).join(' ');
  const zero = '(i32.const 0)', g = (x: string) => `(local.get $${x})`;
  const scaled = `(f64.mul (f64.promote_f32 (f32.load ${f('sc', 'i', 'ldsc', 'j')})) (local.get $scale))`;
  const scaled2 = `(f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero ${f('sc', 'i', 'ldsc', 'j')})) (f64x2.splat (local.get $scale)))`;
  // j from 0 while < to, by 2
  const step2 = (v: string, to: string, body: string) => {
    const [e, l] = [`$ae${n}_${v}`, `$al${n++}_${v}`];
    return `(local.set $${v} (i32.const 0))
  (block ${e} (loop ${l}
    (br_if ${e} (i32.ge_s (local.get $${v}) ${to}))
    ${body}
    (local.set $${v} (i32.add (local.get $${v}) (i32.const 2)))
    (br ${l})))`;
  };
  return `(func (export "attn.put") ${p('src', 'lds', 'dst', 'ldd', 'rows', 'cols')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('rows'), loop('j', zero, g('cols'), `(f32.store ${f('dst', 'i', 'ldd', 'j')} (f32.load ${f('src', 'i', 'lds', 'j')}))`))})
(func (export "attn.softmax") ${p('sc', 'ldsc', 'rows', 'keys', 'first')} (param $scale f64) ${p('pw', 'ldp', 'sums')} (local $i i32) (local $j i32) (local $nk i32) (local $n2 i32) (local $max f64) (local $sum f64) (local $e f64) (local $mx v128) (local $s2 v128) (local $e2 v128)
  ${loop('i', zero, g('rows'), `(local.set $nk (i32.add (i32.add (local.get $first) (local.get $i)) (i32.const 1)))
    (local.set $n2 (i32.and (local.get $nk) (i32.const -2)))
    (local.set $mx (f64x2.splat (f64.const -inf)))
    ${step2('j', g('n2'), `(local.set $mx (f64x2.max (local.get $mx) ${scaled2}))`)}
    (local.set $max (f64.max (f64x2.extract_lane 0 (local.get $mx)) (f64x2.extract_lane 1 (local.get $mx))))
    ${loop('j', g('n2'), g('nk'), `(local.set $max (f64.max (local.get $max) ${scaled}))`)}
    (local.set $s2 (f64x2.splat (f64.const 0)))
    ${step2('j', g('n2'), `(local.set $e2 (call $exp64x2 (f64x2.sub ${scaled2} (f64x2.splat (local.get $max)))))
    (local.set $s2 (f64x2.add (local.get $s2) (local.get $e2)))
    (v128.store64_lane 0 ${f('pw', 'i', 'ldp', 'j')} (f32x4.demote_f64x2_zero (local.get $e2)))`)}
    (local.set $sum (f64.add (f64x2.extract_lane 0 (local.get $s2)) (f64x2.extract_lane 1 (local.get $s2))))
    ${loop('j', g('n2'), g('nk'), `(local.set $e (call $exp64 (f64.sub ${scaled} (local.get $max))))
    (local.set $sum (f64.add (local.get $sum) (local.get $e)))
    (f32.store ${f('pw', 'i', 'ldp', 'j')} (f32.demote_f64 (local.get $e)))`)}
    ${loop('j', g('nk'), g('keys'), `(f32.store ${f('pw', 'i', 'ldp', 'j')} (f32.const 0))`)}
    (f64.store ${d('sums', 'i')} (local.get $sum))`)})
(func (export "attn.out") ${p('y', 'ldy', 'pv', 'ldpv', 'sums', 'rows', 'cols')} (local $i i32) (local $j i32)
  ${loop('i', zero, g('rows'), loop('j', zero, g('cols'), `(f32.store ${f('y', 'i', 'ldy', 'j')} (f32.demote_f64 (f64.div (f64.promote_f32 (f32.load ${f('pv', 'i', 'ldpv', 'j')})) (f64.load ${d('sums', 'i')}))))`))})`;
})();

/**
 * Math helpers. exp4: f32x4 e^x by x = n·ln2 + r (ln2 split in two, |r| ≤ ln2/2), a degree-7
 * polynomial for e^r and 2^n from the exponent bits, within ~1 ulp (inputs clamped to
 * [-87.3, 88], where the result is still normal). log4 (x ≥ 1 here): x = m·2^k with m in
 * [√½, √2), log m = 2·atanh(s) with s = (m-1)/(m+1). softplus4: x above 20, else log1p(e^x) as
 * log(1+e) corrected by (e - ((1+e) - 1))/(1+e). exp64: the f64 counterpart (degree 13), for the SSD
 * step's decay, which the reference computes in double. gelu4, gelu_tanh4: per lane in f64 as the
 * reference (its erf series; tanh from exp64).
 */
const MATH = `(func $exp4 (param $x v128) (result v128) (local $n v128) (local $r v128) (local $p v128)
  (local.set $x (f32x4.min (f32x4.max (local.get $x) ${splat(-87.3)}) ${splat(88)}))
  (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) ${splat(1.4426950408889634)})))
  (local.set $r (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) ${splat(0.693359375)})) (f32x4.mul (local.get $n) ${splat(-2.12194440e-4)})))
  (local.set $p ${splat(1 / 5040)})
  ${[1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1].map((c) => `(local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(c)}))`).join('\n  ')}
  (f32x4.mul (local.get $p) (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127)) (i32.const 23))))
(func $log4 (param $x v128) (result v128) (local $k v128) (local $m v128) (local $big v128) (local $f v128) (local $s v128) (local $z v128) (local $p v128) (local $kf v128)
  (local.set $k (i32x4.sub (i32x4.shr_u (local.get $x) (i32.const 23)) (v128.const i32x4 127 127 127 127)))
  (local.set $m (v128.or (v128.and (local.get $x) (v128.const i32x4 0x7fffff 0x7fffff 0x7fffff 0x7fffff)) (v128.const i32x4 0x3f800000 0x3f800000 0x3f800000 0x3f800000)))
  (local.set $big (f32x4.gt (local.get $m) ${splat(Math.SQRT2)}))
  (local.set $m (v128.bitselect (f32x4.mul (local.get $m) ${splat(0.5)}) (local.get $m) (local.get $big)))
  (local.set $k (i32x4.sub (local.get $k) (local.get $big)))
  (local.set $f (f32x4.sub (local.get $m) ${splat(1)}))
  (local.set $s (f32x4.div (local.get $f) (f32x4.add (local.get $f) ${splat(2)})))
  (local.set $z (f32x4.mul (local.get $s) (local.get $s)))
  (local.set $p ${splat(1 / 9)})
  ${[1 / 7, 1 / 5, 1 / 3].map((c) => `(local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $z)) ${splat(c)}))`).join('\n  ')}
  (local.set $p (f32x4.mul (f32x4.mul (f32x4.mul (local.get $s) (local.get $z)) (local.get $p)) ${splat(2)}))
  (local.set $kf (f32x4.convert_i32x4_s (local.get $k)))
  (f32x4.add (f32x4.mul (local.get $kf) ${splat(0.693359375)}) (f32x4.add (f32x4.add (f32x4.mul (local.get $s) ${splat(2)}) (local.get $p)) (f32x4.mul (local.get $kf) ${splat(-2.12194440e-4)}))))
(func $silu4 (param $x v128) (result v128)
  (f32x4.div (local.get $x) (f32x4.add ${splat(1)} (call $exp4 (f32x4.neg (local.get $x))))))
(func $softplus4 (param $x v128) (result v128) (local $e v128) (local $u v128)
  (local.set $e (call $exp4 (local.get $x)))
  (local.set $u (f32x4.add ${splat(1)} (local.get $e)))
  (v128.bitselect (local.get $x)
    (f32x4.add (call $log4 (local.get $u)) (f32x4.div (f32x4.sub (local.get $e) (f32x4.sub (local.get $u) ${splat(1)})) (local.get $u)))
    (f32x4.gt (local.get $x) ${splat(20)})))
(func $exp64 (param $x f64) (result f64) (local $n f64) (local $r f64) (local $p f64)
  (local.set $x (f64.min (f64.max (local.get $x) (f64.const -708)) (f64.const 709)))
  (local.set $n (f64.nearest (f64.mul (local.get $x) (f64.const 1.4426950408889634))))
  (local.set $r (f64.sub (f64.sub (local.get $x) (f64.mul (local.get $n) (f64.const 0.6931471803691238))) (f64.mul (local.get $n) (f64.const 1.9082149292705877e-10))))
  (local.set $p (f64.const ${1 / 6227020800}))
  ${[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => `(local.set $p (f64.add (f64.mul (local.get $p) (local.get $r)) (f64.const ${f64lit(1 / factorial(i))})))`).join('\n  ')}
  (f64.mul (local.get $p) (f64.reinterpret_i64 (i64.shl (i64.add (i64.trunc_sat_f64_s (local.get $n)) (i64.const 1023)) (i64.const 52)))))
(func $exp64x2 (param $x v128) (result v128) (local $n v128) (local $r v128) (local $p v128)
  (local.set $x (f64x2.min (f64x2.max (local.get $x) (f64x2.splat (f64.const -708))) (f64x2.splat (f64.const 709))))
  (local.set $n (f64x2.nearest (f64x2.mul (local.get $x) (f64x2.splat (f64.const 1.4426950408889634)))))
  (local.set $r (f64x2.sub (f64x2.sub (local.get $x) (f64x2.mul (local.get $n) (f64x2.splat (f64.const 0.6931471803691238)))) (f64x2.mul (local.get $n) (f64x2.splat (f64.const 1.9082149292705877e-10)))))
  (local.set $p (f64x2.splat (f64.const ${1 / 6227020800})))
  ${[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => `(local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $r)) (f64x2.splat (f64.const ${f64lit(1 / factorial(i))}))))`).join('\n  ')}
  (f64x2.mul (local.get $p) (i64x2.shl (i64x2.add (i64x2.extend_low_i32x4_s (i32x4.trunc_sat_f64x2_s_zero (local.get $n))) (v128.const i64x2 1023 1023)) (i32.const 52))))
(func $erf64 (param $z f64) (result f64) (local $a f64) (local $z2 f64) (local $term f64) (local $sum f64) (local $n f64) (local $r f64)
  (local.set $a (f64.abs (local.get $z)))
  (if (i32.eqz (f64.lt (local.get $a) (f64.const 6)))
    (then (return (if (result f64) (f64.ne (local.get $z) (local.get $z)) (then (local.get $z)) (else (f64.copysign (f64.const 1) (local.get $z)))))))
  (local.set $z2 (f64.mul (f64.const 2) (f64.mul (local.get $a) (local.get $a))))
  (local.set $term (local.get $a))
  (local.set $sum (local.get $a))
  (local.set $n (f64.const 1))
  (block $e (loop $l
    (br_if $e (i32.eqz (f64.gt (local.get $term) (f64.mul (local.get $sum) (f64.const 1e-17)))))
    (local.set $term (f64.mul (local.get $term) (f64.div (local.get $z2) (f64.add (f64.mul (f64.const 2) (local.get $n)) (f64.const 1)))))
    (local.set $sum (f64.add (local.get $sum) (local.get $term)))
    (local.set $n (f64.add (local.get $n) (f64.const 1)))
    (br $l)))
  (local.set $r (f64.mul (f64.mul (f64.const ${f64lit(2 / Math.sqrt(Math.PI))}) (call $exp64 (f64.neg (f64.mul (local.get $a) (local.get $a))))) (local.get $sum)))
  (if (result f64) (f64.eq (local.get $z) (f64.const 0)) (then (local.get $z)) (else (f64.copysign (local.get $r) (local.get $z)))))
(func $tanh64 (param $y f64) (result f64) (local $a f64)
  (local.set $a (f64.abs (local.get $y)))
  (if (f64.gt (local.get $a) (f64.const 20)) (then (return (f64.copysign (f64.const 1) (local.get $y)))))
  (f64.copysign (f64.sub (f64.const 1) (f64.div (f64.const 2) (f64.add (call $exp64 (f64.mul (f64.const 2) (local.get $a))) (f64.const 1)))) (local.get $y)))
(func $gelu64 (param $v f64) (result f32)
  (f32.demote_f64 (f64.mul (f64.mul (f64.const 0.5) (local.get $v)) (f64.add (f64.const 1) (call $erf64 (f64.mul (local.get $v) (f64.const ${f64lit(Math.SQRT1_2)})))))))
(func $gelu_tanh64 (param $v f64) (result f32)
  (f32.demote_f64 (f64.mul (f64.mul (f64.const 0.5) (local.get $v)) (f64.add (f64.const 1)
    (call $tanh64 (f64.mul (f64.const ${f64lit(Math.sqrt(2 / Math.PI))}) (f64.add (local.get $v) (f64.mul (f64.mul (f64.mul (f64.const 0.044715) (local.get $v)) (local.get $v)) (local.get $v)))))))))
${['gelu', 'gelu_tanh'].map((g) => `(func $${g}4 (param $x v128) (result v128)
  ${[0, 1, 2, 3].reduce((acc, l) => `(f32x4.replace_lane ${l} ${acc} (call $${g}64 (f64.promote_f32 (f32x4.extract_lane ${l} (local.get $x)))))`, '(local.get $x)')})`).join('\n')}`;

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}
