// What `-o DIR` and `--out FILE` may do to the file system: never delete files archc did not write
// (a non-empty directory that is not an earlier output of the same kind is refused, with a code and
// the way to force it), replace an earlier output only as a whole, leave no temp directory behind
// when interrupted, never create directories for --out, and report unwritable places with a code.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHC, BAMBA, ROOT, TINY, runCli, setsFor, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-outputs-');
const SETS = setsFor(TINY).flatMap((s) => ['--set', s]);
const NO_STACK = /^\s+at /m;
const temps = (dir: string) => readdirSync(dir).filter((n) => n.includes('.tmp-'));

describe('init-weights -o', () => {
  it('refuses a checkpoint directory it did not write, keeping its tokenizer.json (AC601)', async () => {
    const ckpt = join(tmp(), 'ckpt');
    mkdirSync(ckpt);
    writeCheckpoint(ckpt);
    writeFileSync(join(ckpt, 'tokenizer.json'), '{}');
    const before = readdirSync(ckpt).sort();
    const r = await runCli(['init-weights', BAMBA, '-o', ckpt, ...SETS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error AC601: output directory .*ckpt is not empty and is not an archc checkpoint: it holds /);
    expect(r.stderr).toMatch(/--force/);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(readdirSync(ckpt).sort()).toEqual(before);
    expect(readFileSync(join(ckpt, 'tokenizer.json'), 'utf8')).toBe('{}');
  });

  it('replaces its own earlier checkpoint as a whole, refuses it once a foreign file is added (AC602), and --force replaces it', async () => {
    const dir = tmp();
    const ckpt = join(dir, 'ckpt');
    const first = await runCli(['init-weights', BAMBA, '-o', ckpt, '--seed', '1', ...SETS]);
    expect(first.code, first.stderr).toBe(0);
    const second = await runCli(['init-weights', BAMBA, '-o', ckpt, '--seed', '2', '--shard-size', '20000', ...SETS]);
    expect(second.code, second.stderr).toBe(0);
    // the sharded checkpoint replaced the single file: nothing of the first is left
    expect(existsSync(join(ckpt, 'model.safetensors'))).toBe(false);
    expect(existsSync(join(ckpt, 'model.safetensors.index.json'))).toBe(true);

    writeFileSync(join(ckpt, 'tokenizer.json'), '{}');
    const refused = await runCli(['init-weights', BAMBA, '-o', ckpt, ...SETS]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/error AC602: output directory .*ckpt is an archc checkpoint but also holds files archc did not write: tokenizer\.json/);
    expect(existsSync(join(ckpt, 'tokenizer.json'))).toBe(true);

    const forced = await runCli(['init-weights', BAMBA, '-o', ckpt, '--force', ...SETS]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(existsSync(join(ckpt, 'tokenizer.json'))).toBe(false);
    expect(existsSync(join(ckpt, 'model.safetensors'))).toBe(true);
    expect(temps(dir)).toEqual([]);
  });

  it('refuses a package directory (another kind of archc output) and a path that is a file (AC600)', async () => {
    const dir = tmp();
    const pkg = join(dir, 'pkg');
    mkdirSync(pkg);
    writeFileSync(join(pkg, '.archc-output.json'), JSON.stringify({ kind: 'package', files: ['package.json'] }));
    writeFileSync(join(pkg, 'package.json'), '{}');
    const r = await runCli(['init-weights', BAMBA, '-o', pkg, ...SETS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error AC601: .*not an archc checkpoint.*\n.*hint: it is an archc package/);
    writeFileSync(join(dir, 'file'), 'x');
    const f = await runCli(['init-weights', BAMBA, '-o', join(dir, 'file'), ...SETS]);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/error AC600: output .*file exists and is not a directory/);
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('x');
  });

  it('sweeps temp directories left by an archc process that died', async () => {
    const dir = tmp();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    mkdirSync(join(dir, `.ckpt.tmp-${dead}-AbCdEf`));
    writeFileSync(join(dir, `.ckpt.tmp-${dead}-AbCdEf`, 'model.safetensors'), 'partial');
    mkdirSync(join(dir, `.ckpt.tmp-${process.pid}-XyZxYz`)); // a live process's: kept
    const r = await runCli(['init-weights', BAMBA, '-o', join(dir, 'ckpt'), ...SETS]);
    expect(r.code, r.stderr).toBe(0);
    expect(temps(dir)).toEqual([`.ckpt.tmp-${process.pid}-XyZxYz`]);
  });
});

describe('build -o', () => {
  it('refuses a directory holding keep.txt and leaves it as it was (AC601)', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    const r = await runCli(['build', BAMBA, '-o', dir, ...SETS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error AC601: output directory .* is not empty and is not an archc package: it holds keep\.txt/);
    expect(r.stderr).toMatch(/hint: .*--force/);
    expect(readdirSync(dir)).toEqual(['keep.txt']);
    expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('mine');
  });

  it('an unwritable place is a coded error naming it, not a raw ENOENT', async () => {
    const r = await runCli(['build', BAMBA, '-o', '/proc/archc-no-such/pkg', ...SETS], 25_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error AC604: cannot write \/proc\/archc-no-such\/pkg: /);
    expect(r.stderr).not.toMatch(NO_STACK);
  });

  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s while the package is being written stops the build: exit %i, no temp directory, the target whole or absent', async (signal, code) => {
    const dir = tmp();
    const out = join(dir, 'pkg');
    const child = spawn(process.execPath, [ARCHC, 'build', BAMBA, '-o', out, ...SETS], { cwd: ROOT, stdio: 'ignore' });
    let exit: { code: number | null; signal: string | null } | undefined;
    child.on('exit', (c, s) => (exit = { code: c, signal: s }));
    const poll = () => new Promise((r) => setTimeout(r, 20));
    // signal as soon as the temp directory exists (polled, at most 3000 times)
    for (let i = 0; i < 3000 && !exit && temps(dir).length === 0; i++) await poll();
    expect(temps(dir).length, 'the build never created its temp directory').toBe(1);
    child.kill(signal);
    // the build stops within a bounded number of polls (it used to run on to the end and exit 0)
    let polls = 0;
    while (!exit && polls < 500) {
      await poll();
      polls++;
    }
    expect(exit, `the build still ran ${polls} polls after ${signal}`).toBeDefined();
    expect(exit).toEqual({ code, signal: null });
    expect(temps(dir)).toEqual([]);
    if (existsSync(out)) expect(JSON.parse(readFileSync(join(out, '.archc-output.json'), 'utf8')).kind).toBe('package');
  }, 120_000);
});

describe('--out FILE', () => {
  it('forward --out into a missing directory is refused before the model runs, and creates nothing (AC603)', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'ckpt'));
    writeCheckpoint(join(dir, 'ckpt'));
    const out = join(dir, 'no', 'such', 'x.npy');
    const r = await runCli(['forward', BAMBA, '--weights', join(dir, 'ckpt'), '--ids', '1,2,3', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error AC603: cannot write ${out}: directory ${join(dir, 'no', 'such')} does not exist\n`);
    expect(existsSync(join(dir, 'no'))).toBe(false);
  });
});
