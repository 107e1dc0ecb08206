// AST shape, precedence and span tests for the .arch front end (dsl/index.ts parse).

import { describe, expect, it } from 'vitest';
import type { Expr, Program, Stmt } from '../../dsl/ast.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from '../../dsl/index.ts';

/** A program using every construct (test/fixtures/dsl/sample.arch). */
const BAMBA = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'dsl', 'sample.arch'), 'utf8');

/** Drops spans (and the file) so shapes can be compared with plain literals. */
function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(strip);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!/span$/i.test(k) && k !== 'file') out[k] = strip(x);
    return out;
  }
  return v;
}

function ok(text: string): Program {
  const { program, diagnostics } = parse(text, 'test.arch');
  expect(diagnostics).toEqual([]);
  return program;
}

/** The statements of `model M() { <body> }`. */
function body(src: string): readonly Stmt[] {
  return ok(`model M() {\n${src}\n}`).models[0].body;
}

/** The expression `e` in `x = e`. */
function ex(src: string): Expr {
  const [s] = body(`x = ${src}`);
  if (s.kind !== 'assign') throw new Error(`not an assignment: ${s.kind}`);
  return s.value;
}

// Compact AST builders for expectations.
const n = (name: string) => ({ kind: 'name', name });
const num = (value: number, isInt = Number.isInteger(value)) => ({ kind: 'num', value, isInt });
const bin = (op: string, left: unknown, right: unknown) => ({ kind: 'binary', op, left, right });
const un = (op: string, operand: unknown) => ({ kind: 'unary', op, operand });
const call = (callee: unknown, ...args: unknown[]) => ({ kind: 'call', callee, args: args.map((a) => (a && typeof a === 'object' && 'value' in a ? a : { value: a })) });
const named = (name: string, value: unknown) => ({ name, value });

describe('the example program', () => {
  it('parses without diagnostics', () => {
    const p = ok(BAMBA);
    expect(p.file).toBe('test.arch');
    expect(strip(p.imports)).toEqual([{ kind: 'import', path: ['std'], names: [{ name: 'RMSNorm' }, { name: 'Linear' }] }]);
    expect(p.blocks.map((b) => b.name)).toEqual(['RMSNorm']);
    expect(p.models.map((m) => m.name)).toEqual(['Tiny']);
  });

  it('builds the block signature and body', () => {
    const [b] = ok(BAMBA).blocks;
    expect(strip(b.params)).toEqual([{ name: 'dim' }, { name: 'eps', default: num(1e-5, false) }]);
    expect(strip(b.inputs)).toEqual([{ name: 'x' }]);
    expect(strip(b.body)).toEqual([
      { kind: 'weight', name: 'weight', shape: [n('dim')] },
      { kind: 'return', values: [call(n('rmsnorm'), n('x'), n('weight'), named('eps', n('eps')))] },
    ]);
  });

  it('types model inputs', () => {
    const [m] = ok(BAMBA).models;
    expect(strip(m.inputs)).toEqual([
      { name: 'tokens', dtype: 'i32', shape: [n('T')] },
      { name: 'positions', dtype: 'i32', shape: [n('T')] },
    ]);
  });

  it('reads params with hf keys', () => {
    const params = ok(BAMBA).models[0].body.filter((s) => s.kind === 'param');
    expect(strip(params)).toEqual([
      { kind: 'param', name: 'vocab', value: num(256), hf: [{ path: ['vocab_size'] }] },
      { kind: 'param', name: 'theta', type: 'float', value: num(10000, false), hf: [{ path: ['rope_theta'] }, { path: ['rope_parameters', 'rope_theta'] }] },
      { kind: 'param', name: 'attn_layers', value: { kind: 'list', items: [num(1), num(3)] }, hf: [{ path: ['attn_layer_indices'] }] },
      {
        kind: 'param',
        name: 'd_head',
        value: {
          kind: 'cond',
          test: bin('==', n('mamba_d_head'), { kind: 'str', value: 'auto' }),
          then: bin('//', bin('*', n('d_model'), num(2)), n('n_heads')),
          else: n('mamba_d_head'),
        },
        hf: [{ path: ['mamba_d_head'] }],
      },
    ]);
  });

  it('nests scope, for and labeled instances', () => {
    const m = ok(BAMBA).models[0];
    const scope = m.body[4];
    expect(scope.kind).toBe('scope');
    if (scope.kind !== 'scope') return;
    expect(scope.name).toBe('model');
    const loop = scope.body[2];
    expect(strip({ ...loop, body: [] })).toEqual({ kind: 'for', variable: 'i', from: num(0), to: n('n_layers'), as: 'layers', body: [] });
    if (loop.kind !== 'for') return;
    expect(strip(loop.body[0])).toEqual({
      kind: 'assign',
      targets: [{ name: 'n' }],
      value: { kind: 'labeled', label: 'input_layernorm', expr: call(call(n('RMSNorm'), n('d_model'), n('eps')), n('x')) },
    });
    expect(strip(loop.body[1])).toEqual({
      kind: 'assign',
      targets: [{ name: 'h' }],
      value: bin('+', n('x'), {
        kind: 'cond',
        test: bin('in', n('i'), n('attn_layers')),
        then: { kind: 'labeled', label: 'self_attn', expr: call(call(n('Attn'), n('d_model')), n('n'), n('positions')) },
        else: { kind: 'labeled', label: 'mamba', expr: call(call(n('Mamba2'), n('d_model')), n('n')) },
      }),
    });
  });

  it('reads member paths through soft keywords', () => {
    const logits = ok(BAMBA).models[0].body[5];
    expect(strip(logits)).toEqual({
      kind: 'assign',
      targets: [{ name: 'logits' }],
      value: {
        kind: 'cond',
        test: n('tie'),
        then: call(n('head'), n('x'), { kind: 'member', object: { kind: 'member', object: n('model'), name: 'embed_tokens' }, name: 'weight' }),
        else: { kind: 'labeled', label: 'lm_head', expr: call(call(n('Head'), n('d_model'), n('vocab')), n('x')) },
      },
    });
  });
});

describe('declarations', () => {
  it('imports a module path or names from it', () => {
    const p = ok('import std.layers\nimport a.b.{X, Y}; import c');
    expect(strip(p.imports)).toEqual([
      { kind: 'import', path: ['std', 'layers'] },
      { kind: 'import', path: ['a', 'b'], names: [{ name: 'X' }, { name: 'Y' }] },
      { kind: 'import', path: ['c'] },
    ]);
  });

  it('accepts empty parameter, input and body lists', () => {
    const p = ok('block B()() {}\nmodel M() {}');
    expect(strip(p.blocks[0])).toEqual({ kind: 'block', name: 'B', params: [], inputs: [], body: [] });
    expect(strip(p.models[0])).toEqual({ kind: 'model', name: 'M', inputs: [], body: [] });
  });

  it('reads inputs with a dtype only, a shape, or nothing', () => {
    const p = ok('model M(a, b: f32, c: bf16[B, T, 4]) {}');
    expect(strip(p.models[0].inputs)).toEqual([{ name: 'a' }, { name: 'b', dtype: 'f32' }, { name: 'c', dtype: 'bf16', shape: [n('B'), n('T'), num(4)] }]);
  });

  it('keeps several blocks and models in source order', () => {
    const p = ok('block A()(x) { return x }\nmodel M() {}\nblock B()(x) { return x }\nmodel N() {}');
    expect(p.blocks.map((b) => b.name)).toEqual(['A', 'B']);
    expect(p.models.map((m) => m.name)).toEqual(['M', 'N']);
  });
});

describe('statements', () => {
  it('param with a type, string keys and no keys', () => {
    expect(strip(body('param eps: float = 1e-6 hf: "rms_norm_eps" | layer_norm_epsilon\nparam flag: bool = true'))).toEqual([
      { kind: 'param', name: 'eps', type: 'float', value: num(1e-6, false), hf: [{ path: ['rms_norm_eps'] }, { path: ['layer_norm_epsilon'] }] },
      { kind: 'param', name: 'flag', type: 'bool', value: { kind: 'bool', value: true }, hf: [] },
    ]);
  });

  it('accepts every type name', () => {
    const types = body('param a: int = 1\nparam b: float = 1\nparam c: bool = 1\nparam d: str = 1\nparam e: dtype = 1\nparam f: list = 1').map((s) => (s.kind === 'param' ? s.type : undefined));
    expect(types).toEqual(['int', 'float', 'bool', 'str', 'dtype', 'list']);
  });

  it('let', () => {
    expect(strip(body('let half = d / 2'))).toEqual([{ kind: 'let', name: 'half', value: bin('/', n('d'), num(2)) }]);
  });

  it('weight with shape, dtype and condition', () => {
    expect(strip(body('weight w[out, in_dim]\nweight b[out]: f32 if bias'))).toEqual([
      { kind: 'weight', name: 'w', shape: [n('out'), n('in_dim')] },
      { kind: 'weight', name: 'b', shape: [n('out')], dtype: 'f32', when: n('bias') },
    ]);
  });

  it("weight's `if` on the next line starts an if statement", () => {
    expect(strip(body('weight w[d]\nif bias { weight b[d] }'))).toEqual([
      { kind: 'weight', name: 'w', shape: [n('d')] },
      { kind: 'if', test: n('bias'), then: [{ kind: 'weight', name: 'b', shape: [n('d')] }], else: [] },
    ]);
  });

  it('for with and without `as`; `0..n` is a range, not a fraction', () => {
    expect(strip(body('for i in 0..n { }\nfor j in a + 1..2*b as layers { x = j }'))).toEqual([
      { kind: 'for', variable: 'i', from: num(0), to: n('n'), body: [] },
      { kind: 'for', variable: 'j', from: bin('+', n('a'), num(1)), to: bin('*', num(2), n('b')), as: 'layers', body: [{ kind: 'assign', targets: [{ name: 'x' }], value: n('j') }] },
    ]);
  });

  it('if / else if / else', () => {
    expect(strip(body('if a { x = 1 } else if b { x = 2 } else { x = 3 }'))).toEqual([
      {
        kind: 'if',
        test: n('a'),
        then: [{ kind: 'assign', targets: [{ name: 'x' }], value: num(1) }],
        else: [
          {
            kind: 'if',
            test: n('b'),
            then: [{ kind: 'assign', targets: [{ name: 'x' }], value: num(2) }],
            else: [{ kind: 'assign', targets: [{ name: 'x' }], value: num(3) }],
          },
        ],
      },
    ]);
  });

  it('scope, return of several values, multi-target assignment and semicolons', () => {
    expect(strip(body('scope model { a, b = split(x); ; c = a }; return a, b'))).toEqual([
      {
        kind: 'scope',
        name: 'model',
        body: [
          { kind: 'assign', targets: [{ name: 'a' }, { name: 'b' }], value: call(n('split'), n('x')) },
          { kind: 'assign', targets: [{ name: 'c' }], value: n('a') },
        ],
      },
      { kind: 'return', values: [n('a'), n('b')] },
    ]);
  });

  it('soft keywords are names where a name is expected', () => {
    expect(strip(body('model = Backbone(d)(x)\nweight weight[d]\nscope block { y = f(param, let, scope, import) }'))).toEqual([
      { kind: 'assign', targets: [{ name: 'model' }], value: call(call(n('Backbone'), n('d')), n('x')) },
      { kind: 'weight', name: 'weight', shape: [n('d')] },
      { kind: 'scope', name: 'block', body: [{ kind: 'assign', targets: [{ name: 'y' }], value: call(n('f'), n('param'), n('let'), n('scope'), n('import')) }] },
    ]);
  });

  it('ignores comments and line breaks', () => {
    expect(strip(body('x = a + # trailing\n  # whole line\n  b'))).toEqual([{ kind: 'assign', targets: [{ name: 'x' }], value: bin('+', n('a'), n('b')) }]);
  });
});

describe('expressions', () => {
  it('literals', () => {
    expect(strip(ex('[1, 1.0, 1e3, 2.5E-2, inf, true, false, "a\\"b\\\\c\\n", []]'))).toEqual({
      kind: 'list',
      items: [
        num(1, true),
        num(1, false),
        num(1000, false),
        num(0.025, false),
        num(Infinity, false),
        { kind: 'bool', value: true },
        { kind: 'bool', value: false },
        { kind: 'str', value: 'a"b\\c\n' },
        { kind: 'list', items: [] },
      ],
    });
  });

  it('trailing commas in lists and calls', () => {
    expect(strip(ex('[a, b,]'))).toEqual({ kind: 'list', items: [n('a'), n('b')] });
    expect(strip(ex('f(a, k: b,)'))).toEqual(call(n('f'), n('a'), named('k', n('b'))));
  });

  it.each([
    ['a + b * c', bin('+', n('a'), bin('*', n('b'), n('c')))],
    ['a * b + c', bin('+', bin('*', n('a'), n('b')), n('c'))],
    ['a - b - c', bin('-', bin('-', n('a'), n('b')), n('c'))],
    ['a / b // c % d', bin('%', bin('//', bin('/', n('a'), n('b')), n('c')), n('d'))],
    ['a ** b ** c', bin('**', n('a'), bin('**', n('b'), n('c')))],
    ['-a ** 2', un('-', bin('**', n('a'), num(2)))],
    ['a ** -b', bin('**', n('a'), un('-', n('b')))],
    ['- -a', un('-', un('-', n('a')))],
    ['-a * b', bin('*', un('-', n('a')), n('b'))],
    ['(a + b) * c', bin('*', bin('+', n('a'), n('b')), n('c'))],
    ['a + b < c * d', bin('<', bin('+', n('a'), n('b')), bin('*', n('c'), n('d')))],
    ['a == b and c != d', bin('and', bin('==', n('a'), n('b')), bin('!=', n('c'), n('d')))],
    ['a <= b or c >= d and e > f', bin('or', bin('<=', n('a'), n('b')), bin('and', bin('>=', n('c'), n('d')), bin('>', n('e'), n('f'))))],
    ['a or b or c', bin('or', bin('or', n('a'), n('b')), n('c'))],
    ['not a == b', un('not', bin('==', n('a'), n('b')))],
    ['not not a and b', bin('and', un('not', un('not', n('a'))), n('b'))],
    ['i in xs', bin('in', n('i'), n('xs'))],
    ['if a then b else c + 1', { kind: 'cond', test: n('a'), then: n('b'), else: bin('+', n('c'), num(1)) }],
    ['if a then if b then c else d else e', { kind: 'cond', test: n('a'), then: { kind: 'cond', test: n('b'), then: n('c'), else: n('d') }, else: n('e') }],
  ])('%s', (src, tree) => {
    expect(strip(ex(src))).toEqual(tree);
  });

  it('postfix chains: calls, members and indexing bind tightest, left to right', () => {
    expect(strip(ex('a.b[c].d(e)(f)'))).toEqual(
      call(call({ kind: 'member', object: { kind: 'index', object: { kind: 'member', object: n('a'), name: 'b' }, index: n('c') }, name: 'd' }, n('e')), n('f')),
    );
    expect(strip(ex('-f(x) ** 2'))).toEqual(un('-', bin('**', call(n('f'), n('x')), num(2))));
  });

  it('a label covers the postfix chain after it, not the operator after that', () => {
    expect(strip(ex('proj: Linear(d, e)(x) + 1'))).toEqual(
      bin('+', { kind: 'labeled', label: 'proj', expr: call(call(n('Linear'), n('d'), n('e')), n('x')) }, num(1)),
    );
  });

  it('`name:` in call arguments is a named argument; a labeled argument needs parentheses', () => {
    expect(strip(ex('f(a: g(x))'))).toEqual(call(n('f'), named('a', call(n('g'), n('x')))));
    expect(strip(ex('f((a: g(x)))'))).toEqual(call(n('f'), { kind: 'labeled', label: 'a', expr: call(n('g'), n('x')) }));
  });

  it('named argument values are full expressions', () => {
    expect(strip(ex('f(k: if a then 1 else 2, j: not b)'))).toEqual(
      call(n('f'), named('k', { kind: 'cond', test: n('a'), then: num(1), else: num(2) }), named('j', un('not', n('b')))),
    );
  });
});

describe('spans', () => {
  const src = 'model M(tokens: i32[T]) {\n  x = a + (b * c)\n  y = proj: Linear(d)(x).weight\n  for i in 0..n as layers {\n  }\n}';
  const m = ok(src).models[0];

  it('are 1-based, half-open, with 0-based offsets', () => {
    expect(m.nameSpan).toEqual({ file: 'test.arch', line: 1, col: 7, endLine: 1, endCol: 8, offset: 6, endOffset: 7 });
    expect(m.span).toMatchObject({ line: 1, col: 1, endLine: 6, endCol: 2, offset: 0, endOffset: src.length });
    expect(m.inputs[0].span).toMatchObject({ line: 1, col: 9, endLine: 1, endCol: 23 });
  });

  it('cover operands, including their parentheses', () => {
    const x = m.body[0];
    if (x.kind !== 'assign') throw new Error(x.kind);
    expect(x.span).toMatchObject({ line: 2, col: 3, endLine: 2, endCol: 18 });
    expect(x.targets[0].span).toMatchObject({ line: 2, col: 3, endCol: 4 });
    expect(x.value.span).toMatchObject({ line: 2, col: 7, endCol: 18 });
    if (x.value.kind !== 'binary') throw new Error(x.value.kind);
    expect(x.value.right.span).toMatchObject({ line: 2, col: 12, endCol: 17 });
    expect(src.slice(x.value.span.offset, x.value.span.endOffset)).toBe('a + (b * c)');
  });

  it('cover labels, calls and member names', () => {
    const y = m.body[1];
    if (y.kind !== 'assign' || y.value.kind !== 'labeled') throw new Error(y.kind);
    const text = (s: { offset: number; endOffset: number }) => src.slice(s.offset, s.endOffset);
    expect(text(y.value.span)).toBe('proj: Linear(d)(x).weight');
    expect(text(y.value.labelSpan)).toBe('proj');
    const member = y.value.expr;
    if (member.kind !== 'member') throw new Error(member.kind);
    expect(text(member.nameSpan)).toBe('weight');
    expect(member.nameSpan).toMatchObject({ line: 3, col: 26, endCol: 32 });
    expect(text(member.object.span)).toBe('Linear(d)(x)');
  });

  it('cover whole statements', () => {
    const loop = m.body[2];
    if (loop.kind !== 'for') throw new Error(loop.kind);
    expect(loop.span).toMatchObject({ line: 4, col: 3, endLine: 5, endCol: 4 });
    expect(loop.variableSpan).toMatchObject({ line: 4, col: 7, endCol: 8 });
  });

  it('count \\r\\n as one line break', () => {
    const p = ok('model M() {\r\n  x = 1\r\n}');
    expect(p.models[0].body[0].span).toMatchObject({ line: 2, col: 3, endLine: 2, endCol: 8 });
  });
});
