// Writing outputs whole or not at all, and never over files archc did not write.
//   writeOutputFile: a regular file through a temp file beside it and a rename (the directory must
//                    exist); a FIFO or a character device (/dev/null, /dev/stdout, a terminal) is
//                    written as a stream, since a rename would put a regular file in its place (a
//                    FIFO without blocking: one that nobody reads is AC607 after a few seconds).
//   writeDirAtomic:  a temp directory beside the target, filled, then put in place of the target.
// Every output directory holds a marker, .archc-output.json, naming its kind and the files written,
// so a later run can tell an earlier archc output of the same kind (replaced as a whole) from a
// directory with anything else in it (refused unless forced). `/`, the home and current directories
// and their ancestors are never replaced, forced or not (AC606).

import { chmodSync, closeSync, constants, existsSync, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { OutputError } from './errors.ts';

export const OUTPUT_MARKER = '.archc-output.json';
export type OutputKind = 'package' | 'checkpoint';

/** Writes `data` to `path`, whole or not at all. A regular file (or none) is written through a temp
 *  file and a rename, with a pause for pending signals before the rename: SIGINT/SIGTERM during the
 *  write leaves the old file (or none) and exits 130/143. A symbolic link to a regular file keeps
 *  the link and replaces the file it names. The process's own stdout/stderr (`/dev/stdout`, whatever
 *  it is) and FIFOs and character devices are written as streams (a FIFO no process reads: AC607); a directory, block device or
 *  socket is refused (AC605). The parent directory must exist (AC603). */
export async function writeOutputFile(path: string, data: string | Uint8Array): Promise<void> {
  const where = fileTarget(path);
  if (where.kind === 'own') return writeOwnStream(where.fd, data, path);
  if (where.kind === 'fifo') return writeFifo(path, data);
  if (where.kind === 'stream') {
    try {
      // 'w' is O_TRUNC, which a device ignores
      const fd = openSync(path, 'w');
      try {
        writeFileSync(fd, data);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw asOutputError(e, path);
    }
    return;
  }
  const target = where.path;
  checkParent(target);
  const tmp = `${target}.${process.pid}.tmp`;
  const cleanUp = () => rmSync(tmp, { force: true });
  exitOnSignals();
  inProgress.add(cleanUp);
  try {
    writeFileSync(tmp, data);
    await yieldToSignals(); // a signal that came during the write ends the process here, before the rename
    renameSync(tmp, target);
  } catch (e) {
    cleanUp();
    throw asOutputError(e, path);
  } finally {
    inProgress.delete(cleanUp);
  }
}

/** How long a FIFO output waits for its reader (polled without blocking: signals still stop it). */
const FIFO_WAIT_S = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes a FIFO without ever blocking the event loop: a blocking open waits for a reader forever,
 *  past SIGINT's handler. Opened without blocking (ENXIO while no process reads it), polled for
 *  FIFO_WAIT_S, then AC607; a full pipe (EAGAIN) is waited out; a reader that leaves (EPIPE) is AC604. */
async function writeFifo(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fd: number | undefined;
  for (let waited = 0; fd === undefined; waited += 50) {
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw asOutputError(e, path);
      if (waited >= FIFO_WAIT_S * 1000) throw new OutputError('AC607', [path, FIFO_WAIT_S], 'start the process that reads it first, or write to a file');
      await sleep(50);
    }
  }
  try {
    for (let at = 0; at < bytes.length;) {
      try {
        at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 16));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        await sleep(5);
      }
    }
  } catch (e) {
    throw asOutputError(e, path);
  } finally {
    closeSync(fd);
  }
}

/** Where writeOutputFile puts `path`: the process's own stdout or stderr (fd), a FIFO, a stream (a
 *  character device), or a regular file at `path` (absent, or a link followed to its file). */
function fileTarget(path: string): { kind: 'own'; fd: 1 | 2 } | { kind: 'fifo' } | { kind: 'stream' } | { kind: 'file'; path: string } {
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    return { kind: 'file', path }; // absent, or a link to nothing: a new file at `path`
  }
  for (const fd of [1, 2] as const) {
    try {
      const own = fstatSync(fd);
      if (own.dev === st.dev && own.ino === st.ino && !own.isDirectory()) return { kind: 'own', fd };
    } catch {
      // that descriptor is closed
    }
  }
  if (st.isFIFO()) return { kind: 'fifo' };
  if (st.isCharacterDevice()) return { kind: 'stream' };
  if (st.isFile()) return { kind: 'file', path: realpathSync(path) };
  const what = st.isDirectory() ? 'a directory' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a regular file';
  throw new OutputError('AC605', [path, what], 'name a file to write (a FIFO, /dev/stdout and /dev/null are written as streams)');
}

/** Writes to the process's own stdout/stderr (fd 1 or 2) through its stream, waiting until it is flushed. */
function writeOwnStream(fd: 1 | 2, data: string | Uint8Array, path: string): Promise<void> {
  const stream = fd === 1 ? process.stdout : process.stderr;
  return new Promise((done, fail) => {
    // a reader that went away (EPIPE) is a coded error, not an unhandled 'error' event
    const onError = (e: Error) => fail(asOutputError(e, path));
    stream.once('error', onError);
    stream.write(data, (e) => {
      if (e) return onError(e); // the stream emits its 'error' after this: the listener stays
      stream.off('error', onError);
      done();
    });
  });
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
 *  wrote; anything else is refused (AC601/AC602) unless `force`. On failure nothing of the temp
 *  directory is left; temp directories of processes that died are swept. SIGINT/SIGTERM at any time
 *  until the old output is removed (during `fill`, synchronous or not, or the renames that put the
 *  new one in place) ends the process with 130/143 and leaves the old output, or none. */
export async function writeDirAtomic(target: string, kind: OutputKind, fill: (dir: string) => void | Promise<void>, opts: WriteDirOptions = {}): Promise<void> {
  const out = beginDir(target, kind, opts);
  try {
    await fill(out.tmp);
    await yieldToSignals(); // a signal that came during the last synchronous step stops it here, before the output is put in place
    await out.commit();
  } catch (e) {
    out.abandon();
    throw asOutputError(e, target);
  }
}

/** The temp directory of a writeDirAtomic, registered for removal on a signal until it is committed
 *  (put in place of the target) or abandoned (removed). */
function beginDir(target: string, kind: OutputKind, opts: WriteDirOptions): { tmp: string; commit(): Promise<void>; abandon(): void } {
  const parent = dirname(target);
  checkReplaceable(target, kind, opts.force ?? false); // before anything is made, also the parent
  try {
    makeDirs(parent);
  } catch (e) {
    throw asOutputError(e, target);
  }
  sweepStaleTemps(target);
  // the handlers before the temp directory exists: a signal right after it is made (before they
  // were installed, it killed the process and left the directory) is handled once the loop polls,
  // after the synchronous lines below have registered its removal
  exitOnSignals();
  let tmp: string;
  try {
    tmp = mkdtempSync(join(parent, `.${basename(target)}.tmp-${process.pid}-`));
    chmodSync(tmp, 0o755);
  } catch (e) {
    throw asOutputError(e, target);
  }
  const old = `${tmp}.old`;
  let placed = false; // the new output is at `target` (and the old one, if any, at `old`)
  const cleanUp = () => {
    if (placed) {
      // a signal between the renames and the old output's removal: the old output goes back
      rmSync(target, { recursive: true, force: true });
      if (existsSync(old)) renameSync(old, target);
    }
    rmSync(tmp, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  };
  inProgress.add(cleanUp);
  return {
    tmp,
    async commit() {
      writeFileSync(join(tmp, OUTPUT_MARKER), JSON.stringify({ kind, files: listFiles(tmp) }, null, 2) + '\n');
      const exists = existsSync(target);
      if (exists) renameSync(target, old);
      try {
        renameSync(tmp, target);
      } catch (e) {
        if (exists) renameSync(old, target);
        throw e;
      }
      placed = true;
      // a signal that came during the renames is handled here, while the old output can still go back
      await yieldToSignals();
      inProgress.delete(cleanUp);
      rmSync(old, { recursive: true, force: true });
    },
    abandon() {
      if (!placed) cleanUp();
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

/** Refuses (AC600-AC602, AC606) a target that writeDirAtomic would refuse: call it before long
 *  work. It reads no more of a directory than it needs: its own names when it holds no marker of
 *  this kind, and at most the marker's files (and a few more) when it does. */
export function checkReplaceable(target: string, kind: OutputKind, force: boolean): void {
  const protectedAs = protectedDir(target);
  if (protectedAs) throw new OutputError('AC606', [target, protectedAs], 'name a new directory, or an earlier archc output, to write into');
  let st;
  try {
    st = lstatSync(target);
  } catch {
    return; // absent
  }
  if (!st.isDirectory()) throw new OutputError('AC600', [target]);
  if (force) return;
  let names: string[];
  try {
    names = readdirSync(target).sort();
  } catch (e) {
    throw asOutputError(e, target);
  }
  if (names.length === 0) return;
  const marker = readOutputMarker(target);
  const hint = `choose a new or empty directory, or pass --force to replace ${target} and everything in it`;
  if (!marker || marker.kind !== kind) {
    throw new OutputError('AC601', [target, kind, sample(names)], marker ? `it is an archc ${marker.kind}; ${hint}` : hint);
  }
  const written = new Set([...marker.files, OUTPUT_MARKER]);
  const foreign = listFiles(target, written.size + 3).filter((f) => !written.has(f));
  if (foreign.length) throw new OutputError('AC602', [target, kind, sample(foreign)], hint);
}

/** That an output directory can be made at `target`, checked before long work: a temp directory
 *  made and removed in the nearest ancestor that exists (AC604 naming the target where it cannot). */
export function probeWritable(target: string): void {
  let at = dirname(target);
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    rmSync(mkdtempSync(join(at, `.${basename(target)}.probe-${process.pid}-`)), { recursive: true, force: true });
  } catch (e) {
    throw asOutputError(e, target);
  }
}

/** Why `target` may never be replaced: `/`, the home directory, the current directory, or an
 *  ancestor of one of them (replacing it would delete them); undefined for any other path. */
function protectedDir(target: string): string | undefined {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const t = real(target);
  const within = (p: string) => p === t || p.startsWith(t.endsWith(sep) ? t : t + sep);
  if (t === real(sep)) return 'the root directory';
  if (within(real(homedir()))) return t === real(homedir()) ? 'the home directory' : 'an ancestor of the home directory';
  if (within(real(process.cwd()))) return t === real(process.cwd()) ? 'the current directory' : 'an ancestor of the current directory';
  return undefined;
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

/** Files under `dir`, relative, sorted (symbolic links count as files); with `limit`, the walk stops
 *  once it has found more than that many. */
function listFiles(dir: string, limit = Infinity): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (out.length > limit) return;
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  walk(dir);
  return out.sort();
}

const sample = (files: readonly string[]): string =>
  files.slice(0, 3).join(', ') + (files.length > 3 ? ` and ${files.length - 3} more` : '');

/** Refuses a file path that writeOutputFile would refuse: a directory, a block device or a socket
 *  (AC605), or a file whose directory does not exist (AC603: outputs never create directories). */
export function checkParent(path: string): void {
  const where = fileTarget(path);
  if (where.kind !== 'file') return;
  const parent = dirname(where.path);
  let ok = false;
  try {
    ok = statSync(parent).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new OutputError('AC603', [where.path, parent]);
}

/** A system error while writing `path` (ENOENT, EACCES, EROFS, …) as a coded error naming it. */
function asOutputError(e: unknown, path: string): unknown {
  if (e instanceof OutputError) return e;
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && err.code.startsWith('E')) return new OutputError('AC604', [path, err.message]);
  return e;
}
