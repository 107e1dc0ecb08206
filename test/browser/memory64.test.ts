// The generated package on the wasm backend in headless Chromium (memory64 since 133) on one memory64
// memory, against one 32-bit memory, bit for bit: the package (archc build, which ships the kernels'
// memory64 form) bundled and served from 127.0.0.1 with cross-origin isolation, the checkpoint
// fetched over HTTP, loaded twice in the same place — wasmMemory64 false, then true with
// wasmMemoryBytes of one page, so every weight past memory 0's share lies in region 1, past 4 GiB —
// and every output compared (test/helpers/memory64.ts: a packed forward, prefill, a batched decode
// step, a multi-token step, one-at-a-time decoding, three greedy tokens). In a dedicated worker with
// 2 threads (bf16, and quantised to q4 on load), on the main thread (one thread), and on a page
// without isolation (an unshared memory64 memory, the import rewritten). Both runs without the
// program module (it has no memory64 form; wasmProgram: null for the 32-bit run). One browser for the file; a missing Chromium fails it.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_PARAMS, ISOLATED, browserPackage, bundle, closeServer, launchChromium, port, sendFile, serve } from '../helpers/browser.ts';
import { ROOT, randomIds } from '../helpers/checkpoints.ts';

const VOCAB = BROWSER_PARAMS.vocab;
/** wasmMemoryBytes for the memory64 run: memory 0 takes weights while they leave it a quarter of it. */
const LIMIT = 65536;
const SPEC = { a: randomIds(12, VOCAB, 51), b: randomIds(9, VOCAB, 52) };

interface Side { memories: { memory: number; bytes: number; weightBytes: number; weights: number; address?: string }[]; threads: number; isolated: boolean }
interface Result { one: Side; wide: Side; diffs: (string | null)[]; nonzero: boolean[]; outputs: number }

const work = join(ROOT, '.tmp', `browser-memory64-${process.pid}-${Date.now()}`);
const ckpt = join(work, 'ckpt');
let pkg: string;
const site = join(work, 'site');
let server: Server | null = null;
let browser: Browser | null = null;
const errors: string[] = [];

beforeAll(async () => {
  mkdirSync(ckpt, { recursive: true });
  mkdirSync(site, { recursive: true });
  pkg = await browserPackage(ckpt, 13);
  const index = JSON.stringify(join(pkg, 'dist', 'index.js'));
  const helper = JSON.stringify(join(ROOT, 'test', 'helpers', 'memory64.ts'));
  // both loads and the comparison, wherever it runs
  writeFileSync(join(site, 'both.js'), `
    import { Model } from ${index};
    import { firstDiff, memory64Outputs } from ${helper};
    const side = (m) => ({ memories: m.memories, threads: m.threads, isolated: globalThis.crossOriginIsolated === true });
    export async function both(url, opts, { a, b }) {
      const one = await Model.load(url, { ...opts, wasmMemory64: false, wasmProgram: null });
      const want = await memory64Outputs(one, a, b);
      const r1 = side(one);
      one.dispose();
      const wide = await Model.load(url, { ...opts, wasmMemory64: true, wasmMemoryBytes: ${LIMIT} });
      const got = await memory64Outputs(wide, a, b);
      const r2 = side(wide);
      wide.dispose();
      return { one: r1, wide: r2, diffs: want.map((w, i) => firstDiff(got[i], w)), nonzero: want.map((w) => w.some((v) => v !== 0)), outputs: want.length };
    }
  `);
  writeFileSync(join(site, 'worker.js'), `
    import { both } from './both.js';
    self.onmessage = async ({ data: { url, opts, spec } }) => {
      try { self.postMessage({ ok: await both(url, opts, spec) }); } catch (e) { self.postMessage({ error: String(e && e.stack || e) }); }
    };
  `);
  writeFileSync(join(site, 'main.js'), `
    import { both } from './both.js';
    const here = (p) => new URL(p, location.href).href;
    window.onMain = (opts, spec) => both(here('ckpt/'), opts, spec);
    window.inWorker = (opts, spec) => new Promise((resolve, reject) => {
      const w = new Worker(here('worker.bundle.js'), { type: 'module' });
      w.onmessage = ({ data }) => { w.terminate(); data.error ? reject(new Error(data.error)) : resolve(data.ok); };
      w.onerror = (e) => { w.terminate(); reject(new Error('worker: ' + e.message)); };
      w.postMessage({ url: here('ckpt/'), opts, spec });
    });
  `);
  await bundle(join(site, 'main.js'), join(site, 'main.bundle.js'));
  await bundle(join(site, 'worker.js'), join(site, 'worker.bundle.js'));
  writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="main.bundle.js"></script>\n');
  server = await serve((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const plain = url.pathname.startsWith('/plain/');
    const path = plain ? url.pathname.slice('/plain'.length) : url.pathname;
    const file = path.startsWith('/ckpt/') ? join(ckpt, path.slice(6)) : join(site, path === '/' ? 'index.html' : path.slice(1));
    sendFile(file, req, res, undefined, plain ? {} : ISOLATED);
  });
  browser = await launchChromium();
}, 1_000_000);

afterAll(async () => {
  await browser?.close();
  if (server) await closeServer(server);
  rmSync(work, { recursive: true, force: true });
});

async function runIn(path: string, where: 'onMain' | 'inWorker', opts: object): Promise<Result> {
  const page = await browser!.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  try {
    await page.goto(`http://127.0.0.1:${port(server!)}${path}`);
    await page.waitForFunction(() => typeof (window as unknown as { inWorker?: unknown }).inWorker === 'function', null, { timeout: 60_000 });
    return await page.evaluate(([w, o, s]) => (window as unknown as Record<string, (o: object, s: object) => Promise<Result>>)[w](o, s), [where, opts, SPEC] as const);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${errors.join('\n')}`);
  } finally {
    await page.close();
  }
}

function expectSame(r: Result, what: string, threads: number, isolated: boolean): void {
  expect(r.one.memories.length, `${what}: one 32-bit memory`).toBe(1);
  expect(r.one.memories[0]!.address).toBeUndefined();
  expect(r.wide.memories.map((m) => m.address), `${what}: one memory64 memory`).toEqual(['i64']);
  const [wide] = r.wide.memories, [one] = r.one.memories;
  expect(wide!.weights).toBe(one!.weights);
  expect(wide!.weightBytes).toBe(one!.weightBytes);
  expect(one!.weightBytes, `${what}: more weights than memory 0 takes`).toBeGreaterThan(LIMIT * 3 / 4);
  // region 1 starts at 4 GiB in Chromium (16 GiB the most): weights there put the memory past 4 GiB
  expect(wide!.bytes, `${what}: weights past 4 GiB`).toBeGreaterThan(2 ** 32);
  for (const s of [r.one, r.wide]) {
    expect(s.threads, `${what}: threads`).toBe(threads);
    expect(s.isolated).toBe(isolated);
  }
  r.nonzero.forEach((nz, i) => expect(nz, `${what}: output ${i} is not all zeros`).toBe(true));
  r.diffs.forEach((d, i) => expect(d, `${what}: output ${i} of ${r.outputs}${i === r.outputs - 1 ? ' (greedy tokens)' : ''}`).toBeNull());
}

describe('the package on wasm in headless Chromium: one memory64 memory = one 32-bit memory, bit for bit', () => {
  it('in a dedicated worker of an isolated page, 2 threads: bf16, and quantised to q4 on load', async () => {
    expectSame(await runIn('/', 'inWorker', { backend: 'wasm', threads: 2 }), 'worker bf16', 2, true);
    expectSame(await runIn('/', 'inWorker', { backend: 'wasm', threads: 2, quantize: 'q4' }), 'worker q4', 2, true);
  }, 300_000);

  it('on the main thread (one thread), and on a page without isolation (an unshared memory)', async () => {
    expectSame(await runIn('/', 'onMain', { backend: 'wasm' }), 'main thread', 1, true);
    expectSame(await runIn('/plain/', 'onMain', { backend: 'wasm' }), 'no isolation', 1, false);
  }, 300_000);
});
