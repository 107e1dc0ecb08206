// The WGSL text of one pass (`Shader`): the bindings it declares as it reads and writes operands
// through their accessors, weight readers for each stored or quantised format, helper functions, and
// expressions spelled by one table with an entry per `Expr` op (`wgslExpr`). render.ts builds each
// family's passes from it.

import Handlebars from 'handlebars';
import type { Entry, Expr, Kernel, Operand, View } from '../../runtime/program.ts';
import { CHUNK_FIELDS, SEQ_FIELDS, bindingName, type BindingKind } from '../../runtime/webgpu/shaders.ts';
import type { DType } from '../../runtime/tensor.ts';
import { QUANT_BITS, type QuantDType } from '../../runtime/quant.ts';
import * as T from './templates.ts';

const compile = (src: string) => Handlebars.compile(src, { strict: true, noEscape: true });
export const TEMPLATES = Object.fromEntries(Object.entries(T).map(([k, v]) => [k, compile(v)])) as Record<keyof typeof T, HandlebarsTemplateDelegate>;

/** A WGSL f32 literal for a finite value (exact: 9 significant digits round-trip an f32). */
export function lit(v: number): string {
  if (Number.isNaN(v)) return 'bitcast<f32>(0x7fc00000u)';
  if (!Number.isFinite(v)) return v > 0 ? 'bitcast<f32>(0x7f800000u)' : 'bitcast<f32>(0xff800000u)';
  const f = Math.fround(v);
  if (f === 0) return '0.0';
  const s = f.toPrecision(9);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}

/** Where an expression's leaves read from, as WGSL text. */
export interface Leaves {
  x(offset: number): string;
  in(name: string): string;
  w(name: string): string;
}

/** Each expression op's WGSL spelling, given the WGSL of its operands (`r`) and of its leaves: a
 *  new op is a type error here until it has one. */
const EXPRS: { readonly [O in Expr['op']]: (e: Expr & { readonly op: O }, r: (a: Expr) => string, leaf: Leaves) => string } = {
  x: (e, _, leaf) => leaf.x(e.offset),
  in: (e, _, leaf) => leaf.in(e.name),
  w: (e, _, leaf) => leaf.w(e.name),
  const: (e) => lit(e.value),
  add: (e, r) => `(${r(e.a)} + ${r(e.b)})`,
  mul: (e, r) => `(${r(e.a)} * ${r(e.b)})`,
  neg: (e, r) => `(-${r(e.a)})`,
  exp: (e, r) => `exp(${r(e.a)})`,
  // max(v, 0)², spelled inline (a prelude function would change every shader)
  relu2: (e, r) => `(max(${r(e.a)}, 0.0) * max(${r(e.a)}, 0.0))`,
  // the prelude's functions (templates.ts). softplus is torch's (v above 20, else log1p(exp(v))) as
  // max(v, 0) + log1p(x), x = exp(-|v|) in (0, 1], log1p by its atanh series (2·atanh(s), s = x / (2 + x)
  // <= 1/3, to s^13): relative-accurate where small (a slow head's dt), as log(1 + exp(v)) is not
  // (on SwiftShader 1.3e-3 off at v = -10, and 0 below -17, where the reference gives e^v)
  silu: (e, r) => `silu(${r(e.a)})`,
  sigmoid: (e, r) => `(1.0 / (1.0 + exp(-(${r(e.a)}))))`,
  softplus: (e, r) => `softplus(${r(e.a)})`,
  gelu: (e, r) => `gelu(${r(e.a)})`,
  gelu_tanh: (e, r) => `gelu_tanh(${r(e.a)})`,
  clamp: (e, r) => {
    let v = r(e.a);
    if (Number.isFinite(e.min)) v = `max(${v}, ${lit(e.min)})`;
    if (Number.isFinite(e.max)) v = `min(${v}, ${lit(e.max)})`;
    return v;
  },
};

/** An Expr as a WGSL f32 expression. */
export function wgslExpr(e: Expr, leaf: Leaves): string {
  const spell = EXPRS[e.op] as (e: Expr, r: (a: Expr) => string, leaf: Leaves) => string;
  return spell(e, (a) => wgslExpr(a, leaf), leaf);
}

/** The weights a program knows and their dtypes (checkpoint and derived); a product's or
 *  embedding's weight as q8/q4 in the passes rendered for that format. */
export type Dtypes = ReadonlyMap<string, { dtype: DType | QuantDType; length: number }>;

/**
 * Readers of a q8/q4 weight of `length` elements (runtime/quant.ts), as WGSL: one buffer holding
 * the codes (q8 four a u32, element i at bits 8(i%4); q4 eight a u32, element i at bits 4(i%8),
 * stored as code + 8), then from word C = length·bits/32 the f16 scales two a u32 (scale g in the low
 * half when g is even). A group is 32 consecutive elements along K and K is a multiple of 32, so
 * element i's scale is number i / 32 of the row-major [N, K/32] scales. value = code · scale in f32,
 * exact as the reference's (a code has 8 bits, a scale 11). `at` is 1, 2 or 4 elements from an
 * index that is a multiple of it: within one word and one group.
 */
function quantReader(dtype: QuantDType, length: number, word: (i: string) => string, at: 1 | 2 | 4): string {
  const C = (length * QUANT_BITS[dtype]) / 32;
  const scale = `unpack2x16float(${word(`${C}u + (i >> 6u)`)})[(i >> 5u) & 1u]`;
  const b = QUANT_BITS[dtype];
  const per = 32 / b;
  // the bit offset of element i in its word, and code j after it
  const sh = `(i & ${per - 1}u) * ${b}u`;
  const code = (j: number) => (dtype === 'q8'
    ? `f32(extractBits(p, sh + ${j * b}u, 8u))`
    : `f32(i32(extractBits(p, sh + ${j * b}u, 4u)) - 8)`);
  const p = dtype === 'q8' ? `bitcast<i32>(${word(`i >> ${Math.log2(per)}u`)})` : word(`i >> ${Math.log2(per)}u`);
  const vec = at === 1 ? code(0) : `vec${at}<f32>(${Array.from({ length: at }, (_, j) => code(j)).join(', ')})`;
  return `let p = ${p}; let sh = ${sh}; return ${vec} * ${scale};`;
}

/** One shader being put together: its bindings, the values it reads by `place(i)` and the helper
 *  functions its body calls. */
export class Shader {
  readonly bindings: BindingKind[] = ['arena', 'ints'];
  /** What `place(i)` reads (runtime/webgpu/shaders.ts): where this kernel's buffers and states sit,
   *  so that its text is the same for every layer of its shape. */
  readonly places: number[] = [];
  private readonly placed = new Map<string, number>();
  private readonly helpers: string[] = [];
  private readonly done = new Set<string>();

  constructor(private readonly k: Kernel, private readonly entry: Entry, private readonly dtypes: Dtypes) {}

  private bind(kind: BindingKind): number {
    let i = this.bindings.indexOf(kind);
    if (i < 0) { this.bindings.push(kind); i = this.bindings.length - 1; }
    return i;
  }

  /** Element `i` of buffer `kind`, through its accessor (runtime/webgpu/shaders.ts). */
  load(kind: BindingKind, i: string): string {
    return `${bindingName(kind, this.bind(kind))}_get(${i})`;
  }

  /** The statement storing `v` at element `i` of buffer `kind`. */
  store(kind: BindingKind, i: string, v: string): string {
    return `${bindingName(kind, this.bind(kind))}_set(${i}, ${v})`;
  }

  private helper(name: string, make: () => string): string {
    if (!this.done.has(name)) { this.done.add(name); this.helpers.push(make()); }
    return name;
  }

  /** WGSL reading `value` from the pass's places (one slot per `key`: the same key, the same slot). */
  private place(key: string, value: number): string {
    let i = this.placed.get(key);
    if (i === undefined) { this.placed.set(key, i = this.places.length); this.places.push(value); }
    return `place(${i}u)`;
  }

  /** Binds the state pool; WGSL for where state `n` (default: the kernel's) starts in a slot. */
  state(n = this.k.state): string {
    this.bind('state');
    if (n === undefined) fail(`${this.k.name} reaches a state but has none`);
    return `stateAt(${this.place(`state ${n}`, n)})`;
  }

  scratch(i: 0 | 1 | 2): 'scratch0' | 'scratch1' | 'scratch2' {
    this.bind(`scratch${i}`);
    return `scratch${i}`;
  }

  /** A reader `wN(i) -> f32` of weight `name` (flat index). */
  weight(name: string): string {
    const b = this.bind(`w:${name}`);
    const t = this.dtypes.get(name) ?? fail(`${this.k.name} reads weight ${name}, which the program does not have`);
    const word = (i: string) => this.load(`w:${name}`, i);
    return this.helper(`w${b}`, () =>
      t.dtype === 'q8' || t.dtype === 'q4' ? `fn w${b}(i: u32) -> f32 { ${quantReader(t.dtype, t.length, word, 1)} }`
        : t.dtype === 'f32' ? `fn w${b}(i: u32) -> f32 { return bitcast<f32>(${word('i')}); }`
        : t.dtype === 'bf16' ? `fn w${b}(i: u32) -> f32 { let p = ${word('i >> 1u')}; return bitcast<f32>(select(p << 16u, p & 0xffff0000u, (i & 1u) == 1u)); }`
          : t.dtype === 'f16' ? `fn w${b}(i: u32) -> f32 { return unpack2x16float(${word('i >> 1u')})[i & 1u]; }`
            : fail(`weight ${name} of dtype ${t.dtype} cannot be read as floats`));
  }

  /** A reader `wpN(i) -> vec2<f32>` of weight `name`'s elements i and i + 1 (i even): one u32 of a
   *  bf16 or f16 pair widened at once. */
  weightPair(name: string): string {
    const b = this.bind(`w:${name}`);
    const t = this.dtypes.get(name)!;
    const word = (i: string) => this.load(`w:${name}`, i);
    return this.helper(`wp${b}`, () =>
      t.dtype === 'q8' || t.dtype === 'q4' ? `fn wp${b}(i: u32) -> vec2<f32> { ${quantReader(t.dtype, t.length, word, 2)} }`
        : t.dtype === 'f32' ? `fn wp${b}(i: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(${word('i')}), bitcast<f32>(${word('i + 1u')})); }`
        : t.dtype === 'bf16' ? `fn wp${b}(i: u32) -> vec2<f32> { let p = ${word('i >> 1u')}; return vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u)); }`
          : t.dtype === 'f16' ? `fn wp${b}(i: u32) -> vec2<f32> { return unpack2x16float(${word('i >> 1u')}); }`
            : fail(`weight ${name} of dtype ${t.dtype} cannot be read as floats`));
  }

  /** Whether weight `name` is read as q8/q4 codes in this rendering. */
  quantised(name: string): boolean {
    const d = this.dtypes.get(name)?.dtype;
    return d === 'q8' || d === 'q4';
  }

  /** A reader `wqN(i) -> vec4<f32>` of a q8/q4 weight's elements i..i+3 (i a multiple of 4): one
   *  word of codes and one scale. */
  weightQuad(name: string): string {
    const b = this.bind(`w:${name}`);
    const t = this.dtypes.get(name)!;
    if (t.dtype !== 'q8' && t.dtype !== 'q4') fail(`${this.k.name}: weight ${name} of dtype ${t.dtype} has no four-code reader`);
    const dtype = t.dtype;
    return this.helper(`wq${b}`, () => `fn wq${b}(i: u32) -> vec4<f32> { ${quantReader(dtype, t.length, (i) => this.load(`w:${name}`, i), 4)} }`);
  }

  weightLength(name: string): number {
    return this.dtypes.get(name)!.length;
  }

  /** WGSL for the first float of row r of the view's buffer. */
  private rowBase(v: View): (r: string) => string {
    const b = this.entry.buffers[v.buf] ?? fail(`${this.k.name} reads buffer ${v.buf}, which the entry does not have`);
    const { arena } = this.entry;
    const offset = this.place(`buffer ${v.buf}`, b.offset), perT = () => this.place('arena T', arena.T);
    // a train entry keeps its constant rows (weight gradients) in a region of their own, after the sequences'
    const base = b.rows === 'T' ? `${offset} * nT()`
      : b.rows === 'C' && arena.C !== undefined ? `${perT()} * nT() + ${this.place('arena S', arena.S)} * nS() + ${offset}` : `${perT()} * nT() + ${offset} * nS()`;
    return (r) => `${base} + (${r}) * ${b.width}u + ${v.col}u`;
  }

  isConstRows(v: View): boolean {
    return this.entry.buffers[v.buf]!.rows === 'C';
  }

  /** `op_NAME(r, c) -> f32`: operand `name` of the kernel at row r, column c, its `pre` applied
   *  (a constant row broadcasts; a weight reads its flat element c). */
  operand(name: string): string {
    const o: Operand = this.k.inputs[name] ?? fail(`${this.k.name} has no operand ${name}`);
    return this.helper(`op_${name}`, () => {
      let raw: (c: string) => string;
      if ('weight' in o) {
        const w = this.weight(o.weight);
        raw = (c) => `${w}(${c})`;
      } else if ('buf' in o) {
        const base = this.rowBase(o);
        raw = this.isConstRows(o) ? (c) => this.load('arena', `${base('0u')} + (${c}) % ${o.width}u`) : (c) => this.load('arena', `${base('r')} + ${c}`);
      } else fail(`${this.k.name} reads the integer input ${o.input} as floats`);
      const pre = this.k.pre?.[name];
      const body = pre ? this.expr(pre, (off) => raw(off ? `c + ${off}u` : 'c')) : raw('c');
      return `fn op_${name}(r: u32, c: u32) -> f32 { return ${body}; }`;
    });
  }

  /** An expression at row `r`, column `j`, with `x` leaves read by `x(offset)`. */
  expr(e: Expr, x: (offset: number) => string, r = 'r', j = 'c'): string {
    return wgslExpr(e, {
      x,
      in: (n) => `${this.operand(n)}(${r}, ${j})`,
      w: (n) => `${this.weight(n)}((${j}) % ${this.weightLength(n)}u)`,
    });
  }

  /** `NAME(r, c, v)` storing into view v; `get_NAME(r, c)` reading it back. */
  output(v: View, name = 'put'): string {
    const base = this.rowBase(v);
    this.helper(`get_${name}`, () => `fn get_${name}(r: u32, c: u32) -> f32 { return ${this.load('arena', `${base('r')} + c`)}; }`);
    return this.helper(name, () => `fn ${name}(r: u32, c: u32, v: f32) { ${this.store('arena', `${base('r')} + c`, 'v')}; }`);
  }

  /** Adds a WGSL helper function verbatim (once per name). */
  raw(name: string, text: string): string {
    return this.helper(name, () => text);
  }

  /** The pass's shader but its binding region (runtime/webgpu/shaders.ts `shaderCode`). */
  render(template: keyof typeof T, pass: string, header: number, fields: Record<string, unknown>): { head: string; body: string } {
    const prelude = TEMPLATES.PRELUDE({ header, seqFields: SEQ_FIELDS, chunkFields: CHUNK_FIELDS, helpers: this.helpers.join('\n') });
    return { head: `// archc ${this.k.family} (${pass})`, body: TEMPLATES[template]({ ...fields, prelude }) };
  }
}

function fail(msg: string): never {
  throw new Error(`archc wgsl: ${msg}`);
}
