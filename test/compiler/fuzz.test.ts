// Fuzzing the whole front end (parse, resolve, params, instantiate, shape rules, passes): thousands
// of mutated programs must compile or give diagnostics — never crash, never hang (a hang is the
// test's time-out).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompileError, InternalError } from '../../dsl/diagnostics.ts';
import { MODELS, compileText } from '../helpers/compile.ts';
import { forEachInBatches } from '../helpers/batches.ts';
import { prng } from '../helpers/random.ts';

/** The standard library and a small Bamba in one self-contained text (no imports). */
function corpus(): string {
  const std = ['layers', 'mamba2', 'attention'].map((f) => readFileSync(join(MODELS, 'std', `${f}.arch`), 'utf8')).join('\n');
  const tiny: Record<string, string> = { vocab: '64', d_model: '32', n_layers: '4', attn_layers: '[1, 3]', n_heads: '4', n_kv_heads: '2',
    d_ff: '48', mamba_heads: '4', d_state: '8', chunk: '4' };
  let bamba = readFileSync(join(MODELS, 'bamba.arch'), 'utf8');
  for (const [name, value] of Object.entries(tiny)) {
    bamba = bamba.replace(new RegExp(`(param ${name}\\s*=)\\s*(\\[[^\\]]*\\]|\\S+)`), `$1 ${value}`);
  }
  return (std + '\n' + bamba).replace(/^import .*$/gm, '');
}

const NUMBERS = ['0', '1', '-1', '2', '3', '7', '0.5', '1e9', '100000', 'inf', '[]', '[1, 2]', 'true', '"x"'];
const PUNCT = ['(', ')', '{', '}', '[', ']', ',', ':', '=', '.', '..', '+', '*', '//', '?', '"', '#', '@'];

function mutate(text: string, r: () => number): string {
  const tokens = text.match(/\s+|[A-Za-z_]\w*|\d+(?:\.\d+)?(?:e[+-]?\d+)?|\.\.|\/\/|\*\*|[=!<>]=|"[^"\n]*"|#[^\n]*|./g)!;
  const pick = <T,>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const idents = tokens.filter((t) => /^[A-Za-z_]/.test(t));
  const n = 1 + Math.floor(r() * 3);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(r() * tokens.length);
    const tok = tokens[i]!;
    switch (Math.floor(r() * 7)) {
      case 0: tokens[i] = /^\d/.test(tok) ? pick(NUMBERS) : tok; if (!/^\d/.test(tok)) tokens[i] = pick(NUMBERS); break;
      case 1: if (/^[A-Za-z_]/.test(tok)) tokens[i] = pick(idents); break;
      case 2: tokens[i] = ''; break;
      case 3: tokens[i] = tok + tok; break;
      case 4: { const j = Math.floor(r() * tokens.length); [tokens[i], tokens[j]] = [tokens[j]!, tok]; break; }
      case 5: tokens[i] = tok + pick(PUNCT); break;
      case 6: { // delete or duplicate a whole line
        const lines = tokens.join('').split('\n');
        const l = Math.floor(r() * lines.length);
        if (r() < 0.5) lines.splice(l, 1);
        else lines.splice(l, 0, lines[l]!);
        return lines.join('\n');
      }
    }
  }
  return tokens.join('');
}

describe('front-end fuzz', () => {
  it('the corpus itself compiles', () => {
    const g = compileText(corpus()).graph;
    expect(g.weights.length).toBeGreaterThan(20);
  });

  // A hang shows as the test's time-out; the loop yields every 20 programs so the worker stays
  // responsive on a loaded machine.
  it('2,000 mutated programs give a graph or diagnostics, never a crash', async () => {
    const base = corpus();
    const r = prng(20261128);
    let ok = 0;
    let diagnosed = 0;
    await forEachInBatches(2000, 20, (i) => {
      const text = mutate(base, r);
      try {
        compileText(text);
        ok++;
      } catch (e) {
        if (!(e instanceof CompileError) || e instanceof InternalError) {
          throw new Error(`mutation ${i} crashed with ${(e as Error).stack}\n--- program ---\n${text}`);
        }
        diagnosed++;
        for (const d of e.diagnostics) {
          expect(d.code).toMatch(/^AC\d{3}$/);
          expect(d.message.length).toBeGreaterThan(0);
          if (d.span && d.span.file.endsWith('__test__.arch')) expect(d.span.offset).toBeLessThanOrEqual(text.length);
        }
      }
    });
    expect(diagnosed).toBeGreaterThan(500);
    expect(ok).toBeGreaterThan(50);
  }, 300_000);
});
