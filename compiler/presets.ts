// Named model sizes for experiments (`--preset tiny`): one table of param values that scale every
// size together — vocabulary, width, depth, heads, feed-forward, state, chunk, context — applied to
// whichever of these params a model declares with a literal default (computed ones follow), before
// the user's own --set overrides.

import { CompileError, diag } from '../dsl/diagnostics.ts';
import { lookupKey } from '../runtime/hfconfig.ts';
import { loadProgram, pickModel } from './load.ts';
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

/** `name=value` overrides of `preset` for the params the model in `file` declares. With `config`
 *  (--hf-config), a preset that would replace a value the config sets is refused (AC315, naming the
 *  keys): the config's values are the variant's own, and the preset would override them silently. */
export function presetSets(file: string, preset: string, model?: string, config?: HfConfigInput): string[] {
  const values = (PRESETS as Record<string, Record<string, number | string>>)[preset];
  if (!values) throw new CompileError([diag('AC315', undefined, ['--preset', `unknown preset ${JSON.stringify(preset)}`], `presets: ${PRESET_NAMES.join(', ')}`)]);
  const loaded = loadProgram(file);
  const picked = pickModel(loaded, model);
  // a file that does not load gets its diagnostics from the compile that follows
  if (!('kind' in picked)) return [];
  // params with a computed default (head_dim = d_model // n_heads) follow from the others
  const declared = new Set(picked.body.flatMap((s) => (s.kind === 'param' && (s.value.kind === 'num' || s.value.kind === 'list') ? [s.name] : [])));
  const sets = Object.entries(values).filter(([name]) => declared.has(name));
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
  return sets.map(([name, v]) => `${name}=${v}`);
}
