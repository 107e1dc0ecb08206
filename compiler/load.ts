// Loads a .arch file and everything it imports; builds each file's name scope.
// `import a.b` reads `a/b.arch`, or every .arch file of the folder `a/b/`, looked up beside the
// importing file first and then in archc's own models/ folder (which holds the standard library).

import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BlockDecl, ModelDecl, Program, Span } from '../dsl/ast.ts';
import { type Diagnostic, diag } from '../dsl/diagnostics.ts';
import { parse } from '../dsl/index.ts';
import { readRegular } from '../runtime/paths.ts';
import { LIMITS, formatCount } from './limits.ts';

export const BUILTIN_MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'models');

export interface SourceFile {
  readonly path: string;
  readonly text: string;
  readonly program: Program;
  /** Blocks visible in this file: its own and those it imports. */
  readonly scope: Map<string, { decl: BlockDecl; file: SourceFile }>;
}

export interface Loaded {
  readonly root: SourceFile;
  readonly files: ReadonlyMap<string, SourceFile>;
  /** File texts by display name, for code frames. */
  readonly sources: ReadonlyMap<string, string>;
  readonly diagnostics: readonly Diagnostic[];
}

/** What a model file that cannot be read may have meant: the same name with .arch, or the .arch
 *  files of the folder given. */
function modelFileHint(abs: string): string | undefined {
  const isDir = (() => {
    try {
      return statSync(abs).isDirectory();
    } catch {
      return false;
    }
  })();
  if (!abs.endsWith('.arch') && existsSync(`${abs}.arch`)) return `did you mean ${displayName(`${abs}.arch`)}? a model file's name ends in .arch`;
  if (isDir) {
    let names: string[] = [];
    try {
      names = readdirSync(abs).filter((n) => n.endsWith('.arch')).sort();
    } catch { /* an unreadable folder: no list */ }
    const shown = names.slice(0, 5).map((n) => displayName(join(abs, n))).join(', ');
    return names.length ? `a model is one .arch file; this folder holds ${shown}${names.length > 5 ? ', …' : ''}` : 'a model is one .arch file, not a folder';
  }
  return abs.endsWith('.arch') ? undefined : "a model file's name ends in .arch";
}

/** Display name of a path: relative to the working directory when inside it. */
export function displayName(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

export function loadProgram(path: string, text?: string): Loaded {
  const files = new Map<string, SourceFile>();
  const sources = new Map<string, string>();
  const diagnostics: Diagnostic[] = [];

  const read = (abs: string, span?: Span, given?: string): SourceFile | undefined => {
    const known = files.get(abs);
    if (known) return known;
    const name = displayName(abs);
    let src: string;
    if (given === undefined) {
      // bytes counted as read, and only from a regular file: /dev/zero or a FIFO (named x.arch, or
      // reached through a link) is AC100, never a hang or an endless read
      const r = readRegular(abs, LIMITS.sourceBytes.value);
      if (r.kind === 'over') {
        diagnostics.push(diag('AC500', span, [LIMITS.sourceBytes.name, `${name} holds at least ${formatCount(r.bytes)} bytes`, formatCount(LIMITS.sourceBytes.value)]));
        return undefined;
      }
      if (r.kind !== 'ok') {
        diagnostics.push(diag('AC100', span, [name, r.kind === 'missing' ? 'no such file' : r.why], span ? undefined : modelFileHint(abs)));
        return undefined;
      }
      src = new TextDecoder().decode(r.bytes);
    } else {
      src = given;
    }
    if (src.length > LIMITS.sourceBytes.value) {
      diagnostics.push(diag('AC500', span, [LIMITS.sourceBytes.name, `${name} is ${formatCount(src.length)} characters`, formatCount(LIMITS.sourceBytes.value)]));
      return undefined;
    }
    const parsed = parse(src, name, { maxTokens: LIMITS.sourceTokens });
    for (const d of parsed.diagnostics) diagnostics.push(d);
    const file: SourceFile = { path: abs, text: src, program: parsed.program, scope: new Map() };
    files.set(abs, file);
    sources.set(name, src);
    for (const imp of parsed.program.imports) {
      for (const target of resolveImport(abs, imp.path)) read(target, imp.span);
      if (resolveImport(abs, imp.path).length === 0) {
        diagnostics.push(diag('AC105', imp.span, [imp.path.join('.'), `${imp.path.join('/')}.arch`],
          `looked beside ${name} and in ${displayName(BUILTIN_MODELS_DIR)}`));
      }
    }
    return file;
  };

  const root = read(resolve(path), undefined, text);
  if (!root) return { root: emptyFile(path), files, sources, diagnostics };

  // Scopes: own blocks first, then imported ones (listed names only, when a list is given).
  for (const file of files.values()) {
    for (const b of file.program.blocks) {
      if (file.scope.has(b.name)) diagnostics.push(diag('AC201', b.nameSpan, [b.name]));
      else file.scope.set(b.name, { decl: b, file });
    }
  }
  for (const file of files.values()) {
    for (const imp of file.program.imports) {
      const exported = new Map<string, { decl: BlockDecl; file: SourceFile }>();
      for (const target of resolveImport(file.path, imp.path)) {
        const f = files.get(target);
        for (const b of f?.program.blocks ?? []) exported.set(b.name, { decl: b, file: f! });
      }
      if (imp.names) {
        for (const n of imp.names) {
          const e = exported.get(n.name);
          if (!e) {
            if (exported.size > 0) diagnostics.push(diag('AC203', n.span, [n.name, imp.path.join('.')]));
          } else if (!file.scope.has(n.name)) file.scope.set(n.name, e);
        }
      } else {
        for (const [n, e] of exported) if (!file.scope.has(n)) file.scope.set(n, e);
      }
    }
  }
  return { root, files, sources, diagnostics };
}

function resolveImport(from: string, path: readonly string[]): string[] {
  for (const base of [dirname(from), BUILTIN_MODELS_DIR]) {
    const file = join(base, ...path) + '.arch';
    if (existsSync(file)) return [file];
    const dir = join(base, ...path);
    if (existsSync(dir) && statSync(dir).isDirectory()) {
      return readdirSync(dir).filter((n) => n.endsWith('.arch')).sort().map((n) => join(dir, n));
    }
  }
  return [];
}

function emptyFile(path: string): SourceFile {
  return { path, text: '', program: { file: path, imports: [], blocks: [], models: [] }, scope: new Map() };
}

/** The model to compile: the only one in the root file, or the one named. */
export function pickModel(loaded: Loaded, name?: string): ModelDecl | Diagnostic {
  const models = loaded.root.program.models;
  const file = displayName(loaded.root.path);
  if (name) {
    const m = models.find((x) => x.name === name);
    return m ?? diag('AC204', undefined, [`${file} named ${name}`]);
  }
  if (models.length === 0) return diag('AC204', undefined, [file]);
  if (models.length > 1) return diag('AC205', models[1]!.nameSpan, [file, models.map((m) => m.name).join(', ')]);
  return models[0]!;
}
