// The generated package on WebGPU without passing its WGSL by hand: in Node on Dawn, and bundled for
// the browser (esbuild, platform browser) in headless Chromium (playwright-core, SwiftShader's
// WebGPU adapter) on a page served from 127.0.0.1, where the checkpoint is fetched tensor by tensor
// with range requests. Both generate the same greedy tokens as Node's CPU engine on the same
// checkpoint. A missing Chromium or adapter fails the test in CI (CI=true) and skips it elsewhere.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model } from '../../runtime/model.ts';
import { CHROMIUM, browserPackage, bundle, closeServer, launchChromium, pageErrors, port, sendFile, serve } from '../helpers/browser.ts';
import { ROOT, programFor, randomIds } from '../helpers/checkpoints.ts';
import { useSwiftShader } from './gpu.ts';

const ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'];
const TOKENS = 8;

// under the repository, so the package's bare imports (@huggingface/tokenizers, webgpu) resolve
// from its node_modules as they would from an app's
const work = join(ROOT, '.tmp', `browser-${process.pid}-${Date.now()}`);
const ckpt = join(work, 'ckpt');
let pkg: string;
const prompt = randomIds(5, 96, 31);
let want: number[];

beforeAll(async () => {
  useSwiftShader();
  mkdirSync(ckpt, { recursive: true });
  pkg = await browserPackage(ckpt, 8);
  const program = programFor(ckpt);
  const cpu = await Model.loadProgram(program, ckpt, { threads: 1 });
  want = await greedy(cpu);
  cpu.dispose();
  expect(want.length).toBe(TOKENS);
}, 1_000_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function greedy(m: Pick<Model, 'generate'>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of m.generate(prompt, { maxTokens: TOKENS, temperature: 0, stop: [] })) out.push(t.id);
  return out;
}

describe('the generated package on WebGPU', () => {
  it('loads in Node with backend webgpu (its own WGSL) and generates the CPU engine\'s tokens', async () => {
    const { Model: Pkg } = await import(join(pkg, 'dist', 'index.js')) as { Model: { load(dir: string, o: object): Promise<Model> } };
    const m = await Pkg.load(ckpt, { backend: 'webgpu' });
    try {
      expect(await greedy(m)).toEqual(want);
    } finally {
      m.dispose();
    }
  }, 120_000);

  it('bundled for the browser, runs in headless Chromium from 127.0.0.1 and generates the same tokens', async (ctx) => {
    const missing = (why: string) => {
      if (process.env.CI) throw new Error(`${why} (CI needs Debian's chromium: see .ci/run)`);
      ctx.skip(why);
    };
    if (!existsSync(CHROMIUM)) return missing(`no ${CHROMIUM}`);
    const site = join(work, 'site');
    mkdirSync(site, { recursive: true });
    writeFileSync(join(site, 'main.js'), `
      import { Model } from ${JSON.stringify(join(pkg, 'dist', 'index.js'))};
      window.adapter = async () => !!(navigator.gpu && await navigator.gpu.requestAdapter());
      window.generate = async (url, prompt, n) => {
        const m = await Model.load(url, { backend: 'webgpu' });
        const out = [];
        try {
          for await (const t of m.generate(prompt, { maxTokens: n, temperature: 0, stop: [] })) out.push(t.id);
        } finally {
          m.dispose();
        }
        return out;
      };
    `);
    await bundle(join(site, 'main.js'), join(site, 'bundle.js')); // Node's modules are left out, not imported
    writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>\n');

    const ranges: string[] = [];
    const server = await serve((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname.startsWith('/ckpt/')) return sendFile(join(ckpt, url.pathname.slice(6)), req, res, ranges);
      const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
      return sendFile(join(site, file), req, res);
    });
    let browser: Browser | null = null;
    try {
      browser = await launchChromium(ARGS);
      const page = await browser.newPage();
      const errors = pageErrors(page);
      await page.goto(`http://127.0.0.1:${port(server)}/`);
      await page.waitForFunction(() => typeof (window as unknown as { generate?: unknown }).generate === 'function', null, { timeout: 30_000 });
      if (!(await page.evaluate(() => (window as unknown as { adapter(): Promise<boolean> }).adapter()))) return missing('Chromium found no WebGPU adapter');
      const got = await page.evaluate(([p, n]) => (window as unknown as { generate(u: string, p: number[], n: number): Promise<number[]> }).generate('/ckpt/', p as number[], n as number), [prompt, TOKENS] as const);
      expect(got, errors.join('\n')).toEqual(want);
      // the weights came tensor by tensor, by byte range (the header too)
      const tensors = Object.keys(JSON.parse(readFileSync(join(ckpt, 'model.safetensors')).subarray(8, 8 + Number(readFileSync(join(ckpt, 'model.safetensors')).readBigUInt64LE(0))).toString())).filter((k) => k !== '__metadata__');
      expect(ranges.filter((r) => r.startsWith('model.safetensors ')).length).toBeGreaterThanOrEqual(tensors.length);
    } finally {
      await browser?.close();
      await closeServer(server);
    }
  }, 240_000);
});
