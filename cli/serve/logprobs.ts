// Log-probabilities as the OpenAI API returns them (`logprobs` + `top_logprobs` on chat, `logprobs: N`
// on completions): the log-softmax of the model's own logits at each sampled token (before temperature
// and top_p, as vLLM reports them by default), in float64, with the N likeliest ids. A token's text
// is its own decode (tokenizer.decode([id])), its bytes that text's UTF-8; without a tokenizer it is
// `token_id:ID` (vLLM's spelling).

import type { Tokenizer } from '../../runtime/tokenizer.ts';

/** The most top_logprobs a request may ask for (OpenAI's chat limit). */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprob {
  readonly id: number;
  /** Where the token's text starts in the reply (completions' text_offset). */
  readonly offset: number;
  readonly logprob: number;
  /** The `top` likeliest ids with their logprobs, likeliest first (ties: the lower id first). */
  readonly top: readonly (readonly [number, number])[];
}

/** log_softmax(logits)[id] and the `top` likeliest [id, logprob] pairs, over a row of V logits. */
export function logprobsOf(logits: Float32Array, id: number, top: number): { logprob: number; top: [number, number][] } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const norm = max + Math.log(sum);
  // the `top` largest by insertion into a sorted list (a logit enters only past the current last)
  const best: number[] = [];
  for (let i = 0; i < logits.length && top > 0; i++) {
    const x = logits[i]!;
    if (best.length === top && x <= logits[best[top - 1]!]!) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]!]! < x) at--;
    best.splice(at, 0, i);
    if (best.length > top) best.pop();
  }
  return { logprob: logits[id]! - norm, top: best.map((i) => [i, logits[i]! - norm]) };
}

type Text = (id: number) => string;

/** A token id's text for the reply's logprobs. */
export function tokenText(tokenizer: Tokenizer | null): Text {
  return (id) => (tokenizer ? tokenizer.decode([id]) : `token_id:${id}`);
}

const bytesOf = (s: string): number[] => [...new TextEncoder().encode(s)];

/** Chat's `logprobs`: { content: [{ token, logprob, bytes, top_logprobs: [{ token, logprob, bytes }] }], refusal }. */
export function chatLogprobs(entries: readonly TokenLogprob[], text: Text) {
  const one = (id: number, logprob: number) => {
    const token = text(id);
    return { token, logprob, bytes: bytesOf(token) };
  };
  return { content: entries.map((e) => ({ ...one(e.id, e.logprob), top_logprobs: e.top.map(([id, lp]) => one(id, lp)) })), refusal: null };
}

/** Completions' `logprobs`: { tokens, token_logprobs, top_logprobs: [{ token: logprob }], text_offset };
 *  each top map holds the N likeliest and the sampled token (up to N + 1, as OpenAI says). */
export function completionLogprobs(entries: readonly TokenLogprob[], text: Text) {
  return {
    tokens: entries.map((e) => text(e.id)),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries([...e.top, [e.id, e.logprob] as const].map(([id, lp]) => [text(id), lp]))),
    text_offset: entries.map((e) => e.offset),
  };
}
