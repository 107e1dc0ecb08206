// `archc serve` benchmark on a trained checkpoint (default ../shared/models/tiny-bamba-a/f32, with a
// chat template added to a temp copy), wasm backend, in process on an ephemeral port:
//  1. the state cache: a conversation whose first user turn is ~N tokens of text; the second turn's
//     time to first token with the cache and without (a server with --cache-bytes 0), and whether its
//     tokens are the same (the capacity is raised past the model's context to hold N);
//  2. continuous batching: aggregate decode tokens/s of 1 and of 8 concurrent streaming requests.
// Run: npx tsx bench/serve.ts [checkpoint-dir] [prompt-tokens]   (default 2000; writes bench/results/serve.json)

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { Model } from '../runtime/model.ts';
import { loadChatTemplate } from '../cli/serve/chat.ts';
import { serve } from '../cli/serve/server.ts';

const ROOT = join(import.meta.dirname, '..');
const src = resolve(process.argv[2] ?? join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32'));
const promptTokens = Number(process.argv[3] ?? 2000);
const TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

const dir = mkdtempSync(join(tmpdir(), 'archc-bench-serve-'));
cpSync(src, dir, { recursive: true });
const cfgPath = join(dir, 'tokenizer_config.json');
writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), chat_template: TEMPLATE }));
const c = compileFile(join(ROOT, 'models', 'bamba.arch'), { hfConfigData: loadConfig(join(dir, 'config.json')) });
const program = lowerToProgram(c.graph, c.bindings);
const model = await Model.loadProgram(program, dir, { backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), capacity: Math.max(1024, promptTokens + 512) });
const template = loadChatTemplate(dir);
const text = readFileSync(join(src, '..', 'eval-A.txt'), 'utf8');

/** One streamed chat request: time to first token, tokens/s after it, the reply's text and ids. */
async function chat(url: string, messages: { role: string; content: string }[], maxTokens: number) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true }, return_token_ids: true }),
  });
  if (res.status !== 200) throw new Error(`${res.status}: ${await res.text()}`);
  let first = 0, reply = '', buf = '';
  let ids: number[] = [];
  let usage: { completion_tokens: number; prompt_tokens_details: { cached_tokens: number } } | undefined;
  for await (const chunk of res.body!) {
    buf += Buffer.from(chunk).toString();
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, at).replace(/^data: /, '');
      buf = buf.slice(at + 2);
      if (line === '[DONE]') continue;
      const ev = JSON.parse(line);
      const piece = ev.choices?.[0]?.delta?.content;
      if (piece && !first) first = performance.now();
      reply += piece ?? '';
      ids = ev.choices?.[0]?.token_ids ?? ids;
      usage = ev.usage ?? usage;
    }
  }
  const end = performance.now();
  return { ttft: (first - t0) / 1000, end, first, reply, ids, usage: usage! };
}

// 1. the state cache on a long conversation
const cacheRows: Record<string, unknown>[] = [];
const user1 = text.slice(0, promptTokens - 20);
for (const cacheBytes of [256 * 2 ** 20, 0]) {
  const s = await serve(model, '127.0.0.1', 0, { id: 'm', template, cacheBytes, slots: 8 });
  const t1 = await chat(s.url, [{ role: 'user', content: user1 }], 16);
  const turn2 = [{ role: 'user', content: user1 }, { role: 'assistant', content: t1.reply }, { role: 'user', content: 'What happened next?' }];
  const t2 = await chat(s.url, turn2, 16);
  cacheRows.push({ cacheBytes, firstTurnTtft: t1.ttft, secondTurnTtft: t2.ttft, cachedTokens: t2.usage.prompt_tokens_details.cached_tokens, ids: t2.ids });
  await s.close();
}
const [on, off] = cacheRows as { secondTurnTtft: number; ids: number[]; cachedTokens: number }[];
console.log(`state cache: second turn (${promptTokens}-token conversation) first token after ${off!.secondTurnTtft.toFixed(3)} s without the cache, ${on!.secondTurnTtft.toFixed(3)} s with it (${on!.cachedTokens} tokens restored): ${(off!.secondTurnTtft / on!.secondTurnTtft).toFixed(1)}x; tokens identical: ${JSON.stringify(on!.ids) === JSON.stringify(off!.ids)}`);

// 2. aggregate decode tokens/s at 1 and 8 concurrent streams
const throughput: Record<string, number> = {};
const s = await serve(model, '127.0.0.1', 0, { id: 'm', template, cacheBytes: 0, slots: 8 });
for (const n of [1, 8]) {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => chat(s.url, [{ role: 'user', content: text.slice(i * 97, i * 97 + 60) }], 128)));
  const tokens = rs.reduce((a, r) => a + r.usage.completion_tokens - 1, 0);
  const span = (Math.max(...rs.map((r) => r.end)) - Math.min(...rs.map((r) => r.first))) / 1000;
  throughput[`streams${n}`] = tokens / span;
  console.log(`${n} concurrent stream${n > 1 ? 's' : ''}: ${(tokens / span).toFixed(1)} decode tokens/s in all`);
}
await s.close();
console.log(`8 streams / 1 stream: ${(throughput.streams8! / throughput.streams1!).toFixed(2)}x`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'serve.json'), JSON.stringify({ checkpoint: src, promptTokens, threads: model.threads, cache: cacheRows.map(({ ids, ...r }) => r), throughput }, null, 2) + '\n');
rmSync(dir, { recursive: true, force: true });
process.exit(0);
