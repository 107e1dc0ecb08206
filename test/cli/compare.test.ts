// `archc compare a.arch b.arch`: its figures are `archc stats`'s of each file (same flags) and the
// decode dispatches of the kernel program (`graph --format kernels`), its ratios b / a; --set goes to
// the files that declare the param; --preset is refused where the two files set a size differently,
// and elsewhere names the values it replaced; bad files and flags are coded errors without a stack;
// README.md's pasted output is this command's.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Comparison } from '../../cli/compare.ts';
import type { Stats } from '../../compiler/stats.ts';
import { BAMBA, type CliResult, ROOT, inParallel, makeDir, runCli } from '../helpers/checkpoints.ts';

const VARIANT = join(ROOT, 'examples', 'bamba-pattern.arch');
const NO_STACK = /^\s+at /m;
const PATTERN = 'M-*-M-M-*-';

let dir: string;
let wide: string;
const r: Record<string, CliResult> = {};

beforeAll(async () => {
  dir = makeDir('archc-compare-');
  // a variant file of its own: Bamba at width 512
  wide = join(dir, 'wide.arch');
  writeFileSync(wide, readFileSync(BAMBA, 'utf8').replace(/param d_model(\s+)= 4096/, 'param d_model$1= 512'));
  const broken = join(dir, 'broken.arch');
  writeFileSync(broken, 'model M(tokens: i32[T]) {\n  x = = tokens\n  return x\n}\n');
  const jobs: Record<string, string[]> = {
    cmp: ['compare', BAMBA, VARIANT, '--json'],
    same: ['compare', BAMBA, VARIANT, '--json', '--set', `layer_pattern=${Array.from({ length: 32 }, (_, i) => ([9, 18, 27].includes(i) ? '*-' : 'M-')).join('')}`],
    text: ['compare', BAMBA, VARIANT],
    statsA: ['stats', BAMBA, '--json'],
    statsB: ['stats', VARIANT, '--json'],
    kernelsB: ['graph', VARIANT, '--format', 'kernels'],
    ctx: ['compare', BAMBA, VARIANT, '--json', '--context', '1000', '--batch', '3', '--set', `layer_pattern=${PATTERN}`, '--set', 'vocab=1000'],
    ctxA: ['stats', BAMBA, '--json', '--context', '1000', '--batch', '3', '--set', 'vocab=1000'],
    ctxB: ['stats', VARIANT, '--json', '--context', '1000', '--batch', '3', '--set', `layer_pattern=${PATTERN}`, '--set', 'vocab=1000'],
    tiny: ['compare', BAMBA, VARIANT, '--json', '--preset', 'tiny'],
    tinyA: ['stats', BAMBA, '--json', '--preset', 'tiny'],
    tinyB: ['stats', VARIANT, '--json', '--preset', 'tiny'],
    clash: ['compare', BAMBA, wide, '--preset', 'tiny'],
    wideNote: ['check', wide, '--preset', 'tiny', '--set', 'vocab=300'],
    unknownSet: ['compare', BAMBA, VARIANT, '--set', 'nope=1'],
    badPattern: ['compare', BAMBA, VARIANT, '--set', 'layer_pattern=M-X'],
    missing: ['compare', BAMBA, join(dir, 'absent.arch')],
    broken: ['compare', broken, BAMBA],
    badContext: ['compare', BAMBA, VARIANT, '--context', '0'],
  };
  const names = Object.keys(jobs);
  const results = await inParallel(names.map((n) => () => runCli(jobs[n]!, 120_000)), 2);
  names.forEach((n, i) => (r[n] = results[i]!));
}, 600_000);

const json = <T>(res: CliResult): T => {
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as T;
};

describe('archc compare', () => {
  it('each side\'s stats are `archc stats --json` of that file, and the dispatches those of its kernel program', () => {
    const c = json<Comparison>(r.cmp!);
    expect(c.a.stats).toEqual(json<Stats>(r.statsA!));
    expect(c.b.stats).toEqual(json<Stats>(r.statsB!));
    // the kernel listing's own count, and Bamba-9B's 162 (docs/ARCHITECTURE.md)
    expect(r.kernelsB!.code).toBe(0);
    expect(c.b.dispatches.decode).toBe(Number(/;; decode: (\d+) kernels/.exec(r.kernelsB!.stdout)![1]));
    expect(c.a.dispatches.decode).toBe(162);
  });

  it('each row is the figure of each side\'s stats, with b / a', () => {
    const c = json<Comparison>(r.cmp!);
    const row = (f: string) => c.rows.find((x) => x.figure === f)!;
    const pairs: [string, (s: Stats) => number][] = [
      ['parameters, total', (s) => s.parameters.total],
      ['parameters, active per token', (s) => s.parameters.total],
      ['FLOPs per token, prefill', (s) => s.flopsPerToken.prefill],
      ['FLOPs per token, decode', (s) => s.flopsPerToken.decode],
      ['KV cache per token', (s) => s.state.kvBytesPerToken],
      ['recurrent state per sequence', (s) => s.state.convSsmBytesPerSequence],
      ['weights as q4', (s) => s.weightBytes.byFormat.q4],
      ['weights as bf16', (s) => s.weightBytes.byFormat.bf16],
    ];
    for (const [f, of] of pairs) {
      expect([row(f).a, row(f).b], f).toEqual([of(c.a.stats), of(c.b.stats)]);
      expect(row(f).ratio, f).toBe(of(c.b.stats) / of(c.a.stats));
    }
    expect(row('dispatches per decode step').ratio).toBe(c.b.dispatches.decode / c.a.dispatches.decode);
    // 8 attention layers for Bamba's 3, 24 Mamba-2 layers for its 29
    expect(row('KV cache per token').ratio).toBeCloseTo(8 / 3, 12);
    expect(row('recurrent state per sequence').ratio).toBeCloseTo(24 / 29, 12);
  });

  it('the pattern that spells Bamba-9B: every ratio 1, the dispatches included', () => {
    const c = json<Comparison>(r.same!);
    expect(c.rows.map((x) => [x.figure, x.ratio])).toEqual(c.rows.map((x) => [x.figure, 1]));
    expect(c.b.dispatches).toEqual(c.a.dispatches);
  });

  it('prints the same figures as a table, the ratio to three places', () => {
    const c = json<Comparison>(r.cmp!);
    expect(r.text!.code).toBe(0);
    const lines = r.text!.stdout.split('\n');
    const total = lines.find((l) => l.startsWith('parameters, total'))!;
    expect(total.split(/\s{2,}/).slice(1)).toEqual([c.rows[0]!.a.toLocaleString('en-US'), c.rows[0]!.b.toLocaleString('en-US'), c.rows[0]!.ratio!.toFixed(3)]);
    expect(r.text!.stdout).toMatch(/active parameters: k of E experts per mixture of experts/);
    expect(lines.find((l) => l.startsWith('dispatches per decode step'))).toMatch(new RegExp(`\\s162\\s+${c.b.dispatches.decode}\\s`));
  });

  it('README.md shows this output as it is', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const shown = /\$ npx archc compare models\/bamba\.arch examples\/bamba-pattern\.arch\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(shown).toBe(r.text!.stdout);
  });

  it('--context, --batch and --set reach each file as they reach `archc stats` (a --set only the files that declare it)', () => {
    const c = json<Comparison>(r.ctx!);
    expect(c.a.stats).toEqual(json<Stats>(r.ctxA!));
    expect(c.b.stats).toEqual(json<Stats>(r.ctxB!));
    expect(c.a.stats.state.context).toBe(1000);
    expect(c.b.stats.state.totalBytes).toBe((c.b.stats.state.kvBytesPerToken * 1000 + c.b.stats.state.convSsmBytesPerSequence) * 3);
  });

  it('--preset: both at the preset\'s sizes where they agree, with the replaced values named; a pattern stays', () => {
    const c = json<Comparison>(r.tiny!);
    expect(c.a.stats).toEqual(json<Stats>(r.tinyA!));
    expect(c.b.stats).toEqual(json<Stats>(r.tinyB!));
    // the variant's n_layers follows its pattern (56 layers), which no preset sets: its widths shrink
    expect(r.tiny!.stderr).not.toMatch(/bamba-pattern\.arch: .*n_layers/);
    expect(c.b.stats.state.kvBytesPerToken / c.a.stats.state.kvBytesPerToken).toBe(8 / 2);
    expect(r.tiny!.stderr).toMatch(/^note: --preset tiny replaced 11 values of \S*bamba\.arch: vocab 128256 -> 256, d_model 4096 -> 64, n_layers 32 -> 4, attn_layers \[9, 18, 27\] -> \[1, 3\]/m);
    expect(r.tiny!.stderr).toMatch(/^note: --preset tiny replaced \d+ values of \S*bamba-pattern\.arch: vocab 128256 -> 256, d_model 4096 -> 64/m);
  });

  it('--preset is refused where the two files set a size differently (AC315, naming it and both values)', () => {
    expect(r.clash!.code).toBe(1);
    expect(r.clash!.stdout).toBe('');
    expect(r.clash!.stderr).toMatch(/error AC315: invalid --preset: tiny would set a param that the two files set differently, and the comparison would not see the difference: d_model \(\S*bamba\.arch: 4096, \S*wide\.arch: 512; the preset sets 64\)/);
    expect(r.clash!.stderr).not.toMatch(NO_STACK);
  });

  it('a single file\'s --preset names the values it replaced, but for those --set gives', () => {
    expect(r.wideNote!.code).toBe(0);
    expect(r.wideNote!.stderr).toMatch(/^note: --preset tiny replaced 10 values of \S*wide\.arch: d_model 512 -> 64, n_layers 32 -> 4/);
    expect(r.wideNote!.stderr).not.toMatch(/vocab/);
  });

  it('errors: coded, naming the param, file or place, exit 1, no stack trace', () => {
    const cases: [string, RegExp][] = [
      ['unknownSet', /error AC302: unknown param nope in --set\n\s+hint: neither \S*bamba\.arch nor \S*bamba-pattern\.arch declares it/],
      ['badPattern', /bamba-pattern\.arch:\d+:\d+: error AC316: layer pattern symbol "X" at position 2 is not one of M \* -/],
      ['missing', /absent\.arch/],
      ['broken', /broken\.arch:2:7: error AC102/],
      ['badContext', /error AC315: invalid --context: expected a positive integer, got "0"/],
    ];
    for (const [name, re] of cases) {
      const res = r[name]!;
      expect(res.code, name).toBe(1);
      expect(res.stdout, name).toBe('');
      expect(res.stderr, name).toMatch(re);
      expect(res.stderr, name).not.toMatch(NO_STACK);
    }
  });
});
