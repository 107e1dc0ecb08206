// Generated .arch programs for fuzzing the front end. Each program is built from a grammar of the
// language and then pushed towards one class of hostility: depth, length, repetition, recursion,
// huge numbers, names that are not what they seem, lists and strings that grow, broken text.
// Programs are a pure function of (seed, index), so a failure is reproduced by its number.

import { prng } from '../helpers/random.ts';
import type { Job } from './compile-child.ts';

export const CLASSES = [
  'valid', 'depth', 'length', 'repetition', 'recursion', 'numbers', 'names', 'growth', 'params', 'text', 'mutated', 'models', 'contract',
] as const;
export type ProgramClass = (typeof CLASSES)[number];

export interface Program extends Job {
  readonly cls: ProgramClass;
}

type R = () => number;
const int = (r: R, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T,>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
/** Log-uniform in [1, max]: most sizes small, a few enormous. */
const size = (r: R, max: number) => Math.max(1, Math.floor(Math.exp(r() * Math.log(max))));

const HUGE = ['1e9', '1e12', '1e300', '9007199254740993', '2147483648', '4294967296', 'inf', '-inf', '-1', '0', '1e-320', '123456789012345678901234567890'];
const ODD_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', 'isPrototypeOf', 'length', 'model', 'weight', 'T'];
const PRIMS = ['silu', 'exp', 'neg', 'softplus', 'add', 'mul', 'linear', 'rmsnorm', 'embedding', 'head', 'reshape', 'split', 'clamp'];

/** A random compile-time expression of about `depth` levels. */
function expr(r: R, depth: number, names: readonly string[]): string {
  if (depth <= 0 || r() < 0.2) {
    const leaf = r();
    if (leaf < 0.5 && names.length) return pick(r, names);
    if (leaf < 0.8) return String(int(r, 0, 64));
    return pick(r, ['true', 'false', '"s"', '[1, 2]', '2.5', 'inf']);
  }
  const d = depth - 1;
  switch (int(r, 0, 6)) {
    case 0: return `${expr(r, d, names)} ${pick(r, ['+', '-', '*', '//', '%', '/', '**', '==', '<', 'and', 'or', 'in'])} ${expr(r, d, names)}`;
    case 1: return `(${expr(r, d, names)})`;
    case 2: return `-${expr(r, d, names)}`;
    case 3: return `if ${expr(r, d, names)} then ${expr(r, d, names)} else ${expr(r, d, names)}`;
    case 4: return `[${Array.from({ length: int(r, 0, 3) }, () => expr(r, d, names)).join(', ')}]`;
    case 5: return `${pick(r, ['min', 'max', 'sum', 'len'])}(${expr(r, d, names)})`;
    default: return `${expr(r, d, names)}[${int(r, -2, 3)}]`;
  }
}

/** A small well-formed model: params, a weight, a loop of ops, optionally a block. */
function validModel(r: R, extra = ''): string {
  const d = pick(r, [4, 8, 16]);
  const layers = int(r, 0, 4);
  const body = [
    `  param d = ${d}`,
    `  param n = ${layers}`,
    `  param eps = 1e-5`,
    `  let k = ${expr(r, 3, ['d', 'n'])}`,
    `  weight emb[32, d]`,
    `  x = embedding(tokens, emb)`,
    `  for i in 0..n as layers {`,
    `    h = norm: N(d, eps)(x)`,
    `    x = x + ${pick(r, ['silu(h)', 'h * h', 'linear(h, w)', 'h'])}`,
    `  }`,
    extra,
    `  return head(x, emb)`,
  ];
  const block = `block N(dim, eps = 1e-6)(x) {\n  weight weight[dim]\n  return rmsnorm(x, weight, eps: eps)\n}\n`;
  const w = 'weight w[d, d]\n';
  return `${block}model M(tokens: i32[T]) {\n${body.join('\n').replace('  for i', `  ${w}  for i`)}\n}\n`;
}

/** `body` in a model whose output is computed from its input (returning the input is AC411). */
function model(body: string): string {
  return `model M(tokens: i32[T]) {\n  weight out__[8, 4]\n${body}\n  return embedding(tokens, out__)\n}\n`;
}

/** Token-level damage: delete, duplicate, swap, or insert punctuation. */
function mutate(r: R, text: string, n: number): string {
  const tokens = text.match(/\s+|[A-Za-z_]\w*|\d+(?:\.\d+)?(?:e[+-]?\d+)?|"[^"\n]*"|./g) ?? [];
  for (let k = 0; k < n && tokens.length; k++) {
    const i = int(r, 0, tokens.length - 1);
    switch (int(r, 0, 4)) {
      case 0: tokens[i] = ''; break;
      case 1: tokens[i] = tokens[i]! + tokens[i]!; break;
      case 2: { const j = int(r, 0, tokens.length - 1); [tokens[i], tokens[j]] = [tokens[j]!, tokens[i]!]; break; }
      case 3: tokens[i] = tokens[i]! + pick(r, ['(', ')', '{', '}', '[', ']', ',', ':', '=', '.', '"', '#', '@', '\n']); break;
      default: tokens[i] = pick(r, [...HUGE, ...ODD_NAMES]);
    }
  }
  return tokens.join('');
}

const GENERATORS: Readonly<Record<ProgramClass, (r: R) => { text: string; set?: string[]; file?: string }>> = {
  valid: (r) => ({ text: validModel(r) }),
  depth: (r) => {
    const n = size(r, 100_000);
    const kind = int(r, 0, 7);
    const e = kind === 0 ? `${'('.repeat(n)}1${')'.repeat(n)}`
      : kind === 1 ? `${'-'.repeat(n)}1`
      : kind === 2 ? Array.from({ length: n }, () => '1').join(' + ')
      : kind === 3 ? `${'if true then '.repeat(n)}1${' else 0'.repeat(n)}`
      : kind === 4 ? `${'['.repeat(n)}1${']'.repeat(n)}`
      : kind === 5 ? `${'max('.repeat(n)}1${')'.repeat(n)}`
      : kind === 6 ? `${'2 ** '.repeat(n)}1`
      : expr(r, Math.min(n, 12), []);
    const lets = int(r, 1, 10);
    const stmt = r() < 0.3 ? `${'scope s { '.repeat(Math.min(n, 5000))}${'}'.repeat(Math.min(n, 5000))}` : '';
    return { text: model(Array.from({ length: lets }, (_, i) => `  let a${i} = ${e}`).join('\n') + stmt) };
  },
  length: (r) => {
    const n = size(r, 200_000);
    const kind = int(r, 0, 4);
    if (kind === 0) return { text: model(`  let ${'v'.repeat(n)} = 1`) };
    if (kind === 1) return { text: model(`  let s = "${'x'.repeat(n)}"`) };
    if (kind === 2) return { text: model(Array.from({ length: Math.min(n, 20_000) }, (_, i) => `  let a${i} = ${i}`).join('\n')) };
    if (kind === 3) return { text: `model M(tokens: i32[T]) { ${'$ '.repeat(n)} return tokens }` };
    return { text: model(`  let l = [${Array.from({ length: Math.min(n, 50_000) }, (_, i) => i).join(', ')}]\n  let m = max(l) + sum(l) + min(l)`) };
  },
  repetition: (r) => {
    const n = size(r, 50_000);
    const kind = int(r, 0, 4);
    if (kind === 0) return { text: ') '.repeat(n) };
    if (kind === 1) return { text: model('  let a = 1\n'.repeat(Math.min(n, 10_000))) };
    if (kind === 2) return { text: validModel(r, '  x = x + unknown_name\n'.repeat(Math.min(n, 5_000))) };
    if (kind === 3) return { text: 'block B()(x) { return x }\n'.repeat(Math.min(n, 5_000)) + model('') };
    return { text: validModel(r).repeat(Math.min(n, 200)) };
  },
  recursion: (r) => {
    const depth = size(r, 100_000);
    const kind = int(r, 0, 4);
    if (kind === 0) return { text: `block R(n)(x) {\n  y = if n > 0 then a: R(n - 1)(x) else x\n  return y\n}\n${model(`  e = r: R(${depth})(tokens)`)}` };
    if (kind === 1) {
      return { text: `block R(n)(x) {\n  y = if n > 0 then a: R(n - 1)(x) else x\n  z = if n > 0 then b: R(n - 1)(y) else y\n  return z\n}\n${model(`  e = r: R(${Math.min(depth, 40)})(tokens)`)}` };
    }
    if (kind === 2) return { text: `block A(n)(x) {\n  return b: B(n)(x)\n}\nblock B(n)(x) {\n  return a: A(n)(x)\n}\n${model('  e = s: A(1)(tokens)')}` };
    if (kind === 3) {
      return { text: `block R(n)(x) {\n  weight w[4]\n  y = if n > 0 then a: R(n - 1)(x) + b: R(n - 1)(x) else rmsnorm(x, w)\n  return y\n}\n` +
        `model M(tokens: i32[T]) {\n  weight e[8, 4]\n  x = embedding(tokens, e)\n  y = r: R(${Math.min(depth, 30)})(x)\n  return y\n}\n` };
    }
    return { text: model(`  for i in 0..${depth} {\n    for j in 0..${depth} {\n      let k = i * j\n    }\n  }`) };
  },
  numbers: (r) => {
    const h = () => pick(r, HUGE);
    const kind = int(r, 0, 5);
    if (kind === 0) return { text: model(`  for i in 0..${h()} {\n  }`) };
    if (kind === 1) return { text: model(`  weight w[${h()}, ${h()}]\n  let u = len([w])`) };
    if (kind === 2) return { text: model(`  let a = ${h()} ${pick(r, ['*', '**', '/', '//', '%', '-'])} ${h()}\n  let b = [0, 1][a]`) };
    if (kind === 3) return { text: validModel(r), set: [`n=${h()}`, `d=${h()}`] };
    if (kind === 4) return { text: model(`  weight w[${h()}]\n  x = embedding(tokens, w)`) };
    return { text: validModel(r), set: [`eps=${pick(r, ['NaN', '-1', '1e999', '[1e999]', '"x"'])}`] };
  },
  names: (r) => {
    const n = pick(r, ODD_NAMES);
    const kind = int(r, 0, 6);
    if (kind === 0) return { text: model(`  param ${n} = 1\n  let a = ${n} + 1`) };
    if (kind === 1) return { text: `model M(tokens: i32[T]) {\n  weight w[4, 4]\n  x = embedding(tokens, w)\n  y = rmsnorm(x, w, ${n}: 1)\n  return y\n}\n` };
    if (kind === 2) return { text: `block ${n}()(x) { return x }\n${model(`  y = q: ${n}()(tokens)`)}` };
    if (kind === 3) return { text: model(`  param dtype: dtype = "f32"\n  weight w[4] ${n}`), set: [`dtype=${n}`] };
    if (kind === 4) return { text: validModel(r), set: [`${n}=1`] };
    if (kind === 5) return { text: model(`  let a = ${n}(1)\n  let b = ${pick(r, PRIMS)}(${n}: 2)`) };
    return { text: model(`  weight w[4] ${pick(r, ['f32', 'i32', 'constructor', 'toString', 'f64'])}`) };
  },
  growth: (r) => {
    const n = size(r, 200);
    const kind = int(r, 0, 3);
    if (kind === 0) return { text: model(`  let l = [1]\n  for i in 0..${n} {\n    let l = l + l\n  }`) };
    if (kind === 1) return { text: model(`  let s = "ab"\n  for i in 0..${n} {\n    let s = s + s\n  }`) };
    if (kind === 2) return { text: model(`  let l = 1\n  for i in 0..${n} {\n    let l = [l, l]\n  }`) };
    return { text: `model M(tokens: i32[T]) {\n  weight w[4, 4]\n  x = embedding(tokens, w)\n  for i in 0..${size(r, 10_000_000)} {\n    x = x + x\n  }\n  return x\n}\n` };
  },
  params: (r) => {
    const n = size(r, 5_000);
    const kind = int(r, 0, 3);
    const chain = (dir: number) => Array.from({ length: n }, (_, i) => `  param p${i} = p${i + dir} + 1`).join('\n');
    if (kind === 0) return { text: model(`${chain(1)}\n  param p${n} = 1\n  let z = p0`) };
    if (kind === 1) return { text: model(`  param p-1 = 0\n${chain(-1)}\n  let z = p${n - 1}`) };
    if (kind === 2) return { text: model(`${chain(1)}\n  param p${n} = p0`) };
    return { text: model(Array.from({ length: n }, (_, i) => `  param p${i % 50} = ${i}`).join('\n')) };
  },
  text: (r) => {
    const junk = Array.from({ length: size(r, 5_000) }, () => String.fromCodePoint(pick(r, [0, 7, 0x0b, 0x7f, 0xfeff, 0x200b, 0xd800, 0x1f600, int(r, 0, 0x2fff)]))).join('');
    const kind = int(r, 0, 3);
    if (kind === 0) return { text: junk };
    if (kind === 1) return { text: model(`  let s = "${junk.replace(/"/g, '')}`) };
    if (kind === 2) return { text: validModel(r).replace(/\n/g, pick(r, ['\r\n', '\r', '\u2028'])) };
    return { text: `${validModel(r)}\n#${junk}` };
  },
  mutated: (r) => ({ text: mutate(r, validModel(r), size(r, 30)) }),
  models: (r) => {
    const file = pick(r, Object.keys(SMALL));
    const params = { ...SMALL[file]! };
    const keys = Object.keys(params);
    for (let k = int(r, 1, 2); k > 0; k--) params[pick(r, keys)] = pick(r, EDGE);
    return { text: '', file, set: Object.entries(params).map(([k, v]) => `${k}=${v}`) };
  },
  contract: (r) => ({ text: contractProgram(r) }),
};

/** The shipped models at sizes that run in milliseconds, for `models` to push one or two params of. */
const SMALL: Readonly<Record<string, Record<string, string>>> = {
  'bamba.arch': { vocab: '96', d_model: '32', n_layers: '4', attn_layers: '[1,3]', n_heads: '4', n_kv_heads: '2', mamba_heads: '4', mamba_groups: '1', d_state: '8', d_ff: '64', chunk: '4', context: '64' },
  'mamba2.arch': { vocab: '64', d_model: '16', n_layers: '2', head_dim: '8', d_state: '4', chunk: '4', context: '32' },
  'llama.arch': { vocab: '64', d_model: '32', n_layers: '2', n_heads: '4', n_kv_heads: '2', d_ff: '48', context: '32' },
  'qwen3.arch': { vocab: '64', d_model: '32', n_layers: '2', n_heads: '4', n_kv_heads: '2', head_dim: '8', d_ff: '48', context: '32' },
  'gpt2.arch': { vocab: '64', d_model: '32', n_layers: '2', n_heads: '4', context: '32' },
};
/** Values a config may hold that a size rule or a kernel may not expect: edges, workgroup sizes, 32-bit overflow. */
const EDGE = ['0', '1', '2', '3', '5', '7', '64', '255', '256', '257', '1024', '65536', '2147483647', '2147483648', '4294967296', '4294967297', '-1', '1e9', '[]', '[0]', '[0,1,2,3]', 'true', '0.5'];

/** Small programs on the runtime's contract and the kernels' edges: what they return, their inputs'
 *  names, what a weight slot gets, conv taps, chunk lengths, query heads per KV head. */
function contractProgram(r: R): string {
  // half the programs keep to the contract everywhere (they must get through every renderer); the
  // other half break it in one place
  const bad = r() < 0.5 ? int(r, 0, 5) : -1;
  const choose = <T,>(k: number, good: readonly T[], hostile: readonly T[]): T => pick(r, bad === k ? hostile : good);
  const d = pick(r, [4, 8, 16]);
  const input = choose(0, ['tokens: i32[T]', 'tokens: i32[T], positions: i32[T]'], ['ids: i32[T]', 'tokens: i32[T, 2]', 'tokens: i32[T], extra: i32[T]']);
  const ret = choose(1, ['head(x, e)', 'x', 'logits, x'], ['tokens', 'e', 'head(x, silu(x))', 'head(x, silu(e))', 'silu(e)', 'linear(x, x)', 'rmsnorm(x, x)', 'x, x']);
  const chunk = choose(3, [4, 1, 8, 3], [2147483648, 4294967297]);
  const body: string[] = [`  weight e[32, ${d}]`, `  x = embedding(tokens, e)`];
  const n = int(r, 1, 3);
  for (let i = 0; i < n; i++) {
    switch (int(r, 0, 3)) {
      case 0: body.push(`  x = x + c${i}: CausalConv1d(${d}, ${choose(2, [2, 3, 4], [1, 0, 2147483648])})(x)`); break;
      // one chunk length in a model, unless this program breaks it
      case 1: body.push(`  x = x + m${i}: Mamba2(${d}, 2, ${d}, 1, 4, ${pick(r, [2, 4])}, ${bad === 3 ? pick(r, [chunk, 4, 8]) : chunk})(x)`); break;
      case 2: {
        const kv = pick(r, [1, 2]), group = choose(4, [1, 2, 4, 256], [257, 512]);
        const h = kv * group;
        body.push(`  o${i} = attention(reshape(linear(x, q${i}), dims: [${h}, 2]), reshape(linear(x, k${i}), dims: [${kv}, 2]), reshape(linear(x, v${i}), dims: [${kv}, 2]), scale: 0.5${i === 1 ? ', window: 2' : ''})`); // the second: a sliding window
        body.push(`  x = x + linear(reshape(o${i}, dims: [${h * 2}]), p${i})`);
        body.unshift(`  weight q${i}[${h * 2}, ${d}]`, `  weight k${i}[${kv * 2}, ${d}]`, `  weight v${i}[${kv * 2}, ${d}]`, `  weight p${i}[${d}, ${h * 2}]`);
        break;
      }
      default:
        body.unshift(`  weight g${i}[${d}]`);
        body.push(`  x = rmsnorm(x, ${choose(5, [`g${i}`], ['x', `silu(g${i})`])})`);
    }
  }
  const logits = ret.startsWith('logits') ? '  logits = head(x, e)\n' : '';
  return `import std.{CausalConv1d, Mamba2}\nmodel M(${input}) {\n${body.join('\n')}\n${logits}  return ${ret}\n}\n`;
}

/** Program `index` of the run seeded by `seed`: classes in turn, each drawn from its own stream. */
export function generateProgram(seed: number, index: number): Program {
  const cls = CLASSES[index % CLASSES.length]!;
  const r = prng((seed * 1_000_003 + index) >>> 0);
  const { text, set, file } = GENERATORS[cls](r);
  return { id: index, cls, text, set, file };
}
