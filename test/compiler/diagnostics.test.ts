// Every semantic diagnostic has a failing input here: (source, code, line, col) rows.

import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { compileFile } from '../../compiler/compile.ts';
import { OP_BY_NAME } from '../../compiler/ops.ts';
import { CompileError } from '../../dsl/diagnostics.ts';
import { compileText, diagnosticsOf } from '../helpers/compile.ts';

const HEAD = `import std.{Linear, RMSNorm, Embedding, Head}\n`;
/** A model wrapped around `body`; line 3 of the source is the first body line. */
const model = (body: string, params = '  param d = 8') => `${HEAD}model M(tokens: i32[T], positions: i32[T]) {\n${body}\n${params}\n}\n`;

interface Row {
  readonly name: string;
  readonly source: string;
  readonly code: string;
  readonly line: number;
  readonly col: number;
  readonly set?: string[];
  readonly config?: Record<string, unknown>;
}

const ROWS: Row[] = [
  { name: 'unknown name', source: model('  x = embeddin(tokens, w)\n  return x'), code: 'AC200', line: 3, col: 7 },
  { name: 'duplicate block', source: `block B()(x) {\n  return x\n}\nblock B()(x) {\n  return x\n}\nmodel M(tokens: i32[T]) {\n  return tokens\n}\n`, code: 'AC201', line: 4, col: 7 },
  { name: 'duplicate param', source: model('  return tokens', '  param d = 8\n  param d = 9'), code: 'AC201', line: 5, col: 9 },
  { name: 'import of a missing name', source: `import std.{Linear, Nope}\nmodel M(tokens: i32[T]) {\n  return tokens\n}\n`, code: 'AC203', line: 1, col: 21 },
  { name: 'import of a missing file', source: `import nowhere.{Linear}\nmodel M(tokens: i32[T]) {\n  return tokens\n}\n`, code: 'AC105', line: 1, col: 1 },
  { name: 'no model', source: `block B()(x) {\n  return x\n}\n`, code: 'AC204', line: 0, col: 0 },
  { name: 'two models', source: `model A(t: i32[T]) {\n  return t\n}\nmodel B(t: i32[T]) {\n  return t\n}\n`, code: 'AC205', line: 4, col: 7 },
  { name: 'instance name used twice', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  y = n: RMSNorm(d)(x)\n  z = n: RMSNorm(d)(y)\n  return z'), code: 'AC206', line: 6, col: 7 },
  { name: 'missing weight path', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return head(x, e.bias)'), code: 'AC207', line: 5, col: 20 },
  { name: 'label on a primitive', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return lbl: silu(x)'), code: 'AC208', line: 5, col: 10 },
  { name: 'unknown attribute of a primitive', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return rmsnorm(x, e.weight, epsilon: 1e-5)'), code: 'AC210', line: 5, col: 31 },
  { name: 'unnamed instance', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return RMSNorm(d)(x)'), code: 'AC209', line: 5, col: 10 },
  { name: 'config value of the wrong type', source: model('  return tokens', '  param d = 8 hf: hidden_size'), code: 'AC301', line: 4, col: 19, config: { hidden_size: 4.5 } },
  { name: 'unknown --set param', source: model('  return tokens'), code: 'AC302', line: 0, col: 0, set: ['nope=1'] },
  { name: 'malformed --set', source: model('  return tokens'), code: 'AC303', line: 0, col: 0, set: ['d'] },
  { name: 'division by zero', source: model('  return tokens', '  param d = 8 // 0'), code: 'AC305', line: 4, col: 13 },
  { name: 'bad operands', source: model('  return tokens', '  param d = 8 + true'), code: 'AC306', line: 4, col: 13 },
  { name: 'too many block params', source: model('  e = Embedding(16, d, 3)\n  return e(tokens)'), code: 'AC307', line: 3, col: 24 },
  { name: 'missing block param', source: model('  e = Embedding(16)\n  return e(tokens)'), code: 'AC308', line: 3, col: 7 },
  { name: 'unknown named param', source: model('  e = Embedding(16, dim: d, size: 3)\n  return e(tokens)'), code: 'AC309', line: 3, col: 29 },
  { name: 'index out of range', source: model('  return tokens', '  param l = [1, 2]\n  param d = l[2]'), code: 'AC310', line: 5, col: 15 },
  { name: 'invalid --set value', source: model('  return tokens'), code: 'AC311', line: 0, col: 0, set: ['d=1.5'] },
  { name: 'param cycle', source: model('  return tokens', '  param d = e\n  param e = d'), code: 'AC312', line: 4, col: 9 },
  { name: 'tensor where a constant is needed', source: model('  let n = tokens\n  return tokens'), code: 'AC313', line: 3, col: 11 },
  { name: 'negative loop bound', source: model('  for i in 0..-1 {\n  }\n  return tokens'), code: 'AC314', line: 3, col: 15 },
  { name: 'mismatched widths', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return p: Linear(9, 4)(x)'), code: 'AC400', line: 5, col: 13 },
  { name: 'heads that do not divide', source: model('  e = Embedding(16, 12)\n  x = e(tokens)\n  q = reshape(x, dims: [3, 4])\n  k = reshape(x, dims: [2, 6])\n  return attention(q, k, k, scale: 1.0)'), code: 'AC400', line: 7, col: 10 },
  { name: 'a negative attention window', source: model('  e = Embedding(16, 12)\n  x = e(tokens)\n  q = reshape(x, dims: [3, 4])\n  return attention(q, q, q, scale: 1.0, window: -2)'), code: 'AC400', line: 6, col: 10 },
  { name: 'a fractional attention window', source: model('  e = Embedding(16, 12)\n  x = e(tokens)\n  q = reshape(x, dims: [3, 4])\n  return attention(q, q, q, scale: 1.0, window: 2.5)'), code: 'AC300', line: 6, col: 49 },
  { name: 'tensor of the wrong kind', source: model('  return silu(3)'), code: 'AC401', line: 3, col: 15 },
  // what check accepted and lowering or a renderer crashed on (issue 19, class 4)
  { name: 'an input the runtime does not feed', source: `model M(ids: i32[T]) {\n  weight e[16, 8]\n  return embedding(ids, e)\n}\n`, code: 'AC410', line: 1, col: 9 },
  { name: 'tokens of another shape', source: `model M(tokens: i32[T, 2]) {\n  weight e[16, 8]\n  return embedding(tokens, e)\n}\n`, code: 'AC410', line: 1, col: 9 },
  { name: 'a model that returns its input', source: model('  return tokens'), code: 'AC411', line: 3, col: 10 },
  { name: 'a model that returns a weight', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return e.weight'), code: 'AC411', line: 5, col: 10 },
  { name: 'logits of weights alone', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  logits = silu(e.weight)\n  return logits'), code: 'AC411', line: 6, col: 10 },
  { name: 'gather by float indices', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  r = reshape(x, dims: [2, 4])\n  return gather(r, r)'), code: 'AC400', line: 6, col: 10 },
  { name: 'scatter of more rows than indices', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  v, i = topk(x, k: 2)\n  return scatter(reshape(x, dims: [4, 2]), i, rows: 3)'), code: 'AC400', line: 6, col: 10 },
  { name: 'head with an activation as its weight', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  return head(x, silu(x))'), code: 'AC400', line: 5, col: 10 },
  { name: 'a one-tap causal conv', source: `import std.{CausalConv1d}\n${model('  e = Embedding(16, d)\n  x = e(tokens)\n  return head(c: CausalConv1d(d, 1)(x), e.weight)').replace(HEAD, 'import std.{Embedding}\n')}`, code: 'AC400', line: 6, col: 18 },
  { name: 'two ssd with different chunk lengths', source: `import std.{Mamba2, Embedding}\nmodel M(tokens: i32[T]) {\n  e = Embedding(16, 8)\n  x = e(tokens)\n  x = a: Mamba2(8, 2, 8, 1, 4, 4, 4)(x)\n  x = b: Mamba2(8, 2, 8, 1, 4, 4, 8)(x)\n  return head(x, e.weight)\n}\n`, code: 'AC400', line: 6, col: 10 },
  { name: 'more query heads per kv head than a WGSL workgroup holds', source: model('  e = Embedding(16, 514)\n  x = e(tokens)\n  weight w[2, 514]\n  q = reshape(x, dims: [257, 2])\n  k = reshape(linear(x, w), dims: [1, 2])\n  return attention(q, k, k, scale: 1.0)'), code: 'AC400', line: 8, col: 10 },
  { name: 'a chunk length of 2^31', source: `import std.{Mamba2, Embedding}\nmodel M(tokens: i32[T]) {\n  e = Embedding(16, 8)\n  x = e(tokens)\n  x = a: Mamba2(8, 2, 8, 1, 4, 4, 2147483648)(x)\n  return head(x, e.weight)\n}\n`, code: 'AC400', line: 5, col: 10 },
  { name: 'an infinite norm epsilon (the wasm text has no infinity literal)', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  n = RMSNorm(d, inf)\n  return head(n(x), e.weight)'), code: 'AC400', line: 6, col: 15 },
  { name: 'a row of more than 2^28 elements (wasm byte offsets past 32 bits)', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  weight w[268435457, 8]\n  return linear(x, w)'), code: 'AC400', line: 6, col: 10 },
  { name: 'a weight dimension of 2^31', source: model('  weight w[2147483648, 8]\n  return embedding(tokens, w)'), code: 'AC402', line: 3, col: 12 },
  { name: 'bad weight dimension', source: `block W()(x) {\n  weight w[0]\n  return x\n}\nmodel M(t: i32[T]) {\n  return q: W()(t)\n}\n`, code: 'AC402', line: 2, col: 12 },
  { name: 'unknown weight dtype', source: `block W()(x) {\n  weight w[4]: f64\n  return x\n}\nmodel M(t: i32[T]) {\n  return q: W()(t)\n}\n`, code: 'AC403', line: 2, col: 3 },
  { name: 'unpacking the wrong count', source: model('  e = Embedding(16, d)\n  a, b = split(e(tokens), sizes: [4, 2, 2])\n  return a'), code: 'AC404', line: 4, col: 10 },
  { name: 'block without return', source: `block B()(x) {\n  let y = 1\n}\nmodel M(t: i32[T]) {\n  return q: B()(t)\n}\n`, code: 'AC405', line: 1, col: 7 },
  { name: 'several outputs, none named logits', source: model('  e = Embedding(16, d)\n  x = e(tokens)\n  y = silu(x)\n  return x, y'), code: 'AC409', line: 6, col: 10 },
  // a layer pattern (compiler/builtins.ts `pattern`): the bad symbol's own column when the pattern is the file's literal
  { name: 'layer pattern symbol not allowed (the literal default)', source: model('  let k = pattern(p, "M*-", 4)\n  return tokens', '  param p = "M-Q*"'), code: 'AC316', line: 5, col: 16 },
  { name: 'layer pattern symbol not allowed (from --set)', source: model('  let k = pattern(p, "M*-", 4)\n  return tokens', '  param p = "M-M*"'), code: 'AC316', line: 3, col: 19, set: ['p=M-E*'] },
  { name: 'layer pattern symbol not allowed (a list)', source: model('  let k = pattern(["M", "-", "MM"], "M*-", 3)\n  return tokens'), code: 'AC300', line: 3, col: 19 },
  { name: 'layer pattern of the wrong length', source: model('  let k = pattern(p, "M*-", n)\n  return tokens', '  param p = "M-M*"\n  param n = 5'), code: 'AC317', line: 3, col: 19 },
  { name: 'layer pattern of the wrong length (from config.json)', source: model('  let k = pattern(p, "M*-", n)\n  return tokens', '  param p = "M-M*" hf: hybrid_override_pattern\n  param n = 4'), code: 'AC317', line: 3, col: 19, config: { hybrid_override_pattern: 'M-M*-' } },
  { name: 'failed assert (attention layer index out of range)', source: model('  assert max(attn) < n, "attention layer indices must lie in 0..n-1"\n  return tokens', '  param attn = [1, 4]\n  param n = 4'), code: 'AC406', line: 3, col: 10 },
];

describe('diagnostics: one failing input each', () => {
  for (const row of ROWS) {
    it(`${row.code} ${row.name}`, () => {
      const ds = diagnosticsOf(row.source, { set: row.set, hfConfigData: row.config && { file: 'config.json', config: row.config } });
      const d = ds.find((x) => x.code === row.code);
      expect(d, `got ${ds.map((x) => `${x.code} ${x.message} @${x.span?.line}:${x.span?.col}`).join('; ')}`).toBeDefined();
      expect(d!.message.length).toBeGreaterThan(10);
      if (row.line) {
        expect([d!.span?.line, d!.span?.col]).toEqual([row.line, row.col]);
      } else {
        expect(d!.span).toBeUndefined();
      }
    });
  }
});

describe('AC200 hints: the closest name that exists, or the import that is missing', () => {
  const body = (call: string) => model(`  e = Embedding(16, d)\n  x = e(tokens)\n  return ${call}`);
  const HINTS: { readonly call: string; readonly hint: string | undefined }[] = [
    { call: 'layer_norm(x, e.weight)', hint: 'did you mean layernorm?' },
    { call: 'rms_norm(x, e.weight)', hint: 'did you mean rmsnorm?' },
    { call: 'Gelu(x)', hint: 'did you mean gelu?' },
    // a norm that does not exist is not steered to rmsnorm
    { call: 'groupnorm(x, e.weight)', hint: `no block or primitive has this name; the primitives: ${[...OP_BY_NAME.keys()].join(', ')}` },
    // a std block left out of the import list: the import that fixes it
    { call: 'n: LayerNorm(d)(x)', hint: 'LayerNorm is a block of models/std/layers.arch but is not imported: import std.layers.{LayerNorm}' },
  ];
  for (const { call, hint } of HINTS) {
    it(call, () => {
      const ds = diagnosticsOf(body(call));
      expect(ds.map((x) => x.code)).toEqual(['AC200']);
      expect(ds[0]!.span?.line).toBe(5);
      expect(ds[0]!.hint).toBe(hint);
    });
  }

  it('layernorm and gelu exist: no AC200 (a shape error instead for a wrong weight)', () => {
    expect(diagnosticsOf(body('layernorm(x, e.weight)')).map((x) => `${x.code} ${x.message}`)).toEqual(['AC400 layernorm: layernorm weight [16, 8] does not match width 8']);
    expect(() => compileText(body('gelu(x, tanh: true)'))).not.toThrow();
  });
});

describe('a named argument a primitive does not take is a wrong attribute (AC210), not a label', () => {
  const body = (call: string, params?: string) => model(`  e = Embedding(16, d)\n  x = e(tokens)\n  return ${call}`, params);
  const ROWS: { readonly call: string; readonly message: string; readonly hint: string }[] = [
    { call: 'rmsnorm(x, e.weight, epsilon: 1e-5)', message: 'primitive rmsnorm has no attribute epsilon; its attributes: eps', hint: 'rmsnorm takes inputs x, weight and attributes eps:' },
    { call: 'rmsnorm(x, e.weight, ep: 1e-5)', message: 'primitive rmsnorm has no attribute ep; its attributes: eps', hint: 'did you mean eps? rmsnorm takes' },
    { call: 'attention(x, x, x, causal: false)', message: `primitive attention has no attribute causal; its attributes: ${Object.keys(OP_BY_NAME.get('attention')!.attrs).join(', ')}`, hint: 'attention takes inputs q, k, v' },
    { call: 'silu(x, alpha: 1.0)', message: 'primitive silu has no attribute alpha; its attributes: none', hint: 'silu takes inputs x' },
  ];
  for (const { call, message, hint } of ROWS) {
    it(call, () => {
      const ds = diagnosticsOf(body(call));
      expect(ds.map((x) => `${x.code} ${x.message}`)).toEqual([`AC210 ${message}`]);
      expect(ds[0]!.span?.line).toBe(5);
      expect(ds[0]!.hint).toContain(hint);
    });
  }

  it('a label on a block instance as an argument still names it', () => {
    const { graph } = compileText(body('silu(out: Linear(d, d)(x))'));
    expect(graph.weights.map((w) => w.name)).toContain('out.weight');
  });

  it('an unknown op is steered to the primitives, not to a param of a similar name', () => {
    const ds = diagnosticsOf(body('cumsum(x, k: 4)', '  param d = 8\n  param cum_sum = 4'));
    expect(ds.map((x) => `${x.code} ${x.message}`)).toEqual(['AC200 unknown name cumsum']);
    expect(ds[0]!.hint).not.toContain('cum_sum');
    expect(ds[0]!.hint).toContain('the primitives: embedding, linear');
  });
});

describe('models/bamba.arch checks its params', () => {
  const bamba = join(import.meta.dirname, '..', '..', 'models', 'bamba.arch');
  const codes = (set: string[]) => {
    try {
      compileFile(bamba, { set });
      return [];
    } catch (e) {
      return (e as CompileError).diagnostics.map((d) => `${d.code} ${d.message}${d.hint ? ` (${d.hint})` : ''}`);
    }
  };
  it('attention indices out of range', () => {
    expect(codes(['attn_layers=[9, 32]'])).toEqual(['AC406 assertion failed: attention layer indices must lie in 0..n_layers-1 (attn_layers = [9,32] (from --set), n_layers = 32)']);
    expect(codes(['attn_layers=[-1]'])[0]).toMatch(/^AC406/);
    expect(codes(['attn_layers=[]'])).toEqual([]);
  });
  it('heads that do not divide', () => {
    const ds = codes(['n_kv_heads=5']);
    expect(ds[0]).toMatch(/^AC406 .*kv heads/);
    expect(ds[1]).toMatch(/^AC400 attention: attention kv heads 5 do not divide heads 32/);
  });
  it('mamba heads that do not tile the inner width', () => {
    expect(codes(['mamba_head_dim=48'])[0]).toMatch(/^AC406 .*Mamba heads/);
  });
});

describe('diagnostics: several at once', () => {
  it('reports independent semantic errors in one run', () => {
    const ds = diagnosticsOf(model('  e = Embedding(16, d)\n  x = e(tokens)\n  y = undefined_a(x)\n  z = p: Linear(9, 4)(x)\n  w = undefined_b\n  return x'));
    expect(ds.map((d) => d.code)).toEqual(['AC200', 'AC400', 'AC200']);
    expect(ds.map((d) => d.span?.line)).toEqual([5, 6, 7]);
  });

  it('does not cascade from a failed value', () => {
    const ds = diagnosticsOf(model('  x = nope(tokens)\n  y = silu(x)\n  z = y + x\n  return z'));
    expect(ds.map((d) => d.code)).toEqual(['AC200']);
  });

  it('names the config.json key and file for a bad config value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'archc-cfg-'));
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ hidden_size: 'big' }));
    try {
      compileText(model('  return tokens', '  param d = 8 hf: hidden_size'), { hfConfig: cfg });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CompileError);
      const d = (e as CompileError).diagnostics[0]!;
      expect(d.code).toBe('AC301');
      expect(d.message).toContain('hidden_size');
      expect(d.message).toContain('config.json');
      expect(d.message).toContain('"big"');
    }
  });

  it('a missing model file is a diagnostic, not a crash', () => {
    expect(() => compileFile('/nonexistent/model.arch')).toThrow(CompileError);
  });
});
