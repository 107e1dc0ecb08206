// Fuzzing the front end: thousands of seeded random mutations of valid programs must never make
// `parse` throw, and every diagnostic and AST span must point inside the text.

import { describe, expect, it } from 'vitest';
import { MESSAGES, type Diagnostic } from '../../dsl/diagnostics.ts';
import type { Span } from '../../dsl/ast.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from '../../dsl/index.ts';
import { forEachInBatches } from '../helpers/batches.ts';
import { prng } from '../helpers/random.ts';

const PROGRAMS = [
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'dsl', 'sample.arch'), 'utf8'),
  `import std.layers; import std.{Linear}
block Linear(d_in, d_out, bias = false)(x) {
  weight weight[d_out, d_in]: bf16
  weight bias[d_out] if bias
  let y = matmul(x, weight,)
  if bias { return y + bias } else if d_in > 4096 and not bias { return y } else { return -y ** 2 }
}
block Mamba2(d_model, heads = [1, 2, 3][0], name = "a\\"b\\n")(x, pos) {
  in_proj = Linear(d_model, 2 * d_model)
  a, b = split(in_proj(x), 2)   # two halves
  out = ssd(a, b, chunk: 64 % 7, scale: 1 / 3.5e-2, mask: inf);
  return out, a[pos]
}
model Small(ids: i32[B, T]) {
  param layers: int = 2 hf: num_hidden_layers | "n_layer"
  param eps: float = 1e-6 hf: rms_norm_eps
  scope backbone { for i in 0..layers { x = block: Mamba2(16)(ids, 0) } }
  return x
}
`,
];

const JUNK = ['(', ')', '[', ']', '{', '}', ',', '.', '..', ':', ';', '=', '==', '+', '-', '**', '//', '<', '|', '"', '#', '\\', '$', '!', '\n', ' ', '0', '1.5', 'if', 'else', 'then', 'for', 'in', 'model', 'block', 'weight', 'param', 'hf', 'not', 'x', 'a:', '\u0000', '\r', '\u00e9'];

type Mutation = (s: string, r: () => number) => string;

const pick = <V>(xs: readonly V[], r: () => number): V => xs[Math.floor(r() * xs.length)];
const at = (s: string, r: () => number) => Math.floor(r() * (s.length + 1));
/** Pieces that keep tokens whole: words, numbers, strings, runs of space, single other characters. */
const pieces = (s: string) => s.match(/[A-Za-z_]\w*|\d+(?:\.\d+)?|"(?:[^"\\\n]|\\.)*"|\s+|[\s\S]/g) ?? [];

const MUTATIONS: readonly Mutation[] = [
  // delete a character range
  (s, r) => {
    const i = at(s, r);
    return s.slice(0, i) + s.slice(i + 1 + Math.floor(r() * 8));
  },
  // duplicate a character range
  (s, r) => {
    const i = at(s, r);
    const j = Math.min(s.length, i + 1 + Math.floor(r() * 12));
    return s.slice(0, j) + s.slice(i, j) + s.slice(j);
  },
  // insert punctuation, a keyword or a stray character
  (s, r) => {
    const i = at(s, r);
    return s.slice(0, i) + pick(JUNK, r) + s.slice(i);
  },
  // delete a token
  (s, r) => {
    const p = pieces(s);
    p.splice(Math.floor(r() * p.length), 1);
    return p.join('');
  },
  // duplicate a token
  (s, r) => {
    const p = pieces(s);
    const i = Math.floor(r() * p.length);
    p.splice(i, 0, p[i] ?? '');
    return p.join('');
  },
  // swap two tokens
  (s, r) => {
    const p = pieces(s);
    const i = Math.floor(r() * p.length);
    const j = Math.floor(r() * p.length);
    [p[i], p[j]] = [p[j], p[i]];
    return p.join('');
  },
  // truncate
  (s, r) => s.slice(0, at(s, r)),
];

/** Maps offsets to line/col, counting \n, \r\n and \r as one break each (independently of dsl/). */
function positions(text: string): (offset: number) => [number, number] {
  const starts = [0];
  for (const m of text.matchAll(/\r\n?|\n/g)) starts.push((m.index ?? 0) + m[0].length);
  return (offset) => {
    let line = 0;
    while (line + 1 < starts.length && starts[line + 1] <= offset) line++;
    return [line + 1, offset - starts[line] + 1];
  };
}

type Pos = (offset: number) => [number, number];

function checkSpan(s: Span, text: string, pos: Pos, what: string): void {
  const ok = s.file === 'fuzz.arch' && s.offset >= 0 && s.offset <= s.endOffset && s.endOffset <= text.length && s.line >= 1 && s.col >= 1;
  if (!ok) throw new Error(`${what}: bad span ${JSON.stringify(s)} for text of length ${text.length}`);
  const [line, col] = pos(s.offset);
  if (line !== s.line || col !== s.col) throw new Error(`${what}: span ${s.line}:${s.col} but offset ${s.offset} is ${line}:${col}`);
  const [endLine, endCol] = pos(s.endOffset);
  if (endLine !== s.endLine || endCol !== s.endCol) throw new Error(`${what}: span end ${s.endLine}:${s.endCol} but offset ${s.endOffset} is ${endLine}:${endCol}`);
}

/** Every span anywhere in the AST (keys ending in `span`). */
function checkAstSpans(v: unknown, text: string, pos: Pos): void {
  if (Array.isArray(v)) for (const x of v) checkAstSpans(x, text, pos);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (/span$/i.test(k)) checkSpan(x as Span, text, pos, `AST ${k}`);
      else checkAstSpans(x, text, pos);
    }
  }
}

function checkDiagnostic(d: Diagnostic, text: string, pos: Pos): void {
  if (!(d.code in MESSAGES) || !d.code.startsWith('AC1')) throw new Error(`unexpected code ${d.code}`);
  if (!d.message || d.severity !== 'error') throw new Error(`bad diagnostic ${JSON.stringify(d)}`);
  if (!d.span) throw new Error(`${d.code} has no span`);
  checkSpan(d.span, text, pos, d.code);
}

describe('fuzz', () => {
  it('the seed programs are valid', () => {
    for (const p of PROGRAMS) expect(parse(p, 'fuzz.arch').diagnostics).toEqual([]);
  });

  it('parse never throws and keeps every span inside the text', async () => {
    const r = prng(20240607);
    const runs = 1500;
    let withErrors = 0;
    // 25 programs per batch, then a yield: the worker stays responsive on a loaded machine; a
    // pathological recovery (exponential, a hang) shows as the test's time-out
    await forEachInBatches(runs, 25, (i) => {
      let text = pick(PROGRAMS, r);
      const count = 1 + Math.floor(r() * 4);
      for (let k = 0; k < count; k++) text = pick(MUTATIONS, r)(text, r);
      let result: ReturnType<typeof parse>;
      try {
        result = parse(text, 'fuzz.arch');
        const pos = positions(text);
        for (const d of result.diagnostics) checkDiagnostic(d, text, pos);
        checkAstSpans(result.program, text, pos);
      } catch (e) {
        throw new Error(`run ${i} failed on ${JSON.stringify(text)}:\n${e instanceof Error ? e.stack : String(e)}`);
      }
      if (result.diagnostics.length > 0) withErrors++;
    });
    expect(withErrors).toBeGreaterThan(runs / 2);
  }, 300_000);
});
