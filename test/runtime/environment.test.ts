// What the environment hands the runtime is checked like any input: ARCHC_THREADS is digits from 1
// to the threads limit or RT306 naming the variable (the CLI exits 1 with no stack trace); shards
// that are links resolving outside the checkpoint folder are RT133 (a Hugging Face cache's
// snapshot links into its blobs folder are not).

import { mkdirSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultThreads, envThreads } from '../../runtime/cpu/pool.ts';
import { RUNTIME_LIMITS } from '../../runtime/limits.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { checkedThreads } from '../../runtime/targets.ts';
import { BAMBA, makeDir, removeDir, runCli, writeCheckpoint } from '../helpers/checkpoints.ts';
import { expectRuntimeError } from '../helpers/errors.ts';

const dirs: string[] = [];
const tmp = () => { const d = makeDir('archc-env-'); dirs.push(d); return d; };
const saved = process.env.ARCHC_THREADS;
afterEach(() => {
  if (saved === undefined) delete process.env.ARCHC_THREADS;
  else process.env.ARCHC_THREADS = saved;
  for (const d of dirs.splice(0)) removeDir(d);
});

describe('ARCHC_THREADS', () => {
  it('is digits from 1 to the threads limit; anything else is RT306 naming the variable', () => {
    for (const v of ['0', '-1', 'abc', '1.5', '1e9', '1000', '65', '0x4', '2 threads', 'Infinity', '1'.repeat(40)]) {
      process.env.ARCHC_THREADS = v;
      expectRuntimeError(() => defaultThreads(), 'RT306', 'ARCHC_THREADS', `1 to ${RUNTIME_LIMITS.threads.value}`);
    }
    for (const [v, n] of [['1', 1], ['3', 3], [' 64 ', 64], ['007', 7]] as const) {
      process.env.ARCHC_THREADS = v;
      expect(defaultThreads()).toBe(n);
      expect(envThreads(v)).toBe(n);
    }
    // unset or empty: the machine's cores, at most 8
    for (const v of [undefined, '']) {
      if (v === undefined) delete process.env.ARCHC_THREADS;
      else process.env.ARCHC_THREADS = v;
      expect(defaultThreads()).toBeGreaterThanOrEqual(1);
      expect(defaultThreads()).toBeLessThanOrEqual(8);
    }
  });

  it('the threads option has the same bound (RT303)', () => {
    for (const n of [0, 65, 1000, 1e9, 1.5, NaN]) expectRuntimeError(() => checkedThreads(n), 'RT303', `threads ${n}`);
    expect(checkedThreads(64)).toBe(64);
  });

  it('the CLI refuses a bad value with RT306, exit 1, no stack trace', async () => {
    const dir = tmp();
    writeCheckpoint(dir, {}, { seed: 1 });
    const args = ['forward', BAMBA, '--hf-config', join(dir, 'config.json'), '--weights', dir, '--ids', '1,2', '--loss'];
    for (const v of ['1e9', 'abc']) {
      const r = await runCli(args, 60_000, { ARCHC_THREADS: v });
      expect(r.stderr).toContain(`RT306: environment variable ARCHC_THREADS = "${v}"`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.code).toBe(1);
    }
    const ok = await runCli(args, 60_000, { ARCHC_THREADS: '2' });
    expect(ok.stdout).toContain('"loss"');
    expect(ok.code).toBe(0);
  }, 120_000);
});

describe('shards that are links', () => {
  /** A sharded checkpoint in a fresh folder; returns it and its shard file names. */
  function sharded(into: string): string[] {
    mkdirSync(into, { recursive: true });
    writeCheckpoint(into, {}, { seed: 2, shardSize: 40_000 });
    const shards = readdirSync(into).filter((f) => /^model-.*\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(1);
    return shards;
  }

  it('a shard linking outside the checkpoint folder is RT133, naming where it leads', () => {
    const root = tmp();
    const dir = join(root, 'ckpt');
    const [first] = sharded(dir);
    renameSync(join(dir, first!), join(root, 'outside.safetensors'));
    symlinkSync(join(root, 'outside.safetensors'), join(dir, first!));
    expectRuntimeError(() => openCheckpoint(dir), 'RT133', first!, 'a link to', 'outside.safetensors');
    // a relative link that climbs out, too
    const dir2 = join(root, 'ckpt2');
    const [s2] = sharded(dir2);
    renameSync(join(dir2, s2!), join(root, 'up.safetensors'));
    symlinkSync('../up.safetensors', join(dir2, s2!));
    expectRuntimeError(() => openCheckpoint(dir2), 'RT133', s2!, 'up.safetensors');
  });

  it('links inside the folder, and a Hugging Face cache snapshot linking into its blobs, load', () => {
    const root = tmp();
    const dir = join(root, 'ckpt');
    const [first] = sharded(dir);
    renameSync(join(dir, first!), join(dir, 'real.bin'));
    symlinkSync('real.bin', join(dir, first!));
    openCheckpoint(dir).close();
    // models--x/snapshots/<rev>/model-*.safetensors -> ../../blobs/<hash>
    const repo = join(root, 'models--x');
    const snap = join(repo, 'snapshots', 'abc123');
    const shards = sharded(snap);
    mkdirSync(join(repo, 'blobs'));
    shards.forEach((s, i) => {
      renameSync(join(snap, s), join(repo, 'blobs', `blob${i}`));
      symlinkSync(`../../blobs/blob${i}`, join(snap, s));
    });
    openCheckpoint(snap).close();
  });
});
