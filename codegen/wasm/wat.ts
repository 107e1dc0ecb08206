// WebAssembly text for the `wasm` program module's rendered functions (codegen/wasm/program.ts uses
// it): literals, one function being rendered (`Fn`: its locals, labels, loops and the kernel's
// arguments), expressions (one spelling per op), and the passes several families share: a map over
// rows, a row norm, RoPE. Numerics as runtime/cpu/: expressions in f32x4, every step rounded to f32;
// norms and RoPE in f64 where the reference sums or rotates in double.

import { exprLeaves } from '../../runtime/expr.ts';
import type { Expr, Kernel, Program, View } from '../../runtime/program.ts';
import { isView } from '../../runtime/program.ts';
import { type Arg, FIXED, scratchPlan, unitsOf } from '../../runtime/wasm/program.ts';
import { READ_AHEAD_FLAG } from '../../runtime/wasm/layout.ts';

/** Thrown where a kernel has something this renderer does not handle: runtime/wasm/plan.ts places
 *  such kernels on the reference families, so one met here is a compiler bug (renderKernel says so). */
export class Unsupported extends Error {}
export function unsupported(why: string): never {
  throw new Unsupported(why);
}

export const i32 = (n: number) => `(i32.const ${n | 0})`;
export const get = (n: string) => `(local.get $${n})`;
export const addI = (a: string, b: string | number) => (b === 0 ? a : `(i32.add ${a} ${typeof b === 'number' ? i32(b) : b})`);
export const mulI = (a: string, b: number) => (b === 1 ? a : `(i32.mul ${a} ${i32(b)})`);

/** A byte of each of `lines` cache lines `offset` bytes past `at`, loaded and dropped: a read-ahead (runtime/wasm/layout.ts). */
export const touchLines = (at: string, offset: number, lines: number): string => Array.from({ length: lines }, (_, i) => `(drop (i32.load8_u offset=${offset + 64 * i} ${at}))`).join(' ');
/** `code` where the memory's read-ahead flag is set (runtime/wasm/layout.ts READ_AHEAD_FLAG; `low`: its
 *  address as the module's loads take one, codegen/wasm/addr.ts Addr.low). */
export const ifReadAhead = (low: (a: string) => string, code: string): string => `(if (i32.load ${low(`(i32.const ${READ_AHEAD_FLAG})`)}) (then ${code}))`;
/** touchLines, all at once, where local `k` is a multiple of `every` (a power of two) and the read-ahead flag is set. */
export const touchLinesEvery = (k: string, every: number, at: string, offset: number, lines: number, low: (a: string) => string): string =>
  `(if (i32.eqz (i32.and ${get(k)} (i32.const ${every - 1}))) (then ${ifReadAhead(low, touchLines(at, offset, lines))}))`;

/** An f32 literal of Math.fround(v). */
export function f32lit(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const f = Math.fround(v);
  return Object.is(f, -0) ? '-0' : String(f);
}
export const f64lit = (v: number) => (Object.is(v, -0) ? '-0' : String(v));
export const splat = (v: number) => `(f32x4.splat (f32.const ${f32lit(v)}))`;

/** Where a row of floats starts: a byte address expression for row `r`. */
export type RowAt = (r: string) => string;

/** One function being rendered: its locals, labels and the kernel's arguments. */
export class Fn {
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
  ids(input: 'tokens' | 'positions'): string { return this.argIndex((a) => a.kind === 'ids' && a.input === input, input); }

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

  /** The rows [from, to) of `rows` this call computes: its units [u0, u1) where a kernel splits by
   *  rows (runtime/wasm/program.ts unitsOf), else all of them. */
  span(rows: string): [string, string] {
    if (unitsOf(this.k) !== 'row') return [i32(0), rows];
    return [get('u0'), `(select ${get('u1')} ${rows} (i32.lt_s ${get('u1')} ${rows}))`];
  }

  /** `v` over the rows of `rows` this call computes (`span`). */
  rowLoop(v: string, rows: string, body: string): string {
    return this.loop(v, ...this.span(rows), body);
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

/** What an operation's spelling sees: the function, where leaves read, lanes (4, or 1 in lane 0),
 *  the row width, `x`'s column shift, and its operands spelled in the same place. */
interface At {
  readonly f: Fn;
  readonly env: Leaves;
  readonly V: 4 | 1;
  readonly width: number;
  readonly xOff: number;
  /** A float at byte `addr` + 4·off (V = 4: four of them). */
  load(addr: string, off: number): string;
  /** An operand expression spelled here. */
  sub(e: Expr): string;
}

type ExprOf<K extends Expr['op']> = Expr & { readonly op: K };

/** Every expression op's wasm spelling as an f32x4 value over columns j..j+V-1: one entry per op, so
 *  an op without one is a type error. */
const SPELLING: { readonly [K in Expr['op']]: (e: ExprOf<K>, at: At) => string } = {
  x: (e, at) => at.load(addI(at.env.x ?? unsupported('x'), COL), e.offset + at.xOff),
  in: (e, { f, V, width, load }) => {
    const o = f.k.inputs[e.name] ?? unsupported(`operand ${e.name}`);
    if ('weight' in o) return expr(f, { op: 'w', name: o.weight }, {}, V, width);
    if (!isView(o)) return unsupported('an integer input in an expression');
    const pre = f.k.pre?.[e.name];
    // the operand read through its `pre` expression, its `x` reading the operand itself
    return pre ? expr(f, pre, { x: get(inLocal(e.name)) }, V, width) : load(addI(get(inLocal(e.name)), COL), 0);
  },
  w: (e, { f, width, load }) => {
    const n = f.weightLength(e.name);
    const at = n >= width ? COL : `(i32.shl (i32.rem_u ${get('j')} ${i32(n)}) ${i32(2)})`;
    return load(addI(f.weight(e.name), at), 0);
  },
  const: (e) => splat(e.value),
  silu: (e, at) => `(call $silu4 ${at.sub(e.a)})`,
  // 1 / (1 + e^−x), inline (x appears once): no helper in the module's fixed math
  sigmoid: (e, at) => `(f32x4.div ${splat(1)} (f32x4.add ${splat(1)} (call $exp4 (f32x4.neg ${at.sub(e.a)}))))`,
  softplus: (e, at) => `(call $softplus4 ${at.sub(e.a)})`,
  exp: (e, at) => `(call $exp4 ${at.sub(e.a)})`,
  gelu: (e, at) => `(call $gelu4 ${at.sub(e.a)})`,
  gelu_tanh: (e, at) => `(call $gelu_tanh4 ${at.sub(e.a)})`,
  // max(v, 0)², its operand spelled twice (no local to hold it; usually a load of the product's result)
  relu2: (e, at) => { const r = `(f32x4.max ${at.sub(e.a)} ${splat(0)})`; return `(f32x4.mul ${r} ${r})`; },
  neg: (e, at) => `(f32x4.neg ${at.sub(e.a)})`,
  add: (e, at) => `(f32x4.add ${at.sub(e.a)} ${at.sub(e.b)})`,
  mul: (e, at) => `(f32x4.mul ${at.sub(e.a)} ${at.sub(e.b)})`,
  clamp: (e, at) => `(f32x4.min (f32x4.max ${at.sub(e.a)} ${splat(e.min)}) ${splat(e.max)})`,
};

/** Byte offset of column $j. */
const COL = `(i32.shl ${get('j')} ${i32(2)})`;
/** The local holding the address of an operand's current row. */
const inLocal = (name: string) => `in_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;

/** An expression as an f32x4 value over columns j..j+V-1 (V = 4, or 1 with the value in lane 0). */
export function expr(f: Fn, e: Expr, env: Leaves, V: 4 | 1, width: number, xOff = 0): string {
  const at: At = {
    f, env, V, width, xOff,
    load: (addr, off) => (V === 4 ? `(v128.load offset=${off * 4} ${addr})` : `(f32x4.splat (f32.load offset=${off * 4} ${addr}))`),
    sub: (a) => expr(f, a, env, V, width, xOff),
  };
  return (SPELLING[e.op] as (e: Expr, at: At) => string)(e, at);
}

/** The operands an expression reads (through `in` leaves, and the leaves of their `pre`). */
function operandsOf(k: Kernel, e: Expr, out = new Set<string>()): Set<string> {
  for (const l of exprLeaves(e)) {
    if (l.op !== 'in' || out.has(l.name)) continue;
    const o = k.inputs[l.name];
    if (!o || !isView(o)) continue;
    out.add(l.name);
    const pre = k.pre?.[l.name];
    if (pre) operandsOf(k, pre, out);
  }
  return out;
}

/** Does every `w:` leaf allow 4 columns at a time (a length that is a multiple of 4, or covers the width)? */
function vectorizable(f: Fn, e: Expr, width: number): boolean {
  return exprLeaves(e).every((l) => {
    if (l.op === 'w') { const n = f.weightLength(l.name); return n >= width || n % 4 === 0; }
    if (l.op !== 'in') return true;
    const o = f.k.inputs[l.name];
    if (o && 'weight' in o) return vectorizable(f, { op: 'w', name: o.weight }, width);
    const pre = f.k.pre?.[l.name];
    return pre ? vectorizable(f, pre, width) : true;
  });
}

/**
 * out[r, j] = e(r, j) for rows [0, rows), columns `cols` (else [0, width)): `x` reads row r of `x` (if given),
 * `in` leaves row `srcRow(r)` of their operand (a single-row buffer broadcasts).
 */
export function mapPass(f: Fn, e: Expr, width: number, rows: string, dst: RowAt, x?: RowAt, srcRow: (r: string) => string = (r) => r,
  cols: [string, string] = [i32(0), i32(width)]): string {
  const r = f.fresh('r'), xr = f.fresh('xr'), dr = f.fresh('dr');
  f.local('j');
  const sets: string[] = [];
  for (const name of operandsOf(f.k, e)) {
    const v = f.k.inputs[name] as View;
    const local = f.local(inLocal(name));
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
  (br_if ${ve} (i32.gt_s ${addI(get('j'), 4)} ${cols[1]}))
  (v128.store ${at} ${expr(f, e, env, 4, width)})
  (local.set $j ${addI(get('j'), 4)})
  (br ${vl})))`
    : '';
  const body = `${sets.join('\n')}
(local.set $j ${cols[0]})
${vec}
(block ${se} (loop ${sl}
  (br_if ${se} (i32.ge_s ${get('j')} ${cols[1]}))
  (f32.store ${at} (f32x4.extract_lane 0 ${expr(f, e, env, 1, width)}))
  (local.set $j ${addI(get('j'), 1)})
  (br ${sl})))`;
  return f.rowLoop(r, rows, body);
}

// ---- norms ------------------------------------------------------------------------------------

/** A row norm in f64, as runtime/cpu/norm.ts: src row → dst row (may be the same), D floats in
 *  groups of `gs`; rms: w · f32(h · inv); layer: f32((h − mean) · inv · w + b). */
export function normPass(f: Fn, kind: 'rms' | 'layer', rows: string, src: RowAt, dst: RowAt, D: number, gs: number, w: string, b: string | null, eps: number): string {
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
${gs % 4 ? f.loop(i, i32(0), i32(gs), `(f32.store ${at(get(d), gi)} (f32.mul (f32.load ${at(w, gi)}) (f32.demote_f64 (f64.mul ${ld(get(s), gi)} ${get(inv)}))))`)
    : f.loop(i, i32(0), i32(gs), rmsScale4(f, at(get(s), gi), at(get(d), gi), at(w, gi), get(inv)), 4)}`, gs);
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
  return f.rowLoop(r, rows, `(local.set $${s} ${src(get(r))})\n(local.set $${d} ${dst(get(r))})\n${body}`);
}

/** Four columns of an RMS norm's output, w · f32(h · inv): the products in f64x2 and each rounded
 *  to f32, as the scalar loop (the same values). */
function rmsScale4(f: Fn, src: string, dst: string, w: string, inv: string): string {
  const h = f.fresh('h4', 'v128'), iv = `(f64x2.splat ${inv})`;
  const half = (e: string) => `(f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 ${e}) ${iv}))`;
  const high = `(i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${get(h)} ${get(h)})`;
  return `(local.set $${h} (v128.load ${src}))
(v128.store ${dst} (f32x4.mul (v128.load ${w}) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 ${half(get(h))} ${half(high)})))`;
}

// ---- epilogue stages --------------------------------------------------------------------------

/** RoPE on columns [col, col + heads·Dh) of each row: src → dst (the same row for in place). */
export function ropePass(f: Fn, rows: string, src: RowAt, dst: RowAt, col: number, heads: number, Dh: number, R: number, table: string, passThrough: boolean): string {
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
  return f.rowLoop(r, rows, `(local.set $${s} ${src(get(r))})
(local.set $${d} ${dst(get(r))})
(local.set $${c} ${addI(table, `(i32.shl ${mulI(get(r), half)} ${i32(3)})`)})
(local.set $${sn} ${addI(table, `(i32.shl ${mulI(addI(get('T'), get(r)), half)} ${i32(3)})`)})
${f.loop(h, i32(0), i32(heads), `${rot}\n${pass}`)}`);
}
