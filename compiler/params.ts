// Model params: default expressions < Hugging Face config.json bindings < --set overrides.
// Params are evaluated lazily (a default may use params declared after it), each once, with
// cycle detection; every value is checked against the param's type.

import type { Expr, Span, Stmt, TypeName } from '../dsl/ast.ts';
import { CompileError, diag } from '../dsl/diagnostics.ts';
import { lookupKey } from '../runtime/hfconfig.ts';
import type { ParamValue } from './ir.ts';

export const DTYPES = ['f32', 'f16', 'bf16'] as const;
const DTYPE_ALIASES: Record<string, string> = {
  f32: 'f32', float32: 'f32', float: 'f32', f16: 'f16', float16: 'f16', half: 'f16', bf16: 'bf16', bfloat16: 'bf16',
};

type ParamStmt = Extract<Stmt, { kind: 'param' }>;

export interface HfConfigInput {
  readonly file: string;
  readonly config: Readonly<Record<string, unknown>>;
}

export interface ParamSource {
  has(name: string): boolean;
  get(name: string): ParamValue;
  names(): string[];
}

/** Evaluates a default expression; `lookup` resolves the names it uses. */
export type EvalDefault = (e: Expr) => ParamValue;

export class Params implements ParamSource {
  private readonly decls = new Map<string, ParamStmt>();
  private readonly done = new Map<string, ParamValue>();
  private readonly active: string[] = [];
  /** Params read by the model body, and the params each param's value was computed from. */
  private readonly readByBody = new Set<string>();
  private readonly deps = new Map<string, Set<string>>();
  evalDefault: EvalDefault = () => {
    throw new Error('Params.evalDefault not set');
  };

  constructor(
    body: readonly Stmt[],
    private readonly hf: HfConfigInput | undefined,
    private readonly overrides: ReadonlyMap<string, string>,
  ) {
    const errors = [];
    for (const s of body) {
      if (s.kind !== 'param') continue;
      if (this.decls.has(s.name)) errors.push(diag('AC201', s.nameSpan, [`param ${s.name}`]));
      this.decls.set(s.name, s);
    }
    for (const name of overrides.keys()) {
      if (!this.decls.has(name)) errors.push(diag('AC302', undefined, [name], `params: ${[...this.decls.keys()].join(', ')}`));
    }
    if (errors.length) throw new CompileError(errors);
  }

  has(name: string): boolean {
    return this.decls.has(name);
  }

  names(): string[] {
    return [...this.decls.keys()];
  }

  get(name: string): ParamValue {
    const parent = this.active[this.active.length - 1];
    if (parent !== undefined) this.deps.get(parent)!.add(name);
    const known = this.done.get(name);
    if (known !== undefined) return known;
    const decl = this.decls.get(name)!;
    if (this.active.includes(name)) throw new CompileError([diag('AC312', decl.nameSpan, [name])]);
    this.active.push(name);
    this.deps.set(name, new Set());
    try {
      const v = this.compute(decl);
      this.done.set(name, v);
      return v;
    } finally {
      this.active.pop();
    }
  }

  /** Records that the model body (not another param) read `name`. */
  markRead(name: string): void {
    this.readByBody.add(name);
  }

  /** Params that shape the graph: read by the body, directly or through other params. */
  used(): Set<string> {
    const out = new Set<string>();
    const visit = (n: string) => {
      if (out.has(n)) return;
      out.add(n);
      for (const d of this.deps.get(n) ?? []) visit(d);
    };
    for (const n of this.readByBody) visit(n);
    return out;
  }

  /** Config keys bound to each used param, with its value: what a checkpoint must agree with. */
  bindings(all = false): { param: string; keys: string[]; value: ParamValue }[] {
    const used = this.used();
    return [...this.decls.values()]
      .filter((d) => (all || used.has(d.name)) && d.hf.length > 0 && d.type !== 'dtype')
      .map((d) => ({ param: d.name, keys: d.hf.map((k) => k.path.join('.')), value: this.get(d.name) }));
  }

  private compute(decl: ParamStmt): ParamValue {
    const override = this.overrides.get(decl.name);
    if (override !== undefined) {
      const v = parseOverride(override);
      const type = decl.type ?? typeOf(this.defaultValue(decl));
      const checked = convert(v, type);
      if (checked === undefined) throw new CompileError([diag('AC311', undefined, [decl.name, `expected ${article(type)}, got ${JSON.stringify(v)}`])]);
      return checked;
    }
    if (this.hf) {
      for (const key of decl.hf) {
        const { found, value } = lookupKey(this.hf.config, key.path as string[]);
        if (!found || value === null || value === 'auto') continue;
        const type = decl.type ?? typeOf(this.defaultValue(decl));
        const checked = convert(value as ParamValue, type);
        if (checked === undefined) {
          throw new CompileError([diag('AC301', key.span, [`${key.path.join('.')} in ${this.hf.file}`, article(type), JSON.stringify(value)],
            `param ${decl.name} is bound to it here`)]);
        }
        return checked;
      }
    }
    const v = this.defaultValue(decl);
    if (decl.type) {
      const checked = convert(v, decl.type);
      if (checked === undefined) throw new CompileError([diag('AC300', decl.value.span, [`param ${decl.name}`, article(decl.type), JSON.stringify(v)])]);
      return checked;
    }
    return v;
  }

  private defaultValue(decl: ParamStmt): ParamValue {
    return this.evalDefault(decl.value);
  }
}

function typeOf(v: ParamValue): TypeName {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'str';
  if (Array.isArray(v)) return 'list';
  return Number.isInteger(v) ? 'int' : 'float';
}

function article(t: TypeName): string {
  return t === 'int' ? 'an int' : `a ${t}`;
}

/** The value as `type`, or undefined when it is not one. Ints are accepted for floats. */
export function convert(v: ParamValue, type: TypeName): ParamValue | undefined {
  switch (type) {
    case 'int': return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
    case 'float': return typeof v === 'number' ? v : undefined;
    case 'bool': return typeof v === 'boolean' ? v : undefined;
    case 'str': return typeof v === 'string' ? v : undefined;
    case 'list': return Array.isArray(v) ? v : undefined;
    case 'dtype': return typeof v === 'string' ? DTYPE_ALIASES[v] : undefined;
  }
}

/** `--set` values: JSON (numbers, lists, true/false, strings), `inf`, or a bare word as a string. */
export function parseOverride(text: string): ParamValue {
  const t = text.trim();
  if (t === 'inf' || t === 'Infinity') return Infinity;
  if (t === '-inf' || t === '-Infinity') return -Infinity;
  try {
    const v = JSON.parse(t.replace(/\binf\b/g, '1e999')) as unknown;
    if (v !== null && typeof v !== 'object') return v as ParamValue;
    if (Array.isArray(v)) return v as ParamValue;
  } catch {
    // not JSON: a bare word
  }
  return t;
}

/** Parses `name=value` pairs from the command line. */
export function parseSets(pairs: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new CompileError([diag('AC303', undefined, [JSON.stringify(p)], 'for example --set n_layers=4')]);
    out.set(p.slice(0, i).trim(), p.slice(i + 1));
  }
  return out;
}

export type { Span };
