// `archc compare a.arch b.arch`: two models side by side with ratios (b / a). The figures are
// `archc stats`'s (compiler/stats.ts, through statsFor) and the dispatches per decode step that
// `archc build` reports (compiler/kernel/report.ts), never computed another way here.

import { type Command, Option } from 'commander';
import { type Compiled, compileFile } from '../compiler/compile.ts';
import { loadProgram, pickModel, displayName } from '../compiler/load.ts';
import { PRESET_NAMES, presetNote, presetPair } from '../compiler/presets.ts';
import { parseSets } from '../compiler/params.ts';
import { type Stats, flopsText, group, human } from '../compiler/stats.ts';
import { CompileError, diag } from '../dsl/diagnostics.ts';
import { statsFor } from './common.ts';
import { printWarnings } from './errors.ts';

interface CompareOpts {
  set: string[];
  preset?: string;
  context?: string;
  batch: string;
  json?: boolean;
}

/** One side: the file, its stats (as `archc stats --json` prints them) and its dispatches. */
export interface Side {
  readonly file: string;
  readonly stats: Stats;
  readonly dispatches: { readonly decode: number; readonly prefill: number };
}

/** One figure of both sides; `ratio` is b / a, null where a is 0. */
export interface Row {
  readonly figure: string;
  readonly unit: 'count' | 'bytes' | 'flops';
  readonly a: number;
  readonly b: number;
  readonly ratio: number | null;
}

export interface Comparison {
  readonly a: Side;
  readonly b: Side;
  readonly rows: readonly Row[];
  readonly notes: readonly string[];
}

/** The figures compared, from one side's stats and dispatches. */
const FIGURES: readonly { figure: string; unit: Row['unit']; of: (s: Side) => number }[] = [
  { figure: 'parameters, total', unit: 'count', of: (s) => s.stats.parameters.total },
  { figure: 'parameters, active per token', unit: 'count', of: (s) => s.stats.parameters.active },
  { figure: 'FLOPs per token, prefill', unit: 'flops', of: (s) => s.stats.flopsPerToken.prefill },
  { figure: 'FLOPs per token, decode', unit: 'flops', of: (s) => s.stats.flopsPerToken.decode },
  { figure: 'KV cache per token', unit: 'bytes', of: (s) => s.stats.state.kvBytesPerToken },
  { figure: 'recurrent state per sequence', unit: 'bytes', of: (s) => s.stats.state.convSsmBytesPerSequence },
  { figure: 'state at context × batch', unit: 'bytes', of: (s) => s.stats.state.totalBytes },
  { figure: 'dispatches per decode step', unit: 'count', of: (s) => s.dispatches.decode },
  { figure: 'dispatches per prefill', unit: 'count', of: (s) => s.dispatches.prefill },
  ...(['f32', 'bf16', 'q8', 'q4'] as const).map((f) => ({ figure: `weights as ${f}`, unit: 'bytes' as const, of: (s: Side) => s.stats.weightBytes.byFormat[f] })),
];

/** Compiles both files with the same flags: a --set applies to each file that declares the param
 *  (one that neither declares is AC302); a preset the files set differently is refused (presetPair). */
export async function compare(files: readonly [string, string], o: CompareOpts): Promise<Comparison> {
  const own = parseSets(o.set);
  const declared = files.map((f) => {
    const picked = pickModel(loadProgram(f));
    return new Set('kind' in picked ? picked.body.flatMap((s) => (s.kind === 'param' ? [s.name] : [])) : []);
  });
  // a file that does not load is named by its own compile's diagnostics, below
  const loads = declared.every((d) => d.size > 0);
  for (const name of own.keys()) {
    if (loads && !declared.some((d) => d.has(name))) throw new CompileError([diag('AC302', undefined, [name], `neither ${files.map(displayName).join(' nor ')} declares it`)]);
  }
  const plans = o.preset && loads ? presetPair(files, o.preset) : undefined;
  const notes: string[] = [];
  const { lowerToProgram } = await import('../compiler/lower.ts');
  const { programReport } = await import('../compiler/kernel/report.ts');
  const sides = files.map((file, i) => {
    const sets = [...(plans?.[i]!.sets ?? []), ...o.set.filter((s) => declared[i]!.has(s.slice(0, s.indexOf('=')).trim()))];
    if (plans && o.preset) notes.push(presetNote(o.preset, file, plans[i]!.replaced.filter((r) => !own.has(r.name))).trim());
    const c: Compiled = compileFile(file, { set: sets });
    printWarnings(c);
    const stats = statsFor(c, o);
    const { graph, bindings, choices } = c.forProgram;
    const d = programReport(lowerToProgram(graph, bindings, { choices }), { prefillTokens: 4096, decodeBatch: 8, context: stats.state.context }).dispatches;
    return { file: displayName(file), stats, dispatches: { decode: d.decode, prefill: d.prefill } };
  }) as [Side, Side];
  const rows = FIGURES.map(({ figure, unit, of }) => {
    const a = of(sides[0]), b = of(sides[1]);
    return { figure, unit, a, b, ratio: a === 0 ? null : b / a };
  });
  return { a: sides[0], b: sides[1], rows, notes: notes.filter((n) => n) };
}

const show = (unit: Row['unit'], v: number) => (unit === 'count' ? group(v) : unit === 'bytes' ? human(v) : flopsText(v));

export function formatComparison(c: Comparison): string {
  const { a, b } = c;
  const ctx = a.stats.state.context === b.stats.state.context ? `context ${a.stats.state.context}` : `context ${a.stats.state.context} (a) and ${b.stats.state.context} (b)`;
  const rows = c.rows.map((r) => [r.figure, show(r.unit, r.a), show(r.unit, r.b), r.ratio === null ? (r.b === 0 ? '—' : 'new') : r.ratio.toFixed(3)]);
  const head = ['', `a: ${a.stats.model}`, `b: ${b.stats.model}`, 'b / a'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('   ').trimEnd();
  return [`a: ${a.file} (model ${a.stats.model})`, `b: ${b.file} (model ${b.stats.model})`,
    `FLOPs and state at ${ctx}, batch ${a.stats.state.batch}; active parameters: k of E experts per mixture of experts`, '',
    line(head), ...rows.map(line), ''].join('\n');
}

export function registerCompareCommand(p: Command): void {
  p.command('compare <a> <b>').description('two models side by side: parameters, FLOPs per token, KV and recurrent state, dispatches, weight bytes, with ratios b / a')
    .option('--set <name=value>', 'override a param in each file that declares it (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .addOption(new Option('--preset <name>', 'a model size for both files (refused where they set a size differently)').choices(PRESET_NAMES))
    .option('--context <n>', 'context length for FLOPs and state (default: each model\'s param `context`, else 4096)')
    .option('--batch <n>', 'sequences held at once, for the state total', '1')
    .option('--json', 'print one JSON object')
    .action(async (a: string, b: string, o: CompareOpts) => {
      const c = await compare([a, b], o);
      for (const n of c.notes) process.stderr.write(`${n}\n`);
      process.stdout.write(o.json ? JSON.stringify(c, null, 2) + '\n' : formatComparison(c));
    });
}
