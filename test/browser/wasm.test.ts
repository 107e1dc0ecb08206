// The generated package on the `wasm` backend in headless Chromium (playwright-core), bundled for the
// browser (esbuild) and served from 127.0.0.1 with cross-origin isolation (COOP + COEP), the
// checkpoint fetched over HTTP: on the page's main thread (one thread, no blocking waits), in a
// dedicated module Worker with 2 threads (Web Workers over shared memory), and on a page without
// isolation (one thread over a memory that is not shared, in a worker even when asked for 2). Each
// run's logits — a full forward, a packed batch of two sequences, prefill and a batched decode step,
// one sequence decoded token by token — equal Node's CPU reference engine within 1e-5 of their
// scale, and greedy generation picks the same tokens. One browser for the file; a missing Chromium
// fails it.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WASM_TARGET } from '../../codegen/wasm/target.ts';
import { Model } from '../../runtime/model.ts';
import { BROWSER_PARAMS, ISOLATED, browserPackage, bundle, closeServer, launchChromium, port, sendFile, serve } from '../helpers/browser.ts';
import { ROOT, expectLogitsClose, programFor, randomIds } from '../helpers/checkpoints.ts';

const VOCAB = BROWSER_PARAMS.vocab;
const SPEC = { a: randomIds(12, VOCAB, 41), b: randomIds(9, VOCAB, 42), prompt: randomIds(5, VOCAB, 43), tokens: 8 };
type Spec = typeof SPEC;

/** What one run returns (logits as plain arrays, [rows · vocab]). */
interface Result {
  readonly threads: number;
  readonly isolated: boolean;
  readonly full: number[];
  readonly packed: number[];
  readonly prefill: number[];
  readonly decode: number[];
  readonly stepped: number[];
  readonly greedy: number[];
  /** WebAssembly memories holding the weights (0 on the CPU engine). */
  readonly memories: number;
  /** Where a quantised load quantised (Model.quantization.quantizer). */
  readonly quantizer: string | null;
}

// The runs, written once and used by the page, its worker and (on the CPU engine) this test.
const STEPS = `
export async function steps(m, { a, b, prompt, tokens }) {
  const arr = (x) => Array.from(x);
  const full = arr(m.forward({ ids: a }).logits);
  const packed = arr(m.forward({ ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] }).logits);
  const { states, logits } = m.prefill([a, b]);
  const prefill = logits.flatMap(arr);
  const decode = arr(m.decode([a[0], b[0]], states));
  for (const s of states) m.releaseSequence(s);
  const s = m.newSequence();
  const stepped = [];
  for (const id of a) stepped.push(...m.decode([id], [s]));
  m.releaseSequence(s);
  const greedy = [];
  for await (const t of m.generate(prompt, { maxTokens: tokens, temperature: 0, stop: [] })) greedy.push(t.id);
  return { threads: m.threads, isolated: globalThis.crossOriginIsolated === true, full, packed, prefill, decode, stepped, greedy, memories: m.memories.length, quantizer: m.quantization?.quantizer ?? null };
}
`;

// under the repository, so the package's bare imports resolve from its node_modules as an app's would
const work = join(ROOT, '.tmp', `browser-wasm-${process.pid}-${Date.now()}`);
const ckpt = join(work, 'ckpt');
let pkg: string;
const site = join(work, 'site');
let want: Result;
let server: Server | null = null;
let browser: Browser | null = null;
const errors: string[] = [];

beforeAll(async () => {
  mkdirSync(ckpt, { recursive: true });
  mkdirSync(site, { recursive: true });
  pkg = await browserPackage(ckpt, 12);

  const index = JSON.stringify(join(pkg, 'dist', 'index.js'));
  writeFileSync(join(site, 'steps.js'), STEPS);
  writeFileSync(join(site, 'worker.js'), `
    import { Model } from ${index};
    import { steps } from './steps.js';
    self.onmessage = async ({ data: { url, opts, spec } }) => {
      try {
        const m = await Model.load(url, opts);
        try { self.postMessage({ ok: await steps(m, spec) }); } finally { m.dispose(); }
      } catch (e) {
        self.postMessage({ error: String(e && e.stack || e) });
      }
    };
  `);
  writeFileSync(join(site, 'main.js'), `
    import { Model } from ${index};
    import { steps } from './steps.js';
    const here = (p) => new URL(p, location.href).href;
    window.onMain = async (opts, spec) => {
      const m = await Model.load(here('ckpt/'), opts);
      try { return await steps(m, spec); } finally { m.dispose(); }
    };
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

  // the same files isolated under / and without the headers under /plain/
  server = await serve((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const plain = url.pathname.startsWith('/plain/');
    const path = plain ? url.pathname.slice('/plain'.length) : url.pathname;
    const file = path.startsWith('/ckpt/') ? join(ckpt, path.slice(6)) : join(site, path === '/' ? 'index.html' : path.slice(1));
    sendFile(file, req, res, undefined, plain ? {} : ISOLATED);
  });
  browser = await launchChromium();

  const { steps } = await import(join(site, 'steps.js')) as { steps(m: Model, s: Spec): Promise<Result> };
  const cpu = await Model.loadProgram(programFor(ckpt), ckpt, { backend: 'cpu', threads: 1 });
  try {
    want = await steps(cpu, SPEC);
  } finally {
    cpu.dispose();
  }
}, 1_000_000);

afterAll(async () => {
  await browser?.close();
  if (server) await closeServer(server);
  rmSync(work, { recursive: true, force: true });
});

async function open(path: string): Promise<Page> {
  const page = await browser!.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`http://127.0.0.1:${port(server!)}${path}`);
  await page.waitForFunction(() => typeof (window as unknown as { inWorker?: unknown }).inWorker === 'function', null, { timeout: 60_000 });
  return page;
}

type Where = 'onMain' | 'inWorker';

async function runIn(path: string, where: Where, opts: object): Promise<Result> {
  const page = await open(path);
  try {
    return await page.evaluate(([w, o, s]) => (window as unknown as Record<Where, (o: object, s: Spec) => Promise<Result>>)[w as Where](o as object, s as Spec), [where, opts, SPEC] as const);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${errors.join('\n')}`);
  } finally {
    await page.close();
  }
}

function expectReference(got: Result, what: string): void {
  for (const k of ['full', 'packed', 'prefill', 'decode', 'stepped'] as const) {
    expectLogitsClose(got[k], want[k], 1e-5, `${what}: ${k}`, VOCAB);
  }
  expect(got.greedy, `${what}: greedy tokens`).toEqual(want.greedy);
  expect(want.greedy.length).toBe(SPEC.tokens);
}

describe('the generated package on wasm in headless Chromium = Node\'s CPU engine', () => {
  it('the packed forward is large enough for its head product to be split across threads', () => {
    expect((SPEC.a.length + SPEC.b.length) * BROWSER_PARAMS.d_model * VOCAB).toBeGreaterThanOrEqual(WASM_TARGET.splitFrom);
    expect(SPEC.a.length * BROWSER_PARAMS.d_model * VOCAB).toBeGreaterThanOrEqual(WASM_TARGET.splitFrom);
  });

  it('on the main thread of a cross-origin isolated page: one thread', async () => {
    const got = await runIn('/', 'onMain', { backend: 'wasm' });
    expect(got.isolated).toBe(true);
    expect(got.threads).toBe(1);
    expectReference(got, 'main thread');
  }, 180_000);

  it('in a dedicated worker of a cross-origin isolated page: 2 threads over shared memory', async () => {
    const got = await runIn('/', 'inWorker', { backend: 'wasm', threads: 2 });
    expect(got.isolated).toBe(true);
    expect(got.threads).toBe(2);
    expectReference(got, 'worker, 2 threads');
  }, 180_000);

  it('on a page without isolation: one thread over unshared memory, on the main thread and in a worker', async () => {
    const main = await runIn('/plain/', 'onMain', { backend: 'wasm' });
    expect(main.isolated).toBe(false);
    expect(main.threads).toBe(1);
    expectReference(main, 'main thread, no isolation');
    const worker = await runIn('/plain/', 'inWorker', { backend: 'wasm', threads: 2 });
    expect(worker.isolated).toBe(false);
    expect(worker.threads).toBe(1);
    expectReference(worker, 'worker, no isolation');
  }, 180_000);

  it('quantise-on-load (q4) in the browser: the wasm quantiser\'s model = the JS reference\'s, bit for bit; Web Workers where the page is isolated, else on the loading thread', async () => {
    for (const [path, where] of [['/', 'inWorker'], ['/', 'onMain'], ['/plain/', 'onMain']] as const) {
      const opts = { threads: 2 };
      const fast = await runIn(path, where, { backend: 'wasm', quantize: 'q4', ...opts });
      const js = await runIn(path, where, { backend: 'wasm', quantize: 'q4', quantizer: 'js', ...opts });
      expect(js.quantizer).toBe('js');
      // workers where the page is isolated (from its main thread too: that thread only awaits them)
      expect(fast.quantizer, `${path} ${where}`).toBe(path === '/' ? 'wasm, 2 workers' : 'wasm, the loading thread');
      for (const k of ['full', 'packed', 'prefill', 'decode', 'stepped', 'greedy'] as const) expect(fast[k], `${path} ${where}: ${k}`).toEqual(js[k]);
      expect(fast.full, 'quantising changes the logits').not.toEqual(want.full);
    }
  }, 300_000);

  it('weights over several memories (wasmMemoryBytes) = one memory, bit for bit: a worker\'s 2 threads (restarted on every memory after loading), and unshared on the main thread', async () => {
    const several = { backend: 'wasm', wasmMemoryBytes: 4 * 65536 }; // a memory holds the largest packed weight (64 KiB) beside its staging
    for (const [path, where, opts] of [['/', 'inWorker', { threads: 2 }], ['/plain/', 'onMain', {}]] as const) {
      const one = await runIn(path, where, { backend: 'wasm', ...opts });
      const many = await runIn(path, where, { ...several, ...opts });
      expect(one.memories, `${where}${path}: one memory by default`).toBe(1);
      expect(many.memories, `${where}${path}: memories at ${several.wasmMemoryBytes} bytes`).toBeGreaterThanOrEqual(2);
      expect(many.threads).toBe(one.threads);
      expect(many, `${where}${path}: several memories`).toEqual({ ...one, memories: many.memories });
    }
  }, 240_000);
});
