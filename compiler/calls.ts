// Calls, and the instances that give weights their names. A primitive's call binds its slots and
// attributes and emits its op; a built-in's computes a value; `Block(params)` makes an instance,
// named by a label or an assignment (`<scope prefix><name>`); `instance(inputs)` runs the block's
// body under that name, so its weights are `<instance path>.<name>`. A block applied again under a
// name it had shares the first instance's weights.

import type { Arg, BlockDecl, Span, Stmt } from '../dsl/ast.ts';
import { diag } from '../dsl/diagnostics.ts';
import type { OpDef, AttrValue } from './ops.ts';
import type { ParamValue } from './ir.ts';
import { LIMITS } from './limits.ts';
import { callBuiltin, charSpans } from './builtins.ts';
import { suggest } from './suggest.ts';
import type { SourceFile } from './load.ts';
import type { CallExpr, Evaluator } from './evaluate.ts';
import { ERR, type Frame, type GraphBuilder, type Instance, type Returned, type Val, c, describe, equal } from './staged.ts';

export class Calls {
  constructor(private readonly g: GraphBuilder, private readonly ev: Evaluator,
    private readonly execBody: (body: readonly Stmt[], frame: Frame) => Returned | undefined) {}

  call(e: CallExpr, frame: Frame): Val {
    // a name in call position is looked up among what can be called (an unknown one is steered to
    // the primitives and blocks, not to a param of a similar name)
    const callee = e.callee.kind === 'name' ? this.ev.lookup(e.callee.name, e.callee.span, frame, true) : this.ev.eval(e.callee, frame);
    switch (callee.k) {
      case 'error': return ERR;
      case 'prim': return this.callPrim(callee.op, e, frame);
      case 'builtin': return this.callBuiltin(callee.name, e, frame);
      case 'block': return this.newInstance(callee.decl, callee.file, e, frame);
      case 'instance': return this.apply(callee.inst, e, frame);
      default:
        return this.g.report(diag('AC208', e.callee.span, [describe(callee), 'value', 'block, instance or primitive to call']));
    }
  }

  private callBuiltin(name: string, e: CallExpr, frame: Frame): Val {
    const args = e.args.map((a) => this.ev.eval(a.value, frame));
    if (args.some((a) => a.k === 'error')) return ERR;
    const r = callBuiltin(name, e.args.map((a, i) => ({
      value: this.ev.constOf(args[i]!, a.span), span: a.value.span, shown: () => this.ev.shown(a.value, frame), char: charSpans(this.ev.literalOf(a.value, frame)),
    })), e.span);
    return 'error' in r ? this.g.report(r.error) : c(r.value);
  }

  private callPrim(op: OpDef, e: CallExpr, frame: Frame): Val {
    const l = this.ev.takeLabel();
    if (l) {
      return this.g.report(diag('AC208', l.span, [`label ${l.label}`, 'name for a block instance', `name for primitive ${op.name}`],
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
        this.g.report(diag('AC210', a.nameSpan ?? a.span, [op.name, a.name, attrs.length ? attrs.join(', ') : 'none'],
          `${close ? `did you mean ${close}? ` : ''}${op.name} takes inputs ${op.inputs.map((s) => s.name).join(', ')}${attrs.length ? ` and attributes ${attrs.map((k) => `${k}:`).join(', ')}` : ''}`));
        failed = true;
        continue;
      }
      const labelled = unknown;
      const slotIndex = a.name && !labelled ? op.inputs.findIndex((s) => s.name === a.name) : positional++;
      if (!a.name && slotIndex >= op.inputs.length) {
        this.g.report(diag('AC307', a.span, [op.name, `${op.inputs.length} tensor`, `more (put attributes as name: value, e.g. ${Object.keys(op.attrs)[0] ?? 'eps'}: …)`]));
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
          this.g.report(diag('AC401', a.value.span, [op.name, op.inputs[slotIndex]!.name, describe(v)]));
        }
        inputs[slotIndex] = v.id;
      } else if (a.name && isAttr) {
        if ((attrs[a.name] = this.attrOf(op, a, v)) === 0 && op.attrs[a.name]!.optional) delete attrs[a.name]; // optional and 0: the plain form
      } else {
        const known = [...op.inputs.map((s) => s.name), ...Object.keys(op.attrs)].join(', ');
        this.g.report(diag('AC309', a.nameSpan ?? a.span, [a.name, op.name], `${op.name} takes ${known}`));
      }
    }
    if (failed) return ERR;
    op.inputs.forEach((s, i) => {
      if (!s.optional && !given.has(i)) this.g.report(diag('AC308', e.span, [s.name, op.name]));
    });
    for (const [k, def] of Object.entries(op.attrs)) {
      if (attrs[k] !== undefined || def.optional) continue;
      if (def.default === undefined) this.g.report(diag('AC308', e.span, [`${k}:`, op.name], def.doc));
      attrs[k] = def.default;
    }
    return this.g.emit(op, inputs, attrs, e.span, frame);
  }

  /** An argument's value; `labelled` treats `name: value` as a label on the value. */
  private evalArg(a: Arg, labelled: boolean, frame: Frame): Val {
    if (!labelled) return this.ev.eval(a.value, frame);
    return this.ev.eval({ kind: 'labeled', label: a.name!, labelSpan: a.nameSpan ?? a.span, expr: a.value, span: a.span }, frame);
  }

  private attrOf(op: OpDef, a: Arg, v: Val): AttrValue {
    const def = op.attrs[a.name!]!;
    const value = this.ev.constOf(v, a.value.span);
    const ok = def.type === 'list' ? Array.isArray(value)
      : def.type === 'bool' ? typeof value === 'boolean'
      : def.type === 'int' ? typeof value === 'number' && Number.isInteger(value)
      : typeof value === 'number';
    if (!ok) this.g.report(diag('AC300', a.value.span, [`${op.name} ${a.name}`, `a ${def.type}`, describe(v)]));
    return value;
  }

  /** `Block(params)`: binds params; the instance is named by a label or an assignment. */
  private newInstance(decl: BlockDecl, file: SourceFile, e: CallExpr, frame: Frame): Val {
    const label = this.ev.takeLabel();
    const params = new Map<string, ParamValue>();
    let positional = 0;
    for (const a of e.args) {
      const p = a.name ? decl.params.find((x) => x.name === a.name) : decl.params[positional++];
      if (!p) {
        if (a.name) this.g.report(diag('AC309', a.nameSpan ?? a.span, [a.name, decl.name], `${decl.name} takes ${decl.params.map((x) => x.name).join(', ')}`));
        this.g.report(diag('AC307', a.span, [decl.name, decl.params.length, e.args.length], `${decl.name}(${decl.params.map((x) => x.name).join(', ')})`));
      }
      const v = this.ev.eval(a.value, frame);
      if (v.k === 'error') return ERR;
      if (params.has(p.name)) this.g.report(diag('AC201', a.span, [`argument ${p.name}`]));
      params.set(p.name, this.ev.constOf(v, a.value.span));
    }
    // Defaults are evaluated in the block's own file, seeing the params bound so far.
    const dframe: Frame = { vars: new Map(), file, prefix: '', blocks: [], created: new Set() };
    for (const p of decl.params) {
      if (params.has(p.name)) {
        dframe.vars.set(p.name, { k: 'const', v: params.get(p.name)! });
        continue;
      }
      if (!p.default) this.g.report(diag('AC308', e.span, [p.name, decl.name]));
      const v = this.ev.eval(p.default, dframe);
      if (v.k === 'error') return ERR;
      params.set(p.name, this.ev.constOf(v, p.default.span));
      dframe.vars.set(p.name, v);
    }
    const inst: Instance = { decl, file, params, span: e.span, blocks: [...frame.blocks, decl.name] };
    if (label) this.nameInstance(inst, frame, label.label, label.span);
    return { k: 'instance', inst };
  }

  nameInstance(inst: Instance, frame: Frame, local: string, span: Span): void {
    const name = `${frame.prefix}${local}`;
    if (frame.created.has(name)) this.g.report(diag('AC206', span, [name]));
    frame.created.add(name);
    const prior = this.g.instances.get(name);
    if (prior) {
      // A block applied again re-creates its children's names: share the first instance.
      if (prior.decl === inst.decl && sameParams(prior.params, inst.params)) {
        inst.name = name;
        inst.weights = prior.weights;
        return;
      }
      this.g.report(diag('AC206', span, [name]));
    }
    inst.name = name;
    this.g.instances.set(name, inst);
  }

  /** `instance(inputs)`: runs the block body with its params and inputs bound. */
  private apply(inst: Instance, e: CallExpr, frame: Frame): Val {
    const { decl } = inst;
    if (!inst.name) {
      return this.g.report(diag('AC209', inst.span, [decl.name], `write \`name: ${decl.name}(…)(…)\` or assign it first: \`name = ${decl.name}(…)\``));
    }
    if (e.args.length !== decl.inputs.length) {
      this.g.report(diag('AC307', e.span, [`${decl.name} applied`, decl.inputs.length, e.args.length], `inputs: (${decl.inputs.map((i) => i.name).join(', ')})`));
    }
    // Inputs are positional; a name on one labels the instance it creates.
    const inputs = e.args.map((a) => this.evalArg(a, a.name !== undefined, frame));
    if (inputs.some((v) => v.k === 'error')) return ERR;
    const vars = new Map<string, Val>();
    for (const [k, v] of inst.params) vars.set(k, { k: 'const', v });
    decl.inputs.forEach((input, i) => vars.set(input.name, inputs[i]!));
    inst.weights ??= new Map();
    const { callStack } = this.g;
    if (callStack.length >= LIMITS.blockDepth.value) {
      this.g.report(diag('AC500', e.span, [LIMITS.blockDepth.name, `${decl.name} applied ${callStack.length + 1} blocks deep`, LIMITS.blockDepth.value], 'does a block apply itself?'));
    }
    const inner: Frame = { vars, file: inst.file, prefix: `${inst.name}.`, blocks: inst.blocks, inst, created: new Set() };
    callStack.push(e.callee.span);
    let r;
    try {
      r = this.execBody(decl.body, inner);
    } finally {
      callStack.pop();
    }
    if (!r) return this.g.report(diag('AC405', decl.nameSpan, [`block ${decl.name}`], 'end the block body with `return …`'));
    return r.values.length === 1 ? r.values[0]! : { k: 'tuple', items: r.values };
  }
}

function sameParams(a: ReadonlyMap<string, ParamValue>, b: ReadonlyMap<string, ParamValue>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.has(k) && equal(v, b.get(k)!));
}
