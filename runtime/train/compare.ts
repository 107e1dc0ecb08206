// Experiments side by side (`archc train a.arch b.arch ...`): one record per variant, trained on the
// same batches, and compare.md, the table a reader looks at. compare.json is the records as they are.

/** One variant's row of compare.json. */
export interface Variant {
  readonly name: string;
  /** The .arch file, resolved, and the --set strings it was compiled with. */
  readonly file: string;
  readonly set: readonly string[];
  readonly model: string;
  readonly parameters: number;
  /** Forward FLOPs per token at the training row length (`archc stats --context SEQ_LEN`, prefill). */
  readonly flops_per_token: number;
  /** Inference state of one sequence at that length: KV cache + conv/SSM state (bytes). */
  readonly state_bytes: number;
  readonly steps: number;
  /** Tokens the losses counted. */
  readonly tokens: number;
  /** Packed tokens per second of training steps (gradients and optimizer), the first (JIT warm-up) left out when there are others. */
  readonly tokens_per_s: number;
  readonly final_loss: number;
  readonly eval_loss?: number;
  readonly eval_bits_per_byte?: number;
  /** sha256 of every trained batch's ids and positions, in order: equal for variants that read the same batches. */
  readonly batches_sha256: string;
}

const group = (n: number) => Math.round(n).toLocaleString('en-US');

/** The comparison as a Markdown table, with the settings every variant shared. */
export function compareMarkdown(rows: readonly Variant[], settings: Readonly<Record<string, unknown>>): string {
  const hasEval = rows.some((r) => r.eval_bits_per_byte !== undefined);
  const head = ['variant', 'file', 'parameters', 'FLOPs/token', 'state bytes', 'tokens/s', 'final loss', ...(hasEval ? ['eval bits/byte'] : [])];
  const lines = [
    '# Training comparison', '',
    `Every variant trained on the same batches: ${Object.entries(settings).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    'FLOPs per token: forward, at the row length (`context`); state: one sequence at that length.', '',
    `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`,
  ];
  for (const r of rows) {
    const cells = [r.name, `\`${r.file}\`${r.set.length ? ` ${r.set.map((s) => `\`--set ${s}\``).join(' ')}` : ''}`, group(r.parameters), group(r.flops_per_token),
      group(r.state_bytes), group(r.tokens_per_s), r.final_loss.toFixed(4), ...(hasEval ? [r.eval_bits_per_byte?.toFixed(4) ?? '-'] : [])];
    lines.push(`| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}
