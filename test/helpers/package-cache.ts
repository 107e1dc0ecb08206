// A package built by `archc build` for tests that only read it, kept under .tmp/packages/ and named
// by a hash of what makes it (archc's sources, models/, package.json, the arguments and the contents
// of the files they name): a rerun, or another test file with the same arguments, finds it instead of building
// again (a build is a TypeScript compile of minutes on a loaded machine); any change builds anew,
// and packages no run has used for an hour are removed then (each is tens of MB). Test files that
// run side by side and ask for the same package build it once: the first takes a lock (a folder
// beside the package, holding its process id), the others wait for the package to appear; a lock
// whose process is gone is taken over.

import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { BAMBA, ROOT, TINY, runCli, setsFor } from './checkpoints.ts';

const SOURCES = ['cli', 'compiler', 'dsl', 'runtime', 'codegen', 'models'];

function sourceHash(args: readonly string[]): string {
  const h = createHash('sha256');
  const add = (file: string) => h.update(`${file}\0`).update(readFileSync(file)).update('\0');
  for (const dir of SOURCES) {
    const files = readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort();
    for (const f of files) add(f);
  }
  add(join(ROOT, 'package.json'));
  // a file named in the arguments counts by its contents, not its path: test files that write the
  // same config.json into folders of their own share one package (a build reads only the file)
  for (const a of args) {
    if (existsSync(a) && statSync(a).isFile()) h.update('file\0').update(readFileSync(a)).update('\0');
    else h.update(`${a}\0`);
  }
  return h.digest('hex').slice(0, 16);
}

/** Whether the process that took lock folder `lock` is gone (or never wrote its id). */
function staleLock(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    // made but its id not yet written: stale only once it is old
    return existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 60_000;
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** The package directory `archc build <args> -o <it>` makes, built now only if no earlier run left
 *  it (a build writes its directory whole or not at all, so one found is complete), and by one of
 *  the files that ask for it at once. */
export async function builtPackage(args: readonly string[], timeoutMs = 900_000): Promise<string> {
  const packages = join(ROOT, '.tmp', 'packages');
  mkdirSync(packages, { recursive: true });
  const dir = join(packages, sourceHash(args));
  const lock = `${dir}.lock`;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) {
      const now = new Date();
      utimesSync(dir, now, now); // in use: kept by the next build's pruning
      return dir;
    }
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (staleLock(lock)) rmSync(lock, { recursive: true, force: true });
      else await sleep(1000); // another file is building it
    }
  }
  try {
    const r = await runCli(['build', ...args, '-o', dir, '--force'], timeoutMs);
    if (r.code !== 0) throw new Error(`archc build ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  const now = Date.now();
  for (const e of readdirSync(packages)) {
    const p = join(packages, e);
    if (p !== dir && !e.endsWith('.lock') && now - statSync(p).mtimeMs > 3_600_000) rmSync(p, { recursive: true, force: true });
  }
  return dir;
}

/** The package of checkpoints.ts' TINY Bamba (the .arch's defaults otherwise: bf16, a tied head),
 *  named tiny-bamba, built once for the test files that load or type-check it (test/e2e/tie.test.ts,
 *  test/package/types.test.ts) and copied whole to `dir`: there it resolves its imports as a package
 *  outside archc's tree does, not from archc's node_modules above .tmp/packages. Returns `dir`. */
export async function tinyPackage(dir: string): Promise<string> {
  cpSync(await builtPackage([BAMBA, '--name', 'tiny-bamba', ...setsFor(TINY).flatMap((s) => ['--set', s])]), dir, { recursive: true });
  return dir;
}
