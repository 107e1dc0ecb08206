// `archc serve` benchmark on a trained checkpoint (default ../shared/models/tiny-bamba-a/f32, with a
// chat template added to a temp copy), wasm backend, in process on an ephemeral port:
//  1. the state cache: a conversation whose first user turn is ~N tokens of text; the second turn's
//     time to first token with the cache and without (a server with --cache-bytes 0), and whether its
//     tokens are the same (the capacity is raised past the model's context to hold N);
//  2. continuous batching: aggregate decode tokens/s of 1 and of 8 concurrent streaming requests.
// Run: npx tsx bench/serve.ts [checkpoint-dir] [prompt-tokens]   (default 2000; writes bench/results/serve.json)
//   [--format q8|q4|q8a8|q4a8] (quantised on load; default the checkpoint's own weights) [--streams-only]
//   (2 alone) [--tokens 128] (per stream) [--rounds 1] (1 and 8 streams alternated, the median ratio)
//   [--ssm-state bf16] (the SSM states kept in bf16: runtime/program.ts withSsmState). A checkpoint without a tokenizer (bench/decode.ts' ~100M of
//   random weights: ~/.cache/archc-bench/ck/bamba-100m) takes tiny-bamba-a's, its vocabulary padded
//   to the model's with tokens that decode as " w<id>" (encoding never makes them).

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { withSsmState } from '../runtime/program.ts';
import { Model } from '../runtime/model.ts';
import { loadChatTemplate } from '../cli/serve/chat.ts';
import { serve } from '../cli/serve/server.ts';
import { sseEvents } from './sse.ts';

const ROOT = join(import.meta.dirname, '..');
const TINY = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const flag = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1]! : undefined);
const positional = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !['--format', '--tokens', '--rounds', '--ssm-state'].includes(all[i - 1]!));
const src = resolve(positional[0] ?? TINY);
const promptTokens = Number(positional[1] ?? 2000);
const format = flag('--format'), STREAMS_ONLY = process.argv.includes('--streams-only'), TOKENS = Number(flag('--tokens') ?? 128), ROUNDS = Number(flag('--rounds') ?? 1);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1)) throw new Error(`--rounds: a count from 1, got ${flag('--rounds')}`);
if (format && !['q8', 'q4', 'q8a8', 'q4a8'].includes(format)) throw new Error(`--format: q8, q4, q8a8 or q4a8, got ${format}`);
const SSM_STATE = flag('--ssm-state') ?? 'f32';
if (SSM_STATE !== 'f32' && SSM_STATE !== 'bf16') throw new Error(`--ssm-state: f32 or bf16, got ${SSM_STATE}`);
const TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

const dir = mkdtempSync(join(tmpdir(), 'archc-bench-serve-'));
cpSync(src, dir, { recursive: true });
if (!existsSync(join(dir, 'tokenizer.json'))) {
  const tok = JSON.parse(readFileSync(join(TINY, 'tokenizer.json'), 'utf8'));
  const vocab = (loadConfig(join(dir, 'config.json')).config as { vocab_size: number }).vocab_size;
  for (let id = Math.max(...Object.values(tok.model.vocab) as number[], ...tok.added_tokens.map((t: { id: number }) => t.id)) + 1; id < vocab; id++) tok.model.vocab[`Ġw${id}`] = id;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok));
  cpSync(join(TINY, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
}
const cfgPath = join(dir, 'tokenizer_config.json');
writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), chat_template: TEMPLATE }));
const c = compileFile(join(ROOT, 'models', 'bamba.arch'), { hfConfigData: loadConfig(join(dir, 'config.json')) });
const program = withSsmState(lowerToProgram(c.graph, c.bindings), SSM_STATE);
const model = await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), capacity: Math.max(1024, promptTokens + 512),
  ...(format ? { quantize: format.slice(0, 2) as 'q8' | 'q4', activations: format.endsWith('a8') ? 'q8' as const : 'f32' as const } : {}) });
const template = loadChatTemplate(dir);
const text = readFileSync(join(existsSync(join(src, '..', 'eval-A.txt')) ? src : TINY, '..', 'eval-A.txt'), 'utf8');

/** One streamed chat request: time to first token, tokens/s after it, the reply's text and ids.
 *  Through node:http rather than fetch: the clients share the server's thread here, and fetch's
 *  web streams cost several times more a chunk, time the server's clients elsewhere would not take. */
function chat(url: string, messages: { role: string; content: string }[], maxTokens: number) {
  const t0 = performance.now();
  const body = JSON.stringify({ model: 'm', messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true }, return_token_ids: true });
  return new Promise<{ ttft: number; end: number; first: number; reply: string; ids: number[]; usage: { completion_tokens: number; prompt_tokens_details: { cached_tokens: number } }; times: number[] }>((resolve, reject) => {
    const req = request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.setEncoding('utf8');
      let first = 0, reply = '', buf = '';
      let ids: number[] = [];
      // when each token arrived (a chunk's token_ids, else one a chunk)
      const times: number[] = [];
      let usage: { completion_tokens: number; prompt_tokens_details: { cached_tokens: number } } | undefined;
      res.on('data', (chunk: string) => {
        buf += chunk;
        if (res.statusCode !== 200) return;
        const { events, rest } = sseEvents(buf);
        buf = rest;
        for (const ev of events) {
          const piece = ev.choices?.[0]?.delta?.content;
          if (piece && !first) first = performance.now();
          reply += piece ?? '';
          if (piece) for (let k = 0; k < (ev.choices?.[0]?.token_ids?.length ?? 1); k++) times.push(performance.now());
          ids = ev.choices?.[0]?.token_ids ?? ids;
          usage = ev.usage ?? usage;
        }
      });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${res.statusCode}: ${buf}`));
        else resolve({ ttft: (first - t0) / 1000, end: performance.now(), first, reply, ids, usage: usage!, times });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// 1. the state cache on a long conversation
const cacheRows: Record<string, unknown>[] = [];
const user1 = text.slice(0, promptTokens - 20);
for (const cacheBytes of STREAMS_ONLY ? [] : [256 * 2 ** 20, 0]) {
  const s = await serve(model, '127.0.0.1', 0, { id: 'm', template, cacheBytes, slots: 8 });
  const t1 = await chat(s.url, [{ role: 'user', content: user1 }], 16);
  const turn2 = [{ role: 'user', content: user1 }, { role: 'assistant', content: t1.reply }, { role: 'user', content: 'What happened next?' }];
  const t2 = await chat(s.url, turn2, 16);
  cacheRows.push({ cacheBytes, firstTurnTtft: t1.ttft, secondTurnTtft: t2.ttft, cachedTokens: t2.usage.prompt_tokens_details.cached_tokens, ids: t2.ids });
  await s.close();
}
const [on, off] = cacheRows as { secondTurnTtft: number; ids: number[]; cachedTokens: number }[];
if (on) console.log(`state cache: second turn (${promptTokens}-token conversation) first token after ${off!.secondTurnTtft.toFixed(3)} s without the cache, ${on!.secondTurnTtft.toFixed(3)} s with it (${on!.cachedTokens} tokens restored): ${(off!.secondTurnTtft / on!.secondTurnTtft).toFixed(1)}x; tokens identical: ${JSON.stringify(on!.ids) === JSON.stringify(off!.ids)}`);

// 2. aggregate decode tokens/s at 1 and 8 concurrent streams: over the whole span (from the first
// stream's first token, so the others' prefill counts against it), and over the window in which
// every stream decodes (from the last first token to the first stream's end), with the share of that
// window the model's decode steps took (the rest: sampling, SSE, the event loop)
const throughput: Record<string, number> = {};
const steps: [number, number][] = [];
const decodeAsync = model.decodeAsync.bind(model);
model.decodeAsync = async (...a: Parameters<Model['decodeAsync']>) => {
  const t0 = performance.now();
  const r = await decodeAsync(...a);
  steps.push([t0, performance.now()]);
  return r;
};
const s = await serve(model, '127.0.0.1', 0, { id: 'm', template, cacheBytes: 0, slots: 8 });
// `--rounds N`: 1 and 8 streams alternate N times; the ratios are those of each round, and their median
const ratios: [number, number][] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const n of [1, 8]) {
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => chat(s.url, [{ role: 'user', content: text.slice(i * 97, i * 97 + 60) }], TOKENS)));
    const tokens = rs.reduce((a, r) => a + r.usage.completion_tokens - 1, 0);
    if (rs.some((r) => r.usage.completion_tokens < TOKENS)) console.log(`(streams stopped early: ${rs.map((r) => r.usage.completion_tokens).join(', ')} tokens)`);
    const span = (Math.max(...rs.map((r) => r.end)) - Math.min(...rs.map((r) => r.first))) / 1000;
    throughput[`streams${n}`] = tokens / span;
    const [w0, w1] = [Math.max(...rs.map((r) => r.first)), Math.min(...rs.map((r) => r.end))];
    const inWindow = rs.reduce((a, r) => a + r.times.filter((t) => t > w0 && t <= w1).length, 0);
    const stepMs = steps.reduce((a, [s0, s1]) => a + Math.max(0, Math.min(s1, w1) - Math.max(s0, w0)), 0);
    throughput[`streams${n}Steady`] = inWindow / ((w1 - w0) / 1000);
    steps.length = 0;
    console.log(`${n} concurrent stream${n > 1 ? 's' : ''}: ${(tokens / span).toFixed(1)} decode tokens/s in all; ${throughput[`streams${n}Steady`]!.toFixed(1)} while all ${n} decode (${(w1 - w0).toFixed(0)} ms, ${(100 * stepMs / (w1 - w0)).toFixed(1)} % of it in decode steps)`);
  }
  ratios.push([throughput.streams8! / throughput.streams1!, throughput.streams8Steady! / throughput.streams1Steady!]);
  console.log(`8 streams / 1 stream: ${ratios.at(-1)![0].toFixed(2)}x (while all decode: ${ratios.at(-1)![1].toFixed(2)}x)`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
await s.close();
if (ROUNDS > 1) console.log(`median of ${ROUNDS} rounds: ${median(ratios.map((r) => r[0])).toFixed(2)}x (while all decode: ${median(ratios.map((r) => r[1])).toFixed(2)}x); while all decode, each round: ${ratios.map((r) => r[1].toFixed(2)).join(', ')}`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'serve.json'), JSON.stringify({ checkpoint: src, format: format ?? 'stored', ssmState: SSM_STATE, promptTokens, threads: model.threads, cache: cacheRows.map(({ ids, ...r }) => r), throughput, ratios }, null, 2) + '\n');
rmSync(dir, { recursive: true, force: true });
process.exit(0);
