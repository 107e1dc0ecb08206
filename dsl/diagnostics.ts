// Diagnostics as data: a stable code, a severity, a span and a message from one table.
// User errors are CompileError (they carry diagnostics); compiler bugs are InternalError.

import type { Span } from './ast.ts';

/** Every diagnostic the toolchain can emit. `{0}`, `{1}` … are filled from the arguments. */
export const MESSAGES = {
  // 1xx: reading and parsing
  AC100: 'cannot read file {0}: {1}',
  AC101: 'unexpected character {0}',
  AC102: 'unexpected {0}: expected {1}',
  AC103: 'unterminated string',
  AC104: 'invalid number {0}',
  AC105: 'cannot import {0}: no file {1}',
  AC107: 'unknown escape {0} in a string',
  AC108: 'nesting is too deep here',
  // 2xx: names
  AC200: 'unknown name {0}',
  AC201: '{0} is defined twice',
  AC202: 'no block or primitive named {0}',
  AC203: '{0} imported from {1} is not defined there',
  AC204: 'no model in {0}',
  AC205: 'several models in {0}: {1}; choose one with --model',
  AC206: 'instance name {0} is used twice in this scope',
  AC207: 'no weight {0} at {1}',
  AC208: '{0} is a {1}, not a {2}',
  AC209: 'this {0} instance needs a name',
  AC210: 'primitive {0} has no attribute {1}; its attributes: {2}',
  // 3xx: params, config and overrides
  AC300: '{0} must be {1}, got {2}',
  AC301: 'config key {0} must be {1}, got {2}',
  AC302: 'unknown param {0} in --set',
  AC303: '--set expects name=value, got {0}',
  AC304: 'cannot read config {0}: {1}',
  AC305: 'division by zero',
  AC306: 'operator {0} does not apply to {1} and {2}',
  AC307: '{0} takes {1} argument(s), got {2}',
  AC308: 'missing argument {0} of {1}',
  AC309: 'unknown argument {0} of {1}',
  AC310: 'index {0} is out of range for a list of length {1}',
  AC311: 'value of {0} in --set is not valid: {1}',
  AC312: 'param {0} depends on itself',
  AC313: '{0} must be a compile-time value',
  AC314: 'loop bound must be a non-negative integer, got {0}',
  AC315: 'invalid {0}: {1}',
  AC316: 'layer pattern symbol {0} at position {1} is not one of {2}',
  AC317: 'layer pattern has {0} symbols but the model has {1} layers',
  // 4xx: shapes, dtypes and ops
  AC400: '{0}: {1}',
  AC401: '{0} expects a tensor for {1}, got {2}',
  AC402: 'weight dimension must be a positive integer, got {0}',
  AC403: 'unknown dtype {0}',
  AC404: 'expected {0} values, got {1}',
  AC405: '{0} has no return',
  AC406: 'assertion failed: {0}',
  AC407: 'value {0} is defined but never used',
  AC408: 'config key {0} is missing from {1}; param {2} takes its default {3}',
  AC409: '{0} returns {1} values and none is named logits: the runtime reads the logits (a model that returns one value may name it anything)',
  AC410: 'model input {0} cannot be fed: {1}',
  AC411: 'model output {0} {1}: the runtime reads outputs computed from the inputs, one row per token',
  AC412: 'the train entry cannot differentiate {0} (in {1}) through the kernels yet: {2}',
  // 5xx: limits (compiler/limits.ts; AC501 the CUDA target's, codegen/cuda/schedule.ts)
  AC500: 'limit {0} exceeded: {1} (the limit is {2})',
  AC501: 'kernel {0} ({1}) exceeds the CUDA target: {2} is {3} (the limit is {4})',
} as const;

export type Code = keyof typeof MESSAGES;
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  readonly code: Code;
  readonly severity: Severity;
  readonly message: string;
  readonly span?: Span;
  readonly hint?: string;
}

export function diag(code: Code, span: Span | undefined, args: readonly unknown[] = [], hint?: string, severity: Severity = 'error'): Diagnostic {
  const message = MESSAGES[code].replace(/\{(\d+)\}/g, (_, i: string) => String(args[Number(i)]));
  return { code, severity, message, span, hint };
}

/** A user error: bad input, with one or more diagnostics that point at it. */
export class CompileError extends Error {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
    this.name = 'CompileError';
    this.diagnostics = diagnostics;
  }
}

/** A bug in archc: an invariant that valid input can never break. */
export class InternalError extends Error {
  constructor(message: string) {
    super(`internal error: ${message}`);
    this.name = 'InternalError';
  }
}

export function fail(code: Code, span: Span | undefined, args: readonly unknown[] = [], hint?: string): never {
  throw new CompileError([diag(code, span, args, hint)]);
}

/** Collects diagnostics; `check()` throws them together if any is an error. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];
  add(d: Diagnostic): void {
    this.items.push(d);
  }
  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }
  check(): void {
    if (this.hasErrors) throw new CompileError(this.items);
  }
}

/** Renders a diagnostic like a compiler: `file:line:col: error AC200: message`, a code frame, a hint. */
export function formatDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, string> = new Map(), width = Infinity): string {
  const where = d.span ? `${d.span.file}:${d.span.line}:${d.span.col}: ` : '';
  const lines = [`${where}${d.severity} ${d.code}: ${d.message}`];
  const text = d.span ? sources.get(d.span.file) : undefined;
  if (d.span && text !== undefined) lines.push(codeFrame(text, d.span, width));
  if (d.hint) lines.push(`  hint: ${d.hint}`);
  return lines.join('\n');
}

/** The span's line with one line of context either side; lines longer than `maxWidth` are cut to a
 * window of that many characters around the span's column (`…` marks a cut). */
function codeFrame(text: string, span: Span, maxWidth: number): string {
  const first = Math.max(1, span.line - 1);
  const last = span.line + 1;
  const rows = linesOf(text, first, last);
  const width = String(last).length;
  // The window [from, from + maxWidth) of columns (0-based) shown on every line.
  const from = Number.isFinite(maxWidth) ? Math.max(0, Math.min(span.col - 1 - Math.floor(maxWidth / 3), (rows.get(span.line)?.length ?? 0) - maxWidth)) : 0;
  const cut = (line: string) => {
    if (!Number.isFinite(maxWidth) || line.length <= maxWidth) return line;
    return `${from > 0 ? '…' : ''}${line.slice(from, from + maxWidth)}${from + maxWidth < line.length ? '…' : ''}`;
  };
  const lead = Number.isFinite(maxWidth) && from > 0 ? 1 : 0;
  const out: string[] = [];
  for (let n = first; n <= last; n++) {
    const line = rows.get(n);
    if (line === undefined) break;
    out.push(`${n === span.line ? '>' : ' '} ${String(n).padStart(width)} | ${cut(line)}`);
    if (n === span.line) {
      const end = span.endLine === span.line ? Math.max(span.endCol, span.col + 1) : line.length + 1;
      const start = span.col - 1 - from + lead;
      const carets = Math.max(1, Math.min(end - span.col, Number.isFinite(maxWidth) ? maxWidth - (span.col - 1 - from) : Infinity));
      out.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, start))}${'^'.repeat(carets)}`);
    }
  }
  return out.join('\n');
}

/** Lines `first..last` (1-based) of `text`, without splitting the whole text. */
function linesOf(text: string, first: number, last: number): Map<number, string> {
  const out = new Map<number, string>();
  let start = 0;
  for (let n = 1; n <= last && start <= text.length; n++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (n >= first) out.set(n, text.slice(start, end));
    start = end + 1;
  }
  return out;
}
