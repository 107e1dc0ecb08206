// Failing inputs for every diagnostic the front end emits (AC101-AC104, AC107, AC108), with the
// position and wording each one must have, plus error recovery across several mistakes.

import { describe, expect, it } from 'vitest';
import { MESSAGES, type Code, type Diagnostic } from '../../dsl/diagnostics.ts';
import { parse } from '../../dsl/index.ts';

/** `model M() { <body> }` on one line: body text starts at column 13. */
const inModel = (body: string) => `model M() { ${body} }`;

// [source, code, line, col, message]
const CASES: readonly (readonly [string, Code, number, number, string])[] = [
  // AC101: characters that start no token
  [inModel('x = a $ b'), 'AC101', 1, 19, "unexpected character '$'"],
  [inModel('x = a ! b'), 'AC101', 1, 19, "unexpected character '!'"],
  [inModel('x = a \u0001 b'), 'AC101', 1, 19, 'unexpected character U+0001'],
  ['model M() {\n  x = a @ b\n}', 'AC101', 2, 9, "unexpected character '@'"],
  // AC102: syntax errors, naming what was found and what was expected
  ['foo', 'AC102', 1, 1, "unexpected 'foo': expected 'import', 'block' or 'model'"],
  [inModel('x = 1') + ' }', 'AC102', 1, 21, "unexpected '}': expected 'import', 'block' or 'model'"],
  ['import', 'AC102', 1, 7, 'unexpected end of input: expected a name'],
  ['import std.', 'AC102', 1, 12, "unexpected end of input: expected a name or '{'"],
  ['import std.{a b}', 'AC102', 1, 15, "unexpected 'b': expected ',' or '}'"],
  ['model (x) {}', 'AC102', 1, 7, "unexpected '(': expected a name"],
  ['block B(d) { }', 'AC102', 1, 12, "unexpected '{': expected '('"],
  ['block B(a b)(x) { }', 'AC102', 1, 11, "unexpected 'b': expected ',' or ')'"],
  ['model M(a b) {}', 'AC102', 1, 11, "unexpected 'b': expected ',' or ')'"],
  ['model M(', 'AC102', 1, 9, "unexpected end of input: expected an input or ')'"],
  ['model M() {', 'AC102', 1, 12, "unexpected end of input: expected a statement or '}'"],
  [inModel(','), 'AC102', 1, 13, "unexpected ',': expected a statement or '}'"],
  [inModel('x = }'), 'AC102', 1, 17, "unexpected '}': expected an expression"],
  [inModel('x = (1 + )'), 'AC102', 1, 22, "unexpected ')': expected an expression"],
  [inModel('x = f(a b)'), 'AC102', 1, 21, "unexpected 'b': expected ',' or ')'"],
  [inModel('x = f(,)'), 'AC102', 1, 19, "unexpected ',': expected an argument or ')'"],
  [inModel('x = f(a:)'), 'AC102', 1, 21, "unexpected ')': expected an expression"],
  [inModel('x = [1 2]'), 'AC102', 1, 20, "unexpected '2': expected ',' or ']'"],
  [inModel('x = a[]'), 'AC102', 1, 19, "unexpected ']': expected an expression"],
  [inModel('x = a.'), 'AC102', 1, 20, "unexpected '}': expected a name"],
  [inModel('x = a < b < c'), 'AC102', 1, 23, "unexpected '<': expected a statement or '}'"],
  [inModel('y = if a then b'), 'AC102', 1, 29, "unexpected '}': expected 'else'"],
  [inModel('x, = 3'), 'AC102', 1, 16, "unexpected '=': expected a name"],
  [inModel('let for = 3'), 'AC102', 1, 17, "unexpected 'for': expected a name"],
  [inModel('param x 3'), 'AC102', 1, 21, "unexpected '3': expected '='"],
  [inModel('param p: integer = 3'), 'AC102', 1, 22, "unexpected 'integer': expected a type (int, float, bool, str, dtype, list)"],
  [inModel('param x = 3 hf: 5'), 'AC102', 1, 29, "unexpected '5': expected a config key (a name or a string)"],
  [inModel('weight w'), 'AC102', 1, 22, "unexpected '}': expected '['"],
  [inModel('weight w[3 4]'), 'AC102', 1, 24, "unexpected '4': expected ',' or ']'"],
  [inModel('for i = 0..n {}'), 'AC102', 1, 19, "unexpected '=': expected 'in'"],
  [inModel('scope { }'), 'AC102', 1, 19, "unexpected '{': expected a name"],
  [inModel('if { }'), 'AC102', 1, 16, "unexpected '{': expected an expression"],
  [inModel('if a { } else x'), 'AC102', 1, 27, "unexpected 'x': expected 'if' or '{' after 'else'"],
  [inModel('return'), 'AC102', 1, 20, "unexpected '}': expected an expression"],
  // AC103: strings end on their line
  [inModel('x = "abc'), 'AC103', 1, 17, 'unterminated string'],
  ['model M() {\n  x = "abc\n}', 'AC103', 2, 7, 'unterminated string'],
  // AC104: digits glued to letters
  [inModel('x = 12ab'), 'AC104', 1, 17, "invalid number '12ab'"],
  [inModel('x = 1e+'), 'AC104', 1, 17, "invalid number '1e+'"],
  [inModel('x = 1.5e'), 'AC104', 1, 17, "invalid number '1.5e'"],
  // AC107: only \" \\ and \n are escapes
  [inModel('x = "a\\qb"'), 'AC107', 1, 19, "unknown escape '\\q' in a string"],
  // AC108: nesting deeper than the call stack allows
  [inModel(`x = ${'('.repeat(5000)}1${')'.repeat(5000)}`), 'AC108', 1, 0, 'nesting is too deep here'],
];

/** Asserts the span lies inside the text and that its line/col agree with its offsets. */
function expectSpanInText(d: Diagnostic, text: string): void {
  const s = d.span;
  expect(s, `${d.code} has a span`).toBeDefined();
  if (!s) return;
  expect(s.offset).toBeGreaterThanOrEqual(0);
  expect(s.endOffset).toBeGreaterThanOrEqual(s.offset);
  expect(s.endOffset).toBeLessThanOrEqual(text.length);
  const before = text.slice(0, s.offset).split(/\r\n?|\n/);
  expect([s.line, s.col]).toEqual([before.length, before[before.length - 1].length + 1]);
}

describe('diagnostics table', () => {
  it.each(CASES)('%j -> %s at %i:%i', (src, code, line, col, message) => {
    const { diagnostics } = parse(src, 'bad.arch');
    expect(diagnostics.map((d) => d.code)).toEqual([code]);
    const [d] = diagnostics;
    expect(d.severity).toBe('error');
    expect(d.message).toBe(message);
    expect(d.span?.file).toBe('bad.arch');
    expect(d.span?.line).toBe(line);
    if (col > 0) expect(d.span?.col).toBe(col);
    expectSpanInText(d, src);
  });

  it('covers every AC1xx code the parser can emit', () => {
    const emitted = new Set(CASES.map(([, code]) => code));
    expect([...emitted].sort()).toEqual(['AC101', 'AC102', 'AC103', 'AC104', 'AC107', 'AC108']);
    for (const code of emitted) expect(MESSAGES[code]).toBeDefined();
  });
});

describe('diagnostic details', () => {
  it('spans the whole offending token', () => {
    const [d] = parse(inModel('x = 12ab'), 'f').diagnostics;
    expect(d.span).toMatchObject({ line: 1, col: 17, endLine: 1, endCol: 21, offset: 16, endOffset: 20 });
  });

  it('puts end-of-input errors at the end of the text', () => {
    const src = 'model M() {\n  x = 1\n';
    const [d] = parse(src, 'f').diagnostics;
    expect(d.span).toMatchObject({ line: 3, col: 1, offset: src.length, endOffset: src.length });
  });

  it('explains reserved words used as names', () => {
    const [d] = parse(inModel('let for = 3'), 'f').diagnostics;
    expect(d.hint).toMatch(/'for' is a reserved word/);
  });

  it('does not echo a skipped character as a syntax error', () => {
    const { diagnostics } = parse('model M() {\n  x = a $ b\n  y = 2\n}', 'f');
    expect(diagnostics.map((d) => d.code)).toEqual(['AC101']);
  });

  it('keeps parsing after a malformed string or number', () => {
    const { program, diagnostics } = parse('model M() {\n  x = "a\n  y = 12ab\n  z = 3\n}', 'f');
    expect(diagnostics.map((d) => d.code)).toEqual(['AC103', 'AC104']);
    expect(program.models[0].body.map((s) => (s.kind === 'assign' ? s.targets[0].name : s.kind))).toEqual(['x', 'y', 'z']);
  });
});

describe('error recovery', () => {
  it('reports two independent syntax errors in one run', () => {
    const src = ['model M(x) {', '  a = (1 + )', '  b = f(x)', '  c = ]', '  d = 4', '}'].join('\n');
    const { diagnostics } = parse(src, 'f');
    expect(diagnostics.map((d) => [d.code, d.span?.line, d.span?.col, d.message])).toEqual([
      ['AC102', 2, 12, "unexpected ')': expected an expression"],
      ['AC102', 4, 7, "unexpected ']': expected an expression"],
    ]);
  });

  it('reports errors in separate declarations', () => {
    const src = 'block B(a b)(x) { return x }\nmodel M() { y = }\nmodel N() { z = 1 }';
    const { program, diagnostics } = parse(src, 'f');
    expect(diagnostics.map((d) => [d.span?.line, d.span?.col])).toEqual([
      [1, 11],
      [2, 17],
    ]);
    expect(program.models.map((m) => m.name)).toEqual(['M', 'N']);
  });

  it('keeps the statements around a broken one', () => {
    const { program, diagnostics } = parse('model M() {\n  a = 1\n  b = f(\n  c = 3\n  return a\n}', 'f');
    expect(diagnostics).toHaveLength(1);
    const names = program.models[0].body.map((s) => s.kind);
    expect(names[0]).toBe('assign');
    expect(names[names.length - 1]).toBe('return');
  });

  it('skips garbage between declarations', () => {
    const { program, diagnostics } = parse('junk here\nmodel M() { }\n)))\nblock B()(x) { return x }', 'f');
    expect(diagnostics.map((d) => d.span?.line)).toEqual([1, 3]);
    expect(program.models.map((m) => m.name)).toEqual(['M']);
    expect(program.blocks.map((b) => b.name)).toEqual(['B']);
  });

  it.each([
    ['parentheses', `x = ${'('.repeat(20000)}`],
    ['minus signs', `x = ${'-'.repeat(20000)}1`],
    ['scopes', 'scope a { '.repeat(20000)],
    ['else-ifs', `${'if a { } else '.repeat(20000)}{ }`],
  ])('reports too deep %s instead of overflowing the stack', (_, body) => {
    const src = inModel(body);
    const { diagnostics } = parse(src, 'f');
    expect(diagnostics.map((d) => d.code)).toContain('AC108');
    for (const d of diagnostics) expectSpanInText(d, src);
  });

  it('parses again normally after running out of stack', () => {
    parse(inModel(`x = ${'('.repeat(20000)}`), 'f');
    expect(parse(inModel('x = (1)'), 'f').diagnostics).toEqual([]);
  });
});
