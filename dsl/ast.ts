// The .arch abstract syntax tree: plain, readonly data with a source span on every node.
// Built by dsl/build.ts from the chevrotain CST; consumed by compiler/instantiate.ts.

/** A half-open source range; lines and columns are 1-based, offsets 0-based. */
export interface Span {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly endLine: number;
  readonly endCol: number;
  readonly offset: number;
  readonly endOffset: number;
}

export type BinaryOp =
  | '+' | '-' | '*' | '/' | '//' | '%' | '**'
  | '==' | '!=' | '<' | '<=' | '>' | '>='
  | 'and' | 'or' | 'in';

export type Expr =
  | { readonly kind: 'num'; readonly value: number; readonly isInt: boolean; readonly span: Span }
  | { readonly kind: 'bool'; readonly value: boolean; readonly span: Span }
  | { readonly kind: 'str'; readonly value: string; readonly span: Span }
  | { readonly kind: 'list'; readonly items: readonly Expr[]; readonly span: Span }
  /** A bare identifier: a param, a local, a weight, a block, a primitive. */
  | { readonly kind: 'name'; readonly name: string; readonly span: Span }
  /** `a.b`: a member of a named child (used for weight paths such as `model.embed_tokens.weight`). */
  | { readonly kind: 'member'; readonly object: Expr; readonly name: string; readonly nameSpan: Span; readonly span: Span }
  /** `a[i]`: list indexing. */
  | { readonly kind: 'index'; readonly object: Expr; readonly index: Expr; readonly span: Span }
  | { readonly kind: 'unary'; readonly op: '-' | 'not'; readonly operand: Expr; readonly span: Span }
  | { readonly kind: 'binary'; readonly op: BinaryOp; readonly left: Expr; readonly right: Expr; readonly span: Span }
  /** `if test then a else b` */
  | { readonly kind: 'cond'; readonly test: Expr; readonly then: Expr; readonly else: Expr; readonly span: Span }
  /** `f(a, b, key: c)`: a primitive op, a block instantiation (with params) or a block application (with inputs). */
  | { readonly kind: 'call'; readonly callee: Expr; readonly args: readonly Arg[]; readonly span: Span }
  /** `label: Block(params)(inputs)`: names the instance that the expression creates. */
  | { readonly kind: 'labeled'; readonly label: string; readonly labelSpan: Span; readonly expr: Expr; readonly span: Span };

export interface Arg {
  /** Present for `name: value` arguments. */
  readonly name?: string;
  readonly nameSpan?: Span;
  readonly value: Expr;
  readonly span: Span;
}

export type TypeName = 'int' | 'float' | 'bool' | 'str' | 'dtype' | 'list';

export interface HfKey {
  /** Dotted path into config.json, e.g. `rope_parameters.rope_theta`. */
  readonly path: readonly string[];
  readonly span: Span;
}

export type Stmt =
  /** `param name[: type] = default [hf: key | key ...]` (model bodies only). */
  | {
      readonly kind: 'param';
      readonly name: string;
      readonly nameSpan: Span;
      readonly type?: TypeName;
      readonly value: Expr;
      readonly hf: readonly HfKey[];
      readonly span: Span;
    }
  /** `let name = expr`: a compile-time local. */
  | { readonly kind: 'let'; readonly name: string; readonly nameSpan: Span; readonly value: Expr; readonly span: Span }
  /** `weight name[dims] [: dtype] [if cond]` */
  | {
      readonly kind: 'weight';
      readonly name: string;
      readonly nameSpan: Span;
      readonly shape: readonly Expr[];
      readonly dtype?: string;
      readonly when?: Expr;
      readonly span: Span;
    }
  /** `a, b = expr`: binds values (tensors, tuple parts, or a block instance named after the target). */
  | { readonly kind: 'assign'; readonly targets: readonly { readonly name: string; readonly span: Span }[]; readonly value: Expr; readonly span: Span }
  /** `for i in lo..hi [as name] { ... }`: `as name` prefixes instance names with `name.<i>`. */
  | {
      readonly kind: 'for';
      readonly variable: string;
      readonly variableSpan: Span;
      readonly from: Expr;
      readonly to: Expr;
      readonly as?: string;
      readonly body: readonly Stmt[];
      readonly span: Span;
    }
  /** `if cond { ... } else { ... }` */
  | { readonly kind: 'if'; readonly test: Expr; readonly then: readonly Stmt[]; readonly else: readonly Stmt[]; readonly span: Span }
  /** `scope name { ... }`: prefixes instance names with `name.`. */
  | { readonly kind: 'scope'; readonly name: string; readonly nameSpan: Span; readonly body: readonly Stmt[]; readonly span: Span }
  /** `assert cond, "message"`: a compile-time check with the author's message. */
  | { readonly kind: 'assert'; readonly test: Expr; readonly message?: string; readonly span: Span }
  /** `return a, b` */
  | { readonly kind: 'return'; readonly values: readonly Expr[]; readonly span: Span };

export interface Param {
  readonly name: string;
  readonly default?: Expr;
  readonly span: Span;
}

export interface Input {
  readonly name: string;
  /** Model inputs carry a type, e.g. `tokens: i32[T]`. */
  readonly dtype?: string;
  readonly shape?: readonly Expr[];
  readonly span: Span;
}

/** `block Name(params)(inputs) { body }` */
export interface BlockDecl {
  readonly kind: 'block';
  readonly name: string;
  readonly nameSpan: Span;
  readonly params: readonly Param[];
  readonly inputs: readonly Input[];
  readonly body: readonly Stmt[];
  readonly span: Span;
}

/** `model Name(inputs) { body }` */
export interface ModelDecl {
  readonly kind: 'model';
  readonly name: string;
  readonly nameSpan: Span;
  readonly inputs: readonly Input[];
  readonly body: readonly Stmt[];
  readonly span: Span;
}

/** `import std.{A, B}` or `import std.layers` (a path relative to the models directory). */
export interface ImportDecl {
  readonly kind: 'import';
  readonly path: readonly string[];
  readonly names?: readonly { readonly name: string; readonly span: Span }[];
  readonly span: Span;
}

export interface Program {
  readonly file: string;
  readonly imports: readonly ImportDecl[];
  readonly blocks: readonly BlockDecl[];
  readonly models: readonly ModelDecl[];
}
