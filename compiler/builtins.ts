// The language's built-in functions on compile-time values: min, max, sum, len, and `pattern`, which
// reads a Megatron-LM style layer pattern ("M-M*-": one symbol per layer) into a list of symbols.
// Each returns a value or the diagnostic that refuses its arguments.

import type { Expr, Span } from '../dsl/ast.ts';
import { type Diagnostic, diag } from '../dsl/diagnostics.ts';
import type { ParamValue } from './ir.ts';

export const BUILTINS = new Set(['min', 'max', 'len', 'sum', 'pattern']);

/** One argument: its value, its span, and `shown` — its names' values for a message
 *  (`layer_pattern = "M-X" (from --set)`), asked for only when there is one; `char(i)`, where the
 *  value is a string literal of the file, the span of its i-th character. */
export interface BuiltinArg {
  readonly value: ParamValue;
  readonly span: Span;
  readonly shown: () => readonly string[];
  readonly char?: (i: number) => Span;
}

export type BuiltinResult = { readonly value: ParamValue } | { readonly error: Diagnostic };

export function callBuiltin(name: string, args: readonly BuiltinArg[], span: Span): BuiltinResult {
  const vals = args.map((a) => a.value);
  if (name === 'len') {
    if (vals.length !== 1 || !(Array.isArray(vals[0]) || typeof vals[0] === 'string')) {
      return { error: diag('AC300', span, ['len argument', 'one list or string', `${vals.length} argument(s)`]) };
    }
    return { value: vals[0].length };
  }
  if (name === 'pattern') return pattern(args, span);
  const list = vals.length === 1 && Array.isArray(vals[0]) ? (vals[0] as ParamValue[]) : vals;
  if (list.length === 0 || list.some((v) => typeof v !== 'number')) {
    return { error: diag('AC300', span, [`${name} arguments`, 'numbers or one non-empty list of numbers', JSON.stringify(vals)]) };
  }
  const ns = list as number[];
  return { value: ns.reduce((s, n) => (name === 'min' ? Math.min(s, n) : name === 'max' ? Math.max(s, n) : s + n), name === 'sum' ? 0 : ns[0]!) };
}

/** `pattern(p, symbols, n)`: the layer pattern `p` (a string, or a list of one-character strings)
 *  as a list of n one-character strings, each one of `symbols`. AC316: a symbol not in `symbols`
 *  (at that character when `p` is a literal of the file); AC317: a length other than n. */
function pattern(args: readonly BuiltinArg[], span: Span): BuiltinResult {
  if (args.length !== 3) return { error: diag('AC307', span, ['pattern', 3, args.length], 'pattern(layer_pattern, "M*-", n_layers)') };
  const [p, symbols, n] = args as [BuiltinArg, BuiltinArg, BuiltinArg];
  const items = typeof p.value === 'string' ? [...p.value] : p.value;
  if (!Array.isArray(items) || items.some((s) => typeof s !== 'string' || [...s].length !== 1)) {
    return { error: diag('AC300', p.span, ['a layer pattern', 'a string or a list of one-character strings', JSON.stringify(p.value)]) };
  }
  if (typeof symbols.value !== 'string' || symbols.value.length === 0) {
    return { error: diag('AC300', symbols.span, ['the symbols of a layer pattern', 'a non-empty string', JSON.stringify(symbols.value)]) };
  }
  if (typeof n.value !== 'number' || !Number.isInteger(n.value) || n.value < 0) {
    return { error: diag('AC300', n.span, ['the layer count of a layer pattern', 'a non-negative int', JSON.stringify(n.value)]) };
  }
  const allowed = [...symbols.value];
  const bad = (items as string[]).findIndex((s) => !allowed.includes(s));
  if (bad >= 0) {
    const others = (items as string[]).filter((s, i) => i > bad && !allowed.includes(s)).length;
    const more = others ? ` (and ${others} more symbol${others === 1 ? '' : 's'} not allowed)` : '';
    return { error: diag('AC316', p.char?.(bad) ?? p.span, [JSON.stringify(items[bad]), bad, allowed.join(' ')],
      [...p.shown(), 'positions count from 0'].join(', ') + more) };
  }
  if (items.length !== n.value) {
    return { error: diag('AC317', p.span, [items.length, n.value], [...new Set([...p.shown(), ...n.shown()])].join(', ') || undefined) };
  }
  return { value: items as string[] };
}

/** Spans of the characters of a one-line string literal without escapes (printable ASCII). */
export function charSpans(lit: Extract<Expr, { kind: 'str' }> | undefined): ((i: number) => Span) | undefined {
  const sp = lit?.span;
  if (!lit || !sp || sp.line !== sp.endLine || sp.endCol - sp.col !== lit.value.length + 2 || !/^[ -~]*$/.test(lit.value)) return undefined;
  return (i) => ({ ...sp, col: sp.col + 1 + i, endCol: sp.col + 2 + i, offset: sp.offset + 1 + i, endOffset: sp.offset + 2 + i });
}
