// A package built by `archc build` for tests that only read it, kept under .tmp/packages/ and named
// by a hash of what makes it (archc's sources, models/, package.json, the arguments and the files
// they name): a rerun, or another test file with the same arguments, finds it instead of building
// again (a build is a TypeScript compile of minutes on a loaded machine); any change builds anew,
// and packages no run has used for an hour are removed then (each is tens of MB).

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runCli } from './checkpoints.ts';

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
  for (const a of args) {
    h.update(`${a}\0`);
    if (existsSync(a) && statSync(a).isFile()) add(a);
  }
  return h.digest('hex').slice(0, 16);
}

/** The package directory `archc build <args> -o <it>` makes, built now only if no earlier run left
 *  it (a build writes its directory whole or not at all, so one found is complete). */
export async function builtPackage(args: readonly string[], timeoutMs = 900_000): Promise<string> {
  const packages = join(ROOT, '.tmp', 'packages');
  const dir = join(packages, sourceHash(args));
  const now = new Date();
  if (existsSync(join(dir, 'package.json'))) {
    utimesSync(dir, now, now); // in use: kept by the next build's pruning
    return dir;
  }
  const r = await runCli(['build', ...args, '-o', dir, '--force'], timeoutMs);
  if (r.code !== 0) throw new Error(`archc build ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  for (const e of readdirSync(packages)) {
    const p = join(packages, e);
    if (p !== dir && now.getTime() - statSync(p).mtimeMs > 3_600_000) rmSync(p, { recursive: true, force: true });
  }
  return dir;
}
