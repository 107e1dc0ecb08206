// What a path is, with the reason when it cannot be used: a dangling symbolic link, a loop of links
// or a directory that cannot be listed are named as such rather than taken for "not there".

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
