// What a path is, with the reason when it cannot be used: a dangling symbolic link, a loop of links
// or a directory that cannot be listed are named as such rather than taken for "not there"; and reading
// a regular file whole within a byte limit, refusing FIFOs and devices.

import * as fs from 'node:fs';

export type PathKind = { readonly kind: 'file' | 'dir' | 'missing' } | { readonly kind: 'bad'; readonly why: string };

export function probePath(p: string): PathKind {
  let link: fs.Stats;
  try {
    link = fs.lstatSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    if (code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'bad', why: reason(e) };
  }
  let st = link;
  if (link.isSymbolicLink()) {
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { kind: 'bad', why: `a symbolic link to ${safeReadlink(p)}, which does not exist` };
      if (code === 'ELOOP') return { kind: 'bad', why: 'a loop of symbolic links' };
      return { kind: 'bad', why: reason(e) };
    }
  }
  if (st.isDirectory()) {
    try {
      fs.accessSync(p, fs.constants.R_OK | fs.constants.X_OK);
    } catch (e) {
      return { kind: 'bad', why: `a directory that cannot be read (${reason(e)})` };
    }
    return { kind: 'dir' };
  }
  if (!st.isFile()) return { kind: 'bad', why: 'not a regular file or directory' };
  try {
    fs.accessSync(p, fs.constants.R_OK);
  } catch (e) {
    return { kind: 'bad', why: `a file that cannot be read (${reason(e)})` };
  }
  return { kind: 'file' };
}

function safeReadlink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '?';
  }
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  if (err.code === 'ELOOP') return 'a loop of symbolic links';
  return err.message ?? String(e);
}

/** What `readRegular` found: the bytes, or why there are none. */
export type ReadResult =
  | { readonly kind: 'ok'; readonly bytes: Uint8Array }
  | { readonly kind: 'missing' }
  | { readonly kind: 'bad'; readonly why: string }
  /** More than `limit` bytes (counted as read: a FIFO, /proc or a growing file has no honest size). */
  | { readonly kind: 'over'; readonly bytes: number };

/** Reads a regular file whole, at most `limit` bytes. The file is opened without blocking (a FIFO
 *  never holds the open) and refused unless fstat says it is a regular file (FIFOs, devices such as
 *  /dev/zero, sockets, directories); the bytes are counted as they are read, so a size that stat
 *  misreports cannot pass the limit. */
export function readRegular(p: string, limit: number): ReadResult {
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const link = probePath(p);
      return link.kind === 'bad' ? link : { kind: 'missing' };
    }
    // a socket cannot be opened (ENXIO): named as what it is, not by the errno's text
    const st = statQuietly(p);
    if (st && !st.isFile() && !st.isDirectory()) return { kind: 'bad', why: `not a regular file (${special(st)})` };
    return { kind: 'bad', why: reason(e) };
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return { kind: 'bad', why: 'a directory, expected a file' };
    if (!st.isFile()) return { kind: 'bad', why: `not a regular file (${special(st)})` };
    if (st.size > limit) return { kind: 'over', bytes: st.size };
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(Math.min(1 << 20, limit + 1 - total) || 1);
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > limit) return { kind: 'over', bytes: total };
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return { kind: 'ok', bytes: out };
  } catch (e) {
    return { kind: 'bad', why: reason(e) };
  } finally {
    try { fs.closeSync(fd); } catch { /* closing a read-only fd has nothing to lose */ }
  }
}

function statQuietly(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

function special(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
