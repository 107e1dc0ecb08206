// The chat page's local mode in headless Chromium: the package built from models/bamba.arch for
// tiny-bamba-a (test/helpers/package-cache.ts: built once), its web/ folder on a plain static
// server (Node's http, cross-origin isolated), the checkpoint by URL (?model=…&backend=…). The page
// shows the load's progress, then generates in its Worker: greedy tokens equal to Model.generate's
// in Node on the CPU engine for the same prompt, on wasm (2 threads) and on WebGPU (SwiftShader: no
// adapter fails the test), as a text completion (tiny-bamba-a has no chat template) and as a chat
// through a template (runtime/chat.ts, rendered as the server does), the second turn restoring the
// state the first left (the Worker's state cache) with the same tokens; stop ends a reply early; bad
// checkpoint URLs are named in the page. Screenshots go to .tmp/artifacts/ (their paths printed).

import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChatMessage, chatPromptIds } from '../../runtime/chat.ts';
import type { Model } from '../../runtime/model.ts';
import { loadChatTemplate } from '../../cli/serve/chat.ts';
import { ISOLATED, closeServer, launchChromium, port, sendFile, serve } from '../helpers/browser.ts';
import { BAMBA, ROOT, loadModel, removeDir } from '../helpers/checkpoints.ts';
import { builtPackage } from '../helpers/package-cache.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';
import { TINY_A, trainedWithTemplate } from './setup.ts';

const WEBGPU = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'];
const N = 12;
// the start of tiny-bamba-a's eval text: a prompt it continues without ending at once
const PROMPT = readFileSync(join(TINY_A, '..', 'eval-A.txt'), 'utf8').slice(0, 120).trim();
const ARTIFACTS = join(ROOT, '.tmp', 'artifacts');

const work = join(ROOT, '.tmp', `page-local-${process.pid}-${Date.now()}`);
let pkg: string;
let chatDir: string;
let cpu: Model;
let server: Server;
let browser: Browser | null = null;

beforeAll(async () => {
  useSwiftShader();
  pkg = await builtPackage([BAMBA, '--hf-config', join(TINY_A, 'config.json'), '--name', 'tiny-bamba-a']);
  chatDir = trainedWithTemplate('archc-page-local-');
  // not a checkpoint: tiny-bamba-a's config with a text file where the weights should be
  const bad = join(work, 'bad');
  mkdirSync(bad, { recursive: true });
  copyFileSync(join(TINY_A, 'config.json'), join(bad, 'config.json'));
  writeFileSync(join(bad, 'model.safetensors'), 'these are not tensors, only some words long enough for a header length\n');
  const roots: Record<string, string> = { web: join(pkg, 'web'), dist: join(pkg, 'dist'), a: TINY_A, chat: chatDir, bad };
  server = await serve((req, res) => {
    const [, top = '', ...rest] = new URL(req.url ?? '/', 'http://127.0.0.1').pathname.split('/');
    const root = roots[top];
    if (!root || rest.includes('..')) { res.writeHead(404).end(); return; }
    sendFile(join(root, rest.join('/') || 'index.html'), req, res, undefined, ISOLATED);
  });
  cpu = await loadModel(TINY_A, { backend: 'cpu', threads: 1 });
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium(WEBGPU);
}, 1_000_000);

afterAll(async () => {
  await browser?.close();
  if (server) await closeServer(server);
  cpu?.dispose();
  if (chatDir) removeDir(chatDir);
  rmSync(work, { recursive: true, force: true });
});

/** Node's greedy replies so far, by prompt and length (the CPU engine's prefill of a prompt takes seconds). */
const replies = new Map<string, Promise<{ ids: number[]; text: string }>>();

/** Node's greedy reply: ids and text. */
function reference(prompt: string | number[], maxTokens = N): Promise<{ ids: number[]; text: string }> {
  const key = JSON.stringify([prompt, maxTokens]);
  let reply = replies.get(key);
  if (!reply) {
    replies.set(key, reply = (async () => {
      const ids: number[] = [];
      let text = '';
      for await (const t of cpu.generate(prompt, { maxTokens, temperature: 0 })) {
        if (t.id >= 0) ids.push(t.id);
        text += t.text;
      }
      return { ids, text };
    })());
  }
  return reply;
}

/** The page at web/ with `query`, its errors collected and the #model texts it showed recorded. */
async function open(b: Browser, query: string): Promise<{ page: Page; errors: string[] }> {
  const page = await b.newPage({ viewport: { width: 900, height: 640 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // the files a checkpoint may lack (special_tokens_map.json, chat_template.jinja) are asked for and 404
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource.* 404/.test(m.text())) errors.push(m.text()); });
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { seen: string[] }).seen = seen;
    addEventListener('DOMContentLoaded', () => {
      const el = document.getElementById('model')!;
      new MutationObserver(() => seen.push(el.textContent ?? '')).observe(el, { childList: true, characterData: true, subtree: true });
    });
  });
  await page.goto(`http://127.0.0.1:${port(server)}/web/${query}`);
  return { page, errors };
}

/** Sends `text` with greedy sampling and `maxTokens`; the reply's ids, text and the figures line. */
async function turn(page: Page, text: string, maxTokens = N, at = 0): Promise<{ ids: number[]; text: string; stats: string }> {
  await page.fill('#temperature', '0');
  await page.fill('#max-tokens', String(maxTokens));
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
  await page.locator('#stats[data-done="1"]').waitFor({ timeout: 240_000 });
  const reply = page.locator('.msg.assistant').nth(at);
  const ids = ((await reply.getAttribute('data-ids')) ?? '').split(' ').filter(Boolean).map(Number);
  return { ids, text: (await reply.textContent())!, stats: (await page.textContent('#stats'))! };
}

const FIGURES = /^(\d+) tokens · ([\d.]+) tokens\/s · first token after \d+ ms · prompt (\d+) tokens, (\d+) cached$/;

async function shot(page: Page, name: string): Promise<void> {
  const file = join(ARTIFACTS, name);
  await page.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
}

describe('the chat page without a server (the package\'s web/ folder)', () => {
  it('on wasm in an isolated Worker (2 threads): shows the load\'s progress, then streams Node\'s greedy completion; stop ends a reply early', async () => {
    const { page, errors } = await open(browser!, '?model=/a/&backend=wasm&threads=2');
    await page.locator('#model[data-ready="1"]').waitFor({ timeout: 240_000 });
    expect(await page.textContent('#model')).toBe('a · in this page (wasm, 2 threads) · text completion: no chat template');
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    const total = (readFileSync(join(TINY_A, 'model.safetensors')).length / 1e6).toFixed(1);
    expect(seen.some((s) => new RegExp(`^loading /a/: [\\d.]+ of ${total.replace('.', '\\.')} MB · [\\d.]+ MB/s$`).test(s)), seen.join('\n')).toBe(true);

    const want = await reference(PROMPT);
    expect(want.ids.length).toBe(N);
    const got = await turn(page, PROMPT);
    expect(got.ids).toEqual(want.ids);
    expect(got.text).toBe(want.text);
    const m = FIGURES.exec(got.stats);
    expect(m, got.stats).not.toBeNull();
    expect(Number(m![1])).toBe(N);
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(Number(m![3])).toBe(cpu.encode(PROMPT).length);
    expect(Number(m![4])).toBe(0);
    expect(Number(await page.locator('.msg.assistant').first().getAttribute('data-chunks'))).toBeGreaterThan(1);
    await shot(page, 'page-local-wasm.png');

    // Send, then Stop at once (the button pressed again in the same task: a click a moment later
    // can come after a tiny model's whole reply): the Worker reads the stop between tokens, and the
    // reply ends early (before 400 tokens, where Node's greedy reply goes on), a prefix of Node's,
    // with the page ready for more
    await page.fill('#max-tokens', '400');
    await page.fill('#input', PROMPT);
    await page.evaluate(() => {
      const form = document.getElementById('form') as HTMLFormElement;
      form.requestSubmit();
      form.requestSubmit();
    });
    await page.locator('#stats[data-done="1"]').waitFor({ timeout: 120_000 });
    const stopped = ((await page.locator('.msg.assistant').nth(1).getAttribute('data-ids')) ?? '').split(' ').filter(Boolean).map(Number);
    expect(stopped.length).toBeGreaterThan(0);
    expect(stopped.length).toBeLessThan(400);
    // Node's reply to one token past the stop (the one above when that is long enough): not ended there
    const long = stopped.length < want.ids.length ? want : await reference(PROMPT, stopped.length + 1);
    expect(long.ids.length).toBeGreaterThan(stopped.length);
    expect(stopped).toEqual(long.ids.slice(0, stopped.length));
    // the same prompt again: the Worker restored the state saved after all but its last token
    expect(await page.textContent('#stats')).toMatch(new RegExp(`^${stopped.length} tokens · .* prompt ${cpu.encode(PROMPT).length} tokens, ${cpu.encode(PROMPT).length - 1} cached$`));
    expect(await page.textContent('#send')).toBe('Send');
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  }, 600_000);

  it('through the checkpoint\'s chat template, rendered in the Worker as the server renders it: two turns', async () => {
    const { page, errors } = await open(browser!, '?model=/chat/&backend=wasm');
    await page.locator('#model[data-ready="1"]').waitFor({ timeout: 240_000 });
    expect(await page.textContent('#model')).toMatch(/^chat · in this page \(wasm, \d+ threads?\) · chat$/);
    const template = loadChatTemplate(chatDir)!;
    const messages: ChatMessage[] = [];
    let firstPrompt = 0;
    for (const [i, text] of ['Tell me about the system administrator.', 'What happens next?'].entries()) {
      messages.push({ role: 'user', content: text });
      const prompt = chatPromptIds(template, cpu.tokenizer!, messages);
      const want = await reference(prompt);
      const got = await turn(page, text, N, i);
      expect(got.ids, `turn ${i + 1}`).toEqual(want.ids);
      expect(got.text).toBe(want.text);
      const f = FIGURES.exec(got.stats);
      expect(Number(f?.[3])).toBe(prompt.length);
      // the second turn's prompt extends the first's: its state is restored, not prefilled again
      // (at least the first prompt but its last token; all of the first reply too where the
      // template renders it back as the same ids)
      if (i === 0) expect(Number(f?.[4])).toBe(0);
      else expect(Number(f?.[4])).toBeGreaterThanOrEqual(firstPrompt - 1);
      firstPrompt ||= prompt.length;
      messages.push({ role: 'assistant', content: got.text });
    }
    await shot(page, 'page-local-chat.png');
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  }, 600_000);

  it('on WebGPU (SwiftShader) in the Worker: the same greedy tokens', async () => {
    const { page, errors } = await open(browser!, '?model=/a/&backend=webgpu');
    expect(await page.evaluate(async () => !!(navigator.gpu && await navigator.gpu.requestAdapter())), 'Chromium found no WebGPU adapter').toBe(true);
    await page.locator('#model[data-ready="1"]').waitFor({ timeout: 240_000 });
    expect(await page.textContent('#model')).toBe('a · in this page (webgpu) · text completion: no chat template');
    const want = await reference(PROMPT);
    const got = await turn(page, PROMPT);
    expect(got.ids).toEqual(want.ids);
    expect(got.text).toBe(want.text);
    await shot(page, 'page-local-webgpu.png');
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  }, 600_000);

  it('names what is wrong: no checkpoint at the URL, a file that is not safetensors, no ?model and no server', async () => {
    for (const [query, code, file] of [['?model=/nothing/', 'RT101', '/nothing/'], ['?model=/bad/', 'RT11', '/bad/model.safetensors']] as const) {
      const { page } = await open(browser!, query);
      await page.locator('#model.failed').waitFor({ timeout: 120_000 });
      expect(await page.textContent('#model')).toBe(`cannot load ${query.slice(7)}`);
      const shown = (await page.textContent('.msg.error'))!;
      expect(shown).toContain(code);
      expect(shown).toContain(`http://127.0.0.1:${port(server)}${file}`);
      if (code === 'RT101') await shot(page, 'page-local-error.png');
      await page.close();
    }
    const { page } = await open(browser!, '');
    await page.locator('#model.failed').waitFor({ timeout: 60_000 });
    expect(await page.textContent('#model')).toBe('no model: HTTP 404 from /v1/models (without a server, open this page with ?model=<checkpoint URL>)');
    await page.close();
  }, 300_000);
});
