// The .arch front end: `parse(text, file)` lexes, parses (with error recovery) and builds the AST.
// It never throws: every problem in the text comes back as an AC1xx diagnostic with a span.

import { EOF, tokenLabel, type CstNode, type IParserErrorMessageProvider, type IRecognitionException, type IToken, type TokenType } from 'chevrotain';
import type { Program, Span } from './ast.ts';
import { buildProgram } from './build.ts';
import { diag, type Diagnostic } from './diagnostics.ts';
import * as T from './lexer.ts';
import { ArchParser } from './parser.ts';

export type { Program } from './ast.ts';
export type { Diagnostic } from './diagnostics.ts';

export interface ParseResult {
  readonly program: Program;
  /** Errors in source order; the program is partial when there is any. */
  readonly diagnostics: Diagnostic[];
}

// ---- wording of syntax errors ("unexpected X: expected Y"; this table is Y) ----

const TOP_LEVEL = "'import', 'block' or 'model'";

/** What a rule expects when none of its alternatives fits, in plain words. */
const RULE_EXPECTS: Readonly<Record<string, string>> = {
  program: TOP_LEVEL,
  statement: 'a statement',
  expr: 'an expression',
  notExpr: 'an expression',
  unaryExpr: 'an expression',
  primary: 'an expression',
  arg: 'an argument',
  hfKey: 'a config key (a name or a string)',
  ifStmt: "'if' or '{' after 'else'",
};

/** Tokens that are expected where more could come: [rule, token, wording right after an opener
 * or a comma, wording elsewhere]. Chevrotain reports only the single token it tried last. */
const EXPECTED_IN_RULE: readonly (readonly [string, TokenType, string, string])[] = [
  ['importDecl', T.LCurly, "a name or '{'", "a name or '{'"],
  ['assignStmt', T.Equals, "'='", "'=' or ','"],
  ['body', T.RCurly, "a statement or '}'", "a statement or '}'"],
  ['paramList', T.RParen, "a parameter or ')'", "',' or ')'"],
  ['inputList', T.RParen, "an input or ')'", "',' or ')'"],
  ['callSuffix', T.RParen, "an argument or ')'", "',' or ')'"],
  ['listExpr', T.RBracket, "an expression or ']'", "',' or ']'"],
  ['weightStmt', T.RBracket, "an expression or ']'", "',' or ']'"],
  ['inputItem', T.RBracket, "an expression or ']'", "',' or ']'"],
  ['importDecl', T.RCurly, "a name or '}'", "',' or '}'"],
];

const OPENERS = new Set<TokenType>([T.LParen, T.LBracket, T.LCurly, T.Comma]);

function label(t: TokenType): string {
  return t === EOF ? 'end of input' : tokenLabel(t);
}

/** "a", "a or b", "a, b or c" */
function oneOf(items: readonly string[]): string {
  const unique = [...new Set(items)];
  if (unique.length > 5) return `one of ${unique.slice(0, 5).join(', ')}, …`;
  return unique.length <= 1 ? (unique[0] ?? 'something else') : `${unique.slice(0, -1).join(', ')} or ${unique[unique.length - 1]}`;
}

/** chevrotain calls these while parsing; each returns only the "expected …" part of AC102. */
const expectedWording: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, previous, ruleName }) {
    if (ruleName === 'program' && expected === EOF) return TOP_LEVEL;
    for (const [rule, token, first, after] of EXPECTED_IN_RULE) {
      if (rule === ruleName && token === expected) return previous && OPENERS.has(previous.tokenType) ? first : after;
    }
    return label(expected);
  },
  buildNotAllInputParsedMessage() {
    return TOP_LEVEL;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, ruleName }) {
    return RULE_EXPECTS[ruleName] ?? oneOf(expectedPathsPerAlt.flatMap((alt) => alt.map((path) => (path[0] ? label(path[0]) : 'end of input'))));
  },
  buildEarlyExitMessage({ expectedIterationPaths, ruleName }) {
    return RULE_EXPECTS[ruleName] ?? oneOf(expectedIterationPaths.map((path) => (path[0] ? label(path[0]) : 'end of input')));
  },
};

// Constructing a chevrotain parser analyses the whole grammar (~100 ms): there is one.
const parser = new ArchParser(expectedWording);

/** Maps offsets to 1-based line/column, with the lexer's line terminators (\n, \r\n, \r). */
class Lines {
  private readonly starts: number[] = [0];
  constructor(
    readonly text: string,
    readonly file: string,
  ) {
    const re = /\r\n?|\n/g;
    for (let m = re.exec(text); m; m = re.exec(text)) this.starts.push(m.index + m[0].length);
  }
  private pos(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.starts[lo] + 1 };
  }
  span(offset: number, endOffset: number): Span {
    const a = this.pos(offset);
    const b = this.pos(endOffset);
    return { file: this.file, line: a.line, col: a.col, endLine: b.line, endCol: b.col, offset, endOffset };
  }
  /** A real token's span, or an empty span at the end of the text for EOF. */
  token(t: IToken): Span {
    if (t.tokenType === EOF || !Number.isFinite(t.startOffset)) return this.span(this.text.length, this.text.length);
    return this.span(t.startOffset, (t.endOffset ?? t.startOffset) + 1);
  }
}

/** How an unexpected token reads in a message. */
function describe(t: IToken): string {
  if (t.tokenType === EOF || !Number.isFinite(t.startOffset)) return 'end of input';
  const image = t.image.length > 24 ? `${t.image.slice(0, 20)}…` : t.image;
  return `'${image}'`;
}

/** Lexing problems: unknown characters (AC101), unterminated strings (AC103), malformed numbers (AC104),
 * unknown escapes (AC107). */
function lexDiagnostics(lines: Lines, tokens: readonly IToken[], errors: readonly { offset: number; length: number }[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const e of errors) {
    const ch = String.fromCodePoint(lines.text.codePointAt(e.offset) ?? 0);
    const shown = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(ch) ? `'${ch}'` : `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    out.push(diag('AC101', lines.span(e.offset, e.offset + Math.max(1, e.length)), [shown]));
  }
  for (const t of tokens) {
    if (t.tokenType === T.BadString) out.push(diag('AC103', lines.token(t), [], 'close the string with " on the same line'));
    if (t.tokenType === T.StringToken || t.tokenType === T.BadString) {
      for (const m of t.image.matchAll(/\\(.?)/g)) {
        if (m[1] === '"' || m[1] === '\\' || m[1] === 'n' || m[1] === '') continue;
        const at = t.startOffset + (m.index ?? 0);
        out.push(diag('AC107', lines.span(at, at + m[0].length), [`'${m[0]}'`], 'the escapes are \\" \\\\ and \\n'));
      }
    }
    if (t.tokenType === T.BadNumber) out.push(diag('AC104', lines.token(t), [`'${t.image}'`]));
  }
  return out;
}

/**
 * AC102 for each syntax error that is not an echo. Recovery often trips again just after a
 * mistake (newlines are whitespace, so it cannot tell where a statement was meant to end): an
 * error within two tokens of an earlier problem, or on its line, is not reported.
 */
function syntaxDiagnostics(lines: Lines, tokens: readonly IToken[], lexical: readonly Diagnostic[], errors: readonly IRecognitionException[]): Diagnostic[] {
  // Index of the last token that starts before `offset` (-1 if none).
  const before = (offset: number): number => {
    let lo = 0;
    let hi = tokens.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tokens[mid].startOffset < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  };
  // A skipped character (AC101) sits just before the token that follows it; the others are tokens.
  // Marks are kept sorted by token index, with the smallest marked index of each line, so each
  // error is checked in O(log n) (a file can hold 100k errors).
  const marks: number[] = [];
  const lineMin = new Map<number, number>();
  /** How many marks are <= index. */
  const upTo = (index: number) => {
    let lo = 0;
    let hi = marks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (marks[mid]! <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const mark = (index: number, line: number) => {
    marks.splice(upTo(index), 0, index);
    lineMin.set(line, Math.min(lineMin.get(line) ?? Infinity, index));
  };
  /** Is there a mark m with index - 2 <= m <= index? */
  const near = (index: number) => upTo(index) > 0 && index - marks[upTo(index) - 1]! <= 2;
  for (const d of lexical) if (d.span) mark(before(d.span.endOffset) + (d.code === 'AC101' ? 1 : 0), d.span.line);
  const out: Diagnostic[] = [];
  for (const e of errors) {
    const span = lines.token(e.token);
    const index = span.offset >= lines.text.length ? tokens.length : before(span.offset + 1);
    if (near(index) || (lineMin.get(span.line) ?? Infinity) <= index) continue;
    mark(index, span.line);
    const reserved = T.RESERVED.has(e.token.tokenType) && /\ba name\b/.test(e.message);
    out.push(diag('AC102', span, [describe(e.token), e.message], reserved ? `'${e.token.image}' is a reserved word and cannot be a name` : undefined));
  }
  return out;
}

function emptyProgram(file: string): Program {
  return { file, imports: [], blocks: [], models: [] };
}

/** Lexes, parses and builds `text`; never throws. Diagnostics come back sorted by position. */
export interface ParseOptions {
  /** Most tokens parsed, else AC500 and no AST (the compiler's `source-tokens`, compiler/limits.ts). */
  readonly maxTokens?: { readonly name: string; readonly value: number };
}

export function parse(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  const lines = new Lines(text, file);
  const lexed = T.archLexer.tokenize(text);
  const max = opts.maxTokens;
  if (max && lexed.tokens.length > max.value) {
    const at = lines.token(lexed.tokens[max.value]!);
    return { program: emptyProgram(file), diagnostics: [diag('AC500', at, [max.name, `${file} has ${lexed.tokens.length.toLocaleString('en-US')} tokens`, max.value.toLocaleString('en-US')])] };
  }
  const diagnostics = lexDiagnostics(lines, lexed.tokens, lexed.errors);

  parser.input = lexed.tokens;
  let cst: CstNode;
  try {
    cst = parser.program();
  } catch (e) {
    // Only running out of call stack escapes chevrotain (it recovers from every syntax error).
    if (!(e instanceof RangeError)) throw e;
    diagnostics.push(diag('AC108', lines.token(parser.nextToken()), []));
    return { program: emptyProgram(file), diagnostics };
  }
  for (const d of syntaxDiagnostics(lines, lexed.tokens, diagnostics, parser.errors)) diagnostics.push(d);

  let program: Program;
  try {
    program = buildProgram(cst, file, diagnostics);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    diagnostics.push(diag('AC108', lines.span(0, 0), []));
    program = emptyProgram(file);
  }
  diagnostics.sort((a, b) => (a.span?.offset ?? 0) - (b.span?.offset ?? 0));
  return { program, diagnostics };
}
