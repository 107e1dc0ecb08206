// Training in a browser tab, from the generated package: `archc build --train` makes the package, its
// ./train is bundled for the browser by esbuild, and a page (headless Chromium through playwright-core,
// SwiftShader's WebGPU adapter, served from 127.0.0.1) trains a tiny random Bamba (f32 masters) a few
// steps with its `Trainer` on WebGPU, everything on the GPU: the package's train entry, the
// gradients' norm, clipping and AdamW. The loss of every step, and after the last, equals the same
// steps taken in Node on the CPU backend's train entry with the optimizer in JS
// (runtime/train/optim.ts) within 1e-4 relative, and it falls. A missing Chromium or adapter fails the test.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { TrainEntryEngine } from '../../runtime/train/entry-engine.ts';
import { bundle, closeServer, launchChromium, pageErrors, port, sendFile, serve } from '../helpers/browser.ts';
import { BAMBA, ROOT, TINY, compileTiny, randomTensors, runCli, setsFor } from '../helpers/checkpoints.ts';
import { packed } from '../grad/helpers.ts';
import { f32TrainProgram } from '../webgpu/train-helpers.ts';
import { trainSteps } from './train-steps.ts';

const ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'];
const STEPS = 4;
const TOL = 1e-4;
const work = join(ROOT, '.tmp', `browser-train-${process.pid}-${Date.now()}`);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('training in a browser tab', () => {
  it(`${STEPS} steps of a tiny Bamba through the package's Trainer on WebGPU in Chromium = the same steps on the CPU train entry in Node`, async () => {
    const pkg = join(work, 'pkg');
    const built = await runCli(['build', BAMBA, ...setsFor(TINY).flatMap((s) => ['--set', s]), '--train', '-o', pkg], 300_000);
    expect(built.code, built.stderr).toBe(0);
    const c = compileTiny();
    const program = f32TrainProgram(c);
    const init = randomTensors(c, { seed: 5 }).map((t) => ({ name: t.name, shape: t.tensor.shape, value: t.tensor.data as Float32Array }));
    const batch = packed([6, 3, 9], 96, 12);
    const want = await trainSteps(new TrainEntryEngine(new CpuBackend(program)), init, batch, STEPS);

    const site = join(work, 'site');
    mkdirSync(site, { recursive: true });
    // the package's ./train for the browser (its package.json maps Node's modules to empty ones), and the page
    await bundle(join(pkg, 'dist', 'train.js'), join(site, 'train.js'));
    await bundle(join(ROOT, 'test', 'browser', 'train-page.ts'), join(site, 'bundle.js'));
    writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>\n');
    writeFileSync(join(site, 'data.json'), JSON.stringify({
      steps: STEPS,
      weights: init.map((w) => ({ name: w.name, shape: w.shape, value: [...w.value] })),
      batch: { tokens: [...batch.tokens], positions: [...batch.positions], seqs: batch.seqs, labels: [...batch.labels] },
    }));
    const server = await serve((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      sendFile(join(site, url.pathname === '/' ? 'index.html' : url.pathname.slice(1)), req, res);
    });
    let browser: Browser | null = null;
    try {
      browser = await launchChromium(ARGS);
      const page = await browser.newPage();
      const errors = pageErrors(page, true);
      await page.goto(`http://127.0.0.1:${port(server)}/`);
      await page.waitForFunction(() => typeof (window as unknown as { train?: unknown }).train === 'function', null, { timeout: 30_000 });
      const adapter = await page.evaluate(() => (window as unknown as { adapter(): Promise<string | null> }).adapter());
      expect(adapter, 'Chromium found no WebGPU adapter').not.toBeNull();
      const losses = await page.evaluate(() => (window as unknown as { train(u: string, p: string): Promise<number[]> }).train('/data.json', '/train.js'));
      const worst = Math.max(...losses.map((l, i) => Math.abs(l - want[i]!) / want[i]!));
      console.log(`the package's Trainer in a browser on ${adapter}: losses ${losses.map((l) => l.toFixed(6)).join(', ')}; Node CPU ${want.map((l) => l.toFixed(6)).join(', ')}; worst rel ${worst.toExponential(2)}`);
      expect(losses.length, errors.join('\n')).toBe(STEPS + 1);
      losses.forEach((l, i) => expect(Math.abs(l - want[i]!) / want[i]!, `step ${i}: ${l} vs ${want[i]}`).toBeLessThan(TOL));
      for (let i = 1; i < losses.length; i++) expect(losses[i]!, `step ${i}`).toBeLessThan(losses[i - 1]!);
    } finally {
      await browser?.close();
      await closeServer(server);
    }
  }, 300_000);
});
