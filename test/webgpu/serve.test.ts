// `archc serve` on the webgpu backend (Dawn on SwiftShader where no GPU is named): the server's model
// calls are all asynchronous reads (stepAsync, decodeAsync, saveSequenceAsync), so its replies equal
// Model.generate alone on the same device, batched (at most 4 rows: the matrix-vector passes) and
// resumed from the state cache.

import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { loadChatTemplate } from '../../cli/serve/chat.ts';
import { type RunningServer, serve } from '../../cli/serve/server.ts';
import { Model } from '../../runtime/model.ts';
import { ROOT, makeDir, programFor, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useSwiftShader } from './gpu.ts';

let dir: string;
let model: Model;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  useSwiftShader();
  dir = makeDir('archc-serve-gpu-');
  writeCheckpoint(dir, { vocab: 368 }, { seed: 12 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(dir, f));
  const program = programFor(dir);
  model = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl: renderProgram(program) });
  server = await serve(model, '127.0.0.1', 0, { id: 'm', template: loadChatTemplate(dir), slots: 3, cacheBytes: 2 ** 20 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  removeDir(dir);
});

async function alone(prompt: string | readonly number[], maxTokens: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of model.generate(prompt, { maxTokens, temperature: 0 })) if (t.id >= 0) ids.push(t.id);
  return ids;
}

const tokenIds = (choice: unknown): number[] => (choice as { token_ids: number[] }).token_ids;

describe('archc serve on webgpu', () => {
  it('3 requests at once equal each alone; a follow-up resumes from the cache with the same tokens', async () => {
    const prompts = ['The quick brown fox', 'Hello world', 'A B C'];
    const replies = await Promise.all(prompts.map((prompt, i) => client.completions.create({ model: 'm', prompt, max_tokens: 6 + 2 * i, temperature: 0, return_token_ids: true } as never)));
    for (const [i, p] of prompts.entries()) expect(tokenIds(replies[i]!.choices[0]), p).toEqual(await alone(p, 6 + 2 * i));
    const longer = 'The quick brown fox jumps';
    const r = await client.completions.create({ model: 'm', prompt: longer, max_tokens: 6, temperature: 0, return_token_ids: true } as never);
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(0);
    expect(tokenIds(r.choices[0])).toEqual(await alone(longer, 6));
    expect(model.openSequences).toBe(0);
  });
});
