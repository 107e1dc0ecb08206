// Options every model command takes: --hf-config, --set (repeatable) and --model.

import type { Command } from 'commander';

export interface CommonOpts {
  hfConfig?: string;
  set: string[];
  model?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function withCommon(cmd: Command): Command {
  return cmd
    .option('--hf-config <file>', 'bind params from a Hugging Face config.json')
    .option('--set <name=value>', 'override a param (repeatable)', collect, [])
    .option('--model <name>', 'the model to use when the file has several');
}
