// logprobs on `archc serve`, driven by the openai client: chat's `logprobs` + `top_logprobs` and
// completions' `logprobs: N`, streamed and not, checked against the log-softmax of the model's own
// logits for the same tokens run alone (float64 reference, 1e-4 absolute: the CPU reference's batched
// decode against a sequence decoded alone), on tiny-bamba-a (trained) and a random tiny Bamba.

import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChatTemplate } from '../../cli/serve/chat.ts';
import { type RunningServer, serve } from '../../cli/serve/server.ts';
import type { Model } from '../../runtime/model.ts';
import { ROOT, loadModel, makeDir, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { logSoftmax, logitsAlong, trainedWithTemplate } from './setup.ts';

const TOL = 1e-4;
const dirs: string[] = [];
const servers: RunningServer[] = [];
let trained: Model;
let random: Model;

beforeAll(async () => {
  const a = trainedWithTemplate();
  dirs.push(a);
  trained = await loadModel(a);
  const d = makeDir('archc-serve-lp-');
  dirs.push(d);
  writeCheckpoint(d, { vocab: 368 }, { seed: 5 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(d, f));
  random = await loadModel(d);
});

afterAll(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) removeDir(d);
});

async function start(model: Model) {
  const s = await serve(model, '127.0.0.1', 0, { id: 'm', template: loadChatTemplate(model.dir), cacheBytes: 0 });
  servers.push(s);
  return new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
}

interface Entry { token: string; logprob: number; top: [string, number][] }

/** Each reply token's logprob and top-k against the reference, with the reference's own k likeliest. */
async function expectMatches(model: Model, prompt: readonly number[], ids: readonly number[], got: readonly Entry[], k: number) {
  expect(got.map((e) => e.token)).toEqual(ids.map((id) => model.tokenizer!.decode([id])));
  const rows = await logitsAlong(model, prompt, ids);
  let worst = 0;
  for (const [i, e] of got.entries()) {
    const ref = logSoftmax(rows[i]!);
    worst = Math.max(worst, Math.abs(e.logprob - ref[ids[i]!]!));
    const order = [...ref.keys()].sort((x, y) => ref[y]! - ref[x]! || x - y).slice(0, k);
    expect(e.top.length, `token ${i}: top count`).toBe(k);
    for (const [j, [token, lp]] of e.top.entries()) {
      worst = Math.max(worst, Math.abs(lp - ref[order[j]!]!));
      // the same token unless two logprobs tie within the tolerance
      const tied = (j > 0 && ref[order[j - 1]!]! - ref[order[j]!]! < TOL) || (j + 1 < k && ref[order[j]!]! - ref[order[j + 1]!]! < TOL);
      if (!tied) expect(token, `token ${i}, top ${j}`).toBe(model.tokenizer!.decode([order[j]!]));
    }
  }
  expect(worst, `max |logprob - reference| over ${got.length} tokens`).toBeLessThan(TOL);
}

const chatEntries = (lp: OpenAI.Chat.Completions.ChatCompletion.Choice.Logprobs | null | undefined): Entry[] =>
  (lp?.content ?? []).map((c) => ({ token: c.token, logprob: c.logprob, top: c.top_logprobs.map((t) => [t.token, t.logprob]) }));

describe('logprobs', () => {
  it('chat: logprobs and top_logprobs (greedy, trained), streamed and not, equal the model\'s log-softmax', async () => {
    const client = await start(trained);
    const messages = [{ role: 'user' as const, content: 'Tell me a story about a cat.' }];
    const prompt = trained.tokenizer!.encode(loadChatTemplate(trained.dir)!.render(messages), { addSpecialTokens: false });
    const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 3, return_token_ids: true } as never) as OpenAI.Chat.Completions.ChatCompletion;
    const ids = (r.choices[0] as unknown as { token_ids: number[] }).token_ids;
    expect(ids.length).toBe(12);
    const got = chatEntries(r.choices[0]!.logprobs);
    await expectMatches(trained, prompt, ids, got, 3);
    // greedy: the chosen token is the likeliest; each entry's bytes are its token's UTF-8
    for (const e of r.choices[0]!.logprobs!.content!) {
      expect(e.top_logprobs[0]!.logprob).toBe(e.logprob);
      expect(e.bytes).toEqual([...Buffer.from(e.token, 'utf8')]);
    }
    expect(got.map((e) => e.token).join('')).toBe(r.choices[0]!.message.content);
    // streamed: the same entries, spread over the chunks with their text
    const streamed: Entry[] = [];
    let text = '';
    for await (const c of await client.chat.completions.create({ model: 'm', messages, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 3, stream: true })) {
      text += c.choices[0]?.delta.content ?? '';
      streamed.push(...chatEntries(c.choices[0]?.logprobs));
    }
    expect(text).toBe(r.choices[0]!.message.content);
    expect(streamed).toEqual(got);
    // logprobs: true alone gives no alternatives; without it, none at all
    const bare = await client.chat.completions.create({ model: 'm', messages, max_tokens: 3, temperature: 0, logprobs: true });
    expect(bare.choices[0]!.logprobs!.content!.map((c) => c.top_logprobs)).toEqual([[], [], []]);
    expect((await client.chat.completions.create({ model: 'm', messages, max_tokens: 3, temperature: 0 })).choices[0]!.logprobs).toBeNull();
  });

  it('completions: logprobs: N of sampled tokens (random weights), streamed and not', async () => {
    const client = await start(random);
    const prompt = 'The quick brown fox';
    const r = await client.completions.create({ model: 'm', prompt, max_tokens: 10, temperature: 0.9, seed: 3, logprobs: 2, return_token_ids: true } as never) as OpenAI.Completions.Completion;
    const ids = (r.choices[0] as unknown as { token_ids: number[] }).token_ids;
    const lp = r.choices[0]!.logprobs!;
    // the raw distribution's logprob of each sampled token (not the temperature's)
    expect(lp.tokens).toEqual(ids.map((id) => random.tokenizer!.decode([id])));
    const rows = await logitsAlong(random, random.encode(prompt), ids);
    for (const [i, id] of ids.entries()) {
      const ref = logSoftmax(rows[i]!);
      expect(Math.abs(lp.token_logprobs![i]! - ref[id]!), `token ${i}`).toBeLessThan(TOL);
      // the map: the 2 likeliest and the sampled token by their text (tokens of one text share a key)
      const order = [...ref.keys()].sort((x, y) => ref[y]! - ref[x]! || x - y);
      expect(ref[order[1]!]! - ref[order[2]!]!, 'no tie at the cut').toBeGreaterThan(TOL);
      const want = Object.fromEntries([order[0]!, order[1]!, id].map((j) => [random.tokenizer!.decode([j]), ref[j]!]));
      const got = lp.top_logprobs![i]!;
      expect(Object.keys(got).sort(), `token ${i}`).toEqual(Object.keys(want).sort());
      for (const [t, v] of Object.entries(want)) expect(Math.abs(got[t]! - v), `token ${i}: ${t}`).toBeLessThan(TOL);
    }
    // offsets: where each token's text begins (a token that ends in a cut character begins where the next does)
    expect(lp.text_offset![0]).toBe(0);
    for (let i = 1; i < ids.length; i++) expect(lp.text_offset![i]).toBeGreaterThanOrEqual(lp.text_offset![i - 1]!);
    expect(lp.text_offset!.at(-1)).toBeLessThanOrEqual(r.choices[0]!.text.length);
    // streamed: the same tokens and offsets
    const tokens: string[] = [];
    const offsets: number[] = [];
    for await (const c of await client.completions.create({ model: 'm', prompt, max_tokens: 10, temperature: 0.9, seed: 3, logprobs: 2, stream: true })) {
      tokens.push(...(c.choices[0]!.logprobs?.tokens ?? []));
      offsets.push(...(c.choices[0]!.logprobs?.text_offset ?? []));
    }
    expect(tokens).toEqual(lp.tokens);
    expect(offsets).toEqual(lp.text_offset);
  });

  it('text offsets; a stop string ends the logprobs with the text; bad values are 400 naming the field', async () => {
    const client = await start(trained);
    const full = await client.completions.create({ model: 'm', prompt: 'One day, a little', max_tokens: 30, temperature: 0, logprobs: 0 });
    const text = full.choices[0]!.text;
    // each token's text at its offset (this reply's characters are whole in every token)
    const all = full.choices[0]!.logprobs!;
    let at = 0;
    for (const [i, t] of all.tokens!.entries()) {
      expect(all.text_offset![i]).toBe(at);
      expect(text.slice(at, at + t.length)).toBe(t);
      at += t.length;
    }
    expect(at).toBe(text.length);
    const stop = text.slice(10, 13);
    const cut = await client.completions.create({ model: 'm', prompt: 'One day, a little', max_tokens: 30, temperature: 0, logprobs: 0, stop });
    const lp = cut.choices[0]!.logprobs!;
    expect(cut.choices[0]!.text).toBe(text.slice(0, text.indexOf(stop)));
    // the tokens that began before the stop string, no more
    const n = lp.tokens!.length;
    expect(lp.tokens).toEqual(full.choices[0]!.logprobs!.tokens!.slice(0, n));
    expect(lp.text_offset![n - 1]).toBeLessThan(text.indexOf(stop));
    expect(full.choices[0]!.logprobs!.text_offset![n] ?? Infinity).toBeGreaterThanOrEqual(text.indexOf(stop));
    const err = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e);
    const messages = [{ role: 'user' as const, content: 'hi' }];
    expect(await err(client.chat.completions.create({ model: 'm', messages, top_logprobs: 2 }))).toMatchObject({ status: 400, param: 'top_logprobs' });
    expect(await err(client.chat.completions.create({ model: 'm', messages, logprobs: true, top_logprobs: 21 }))).toMatchObject({ status: 400, param: 'top_logprobs' });
    expect(await err(client.completions.create({ model: 'm', prompt: 'hi', logprobs: 1.5 }))).toMatchObject({ status: 400, param: 'logprobs' });
  });
});
