// Options every model command takes: --hf-config, --set (repeatable) and --model; --preset for the
// commands that make a model up (check, stats, graph, build, init-weights, compare); and the stats
// of a compiled model at --context and --batch (stats, compare).

import { type Command, Option } from 'commander';
import { type Compiled, loadConfig } from '../compiler/compile.ts';
import { type Stats, computeStats } from '../compiler/stats.ts';
import { CompileError, diag } from '../dsl/diagnostics.ts';
import { PRESET_NAMES, presetNote, presetPlan } from '../compiler/presets.ts';
import { parseSets } from '../compiler/params.ts';

export interface CommonOpts {
  hfConfig?: string;
  set: string[];
  model?: string;
  preset?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function withCommon(cmd: Command): Command {
  return cmd
    .option('--hf-config <file>', 'bind params from a Hugging Face config.json')
    .option('--set <name=value>', 'override a param (repeatable)', collect, [])
    .option('--model <name>', 'the model to use when the file has several');
}

/** `--preset NAME`: a named model size (compiler/presets.ts), for commands that make a model up. */
export function withPreset(cmd: Command): Command {
  return cmd.addOption(new Option('--preset <name>', 'a model size: every size param set together (before --set)').choices(PRESET_NAMES));
}

/** The --set overrides to compile with: the preset's, then the user's (which win). A preset that
 *  would replace values --hf-config sets is refused; the file's values it replaces are named on
 *  stderr, one line (presetPlan, presetNote). */
export function setsOf(file: string, o: CommonOpts): string[] {
  if (!o.preset) return o.set;
  const plan = presetPlan(file, o.preset, o.model, o.hfConfig !== undefined ? loadConfig(o.hfConfig) : undefined);
  const own = new Set(parseSets(o.set).keys());
  process.stderr.write(presetNote(o.preset, file, plan.replaced.filter((r) => !own.has(r.name))));
  return [...plan.sets, ...o.set];
}

/** `archc stats`'s figures: at --context (default: the model's param `context`, else 4096) and --batch. */
export function statsFor(c: Compiled, o: { context?: string; batch: string }): Stats {
  const ctxParam = c.graph.params.context;
  const context = o.context !== undefined ? positiveInt(o.context, '--context') : typeof ctxParam === 'number' ? ctxParam : 4096;
  return computeStats(c.graph, context, positiveInt(o.batch, '--batch'), c.forProgram);
}

export function positiveInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CompileError([diag('AC315', undefined, [flag, `expected a positive integer, got ${JSON.stringify(v)}`])]);
  return n;
}
