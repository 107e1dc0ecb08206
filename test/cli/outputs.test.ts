// What `-o DIR` and `--out FILE` may do to the file system: never delete files archc did not write
// (a non-empty directory that is not an earlier output of the same kind is refused, with a code and
// the way to force it; `/`, the home and current directories never), replace an earlier output only
// as a whole, leave no temp directory behind when interrupted, never create directories for --out,
// write FIFOs and devices as streams (never replace them), and report unwritable places with a code.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHC, BAMBA, ROOT, TINY, runCli, setsFor, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { probeWritable } from '../../cli/fsutil.ts';

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

  it('probeWritable: a place that can be made passes and leaves nothing; one under a file or in /proc is AC604 naming it', () => {
    const dir = tmp();
    probeWritable(join(dir, 'a', 'b', 'pkg'));
    expect(readdirSync(dir)).toEqual([]);
    writeFileSync(join(dir, 'file'), 'x');
    for (const target of [join(dir, 'file', 'pkg'), '/proc/archc-no-such/pkg']) {
      let err: unknown;
      try {
        probeWritable(target);
      } catch (e) {
        err = e;
      }
      expect(err, target).toMatchObject({ code: 'AC604' });
      expect(String((err as Error).message)).toContain(target);
    }
    expect(readdirSync(dir)).toEqual(['file']);
  });

  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s while the package is being written stops the build: exit %i, no temp directory, the target whole or absent', async (signal, code) => {
    const dir = tmp();
    const out = join(dir, 'pkg');
    const child = spawn(process.execPath, [ARCHC, 'build', BAMBA, '-o', out, ...SETS], { cwd: ROOT, stdio: 'ignore' });
    let exit: { code: number | null; signal: string | null } | undefined;
    child.on('exit', (c, s) => (exit = { code: c, signal: s }));
    const poll = () => new Promise((r) => setTimeout(r, 20));
    // signal as soon as the temp directory exists (polled, at most 30000 times: a build whose nvcc
    // cache is cold compiles its CUDA kernels first, minutes on a loaded machine)
    for (let i = 0; i < 30_000 && !exit && temps(dir).length === 0; i++) await poll();
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
  }, 900_000);
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

describe('special files and places that are not archc\'s', () => {
  const graphText = async () => {
    const r = await runCli(['graph', BAMBA, ...SETS]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };

  it('graph -o FIFO streams into the FIFO (it stays a FIFO; the reader gets the whole graph)', async () => {
    const fifo = join(tmp(), 'pipe');
    execFileSync('mkfifo', [fifo]);
    const chunks: Buffer[] = [];
    const read = new Promise<string>((done, fail) => {
      createReadStream(fifo).on('data', (c) => chunks.push(c as Buffer)).on('end', () => done(Buffer.concat(chunks).toString('utf8'))).on('error', fail);
    });
    const r = await runCli(['graph', BAMBA, ...SETS, '-o', fifo]);
    expect(r.code, r.stderr).toBe(0);
    expect(await read).toBe(await graphText());
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('forward --out FIFO past the pipe\'s 64 KB, to a reader that waits before it reads: the reader gets every byte a file gets; a FIFO nobody reads is AC607', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'ckpt'));
    writeCheckpoint(join(dir, 'ckpt'));
    const ids = Array.from({ length: 300 }, (_, i) => (i * 7) % 96).join(',');
    const args = (out: string) => ['forward', BAMBA, ...SETS, '--set', 'context=512', '--weights', join(dir, 'ckpt'), '--ids', ids, '--backend', 'cpu', '--out', out];
    const file = await runCli(args(join(dir, 'file.npy')));
    expect(file.code, file.stderr).toBe(0);
    const want = readFileSync(join(dir, 'file.npy'));
    expect(want.length).toBeGreaterThan(100_000);
    const fifo = join(dir, 'pipe.npy');
    execFileSync('mkfifo', [fifo]);
    // the reader opens at once and reads only after a pause, so the writer finds the pipe full
    const reader = spawn('sh', ['-c', `exec 3<"${fifo}"; sleep 2; cat <&3`], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    reader.stdout.on('data', (b: Buffer) => chunks.push(b));
    const read = new Promise<void>((done) => reader.once('close', () => done()));
    const r = await runCli(args(fifo));
    await read;
    expect(r.code, r.stderr).toBe(0);
    expect(Buffer.concat(chunks).equals(want)).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    const alone = await runCli(args(fifo));
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/^error AC607: cannot write \S*pipe\.npy: it is a FIFO that no process opened for reading within 5 s/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  }, 180_000);

  it('graph -o /dev/null and init-weights / build -o /dev/null leave /dev/null a character device', async () => {
    const g = await runCli(['graph', BAMBA, ...SETS, '-o', '/dev/null']);
    expect(g.code, g.stderr).toBe(0);
    for (const cmd of ['init-weights', 'build']) {
      const r = await runCli([cmd, BAMBA, ...SETS, '-o', '/dev/null']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error AC600: output \/dev\/null exists and is not a directory/);
    }
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(readdirSync('/dev').filter((n) => n.startsWith('null.'))).toEqual([]);
  });

  it('--out /dev/stdout writes to the command\'s stdout, whatever it is (here a pipe)', async () => {
    const r = await runCli(['graph', BAMBA, ...SETS, '-o', '/dev/stdout']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(await graphText());
    expect(lstatSync('/dev/stdout').isSymbolicLink()).toBe(true);
  });

  it('a link to a file keeps the link and replaces the file; a directory is refused (AC605)', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'real.txt'), 'old');
    symlinkSync(join(dir, 'real.txt'), join(dir, 'link.txt'));
    const r = await runCli(['graph', BAMBA, ...SETS, '-o', join(dir, 'link.txt')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readlinkSync(join(dir, 'link.txt'))).toBe(join(dir, 'real.txt'));
    expect(readFileSync(join(dir, 'real.txt'), 'utf8')).toBe(await graphText());
    mkdirSync(join(dir, 'sub'));
    const d = await runCli(['graph', BAMBA, ...SETS, '-o', join(dir, 'sub')]);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/^error AC605: cannot write .*sub: it is a directory/);
    expect(d.stderr).not.toMatch(NO_STACK);
    expect(readdirSync(join(dir, 'sub'))).toEqual([]);
  });

  it('build -o refuses /, the home directory, the current directory and their ancestors at once, forced or not (AC606)', async () => {
    const home = join(tmp(), 'home');
    mkdirSync(join(home, 'work'), { recursive: true });
    writeFileSync(join(home, 'notes.txt'), 'mine');
    const cases: [string, RegExp][] = [
      ['/', /the root directory/],
      [home, /the home directory/],
      [dirname(home), /an ancestor of the home directory/],
      [ROOT, /the current directory/],
      [dirname(ROOT), /an ancestor of the current directory/],
    ];
    for (const [out, why] of cases) {
      // a walk of the whole file system (as `-o /` did) would not end within the limit
      const r = await runCli(['build', BAMBA, ...SETS, '-o', out, '--force'], 30_000, { HOME: home });
      expect(r.code, `build -o ${out}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/^error AC606: output directory .* is .*: archc never replaces it/);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(NO_STACK);
    }
    expect(readFileSync(join(home, 'notes.txt'), 'utf8')).toBe('mine');
  });

  // a model whose checkpoint takes a while to write (36M parameters, 73 MB of f32)
  const BIG = setsFor({ ...TINY, d_model: 512, n_layers: 8, mamba_heads: 16, d_ff: 2048 }).flatMap((s) => ['--set', s]);

  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s while init-weights writes its checkpoint: exit %i, the old checkpoint left as it was, no temp directory', async (signal, code) => {
    const dir = tmp();
    const ckpt = join(dir, 'ckpt');
    const first = await runCli(['init-weights', BAMBA, '-o', ckpt, '--seed', '1', ...SETS]);
    expect(first.code, first.stderr).toBe(0);
    const before = readFileSync(join(ckpt, 'model.safetensors'));
    const child = spawn(process.execPath, [ARCHC, 'init-weights', BAMBA, '-o', ckpt, '--seed', '2', ...BIG], { cwd: ROOT, stdio: 'ignore' });
    let exit: { code: number | null; signal: string | null } | undefined;
    child.on('exit', (c, s) => (exit = { code: c, signal: s }));
    const poll = () => new Promise((r) => setTimeout(r, 5));
    // the temp directory is made just before the checkpoint is written (polled for at most 60 s)
    for (let i = 0; i < 12_000 && !exit && temps(dir).length === 0; i++) await poll();
    expect(temps(dir).length, 'init-weights never created its temp directory').toBeGreaterThan(0);
    child.kill(signal);
    while (!exit) await poll();
    // it used to finish the write, put the new checkpoint in place and exit 0
    expect(exit).toEqual({ code, signal: null });
    expect(temps(dir)).toEqual([]);
    expect(readFileSync(join(ckpt, 'model.safetensors')).equals(before)).toBe(true);
  }, 120_000);
});
