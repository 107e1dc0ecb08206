// The whole pipeline as one function: the front half (compile.ts: .arch files → graph IR through the
// graph passes) then the back half (lower.ts: lowering → kernel rules → memory plan → schedules).
// The CLI calls nothing else to make a program. Kept apart from compile.ts so that commands which
// need only the graph (check, stats, graph) do not load the kernel compiler.

import type { Program } from '../runtime/program.ts';
import { type CompileOptions, type Compiled, compileFile } from './compile.ts';
import { lowerToProgram } from './lower.ts';

export interface CompiledModel extends Compiled {
  /** The kernel program every backend runs. */
  readonly program: Program;
}

export function compileModel(file: string, opts: CompileOptions = {}): CompiledModel {
  const compiled = compileFile(file, opts);
  const { graph, bindings, choices } = compiled.forProgram;
  return { ...compiled, program: lowerToProgram(graph, bindings, { choices }) };
}
