// `archc serve` under load, in process on an ephemeral port (loopback only, bounded in time):
// C clients (default 32) each send requests in a loop for S seconds (default 60): greedy completions
// of prompts cut from eval-A.txt (some extending others, so the state cache hits), streamed or
// whole, max_tokens from 4 to 48, and one in ten aborted after a few streamed chunks. Every finished
// reply is checked against Model.generate of its prompt alone (computed before the load); at the end
// the slots must all be free and the cache within its bound. With [flood] > 0, bad clients run beside
// them: `flood` connections opened and dropped in waves of 1000 at once (half mid-request), and 8
// slow-loris clients sending a header line every second, each cut off by the 5 s headers timeout (408)
// and coming back; the good clients' results must not change.
// Run: npx tsx bench/serve-load.ts [clients] [seconds] [checkpoint-dir] [flood]   (writes bench/results/serve-load.json)

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { join, resolve } from 'node:path';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { Model } from '../runtime/model.ts';
import { createRng } from '../runtime/rng.ts';
import { serve } from '../cli/serve/server.ts';
import { sseEvents } from './sse.ts';

const ROOT = join(import.meta.dirname, '..');
const clients = Number(process.argv[2] ?? 32);
const seconds = Number(process.argv[3] ?? 60);
const dir = resolve(process.argv[4] ?? join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32'));
const flood = Number(process.argv[5] ?? 0);
const MAX = 48;
const CACHE = 32 * 2 ** 20;

const c = compileFile(join(ROOT, 'models', 'bamba.arch'), { hfConfigData: loadConfig(join(dir, 'config.json')) });
const program = lowerToProgram(c.graph, c.bindings);
const model = await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program) });
const text = readFileSync(join(dir, '..', 'eval-A.txt'), 'utf8');
// 8 beginnings, each also extended: a prompt and its extension share the state cache
const prompts = Array.from({ length: 8 }, (_, i) => text.slice(i * 1500, i * 1500 + 40 + 20 * i)).flatMap((p, i) => [p, p + text.slice(i * 1500 + 40 + 20 * i, i * 1500 + 100 + 20 * i)]);
const want = new Map<string, number[]>();
for (const p of prompts) {
  const ids: number[] = [];
  for await (const t of model.generate(p, { maxTokens: MAX, temperature: 0 })) if (t.id >= 0) ids.push(t.id);
  want.set(p, ids);
}

const s = await serve(model, '127.0.0.1', 0, { id: 'm', template: null, slots: 8, queue: 64, cacheBytes: CACHE, headersTimeoutMs: 5000, maxConnections: 4096 });
const tally = { requests: 0, ok: 0, aborted: 0, refused429: 0, failed: 0, mismatched: 0, mismatchedCached: 0, cachedRequests: 0, tokens: 0 };
const failures: string[] = [];
const end = Date.now() + seconds * 1000;

async function client(k: number): Promise<void> {
  const rng = createRng(1000 + k);
  while (Date.now() < end) {
    const prompt = prompts[Math.floor(rng.next() * prompts.length)]!;
    const maxTokens = 4 + Math.floor(rng.next() * (MAX - 3));
    const stream = rng.next() < 0.5;
    const abortAfter = stream && rng.next() < 0.1 ? 1 + Math.floor(rng.next() * 4) : -1;
    tally.requests++;
    const ctl = new AbortController();
    open.set(k, { since: Date.now(), what: `client ${k}: ${stream ? 'stream' : 'whole'}, max ${maxTokens}, abort after ${abortAfter}, ${JSON.stringify(prompt.slice(0, 20))}` });
    try {
      const res = await fetch(`${s.url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: ctl.signal,
        body: JSON.stringify({ model: 'm', prompt, max_tokens: maxTokens, temperature: 0, stream, stream_options: { include_usage: true }, return_token_ids: true }),
      });
      if (res.status === 429) {
        tally.refused429++;
        await res.text();
        continue;
      }
      if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
      let ids: number[] = [];
      let cached = 0;
      if (!stream) {
        const body = await res.json() as { choices: { token_ids: number[] }[]; usage: { prompt_tokens_details: { cached_tokens: number } } };
        ids = body.choices[0]!.token_ids;
        cached = body.usage.prompt_tokens_details.cached_tokens;
      } else {
        let buf = '', events = 0;
        for await (const chunk of res.body!) {
          const got = sseEvents(buf + Buffer.from(chunk).toString());
          buf = got.rest;
          for (const ev of got.events) {
            if (ev.error) throw new Error(JSON.stringify(ev.error));
            ids = ev.choices?.[0]?.token_ids ?? ids;
            cached = ev.usage?.prompt_tokens_details?.cached_tokens ?? cached;
            // the client goes away: it reads nothing more (an aborted body whose last bytes had
            // arrived already may never settle its next read on Node 20's fetch)
            if (++events === abortAfter) {
              ctl.abort();
              throw new Error('aborted by the client');
            }
          }
        }
      }
      tally.ok++;
      tally.tokens += ids.length;
      if (cached > 0) tally.cachedRequests++;
      const expected = want.get(prompt)!.slice(0, maxTokens);
      if (JSON.stringify(ids) !== JSON.stringify(expected)) {
        tally.mismatched++;
        if (cached > 0) tally.mismatchedCached++;
        if (failures.length < 10) failures.push(`mismatch (cached ${cached}) for ${JSON.stringify(prompt.slice(0, 30))} max ${maxTokens}: ${ids.length} ids`);
      }
    } catch (e) {
      if (ctl.signal.aborted) tally.aborted++;
      else {
        tally.failed++;
        if (failures.length < 10) failures.push(String(e));
      }
    } finally {
      open.delete(k);
    }
  }
}

/** Bad clients until the end: connections opened and dropped in waves, and slow-loris clients. */
const bad = { opened: 0, lorisCut408: 0, lorisOther: 0 };
async function badClients(): Promise<void> {
  const port = Number(new URL(s.url).port);
  const loris = async () => {
    while (Date.now() < end) {
      const got = await new Promise<string>((resolve) => {
        const sock = connect(port, '127.0.0.1');
        let data = '';
        sock.on('data', (c: Buffer) => (data += c.toString()));
        sock.on('error', () => {});
        sock.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\n');
        let n = 0;
        const timer = setInterval(() => (Date.now() < end ? sock.write(`X-${n++}: y\r\n`) : sock.destroy()), 1000);
        sock.on('close', () => {
          clearInterval(timer);
          resolve(data);
        });
      });
      if (/^HTTP\/1\.1 408 /.test(got)) bad.lorisCut408++;
      else if (Date.now() < end) bad.lorisOther++;
    }
  };
  const waves = async () => {
    while (bad.opened < flood && Date.now() < end) {
      await Promise.all(Array.from({ length: Math.min(1000, flood - bad.opened) }, (_, i) => new Promise<void>((resolve) => {
        const sock: Socket = connect(port, '127.0.0.1', () => {
          if (i % 2) sock.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 80\r\n\r\n{"model":');
          sock.destroy();
        });
        sock.on('error', () => {});
        sock.on('close', () => resolve());
      })));
      bad.opened += Math.min(1000, flood - bad.opened);
    }
  };
  await Promise.all([waves(), ...Array.from({ length: 8 }, loris)]);
}

// every 10 s: progress, and what is in flight (a request open for over 30 s is named)
const open = new Map<number, { since: number; what: string }>();
const watch = setInterval(() => {
  const stuck = [...open.values()].filter((r) => Date.now() - r.since > 30_000).map((r) => r.what);
  process.stderr.write(`${new Date().toISOString()} ok ${tally.ok} aborted ${tally.aborted} failed ${tally.failed}; in flight ${open.size}, queued ${s.batcher.queued}, running ${s.batcher.running}, open sequences ${model.openSequences}${stuck.length ? `; open over 30 s: ${stuck.join(' | ')}` : ''}\n`);
}, 10_000);
const t0 = performance.now();
await Promise.all([...Array.from({ length: clients }, (_, k) => client(k)), ...(flood > 0 ? [badClients()] : [])]);
const wall = (performance.now() - t0) / 1000;
clearInterval(watch);
const until = Date.now() + 10_000;
while ((model.openSequences > 0 || s.batcher.running > 0) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
const result = { clients, seconds: wall, ...tally, ...(flood > 0 ? { bad } : {}), tokensPerSecond: tally.tokens / wall, openSequencesAfter: model.openSequences, cacheBytes: s.cache.bytes, cacheBound: CACHE, failures };
console.log(JSON.stringify(result, null, 2));
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'serve-load.json'), JSON.stringify(result, null, 2) + '\n');
await s.close();
process.exit(tally.failed || tally.mismatched || bad.lorisOther || model.openSequences || s.cache.bytes > CACHE ? 1 : 0);
