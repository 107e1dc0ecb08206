// `archc serve`'s server driven by the official `openai` client, in process on ephemeral ports: a
// random tiny Bamba (the fixture tokenizer and its chat template) and the trained tiny-bamba-a (its
// byte-level tokenizer, with a chat template added to a copy). Every greedy reply is checked
// against Model.generate of the same prompt run alone, token for token; batched, queued, cancelled
// and cached requests against the same.

import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, serve } from '../../cli/serve/server.ts';
import { loadChatTemplate } from '../../cli/serve/chat.ts';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { Model } from '../../runtime/model.ts';
import { ROOT, loadModel, makeDir, programFor, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const TINY_A = resolve(ROOT, '../shared/models/tiny-bamba-a/f32');
const TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

const dirs: string[] = [];
const servers: RunningServer[] = [];
let tiny: Model; // random weights, fixture tokenizer (chat template: the contents concatenated)
let trained: Model; // tiny-bamba-a, TEMPLATE added
let trainedDir: string;

beforeAll(async () => {
  const d = makeDir('archc-serve-');
  dirs.push(d);
  writeCheckpoint(d, { vocab: 368 }, { seed: 11 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(d, f));
  tiny = await loadModel(d);
  trainedDir = makeDir('archc-serve-a-');
  dirs.push(trainedDir);
  cpSync(TINY_A, trainedDir, { recursive: true });
  const cfgPath = join(trainedDir, 'tokenizer_config.json');
  const cfg = JSON.parse(readFileSync(TINY_A + '/tokenizer_config.json', 'utf8')) as Record<string, unknown>;
  expect(cfg.chat_template, 'tiny-bamba-a ships without a chat template').toBeUndefined();
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, chat_template: TEMPLATE }));
  trained = await loadModel(trainedDir);
});

afterAll(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) removeDir(d);
});

const logged: string[] = [];

async function start(model: Model, o: { id?: string; cacheBytes?: number; slots?: number; queue?: number; maxBodyBytes?: number; noTemplate?: boolean; snapshotEvery?: number } = {}) {
  const s = await serve(model, '127.0.0.1', 0, {
    id: o.id ?? 'm', template: o.noTemplate ? null : loadChatTemplate(model.dir), cacheBytes: o.cacheBytes ?? 0, slots: o.slots, queue: o.queue, maxBodyBytes: o.maxBodyBytes, snapshotEvery: o.snapshotEvery,
    log: (line) => logged.push(line),
  });
  servers.push(s);
  return { s, client: new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

/** Model.generate alone, greedy: the ids (a stop id ends it unsaid, as on the server). */
async function alone(model: Model, prompt: string | readonly number[], maxTokens: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of model.generate(prompt, { maxTokens, temperature: 0 })) if (t.id >= 0) ids.push(t.id);
  return ids;
}

/** The chat prompt's ids as the server makes them: TEMPLATE rendered, encoded without specials added. */
function chatIds(model: Model, messages: { role: string; content: string }[]): number[] {
  return model.tokenizer!.encode(loadChatTemplate(model.dir)!.render(messages), { addSpecialTokens: false });
}

/** The checkpoint on the wasm backend with the program's own module, as the CLI loads it. */
async function loadWasm(dir: string): Promise<Model> {
  const program = programFor(dir);
  return Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 2 });
}

const tokenIds = (choice: unknown): number[] => (choice as { token_ids: number[] }).token_ids;

describe('the OpenAI routes', () => {
  it('lists the model, answers /health, and completes text greedily as Model.generate does', async () => {
    const { s, client } = await start(tiny, { id: 'tiny' });
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['tiny']);
    expect(await (await fetch(`${s.url}/health`)).json()).toEqual({ status: 'ok' });
    const r = await client.completions.create({ model: 'tiny', prompt: 'The quick brown fox', max_tokens: 12, temperature: 0, return_token_ids: true } as never);
    const want = await alone(tiny, 'The quick brown fox', 12);
    expect(tokenIds(r.choices[0])).toEqual(want);
    expect(r.choices[0]!.text).toBe(tiny.tokenizer!.decode(want));
    expect(r.usage).toMatchObject({ prompt_tokens: tiny.encode('The quick brown fox').length, completion_tokens: want.length });
    // streamed: the same text in pieces
    let text = '';
    let finish: string | null = null;
    for await (const c of await client.completions.create({ model: 'tiny', prompt: 'The quick brown fox', max_tokens: 12, temperature: 0, stream: true })) {
      text += c.choices[0]!.text;
      finish = c.choices[0]!.finish_reason ?? finish;
    }
    expect(text).toBe(r.choices[0]!.text);
    expect(finish).toBe(r.choices[0]!.finish_reason);
    // a line per request
    expect(logged.filter((l) => l.startsWith('POST /v1/completions 200 '))).toHaveLength(2);
    expect(logged.at(-1)).toMatch(new RegExp(`^POST /v1/completions 200 prompt=\\d+ cached=0 completion=${want.length} finish=length \\d+ ms$`));
  });

  it('chats through the chat template, streamed and not, with usage', async () => {
    const { client } = await start(trained);
    const messages = [{ role: 'system' as const, content: 'You tell stories.' }, { role: 'user' as const, content: 'Once upon a time' }];
    const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 24, temperature: 0, return_token_ids: true } as never);
    const want = await alone(trained, chatIds(trained, messages), 24);
    expect(want.length).toBeGreaterThan(0);
    expect(tokenIds(r.choices[0])).toEqual(want);
    expect(r.choices[0]!.message).toMatchObject({ role: 'assistant', content: trained.tokenizer!.decode(want) });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    const stream = await client.chat.completions.create({ model: 'm', messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      usage = c.usage ?? usage;
    }
    expect(text).toBe(r.choices[0]!.message.content);
    expect(usage).toMatchObject({ prompt_tokens: chatIds(trained, messages).length, completion_tokens: want.length, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('samples with a seed as Model.generate does with that seed', async () => {
    const { client } = await start(trained);
    const ask = () => client.completions.create({ model: 'm', prompt: 'The dog', max_tokens: 16, temperature: 0.9, top_p: 0.9, seed: 7, return_token_ids: true } as never);
    const want: number[] = [];
    for await (const t of trained.generate('The dog', { maxTokens: 16, temperature: 0.9, topP: 0.9, seed: 7 })) if (t.id >= 0) want.push(t.id);
    const [a, b] = [await ask(), await ask()];
    expect(tokenIds(a.choices[0])).toEqual(want);
    expect(tokenIds(b.choices[0])).toEqual(want);
  });

  it('stops before a stop string, streamed and not', async () => {
    const { client } = await start(trained);
    const full = (await client.completions.create({ model: 'm', prompt: 'One day, a little', max_tokens: 40, temperature: 0 })).choices[0]!.text;
    // a stop string from the middle of the greedy reply
    const stop = full.slice(12, 15);
    expect(stop.length).toBe(3);
    const cut = full.slice(0, full.indexOf(stop));
    const r = await client.completions.create({ model: 'm', prompt: 'One day, a little', max_tokens: 40, temperature: 0, stop: ['not in it at all', stop] });
    expect(r.choices[0]).toMatchObject({ text: cut, finish_reason: 'stop' });
    let text = '';
    for await (const c of await client.completions.create({ model: 'm', prompt: 'One day, a little', max_tokens: 40, temperature: 0, stop, stream: true })) text += c.choices[0]!.text;
    expect(text).toBe(cut);
  });

  it('refuses bad requests in the OpenAI error shape with the right status', async () => {
    const { s, client } = await start(tiny, { id: 'tiny', maxBodyBytes: 4096 });
    const err = async (p: Promise<unknown>) => p.then(() => { throw new Error('expected an error'); }, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    const notFound = await err(client.completions.create({ model: 'gpt-4', prompt: 'hi', max_tokens: 2 }));
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect(notFound).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
    const long = await err(client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 200 }));
    expect(long).toBeInstanceOf(OpenAI.BadRequestError);
    expect(long).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'max_tokens' });
    expect(long.message).toContain(`maximum context length is ${tiny.capacity} tokens`);
    expect(await err(client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 2, n: 2 }))).toMatchObject({ status: 400, param: 'n' });
    expect(await err(client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 2, temperature: 3 }))).toMatchObject({ status: 400, param: 'temperature' });
    expect(await err(client.chat.completions.create({ model: 'tiny', messages: [], max_tokens: 2 }))).toMatchObject({ status: 400, param: 'messages' });
    const post = (body: string) => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const malformed = await post('{"model": "tiny", "prompt": ');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_json', param: null } });
    const huge = await post(JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(5000) }));
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: { code: 'request_too_large' } });
    // without a content-length (chunked), the bytes are counted as they come
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write('x'.repeat(1000));
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toMatchObject({ error: { code: 'request_too_large' } });
    expect((await fetch(`${s.url}/v1/nowhere`)).status).toBe(404);
    expect((await fetch(`${s.url}/v1/elsewhere`)).status).toBe(404);
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^archc_requests_total\{path="other",status="404"\} 2$/m);
    expect((await fetch(`${s.url}/v1/completions`)).status).toBe(405);
    // the server still serves after all that
    expect((await client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 2, temperature: 0 })).choices[0]!.finish_reason).toBe('length');
  });

  it('without a tokenizer: completions of token ids (returned as token_ids); text and chat are 400', async () => {
    const d = makeDir('archc-serve-ids-');
    dirs.push(d);
    writeCheckpoint(d, {}, { seed: 13 });
    const bare = await loadModel(d);
    expect(bare.tokenizer).toBeNull();
    const { client } = await start(bare, { noTemplate: true });
    const r = await client.completions.create({ model: 'm', prompt: [5, 17, 42], max_tokens: 9, temperature: 0, return_token_ids: true } as never);
    expect(tokenIds(r.choices[0])).toEqual(await alone(bare, [5, 17, 42], 9));
    expect(r.choices[0]!.text).toBe('');
    expect(await client.completions.create({ model: 'm', prompt: 'text', max_tokens: 2 }).catch((e: unknown) => e)).toMatchObject({ status: 400, code: 'no_tokenizer', param: 'prompt' });
    expect(await client.completions.create({ model: 'm', prompt: [5, bare.vocab], max_tokens: 2 }).catch((e: unknown) => e)).toMatchObject({ status: 400, param: 'prompt' });
    expect(await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)).toMatchObject({ status: 400, code: 'no_tokenizer' });
  });

  it('without a chat template: chat is a clear 400, completions still work', async () => {
    const { client } = await start(trained, { noTemplate: true });
    const e = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x);
    expect(e).toMatchObject({ status: 400, code: 'no_chat_template' });
    expect((e as Error).message).toContain('tokenizer_config.json');
    expect((await client.completions.create({ model: 'm', prompt: 'hi', max_tokens: 3, temperature: 0 })).choices[0]!.text.length).toBeGreaterThan(0);
  });
});

describe('continuous batching', () => {
  const prompts = ['Once upon a time', 'The cat sat', 'Lily wanted to', 'Tom and his dog', 'It was a sunny day', 'She found a box'];
  const lengths = [20, 7, 15, 3, 25, 11];
  const counter = (metrics: string, name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)![1]);

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`6 requests at once, 4 slots (${backend}): each reply equals the same request alone`, async () => {
      const model = backend === 'cpu' ? trained : await loadWasm(trainedDir);
      const { s, client } = await start(model, { slots: 4 });
      const replies = await Promise.all(prompts.map((prompt, i) => client.completions.create({ model: 'm', prompt, max_tokens: lengths[i], temperature: 0, return_token_ids: true } as never)));
      for (const [i, p] of prompts.entries()) expect(tokenIds(replies[i]!.choices[0]), p).toEqual(await alone(model, p, lengths[i]!));
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/^archc_requests_total\{path="\/v1\/completions",status="200"\} 6$/m);
      // the requests shared decode steps: more sequences decoded than steps taken
      expect(counter(metrics, 'archc_decoded_sequences_total')).toBeGreaterThan(counter(metrics, 'archc_decode_steps_total'));
      expect(model.openSequences).toBe(0);
    });
  }

  it('a full queue is 429; a client that disconnects mid-stream frees its slot', async () => {
    const { s, client } = await start(trained, { slots: 1, queue: 1 });
    const first = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 600, temperature: 0, stream: true });
    const it1 = first[Symbol.asyncIterator]();
    await it1.next(); // the first holds the slot
    const second = client.completions.create({ model: 'm', prompt: 'The cat', max_tokens: 4, temperature: 0 });
    const queued = Date.now() + 5000;
    while (s.batcher.queued === 0 && Date.now() < queued) await new Promise((r) => setTimeout(r, 5));
    expect(s.batcher.queued, 'the second waits in the queue').toBe(1);
    const third = await client.completions.create({ model: 'm', prompt: 'The dog', max_tokens: 4, temperature: 0 }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(OpenAI.RateLimitError);
    expect(third).toMatchObject({ status: 429, code: 'queue_full' });
    first.controller.abort();
    // the slot goes back before the next step, so the queued request runs at once
    expect((await second).choices[0]!.text.length).toBeGreaterThan(0);
    const until = Date.now() + 5000;
    while ((trained.openSequences > 0 || s.batcher.running > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(trained.openSequences).toBe(0);
    const made = counter(await (await fetch(`${s.url}/metrics`)).text(), 'archc_completion_tokens_total');
    expect(made, 'the aborted stream stopped early').toBeLessThan(600);
  });
  it('a request cancelled while it waits leaves the queue at once', async () => {
    const { s, client } = await start(trained, { slots: 1, queue: 2 });
    const first = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 600, temperature: 0, stream: true });
    await first[Symbol.asyncIterator]().next();
    const abort = new AbortController();
    const waiting = client.completions.create({ model: 'm', prompt: 'The cat', max_tokens: 4, temperature: 0 }, { signal: abort.signal }).catch((e: unknown) => e);
    const until = Date.now() + 5000;
    while (s.batcher.queued === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(s.batcher.queued).toBe(1);
    abort.abort();
    expect(await waiting).toBeInstanceOf(OpenAI.APIUserAbortError);
    while (s.batcher.queued > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(s.batcher.queued).toBe(0);
    expect(s.batcher.running, 'the first still runs').toBe(1);
    first.controller.abort();
    while (trained.openSequences > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(trained.openSequences).toBe(0);
    expect(logged.filter((l) => / 499 prompt=\d+ cached=0 completion=0 finish=cancelled /.test(l)).length).toBeGreaterThan(0);
  });
});

describe('the state cache', () => {
  it('a follow-up turn restores the conversation and gives the uncached tokens', async () => {
    const { s, client } = await start(trained, { cacheBytes: 64 * 2 ** 20 });
    const turn1 = [{ role: 'user' as const, content: 'Tell me about a little bird.' }];
    const r1 = await client.chat.completions.create({ model: 'm', messages: turn1, max_tokens: 20, temperature: 0 });
    const turn2 = [...turn1, { role: 'assistant' as const, content: r1.choices[0]!.message.content! }, { role: 'user' as const, content: 'What happened next?' }];
    const r2 = await client.chat.completions.create({ model: 'm', messages: turn2, max_tokens: 20, temperature: 0, return_token_ids: true } as never);
    const ids1 = chatIds(trained, turn1);
    const cached = r2.usage!.prompt_tokens_details!.cached_tokens!;
    // at least the first turn's prompt and reply, bar the reply's last token (never fed)
    expect(cached).toBeGreaterThanOrEqual(ids1.length + r1.usage!.completion_tokens - 1);
    expect(cached).toBeLessThan(r2.usage!.prompt_tokens);
    expect(tokenIds(r2.choices[0])).toEqual(await alone(trained, chatIds(trained, turn2), 20));
    expect(s.cache.bytes).toBeGreaterThan(0);
    expect(s.cache.bytes).toBeLessThanOrEqual(64 * 2 ** 20);
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^archc_cache_hits_total 1$/m);
  });

  it('a long shared beginning (a system prompt) read in one piece is resumed by another continuation from its last snapshot', async () => {
    const system = readFileSync(resolve(TINY_A, '../eval-A.txt'), 'utf8').slice(0, 160);
    const [a, c] = ['What is this chapter about?', 'Who is the reader?'].map((q) => chatIds(trained, [{ role: 'system', content: system }, { role: 'user', content: q }]));
    let shared = 0;
    while (a![shared] === c![shared]) shared++;
    expect(shared).toBeGreaterThan(128);
    expect(c!.length, 'one piece of the default 512').toBeLessThan(512);
    for (const every of [64, 0]) {
      const { client } = await start(trained, { cacheBytes: 64 * 2 ** 20, snapshotEvery: every });
      const ask = (ids: number[]) => client.completions.create({ model: 'm', prompt: ids, max_tokens: 6, temperature: 0, return_token_ids: true } as never) as Promise<OpenAI.Completions.Completion>;
      expect((await ask(a!)).usage!.prompt_tokens_details!.cached_tokens).toBe(0);
      const r = await ask(c!);
      // every 64 tokens: from the last snapshot both prompts hold; none inside the prompt: nothing
      expect(r.usage!.prompt_tokens_details!.cached_tokens, `--snapshot-every ${every}`).toBe(every ? Math.floor(shared / every) * every : 0);
      expect(tokenIds(r.choices[0])).toEqual(await alone(trained, c!, 6));
    }
  });
});
