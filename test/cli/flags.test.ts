// Command-line values for forward and run: refused before the weights load, with the flag's own
// name (`--top-p`, not `topP`), and never converted silently (`0x10`, `1e2`, `abc`, `-1`).
// In-process through `main`, on one tiny random checkpoint.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { BAMBA, makeDir, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

let dir: string;
beforeAll(() => {
  dir = makeDir();
  writeCheckpoint(dir);
});
afterAll(() => removeDir(dir));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = ((s: string) => ((stdout += s), true)) as never;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as never;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
}

const forward = (...args: string[]) => cli(['forward', BAMBA, '--weights', dir, ...args]);
const run = (...args: string[]) => cli(['run', BAMBA, '--weights', dir, ...args]);

describe('forward flags', () => {
  it.each([
    ['0x10', '"0x10"'],
    ['1e2', '"1e2"'],
    ['-1', '"-1"'],
    ['2.0', '"2.0"'],
    ['1,,2', '""'],
  ])('--ids %s is refused', async (ids, shown) => {
    const r = await forward('--ids', ids);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error AC315: invalid --ids: ${JSON.stringify(ids)}: ${shown} is not a non-negative decimal integer`);
  });

  it.each([
    ['1,2,3', '0,-1,2', 'is not a non-negative decimal integer'],
    ['1,2,3', '0,1,2147483648', 'is over 2147483647'],
    ['1,2;3', '0,1,2', 'sequences of 3 positions for sequences of 2, 1 ids'],
    ['1,2;3', '0,1;5', 'sequence 2 starts at position 5'],
    ['1,2,3;4', '0,1,0;0', 'has a 0 at index 2'],
  ])('--ids %s --positions %s is refused', async (ids, positions, message) => {
    const r = await forward('--ids', ids, '--positions', positions);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('invalid --positions');
    expect(r.stderr).toContain(message);
  });

  it('--positions that match the sequences run; packed by ; or by zeros give the same loss', async () => {
    const a = await forward('--ids', '1,2,3;4,5', '--positions', '0,1,2;0,1', '--loss');
    const b = await forward('--ids', '1,2,3,4,5', '--positions', '0,1,2,0,1', '--loss');
    const c = await forward('--ids', '1,2,3;4,5', '--loss');
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).loss).toBeCloseTo(JSON.parse(c.stdout).loss, 6);
    expect(JSON.parse(b.stdout).loss).toBeCloseTo(JSON.parse(c.stdout).loss, 6);
    // tokens counts the predicted rows (each sequence's length - 1), not the ids given
    const predicted = [[1, 2, 3], [4, 5]].reduce((n, s) => n + s.length - 1, 0);
    for (const r of [a, b, c]) expect(JSON.parse(r.stdout).tokens, r.stdout).toBe(predicted);
  });

  it('--loss with nothing to predict is refused instead of printing null', async () => {
    for (const ids of ['7', '7;8']) {
      const r = await forward('--ids', ids, '--loss');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('invalid --loss: no token to predict');
      expect(r.stdout).not.toContain('null');
    }
  });
});

describe('run flags', () => {
  it.each([
    [['--top-p', '2'], "invalid --top-p: expected a number in (0, 1], got \"2\""],
    [['--top-p', '0'], 'invalid --top-p'],
    [['--temperature', 'abc'], 'invalid --temperature: expected a finite number ≥ 0, got "abc"'],
    [['--temperature', '-1'], 'invalid --temperature'],
    [['--top-k', '1.5'], 'invalid --top-k'],
    [['--min-p', '2'], 'invalid --min-p'],
    [['--repetition-penalty', '0'], 'invalid --repetition-penalty'],
    [['--seed', 'x'], 'invalid --seed'],
    [['--max-tokens', 'abc'], 'invalid --max-tokens: expected a positive integer, got "abc"'],
    [['--max-tokens', '-1'], 'invalid --max-tokens'],
    [['--max-tokens', '0'], 'invalid --max-tokens'],
    [['--stop', '0x2'], 'invalid --stop'],
  ])('%j is refused with the flag name', async (flags, message) => {
    const r = await run('--ids', '1,2', ...flags);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toMatch(/topP|topK|minP|repetitionPenalty|maxTokens|NaN/);
  });

  it('--prompt with --ids is refused', async () => {
    const r = await run('--ids', '1,2', '--prompt', 'hi');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('give --prompt or --ids, not both');
  });

  it('a run that generates tokens reports a time that is not negative', async () => {
    const r = await run('--ids', '1,2', '--max-tokens', '2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/2 tokens; first after \d+\.\d\d s/);
    expect(r.stderr).not.toMatch(/-\d/);
  });
});

describe('--ssm-state', () => {
  it('bf16 runs on the wasm and cpu backends (the same tokens on both); another format is refused, naming the choices', async () => {
    const wasm = await run('--ids', '1,2', '--max-tokens', '6', '--ssm-state', 'bf16');
    expect(wasm.code, wasm.stderr).toBe(0);
    expect(wasm.stdout).toMatch(/^\d+( \d+){5}\n$/);
    const cpu = await run('--ids', '1,2', '--max-tokens', '6', '--ssm-state', 'bf16', '--backend', 'cpu');
    expect(cpu.code, cpu.stderr).toBe(0);
    expect(cpu.stdout).toBe(wasm.stdout);
    const bad = await run('--ids', '1,2', '--ssm-state', 'f16');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--ssm-state.*f16.*f32, bf16/s);
  });
});

describe('--capacity and --stop-at-context', () => {
  it('a prompt and --max-tokens over --capacity are refused before any token, naming the flag (RT307)', async () => {
    const r = await run('--ids', '1,2', '--max-tokens', '400', '--capacity', '16');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('RT307');
    expect(r.stderr).toContain('capacity 16');
    expect(r.stderr).toContain('--capacity N');
    expect(r.stderr).toContain('--stop-at-context');
    expect(r.stdout).toBe('');
  });

  it('what fits runs; --stop-at-context stops at the capacity; every output ends its line', async () => {
    const fits = await run('--ids', '1,2', '--max-tokens', '15', '--capacity', '16', '--stop', '0');
    expect(fits.code, fits.stderr).toBe(0);
    const stopped = await run('--ids', '1,2', '--max-tokens', '400', '--capacity', '16', '--stop', '0', '--stop-at-context');
    expect(stopped.code, stopped.stderr).toBe(0);
    // the same greedy tokens, at most 15 (2 + 15 - 1 = 16 tokens in the sequence)
    expect(stopped.stdout).toBe(fits.stdout);
    expect(stopped.stdout).toMatch(/^\d+( \d+)*\n$/);
    const n = stopped.stdout.trim().split(' ').length;
    expect(n).toBeLessThanOrEqual(15);
    expect(stopped.stderr).toContain(`${n} tokens; `);
  });

  it.each(['0', 'abc', '1.5'])('--capacity %s is refused with the flag name', async (v) => {
    const r = await run('--ids', '1,2', '--capacity', v);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--capacity');
  });

  it('forward loads with --capacity: a sequence longer than it is RT302', async () => {
    const r = await forward('--ids', '1,2,3', '--capacity', '2');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('RT302');
    expect(r.stderr).toContain('capacity 2');
    expect(r.stderr).toContain('--capacity N');
  });
});

describe('checkpoint directory problems', () => {
  it('a missing config.json key that shapes the graph is named with its default (AC408)', async () => {
    const { readFileSync, writeFileSync, cpSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const d = mkdtempSync(join(tmpdir(), 'archc-flags-'));
    try {
      cpSync(dir, d, { recursive: true });
      const cfg = readFileSync(join(d, 'config.json'), 'utf8').replace(/\s*"num_hidden_layers": \d+,/, '');
      writeFileSync(join(d, 'config.json'), cfg);
      const r = await cli(['forward', BAMBA, '--weights', d, '--ids', '1,2']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('warning AC408: config key num_hidden_layers is missing from');
      expect(r.stderr).toContain('param n_layers takes its default 32');
      // the shape errors that follow are capped
      expect(r.stderr.split('\n').length).toBeLessThan(60);
    } finally {
      removeDir(d);
    }
  });

  it('a default the language writes with inf is named as it is written, not as JSON\'s null (AC408)', async () => {
    const { compileFile, loadConfig } = await import('../../compiler/compile.ts');
    const cfg = { ...loadConfig(join(dir, 'config.json')).config };
    delete cfg.time_step_limit;
    const w = compileFile(BAMBA, { hfConfigData: { file: 'config.json', config: cfg } }).warnings.map((d) => d.message).join('\n');
    expect(w).toContain('config key time_step_limit is missing from config.json; param dt_limit takes its default [0,inf]');
  });
});
