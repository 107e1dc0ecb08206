// The archc command line: check, stats, graph (compare in cli/compare.ts, the build/run commands in cli/run.ts).

import { Command, Option } from 'commander';
import { compileFile } from '../compiler/compile.ts';
import { printGraph } from '../compiler/printer.ts';
import { toDot, toMermaid } from '../compiler/render.ts';
import { formatStats } from '../compiler/stats.ts';
import { printWarnings, reportError } from './errors.ts';
import { type CommonOpts, setsOf, statsFor, withCommon, withPreset } from './common.ts';
import { registerCompareCommand } from './compare.ts';
import { writeOutputFile } from './fsutil.ts';
import { registerQuantCommands } from './quant.ts';
import { registerRunCommands } from './run.ts';
import { registerServeCommand } from './serve.ts';
import { registerTrainCommand } from './train.ts';

function compile(file: string, o: CommonOpts) {
  const c = compileFile(file, { hfConfig: o.hfConfig, set: setsOf(file, o), model: o.model });
  printWarnings(c);
  return c;
}

async function emit(text: string, out?: string): Promise<void> {
  if (out) await writeOutputFile(out, text);
  else process.stdout.write(text);
}

export function program(): Command {
  const p = new Command('archc')
    .description('a declarative model-graph compiler: .arch architectures to kernels and a TypeScript runtime')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  withPreset(withCommon(p.command('check <file>').description('parse, resolve and type-check a model')))
    .action((file: string, o: CommonOpts) => {
      const { graph } = compile(file, o);
      process.stdout.write(`${file}: ok — model ${graph.model}, ${graph.nodes.length} ops, ${graph.weights.length} weights, ${graph.state.length} states\n`);
    });

  withPreset(withCommon(p.command('stats <file>').description('parameters, weight bytes, FLOPs per token and inference state')))
    .option('--json', 'print JSON')
    .option('--context <n>', 'context length for FLOPs and state (default: the model param `context`, else 4096)')
    .option('--batch <n>', 'sequences held at once, for the state total', '1')
    .action((file: string, o: CommonOpts & { json?: boolean; context?: string; batch: string }) => {
      const s = statsFor(compile(file, o), o);
      process.stdout.write(o.json ? JSON.stringify(s, null, 2) + '\n' : formatStats(s));
    });

  withPreset(withCommon(p.command('graph <file>').description('print the model graph, or (--format kernels) the fused kernel program')))
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'dot', 'mermaid', 'kernels']).default('text'))
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (file: string, o: CommonOpts & { format: string; out?: string }) => {
      const c = compile(file, o);
      const { graph } = c;
      if (o.format === 'kernels') {
        const [{ lowerToProgram }, { printProgram }] = await Promise.all([import('../compiler/lower.ts'), import('../compiler/kernel/printer.ts')]);
        // the program `build` ships: the params config.json decides at load left open
        await emit(printProgram(lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices })), o.out);
        return;
      }
      // ajv (graph.json's schema) loads only for --format json
      const graphToJson = o.format === 'json' ? (await import('../compiler/schema.ts')).graphToJson : undefined;
      const text = graphToJson ? graphToJson(graph) : o.format === 'dot' ? toDot(graph) : o.format === 'mermaid' ? toMermaid(graph) : printGraph(graph);
      await emit(text, o.out);
    });

  registerRunCommands(p);
  registerQuantCommands(p);
  registerTrainCommand(p);
  registerCompareCommand(p);
  registerServeCommand(p);
  return p;
}

export async function main(argv: string[]): Promise<number> {
  const p = program();
  try {
    await p.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) return ce.exitCode ?? 1;
    return reportError(e);
  }
}
