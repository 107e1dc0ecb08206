// Writing outputs whole or not at all, and never over files archc did not write.
//   writeFileAtomic: a temp file beside the target, then a rename (the directory must exist).
//   writeDirAtomic:  a temp directory beside the target, filled, then put in place of the target.
// Every output directory holds a marker, .archc-output.json, naming its kind and the files written,
// so a later run can tell an earlier archc output of the same kind (replaced as a whole) from a
// directory with anything else in it (refused unless forced).

import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { OutputError } from './errors.ts';

export const OUTPUT_MARKER = '.archc-output.json';
export type OutputKind = 'package' | 'checkpoint';

/** Writes `data` to `path` via a temp file; the parent directory must already exist (AC603). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  checkParent(path);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw asOutputError(e, path);
  }
}

export interface WriteDirOptions {
  /** Replace the target even when it holds files archc did not write (they are deleted). */
  readonly force?: boolean;
}

/** Temp outputs in progress: removed when a signal ends the process. */
const inProgress = new Set<() => void>();
const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;
let handling = false;

/** From now until the process ends, SIGINT and SIGTERM remove every temp output in progress and end
 *  the process with 128 + the signal's number (130, 143), as a shell reports a process a signal
 *  killed. Installed once and never removed: a signal that arrives while synchronous work runs is
 *  dispatched only when the event loop next polls, and a listener removed before then would lose
 *  it (the process would go on and exit 0). Long commands call it first and yield to the event loop
 *  (`yieldToSignals`) between their steps, so a signal stops them between steps. */
export function exitOnSignals(): void {
  if (handling) return;
  handling = true;
  for (const signal of Object.keys(SIGNAL_NUMBERS) as (keyof typeof SIGNAL_NUMBERS)[]) {
    process.on(signal, () => {
      for (const cleanUp of inProgress) cleanUp();
      process.exit(128 + SIGNAL_NUMBERS[signal]);
    });
  }
}

/** Lets a pending SIGINT/SIGTERM be handled: two turns of the event loop, so that it polls (where
 *  signals are read) at least once in between. */
export function yieldToSignals(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** Fills a fresh temp directory beside `target` with `fill`, marks it as an archc output of `kind`,
 *  then puts it in place of `target` (the old one is moved aside first and removed last). The target
 *  must be absent, empty, or an earlier archc output of the same kind holding only the files it
 *  wrote; anything else is refused (AC601/AC602) unless `force`. On failure, or on SIGINT/SIGTERM,
 *  nothing of the temp directory is left; temp directories of processes that died are swept. */
export function writeDirAtomic(target: string, kind: OutputKind, fill: (dir: string) => void, opts: WriteDirOptions = {}): void {
  const out = beginDir(target, kind, opts);
  try {
    fill(out.tmp);
    out.commit();
  } catch (e) {
    out.abandon();
    throw asOutputError(e, target);
  }
}

/** writeDirAtomic with an asynchronous `fill`: a signal during it removes the temp directory and
 *  ends the process (exitOnSignals) without waiting for `fill` to finish. */
export async function writeDirAtomicAsync(target: string, kind: OutputKind, fill: (dir: string) => Promise<void>, opts: WriteDirOptions = {}): Promise<void> {
  const out = beginDir(target, kind, opts);
  try {
    await fill(out.tmp);
    await yieldToSignals(); // a signal that came during the last synchronous step stops it here, before the output is put in place
    out.commit();
  } catch (e) {
    out.abandon();
    throw asOutputError(e, target);
  }
}

/** The temp directory of a writeDirAtomic, registered for removal on a signal until it is committed
 *  (put in place of the target) or abandoned (removed). */
function beginDir(target: string, kind: OutputKind, opts: WriteDirOptions): { tmp: string; commit(): void; abandon(): void } {
  const parent = dirname(target);
  try {
    makeDirs(parent);
  } catch (e) {
    throw asOutputError(e, target);
  }
  sweepStaleTemps(target);
  checkReplaceable(target, kind, opts.force ?? false);
  let tmp: string;
  try {
    tmp = mkdtempSync(join(parent, `.${basename(target)}.tmp-${process.pid}-`));
    chmodSync(tmp, 0o755);
  } catch (e) {
    throw asOutputError(e, target);
  }
  const old = `${tmp}.old`;
  const cleanUp = () => {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  };
  exitOnSignals();
  inProgress.add(cleanUp);
  return {
    tmp,
    commit() {
      writeFileSync(join(tmp, OUTPUT_MARKER), JSON.stringify({ kind, files: listFiles(tmp) }, null, 2) + '\n');
      const exists = existsSync(target);
      if (exists) renameSync(target, old);
      try {
        renameSync(tmp, target);
      } catch (e) {
        if (exists) renameSync(old, target);
        throw e;
      }
      rmSync(old, { recursive: true, force: true });
      inProgress.delete(cleanUp);
    },
    abandon() {
      cleanUp();
      inProgress.delete(cleanUp);
    },
  };
}

/** `mkdir -p`, one level at a time (Node's recursive mkdir never returns on some paths under /proc). */
function makeDirs(dir: string): void {
  if (existsSync(dir)) return;
  const up = dirname(dir);
  if (up !== dir) makeDirs(up);
  mkdirSync(dir);
}

/** The kind an earlier archc output declares, with the files it wrote; undefined if unmarked. */
export function readOutputMarker(dir: string): { kind: string; files: string[] } | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, OUTPUT_MARKER), 'utf8')) as { kind?: unknown; files?: unknown };
    if (typeof m.kind !== 'string' || !Array.isArray(m.files) || !m.files.every((f) => typeof f === 'string')) return undefined;
    return { kind: m.kind, files: m.files as string[] };
  } catch {
    return undefined;
  }
}

/** Refuses (AC600-AC602) a target that writeDirAtomic would refuse: call it before long work. */
export function checkReplaceable(target: string, kind: OutputKind, force: boolean): void {
  let st;
  try {
    st = lstatSync(target);
  } catch {
    return; // absent
  }
  if (!st.isDirectory()) throw new OutputError('AC600', [target]);
  if (force) return;
  const present = listFiles(target);
  if (present.length === 0) return;
  const marker = readOutputMarker(target);
  const hint = `choose a new or empty directory, or pass --force to replace ${target} and everything in it`;
  if (!marker || marker.kind !== kind) {
    throw new OutputError('AC601', [target, kind, sample(present)], marker ? `it is an archc ${marker.kind}; ${hint}` : hint);
  }
  const written = new Set([...marker.files, OUTPUT_MARKER]);
  const foreign = present.filter((f) => !written.has(f));
  if (foreign.length) throw new OutputError('AC602', [target, kind, sample(foreign)], hint);
}

/** Removes temp directories beside `target` left by archc processes that no longer run. */
function sweepStaleTemps(target: string): void {
  const prefix = `.${basename(target)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dirname(target));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    rmSync(join(dirname(target), name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Files under `dir`, relative, sorted (symbolic links count as files). */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const sample = (files: readonly string[]): string =>
  files.slice(0, 3).join(', ') + (files.length > 3 ? ` and ${files.length - 3} more` : '');

/** Refuses (AC603) a file path whose directory does not exist: outputs never create directories. */
export function checkParent(path: string): void {
  const parent = dirname(path);
  let ok = false;
  try {
    ok = statSync(parent).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new OutputError('AC603', [path, parent]);
}

/** A system error while writing `path` (ENOENT, EACCES, EROFS, …) as a coded error naming it. */
function asOutputError(e: unknown, path: string): unknown {
  if (e instanceof OutputError) return e;
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && err.code.startsWith('E')) return new OutputError('AC604', [path, err.message]);
  return e;
}
