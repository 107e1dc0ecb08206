// CST -> AST: turns the chevrotain concrete syntax tree of dsl/parser.ts into dsl/ast.ts nodes
// with precise spans. After error recovery any child may be missing: a piece that cannot be built
// is skipped (its parent keeps what it can). Nothing here throws, short of running out of stack on
// absurdly deep nesting, which dsl/index.ts turns into AC108.

import type { CstElement, CstNode, IToken } from 'chevrotain';
import type { Arg, BinaryOp, BlockDecl, Expr, HfKey, ImportDecl, Input, ModelDecl, Param, Program, Span, Stmt, TypeName } from './ast.ts';
import { diag, type Diagnostic } from './diagnostics.ts';
import * as T from './lexer.ts';

const TYPE_NAMES: readonly TypeName[] = ['int', 'float', 'bool', 'str', 'dtype', 'list'];

/** Builds the AST of one file; semantic complaints found on the way go to `diagnostics`. */
export function buildProgram(cst: CstNode | undefined, file: string, diagnostics: Diagnostic[]): Program {
  return new Builder(file, diagnostics).program(cst);
}

/** The value of a string token: the text between the quotes with `\"`, `\\`, `\n` decoded
 * (an unknown escape keeps its character; dsl/index.ts reports it). */
export function decodeString(t: IToken): string {
  const body = t.image.slice(1, t.tokenType === T.StringToken ? -1 : undefined);
  return body.replace(/\\(.?)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function isNode(e: CstElement): e is CstNode {
  return 'children' in e;
}

/** A token that is really in the text (not one invented by single-token-insertion recovery). */
function isReal(e: CstElement): e is IToken {
  return !isNode(e) && e.isInsertedInRecovery !== true && Number.isFinite(e.startOffset) && Number.isFinite(e.endOffset);
}

function defined<V>(v: V | undefined): v is V {
  return v !== undefined;
}

class Builder {
  constructor(
    readonly file: string,
    readonly diagnostics: Diagnostic[],
  ) {}

  // ---- CST access ----

  nodes(n: CstNode | undefined, key: string): CstNode[] {
    return (n?.children[key] ?? []).filter(isNode);
  }
  node(n: CstNode | undefined, key: string): CstNode | undefined {
    return this.nodes(n, key)[0];
  }
  toks(n: CstNode | undefined, key: string): IToken[] {
    return (n?.children[key] ?? []).filter(isReal);
  }
  tok(n: CstNode | undefined, key: string): IToken | undefined {
    return this.toks(n, key)[0];
  }

  // ---- spans ----

  tokSpan(t: IToken): Span {
    return {
      file: this.file,
      line: t.startLine ?? 1,
      col: t.startColumn ?? 1,
      endLine: t.endLine ?? t.startLine ?? 1,
      endCol: (t.endColumn ?? t.startColumn ?? 0) + 1,
      offset: t.startOffset,
      endOffset: (t.endOffset ?? t.startOffset) + 1,
    };
  }

  /** The span of every real token under `n`, or undefined when it has none. */
  nodeSpan(n: CstNode | undefined): Span | undefined {
    const l = n?.location;
    if (!l || !Number.isFinite(l.startOffset) || !Number.isFinite(l.endOffset)) return undefined;
    return {
      file: this.file,
      line: l.startLine ?? 1,
      col: l.startColumn ?? 1,
      endLine: l.endLine ?? 1,
      endCol: (l.endColumn ?? 0) + 1,
      offset: l.startOffset,
      endOffset: (l.endOffset ?? l.startOffset) + 1,
    };
  }

  join(a: Span, b: Span): Span {
    return { file: this.file, line: a.line, col: a.col, endLine: b.endLine, endCol: b.endCol, offset: a.offset, endOffset: b.endOffset };
  }

  /** The span of a CST node, or of the expression built from it when the node has no location. */
  spanOf(n: CstNode | undefined, e: Expr): Span {
    return this.nodeSpan(n) ?? e.span;
  }

  // ---- declarations ----

  program(n: CstNode | undefined): Program {
    return {
      file: this.file,
      imports: this.nodes(n, 'importDecl').map((d) => this.importDecl(d)).filter(defined),
      blocks: this.nodes(n, 'blockDecl').map((d) => this.blockDecl(d)).filter(defined),
      models: this.nodes(n, 'modelDecl').map((d) => this.modelDecl(d)).filter(defined),
    };
  }

  importDecl(n: CstNode): ImportDecl | undefined {
    const span = this.nodeSpan(n);
    const path = this.toks(n, 'path').map((t) => t.image);
    if (!span || path.length === 0) return undefined;
    if (!this.tok(n, 'LCurly')) return { kind: 'import', path, span };
    const names = this.toks(n, 'names').map((t) => ({ name: t.image, span: this.tokSpan(t) }));
    return { kind: 'import', path, names, span };
  }

  blockDecl(n: CstNode): BlockDecl | undefined {
    const name = this.tok(n, 'Name');
    const span = this.nodeSpan(n);
    if (!name || !span) return undefined;
    const params = this.nodes(this.node(n, 'paramList'), 'paramItem').map((p) => this.paramItem(p)).filter(defined);
    const inputs = this.inputList(this.node(n, 'inputList'));
    return { kind: 'block', name: name.image, nameSpan: this.tokSpan(name), params, inputs, body: this.body(this.node(n, 'body')), span };
  }

  modelDecl(n: CstNode): ModelDecl | undefined {
    const name = this.tok(n, 'Name');
    const span = this.nodeSpan(n);
    if (!name || !span) return undefined;
    const inputs = this.inputList(this.node(n, 'inputList'));
    return { kind: 'model', name: name.image, nameSpan: this.tokSpan(name), inputs, body: this.body(this.node(n, 'body')), span };
  }

  paramItem(n: CstNode): Param | undefined {
    const name = this.tok(n, 'Name');
    const span = this.nodeSpan(n);
    if (!name || !span) return undefined;
    const def = this.expr(this.node(n, 'expr'));
    return def ? { name: name.image, default: def, span } : { name: name.image, span };
  }

  inputList(n: CstNode | undefined): Input[] {
    return this.nodes(n, 'inputItem').map((i) => this.inputItem(i)).filter(defined);
  }

  inputItem(n: CstNode): Input | undefined {
    const name = this.tok(n, 'name');
    const span = this.nodeSpan(n);
    if (!name || !span) return undefined;
    const dtype = this.tok(n, 'dtype');
    if (!dtype) return { name: name.image, span };
    if (!this.tok(n, 'LBracket')) return { name: name.image, dtype: dtype.image, span };
    const shape = this.nodes(n, 'expr').map((e) => this.expr(e)).filter(defined);
    return { name: name.image, dtype: dtype.image, shape, span };
  }

  // ---- statements ----

  body(n: CstNode | undefined): Stmt[] {
    return this.nodes(n, 'statement').map((s) => this.statement(s)).filter(defined);
  }

  statement(n: CstNode): Stmt | undefined {
    const key = Object.keys(n.children)[0] ?? '';
    const child = this.node(n, key);
    if (!child) return undefined;
    switch (key) {
      case 'paramStmt': return this.paramStmt(child);
      case 'letStmt': return this.letStmt(child);
      case 'weightStmt': return this.weightStmt(child);
      case 'forStmt': return this.forStmt(child);
      case 'ifStmt': return this.ifStmt(child);
      case 'scopeStmt': return this.scopeStmt(child);
      case 'returnStmt': return this.returnStmt(child);
      case 'assertStmt': return this.assertStmt(child);
      case 'assignStmt': return this.assignStmt(child);
      default: return undefined;
    }
  }

  paramStmt(n: CstNode): Stmt | undefined {
    const name = this.tok(n, 'name');
    const span = this.nodeSpan(n);
    const value = this.expr(this.node(n, 'expr'));
    if (!name || !span || !value) return undefined;
    const typeTok = this.tok(n, 'type');
    const type = typeTok && TYPE_NAMES.find((t) => t === typeTok.image);
    if (typeTok && !type) {
      this.diagnostics.push(diag('AC102', this.tokSpan(typeTok), [`'${typeTok.image}'`, `a type (${TYPE_NAMES.join(', ')})`]));
    }
    const hf = this.nodes(n, 'hfKey').map((k) => this.hfKey(k)).filter(defined);
    return { kind: 'param', name: name.image, nameSpan: this.tokSpan(name), ...(type ? { type } : {}), value, hf, span };
  }

  hfKey(n: CstNode): HfKey | undefined {
    const span = this.nodeSpan(n);
    if (!span) return undefined;
    const str = this.tok(n, 'StringLit');
    if (str) return { path: [decodeString(str)], span };
    const path = this.toks(n, 'Name').map((t) => t.image);
    return path.length > 0 ? { path, span } : undefined;
  }

  letStmt(n: CstNode): Stmt | undefined {
    const name = this.tok(n, 'Name');
    const span = this.nodeSpan(n);
    const value = this.expr(this.node(n, 'expr'));
    if (!name || !span || !value) return undefined;
    return { kind: 'let', name: name.image, nameSpan: this.tokSpan(name), value, span };
  }

  weightStmt(n: CstNode): Stmt | undefined {
    const name = this.tok(n, 'name');
    const span = this.nodeSpan(n);
    if (!name || !span) return undefined;
    const shape = this.nodes(n, 'shape').map((e) => this.expr(e)).filter(defined);
    const dtype = this.tok(n, 'dtype')?.image;
    const when = this.expr(this.node(n, 'when'));
    return {
      kind: 'weight',
      name: name.image,
      nameSpan: this.tokSpan(name),
      shape,
      ...(dtype !== undefined ? { dtype } : {}),
      ...(when !== undefined ? { when } : {}),
      span,
    };
  }

  forStmt(n: CstNode): Stmt | undefined {
    const variable = this.tok(n, 'variable');
    const span = this.nodeSpan(n);
    const from = this.addExpr(this.node(n, 'from'));
    const to = this.addExpr(this.node(n, 'to'));
    if (!variable || !span || !from || !to) return undefined;
    const as = this.tok(n, 'as')?.image;
    const body = this.body(this.node(n, 'body'));
    return { kind: 'for', variable: variable.image, variableSpan: this.tokSpan(variable), from, to, ...(as !== undefined ? { as } : {}), body, span };
  }

  ifStmt(n: CstNode): Stmt | undefined {
    const span = this.nodeSpan(n);
    const test = this.expr(this.node(n, 'expr'));
    if (!span || !test) return undefined;
    const elseIf = this.node(n, 'elseIf');
    const nested = elseIf ? this.ifStmt(elseIf) : undefined;
    const otherwise = elseIf ? (nested ? [nested] : []) : this.body(this.node(n, 'else'));
    return { kind: 'if', test, then: this.body(this.node(n, 'then')), else: otherwise, span };
  }

  scopeStmt(n: CstNode): Stmt | undefined {
    const name = this.tok(n, 'Name');
    const span = this.nodeSpan(n);
    if (!name || !span) return undefined;
    return { kind: 'scope', name: name.image, nameSpan: this.tokSpan(name), body: this.body(this.node(n, 'body')), span };
  }

  returnStmt(n: CstNode): Stmt | undefined {
    const span = this.nodeSpan(n);
    const values = this.nodes(n, 'expr').map((e) => this.expr(e)).filter(defined);
    if (!span || values.length === 0) return undefined;
    return { kind: 'return', values, span };
  }

  assertStmt(n: CstNode): Stmt | undefined {
    const span = this.nodeSpan(n);
    const test = this.expr(this.node(n, 'expr'));
    const message = this.tok(n, 'StringLit');
    if (!span || !test) return undefined;
    return { kind: 'assert', test, message: message ? decodeString(message) : undefined, span };
  }

  assignStmt(n: CstNode): Stmt | undefined {
    const span = this.nodeSpan(n);
    const targets = this.toks(n, 'Name').map((t) => ({ name: t.image, span: this.tokSpan(t) }));
    const value = this.expr(this.node(n, 'expr'));
    if (!span || targets.length === 0 || !value) return undefined;
    return { kind: 'assign', targets, value, span };
  }

  // ---- expressions ----

  expr(n: CstNode | undefined): Expr | undefined {
    const cond = this.node(n, 'condExpr');
    return cond ? this.condExpr(cond) : this.orExpr(this.node(n, 'orExpr'));
  }

  condExpr(n: CstNode): Expr | undefined {
    const span = this.nodeSpan(n);
    const test = this.expr(this.node(n, 'test'));
    const then = this.expr(this.node(n, 'then'));
    const otherwise = this.expr(this.node(n, 'else'));
    if (!span || !test || !then || !otherwise) return undefined;
    return { kind: 'cond', test, then, else: otherwise, span };
  }

  /** A left-associative chain `a op b op c` -> `(a op b) op c`; a broken operand ends the chain. */
  chain(n: CstNode | undefined, operandKey: string, opKey: string, build: (o: CstNode) => Expr | undefined): Expr | undefined {
    const operands = this.nodes(n, operandKey);
    const ops = this.toks(n, opKey);
    let acc = operands.length > 0 ? build(operands[0]) : undefined;
    if (!acc) return undefined;
    const start = this.spanOf(operands[0], acc);
    for (let i = 1; i < operands.length && i - 1 < ops.length; i++) {
      const right = build(operands[i]);
      if (!right) break;
      const span = this.join(start, this.spanOf(operands[i], right));
      acc = { kind: 'binary', op: ops[i - 1].image as BinaryOp, left: acc, right, span };
    }
    return acc;
  }

  orExpr(n: CstNode | undefined): Expr | undefined {
    return this.chain(n, 'andExpr', 'Or', (o) => this.andExpr(o));
  }

  andExpr(n: CstNode | undefined): Expr | undefined {
    return this.chain(n, 'notExpr', 'And', (o) => this.notExpr(o));
  }

  notExpr(n: CstNode | undefined): Expr | undefined {
    const not = this.tok(n, 'Not');
    if (!not) return this.chain(this.node(n, 'cmpExpr'), 'addExpr', 'CmpOp', (o) => this.addExpr(o));
    const inner = this.node(n, 'notExpr');
    const operand = this.notExpr(inner);
    if (!operand) return undefined;
    return { kind: 'unary', op: 'not', operand, span: this.join(this.tokSpan(not), this.spanOf(inner, operand)) };
  }

  addExpr(n: CstNode | undefined): Expr | undefined {
    return this.chain(n, 'mulExpr', 'AddOp', (o) => this.mulExpr(o));
  }

  mulExpr(n: CstNode | undefined): Expr | undefined {
    return this.chain(n, 'unaryExpr', 'MulOp', (o) => this.unaryExpr(o));
  }

  unaryExpr(n: CstNode | undefined): Expr | undefined {
    const minus = this.tok(n, 'Minus');
    if (!minus) return this.powExpr(this.node(n, 'powExpr'));
    const inner = this.node(n, 'unaryExpr');
    const operand = this.unaryExpr(inner);
    if (!operand) return undefined;
    return { kind: 'unary', op: '-', operand, span: this.join(this.tokSpan(minus), this.spanOf(inner, operand)) };
  }

  powExpr(n: CstNode | undefined): Expr | undefined {
    const baseNode = this.node(n, 'postfixExpr');
    const base = this.postfixExpr(baseNode);
    if (!base) return undefined;
    const expNode = this.node(n, 'unaryExpr');
    const exp = this.tok(n, 'StarStar') ? this.unaryExpr(expNode) : undefined;
    if (!exp) return base;
    return { kind: 'binary', op: '**', left: base, right: exp, span: this.join(this.spanOf(baseNode, base), this.spanOf(expNode, exp)) };
  }

  postfixExpr(n: CstNode | undefined): Expr | undefined {
    const primaryNode = this.node(n, 'primary');
    let acc = this.primary(primaryNode);
    if (!acc) return undefined;
    const start = this.spanOf(primaryNode, acc);
    for (const s of this.nodes(n, 'suffix')) {
      const end = this.nodeSpan(s);
      if (!end) break;
      const span = this.join(start, end);
      const call = this.node(s, 'callSuffix');
      const member = this.node(s, 'memberSuffix');
      const index = this.node(s, 'indexSuffix');
      if (call) {
        const args = this.nodes(call, 'arg').map((a) => this.arg(a)).filter(defined);
        acc = { kind: 'call', callee: acc, args, span };
      } else if (member) {
        const name = this.tok(member, 'Name');
        if (!name) break;
        acc = { kind: 'member', object: acc, name: name.image, nameSpan: this.tokSpan(name), span };
      } else if (index) {
        const i = this.expr(this.node(index, 'expr'));
        if (!i) break;
        acc = { kind: 'index', object: acc, index: i, span };
      }
    }
    return acc;
  }

  arg(n: CstNode): Arg | undefined {
    const span = this.nodeSpan(n);
    const value = this.expr(this.node(n, 'expr'));
    if (!span || !value) return undefined;
    const name = this.tok(n, 'Name');
    return name ? { name: name.image, nameSpan: this.tokSpan(name), value, span } : { value, span };
  }

  primary(n: CstNode | undefined): Expr | undefined {
    if (!n) return undefined;
    const num = this.tok(n, 'NumberLit');
    if (num) {
      const bad = num.tokenType === T.BadNumber;
      return { kind: 'num', value: bad ? NaN : parseFloat(num.image), isInt: !bad && /^\d+$/.test(num.image), span: this.tokSpan(num) };
    }
    const str = this.tok(n, 'StringLit');
    if (str) return { kind: 'str', value: decodeString(str), span: this.tokSpan(str) };
    const lit = this.tok(n, 'True') ?? this.tok(n, 'False');
    if (lit) return { kind: 'bool', value: lit.tokenType === T.True, span: this.tokSpan(lit) };
    const inf = this.tok(n, 'Inf');
    if (inf) return { kind: 'num', value: Infinity, isInt: false, span: this.tokSpan(inf) };
    const list = this.node(n, 'listExpr');
    if (list) {
      const span = this.nodeSpan(list);
      if (!span) return undefined;
      return { kind: 'list', items: this.nodes(list, 'expr').map((e) => this.expr(e)).filter(defined), span };
    }
    const paren = this.node(n, 'parenExpr');
    if (paren) return this.expr(this.node(paren, 'expr'));
    const labeled = this.node(n, 'labeled');
    if (labeled) return this.labeled(labeled);
    const name = this.tok(n, 'Name');
    if (name) return { kind: 'name', name: name.image, span: this.tokSpan(name) };
    return undefined;
  }

  labeled(n: CstNode): Expr | undefined {
    const label = this.tok(n, 'Name');
    const inner = this.node(n, 'postfixExpr');
    const expr = this.postfixExpr(inner);
    if (!label || !expr) return undefined;
    const labelSpan = this.tokSpan(label);
    return { kind: 'labeled', label: label.image, labelSpan, expr, span: this.join(labelSpan, this.spanOf(inner, expr)) };
  }
}
