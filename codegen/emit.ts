// The package's TypeScript checked and emitted (codegen/package.ts writes it under src/): on a worker
// thread, with the copied runtime's output kept between builds.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ts } from 'ts-morph';
import { InternalError } from '../dsl/diagnostics.ts';

/** Sources a package copies unchanged: the files under `from` that `keep` passes, to src/`to`. */
export interface CopiedSources {
  readonly from: string;
  readonly to: string;
  readonly keep: (path: string) => boolean;
}

/**
 * Where the runtime's compiled form is kept between builds: `~/.cache/archc/runtime/<key>`, the key
 * a hash of what decides it (TypeScript's version, the compiler options but the package's own
 * folders, archc's package.json with its pinned dependencies, and every source the package copies).
 * null where there is no home folder.
 */
export function runtimeCache(options: ts.CompilerOptions, copied: readonly CopiedSources[], rootPackage: string): string | null {
  const { rootDir: _r, outDir: _o, ...rest } = options;
  const hash = createHash('sha256').update(`${ts.version}\n${JSON.stringify(rest)}\n${readFileSync(rootPackage, 'utf8')}\n`);
  for (const c of copied) {
    for (const f of (readdirSync(c.from, { recursive: true }) as string[]).sort()) {
      const at = join(c.from, f);
      if (c.keep(at) && statSync(at).isFile()) hash.update(`${join(c.to, f)}\n`).update(readFileSync(at)).update('\n');
    }
  }
  let home: string;
  try {
    home = homedir();
  } catch {
    return null;
  }
  return home ? join(home, '.cache', 'archc', 'runtime', hash.digest('hex').slice(0, 24)) : null;
}

/**
 * Type-checks and emits the package's TypeScript (saved under `src`) on a worker thread: the
 * longest step of a build, and one the main thread keeps waiting on, not running, so a SIGINT
 * ends the build at once (cli/fsutil.ts exitOnSignals). The worker is plain CommonJS text with
 * ts-morph's resolved path, so it runs the same from the sources and from the CLI's bundle.
 *
 * The copied runtime (src/runtime, src/cli) is the same in every package one archc makes: the first
 * build checks and emits everything and keeps the runtime's JS and declarations in `cache`; a build
 * that finds them there checks and emits only its generated files (against the runtime's sources,
 * for their types) and copies the runtime's output (~10 s of a tiny model's build -> ~3 s). A cache
 * that cannot be read or written only costs the time. The 8 most recently used runtimes are kept
 * (~2 MB each).
 */
export async function checkAndEmit(compilerOptions: ts.CompilerOptions, src: string, cache: string | null): Promise<void> {
  const worker = new Worker(EMIT_WORKER, { eval: true, workerData: { tsMorph: createRequire(import.meta.url).resolve('ts-morph'), compilerOptions, src, cache } });
  try {
    const result = await new Promise<{ errors?: string; skipped?: boolean }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new InternalError(`the TypeScript worker exited with code ${code}`)));
    });
    if (result.errors) throw new InternalError(`generated TypeScript does not compile:\n${result.errors}`);
    if (result.skipped) throw new InternalError('TypeScript emit was skipped');
  } finally {
    await worker.terminate();
  }
}

// The runtime's folders under src (and dist), the file the cache writes last (a folder without it is
// not used; its time is the entry's last use) and how many entries are kept (other archc versions'
// runtimes, the least recently used removed first; a temp folder a build left behind, after an hour).
const EMIT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { cpSync, existsSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } = require('node:fs');
const { dirname, join, relative } = require('node:path');
const { Project, ts } = require(workerData.tsMorph);
const { compilerOptions, src, cache } = workerData;
const RUNTIME = ['runtime', 'cli'], DONE = '.complete', KEEP = 8, STALE_MS = 3600e3;
const project = new Project({ compilerOptions });
project.addSourceFilesAtPaths(src + '/**/*.ts');
const ours = (f) => RUNTIME.includes(relative(src, f.getFilePath()).split(/[\\/]/)[0]);
const hit = cache !== null && existsSync(join(cache, DONE));
const checked = hit ? project.getSourceFiles().filter((f) => !ours(f)) : null;
const errors = (checked ? checked.flatMap((f) => f.getPreEmitDiagnostics()) : project.getPreEmitDiagnostics()).filter((d) => d.getCategory() === ts.DiagnosticCategory.Error);
if (errors.length) parentPort.postMessage({ errors: project.formatDiagnosticsWithColorAndContext(errors.slice(0, 10)) });
else if (checked && fromCache()) {
  let skipped = false;
  for (const f of checked) skipped = project.emitSync({ targetSourceFile: f }).getEmitSkipped() || skipped;
  parentPort.postMessage({ skipped });
} else {
  const skipped = project.emitSync().getEmitSkipped();
  if (!skipped && cache !== null) {
    // written beside the cache under a name of its own, then renamed into place whole
    const tmp = cache + '.tmp-' + process.pid + '-' + Math.random().toString(36).slice(2);
    try {
      for (const d of RUNTIME) cpSync(join(compilerOptions.outDir, d), join(tmp, d), { recursive: true });
      writeFileSync(join(tmp, DONE), '');
      // a folder under the cache's name without the mark was not written by a build: replaced
      if (existsSync(cache) && !existsSync(join(cache, DONE))) rmSync(cache, { recursive: true, force: true });
      renameSync(tmp, cache);
      prune();
    } catch {
      // another build put it there first, or the folder is not writable: this build is whole anyway
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  parentPort.postMessage({ skipped });
}

/** The runtime's output copied from the cache, the entry marked used; false where that failed (an
 *  entry removed meanwhile by another build's prune): the build then emits the runtime itself. */
function fromCache() {
  try {
    for (const d of RUNTIME) cpSync(join(cache, d), join(compilerOptions.outDir, d), { recursive: true });
    const now = new Date();
    utimesSync(join(cache, DONE), now, now);
    return true;
  } catch {
    return false;
  }
}

/** Entries past the KEEP most recently used, and temp folders older than STALE_MS, removed. */
function prune() {
  const root = dirname(cache), now = Date.now();
  const entries = [];
  for (const name of readdirSync(root)) {
    const at = join(root, name);
    try {
      if (name.includes('.tmp-')) { if (now - statSync(at).mtimeMs > STALE_MS) rmSync(at, { recursive: true, force: true }); }
      else entries.push({ at, used: statSync(join(at, DONE)).mtimeMs });
    } catch {
      // no mark (being replaced) or gone already
    }
  }
  entries.sort((a, b) => b.used - a.used);
  for (const e of entries.slice(KEEP)) rmSync(e.at, { recursive: true, force: true });
}
`;
