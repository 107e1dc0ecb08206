// The hybrid cache: KV caches start small and grow as tokens arrive; decoding across several
// growths equals a forward pass over the whole sequence, and the context limit is enforced.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../runtime/model.ts';
import { expectLogitsClose, loadModel, makeDir, randomIds, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';

let dir: string;
let model: Model;

beforeAll(async () => {
  dir = makeDir();
  writeCheckpoint(dir, { attn_layers: [0, 2] }, { seed: 5 });
  model = await loadModel(dir, { capacity: 40 });
});
afterAll(() => removeDir(dir));

describe('KV cache growth', () => {
  it('decoding through four growths (2 -> 4 -> 8 -> 16 -> 32 rows) equals one forward pass', () => {
    const ids = randomIds(30, model.vocab, 9);
    const V = model.vocab;
    const whole = model.forward({ ids }).logits;
    const state = model.newSequence(40, 2);
    const kv = () => state.states.filter((s) => !(s instanceof Float32Array)).map((s) => (s as { capacity: number }).capacity);
    expect(kv()).toEqual([2, 2]);
    const got = new Float32Array(30 * V);
    got.set(model.step([ids.slice(0, 3)], [state]), 0);
    for (let t = 3; t < 30; t++) got.set(model.decode([ids[t]!], [state]), t * V);
    expect(kv()).toEqual([32, 32]);
    expectLogitsClose(got, whole, 1e-5, 'decode with growing KV caches vs forward', V);
    expectLogitsClose(rows(got, V, 29, 30), rows(whole, V, 29, 30), 1e-5, 'last row', V);
  });

  it('stops at the context with RT302', () => {
    const state = model.newSequence(40, 8);
    model.step([randomIds(40, model.vocab, 1)], [state]);
    expect(() => model.decode([1], [state])).toThrow(/RT302.*capacity 40/);
  });
});

describe('prefill computes the head for the last tokens only', () => {
  it('its logits equal the last rows of a full forward of each prompt', () => {
    const V = model.vocab;
    const prompts = [randomIds(9, V, 2), randomIds(4, V, 3), randomIds(1, V, 4)];
    const { logits } = model.prefill(prompts);
    prompts.forEach((p, i) => {
      const full = model.forward({ ids: p }).logits;
      expectLogitsClose(logits[i]!, rows(full, V, p.length - 1, p.length), 1e-5, `prompt ${i}`, V);
    });
    expect(model.step(prompts, prompts.map(() => model.newSequence()), true).length).toBe(3 * V);
  });
});
