// What instantiation's parts share: the staged program's values and frames, and `GraphBuilder`,
// the graph being built with the names given so far and the diagnostics recorded. The expression
// evaluator (evaluate.ts), the calls and instances (calls.ts) and the statement walker
// (instantiate.ts) all build into one of these.

import type { BlockDecl, Expr, Span } from '../dsl/ast.ts';
import { CompileError, type Diagnostic, diag } from '../dsl/diagnostics.ts';
import { OpError, inferUse, type OpDef, type AttrValue, type TensorType } from './ops.ts';
import type { Loc, Node, ParamValue, State, Value, Weight } from './ir.ts';
import { LIMITS, type Limit, formatCount } from './limits.ts';
import type { SourceFile } from './load.ts';
import type { ParamSource } from './params.ts';

export type Val =
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

export interface Instance {
  readonly decl: BlockDecl;
  readonly file: SourceFile;
  readonly params: ReadonlyMap<string, ParamValue>;
  readonly span: Span;
  readonly blocks: readonly string[];
  name?: string;
  /** Weights by local name, created on the first application. */
  weights?: Map<string, Val>;
}

export interface Frame {
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

export const ERR: Val = { k: 'error' };

/** What a `return` gave a body: its values and their expressions. */
export type Returned = { values: Val[]; exprs: readonly Expr[] };

/** Thrown inside a statement after its diagnostic has been recorded. */
export class Reported extends Error {}

/** A limit on the whole compile was crossed: nothing catches it until instantiation ends. */
export class LimitExceeded extends CompileError {}

export class GraphBuilder {
  readonly values: Value[] = [];
  readonly nodes: Node[] = [];
  readonly weights: Weight[] = [];
  readonly weightByName = new Map<string, number>();
  /** Every proper dotted prefix of a weight name (`a`, `a.b` for `a.b.w`): scopes that hold weights. */
  readonly weightScopes = new Set<string>();
  readonly state: State[] = [];
  private readonly uniform = new Map<string, { value: unknown; at: string }>();
  /** Named block instances by their full name. */
  readonly instances = new Map<string, Instance>();
  readonly diagnostics: Diagnostic[] = [];
  private readonly reported = new Set<string>();
  /** Spans of the block applications being run, outermost first. */
  readonly callStack: Span[] = [];

  constructor(private readonly rootFile: string) {}

  // ---- graph building --------------------------------------------------------------------

  emit(op: OpDef, inputs: (number | null)[], attrs: Record<string, AttrValue>, span: Span, frame: Frame): Val {
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

  newValue(type: TensorType, source: Value['source']): number {
    const id = this.values.length;
    this.values.push({ id, type, source });
    return id;
  }

  /** A weight under its full name; its value's id. */
  addWeight(w: Weight): number {
    const id = this.newValue({ shape: w.shape, dtype: w.dtype }, { kind: 'weight', name: w.name });
    this.weights.push(w);
    this.weightByName.set(w.name, id);
    // Longest prefix first: once one is known, all shorter ones are too.
    for (let i = w.name.lastIndexOf('.'); i > 0; i = w.name.lastIndexOf('.', i - 1)) {
      const scope = w.name.slice(0, i);
      if (this.weightScopes.has(scope)) break;
      this.weightScopes.add(scope);
    }
    return id;
  }

  // ---- diagnostics -----------------------------------------------------------------------

  checkSize(l: Limit, n: number, what: string, span: Span): void {
    if (n > l.value) this.report(diag('AC500', span, [l.name, `a value of ${formatCount(n)} ${what}`, formatCount(l.value)]));
  }

  /** Runs a param lookup, turning its CompileError into a recorded diagnostic. */
  guard<T>(f: () => T): T {
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

  report(d: Diagnostic): never {
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
  exceeded(l: Limit, span: Span | undefined, what: string): never {
    const d = diag('AC500', span, [l.name, what, formatCount(l.value)], 'see docs/LIMITS.md');
    throw new LimitExceeded(dedupe([...this.diagnostics, d]));
  }
}

// ---- small pure helpers --------------------------------------------------------------------

function diagnosticKey(d: Diagnostic): string {
  return `${d.code}|${d.message}|${d.span?.file}:${d.span?.offset}`;
}

export function dedupe(ds: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const key = diagnosticKey(d);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export const c = (v: ParamValue): Val => ({ k: 'const', v });

export function loc(span: Span): Loc {
  return { file: span.file, line: span.line, col: span.col };
}

export function equal(a: ParamValue, b: ParamValue): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function describe(v: Val): string {
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
