// `archc eval`: cross-entropy of a model over a text, in windows — each window of n tokens is fed
// as <bos> + its first n − 1 tokens and every one of its n tokens is predicted (tiny-bamba-a's
// README method: 512-byte windows as <|endoftext|> + 511 bytes) — and, given the unquantised model
// as the reference, the mean KL divergence of the quantised next-token distribution from it.
// Sums run in double.

import { RuntimeError } from '../runtime/errors.ts';
import type { Model } from '../runtime/model.ts';

export interface EvalResult {
  readonly text: string;
  readonly bytes: number;
  readonly tokens: number;
  readonly window: number;
  /** Windows evaluated, of how many the text makes. */
  readonly windows: number;
  readonly windowsTotal: number;
  readonly scoredTokens: number;
  /** Bytes of the scored windows (pro rata to their tokens when only some windows run). */
  readonly scoredBytes: number;
  readonly bitsPerToken: number;
  readonly bitsPerByte: number;
  /** The unquantised model over the same windows, and KL(reference ‖ model) in nats per token. */
  readonly reference?: { readonly bitsPerToken: number; readonly bitsPerByte: number; readonly klMean: number; readonly klMax: number };
}

export interface EvalOptions {
  readonly window: number;
  readonly maxWindows?: number;
  /** The text's path, for messages. */
  readonly file: string;
}

/** log-softmax of row `r` of `logits` [rows, V] into `out` (double). */
function logSoftmax(logits: Float32Array, r: number, V: number, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[r * V + i]!);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[r * V + i]! - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < V; i++) out[i] = logits[r * V + i]! - lse;
}

export async function evaluate(model: Model, ref: Model | null, text: string, o: EvalOptions): Promise<EvalResult> {
  const tok = model.tokenizer;
  if (!tok) throw new RuntimeError('RT400', [`${model.dir}/tokenizer.json`, 'eval needs the checkpoint\'s tokenizer'], { file: `${model.dir}/tokenizer.json` });
  const bos = tok.bosId ?? tok.eosIds[0];
  if (bos === undefined) throw new RuntimeError('RT402', [`${model.dir}/tokenizer_config.json`, 'eval starts each window with the bos (or eos) token, and the tokenizer has neither'], { key: 'bos_token' });
  const ids = tok.encode(text, { addSpecialTokens: false });
  const bytes = new TextEncoder().encode(text).length;
  const total = Math.ceil(ids.length / o.window);
  if (total === 0) throw new RuntimeError('RT301', [`${o.file} holds no tokens to evaluate`]);
  const n = Math.min(total, o.maxWindows ?? total);
  const V = model.vocab;
  const lp = new Float64Array(V), lq = new Float64Array(V);
  let nats = 0, refNats = 0, kl = 0, klMax = 0, scored = 0;
  for (let i = 0; i < n; i++) {
    const w = Math.floor((i * total) / n);
    const chunk = ids.slice(w * o.window, (w + 1) * o.window);
    const input = [bos, ...chunk.slice(0, -1)];
    const logits = (await model.forwardAsync({ ids: input })).logits;
    const refLogits = ref ? (await ref.forwardAsync({ ids: input })).logits : null;
    for (let t = 0; t < chunk.length; t++) {
      logSoftmax(logits, t, V, lq);
      nats -= lq[chunk[t]!]!;
      if (refLogits) {
        logSoftmax(refLogits, t, V, lp);
        refNats -= lp[chunk[t]!]!;
        let d = 0;
        for (let v = 0; v < V; v++) d += Math.exp(lp[v]!) * (lp[v]! - lq[v]!);
        kl += d;
        klMax = Math.max(klMax, d);
      }
    }
    scored += chunk.length;
  }
  const scoredBytes = n === total ? bytes : (bytes * scored) / ids.length;
  const bits = (x: number) => x / Math.LN2;
  return {
    text: o.file, bytes, tokens: ids.length, window: o.window, windows: n, windowsTotal: total, scoredTokens: scored, scoredBytes,
    bitsPerToken: bits(nats) / scored, bitsPerByte: bits(nats) / scoredBytes,
    ...(ref ? { reference: { bitsPerToken: bits(refNats) / scored, bitsPerByte: bits(refNats) / scoredBytes, klMean: kl / scored, klMax } } : {}),
  };
}

/** The result as text; `names` label the model and its reference. */
export function formatEval(r: EvalResult, names: { readonly model: string; readonly reference: string }): string {
  const lines = [
    `${r.text}: ${r.bytes} bytes, ${r.tokens} tokens; ${r.windows} of ${r.windowsTotal} windows of ${r.window} tokens (<bos> + ${r.window - 1}), ${r.scoredTokens} tokens scored`
      + (r.windows < r.windowsTotal ? ` (bytes pro rata: ${r.scoredBytes.toFixed(0)})` : ''),
  ];
  const row = (what: string, bpt: number, bpb: number) => `${what}: ${bpb.toFixed(4)} bits/byte, ${bpt.toFixed(4)} bits/token`;
  if (r.reference) {
    lines.push(row(names.reference, r.reference.bitsPerToken, r.reference.bitsPerByte));
    const rel = (100 * (r.bitsPerByte - r.reference.bitsPerByte)) / r.reference.bitsPerByte;
    lines.push(`${row(names.model, r.bitsPerToken, r.bitsPerByte)} (${rel >= 0 ? '+' : ''}${rel.toFixed(3)} %)`);
    lines.push(`KL(${names.reference} ‖ ${names.model}): mean ${r.reference.klMean.toExponential(3)} nats/token, max ${r.reference.klMax.toExponential(3)}`);
  } else lines.push(row('cross-entropy', r.bitsPerToken, r.bitsPerByte));
  return lines.join('\n') + '\n';
}
