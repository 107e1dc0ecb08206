// The expression evaluator of instantiation. Compile-time values (numbers, bools, strings, lists)
// are computed on the spot; an operator on tensors emits its op into the graph; a call is handed to
// the call machinery (calls.ts). Names resolve in the frame, then the model's params, the file's
// blocks, the primitives and built-ins, and last the instances and weight scopes named so far.

import { dirname, relative, sep } from 'node:path';
import type { Expr, Span } from '../dsl/ast.ts';
import { diag } from '../dsl/diagnostics.ts';
import { OP_BY_NAME, scaling } from './ops.ts';
import type { ParamValue } from './ir.ts';
import { LIMITS, formatCount } from './limits.ts';
import { BUILTINS } from './builtins.ts';
import { suggest } from './suggest.ts';
import { BUILTIN_MODELS_DIR, type SourceFile, displayName } from './load.ts';
import type { Params } from './params.ts';
import { ERR, type Frame, type GraphBuilder, Reported, type Val, c, describe, equal } from './staged.ts';

export type CallExpr = Extract<Expr, { kind: 'call' }>;

export class Evaluator {
  private depth = 0;
  private evalSteps = 0;
  /** The label of the `label: …` being evaluated, until a block instance takes it. */
  private pendingLabel?: { label: string; span: Span };
  /** The frame param defaults are evaluated in. */
  private readonly paramFrame: Frame;

  constructor(private readonly g: GraphBuilder, private readonly params: Params, file: SourceFile,
    private readonly call: (e: CallExpr, frame: Frame) => Val) {
    this.paramFrame = { vars: new Map(), file, prefix: '', blocks: [], created: new Set(), params };
    params.evalDefault = (e) => this.constOf(this.eval(e, this.paramFrame), e.span);
  }

  eval(e: Expr, frame: Frame): Val {
    if (++this.evalSteps > LIMITS.evalSteps.value) {
      this.g.exceeded(LIMITS.evalSteps, e.span, `more than ${formatCount(LIMITS.evalSteps.value)} expressions evaluated`);
    }
    // The counter is restored on every way out, so the limit holds however often it trips.
    if (this.depth >= LIMITS.exprDepth.value) {
      return this.g.report(diag('AC500', e.span, [LIMITS.exprDepth.name, `expressions nested ${this.depth + 1} deep here`, LIMITS.exprDepth.value]));
    }
    this.depth++;
    try {
      return this.evalInner(e, frame);
    } finally {
      this.depth--;
    }
  }

  /** The pending label, taken: a block instance is named by it, a primitive refuses it. */
  takeLabel(): { label: string; span: Span } | undefined {
    const l = this.pendingLabel;
    this.pendingLabel = undefined;
    return l;
  }

  private evalInner(e: Expr, frame: Frame): Val {
    switch (e.kind) {
      case 'num': case 'bool': case 'str':
        return { k: 'const', v: e.value };
      case 'list': {
        const items = e.items.map((i) => this.eval(i, frame));
        if (items.some((i) => i.k === 'error')) return ERR;
        return this.value(items.map((i, n) => this.constOf(i, e.items[n]!.span)), e.span);
      }
      case 'name':
        return this.lookup(e.name, e.span, frame, false);
      case 'member':
        return this.member(this.eval(e.object, frame), e.name, e.nameSpan);
      case 'index': {
        const o = this.eval(e.object, frame), i = this.eval(e.index, frame);
        if (o.k === 'error' || i.k === 'error') return ERR;
        const list = this.constOf(o, e.object.span), idx = this.constOf(i, e.index.span);
        if (!Array.isArray(list)) this.g.report(diag('AC300', e.object.span, ['indexed value', 'a list', describe(o)]));
        if (typeof idx !== 'number' || !Number.isInteger(idx)) this.g.report(diag('AC300', e.index.span, ['index', 'an int', describe(i)]));
        const n = idx < 0 ? list.length + idx : idx;
        if (n < 0 || n >= list.length) this.g.report(diag('AC310', e.index.span, [idx, list.length]));
        return { k: 'const', v: list[n]! };
      }
      case 'unary': {
        const v = this.eval(e.operand, frame);
        if (v.k === 'error') return ERR;
        if (e.op === '-' && v.k === 'tensor') return this.g.emit(OP_BY_NAME.get('neg')!, [v.id], {}, e.span, frame);
        const c = this.constOf(v, e.operand.span);
        if (e.op === '-' && typeof c === 'number') return { k: 'const', v: -c };
        if (e.op === 'not' && typeof c === 'boolean') return { k: 'const', v: !c };
        return this.g.report(diag('AC306', e.span, [e.op, describe(v), 'nothing']));
      }
      case 'binary':
        return this.binary(e, frame);
      case 'cond': {
        const t = this.eval(e.test, frame);
        if (t.k === 'error') return ERR;
        if (t.k !== 'const' || typeof t.v !== 'boolean') this.g.report(diag('AC300', e.test.span, ['condition', 'a bool', describe(t)]));
        return this.eval(t.v ? e.then : e.else, frame);
      }
      case 'labeled': {
        const outer = this.pendingLabel;
        this.pendingLabel = { label: e.label, span: e.labelSpan };
        try {
          const v = this.eval(e.expr, frame);
          if (this.pendingLabel && v.k !== 'error') {
            this.g.report(diag('AC208', e.labelSpan, [`label ${e.label}`, 'name for a block instance', 'name for this expression'],
              'a label names a block instance: `label: Block(params)(inputs)`'));
          }
          return v;
        } finally {
          this.pendingLabel = outer;
        }
      }
      case 'call':
        return this.call(e, frame);
    }
  }

  /** A name's value; `called`: it is the callee of a call (the hints of an unknown name differ). */
  lookup(name: string, span: Span, frame: Frame, called: boolean): Val {
    const v = frame.vars.get(name);
    if (v) return v;
    if (frame.params?.has(name)) {
      if (frame !== this.paramFrame) this.params.markRead(name);
      return { k: 'const', v: this.g.guard(() => frame.params!.get(name)) };
    }
    const b = frame.file.scope.get(name);
    if (b) return { k: 'block', decl: b.decl, file: b.file };
    const op = OP_BY_NAME.get(name);
    if (op) return { k: 'prim', op };
    if (BUILTINS.has(name)) return { k: 'builtin', name };
    const path = `${frame.prefix}${name}`;
    for (const p of [path, name]) {
      if (this.g.instances.has(p) || this.g.weightScopes.has(p)) return { k: 'path', path: p };
    }
    // A block of an imported file that was left out of the import list (`LayerNorm` with std.{Linear}).
    const home = [frame.file, ...[...frame.file.scope.values()].map((b) => b.file)].find((f) => f.program.blocks.some((b) => b.name === name));
    if (home) return this.g.report(diag('AC200', span, [name], `${name} is a block of ${displayName(home.path)} but is not imported: import ${importPath(frame.file.path, home.path)}.{${name}}`));
    if (called) {
      const instances = [...frame.vars].flatMap(([k, v]) => (v.k === 'instance' ? [k] : []));
      // one edit for a short name (`topk` is not `rope`), two from 6 letters (`layer_norm`)
      const close = suggest(name, [...instances, ...frame.file.scope.keys(), ...OP_BY_NAME.keys(), ...BUILTINS], name.length < 6 ? 1 : 2);
      return this.g.report(diag('AC200', span, [name], close ? `did you mean ${close}?`
        : `no block or primitive has this name; the primitives: ${[...OP_BY_NAME.keys()].join(', ')}`));
    }
    const known = [...frame.vars.keys(), ...(frame.params?.names() ?? []), ...frame.file.scope.keys(), ...OP_BY_NAME.keys()];
    const close = suggest(name, known);
    return this.g.report(diag('AC200', span, [name], close ? `did you mean ${close}?` : undefined));
  }

  private member(o: Val, name: string, span: Span): Val {
    if (o.k === 'error') return ERR;
    let path: string;
    if (o.k === 'instance') {
      const w = o.inst.weights?.get(name);
      if (w) return w;
      if (!o.inst.name) return this.g.report(diag('AC207', span, [name, `unnamed ${o.inst.decl.name}`]));
      path = `${o.inst.name}.${name}`;
    } else if (o.k === 'path') {
      path = `${o.path}.${name}`;
    } else {
      return this.g.report(diag('AC208', span, [describe(o), 'value', 'module with members']));
    }
    const w = this.g.weightByName.get(path);
    if (w !== undefined) return { k: 'tensor', id: w };
    const inst = this.g.instances.get(path);
    if (inst) return { k: 'instance', inst };
    if (this.g.weightScopes.has(path)) return { k: 'path', path };
    return this.g.report(diag('AC207', span, [name, o.k === 'instance' ? o.inst.name : o.path],
      'only weights created before this point can be referenced'));
  }

  private binary(e: Extract<Expr, { kind: 'binary' }>, frame: Frame): Val {
    const a = this.eval(e.left, frame);
    // `and` / `or` short-circuit, so `len(l) == 0 or max(l) < n` is safe.
    if ((e.op === 'and' || e.op === 'or') && a.k === 'const' && typeof a.v === 'boolean' && a.v === (e.op === 'or')) return a;
    const b = this.eval(e.right, frame);
    if (a.k === 'error' || b.k === 'error') return ERR;
    if (a.k === 'tensor' || b.k === 'tensor') {
      const s = scaling(e.op, a, b); // a tensor times (or over) a number: the scale op
      if (s) return this.g.emit(OP_BY_NAME.get('scale')!, [s.id], { by: s.by }, e.span, frame);
      if (a.k !== 'tensor' || b.k !== 'tensor' || !['+', '-', '*'].includes(e.op)) {
        return this.g.report(diag('AC306', e.span, [e.op, describe(a), describe(b)], 'tensors combine with +, - and *, and scale by a number with * and /'));
      }
      if (e.op !== '-') return this.g.emit(OP_BY_NAME.get(e.op === '+' ? 'add' : 'mul')!, [a.id, b.id], {}, e.span, frame);
      return this.g.emit(OP_BY_NAME.get('add')!, [a.id, (this.g.emit(OP_BY_NAME.get('neg')!, [b.id], {}, e.span, frame) as { k: 'tensor'; id: number }).id], {}, e.span, frame);
    }
    const x = this.constOf(a, e.left.span), y = this.constOf(b, e.right.span);
    const bad = () => this.g.report(diag('AC306', e.span, [e.op, describe(a), describe(b)]));
    const nums = typeof x === 'number' && typeof y === 'number';
    switch (e.op) {
      case '+':
        if (nums) return c(x + y);
        if (typeof x === 'string' && typeof y === 'string') {
          this.g.checkSize(LIMITS.stringLength, x.length + y.length, 'characters', e.span);
          return c(x + y);
        }
        if (Array.isArray(x) && Array.isArray(y)) {
          this.g.checkSize(LIMITS.listLength, measure(x).count + measure(y).count, 'items (nested lists included)', e.span);
          return this.value([...x, ...y], e.span);
        }
        return bad();
      case '-': return nums ? c(x - y) : bad();
      case '*': return nums ? c(x * y) : bad();
      case '**': return nums ? c(x ** y) : bad();
      case '/':
        if (!nums) return bad();
        if (y === 0) return this.g.report(diag('AC305', e.span));
        return c(x / y);
      case '//':
        if (!nums) return bad();
        if (y === 0) return this.g.report(diag('AC305', e.span));
        return c(Math.floor(x / y));
      case '%':
        if (!nums) return bad();
        if (y === 0) return this.g.report(diag('AC305', e.span));
        return c(((x % y) + y) % y);
      case '==': return c(equal(x, y));
      case '!=': return c(!equal(x, y));
      case '<': case '<=': case '>': case '>=': {
        if (!nums) return bad();
        return c(e.op === '<' ? x < y : e.op === '<=' ? x <= y : e.op === '>' ? x > y : x >= y);
      }
      case 'in':
        if (!Array.isArray(y)) return bad();
        return c(y.some((i) => equal(i, x)));
      case 'and': case 'or':
        if (typeof x !== 'boolean' || typeof y !== 'boolean') return bad();
        return c(e.op === 'and' ? x && y : x || y);
    }
  }

  /** A list value, within the list limits (its items counted with those of the lists inside it). */
  private value(items: ParamValue[], span: Span): Val {
    const { depth, count } = measure(items);
    this.g.checkSize(LIMITS.listLength, count, 'items (nested lists included)', span);
    if (depth > LIMITS.listDepth.value) this.g.report(diag('AC500', span, [LIMITS.listDepth.name, `a list nested ${depth} deep`, LIMITS.listDepth.value]));
    return c(items);
  }

  constOf(v: Val, span: Span): ParamValue {
    if (v.k === 'const') return v.v;
    if (v.k === 'error') throw new Reported();
    return this.g.report(diag('AC313', span, [describe(v)]));
  }

  constInt(e: Expr, frame: Frame): number {
    const v = this.eval(e, frame);
    const n = this.constOf(v, e.span);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) this.g.report(diag('AC314', e.span, [JSON.stringify(n)]));
    return n;
  }

  /** The values of the names `e` reads, with where a param's came from: `n = 4 (from --set)`. */
  shown(e: Expr, frame: Frame): string[] {
    return [...new Set(namesIn(e))].flatMap((n) => {
      const v = frame.vars.get(n) ?? (frame.params?.has(n) ? { k: 'const' as const, v: frame.params.get(n) } : undefined);
      const origin = !frame.vars.has(n) && frame.params?.has(n) ? this.params.origin(n) : undefined;
      return v?.k === 'const' ? [`${n} = ${showConst(v.v)}${origin ? ` (${origin})` : ''}`] : [];
    });
  }

  /** The string literal of the file that `e`'s value is: `e` itself, or a param's default. */
  literalOf(e: Expr, frame: Frame): Extract<Expr, { kind: 'str' }> | undefined {
    if (e.kind === 'str') return e;
    if (e.kind !== 'name' || frame.vars.has(e.name) || !frame.params?.has(e.name) || this.params.origin(e.name)) return undefined;
    const d = this.params.defaultExpr(e.name);
    return d?.kind === 'str' ? d : undefined;
  }
}

/** Depth and item count (nested lists' items included, a shared list counted each time it
 * appears) of compile-time lists, remembered per list: `[l, l]` costs two lookups, not a walk. */
const measured = new WeakMap<readonly ParamValue[], { depth: number; count: number }>();

function measure(v: readonly ParamValue[]): { depth: number; count: number } {
  const known = measured.get(v);
  if (known) return known;
  let depth = 1;
  let count = v.length;
  for (const i of v) {
    if (!Array.isArray(i)) continue;
    // Lists reach here built by `value` (measured) or from config.json / --set (flat enough:
    // params.ts bounds their depth), so this recursion is shallow.
    const m = measure(i);
    depth = Math.max(depth, 1 + m.depth);
    count += m.count;
  }
  const out = { depth, count };
  measured.set(v, out);
  return out;
}

/** The names an expression reads (for the values shown with a failed assert). */
function namesIn(e: Expr): string[] {
  switch (e.kind) {
    case 'name': return [e.name];
    case 'member': return namesIn(e.object);
    case 'index': return [...namesIn(e.object), ...namesIn(e.index)];
    case 'unary': return namesIn(e.operand);
    case 'binary': return [...namesIn(e.left), ...namesIn(e.right)];
    case 'cond': return [...namesIn(e.test), ...namesIn(e.then), ...namesIn(e.else)];
    case 'list': return e.items.flatMap(namesIn);
    case 'call': return [...namesIn(e.callee), ...e.args.flatMap((a) => namesIn(a.value))];
    case 'labeled': return namesIn(e.expr);
    default: return [];
  }
}

/** A compile-time value in a message: JSON, with NaN and the infinities by name. */
function showConst(v: ParamValue): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? `@${x}` : x)).replace(/"@(-?Infinity|NaN)"/g, '$1');
}

/** The dotted import path of `target` as seen from the file `from` (beside it, else in archc's models/). */
function importPath(from: string, target: string): string {
  const rel = [relative(dirname(from), target), relative(BUILTIN_MODELS_DIR, target)].find((r) => !r.startsWith('..')) ?? target;
  return rel.replace(/\.arch$/, '').split(sep).join('.');
}
