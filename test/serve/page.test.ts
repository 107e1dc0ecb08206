// The chat page at / of `archc serve`, in headless Chromium (playwright-core): typing a message
// streams the reply into the page (several chunks), equal to the same request made through the API
// with the openai client; a second turn shows the state cache's hit in the figures (cached tokens)
// and again equals the API's reply. A screenshot goes to .tmp/artifacts/ (its path is printed).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChatTemplate } from '../../cli/serve/chat.ts';
import { type RunningServer, serve } from '../../cli/serve/server.ts';
import { launchChromium, pageErrors } from '../helpers/browser.ts';
import { ROOT, loadModel, removeDir } from '../helpers/checkpoints.ts';
import { trainedWithTemplate } from './setup.ts';

let dir: string;
let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  dir = trainedWithTemplate('archc-page-');
  const model = await loadModel(dir);
  server = await serve(model, '127.0.0.1', 0, { id: 'tiny-a', template: loadChatTemplate(dir), cacheBytes: 64 * 2 ** 20 });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  removeDir(dir);
});

describe('the chat page', () => {
  it('streams a reply equal to the API\'s, shows tokens/s and the cached tokens of the next turn', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
    const errors = pageErrors(page);
    const res = await page.goto(`${server.url}/`);
    expect(res!.headers()['content-type']).toBe('text/html; charset=utf-8');
    await page.locator('#model', { hasText: 'tiny-a' }).waitFor();
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '12');
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const messages: { role: 'user' | 'assistant'; content: string }[] = [];
    for (const [turn, text] of ['Tell me a story about a cat.', 'What did the cat do next?'].entries()) {
      await page.fill('#input', text);
      await page.press('#input', 'Enter');
      await page.locator('#stats[data-done="1"]').waitFor();
      const reply = page.locator('.msg.assistant').nth(turn);
      const shown = await reply.textContent();
      const stats = (await page.textContent('#stats'))!;
      messages.push({ role: 'user', content: text });
      const api = await client.chat.completions.create({ model: 'tiny-a', messages, max_tokens: 12, temperature: 0 });
      expect(shown, `turn ${turn + 1}`).toBe(api.choices[0]!.message.content);
      messages.push({ role: 'assistant', content: shown! });
      // streamed: the text came in pieces; the figures: tokens, tokens/s, prompt and cached tokens
      expect(Number(await reply.getAttribute('data-chunks'))).toBeGreaterThan(1);
      const m = /^(\d+) tokens · ([\d.]+) tokens\/s · first token after \d+ ms · prompt (\d+) tokens, (\d+) cached$/.exec(stats);
      expect(m, stats).not.toBeNull();
      expect(Number(m![1])).toBe(api.usage!.completion_tokens);
      expect(Number(m![3])).toBe(api.usage!.prompt_tokens);
      // the first turn reads everything; the second resumes the first turn's state (its prompt and
      // reply: most of the second prompt)
      if (turn === 0) expect(Number(m![4])).toBe(0);
      else {
        expect(Number(m![4])).toBeLessThan(Number(m![3]));
        expect(Number(m![4])).toBeGreaterThan(Number(m![3]) / 2);
      }
    }
    const artifacts = join(ROOT, '.tmp', 'artifacts');
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'serve-chat-page.png');
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
    expect(errors, errors.join("\n")).toEqual([]);
  });
});
