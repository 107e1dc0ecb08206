// Test helpers: compile .arch text in memory and collect the diagnostics it raises.

import { join } from 'node:path';
import { compileFile, type CompileOptions } from '../../compiler/compile.ts';
import { CompileError, type Diagnostic } from '../../dsl/diagnostics.ts';

export const MODELS = join(import.meta.dirname, '..', '..', 'models');

/** Compiles source text as if it were a file in models/ (so `import std…` resolves). */
export function compileText(text: string, opts: CompileOptions = {}) {
  return compileFile(join(MODELS, '__test__.arch'), { ...opts, text });
}

/** The diagnostics of compiling `text`; fails the test if it compiles or throws anything else. */
export function diagnosticsOf(text: string, opts: CompileOptions = {}): Diagnostic[] {
  try {
    compileText(text, opts);
  } catch (e) {
    if (e instanceof CompileError) return [...e.diagnostics];
    throw e;
  }
  throw new Error('expected a compile error, but it compiled');
}
