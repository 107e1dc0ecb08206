// The .arch lexer: chevrotain token types and one shared Lexer instance.
// Malformed strings and numbers are still tokens (BadString, BadNumber) in the string/number
// categories, so the parser reads on; dsl/index.ts reports them (AC103, AC104) and bad escapes (AC107).

import { createToken, Lexer, type TokenType } from 'chevrotain';

// Whitespace (newlines included) and `#` comments carry no meaning.
export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v\uFEFF]+/, group: Lexer.SKIPPED, line_breaks: true });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\r\n]*/, group: Lexer.SKIPPED });

// Categories: the parser consumes these; concrete tokens below belong to them.
/** Anything usable as a name: identifiers and the soft keywords (`model`, `weight`, …). */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA, label: 'a name' });
/** Names that can also start an assignment: identifiers and the soft keywords that start no statement. */
export const Target = createToken({ name: 'Target', pattern: Lexer.NA, label: 'a name' });
export const NumberLit = createToken({ name: 'NumberLit', pattern: Lexer.NA, label: 'a number' });
export const StringLit = createToken({ name: 'StringLit', pattern: Lexer.NA, label: 'a string' });
export const AddOp = createToken({ name: 'AddOp', pattern: Lexer.NA, label: "'+' or '-'" });
export const MulOp = createToken({ name: 'MulOp', pattern: Lexer.NA, label: "'*', '/', '//' or '%'" });
export const CmpOp = createToken({ name: 'CmpOp', pattern: Lexer.NA, label: 'a comparison' });

export const Ident = createToken({ name: 'Ident', pattern: /[A-Za-z_][A-Za-z0-9_]*/, categories: [Name, Target], label: 'a name' });

function keyword(word: string, categories: TokenType[] = []): TokenType {
  const name = word[0].toUpperCase() + word.slice(1);
  return createToken({ name, pattern: new RegExp(word), longer_alt: Ident, categories, label: `'${word}'` });
}

// Soft keywords: they start a declaration or statement but may also be used as names
// (`scope model { … }`, `weight weight[dim]`, `model.embed_tokens.weight`). Those that start a
// statement cannot start an assignment, so one token always decides which statement comes.
export const Import = keyword('import', [Name, Target]);
export const Block = keyword('block', [Name, Target]);
export const Model = keyword('model', [Name, Target]);
export const Param = keyword('param', [Name]);
export const Let = keyword('let', [Name]);
export const Weight = keyword('weight', [Name]);
export const Scope = keyword('scope', [Name]);
// Reserved keywords.
export const For = keyword('for');
export const In = keyword('in', [CmpOp]);
export const As = keyword('as');
export const If = keyword('if');
export const Then = keyword('then');
export const Else = keyword('else');
export const Return = keyword('return');
export const Assert = keyword('assert');
export const Hf = keyword('hf');
export const And = keyword('and');
export const Or = keyword('or');
export const Not = keyword('not');
export const True = keyword('true');
export const False = keyword('false');
export const Inf = keyword('inf');
/** The keywords that can never be names. */
export const RESERVED: ReadonlySet<TokenType> = new Set([For, In, As, If, Then, Else, Return, Assert, Hf, And, Or, Not, True, False, Inf]);

const DIGITS = '0123456789'.split('');
// `0..n` lexes as 0 .. n: a fraction needs a digit after the dot. A number glued to letters
// (`12ab`, `1e`, `1e+`) is a BadNumber.
export const NumberToken = createToken({
  name: 'Number',
  pattern: /\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z0-9_]|\.\d)/,
  start_chars_hint: DIGITS,
  categories: [NumberLit],
  label: 'a number',
});
export const BadNumber = createToken({ name: 'BadNumber', pattern: /\d+(?:\.\d+)?(?:[eE][+-]?)?[A-Za-z0-9_]*/, categories: [NumberLit], label: 'a number' });
// Strings stay on one line; escapes are checked by dsl/index.ts.
export const StringToken = createToken({ name: 'String', pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*"/, categories: [StringLit], label: 'a string' });
export const BadString = createToken({ name: 'BadString', pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*\\?/, categories: [StringLit], label: 'a string' });

function punct(name: string, text: string, categories: TokenType[] = []): TokenType {
  const pattern = new RegExp(text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
  return createToken({ name, pattern, categories, label: `'${text}'` });
}

export const DotDot = punct('DotDot', '..');
export const Dot = punct('Dot', '.');
export const StarStar = punct('StarStar', '**');
export const Star = punct('Star', '*', [MulOp]);
export const SlashSlash = punct('SlashSlash', '//', [MulOp]);
export const Slash = punct('Slash', '/', [MulOp]);
export const Percent = punct('Percent', '%', [MulOp]);
export const Plus = punct('Plus', '+', [AddOp]);
export const Minus = punct('Minus', '-', [AddOp]);
export const EqEq = punct('EqEq', '==', [CmpOp]);
export const NotEq = punct('NotEq', '!=', [CmpOp]);
export const LtEq = punct('LtEq', '<=', [CmpOp]);
export const Lt = punct('Lt', '<', [CmpOp]);
export const GtEq = punct('GtEq', '>=', [CmpOp]);
export const Gt = punct('Gt', '>', [CmpOp]);
export const Equals = punct('Equals', '=');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const LCurly = punct('LCurly', '{');
export const RCurly = punct('RCurly', '}');
export const Comma = punct('Comma', ',');
export const Colon = punct('Colon', ':');
export const Semi = punct('Semi', ';');
export const Pipe = punct('Pipe', '|');

/** Every token type, in matching order: the first pattern that matches wins, a keyword yields to a
 * longer identifier (`model_dim`), and `inf` is tried before `in`. */
export const allTokens: TokenType[] = [
  WhiteSpace, Comment,
  Name, Target, NumberLit, StringLit, AddOp, MulOp, CmpOp,
  Import, Block, Model, Param, Let, Weight, Scope,
  For, Inf, In, Assert, As, If, Then, Else, Return, Hf, And, Or, Not, True, False,
  Ident,
  NumberToken, BadNumber, StringToken, BadString,
  DotDot, Dot, StarStar, Star, SlashSlash, Slash, Percent, Plus, Minus,
  EqEq, NotEq, LtEq, Lt, GtEq, Gt, Equals,
  LParen, RParen, LBracket, RBracket, LCurly, RCurly, Comma, Colon, Semi, Pipe,
];

/** The shared lexer (building one analyses every pattern, so there is only one). */
export const archLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: true });
