// Options every model command takes: --hf-config, --set (repeatable) and --model; and --preset
// for the commands that make a model up (check, stats, graph, build, init-weights).

import { type Command, Option } from 'commander';
import { loadConfig } from '../compiler/compile.ts';
import { PRESET_NAMES, presetSets } from '../compiler/presets.ts';

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
 *  would replace values --hf-config sets is refused (presetSets). */
export function setsOf(file: string, o: CommonOpts): string[] {
  return o.preset ? [...presetSets(file, o.preset, o.model, o.hfConfig !== undefined ? loadConfig(o.hfConfig) : undefined), ...o.set] : o.set;
}
