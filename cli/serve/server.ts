// `archc serve`'s HTTP server on node:http: the OpenAI routes (chat and text completions, streamed as
// server-sent events or whole; the model list), /health and /metrics, and the chat page at /. Bodies
// are read up to a byte bound (413 past it) and parsed as JSON (400); the requests run in the Batcher
// (429 when its queue is full); a client that goes away cancels its request, which frees its slot
// before the next step.
// One log line per request: method, path, status, tokens (cached), finish, milliseconds.

import { existsSync, readFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Model } from '../../runtime/model.ts';
import { Batcher, type JobResult, QueueFull } from './batcher.ts';
import { StateCache } from './cache.ts';
import type { ChatTemplate } from './chat.ts';
import { type TokenLogprob, chatLogprobs, completionLogprobs, tokenText } from './logprobs.ts';
import { ApiError, type Parsed, type ServedModel, checkBody, parseChat, parseCompletion } from './openai.ts';

export interface ServeOptions {
  /** The id clients name in `model` (default: the checkpoint directory's name). */
  readonly id: string;
  readonly template: ChatTemplate | null;
  /** Sequences decoding at once (default 8). */
  readonly slots?: number;
  /** Requests waiting for a slot; more get 429 (default 64). */
  readonly queue?: number;
  /** Bytes of the state cache (0: off; default 256 MiB). */
  readonly cacheBytes?: number;
  /** Bytes of one request body; more get 413 (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** Prompt tokens read between two decode steps, at most (default 512): a longer prompt is read in
   *  pieces, so the streams going are not held up for all of it. */
  readonly prefillChunk?: number;
  /** Tokens one reply may ask for (default 4096). */
  readonly maxTokens?: number;
  /** A prompt's state is cached every this many tokens inside it (default 512; 0: at its end only). */
  readonly snapshotEvery?: number;
  /** Connections open at once; more are dropped as they come (default 1024). */
  readonly maxConnections?: number;
  /** Milliseconds a client has to send a request's headers (default 30 s), and the whole request
   *  (default 60 s): a slower client gets 408 and is cut off. */
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  /** Milliseconds a request may take, queue and reply (default 10 min; 0: no limit): then it is
   *  cancelled, its slot freed, and it ends with 503 \`request_timeout\`. */
  readonly requestTimeoutMs?: number;
  /** Where each request's line goes (default: nowhere). */
  readonly log?: (line: string) => void;
}

export interface RunningServer {
  readonly server: Server;
  readonly url: string;
  readonly batcher: Batcher;
  readonly cache: StateCache;
  close(): Promise<void>;
}

/** Starts serving `model` on host:port (port 0: an ephemeral one; `url` says which). */
export async function serve(model: Model, host: string, port: number, o: ServeOptions): Promise<RunningServer> {
  const cache = new StateCache(o.cacheBytes ?? 256 * 2 ** 20);
  // pieces of a prompt end on multiples of the SSD's chunk (a Mamba model's `chunk` param), where
  // reading it in pieces takes the same sums as reading it whole
  const chunk = model.program.params.chunk;
  const align = typeof chunk === 'number' && chunk > 0 ? chunk : 1;
  const batcher = new Batcher(model, { slots: o.slots ?? 8, queue: o.queue ?? 64, cache, prefillChunk: o.prefillChunk ?? 512, align, snapshotEvery: o.snapshotEvery ?? 512 });
  const served: ServedModel = { id: o.id, model, template: o.template, maxTokens: o.maxTokens ?? 4096 };
  const maxBody = o.maxBodyBytes ?? 2 ** 20;
  const created = Math.floor(Date.now() / 1000);
  const requests = new Map<string, number>(); // "route status" -> count

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<{ status: number; note: string }> => {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = ROUTES[path];
    if (!route) throw new ApiError(404, `no route ${path}`, null, 'not_found');
    if (req.method !== route) throw new ApiError(405, `${path} takes ${route}, not ${req.method}`, null, 'method_not_allowed');
    if (path === '/') return page(res);
    if (path === '/health') return json(res, 200, { status: 'ok' });
    if (path === '/v1/models') return json(res, 200, { object: 'list', data: [{ id: served.id, object: 'model', created, owned_by: 'archc' }] });
    if (path === '/metrics') return text(res, 200, metrics(batcher, cache, model, requests));
    const body = checkBody(await readJson(req, maxBody), served);
    const chat = path === '/v1/chat/completions';
    const parsed = chat ? parseChat(body, served) : parseCompletion(body, served);
    return complete(res, batcher, parsed, chat, served, o.requestTimeoutMs ?? 600_000);
  };

  // a slow or silent client is cut off (408) rather than holding a socket for ever; node looks for
  // them every connectionsCheckingInterval
  const headersTimeout = o.headersTimeoutMs ?? 30_000;
  const requestTimeout = Math.max(headersTimeout, o.bodyTimeoutMs ?? 60_000);
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, headersTimeout / 4));
  const server = createServer({ headersTimeout, requestTimeout, connectionsCheckingInterval }, (req, res) => {
    const t0 = performance.now();
    handle(req, res).catch((e) => {
      const err = e instanceof ApiError ? e : e instanceof QueueFull ? new ApiError(429, e.message, null, 'queue_full')
        : new ApiError(500, e instanceof Error ? e.message : String(e), null, 'internal_error');
      if (err.status === 413) res.setHeader('connection', 'close');
      if (!res.headersSent) return json(res, err.status, err.body, err.message);
      // a stream already under way: the error as its last event
      if (!res.writableEnded) res.end(`data: ${JSON.stringify(err.body)}\n\n`);
      return { status: err.status, note: err.message };
    }).then(({ status, note }) => {
      // counted by route (any other path is `other`: a client cannot grow the table)
      const path = (req.url ?? '/').split('?')[0]!;
      const key = `${path in ROUTES ? path : 'other'} ${status}`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
      const url = (req.url ?? '').length > 200 ? `${req.url!.slice(0, 197)}...` : req.url;
      o.log?.([req.method, url, status, note, `${(performance.now() - t0).toFixed(0)} ms`].filter((x) => x !== '').join(' '));
    });
  });
  // past this many sockets, a new one is closed as it comes (shed, not queued)
  server.maxConnections = o.maxConnections ?? 1024;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  return {
    server, url, batcher, cache,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const ROUTES: Readonly<Record<string, string>> = {
  '/': 'GET', '/health': 'GET', '/metrics': 'GET', '/v1/models': 'GET', '/v1/chat/completions': 'POST', '/v1/completions': 'POST',
};

/** One completion: whole, or as server-sent events while it is made. */
async function complete(res: ServerResponse, batcher: Batcher, p: Parsed, chat: boolean, served: ServedModel, timeoutMs: number): Promise<{ status: number; note: string }> {
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const head = { id, object: chat ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(Date.now() / 1000), model: served.id };
  const names = tokenText(served.model.tokenizer);
  const logprobs = (lps: readonly TokenLogprob[] | undefined) => p.spec.logprobs === undefined || !lps ? null
    : chat ? chatLogprobs(lps, names) : completionLogprobs(lps, names);
  const choice = (textPart: string, finish: string | null, lps?: readonly TokenLogprob[]) => chat
    ? { index: 0, delta: finish === null ? { content: textPart } : {}, logprobs: logprobs(lps), finish_reason: finish }
    : { index: 0, text: textPart, logprobs: logprobs(lps), finish_reason: finish };
  const abort = new AbortController();
  // the client went away before the reply ended: cancel (the slot is freed before the next step)
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  let onText = (_: string, __: readonly TokenLogprob[]) => {};
  if (p.stream) {
    onText = (piece, lps) => sse(res, { ...head, choices: [choice(piece, null, lps)] });
  }
  const job = batcher.submit(p.spec, (piece, lps) => onText(piece, lps), abort.signal);
  // past the request's time: cancelled like a disconnect, then answered with the error
  let timedOut = false;
  const timer = timeoutMs > 0 ? setTimeout(() => { timedOut = true; abort.abort(); }, timeoutMs) : null;
  if (p.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    if (chat) sse(res, { ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
  }
  const r = await job.finally(() => timer && clearTimeout(timer));
  const note = `prompt=${r.promptTokens} cached=${r.cachedTokens} completion=${r.ids.length} finish=${r.finish}`;
  if (timedOut && r.finish === 'cancelled') throw new ApiError(503, `the request took over ${timeoutMs / 1000} s (--request-timeout); ${note}`, null, 'request_timeout');
  if (r.finish === 'cancelled') return { status: 499, note };
  const usage = usageOf(r);
  const ids = p.returnTokenIds ? { token_ids: r.ids } : {};
  if (p.stream) {
    sse(res, { ...head, choices: [{ ...choice('', r.finish), ...ids }] });
    if (p.includeUsage) sse(res, { ...head, choices: [], usage });
    res.end('data: [DONE]\n\n');
    return { status: 200, note };
  }
  const whole = chat
    ? { index: 0, message: { role: 'assistant', content: r.text }, logprobs: logprobs(r.logprobs), finish_reason: r.finish, ...ids }
    : { index: 0, text: r.text, logprobs: logprobs(r.logprobs), finish_reason: r.finish, ...ids };
  return json(res, 200, { ...head, object: chat ? 'chat.completion' : 'text_completion', choices: [whole], usage }, note);
}

function usageOf(r: JobResult) {
  return {
    prompt_tokens: r.promptTokens, completion_tokens: r.ids.length, total_tokens: r.promptTokens + r.ids.length,
    prompt_tokens_details: { cached_tokens: r.cachedTokens },
  };
}

/** The chat page (page.html beside this file, in a generated package too; the CLI's bundle in dist/
 *  finds it under cli/serve/), read once. */
let pageHtml: string | undefined;
function page(res: ServerResponse): { status: number; note: string } {
  if (pageHtml === undefined) {
    // @ts-ignore TS1470: a generated package compiles this before its package.json says "type": "module"; the output is ESM
    const here: string = import.meta.url;
    pageHtml = readFileSync(['./page.html', '../cli/serve/page.html'].map((p) => new URL(p, here)).find((u) => existsSync(u)) ?? new URL('./page.html', here), 'utf8');
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(pageHtml), 'x-content-type-options': 'nosniff', 'cache-control': 'no-cache' });
  res.end(pageHtml);
  return { status: 200, note: '' };
}

function sse(res: ServerResponse, data: unknown): void {
  if (!res.writableEnded) res.write(`data: ${JSON.stringify(data)}\n\n`);
}

function json(res: ServerResponse, status: number, body: unknown, note = ''): { status: number; note: string } {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
  return { status, note };
}

function text(res: ServerResponse, status: number, body: string): { status: number; note: string } {
  res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(body) });
  res.end(body);
  return { status, note: '' };
}

/** The body as JSON: 413 past `max` bytes (by content-length, or as counted), 400 when not JSON. */
async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const tooBig = () => new ApiError(413, `the request body is over ${max} bytes (--max-body-bytes)`, null, 'request_too_large');
  if (Number(req.headers['content-length'] ?? 0) > max) throw tooBig();
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw tooBig();
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, null, 'invalid_json');
  }
}

/** Prometheus text exposition: requests by route and status, tokens, queue, batch, cache. */
function metrics(b: Batcher, c: StateCache, m: Model, requests: ReadonlyMap<string, number>): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples.map(([labels, v]) => `${name}${labels} ${v}`));
  };
  metric('archc_requests_total', 'counter', 'HTTP requests answered, by path and status',
    [...requests].map(([k, v]) => { const [path, status] = k.split(' '); return [`{path=${JSON.stringify(path)},status="${status}"}`, v] as [string, number]; }));
  metric('archc_prompt_tokens_total', 'counter', 'prompt tokens of admitted requests', [['', b.counts.promptTokens]]);
  metric('archc_prompt_tokens_cached_total', 'counter', 'prompt tokens restored from the state cache', [['', b.counts.cachedTokens]]);
  metric('archc_completion_tokens_total', 'counter', 'tokens generated', [['', b.counts.completionTokens]]);
  metric('archc_decode_steps_total', 'counter', 'batched decode steps', [['', b.counts.decodeSteps]]);
  metric('archc_decoded_sequences_total', 'counter', 'sequences over all decode steps (over the steps: the mean batch)', [['', b.counts.decodedSequences]]);
  metric('archc_queue_depth', 'gauge', 'requests waiting for a slot', [['', b.queued]]);
  metric('archc_batch_size', 'gauge', 'sequences in the last decode step', [['', b.counts.lastBatch]]);
  metric('archc_running_requests', 'gauge', 'requests holding a slot', [['', b.running]]);
  metric('archc_open_sequences', 'gauge', 'state slots in use', [['', m.openSequences]]);
  metric('archc_cache_hits_total', 'counter', 'requests that restored a cached prefix', [['', c.hits]]);
  metric('archc_cache_misses_total', 'counter', 'requests that found no cached prefix', [['', c.misses]]);
  metric('archc_cache_bytes', 'gauge', 'bytes of saved state in the cache', [['', c.bytes]]);
  metric('archc_cache_entries', 'gauge', 'saved states in the cache', [['', c.size]]);
  return lines.join('\n') + '\n';
}
