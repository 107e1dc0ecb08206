// Instantiation: runs the model's body as a staged program. Compile-time values (params, lets,
// loop indices) are computed on the spot; tensor values become graph nodes, typed by each op's
// shape rule as they are emitted, so every shape error points at the call that caused it.
// Block instances get their checkpoint names from labels, assignments, `scope` and `for … as`.
// This file walks the statements; evaluate.ts evaluates expressions, calls.ts runs calls and names
// instances, staged.ts holds the graph they build and the diagnostics they record.

import type { Expr, ModelDecl, Span, Stmt } from '../dsl/ast.ts';
import { CompileError, diag } from '../dsl/diagnostics.ts';
import { MAX_SIZE, type TensorType } from './ops.ts';
import type { DType } from '../runtime/tensor.ts';
import type { Graph, ParamValue } from './ir.ts';
import { LIMITS, formatCount } from './limits.ts';
import { inputProblems, outputProblems } from './contract.ts';
import type { SourceFile } from './load.ts';
import { type Params, DTYPES } from './params.ts';
import { Evaluator } from './evaluate.ts';
import { Calls } from './calls.ts';
import { ERR, type Frame, GraphBuilder, Reported, type Returned, type Val, dedupe, describe, loc } from './staged.ts';

export interface InstantiateOptions {
  readonly model: ModelDecl;
  readonly file: SourceFile;
  readonly params: Params;
}

export function instantiate(opts: InstantiateOptions): Graph {
  return new Instantiator(opts).run();
}

class Instantiator {
  private readonly g: GraphBuilder;
  private readonly ev: Evaluator;
  private readonly calls: Calls;
  private defaultDtype: DType = 'f32';
  private iterations = 0;

  constructor(private readonly opts: InstantiateOptions) {
    this.g = new GraphBuilder(opts.model.span.file);
    this.ev = new Evaluator(this.g, opts.params, opts.file, (e, frame) => this.calls.call(e, frame));
    this.calls = new Calls(this.g, this.ev, (body, frame) => this.execBody(body, frame));
  }

  run(): Graph {
    const { model, file, params } = this.opts;
    const frame: Frame = { vars: new Map(), file, prefix: '', blocks: [], created: new Set(), params };
    const dtypeParam = params.has('dtype') ? this.tryParam('dtype') : undefined;
    if (typeof dtypeParam === 'string' && (DTYPES as readonly string[]).includes(dtypeParam)) this.defaultDtype = dtypeParam as DType;

    const inputs: { name: string; value: number }[] = [];
    for (const input of model.inputs) {
      const type = this.inputType(input.dtype, input.shape, input.span);
      this.g.diagnostics.push(...inputProblems(input, type));
      const id = this.g.newValue(type, { kind: 'input', name: input.name });
      frame.vars.set(input.name, { k: 'tensor', id });
      inputs.push({ name: input.name, value: id });
    }
    // Params are evaluated now (in order) so that a bad one is reported even when unused.
    for (const s of model.body) if (s.kind === 'param') this.tryParam(s.name);

    const returned = this.execBody(model.body, frame);
    const outputs: { name: string; value: number }[] = [];
    if (!returned) {
      this.g.diagnostics.push(diag('AC405', model.nameSpan, [`model ${model.name}`], 'end the model body with `return logits`'));
    } else {
      returned.exprs.forEach((e, i) => {
        const v = returned.values[i]!;
        if (v.k === 'error') return;
        if (v.k !== 'tensor') {
          this.g.diagnostics.push(diag('AC401', e.span, ['return', 'a model output', describe(v)]));
          return;
        }
        outputs.push({ name: e.kind === 'name' ? e.name : `output${i}`, value: v.id });
        this.g.diagnostics.push(...outputProblems(outputs[outputs.length - 1]!.name, this.g.values[v.id]!, e.span));
      });
      // The runtime reads one output, the logits: a model's one returned value is its logits
      // whatever it is called (`return head(x, w)`); of several, one must be named logits.
      if (outputs.length === 1) outputs[0] = { name: 'logits', value: outputs[0]!.value };
      else if (outputs.length > 1 && !outputs.some((o) => o.name === 'logits')) {
        this.g.diagnostics.push(diag('AC409', returned.exprs[0]!.span, [`model ${model.name}`, outputs.length], 'name the logits: `logits = …`, then `return logits, …`'));
      }
    }
    if (this.g.diagnostics.length) throw new CompileError(dedupe(this.g.diagnostics));
    return {
      format: 'archc-graph/1',
      model: model.name,
      params: Object.fromEntries(params.names().map((n) => [n, params.get(n)])),
      inputs,
      outputs,
      values: this.g.values,
      nodes: this.g.nodes,
      weights: this.g.weights,
      state: this.g.state,
    };
  }

  // ---- statements ------------------------------------------------------------------------

  /** Runs statements; returns the values of a `return`, if one ran. */
  private execBody(body: readonly Stmt[], frame: Frame): Returned | undefined {
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

  private exec(s: Stmt, frame: Frame): Returned | undefined {
    switch (s.kind) {
      case 'param':
        if (!frame.params) this.g.report(diag('AC208', s.span, ['param', 'model-level declaration', 'block statement'], 'declare it as a block parameter or use `let`'));
        return undefined;
      case 'let': {
        const v = this.ev.eval(s.value, frame);
        if (v.k !== 'const' && v.k !== 'error') this.g.report(diag('AC313', s.value.span, [`let ${s.name}`], 'use `name = …` for tensors and blocks'));
        frame.vars.set(s.name, v);
        return undefined;
      }
      case 'weight':
        this.declareWeight(s, frame);
        return undefined;
      case 'assign': {
        const v = this.ev.eval(s.value, frame);
        if (s.targets.length === 1) {
          const t = s.targets[0]!;
          if (v.k === 'instance' && !v.inst.name) this.calls.nameInstance(v.inst, frame, t.name, t.span);
          frame.vars.set(t.name, v);
        } else {
          const items = v.k === 'tuple' ? v.items : v.k === 'error' ? s.targets.map(() => ERR) : [v];
          if (items.length !== s.targets.length) this.g.report(diag('AC404', s.value.span, [s.targets.length, items.length]));
          s.targets.forEach((t, i) => frame.vars.set(t.name, items[i]!));
        }
        return undefined;
      }
      case 'for': {
        const lo = this.ev.constInt(s.from, frame), hi = this.ev.constInt(s.to, frame);
        this.iterations += Math.max(0, hi - lo);
        if (this.iterations > LIMITS.loopIterations.value) {
          this.g.exceeded(LIMITS.loopIterations, s.to.span, `the model would run ${formatCount(this.iterations)} loop iterations (this loop: ${formatCount(lo)}..${formatCount(hi)})`);
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
        const test = this.ev.eval(s.test, frame);
        if (test.k === 'error') return undefined;
        if (test.k !== 'const' || typeof test.v !== 'boolean') this.g.report(diag('AC300', s.test.span, ['if condition', 'a bool', describe(test)]));
        return this.execBody(test.v ? s.then : s.else, frame);
      }
      case 'scope':
        return this.execBody(s.body, { ...frame, prefix: `${frame.prefix}${s.name}.`, created: new Set() });
      case 'return':
        return { values: s.values.map((e) => this.ev.eval(e, frame)), exprs: s.values };
      case 'assert': {
        const t = this.ev.eval(s.test, frame);
        if (t.k === 'error') return undefined;
        if (t.k !== 'const' || typeof t.v !== 'boolean') this.g.report(diag('AC300', s.test.span, ['assert condition', 'a bool', describe(t)]));
        if (!t.v) {
          const shown = this.ev.shown(s.test, frame);
          this.g.report(diag('AC406', s.test.span, [s.message ?? 'condition is false'], shown.length ? shown.join(', ') : undefined));
        }
        return undefined;
      }
    }
  }

  private declareWeight(s: Extract<Stmt, { kind: 'weight' }>, frame: Frame): void {
    if (s.when) {
      const w = this.ev.eval(s.when, frame);
      if (w.k === 'error') throw new Reported();
      if (w.k !== 'const' || typeof w.v !== 'boolean') this.g.report(diag('AC300', s.when.span, [`condition of weight ${s.name}`, 'a bool', describe(w)]));
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
      const v = this.ev.eval(e, frame);
      if (v.k === 'error') throw new Reported();
      if (v.k !== 'const' || typeof v.v !== 'number' || !Number.isInteger(v.v) || v.v <= 0 || v.v > MAX_SIZE) this.g.report(diag('AC402', e.span, [describe(v)], `at most ${MAX_SIZE} (2^31 − 1)`));
      return v.v as number;
    });
    const elements = shape.reduce((n, d) => n * d, 1);
    if (elements > LIMITS.weightElements.value) {
      this.g.report(diag('AC500', s.span, [LIMITS.weightElements.name, `weight ${s.name} [${shape.map(formatCount).join(', ')}] has ${formatCount(elements)} elements`, formatCount(LIMITS.weightElements.value)]));
    }
    let dtype = this.defaultDtype;
    if (s.dtype) {
      if (!(DTYPES as readonly string[]).includes(s.dtype)) this.g.report(diag('AC403', s.span, [s.dtype], `one of ${DTYPES.join(', ')}`));
      dtype = s.dtype as DType;
    }
    const name = `${frame.prefix}${s.name}`;
    if (this.g.weightByName.has(name)) this.g.report(diag('AC201', s.nameSpan, [`weight ${name}`]));
    const id = this.g.addWeight({ name, shape, dtype, blocks: frame.blocks, loc: loc(s.span) });
    const v: Val = { k: 'tensor', id };
    frame.inst?.weights?.set(s.name, v);
    frame.vars.set(s.name, v);
  }

  private inputType(dtype: string | undefined, shape: readonly Expr[] | undefined, span: Span): TensorType {
    if (dtype && dtype !== 'i32') this.g.diagnostics.push(diag('AC403', span, [dtype], 'model inputs are i32 token ids or positions'));
    const dims = (shape ?? []).map((e) => (e.kind === 'name' && e.name === 'T' ? 'T' : e.kind === 'num' ? e.value : 'T'));
    return { shape: dims.length ? dims : ['T'], dtype: 'i32' };
  }

  private tryParam(name: string): ParamValue | undefined {
    try {
      return this.g.guard(() => this.opts.params.get(name));
    } catch (e) {
      if (e instanceof Reported) return undefined;
      throw e;
    }
  }
}
