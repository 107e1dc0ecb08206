// Text in, text out: a checkpoint directory with tokenizer.json; the streamed pieces of generate()
// concatenate to the tokenizer's decoding of the generated ids.

import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../runtime/model.ts';
import { ROOT, loadModel, makeDir, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

let dir: string;
let model: Model;

beforeAll(async () => {
  dir = makeDir();
  // the fixture tokenizer has 361 tokens + 3 specials
  writeCheckpoint(dir, { vocab: 368 }, { seed: 4 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(dir, f));
  model = await loadModel(dir);
});
afterAll(() => removeDir(dir));

describe('generate with a tokenizer', () => {
  it('streams text whose concatenation is the decoding of the generated ids', async () => {
    expect(model.tokenizer).not.toBeNull();
    const ids: number[] = [];
    let text = '';
    for await (const t of model.generate('The quick brown fox', { maxTokens: 24, temperature: 1, seed: 5, stop: [] })) {
      if (t.id >= 0) ids.push(t.id);
      text += t.text;
    }
    expect(ids.length).toBe(24);
    expect(text).toBe(model.tokenizer!.decode(ids));
  });

  it('encodes the prompt with the tokenizer (same as passing its ids)', async () => {
    const prompt = 'Hello world';
    const a: number[] = [];
    const b: number[] = [];
    for await (const t of model.generate(prompt, { maxTokens: 6, stop: [] })) if (t.id >= 0) a.push(t.id);
    for await (const t of model.generate(model.encode(prompt), { maxTokens: 6, stop: [] })) if (t.id >= 0) b.push(t.id);
    expect(a).toEqual(b);
  });
});
