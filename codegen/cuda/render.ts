// Kernel IR -> CUDA C++: one self-contained `.cu` per kernel, from one small handlebars template per
// family (templates/). The renderer only gathers fields: sizes and tiles become compile-time
// constants, operands become reader functions (their `pre` expression applied), fused expressions
// become C++ expressions, epilogue stages become code blocks from their own templates. Activations
// are f32 in the arena; matrices bf16 with f32 accumulation (runtime/cuda/abi.ts), or q8/q4 codes
// with f16 scales: a product or embedding renders once per format its matrix may take. Nothing in a
// source names its kernel or where its memory is (views and states are arguments), so the kernels
// of every layer of one kind render to one source.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { InternalError } from '../../dsl/diagnostics.ts';
import { exprText, mapExpr } from '../../runtime/expr.ts';
import { ARGS_STATES, ARGS_VIEWS, type MatrixFormat, type SourceFormat, kernelStates, kernelViews, kernelWeights, matrixFormat, type WeightSlot } from '../../runtime/cuda/abi.ts';
import { ACT_ZERO_BITS } from '../../runtime/act-quant.ts';
import { QUANT_BITS } from '../../runtime/quant.ts';
import { type Entry, type Epilogue, type Expr, type Kernel, type Program, type View, ofFamily } from '../../runtime/program.ts';
import { CUDA_TARGET, type CudaSchedule, cudaSchedule, productOffsets } from './schedule.ts';
import { gemvVector } from './gemv.ts';

// beside this file, or (from the CLI's bundle in dist/) in the sources beside dist/
const HERE = dirname(fileURLToPath(import.meta.url));
const TEMPLATES = [join(HERE, 'templates'), join(HERE, '..', 'codegen', 'cuda', 'templates')].find((d) => existsSync(d)) ?? join(HERE, 'templates');
const hbs = Handlebars.create();
const compiled = new Map<string, HandlebarsTemplateDelegate>();
function template(name: string): HandlebarsTemplateDelegate {
  let t = compiled.get(name);
  if (!t) {
    t = hbs.compile(readFileSync(join(TEMPLATES, `${name}.cu.hbs`), 'utf8'), { strict: true, noEscape: true });
    compiled.set(name, t);
  }
  return t;
}
hbs.registerPartial('prelude', (ctx: unknown) => template('prelude')(ctx));
hbs.registerPartial('quant', (ctx: unknown) => template('quant')(ctx));
hbs.registerPartial('act-round', (ctx: unknown) => template('act-round')(ctx));
hbs.registerPartial('gemv', (ctx: unknown) => template('gemv')(ctx));
hbs.registerPartial('seq-tile', (ctx: unknown) => template('seq-tile')(ctx));
hbs.registerPartial('mma', (ctx: unknown) => template('mma')(ctx));

export interface RenderedKernel {
  readonly source: string;
  /** The weights the kernel reads, by slot. */
  readonly weights: readonly WeightSlot[];
  /** Its schedule: threads, tiles and the launch grid. */
  readonly schedule: CudaSchedule;
}

/** A float literal C++ reads back exactly (f32). */
export function floatLit(v: number): string {
  if (v === Infinity) return 'INFINITY';
  if (v === -Infinity) return '(-INFINITY)';
  if (Number.isNaN(v)) return 'NAN';
  const f = Math.fround(v);
  const s = Number.isInteger(f) && Math.abs(f) < 1e15 ? `${f}.0` : f.toPrecision(9);
  return `${s}f`;
}

/** How an expression's leaves read, where it is evaluated. */
interface Leaves {
  x(offset: number): string;
  /** Activation operand `name` at the current row and column. */
  in(name: string): string;
  /** The column a weight leaf reads at (mod its length). */
  readonly col: string;
}

class Renderer {
  readonly weights: WeightSlot[];
  private readonly slot: Map<string, number>;
  private readonly view: Map<string, number>;
  private readonly states: number[];
  /** The kernel's CUDA schedule (threads, tiles, launch grid). */
  readonly sched: CudaSchedule;
  /** The matrix's format, and whether the product rounds its input to 8 bits (a `q8a8` / `q4a8` source). */
  readonly format: MatrixFormat;
  readonly a8: boolean;

  constructor(readonly program: Program, readonly entry: Entry, readonly k: Kernel, source: SourceFormat) {
    this.sched = cudaSchedule(k, CUDA_TARGET);
    this.format = matrixFormat(source);
    this.a8 = source !== this.format;
    this.weights = kernelWeights(k, this.format);
    this.slot = new Map(this.weights.map((w, i) => [w.name, i]));
    const views = kernelViews(k);
    this.view = new Map(views.map((v, i) => [v.key, i]));
    this.states = kernelStates(k);
    if (views.length > ARGS_VIEWS || this.states.length > ARGS_STATES) this.fail(`has ${views.length} views and ${this.states.length} states; ArchcArgs holds ${ARGS_VIEWS} and ${ARGS_STATES}`);
  }

  /** An expression as a comment shows it: weights by slot, not by name. */
  text(e: Expr): string {
    return exprText(mapExpr(e, (l) => (l.op === 'w' ? { op: 'w', name: `slot ${this.slot.get(l.name)}` } : l)));
  }

  fail(msg: string): never {
    throw new InternalError(`CUDA codegen: kernel ${this.k.name} (${this.k.family}): ${msg}`);
  }

  weightLen(name: string): number {
    const w = this.program.weights.find((x) => x.name === name) ?? this.program.derived.find((x) => x.name === name) ?? this.fail(`reads weight ${name}, which the program lacks`);
    return w.shape.reduce((a, b) => a * b, 1);
  }

  wf(name: string, col: string): string {
    const s = this.slot.get(name) ?? this.fail(`weight ${name} has no slot`);
    return `archc_wf(a, ${s}, ${this.weightLen(name)}LL, ${col})`;
  }

  expr(e: Expr, l: Leaves): string {
    const r = (x: Expr) => this.expr(x, l);
    switch (e.op) {
      case 'x': return l.x(e.offset);
      case 'in': return l.in(e.name);
      case 'w': return this.wf(e.name, l.col);
      case 'const': return floatLit(e.value);
      case 'silu': case 'sigmoid': case 'softplus': case 'gelu': case 'gelu_tanh': return `archc_${e.op}(${r(e.a)})`;
      case 'exp': return `expf(${r(e.a)})`;
      case 'relu2': return `(fmaxf(${r(e.a)}, 0.0f) * fmaxf(${r(e.a)}, 0.0f))`;
      case 'neg': return `(-${r(e.a)})`;
      case 'add': return `(${r(e.a)} + ${r(e.b)})`;
      case 'mul': return `(${r(e.a)} * ${r(e.b)})`;
      case 'clamp': return `archc_clamp(${r(e.a)}, ${floatLit(e.min)}, ${floatLit(e.max)})`;
    }
  }

  /** Leaves of an expression evaluated at row `r`, column `j`, with `x` the given C++ value. */
  at(x: (offset: number) => string, col = 'j', row = 'r'): Leaves {
    return {
      x,
      in: (n) => { if (!this.k.inputs[n]) this.fail(`an expression reads %${n}, which is not an operand`); return `rd_${n}(a, ${row}, ${col})`; },
      col,
    };
  }

  /** Where view `key` (row 0, its first column) is in the arena, as C++. */
  base(key: string): string {
    return `a.view[${this.view.get(key) ?? this.fail(`has no view ${key}`)}]`;
  }

  rowsOf(v: View): string {
    const rows = this.entry.buffers[v.buf]!.rows;
    return rows === 'T' ? 'a.T' : rows === 'S' ? 'a.S' : '1';
  }

  readers(): string[] {
    const out: string[] = [];
    for (const [name, o] of Object.entries(this.k.inputs)) {
      if ('input' in o) continue;
      if ('weight' in o && this.weights.find((w) => w.name === o.weight)?.dtype !== 'f32') continue;
      let load: string;
      if ('weight' in o) load = this.wf(o.weight, 'c');
      else {
        const b = this.entry.buffers[o.buf] ?? this.fail(`a view of buffer ${o.buf}, which the entry lacks`);
        load = b.rows === 'C'
          ? `a.arena[${this.base(`in:${name}`)} + c % ${o.width}]`
          : `a.arena[${this.base(`in:${name}`)} + r * ${b.width} + c]`;
      }
      const pre = this.k.pre?.[name];
      const value = pre ? this.expr(pre, this.at((off) => `raw_${name}(a, r, c${off ? ` + ${off}` : ''})`, 'c')) : `raw_${name}(a, r, c)`;
      out.push(template('reader')({ name, load, value }));
    }
    return out;
  }

  writers(): string[] {
    return Object.entries(this.k.outputs).map(([name, v]) =>
      template('writer')({ name, view: this.view.get(`out:${name}`), stride: this.entry.buffers[v.buf]!.width }));
  }

  /** A stateful family's state is argument 0 (archc_state(a, seq, 0)); `bf16` where the program
   *  keeps it in bf16 (runtime/program.ts withSsmState), two bytes a value from there. */
  state(): { bf16: boolean } {
    if (this.k.state === undefined) this.fail('has no state');
    return { bf16: this.program.states[this.k.state]?.dtype === 'bf16' };
  }

  common(): Record<string, unknown> {
    const s = this.sched;
    return {
      family: this.k.family, fused: this.k.fused.join(' '), argViews: ARGS_VIEWS, argStates: ARGS_STATES,
      readers: this.readers(), writers: this.writers(), ...s, quant: this.format !== 'bf16',
    };
  }

  /** The fields of the quantised-matrix partial for a [rows, cols] matrix in slot 0. */
  quant(rows: number, cols: number): Record<string, unknown> {
    const f = this.format;
    return f === 'bf16' ? {} : { format: f, q8: f === 'q8', bits: QUANT_BITS[f], rows, cols, a8: this.a8, zeroBits: ACT_ZERO_BITS };
  }

  /** Epilogue stages as code blocks (matmul: on the tile `acc`; conv: on `x`). */
  matmulStages(offsets: readonly number[]): string[] {
    return (this.k.epilogue ?? []).map((s, i) => this.matmulStage(s, i, offsets));
  }

  private matmulStage(s: Epilogue, i: number, offsets: readonly number[]): string {
    switch (s.kind) {
      case 'map': {
        const x = (off: number) => {
          const at = offsets.indexOf(off);
          if (at < 0 || (i > 0 && off !== 0)) this.fail(`epilogue stage ${i} reads the product at offset ${off}; only the first stage may read other columns`);
          return `acc[${at}][m][n]`;
        };
        return template('epilogue-map')({ text: this.text(s.body), width: s.width, body: this.expr(s.body, this.at(x)) });
      }
      case 'rope': {
        const tileN = this.sched.tileN as number, gemvCols = this.sched.gemvCols as number;
        if (s.col % s.headDim || tileN % s.headDim || (!this.sched.gemvPairs && gemvCols % s.headDim)) this.fail(`rope on columns from ${s.col} needs whole heads of ${s.headDim} in a tile`);
        return template('epilogue-rope')({ ...s, theta: floatLit(s.theta) });
      }
      case 'conv_step': {
        const post = s.post ? this.expr(s.post, this.at((off) => (off ? this.fail('a conv epilogue reads x at an offset') : 'x'))) : 'x';
        const wSlot = this.slot.get(s.weight)!;
        return template('epilogue-conv-step')({
          col: s.col, channels: s.channels, taps: s.taps, wSlot, wLen: this.weightLen(s.weight),
          bias: s.bias ? this.wf(s.bias, 'ch') : '0.0f', post, stateIndex: this.states.indexOf(s.state),
        });
      }
    }
  }
}

type FamilyRender = (r: Renderer) => string;

const pick = <T extends object, K extends keyof T>(o: T, ...keys: K[]): Pick<T, K> => Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;

const leafFree = (r: Renderer) => (off: number): string => r.fail(`reads x[+${off}] where there is no x`);

const FAMILIES: Readonly<Record<Kernel['family'], FamilyRender>> = {
  embedding(r) {
    const ids = r.k.inputs.ids!;
    const from = 'input' in ids ? ids.input : r.fail('looks up rows by a computed value; only token ids and positions can index');
    const { V, D } = ofFamily(r.k, 'embedding').sizes;
    // epilogue maps (a scale, a position embedding added) over the row: x the looked-up value at (t, d),
    // each stage's value a local of its own (a stage reading x twice would double the text per stage)
    const stages = (r.k.epilogue ?? []).map((s, i) => {
      const m = s.kind === 'map' && s.width === D ? s : r.fail(`embedding epilogue stage ${i} (${s.kind}) is not a map over the row`);
      const prev = i ? `x${i}` : 'x';
      return `const float x${i + 1} = ${r.expr(m.body, r.at((off) => (off ? r.fail('an embedding epilogue reads x at an offset') : prev), 'd', 't'))};`;
    });
    return template('embedding')({ ...r.common(), ...r.quant(V, D), V, D, ids: from, wSlot: 0, stages: stages.join(' '), post: stages.length ? `x${stages.length}` : 'x' });
  },
  matmul(r) {
    const k = r.k;
    const { K, N } = k.sizes as { K: number; N: number };
    const s = r.sched;
    const x = k.inputs.x as View;
    const pro = k.prologue ?? [];
    const gather = pro[0]?.kind === 'gather_last';
    const norms = pro.filter((p) => p.kind !== 'gather_last');
    if (norms.length > 1 || pro.slice(gather ? 1 : 0).some((p) => p.kind === 'gather_last')) r.fail(`prologue [${pro.map((p) => p.kind)}] is not (gather_last?, norm?)`);
    const norm = norms[0];
    const hpr = x.width / K;
    const offsets = productOffsets(k.epilogue);
    if (hpr !== 1 && (gather || k.epilogue?.length)) r.fail('a product over [T, heads, K] rows takes no gather or epilogue');
    const rowsText = gather ? 'a.S' : `${r.rowsOf(x)} * ${hpr}`;
    return template('matmul')({
      ...r.common(), ...r.quant(N, K), K, N, nOut: k.outputs.y!.width / hpr, hpr, offsets,
      prologue: norm ? (norm.kind === 'rmsnorm' ? 1 : 2) : 0, gather, transposed: Boolean(k.attrs.transposed),
      eps: floatLit(norm ? norm.eps : 0), z: norm?.kind === 'rmsnorm_gated' ? 'rd_z(a, xr, c)' : '0.0f',
      normWeight: norm ? r.wf(norm.weight, 'k') : '1.0f', bias: Boolean(k.inputs.b), rowsText,
      stages: r.matmulStages(offsets), tensor: Boolean(s.tensor), a8: r.a8,
      ...gemvVector(r.format, offsets.length, s.gemvPassCols as number, CUDA_TARGET),
    });
  },
  norm(r) {
    const k = r.k;
    const { W, D } = k.sizes as { W: number; D: number };
    const layer = Boolean(k.attrs.layer), gated = Boolean(k.attrs.gated);
    return template('norm')({
      ...r.common(), D, hpr: W / D, groups: gated ? (k.attrs.groups as number) : 1, layer, gated, eps: floatLit(k.attrs.eps as number),
      what: layer ? 'LayerNorm' : gated ? 'gated RMSNorm' : 'RMSNorm', rows: r.rowsOf(k.inputs.x as View),
      z: gated ? 'rd_z(a, r, c)' : '0.0f', bias: k.inputs.b ? 'rd_b(a, r, i)' : '0.0f',
    });
  },
  elementwise(r) {
    const y = r.k.outputs.y!;
    const body = r.k.body ?? r.fail('has no body');
    return template('elementwise')({ ...r.common(), W: y.width, rows: r.rowsOf(y), text: r.text(body), body: r.expr(body, r.at(leafFree(r))) });
  },
  copy(r) {
    const y = r.k.outputs.y!;
    return template('elementwise')({ ...r.common(), W: y.width, rows: r.rowsOf(y), text: 'x', body: 'rd_x(a, r, j)' });
  },
  gather_last: (r) => template('gather_last')({ ...r.common(), W: ofFamily(r.k, 'gather_last').sizes.W }),
  rope: (r) => template('rope')({ ...r.common(), ...r.k.sizes, theta: floatLit(r.k.attrs.theta as number) }),
  conv: (r) => conv(r),
  conv_step: (r) => conv(r),
  ssd(r) {
    // the chunk's dt of 32 heads sits in one phase's shared memory ([chunk, 33] floats)
    const over = r.sched.phases!.find((p) => (p.shared ?? 0) > CUDA_TARGET.dynamicSharedBytes);
    if (over) r.fail(`phase ${over.fn} needs ${over.shared} bytes of shared memory (chunk ${ofFamily(r.k, 'ssd').sizes.chunk}); a block may have ${CUDA_TARGET.dynamicSharedBytes}`);
    return template('ssd')({ ...r.common(), ...r.k.sizes, ...r.state() });
  },
  ssd_step: (r) => template('ssd_step')({ ...r.common(), ...r.k.sizes, ...r.state() }),
  attention: (r) => attention(r),
  attention_decode: (r) => attention(r),
  softmax: (r) => template('softmax')({ ...r.common(), D: ofFamily(r.k, 'softmax').sizes.D, hpr: ofFamily(r.k, 'softmax').sizes.W / ofFamily(r.k, 'softmax').sizes.D, rows: r.rowsOf(r.k.inputs.x as View) }),
  topk: (r) => template('topk')({ ...r.common(), ...ofFamily(r.k, 'topk').sizes, normalize: r.k.attrs.normalize === true }),
  gather: (r) => template('gather')({ ...r.common(), ...ofFamily(r.k, 'gather').sizes, rows: r.rowsOf(r.k.outputs.y!) }),
  scatter: (r) => template('scatter')({ ...r.common(), ...ofFamily(r.k, 'scatter').sizes, rows: r.rowsOf(r.k.outputs.y!) }),
  // the K chosen experts' hidden rows sit in shared memory (48 KiB: K · I at most 12288 floats)
  experts: (r) => (ofFamily(r.k, 'experts').sizes.K * ofFamily(r.k, 'experts').sizes.I > 12288 ? r.fail('K · I over 12288 floats of shared memory') : template('experts')({ ...r.common(), ...ofFamily(r.k, 'experts').sizes })),
};

function conv(r: Renderer): string {
  let post = 'x';
  for (const [i, s] of (r.k.epilogue ?? []).entries()) {
    if (s.kind !== 'map' || s.width !== ofFamily(r.k, 'conv', 'conv_step').sizes.C) r.fail(`conv epilogue stage ${i} (${s.kind}) is not a map over the channels`);
    const prev = post;
    post = r.expr(s.body, r.at((off) => (off ? r.fail('a conv epilogue reads x at an offset') : `(${prev})`)));
  }
  return template('conv')({ ...r.common(), ...pick(ofFamily(r.k, 'conv', 'conv_step').sizes, 'C', 'K'), ...r.state(), tileRows: r.sched.tileRows, bias: r.k.inputs.b ? 'rd_b(a, 0, c)' : '0.0f', post });
}

function attention(r: Renderer): string {
  const scale2 = floatLit((r.k.attrs.scale as number) * Math.LOG2E), window = (r.k.attrs.window as number | undefined) ?? 0;
  const fields = { ...r.common(), ...r.k.sizes, ...r.state(), scale2, window };
  if (r.k.family === 'attention_decode') return template('attention_decode')(fields);
  return template('attention')(fields);
}

/** The rounding of 8-bit activations (`archc_act_round`, templates/act-round.cu.hbs) as the q8a8 and
 *  q4a8 sources hold it, for a test to run alone; it needs QGROUP (32). */
export const actRoundSource = (): string => template('act-round')({ zeroBits: ACT_ZERO_BITS });

/** The `.cu` source of kernel `k` of `entry` for `format` (abi.ts `sourceFormats` says which a
 *  kernel has), and the weights it reads by slot. */
export function renderKernel(program: Program, entry: Entry, k: Kernel, format: SourceFormat = 'bf16'): RenderedKernel {
  const r = new Renderer(program, entry, k, format);
  return { source: FAMILIES[k.family](r), weights: r.weights, schedule: r.sched };
}
