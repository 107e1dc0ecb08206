// Model params: default expressions < Hugging Face config.json bindings < --set overrides.
// Params are evaluated lazily (a default may use params declared after it), each once, with
// cycle detection; every value is checked against the param's type.

import type { Expr, Span, Stmt, TypeName } from '../dsl/ast.ts';
import { CompileError, type Diagnostic, diag } from '../dsl/diagnostics.ts';
import { LIMITS } from './limits.ts';
import { lookupKey } from '../runtime/hfconfig.ts';
import type { ParamValue } from './ir.ts';

export const DTYPES = ['f32', 'f16', 'bf16'] as const;
/** A Map, not an object: a user's string must never reach `constructor` or `toString`. */
const DTYPE_ALIASES: ReadonlyMap<string, string> = new Map(Object.entries({
  f32: 'f32', float32: 'f32', float: 'f32', f16: 'f16', float16: 'f16', half: 'f16', bf16: 'bf16', bfloat16: 'bf16',
}));

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
  /** Where each value came from, when not from its default: `--set` or the config key. */
  private readonly origins = new Map<string, string>();
  /** Params whose config keys were all absent from a given config.json, with the keys. */
  private readonly missing = new Map<string, { keys: string; span: Span }>();
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

  /** The default expression of `name` (where a message points into the file). */
  defaultExpr(name: string): Expr | undefined {
    return this.decls.get(name)?.value;
  }

  /** `from --set` or `from rms_norm_eps in config.json`, for a param not at its default. */
  origin(name: string): string | undefined {
    return this.origins.get(name);
  }

  /** AC408 warnings: params that shape the graph but took their default because a config.json
   *  was given without any of their keys. */
  missingKeys(): Diagnostic[] {
    if (!this.hf) return [];
    const used = this.used();
    return [...this.missing].filter(([name]) => used.has(name))
      .map(([name, m]) => diag('AC408', m.span, [m.keys, this.hf!.file, name, valueText(this.done.get(name))], undefined, 'warning'));
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
      const wrong = unusable(checked);
      if (wrong) throw new CompileError([diag('AC311', undefined, [decl.name, wrong])]);
      this.origins.set(decl.name, 'from --set');
      return checked;
    }
    if (this.hf) {
      for (const key of decl.hf) {
        const { found, value } = lookupKey(this.hf.config, key.path as string[]);
        if (!found || value === null || value === 'auto') continue;
        const type = decl.type ?? typeOf(this.defaultValue(decl));
        const checked = convert(value as ParamValue, type);
        if (checked === undefined) {
          throw new CompileError([diag('AC301', key.span, [`${key.path.join('.')} in ${this.hf.file}`, article(type), showValue(value)],
            `param ${decl.name} is bound to it here`)]);
        }
        const wrong = unusable(checked);
        if (wrong) throw new CompileError([diag('AC301', key.span, [`${key.path.join('.')} in ${this.hf.file}`, article(type), wrong], `param ${decl.name} is bound to it here`)]);
        this.origins.set(decl.name, `from ${key.path.join('.')} in ${this.hf.file}`);
        return checked;
      }
      if (decl.hf.length > 0 && decl.hf.every((key) => !lookupKey(this.hf!.config, key.path as string[]).found)) {
        this.missing.set(decl.name, { keys: decl.hf.map((k) => k.path.join('.')).join(' | '), span: decl.hf[0]!.span });
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

/** Why a value from outside the file (config.json, --set) cannot be a param: NaN anywhere, or
 * lists nested deeper than the list-depth limit. Undefined when it is fine. Iterative: the value
 * may nest as deep as its JSON does. */
function unusable(v: ParamValue): string | undefined {
  const stack: [ParamValue, number][] = [[v, 0]];
  while (stack.length) {
    const [x, depth] = stack.pop()!;
    if (typeof x === 'number' && Number.isNaN(x)) return 'got NaN';
    if (Array.isArray(x)) {
      if (depth >= LIMITS.listDepth.value) return `got lists nested more than ${LIMITS.listDepth.value} deep (limit ${LIMITS.listDepth.name})`;
      if (x.length > LIMITS.listLength.value) return `got a list of ${x.length} items (limit ${LIMITS.listLength.name} is ${LIMITS.listLength.value})`;
      for (const i of x) stack.push([i, depth + 1]);
    }
  }
  return undefined;
}

/** A config value for a message, cut short. */
function showValue(v: unknown): string {
  const s = unusable(v as ParamValue) ? String(v) : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
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
    case 'dtype': return typeof v === 'string' ? DTYPE_ALIASES.get(v) : undefined;
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

/** A param's value as the language writes it (JSON, but `inf`, `-inf` and `nan` for the numbers JSON has no word for). */
function valueText(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? `\u0000${x}` : x))
    .replace(/"\\u0000(-?Infinity|NaN)"/g, (_m, n: string) => (n === 'NaN' ? 'nan' : n.replace('Infinity', 'inf')));
}
