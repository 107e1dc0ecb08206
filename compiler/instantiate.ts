// Instantiation: runs the model's body as a staged program. Compile-time values (params, lets,
// loop indices) are computed on the spot; tensor values become graph nodes, typed by each op's
// shape rule as they are emitted, so every shape error points at the call that caused it.
// Block instances get their checkpoint names from labels, assignments, `scope` and `for … as`.

import { dirname, relative, sep } from 'node:path';
import type { Arg, BlockDecl, Expr, ModelDecl, Span, Stmt } from '../dsl/ast.ts';
import { CompileError, type Diagnostic, diag } from '../dsl/diagnostics.ts';
import { MAX_SIZE, OP_BY_NAME, OpError, inferUse, scaling, type OpDef, type AttrValue, type TensorType } from './ops.ts';
import type { DType } from '../runtime/tensor.ts';
import type { Graph, Loc, Node, ParamValue, State, Value, Weight } from './ir.ts';
import { LIMITS, type Limit, formatCount } from './limits.ts';
import { inputProblems, outputProblems } from './contract.ts';
import { BUILTINS, callBuiltin, charSpans } from './builtins.ts';
import { suggest } from './suggest.ts';
import { BUILTIN_MODELS_DIR, type SourceFile, displayName } from './load.ts';
import { type ParamSource, type Params, DTYPES } from './params.ts';

type Val =
  | { readonly k: 'const'; readonly v: ParamValue }
  | { readonly k: 'tensor'; readonly id: number }
  | { readonly k: 'tuple'; readonly items: readonly Val[] }
  | { readonly k: 'none' }
  | { readonly k: 'block'; readonly decl: BlockDecl; readonly file: SourceFile }
  | { readonly k: 'prim'; readonly op: OpDef }
  | { readonly k: 'builtin'; readonly name: string }
  | { readonly k: 'instance'; readonly inst: Instance }
  | { readonly k: 'path'; readonly path: string }
  /** The result of an expression that already reported an error: silences follow-on errors. */
  | { readonly k: 'error' };

interface Instance {
  readonly decl: BlockDecl;
  readonly file: SourceFile;
  readonly params: ReadonlyMap<string, ParamValue>;
  readonly span: Span;
  readonly blocks: readonly string[];
  name?: string;
  /** Weights by local name, created on the first application. */
  weights?: Map<string, Val>;
}

interface Frame {
  readonly vars: Map<string, Val>;
  readonly file: SourceFile;
  readonly prefix: string;
  readonly blocks: readonly string[];
  readonly inst?: Instance;
  /** Instance names created by this application, to catch a name used twice. */
  readonly created: Set<string>;
  /** Model frames resolve params lazily. */
  readonly params?: ParamSource;
}

const ERR: Val = { k: 'error' };

/** Thrown inside a statement after its diagnostic has been recorded. */
class Reported extends Error {}

/** A limit on the whole compile was crossed: nothing catches it until instantiation ends. */
class LimitExceeded extends CompileError {}

export interface InstantiateOptions {
  readonly model: ModelDecl;
  readonly file: SourceFile;
  readonly params: Params;
}

export function instantiate(opts: InstantiateOptions): Graph {
  return new Instantiator(opts).run();
}

class Instantiator {
  private readonly values: Value[] = [];
  private readonly nodes: Node[] = [];
  private readonly weights: Weight[] = [];
  private readonly weightByName = new Map<string, number>();
  /** Every proper dotted prefix of a weight name (`a`, `a.b` for `a.b.w`): scopes that hold weights. */
  private readonly weightScopes = new Set<string>();
  private readonly state: State[] = [];
  private readonly uniform = new Map<string, { value: unknown; at: string }>();
  private readonly instances = new Map<string, Instance>();
  private readonly diagnostics: Diagnostic[] = [];
  private pendingLabel?: { label: string; span: Span };
  private defaultDtype: DType = 'f32';
  private depth = 0;
  private iterations = 0;
  private evalSteps = 0;
  private readonly reported = new Set<string>();
  private readonly paramFrame: Frame;
  /** Spans of the block applications being run, outermost first. */
  private readonly callStack: Span[] = [];
  private readonly rootFile: string;

  constructor(private readonly opts: InstantiateOptions) {
    this.rootFile = opts.model.span.file;
    this.paramFrame = { vars: new Map(), file: opts.file, prefix: '', blocks: [], created: new Set(), params: opts.params };
    opts.params.evalDefault = (e) => this.constOf(this.eval(e, this.paramFrame), e.span);
  }

  run(): Graph {
    const { model, file, params } = this.opts;
    const frame: Frame = { vars: new Map(), file, prefix: '', blocks: [], created: new Set(), params };
    const dtypeParam = params.has('dtype') ? this.tryParam('dtype') : undefined;
    if (typeof dtypeParam === 'string' && (DTYPES as readonly string[]).includes(dtypeParam)) this.defaultDtype = dtypeParam as DType;

    const inputs: { name: string; value: number }[] = [];
    for (const input of model.inputs) {
      const type = this.inputType(input.dtype, input.shape, input.span);
      this.diagnostics.push(...inputProblems(input, type));
      const id = this.newValue(type, { kind: 'input', name: input.name });
      frame.vars.set(input.name, { k: 'tensor', id });
      inputs.push({ name: input.name, value: id });
    }
    // Params are evaluated now (in order) so that a bad one is reported even when unused.
    for (const s of model.body) if (s.kind === 'param') this.tryParam(s.name);

    const returned = this.execBody(model.body, frame);
    const outputs: { name: string; value: number }[] = [];
    if (!returned) {
      this.diagnostics.push(diag('AC405', model.nameSpan, [`model ${model.name}`], 'end the model body with `return logits`'));
    } else {
      returned.exprs.forEach((e, i) => {
        const v = returned.values[i]!;
        if (v.k === 'error') return;
        if (v.k !== 'tensor') {
          this.diagnostics.push(diag('AC401', e.span, ['return', 'a model output', describe(v)]));
          return;
        }
        outputs.push({ name: e.kind === 'name' ? e.name : `output${i}`, value: v.id });
        this.diagnostics.push(...outputProblems(outputs[outputs.length - 1]!.name, this.values[v.id]!, e.span));
      });
      // The runtime reads one output, the logits: a model's one returned value is its logits
      // whatever it is called (`return head(x, w)`); of several, one must be named logits.
      if (outputs.length === 1) outputs[0] = { name: 'logits', value: outputs[0]!.value };
      else if (outputs.length > 1 && !outputs.some((o) => o.name === 'logits')) {
        this.diagnostics.push(diag('AC409', returned.exprs[0]!.span, [`model ${model.name}`, outputs.length], 'name the logits: `logits = …`, then `return logits, …`'));
      }
    }
    if (this.diagnostics.length) throw new CompileError(dedupe(this.diagnostics));
    return {
      format: 'archc-graph/1',
      model: model.name,
      params: Object.fromEntries(params.names().map((n) => [n, params.get(n)])),
      inputs,
      outputs,
      values: this.values,
      nodes: this.nodes,
      weights: this.weights,
      state: this.state,
    };
  }

  // ---- statements ------------------------------------------------------------------------

  /** Runs statements; returns the values of a `return`, if one ran. */
  private execBody(body: readonly Stmt[], frame: Frame): { values: Val[]; exprs: readonly Expr[] } | undefined {
    for (const s of body) {
      try {
        const r = this.exec(s, frame);
        if (r) return r;
      } catch (e) {
        if (e instanceof Reported) {
          if (s.kind === 'assign') for (const t of s.targets) frame.vars.set(t.name, ERR);
          if (s.kind === 'let' || s.kind === 'weight') frame.vars.set(s.name, ERR);
          if (s.kind === 'return') return { values: s.values.map(() => ERR), exprs: s.values };
          continue;
        }
        throw e;
      }
    }
    return undefined;
  }

  private exec(s: Stmt, frame: Frame): { values: Val[]; exprs: readonly Expr[] } | undefined {
    switch (s.kind) {
      case 'param':
        if (!frame.params) this.report(diag('AC208', s.span, ['param', 'model-level declaration', 'block statement'], 'declare it as a block parameter or use `let`'));
        return undefined;
      case 'let': {
        const v = this.eval(s.value, frame);
        if (v.k !== 'const' && v.k !== 'error') this.report(diag('AC313', s.value.span, [`let ${s.name}`], 'use `name = …` for tensors and blocks'));
        frame.vars.set(s.name, v);
        return undefined;
      }
      case 'weight':
        this.declareWeight(s, frame);
        return undefined;
      case 'assign': {
        const v = this.eval(s.value, frame);
        if (s.targets.length === 1) {
          const t = s.targets[0]!;
          if (v.k === 'instance' && !v.inst.name) this.nameInstance(v.inst, frame, t.name, t.span);
          frame.vars.set(t.name, v);
        } else {
          const items = v.k === 'tuple' ? v.items : v.k === 'error' ? s.targets.map(() => ERR) : [v];
          if (items.length !== s.targets.length) this.report(diag('AC404', s.value.span, [s.targets.length, items.length]));
          s.targets.forEach((t, i) => frame.vars.set(t.name, items[i]!));
        }
        return undefined;
      }
      case 'for': {
        const lo = this.constInt(s.from, frame), hi = this.constInt(s.to, frame);
        this.iterations += Math.max(0, hi - lo);
        if (this.iterations > LIMITS.loopIterations.value) {
          this.exceeded(LIMITS.loopIterations, s.to.span, `the model would run ${formatCount(this.iterations)} loop iterations (this loop: ${formatCount(lo)}..${formatCount(hi)})`);
        }
        for (let i = lo; i < hi; i++) {
          frame.vars.set(s.variable, { k: 'const', v: i });
          const inner: Frame = s.as ? { ...frame, prefix: `${frame.prefix}${s.as}.${i}.`, created: new Set() } : frame;
          const r = this.execBody(s.body, inner);
          if (r) return r;
        }
        return undefined;
      }
      case 'if': {
        const test = this.eval(s.test, frame);
        if (test.k === 'error') return undefined;
        if (test.k !== 'const' || typeof test.v !== 'boolean') this.report(diag('AC300', s.test.span, ['if condition', 'a bool', describe(test)]));
        return this.execBody(test.v ? s.then : s.else, frame);
      }
      case 'scope':
        return this.execBody(s.body, { ...frame, prefix: `${frame.prefix}${s.name}.`, created: new Set() });
      case 'return':
        return { values: s.values.map((e) => this.eval(e, frame)), exprs: s.values };
      case 'assert': {
        const t = this.eval(s.test, frame);
        if (t.k === 'error') return undefined;
        if (t.k !== 'const' || typeof t.v !== 'boolean') this.report(diag('AC300', s.test.span, ['assert condition', 'a bool', describe(t)]));
        if (!t.v) {
          const shown = this.shown(s.test, frame);
          this.report(diag('AC406', s.test.span, [s.message ?? 'condition is false'], shown.length ? shown.join(', ') : undefined));
        }
        return undefined;
      }
    }
  }

  private declareWeight(s: Extract<Stmt, { kind: 'weight' }>, frame: Frame): void {
    if (s.when) {
      const w = this.eval(s.when, frame);
      if (w.k === 'error') throw new Reported();
      if (w.k !== 'const' || typeof w.v !== 'boolean') this.report(diag('AC300', s.when.span, [`condition of weight ${s.name}`, 'a bool', describe(w)]));
      if (!w.v) {
        frame.vars.set(s.name, { k: 'none' });
        return;
      }
    }
    const existing = frame.inst?.weights?.get(s.name);
    if (existing) {
      frame.vars.set(s.name, existing);
      return;
    }
    const shape = s.shape.map((e) => {
      const v = this.eval(e, frame);
      if (v.k === 'error') throw new Reported();
      if (v.k !== 'const' || typeof v.v !== 'number' || !Number.isInteger(v.v) || v.v <= 0 || v.v > MAX_SIZE) this.report(diag('AC402', e.span, [describe(v)], `at most ${MAX_SIZE} (2^31 − 1)`));
      return v.v as number;
    });
    const elements = shape.reduce((n, d) => n * d, 1);
    if (elements > LIMITS.weightElements.value) {
      this.report(diag('AC500', s.span, [LIMITS.weightElements.name, `weight ${s.name} [${shape.map(formatCount).join(', ')}] has ${formatCount(elements)} elements`, formatCount(LIMITS.weightElements.value)]));
    }
    let dtype = this.defaultDtype;
    if (s.dtype) {
      if (!(DTYPES as readonly string[]).includes(s.dtype)) this.report(diag('AC403', s.span, [s.dtype], `one of ${DTYPES.join(', ')}`));
      dtype = s.dtype as DType;
    }
    const name = `${frame.prefix}${s.name}`;
    if (this.weightByName.has(name)) this.report(diag('AC201', s.nameSpan, [`weight ${name}`]));
    const id = this.newValue({ shape, dtype }, { kind: 'weight', name });
    this.weights.push({ name, shape, dtype, blocks: frame.blocks, loc: loc(s.span) });
    this.weightByName.set(name, id);
    // Longest prefix first: once one is known, all shorter ones are too.
    for (let i = name.lastIndexOf('.'); i > 0; i = name.lastIndexOf('.', i - 1)) {
      const scope = name.slice(0, i);
      if (this.weightScopes.has(scope)) break;
      this.weightScopes.add(scope);
    }
    const v: Val = { k: 'tensor', id };
    frame.inst?.weights?.set(s.name, v);
    frame.vars.set(s.name, v);
  }

  // ---- expressions -----------------------------------------------------------------------

  private eval(e: Expr, frame: Frame): Val {
    if (++this.evalSteps > LIMITS.evalSteps.value) {
      this.exceeded(LIMITS.evalSteps, e.span, `more than ${formatCount(LIMITS.evalSteps.value)} expressions evaluated`);
    }
    // The counter is restored on every way out, so the limit holds however often it trips.
    if (this.depth >= LIMITS.exprDepth.value) {
      return this.report(diag('AC500', e.span, [LIMITS.exprDepth.name, `expressions nested ${this.depth + 1} deep here`, LIMITS.exprDepth.value]));
    }
    this.depth++;
    try {
      return this.evalInner(e, frame);
    } finally {
      this.depth--;
    }
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
        if (!Array.isArray(list)) this.report(diag('AC300', e.object.span, ['indexed value', 'a list', describe(o)]));
        if (typeof idx !== 'number' || !Number.isInteger(idx)) this.report(diag('AC300', e.index.span, ['index', 'an int', describe(i)]));
        const n = idx < 0 ? list.length + idx : idx;
        if (n < 0 || n >= list.length) this.report(diag('AC310', e.index.span, [idx, list.length]));
        return { k: 'const', v: list[n]! };
      }
      case 'unary': {
        const v = this.eval(e.operand, frame);
        if (v.k === 'error') return ERR;
        if (e.op === '-' && v.k === 'tensor') return this.emit(OP_BY_NAME.get('neg')!, [v.id], {}, e.span, frame);
        const c = this.constOf(v, e.operand.span);
        if (e.op === '-' && typeof c === 'number') return { k: 'const', v: -c };
        if (e.op === 'not' && typeof c === 'boolean') return { k: 'const', v: !c };
        return this.report(diag('AC306', e.span, [e.op, describe(v), 'nothing']));
      }
      case 'binary':
        return this.binary(e, frame);
      case 'cond': {
        const t = this.eval(e.test, frame);
        if (t.k === 'error') return ERR;
        if (t.k !== 'const' || typeof t.v !== 'boolean') this.report(diag('AC300', e.test.span, ['condition', 'a bool', describe(t)]));
        return this.eval(t.v ? e.then : e.else, frame);
      }
      case 'labeled': {
        const outer = this.pendingLabel;
        this.pendingLabel = { label: e.label, span: e.labelSpan };
        try {
          const v = this.eval(e.expr, frame);
          if (this.pendingLabel && v.k !== 'error') {
            this.report(diag('AC208', e.labelSpan, [`label ${e.label}`, 'name for a block instance', 'name for this expression'],
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
  private lookup(name: string, span: Span, frame: Frame, called: boolean): Val {
    const v = frame.vars.get(name);
    if (v) return v;
    if (frame.params?.has(name)) {
      if (frame !== this.paramFrame) this.opts.params.markRead(name);
      return { k: 'const', v: this.guard(() => frame.params!.get(name)) };
    }
    const b = frame.file.scope.get(name);
    if (b) return { k: 'block', decl: b.decl, file: b.file };
    const op = OP_BY_NAME.get(name);
    if (op) return { k: 'prim', op };
    if (BUILTINS.has(name)) return { k: 'builtin', name };
    const path = `${frame.prefix}${name}`;
    for (const p of [path, name]) {
      if (this.instances.has(p) || this.weightScopes.has(p)) return { k: 'path', path: p };
    }
    // A block of an imported file that was left out of the import list (`LayerNorm` with std.{Linear}).
    const home = [frame.file, ...[...frame.file.scope.values()].map((b) => b.file)].find((f) => f.program.blocks.some((b) => b.name === name));
    if (home) return this.report(diag('AC200', span, [name], `${name} is a block of ${displayName(home.path)} but is not imported: import ${importPath(frame.file.path, home.path)}.{${name}}`));
    if (called) {
      const instances = [...frame.vars].flatMap(([k, v]) => (v.k === 'instance' ? [k] : []));
      // one edit for a short name (`topk` is not `rope`), two from 6 letters (`layer_norm`)
      const close = suggest(name, [...instances, ...frame.file.scope.keys(), ...OP_BY_NAME.keys(), ...BUILTINS], name.length < 6 ? 1 : 2);
      return this.report(diag('AC200', span, [name], close ? `did you mean ${close}?`
        : `no block or primitive has this name; the primitives: ${[...OP_BY_NAME.keys()].join(', ')}`));
    }
    const known = [...frame.vars.keys(), ...(frame.params?.names() ?? []), ...frame.file.scope.keys(), ...OP_BY_NAME.keys()];
    const close = suggest(name, known);
    return this.report(diag('AC200', span, [name], close ? `did you mean ${close}?` : undefined));
  }

  private member(o: Val, name: string, span: Span): Val {
    if (o.k === 'error') return ERR;
    let path: string;
    if (o.k === 'instance') {
      const w = o.inst.weights?.get(name);
      if (w) return w;
      if (!o.inst.name) return this.report(diag('AC207', span, [name, `unnamed ${o.inst.decl.name}`]));
      path = `${o.inst.name}.${name}`;
    } else if (o.k === 'path') {
      path = `${o.path}.${name}`;
    } else {
      return this.report(diag('AC208', span, [describe(o), 'value', 'module with members']));
    }
    const w = this.weightByName.get(path);
    if (w !== undefined) return { k: 'tensor', id: w };
    const inst = this.instances.get(path);
    if (inst) return { k: 'instance', inst };
    if (this.weightScopes.has(path)) return { k: 'path', path };
    return this.report(diag('AC207', span, [name, o.k === 'instance' ? o.inst.name : o.path],
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
      if (s) return this.emit(OP_BY_NAME.get('scale')!, [s.id], { by: s.by }, e.span, frame);
      if (a.k !== 'tensor' || b.k !== 'tensor' || !['+', '-', '*'].includes(e.op)) {
        return this.report(diag('AC306', e.span, [e.op, describe(a), describe(b)], 'tensors combine with +, - and *, and scale by a number with * and /'));
      }
      if (e.op !== '-') return this.emit(OP_BY_NAME.get(e.op === '+' ? 'add' : 'mul')!, [a.id, b.id], {}, e.span, frame);
      return this.emit(OP_BY_NAME.get('add')!, [a.id, (this.emit(OP_BY_NAME.get('neg')!, [b.id], {}, e.span, frame) as { k: 'tensor'; id: number }).id], {}, e.span, frame);
    }
    const x = this.constOf(a, e.left.span), y = this.constOf(b, e.right.span);
    const bad = () => this.report(diag('AC306', e.span, [e.op, describe(a), describe(b)]));
    const nums = typeof x === 'number' && typeof y === 'number';
    switch (e.op) {
      case '+':
        if (nums) return c(x + y);
        if (typeof x === 'string' && typeof y === 'string') {
          this.checkSize(LIMITS.stringLength, x.length + y.length, 'characters', e.span);
          return c(x + y);
        }
        if (Array.isArray(x) && Array.isArray(y)) {
          this.checkSize(LIMITS.listLength, measure(x).count + measure(y).count, 'items (nested lists included)', e.span);
          return this.value([...x, ...y], e.span);
        }
        return bad();
      case '-': return nums ? c(x - y) : bad();
      case '*': return nums ? c(x * y) : bad();
      case '**': return nums ? c(x ** y) : bad();
      case '/':
        if (!nums) return bad();
        if (y === 0) return this.report(diag('AC305', e.span));
        return c(x / y);
      case '//':
        if (!nums) return bad();
        if (y === 0) return this.report(diag('AC305', e.span));
        return c(Math.floor(x / y));
      case '%':
        if (!nums) return bad();
        if (y === 0) return this.report(diag('AC305', e.span));
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

  // ---- calls -----------------------------------------------------------------------------

  private call(e: Extract<Expr, { kind: 'call' }>, frame: Frame): Val {
    // a name in call position is looked up among what can be called (an unknown one is steered to
    // the primitives and blocks, not to a param of a similar name)
    const callee = e.callee.kind === 'name' ? this.lookup(e.callee.name, e.callee.span, frame, true) : this.eval(e.callee, frame);
    switch (callee.k) {
      case 'error': return ERR;
      case 'prim': return this.callPrim(callee.op, e, frame);
      case 'builtin': return this.callBuiltin(callee.name, e, frame);
      case 'block': return this.newInstance(callee.decl, callee.file, e, frame);
      case 'instance': return this.apply(callee.inst, e, frame);
      default:
        return this.report(diag('AC208', e.callee.span, [describe(callee), 'value', 'block, instance or primitive to call']));
    }
  }

  private callBuiltin(name: string, e: Extract<Expr, { kind: 'call' }>, frame: Frame): Val {
    const args = e.args.map((a) => this.eval(a.value, frame));
    if (args.some((a) => a.k === 'error')) return ERR;
    const r = callBuiltin(name, e.args.map((a, i) => ({
      value: this.constOf(args[i]!, a.span), span: a.value.span, shown: () => this.shown(a.value, frame), char: charSpans(this.literalOf(a.value, frame)),
    })), e.span);
    return 'error' in r ? this.report(r.error) : c(r.value);
  }

  /** The values of the names `e` reads, with where a param's came from: `n = 4 (from --set)`. */
  private shown(e: Expr, frame: Frame): string[] {
    return [...new Set(namesIn(e))].flatMap((n) => {
      const v = frame.vars.get(n) ?? (frame.params?.has(n) ? { k: 'const' as const, v: frame.params.get(n) } : undefined);
      const origin = !frame.vars.has(n) && frame.params?.has(n) ? this.opts.params.origin(n) : undefined;
      return v?.k === 'const' ? [`${n} = ${showConst(v.v)}${origin ? ` (${origin})` : ''}`] : [];
    });
  }

  /** The string literal of the file that `e`'s value is: `e` itself, or a param's default. */
  private literalOf(e: Expr, frame: Frame): Extract<Expr, { kind: 'str' }> | undefined {
    if (e.kind === 'str') return e;
    if (e.kind !== 'name' || frame.vars.has(e.name) || !frame.params?.has(e.name) || this.opts.params.origin(e.name)) return undefined;
    const d = this.opts.params.defaultExpr(e.name);
    return d?.kind === 'str' ? d : undefined;
  }

  private callPrim(op: OpDef, e: Extract<Expr, { kind: 'call' }>, frame: Frame): Val {
    if (this.pendingLabel) {
      const l = this.pendingLabel;
      this.pendingLabel = undefined;
      return this.report(diag('AC208', l.span, [`label ${l.label}`, 'name for a block instance', `name for primitive ${op.name}`],
        'primitives have no weights of their own; label the block that declares them'));
    }
    const inputs: (number | null)[] = op.inputs.map(() => null);
    const given = new Set<number>();
    // Null prototype: attribute names come from the user's text.
    const attrs: Record<string, AttrValue> = Object.create(null) as Record<string, AttrValue>;
    let positional = 0;
    let failed = false;
    for (const a of e.args) {
      // A name that is neither a slot nor an attribute labels its value when that makes a block
      // instance, `split(in_proj: Linear(…)(x), …)`; on anything else it is a wrong attribute (AC210).
      const isAttr = a.name !== undefined && Object.hasOwn(op.attrs, a.name);
      const unknown = a.name !== undefined && !isAttr && !op.inputs.some((s) => s.name === a.name);
      if (unknown && !(a.value.kind === 'call' && a.value.callee.kind === 'call')) {
        const attrs = Object.keys(op.attrs);
        const close = suggest(a.name!, attrs);
        this.report(diag('AC210', a.nameSpan ?? a.span, [op.name, a.name, attrs.length ? attrs.join(', ') : 'none'],
          `${close ? `did you mean ${close}? ` : ''}${op.name} takes inputs ${op.inputs.map((s) => s.name).join(', ')}${attrs.length ? ` and attributes ${attrs.map((k) => `${k}:`).join(', ')}` : ''}`));
        failed = true;
        continue;
      }
      const labelled = unknown;
      const slotIndex = a.name && !labelled ? op.inputs.findIndex((s) => s.name === a.name) : positional++;
      if (!a.name && slotIndex >= op.inputs.length) {
        this.report(diag('AC307', a.span, [op.name, `${op.inputs.length} tensor`, `more (put attributes as name: value, e.g. ${Object.keys(op.attrs)[0] ?? 'eps'}: …)`]));
      }
      const v = this.evalArg(a, labelled, frame);
      if (v.k === 'error') {
        failed = true;
        continue;
      }
      if (slotIndex >= 0 && slotIndex < op.inputs.length) {
        given.add(slotIndex);
        if (v.k === 'none' && op.inputs[slotIndex]!.optional) continue;
        if (v.k !== 'tensor') {
          this.report(diag('AC401', a.value.span, [op.name, op.inputs[slotIndex]!.name, describe(v)]));
        }
        inputs[slotIndex] = v.id;
      } else if (a.name && isAttr) {
        if ((attrs[a.name] = this.attrOf(op, a, v)) === 0 && op.attrs[a.name]!.optional) delete attrs[a.name]; // optional and 0: the plain form
      } else {
        const known = [...op.inputs.map((s) => s.name), ...Object.keys(op.attrs)].join(', ');
        this.report(diag('AC309', a.nameSpan ?? a.span, [a.name, op.name], `${op.name} takes ${known}`));
      }
    }
    if (failed) return ERR;
    op.inputs.forEach((s, i) => {
      if (!s.optional && !given.has(i)) this.report(diag('AC308', e.span, [s.name, op.name]));
    });
    for (const [k, def] of Object.entries(op.attrs)) {
      if (attrs[k] !== undefined || def.optional) continue;
      if (def.default === undefined) this.report(diag('AC308', e.span, [`${k}:`, op.name], def.doc));
      attrs[k] = def.default;
    }
    return this.emit(op, inputs, attrs, e.span, frame);
  }

  /** An argument's value; `labelled` treats `name: value` as a label on the value. */
  private evalArg(a: Arg, labelled: boolean, frame: Frame): Val {
    if (!labelled) return this.eval(a.value, frame);
    return this.eval({ kind: 'labeled', label: a.name!, labelSpan: a.nameSpan ?? a.span, expr: a.value, span: a.span }, frame);
  }

  private attrOf(op: OpDef, a: Arg, v: Val): AttrValue {
    const def = op.attrs[a.name!]!;
    const value = this.constOf(v, a.value.span);
    const ok = def.type === 'list' ? Array.isArray(value)
      : def.type === 'bool' ? typeof value === 'boolean'
      : def.type === 'int' ? typeof value === 'number' && Number.isInteger(value)
      : typeof value === 'number';
    if (!ok) this.report(diag('AC300', a.value.span, [`${op.name} ${a.name}`, `a ${def.type}`, describe(v)]));
    return value;
  }

  /** `Block(params)`: binds params; the instance is named by a label or an assignment. */
  private newInstance(decl: BlockDecl, file: SourceFile, e: Extract<Expr, { kind: 'call' }>, frame: Frame): Val {
    const label = this.pendingLabel;
    this.pendingLabel = undefined;
    const params = new Map<string, ParamValue>();
    let positional = 0;
    for (const a of e.args) {
      const p = a.name ? decl.params.find((x) => x.name === a.name) : decl.params[positional++];
      if (!p) {
        if (a.name) this.report(diag('AC309', a.nameSpan ?? a.span, [a.name, decl.name], `${decl.name} takes ${decl.params.map((x) => x.name).join(', ')}`));
        this.report(diag('AC307', a.span, [decl.name, decl.params.length, e.args.length], `${decl.name}(${decl.params.map((x) => x.name).join(', ')})`));
      }
      const v = this.eval(a.value, frame);
      if (v.k === 'error') return ERR;
      if (params.has(p.name)) this.report(diag('AC201', a.span, [`argument ${p.name}`]));
      params.set(p.name, this.constOf(v, a.value.span));
    }
    // Defaults are evaluated in the block's own file, seeing the params bound so far.
    const dframe: Frame = { vars: new Map(), file, prefix: '', blocks: [], created: new Set() };
    for (const p of decl.params) {
      if (params.has(p.name)) {
        dframe.vars.set(p.name, { k: 'const', v: params.get(p.name)! });
        continue;
      }
      if (!p.default) this.report(diag('AC308', e.span, [p.name, decl.name]));
      const v = this.eval(p.default, dframe);
      if (v.k === 'error') return ERR;
      params.set(p.name, this.constOf(v, p.default.span));
      dframe.vars.set(p.name, v);
    }
    const inst: Instance = { decl, file, params, span: e.span, blocks: [...frame.blocks, decl.name] };
    if (label) this.nameInstance(inst, frame, label.label, label.span);
    return { k: 'instance', inst };
  }

  private nameInstance(inst: Instance, frame: Frame, local: string, span: Span): void {
    const name = `${frame.prefix}${local}`;
    if (frame.created.has(name)) this.report(diag('AC206', span, [name]));
    frame.created.add(name);
    const prior = this.instances.get(name);
    if (prior) {
      // A block applied again re-creates its children's names: share the first instance.
      if (prior.decl === inst.decl && sameParams(prior.params, inst.params)) {
        inst.name = name;
        inst.weights = prior.weights;
        return;
      }
      this.report(diag('AC206', span, [name]));
    }
    inst.name = name;
    this.instances.set(name, inst);
  }

  /** `instance(inputs)`: runs the block body with its params and inputs bound. */
  private apply(inst: Instance, e: Extract<Expr, { kind: 'call' }>, frame: Frame): Val {
    const { decl } = inst;
    if (!inst.name) {
      return this.report(diag('AC209', inst.span, [decl.name], `write \`name: ${decl.name}(…)(…)\` or assign it first: \`name = ${decl.name}(…)\``));
    }
    if (e.args.length !== decl.inputs.length) {
      this.report(diag('AC307', e.span, [`${decl.name} applied`, decl.inputs.length, e.args.length], `inputs: (${decl.inputs.map((i) => i.name).join(', ')})`));
    }
    // Inputs are positional; a name on one labels the instance it creates.
    const inputs = e.args.map((a) => this.evalArg(a, a.name !== undefined, frame));
    if (inputs.some((v) => v.k === 'error')) return ERR;
    const vars = new Map<string, Val>();
    for (const [k, v] of inst.params) vars.set(k, { k: 'const', v });
    decl.inputs.forEach((input, i) => vars.set(input.name, inputs[i]!));
    inst.weights ??= new Map();
    if (this.callStack.length >= LIMITS.blockDepth.value) {
      this.report(diag('AC500', e.span, [LIMITS.blockDepth.name, `${decl.name} applied ${this.callStack.length + 1} blocks deep`, LIMITS.blockDepth.value], 'does a block apply itself?'));
    }
    const inner: Frame = { vars, file: inst.file, prefix: `${inst.name}.`, blocks: inst.blocks, inst, created: new Set() };
    this.callStack.push(e.callee.span);
    let r;
    try {
      r = this.execBody(decl.body, inner);
    } finally {
      this.callStack.pop();
    }
    if (!r) return this.report(diag('AC405', decl.nameSpan, [`block ${decl.name}`], 'end the block body with `return …`'));
    return r.values.length === 1 ? r.values[0]! : { k: 'tuple', items: r.values };
  }

  // ---- graph building --------------------------------------------------------------------

  private emit(op: OpDef, inputs: (number | null)[], attrs: Record<string, AttrValue>, span: Span, frame: Frame): Val {
    const types = inputs.map((i) => (i === null ? null : this.values[i]!.type));
    let outs: TensorType[];
    try {
      const weights = inputs.map((i) => i !== null && this.values[i]!.source.kind === 'weight');
      outs = inferUse(op, types, attrs, { weights, uniform: this.uniform, at: `${span.file}:${span.line}:${span.col}` });
    } catch (err) {
      if (err instanceof OpError) {
        // Inside a library block, point at the user's call and name the library line in a hint.
        const user = span.file === this.rootFile ? span : [...this.callStack].reverse().find((s) => s.file === this.rootFile);
        const hint = user && user !== span ? `raised by ${op.name} at ${span.file}:${span.line}:${span.col}` : undefined;
        return this.report(diag('AC400', user ?? span, [op.name, err.message], hint));
      }
      throw err;
    }
    const id = this.nodes.length;
    if (id >= LIMITS.ops.value) this.exceeded(LIMITS.ops, span, `the model emits more than ${formatCount(LIMITS.ops.value)} ops (here: ${op.name})`);
    const outputs = outs.map((t, index) => this.newValue(t, { kind: 'node', node: id, index }));
    const scope = frame.prefix.replace(/\.$/, '');
    this.nodes.push({ id, op: op.name, inputs, outputs, attrs, scope, loc: loc(span) });
    if (op.state) {
      const s = op.state(types, attrs);
      this.state.push({ name: `${scope}:${s.kind}`, node: id, kind: s.kind, per: s.per, shape: s.shape, dtype: 'f32', ...(s.window ? { window: s.window } : {}) });
    }
    return outputs.length === 1 ? { k: 'tensor', id: outputs[0]! } : { k: 'tuple', items: outputs.map((o) => ({ k: 'tensor', id: o }) as Val) };
  }

  private newValue(type: TensorType, source: Value['source']): number {
    const id = this.values.length;
    this.values.push({ id, type, source });
    return id;
  }

  private inputType(dtype: string | undefined, shape: readonly Expr[] | undefined, span: Span): TensorType {
    if (dtype && dtype !== 'i32') this.diagnostics.push(diag('AC403', span, [dtype], 'model inputs are i32 token ids or positions'));
    const dims = (shape ?? []).map((e) => (e.kind === 'name' && e.name === 'T' ? 'T' : e.kind === 'num' ? e.value : 'T'));
    return { shape: dims.length ? dims : ['T'], dtype: 'i32' };
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** A list value, within the list limits (its items counted with those of the lists inside it). */
  private value(items: ParamValue[], span: Span): Val {
    const { depth, count } = measure(items);
    this.checkSize(LIMITS.listLength, count, 'items (nested lists included)', span);
    if (depth > LIMITS.listDepth.value) this.report(diag('AC500', span, [LIMITS.listDepth.name, `a list nested ${depth} deep`, LIMITS.listDepth.value]));
    return c(items);
  }

  private checkSize(l: Limit, n: number, what: string, span: Span): void {
    if (n > l.value) this.report(diag('AC500', span, [l.name, `a value of ${formatCount(n)} ${what}`, formatCount(l.value)]));
  }

  private constOf(v: Val, span: Span): ParamValue {
    if (v.k === 'const') return v.v;
    if (v.k === 'error') throw new Reported();
    return this.report(diag('AC313', span, [describe(v)]));
  }

  private constInt(e: Expr, frame: Frame): number {
    const v = this.eval(e, frame);
    const n = this.constOf(v, e.span);
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) this.report(diag('AC314', e.span, [JSON.stringify(n)]));
    return n;
  }

  private tryParam(name: string): ParamValue | undefined {
    try {
      return this.guard(() => this.opts.params.get(name));
    } catch (e) {
      if (e instanceof Reported) return undefined;
      throw e;
    }
  }

  /** Runs a param lookup, turning its CompileError into a recorded diagnostic. */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof CompileError && !(e instanceof LimitExceeded)) {
        for (const d of e.diagnostics) if (!this.diagnostics.some((x) => x.code === d.code && x.message === d.message)) this.diagnostics.push(d);
        throw new Reported();
      }
      throw e;
    }
  }

  private report(d: Diagnostic): never {
    // The same error at the same place (a block applied many times) is recorded once.
    const key = diagnosticKey(d);
    if (this.reported.has(key)) throw new Reported();
    this.reported.add(key);
    this.diagnostics.push(d);
    if (this.diagnostics.length >= LIMITS.diagnostics.value) {
      this.exceeded(LIMITS.diagnostics, undefined, `${formatCount(this.diagnostics.length)} diagnostics so far`);
    }
    throw new Reported();
  }

  /** A limit on the whole compile: stops instantiation at once, with what was reported so far. */
  private exceeded(l: Limit, span: Span | undefined, what: string): never {
    const d = diag('AC500', span, [l.name, what, formatCount(l.value)], 'see docs/LIMITS.md');
    throw new LimitExceeded(dedupe([...this.diagnostics, d]));
  }
}

// ---- small pure helpers --------------------------------------------------------------------

function diagnosticKey(d: Diagnostic): string {
  return `${d.code}|${d.message}|${d.span?.file}:${d.span?.offset}`;
}

function dedupe(ds: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const key = diagnosticKey(d);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const c = (v: ParamValue): Val => ({ k: 'const', v });

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

function loc(span: Span): Loc {
  return { file: span.file, line: span.line, col: span.col };
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

function equal(a: ParamValue, b: ParamValue): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameParams(a: ReadonlyMap<string, ParamValue>, b: ReadonlyMap<string, ParamValue>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.has(k) && equal(v, b.get(k)!));
}

function describe(v: Val): string {
  switch (v.k) {
    case 'const': return Array.isArray(v.v) ? `list ${JSON.stringify(v.v)}` : `${typeof v.v} ${JSON.stringify(v.v)}`;
    case 'tensor': return 'a tensor';
    case 'tuple': return `${v.items.length} values`;
    case 'none': return 'an absent weight';
    case 'block': return `block ${v.decl.name}`;
    case 'prim': return `primitive ${v.op.name}`;
    case 'builtin': return `function ${v.name}`;
    case 'instance': return `instance of ${v.inst.decl.name}`;
    case 'path': return `scope ${v.path}`;
    case 'error': return 'an error';
  }
}

/** The dotted import path of `target` as seen from the file `from` (beside it, else in archc's models/). */
function importPath(from: string, target: string): string {
  const rel = [relative(dirname(from), target), relative(BUILTIN_MODELS_DIR, target)].find((r) => !r.startsWith('..')) ?? target;
  return rel.replace(/\.arch$/, '').split(sep).join('.');
}
