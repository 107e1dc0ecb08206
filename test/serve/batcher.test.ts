// The Batcher without HTTP, on tiny-bamba-a (cpu): a long prompt is read in pieces between decode
// steps (a stream already going keeps getting a token per step meanwhile), and its greedy reply still
// equals Model.generate of the same prompt alone, bit for bit (pieces end on the SSD chunk, where the
// CPU reference takes the same sums as a whole prefill); the state at each snapshot is cached, so a
// prompt sharing a long beginning with an earlier one resumes from the last snapshot they share.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Batcher, type JobSpec } from '../../cli/serve/batcher.ts';
import { StateCache } from '../../cli/serve/cache.ts';
import type { Model } from '../../runtime/model.ts';
import { ROOT, loadModel } from '../helpers/checkpoints.ts';

const TINY_A = resolve(ROOT, '../shared/models/tiny-bamba-a');
let model: Model;

beforeAll(async () => {
  model = await loadModel(resolve(TINY_A, 'f32'), { threads: 1 });
});
afterAll(() => expect(model.openSequences).toBe(0));

const greedy = (ids: readonly number[], maxTokens: number): JobSpec => ({ ids, maxTokens, temperature: 0, stopStrings: [] });

async function alone(ids: readonly number[], maxTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const t of model.generate(ids, { maxTokens, temperature: 0 })) if (t.id >= 0) out.push(t.id);
  return out;
}

describe('prefill in pieces', () => {
  it('a 320-token prompt read 64 tokens a step beside a stream, with the tokens of a whole prefill', async () => {
    const chunk = model.program.params.chunk as number;
    expect(chunk).toBe(64);
    const b = new Batcher(model, { slots: 4, queue: 4, cache: new StateCache(0), prefillChunk: chunk, align: chunk, snapshotEvery: 0 });
    const longIds = model.encode(readFileSync(resolve(TINY_A, 'eval-A.txt'), 'utf8').slice(0, 400)).slice(0, 320);
    const shortIds = model.encode('Once upon a time');
    let started!: () => void;
    const going = new Promise<void>((r) => (started = r));
    const short = b.submit(greedy(shortIds, 60), () => started());
    await going; // the short stream has its first token
    const before = b.counts.completionTokens;
    let atFirst = -1;
    const long = await b.submit(greedy(longIds, 8), () => {
      if (atFirst < 0) atFirst = b.counts.completionTokens;
    });
    const pieces = Math.ceil(longIds.length / chunk);
    // one decode step of the short stream per piece but the last (its step samples the long's first token too)
    expect(atFirst - before).toBeGreaterThanOrEqual(pieces - 1);
    expect(long.ids).toEqual(await alone(longIds, 8));
    expect((await short).ids).toEqual(await alone(shortIds, 60));
  });

  it('prompts that share a long beginning resume from the last snapshot they share, with the uncached tokens', async () => {
    const b = new Batcher(model, { slots: 2, queue: 2, cache: new StateCache(64 * 2 ** 20), prefillChunk: 64, align: 64, snapshotEvery: 64 });
    const system = readFileSync(resolve(TINY_A, 'eval-A.txt'), 'utf8').slice(0, 150);
    const a = model.encode(`${system}\nQ: What is this chapter about?\nA:`);
    const c = model.encode(`${system}\nQ: Who is the reader?\nA:`);
    let shared = 0;
    while (a[shared] === c[shared]) shared++;
    expect(shared).toBeGreaterThan(128);
    expect((await b.submit(greedy(a, 6), () => {})).cachedTokens).toBe(0);
    const r = await b.submit(greedy(c, 6), () => {});
    expect(r.cachedTokens).toBe(Math.floor(shared / 64) * 64);
    expect(r.ids).toEqual(await alone(c, 6));
  });
});
