// The pipeline, top to bottom. The front half: read the .arch files, pick the model, bind params
// (defaults < config.json < --set), instantiate into the graph IR, run the graph passes. The back
// half (lower.ts): lowering to kernels, the kernel rules, the memory plan, the schedules.
// pipeline.ts `compileModel` runs both; `ARCHC_DUMP_IR=1` prints the IR after each step to stderr.

import { CompileError, type Diagnostic, diag } from '../dsl/diagnostics.ts';
import { readHfConfig } from '../runtime/hfconfig.ts';
import type { ProgramBinding } from '../runtime/program.ts';
import type { Graph } from './ir.ts';
import { type ForProgram, findChoices } from './choices.ts';
import { instantiate } from './instantiate.ts';
import { displayName, loadProgram, pickModel } from './load.ts';
import { type HfConfigInput, Params, parseSets } from './params.ts';
import { printGraph } from './printer.ts';
import { verifyGraph } from './passes/verify.ts';
import { pruneDead } from './passes/prune.ts';

export interface CompileOptions {
  /** Path of a Hugging Face config.json whose keys bind params. */
  readonly hfConfig?: string;
  /** Already-parsed config (e.g. read from a checkpoint directory); wins over hfConfig. */
  readonly hfConfigData?: HfConfigInput;
  /** `name=value` overrides. */
  readonly set?: readonly string[];
  /** Which model of the file, when it has several. */
  readonly model?: string;
  /** Source text to use instead of reading `file` (tests, fuzzing). */
  readonly text?: string;
}

export interface Compiled {
  readonly graph: Graph;
  /** Params that shape the graph and the config.json keys bound to them. */
  readonly bindings: readonly ProgramBinding[];
  /** Every param bound to config.json keys, used or not (for writing a config.json). */
  readonly allBindings: readonly ProgramBinding[];
  /** What the kernel program is lowered from: `graph` with the weights of every param decided at
   *  load made distinct, and those params apart from the bindings (choices.ts). */
  readonly forProgram: ForProgram;
  /** File texts by display name, for code frames. */
  readonly sources: ReadonlyMap<string, string>;
  readonly warnings: readonly Diagnostic[];
}

/** The graph passes, in order. Each is a pure function from graph to graph. */
export const GRAPH_PASSES: readonly { readonly name: string; readonly run: (g: Graph) => Graph }[] = [
  { name: 'prune-dead', run: pruneDead },
];

export function compileFile(file: string, opts: CompileOptions = {}): Compiled {
  const loaded = loadProgram(file, opts.text);
  const sources = loaded.sources;
  try {
    const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) throw new CompileError(errors);
    const model = pickModel(loaded, opts.model);
    if (!('kind' in model)) throw new CompileError([model]);
    const hf = opts.hfConfigData ?? (opts.hfConfig ? loadConfig(opts.hfConfig) : undefined);
    const sets = parseSets(opts.set ?? []);
    const graphOf = (params: Params, show: boolean): Graph => {
      let graph = instantiate({ model, file: loaded.root, params });
      verifyGraph(graph, 'instantiate');
      if (show) dump('instantiate', graph);
      for (const pass of GRAPH_PASSES) {
        graph = pass.run(graph);
        verifyGraph(graph, pass.name);
        if (show) dump(pass.name, graph);
      }
      return graph;
    };
    const params = new Params(model.body, hf, sets);
    const graph = graphOf(params, true);
    const bindings = params.bindings();
    const forProgram = findChoices(graph, bindings, (more) => graphOf(new Params(model.body, hf, new Map([...sets, ...more])), false));
    const warnings = [...loaded.diagnostics.filter((d) => d.severity === 'warning'), ...params.missingKeys()];
    return { graph, bindings, allBindings: params.bindings(true), forProgram, sources, warnings };
  } catch (e) {
    if (e instanceof CompileError) throw new CompileErrorWithSources(e.diagnostics, sources);
    throw e;
  }
}

/** A CompileError that also carries the source texts its spans point into. */
export class CompileErrorWithSources extends CompileError {
  constructor(diagnostics: readonly Diagnostic[], readonly sources: ReadonlyMap<string, string>) {
    super(diagnostics);
  }
}

export function loadConfig(path: string): HfConfigInput {
  try {
    return { file: displayName(path), config: readHfConfig(path) };
  } catch (e) {
    const err = e as { text?: string; file?: string; message?: string };
    let text = err.text ?? String(err.message ?? e);
    // RT200 names the file already: said once (unless it names another, config.json in a folder)
    const own = `cannot read config ${path}: `;
    if (text.startsWith(own)) text = text.slice(own.length);
    throw new CompileError([diag('AC304', undefined, [displayName(path), text])]);
  }
}

function dump(pass: string, g: Graph): void {
  if (process.env.ARCHC_DUMP_IR) process.stderr.write(`;; after ${pass}\n${printGraph(g)}\n`);
}
