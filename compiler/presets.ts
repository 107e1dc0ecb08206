// Named model sizes for experiments (`--preset tiny`): one table of param values that scale every
// size together — vocabulary, width, depth, heads, feed-forward, state, chunk, context — applied to
// whichever of these params a model declares with a literal default (computed ones follow), before
// the user's own --set overrides. Never silently: the values a preset replaces are listed
// (`presetNote`), and where two files are compared, one that they set differently is refused.

import { CompileError, diag } from '../dsl/diagnostics.ts';
import { lookupKey } from '../runtime/hfconfig.ts';
import { displayName, loadProgram, pickModel } from './load.ts';
import type { HfConfigInput } from './params.ts';

/** Param values by preset. Widths keep every head dimension at 16 (tiny) or 32 (small), so partial
 *  rotary stays even; attention layers sit at the middle and the end (Bamba). */
export const PRESETS = {
  tiny: {
    vocab: 256, d_model: 64, n_layers: 4, attn_layers: '[1, 3]', n_heads: 4, n_kv_heads: 2, head_dim: 16, d_ff: 128,
    mamba_heads: 8, mamba_groups: 1, n_groups: 1, d_state: 16, chunk: 16, context: 256,
  },
  small: {
    vocab: 4096, d_model: 256, n_layers: 8, attn_layers: '[3, 7]', n_heads: 8, n_kv_heads: 4, head_dim: 32, d_ff: 768,
    mamba_heads: 16, mamba_groups: 1, n_groups: 1, d_state: 64, chunk: 64, context: 1024,
  },
} as const satisfies Record<string, Record<string, number | string>>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** `name=value` overrides of `preset` for the params the model in `file` declares. */
export function presetSets(file: string, preset: string, model?: string, config?: HfConfigInput): string[] {
  return presetPlan(file, preset, model, config).sets;
}

/** A param the preset sets: the file's literal (its source text) and the preset's value. */
export interface Replaced { readonly name: string; readonly file: string; readonly preset: string }

const same = (a: string, b: string) => a.replace(/\s+/g, '') === b.replace(/\s+/g, '');

/** What `preset` sets in `file`: the `name=value` overrides, and the file's values they replace.
 *  With `config` (--hf-config), a preset that would replace a value the config sets is refused
 *  (AC315, naming the keys): the config's values are the variant's own, and the preset would
 *  override them silently. */
export function presetPlan(file: string, preset: string, model?: string, config?: HfConfigInput): { sets: string[]; set: Replaced[]; replaced: Replaced[] } {
  const values = (PRESETS as Record<string, Record<string, number | string>>)[preset];
  if (!values) throw new CompileError([diag('AC315', undefined, ['--preset', `unknown preset ${JSON.stringify(preset)}`], `presets: ${PRESET_NAMES.join(', ')}`)]);
  const loaded = loadProgram(file);
  const picked = pickModel(loaded, model);
  // a file that does not load gets its diagnostics from the compile that follows
  if (!('kind' in picked)) return { sets: [], set: [], replaced: [] };
  // params with a computed default (head_dim = d_model // n_heads) follow from the others
  const literal = new Map(picked.body.flatMap((s) => (s.kind === 'param' && (s.value.kind === 'num' || s.value.kind === 'list')
    ? [[s.name, loaded.sources.get(s.value.span.file)?.slice(s.value.span.offset, s.value.span.endOffset) ?? ''] as const] : [])));
  const sets = Object.entries(values).filter(([name]) => literal.has(name));
  if (config) {
    const keyOf = new Map(picked.body.flatMap((s) => (s.kind === 'param' ? [[s.name, s.hf] as const] : [])));
    const clashes = sets.flatMap(([name, v]) => (keyOf.get(name) ?? []).map((k) => ({ name, v, key: k.path.join('.'), at: lookupKey(config.config, k.path as string[]) }))
      .filter((c) => c.at.found && JSON.stringify(c.at.value) !== JSON.stringify(typeof c.v === 'string' ? JSON.parse(c.v) : c.v)).slice(0, 1));
    if (clashes.length) {
      const shown = clashes.slice(0, 4).map((c) => `${c.key} = ${JSON.stringify(c.at.value)} (param ${c.name}; the preset sets ${c.v})`).join(', ');
      throw new CompileError([diag('AC315', undefined, ['--preset', `${preset} would replace ${clashes.length} value${clashes.length === 1 ? '' : 's'} that ${config.file} sets: ${shown}${clashes.length > 4 ? ` and ${clashes.length - 4} more` : ''}`],
        'leave out --preset to use the config\'s sizes, or leave out --hf-config to use the preset\'s; --set changes single params')]);
    }
  }
  const set = sets.map(([name, v]) => ({ name, file: literal.get(name)!.replace(/\s+/g, ' '), preset: String(v) }));
  return { sets: sets.map(([name, v]) => `${name}=${v}`), set, replaced: set.filter((r) => !same(r.file, r.preset)) };
}

/** One line naming the values a preset replaced: `--preset tiny replaced 2 values of a.arch: d_model 4096 -> 64, …`. */
export function presetNote(preset: string, file: string, replaced: readonly Replaced[]): string {
  if (!replaced.length) return '';
  const list = replaced.map((r) => `${r.name} ${r.file} -> ${r.preset}`).join(', ');
  // one line, whatever the file is called
  const name = /[\x00-\x1f\x7f\u2028\u2029]/.test(displayName(file))
    ? JSON.stringify(displayName(file)).replace(/[\x7f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`) : displayName(file);
  return `note: --preset ${preset} replaced ${replaced.length} value${replaced.length === 1 ? '' : 's'} of ${name}: ${list} (a --set of the same param wins over the preset)\n`;
}

/** The presets of two compared files: a param both set, to different values, is what the comparison
 *  is about, and the preset would set both alike: refused (AC315, naming each with both values). */
export function presetPair(files: readonly [string, string], preset: string): [ReturnType<typeof presetPlan>, ReturnType<typeof presetPlan>] {
  const [a, b] = files.map((f) => presetPlan(f, preset)) as [ReturnType<typeof presetPlan>, ReturnType<typeof presetPlan>];
  const inA = new Map(a.set.map((r) => [r.name, r.file]));
  const differ = b.set.filter((r) => inA.has(r.name) && !same(inA.get(r.name)!, r.file));
  if (differ.length) {
    const shown = differ.map((r) => `${r.name} (${displayName(files[0])}: ${inA.get(r.name)}, ${displayName(files[1])}: ${r.file}; the preset sets ${r.preset})`).join(', ');
    throw new CompileError([diag('AC315', undefined, ['--preset', `${preset} would set ${differ.length === 1 ? 'a param' : `${differ.length} params`} that the two files set differently, and the comparison would not see the difference: ${shown}`],
      'compare at the files\' own sizes (leave out --preset), or write the variant at the sizes to compare')]);
  }
  return [a, b];
}
