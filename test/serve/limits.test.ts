// `archc serve` under bad clients, on tiny-bamba-a (cpu), in process on ephemeral ports: 500
// connections opened and dropped (half mid-request) beside a slow-loris client (headers a line at a
// time) and a slow body, while a normal request still gets the reply it gets alone; the slow ones
// are cut off with 408 within their timeouts and every socket goes. Connections past the limit are
// shed as they come; a request past its time is cancelled (503 request_timeout, whole or streamed)
// and frees its slot.

import { type Socket, connect } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, type ServeOptions, serve } from '../../cli/serve/server.ts';
import type { Model } from '../../runtime/model.ts';
import { loadModel, removeDir } from '../helpers/checkpoints.ts';
import { trainedWithTemplate } from './setup.ts';

let dir: string;
let model: Model;
const servers: RunningServer[] = [];

beforeAll(async () => {
  dir = trainedWithTemplate('archc-limits-');
  model = await loadModel(dir);
});
afterAll(async () => {
  for (const s of servers) await s.close();
  removeDir(dir);
});

async function start(o: Partial<ServeOptions>) {
  const s = await serve(model, '127.0.0.1', 0, { id: 'm', template: null, cacheBytes: 0, ...o });
  servers.push(s);
  return { s, port: Number(new URL(s.url).port), client: new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A raw client writing `parts` one every `gapMs`: what it got back, and after how long the server closed it. */
function trickle(port: number, parts: readonly string[], gapMs: number): Promise<{ data: string; ms: number }> {
  const t0 = performance.now();
  const sock = connect(port, '127.0.0.1');
  let data = '';
  let i = 0;
  sock.on('data', (c: Buffer) => (data += c.toString()));
  sock.on('error', () => {});
  const timer = setInterval(() => i < parts.length && !sock.destroyed && sock.write(parts[i++]!), gapMs);
  return new Promise((resolve) => sock.on('close', () => {
    clearInterval(timer);
    resolve({ data, ms: performance.now() - t0 });
  }));
}

async function alone(prompt: string, maxTokens: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of model.generate(prompt, { maxTokens, temperature: 0 })) if (t.id >= 0) ids.push(t.id);
  return ids;
}

describe('limits and shedding', () => {
  it('500 connections dropped, a slow-loris and a slow body: cut off with 408, a normal request still served', async () => {
    const { s, port, client } = await start({ headersTimeoutMs: 1000, bodyTimeoutMs: 2000 });
    const loris = trickle(port, ['POST /v1/completions HTTP/1.1\r\n', 'Host: x\r\n', ...Array.from({ length: 300 }, (_, i) => `X-${i}: y\r\n`)], 100);
    const slowBody = trickle(port, ['POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{', ...Array.from({ length: 300 }, () => ' ')], 100);
    const flood = Promise.all(Array.from({ length: 500 }, (_, i) => new Promise<void>((resolve) => {
      const sock: Socket = connect(port, '127.0.0.1', () => {
        if (i % 2) sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"model":');
        sock.destroy();
      });
      sock.on('error', () => {});
      sock.on('close', () => resolve());
    })));
    const prompt = 'Once upon a time';
    const [normal] = await Promise.all([
      (client.completions.create({ model: 'm', prompt, max_tokens: 12, temperature: 0, return_token_ids: true } as never) as Promise<OpenAI.Completions.Completion>),
      flood,
    ]);
    expect((normal.choices[0] as unknown as { token_ids: number[] }).token_ids).toEqual(await alone(prompt, 12));
    const [l, b] = await Promise.all([loris, slowBody]);
    // cut off after the timeout (node looks every 250 ms), long before the client would have finished
    expect(l.data).toMatch(/^HTTP\/1\.1 408 /);
    expect(l.ms).toBeGreaterThanOrEqual(1000);
    expect(l.ms).toBeLessThan(8000);
    expect(b.data).toMatch(/^HTTP\/1\.1 408 /);
    expect(b.ms).toBeGreaterThanOrEqual(2000);
    expect(b.ms).toBeLessThan(10_000);
    // every dropped socket is gone (the client's kept-alive one may stay), no slot is held
    await until('the sockets to close', async () => (await new Promise<number>((r) => s.server.getConnections((_, n) => r(n)))) <= 1);
    expect(s.batcher.running).toBe(0);
    expect(model.openSequences).toBe(0);
    expect((await client.completions.create({ model: 'm', prompt, max_tokens: 3, temperature: 0 })).choices[0]!.finish_reason).toBe('length');
  });

  it('connections past --max-connections are dropped as they come; the server serves once they go', async () => {
    const { port, client } = await start({ maxConnections: 8 });
    let shed = 0;
    const socks = await Promise.all(Array.from({ length: 12 }, () => new Promise<Socket>((resolve) => {
      const sock = connect(port, '127.0.0.1', () => resolve(sock));
      sock.on('error', () => {});
      sock.on('close', () => shed++);
    })));
    await until('4 sockets shed', () => shed >= 4);
    await new Promise((r) => setTimeout(r, 200));
    expect(shed).toBe(4);
    for (const sock of socks) sock.destroy();
    await until('the sockets to close', () => shed === 12);
    expect((await client.completions.create({ model: 'm', prompt: 'Hi', max_tokens: 3, temperature: 0 })).choices[0]!.finish_reason).toBe('length');
  });

  it('a request past --request-timeout is cancelled with 503 request_timeout, whole or streamed, and frees its slot', async () => {
    const logged: string[] = [];
    const { s, client } = await start({ requestTimeoutMs: 150, log: (line) => logged.push(line) });
    const long = { model: 'm', prompt: 'Once upon a time', max_tokens: model.capacity - 40, temperature: 0 };
    const whole = await client.completions.create(long).then(() => null, (e: unknown) => e);
    expect(whole).toBeInstanceOf(OpenAI.InternalServerError);
    expect(whole).toMatchObject({ status: 503, code: 'request_timeout' });
    let got = 0;
    const streamed = await (async () => {
      for await (const c of await client.completions.create({ ...long, stream: true })) got += c.choices[0]?.text.length ?? 0;
    })().then(() => null, (e: unknown) => e);
    expect(streamed).toBeInstanceOf(OpenAI.APIError);
    expect((streamed as Error).message).toContain('--request-timeout');
    await until('the slots to free', () => s.batcher.running === 0 && model.openSequences === 0);
    expect(logged.filter((l) => l.startsWith('POST /v1/completions 503 the request took over 0.15 s'))).toHaveLength(2);
  });
});
