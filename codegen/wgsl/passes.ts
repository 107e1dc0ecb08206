// The pieces the WGSL families' passes are built from (codegen/wgsl/render.ts renders the families
// with them): the render context, a shader and its pass record, one-invocation-per-element passes,
// views read as rows of another width, operand lookups, and an epilogue stage's one spelling.

import { exprLeaves } from '../../runtime/expr.ts';
import type { BackwardFamily } from '../../runtime/families.ts';
import type { BackwardKernelOf, Entry, Epilogue, Kernel, View } from '../../runtime/program.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import type { Pass, RunCount } from '../../runtime/webgpu/shaders.ts';
import { type RotaryTable, rotaryOffset, rotaryWords } from '../../runtime/webgpu/rotary.ts';
import type { WgslSchedule } from './schedule.ts';
import { type Dtypes, Shader } from './shader.ts';

export const count = (rows: RunCount['rows'], times: number, per: number): RunCount => ({ rows, times, per });

/** Rows of the buffer behind a view, as WGSL and as a run count. */
export function rowsOf(entry: Entry, v: View): { wgsl: string; rows: RunCount['rows'] } {
  const r = entry.buffers[v.buf]!.rows;
  return { wgsl: r === 'T' ? 'nT()' : r === 'S' ? 'nS()' : '1u', rows: r };
}

export interface Ctx {
  readonly k: Kernel;
  readonly entry: Entry;
  readonly dtypes: Dtypes;
  readonly header: number;
  /** The blocks of the run's rotary table. */
  readonly rotary: readonly RotaryTable[];
  /** The kernel's schedule for the profile being rendered, and its workgroup size. */
  readonly sched: WgslSchedule;
  readonly wg: number;
  /** A product's passes for 8-bit activations: its input rows rounded into scratch0 first (quant.ts). */
  readonly a8?: boolean;
  /** The kernel's state is kept in bf16 (runtime/program.ts withSsmState): two values a word of the pool. */
  readonly bf16State?: boolean;
}


/** Whether kernel `k`'s state is one of `bf16` (program.ts bf16States); an odd d_state is RT178 (the SSD passes read two values a word). */
export function bf16State(k: Kernel, bf16: readonly number[]): boolean {
  if (k.state === undefined || !bf16.includes(k.state)) return false;
  const N = (k.sizes as { N?: number }).N ?? 0;
  if (N % 2) throw new RuntimeError('RT178', ['webgpu', `${k.name}: d_state ${N} is odd, and its shaders read a bf16 state two values a word`]);
  return true;
}

export function shader(c: Ctx): Shader {
  return new Shader(c.k, c.entry, c.dtypes);
}

export function pass(name: string, s: Shader, code: { head: string; body: string }, groups: RunCount, columns = 1, extra: Partial<Pass> = {}): Pass {
  return { name, ...code, bindings: [...s.bindings], ...(s.places.length ? { places: [...s.places] } : {}), groups, columns, ...extra };
}

/** One invocation per element of a [rows, width] result; `body(s)` is the statement for (r, j). */
export function elements(c: Ctx, name: string, rows: { wgsl: string; rows: RunCount['rows']; times?: number }, width: number, body: (s: Shader) => string): Pass {
  const s = shader(c);
  const text = body(s);
  const code = s.render('ELEMENTS', name, c.header, { wg: c.wg, rows: rows.wgsl, width, body: text });
  return pass(name, s, code, count(rows.rows, width * (rows.times ?? 1), c.wg));
}

/** Reads element (r, i) of a [rows, width] view taken as rows of `width` (a view of wider rows holds
 *  several: the product over the last dim of [T, heads, K]). */
export function flat(s: Shader, name: string, v: View, width: number): (r: string, i: string) => string {
  const op = s.operand(name);
  return v.width === width ? (r, i) => `${op}(${r}, ${i})` : (r, i) => `${op}((${r} * ${width}u + ${i}) / ${v.width}u, (${r} * ${width}u + ${i}) % ${v.width}u)`;
}

export function flatOut(s: Shader, v: View, width: number): (r: string, i: string, val: string) => string {
  const put = s.output(v, 'store');
  return v.width === width ? (r, i, val) => `${put}(${r}, ${i}, ${val})` : (r, i, val) => `${put}((${r} * ${width}u + ${i}) / ${v.width}u, (${r} * ${width}u + ${i}) % ${v.width}u, ${val})`;
}

export const view = (k: Kernel, name: string): View => {
  const o = k.inputs[name];
  if (!o || !('buf' in o)) fail(`${k.name}: operand ${name} is not an activation view`);
  return o;
};

export const weightName = (k: Kernel, name: string): string => {
  const o = k.inputs[name];
  if (!o || !('weight' in o)) fail(`${k.name}: operand ${name} is not a weight`);
  return o.weight;
};

/** An epilogue stage as WGSL: `fn NAME(r: u32, j: u32) -> f32`, column j of row r after the stage,
 *  reading its input's column c of row r as `prev(r, c)`, and the columns of its input it reads for
 *  column j (WGSL in j). The one spelling of each stage, for a kernel of its own (rope), an epilogue
 *  pass (each stage's row into scratch) and a fused matrix-vector pass (stages as nested calls). */
export function stage(s: Shader, c: Ctx, st: Epilogue, name: string, prev: (r: string, j: string) => string): { reads: string[] } {
  if (st.kind === 'map') {
    const offsets = [...new Set(exprLeaves(st.body).flatMap((l) => (l.op === 'x' ? [l.offset] : [])))].sort((a, b) => a - b);
    s.raw(name, `fn ${name}(r: u32, j: u32) -> f32 { return ${s.expr(st.body, (off) => prev('r', off ? `j + ${off}u` : 'j'), 'r', 'j')}; }`);
    return { reads: (offsets.length ? offsets : [0]).map((o) => (o ? `j + ${o}u` : 'j')) };
  }
  if (st.kind === 'rope') {
    // columns [col, col + heads·headDim) hold heads of headDim; the first rotaryDim of each rotate
    // by pairs (d, d + half) at the token's position; the rest pass through
    const half = st.rotaryDim / 2;
    if (half === 0) {
      s.raw(name, `fn ${name}(r: u32, j: u32) -> f32 { return ${prev('r', 'j')}; }`);
      return { reads: ['j'] };
    }
    // cos/sin of row r's angles from the run's rotary table (runtime/webgpu/rotary.ts), made on the
    // host; the header's last word is where the table starts
    const at = `${s.load('ints', 'HDR - 1u')} + r * ${rotaryWords(c.rotary)}u + ${rotaryOffset(c.rotary, st.rotaryDim, st.theta)}u + q`;
    const inside = `${st.col ? `j >= ${st.col}u && ` : ''}j < ${st.col + st.heads * st.headDim}u && (j - ${st.col}u) % ${st.headDim}u < ${st.rotaryDim}u`;
    s.raw(`${name}_partner`, `fn ${name}_partner(j: u32) -> u32 {
  if (!(${inside})) { return j; }
  return select(j - ${half}u, j + ${half}u, (j - ${st.col}u) % ${st.headDim}u < ${half}u);
}`);
    s.raw(name, `fn ${name}(r: u32, j: u32) -> f32 {
  if (!(${inside})) { return ${prev('r', 'j')}; }
  let d = (j - ${st.col}u) % ${st.headDim}u;
  let o = j - d;
  let q = d % ${half}u;
  let cs = bitcast<f32>(${s.load('ints', at)});
  let sn = bitcast<f32>(${s.load('ints', `${at} + ${half}u`)});
  let lo = ${prev('r', 'o + q')};
  let hi = ${prev('r', `o + q + ${half}u`)};
  return select(lo * cs - hi * sn, hi * cs + lo * sn, d >= ${half}u);
}`);
    return { reads: ['j', `${name}_partner(j)`] };
  }
  // conv_step: row r is sequence r's one token; channel j - col goes through the sequence's window
  // (taps - 1 values in the state slot), which moves on by the token: call it once per column
  const slot = s.state(st.state);
  const post = st.post ? s.expr(st.post, (off) => (off ? fail(`${c.k.name}: a conv_step post reads x[+${off}]`) : 'y'), 'r', 'c') : 'y';
  const w = s.weight(st.weight);
  const taps1 = st.taps - 1;
  const state = (i: string) => s.load('state', i);
  s.raw(name, `fn ${name}(r: u32, j: u32) -> f32 {
  let xv = ${prev('r', 'j')};
  if (j < ${st.col}u || j >= ${st.col + st.channels}u) { return xv; }
  let c = j - ${st.col}u;
  let sb = seqSlot(r) + ${slot} + c * ${taps1}u;
  var acc = ${st.bias ? `${s.weight(st.bias)}(c)` : '0.0'};
  for (var t = 0u; t < ${taps1}u; t++) { acc += ${w}(c * ${st.taps}u + t) * ${state('sb + t')}; }
  acc += ${w}(c * ${st.taps}u + ${taps1}u) * xv;
  for (var t = 0u; t + 1u < ${taps1}u; t++) { ${s.store('state', 'sb + t', state('sb + t + 1u'))}; }
  ${s.store('state', `sb + ${taps1 - 1}u`, 'xv')};
  let y = acc;
  return ${post};
}`);
  return { reads: ['j'] };
}

// ---- the train families' pieces (train.ts, train-seq.ts) ----------------------------------------

/** A train family's context: the kernel as `b`, typed by its family (and as `k` for the Shader). */
export type BCtx<F extends BackwardFamily> = Ctx & { readonly b: BackwardKernelOf<F> };
export type Rows = { readonly wgsl: string; readonly rows: RunCount['rows']; readonly times?: number };

export const T_ROWS: Rows = { wgsl: 'nT()', rows: 'T' };
export const ONE: Rows = { wgsl: '1u', rows: 'C' };

export function viewOf(c: BCtx<BackwardFamily>, name: string): View {
  const o = c.b.inputs[name];
  if (!o || !('buf' in o)) fail(`${c.b.name}: operand ${name} is not an activation view`);
  return o;
}

/** Operand `name` read as rows of `width` ((r, i) → WGSL); a weight or a constant row by its flat index. */
export function rd(s: Shader, c: BCtx<BackwardFamily>, name: string, width: number): (r: string, i: string) => string {
  const o = c.b.inputs[name] ?? fail(`${c.b.name} has no operand ${name}`);
  if ('buf' in o && c.entry.buffers[o.buf]!.rows !== 'C') return flat(s, name, o, width);
  const op = s.operand(name);
  return (_r, i) => `${op}(0u, ${i})`;
}

/** The statement storing `val` at (r, i) of output `name` taken as rows of `width`. */
export function wr(s: Shader, c: BCtx<BackwardFamily>, name: string, width: number): (r: string, i: string, val: string) => string {
  const v = c.b.outputs[name] ?? fail(`${c.b.name} has no output ${name}`);
  const put = s.output(v, `put_${name}`);
  return v.width === width ? (r, i, val) => `${put}(${r}, ${i}, ${val})`
    : (r, i, val) => `${put}((${r} * ${width}u + ${i}) / ${v.width}u, (${r} * ${width}u + ${i}) % ${v.width}u, ${val})`;
}

/** The rows of view `v` taken as rows of `width`. */
export function rowsAs(c: BCtx<BackwardFamily>, v: View, width: number): Rows {
  const r = rowsOf(c.entry, v), times = v.width / width;
  if (!Number.isInteger(times)) fail(`${c.b.name}: a view ${v.width} wide read as rows of ${width}`);
  return { wgsl: times === 1 ? r.wgsl : `(${r.wgsl} * ${times}u)`, rows: r.rows, times };
}

export const withScratch = (p: Pass, scratch: Pass['scratch']): Pass => ({ ...p, scratch });
export const ctxOf = (c: BCtx<BackwardFamily>): Ctx => c;


export function fail(msg: string): never {
  throw new Error(`archc wgsl: ${msg}`);
}
