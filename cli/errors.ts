// Turns any error into what a user should see: diagnostics with code frames, runtime errors with
// their code and place, and for compiler bugs a short report (the stack only with ARCHC_DEBUG=1).

import { CompileError, type Diagnostic, InternalError, formatDiagnostic } from '../dsl/diagnostics.ts';
import { CompileErrorWithSources } from '../compiler/compile.ts';
import { LIMITS, formatCount } from '../compiler/limits.ts';

/** A compile's warnings on stderr, at most `shown-diagnostics` of them. */
export function printWarnings(c: { readonly warnings: readonly Diagnostic[]; readonly sources: ReadonlyMap<string, string> }): void {
  const shown = c.warnings.slice(0, LIMITS.shownDiagnostics.value);
  for (const w of shown) process.stderr.write(formatDiagnostic(w, c.sources, LIMITS.frameWidth.value) + '\n');
  if (c.warnings.length > shown.length) process.stderr.write(`… and ${formatCount(c.warnings.length - shown.length)} more warnings not shown\n`);
}

/** Errors writing the command line's outputs. `{0}`, `{1}` … are filled from the arguments. */
export const OUTPUT_MESSAGES = {
  AC600: 'output {0} exists and is not a directory',
  AC601: 'output directory {0} is not empty and is not an archc {1}: it holds {2}',
  AC602: 'output directory {0} is an archc {1} but also holds files archc did not write: {2}',
  AC603: 'cannot write {0}: directory {1} does not exist',
  AC604: 'cannot write {0}: {1}',
  AC605: 'cannot write {0}: it is {1}',
  AC606: 'output directory {0} is {1}: archc never replaces it, with --force or without',
  AC607: 'cannot write {0}: it is a FIFO that no process opened for reading within {1} s',
} as const;

/** A file or directory the command cannot write as asked; nothing has been changed. */
export class OutputError extends Error {
  readonly code: keyof typeof OUTPUT_MESSAGES;
  readonly text: string;
  readonly hint?: string;
  constructor(code: keyof typeof OUTPUT_MESSAGES, args: readonly unknown[], hint?: string) {
    const text = OUTPUT_MESSAGES[code].replace(/\{(\d+)\}/g, (_, i: string) => String(args[Number(i)]));
    super(`${code}: ${text}`);
    this.name = 'OutputError';
    this.code = code;
    this.text = text;
    this.hint = hint;
  }
}

export function reportError(e: unknown): number {
  const out = process.stderr;
  if (e instanceof CompileError) {
    const sources = e instanceof CompileErrorWithSources ? e.sources : new Map<string, string>();
    // Errors first (a flood of warnings must not hide them), at most `shown-diagnostics` of them.
    const all = [...e.diagnostics.filter((d) => d.severity === 'error'), ...e.diagnostics.filter((d) => d.severity !== 'error')];
    const shown = all.slice(0, LIMITS.shownDiagnostics.value);
    for (const d of shown) out.write(formatDiagnostic(d, sources, LIMITS.frameWidth.value) + '\n\n');
    if (all.length > shown.length) out.write(`… and ${formatCount(all.length - shown.length)} more not shown\n`);
    const n = e.diagnostics.filter((d) => d.severity === 'error').length;
    out.write(`${formatCount(n)} error${n === 1 ? '' : 's'}\n`);
    return 1;
  }
  const err = e as Error & { code?: unknown };
  if (err instanceof InternalError) {
    out.write(`archc: ${err.message}\nThis is a bug in archc; please report it with the command you ran.\n`);
    if (process.env.ARCHC_DEBUG) out.write(`${err.stack}\n`);
    return 70;
  }
  if (err && typeof err.code === 'string' && /^(RT|AC)\d+$/.test(err.code)) {
    const { text, hint } = err as { text?: string; hint?: string };
    out.write(`error ${err.code}: ${text ?? err.message}\n${hint ? `  hint: ${hint}\n` : ''}`);
    return 1;
  }
  if (err && typeof err.code === 'string' && err.code.startsWith('E')) {
    // a Node system error (ENOENT, EACCES, ...): name the file
    out.write(`error: ${err.message}\n`);
    return 1;
  }
  out.write(`archc: internal error: ${err?.message ?? String(e)}\nThis is a bug in archc; please report it with the command you ran.\n`);
  if (process.env.ARCHC_DEBUG) out.write(`${err?.stack}\n`);
  return 70;
}
