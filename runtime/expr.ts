// Fused elementwise expressions on the CPU: an Expr tree becomes a closure over (row, column), every
// intermediate rounded to f32 as the unfused kernels store it, so fused and unfused runs agree bit
// for bit.

import { erf } from './cpu/elementwise.ts';
import type { Expr } from './program.ts';

/** Where an expression's leaves read from, for one kernel invocation. */
export interface ExprEnv {
  /** `x` at column j + offset of the current row. */
  readonly x?: (row: number, col: number) => number;
  /** An activation operand at [row, col] (constant rows broadcast). */
  readonly input?: (name: string) => (row: number, col: number) => number;
  /** A weight's values (read at col mod length). */
  readonly weight?: (name: string) => Float32Array;
}

export type ElementFn = (row: number, col: number) => number;

const fr = Math.fround;

export function compileExpr(e: Expr, env: ExprEnv): ElementFn {
  switch (e.op) {
    case 'x': {
      const x = env.x ?? missing('x');
      const off = e.offset;
      return off === 0 ? x : (r, c) => x(r, c + off);
    }
    case 'in': return (env.input ?? missing('in'))(e.name);
    case 'w': {
      const w = (env.weight ?? missing('w'))(e.name);
      const n = w.length;
      return (_r, c) => w[c % n]!;
    }
    case 'const': {
      const v = fr(e.value);
      return () => v;
    }
    case 'silu': {
      const a = compileExpr(e.a, env);
      return (r, c) => { const v = a(r, c); return fr(v / (1 + Math.exp(-v))); };
    }
    case 'sigmoid': {
      const a = compileExpr(e.a, env);
      return (r, c) => fr(1 / (1 + Math.exp(-a(r, c))));
    }
    case 'softplus': {
      const a = compileExpr(e.a, env);
      return (r, c) => { const v = a(r, c); return v > 20 ? v : fr(Math.log1p(Math.exp(v))); };
    }
    case 'gelu': {
      const a = compileExpr(e.a, env);
      return (r, c) => { const v = a(r, c); return fr(0.5 * v * (1 + erf(v * Math.SQRT1_2))); };
    }
    case 'gelu_tanh': {
      const a = compileExpr(e.a, env);
      const k = Math.sqrt(2 / Math.PI);
      return (r, c) => { const v = a(r, c); return fr(0.5 * v * (1 + Math.tanh(k * (v + 0.044715 * v * v * v)))); };
    }
    case 'relu2': {
      const a = compileExpr(e.a, env);
      return (r, c) => { const v = Math.max(a(r, c), 0); return fr(v * v); };
    }
    case 'exp': {
      const a = compileExpr(e.a, env);
      return (r, c) => fr(Math.exp(a(r, c)));
    }
    case 'neg': {
      const a = compileExpr(e.a, env);
      return (r, c) => -a(r, c);
    }
    case 'add': {
      const a = compileExpr(e.a, env), b = compileExpr(e.b, env);
      return (r, c) => fr(a(r, c) + b(r, c));
    }
    case 'mul': {
      const a = compileExpr(e.a, env), b = compileExpr(e.b, env);
      return (r, c) => fr(a(r, c) * b(r, c));
    }
    case 'clamp': {
      const a = compileExpr(e.a, env);
      const lo = e.min, hi = e.max;
      return (r, c) => Math.min(Math.max(a(r, c), lo), hi);
    }
  }
}

/** Replaces every `x` leaf of `e` by `by` (shifting `by`'s own `x` offsets by the leaf's). */
export function substituteX(e: Expr, by: Expr): Expr {
  const shift = (f: Expr, off: number): Expr => (off === 0 ? f : mapExpr(f, (l) => (l.op === 'x' ? { op: 'x', offset: l.offset + off } : l)));
  return mapExpr(e, (l) => (l.op === 'x' ? shift(by, l.offset) : l));
}

/** Rebuilds `e` bottom-up, letting `leaf` replace leaves. */
export function mapExpr(e: Expr, leaf: (l: Expr) => Expr): Expr {
  switch (e.op) {
    case 'x': case 'in': case 'w': case 'const': return leaf(e);
    case 'add': case 'mul': return { op: e.op, a: mapExpr(e.a, leaf), b: mapExpr(e.b, leaf) };
    case 'clamp': return { op: 'clamp', a: mapExpr(e.a, leaf), min: e.min, max: e.max };
    default: return { op: e.op, a: mapExpr(e.a, leaf) };
  }
}

/** The leaves of `e`. */
export function exprLeaves(e: Expr, out: Expr[] = []): Expr[] {
  switch (e.op) {
    case 'x': case 'in': case 'w': case 'const': out.push(e); break;
    case 'add': case 'mul': exprLeaves(e.a, out); exprLeaves(e.b, out); break;
    default: exprLeaves(e.a, out);
  }
  return out;
}

/** A short text form, for the printer and for errors: `clamp(softplus(x + w:dt_bias), 0, inf)`. */
export function exprText(e: Expr): string {
  switch (e.op) {
    case 'x': return e.offset ? `x[+${e.offset}]` : 'x';
    case 'in': return `%${e.name}`;
    case 'w': return `w:${e.name}`;
    case 'const': return String(e.value);
    case 'add': return `(${exprText(e.a)} + ${exprText(e.b)})`;
    case 'mul': return `(${exprText(e.a)} * ${exprText(e.b)})`;
    case 'clamp': return `clamp(${exprText(e.a)}, ${e.min}, ${e.max})`;
    default: return `${e.op}(${exprText(e.a)})`;
  }
}

function missing(what: string): never {
  throw new Error(`archc runtime: the expression reads ${what}, which this kernel does not provide`);
}
