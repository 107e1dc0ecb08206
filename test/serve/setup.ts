// Shared by the serve tests: tiny-bamba-a copied to a temp directory with a chat template added
// (it ships without one), and a reply's logits recomputed alone, token by token, for references.

import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Model } from '../../runtime/model.ts';
import { ROOT, makeDir } from '../helpers/checkpoints.ts';

export const TINY_A = resolve(ROOT, '../shared/models/tiny-bamba-a/f32');
export const TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/** A temp copy of tiny-bamba-a with TEMPLATE as its chat_template (the caller removes the directory). */
export function trainedWithTemplate(prefix = 'archc-serve-a-'): string {
  const dir = makeDir(prefix);
  cpSync(TINY_A, dir, { recursive: true });
  const cfgPath = join(dir, 'tokenizer_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), chat_template: TEMPLATE }));
  return dir;
}

/** The logits before each token of `reply`, the prompt then the reply fed on one fresh sequence. */
export async function logitsAlong(model: Model, prompt: readonly number[], reply: readonly number[]): Promise<Float32Array[]> {
  const s = model.newSequence();
  try {
    const out = [await model.stepAsync([prompt], [s], true)];
    for (const id of reply.slice(0, -1)) out.push(await model.decodeAsync([id], [s]));
    return out;
  } finally {
    model.releaseSequence(s);
  }
}

/** log_softmax of one row, in float64 (the reference for the server's logprobs). */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  return Float64Array.from(row, (x) => x - max - Math.log(sum));
}
