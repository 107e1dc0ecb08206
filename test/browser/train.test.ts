// Training in a browser tab: a tiny random Bamba (f32 masters) trains for a few steps in headless
// Chromium (playwright-core, SwiftShader's WebGPU adapter, the page served from 127.0.0.1) with
// everything on the GPU: the train entry, the gradients' norm, clipping and AdamW
// (runtime/train/webgpu-engine.ts through runtime/train/trainer.ts's loop, bundled by esbuild). The
// loss of every step, and after the last, equals the same steps taken in Node on the CPU backend's
// train entry with the optimizer in JS (runtime/train/optim.ts) within 1e-4 relative, and it falls.
// A missing Chromium or adapter fails the test.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { TrainEntryEngine } from '../../runtime/train/entry-engine.ts';
import { bundle, closeServer, launchChromium, pageErrors, port, sendFile, serve } from '../helpers/browser.ts';
import { ROOT, compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { packed } from '../grad/helpers.ts';
import { f32TrainProgram } from '../webgpu/train-helpers.ts';
import { trainSteps } from './train-steps.ts';

const ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'];
const STEPS = 4;
const TOL = 1e-4;
const work = join(ROOT, '.tmp', `browser-train-${process.pid}-${Date.now()}`);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('training in a browser tab', () => {
  it(`${STEPS} steps of a tiny Bamba on WebGPU in Chromium = the same steps on the CPU train entry in Node`, async () => {
    const c = compileTiny();
    const program = f32TrainProgram(c);
    const init = randomTensors(c, { seed: 5 }).map((t) => ({ name: t.name, shape: t.tensor.shape, value: t.tensor.data as Float32Array }));
    const batch = packed([6, 3, 9], 96, 12);
    const want = await trainSteps(new TrainEntryEngine(new CpuBackend(program)), init, batch, STEPS);

    const site = join(work, 'site');
    mkdirSync(site, { recursive: true });
    // the runtime's sources, not a package: Dawn's loader imports Node's modules on a path the page never takes
    await bundle(join(ROOT, 'test', 'browser', 'train-page.ts'), join(site, 'bundle.js'), ['node:*']);
    writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>\n');
    writeFileSync(join(site, 'data.json'), JSON.stringify({
      program, wgsl: renderProgram(program), steps: STEPS,
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
      expect(await page.evaluate(() => (window as unknown as { adapter(): Promise<boolean> }).adapter()), 'Chromium found no WebGPU adapter').toBe(true);
      const got = await page.evaluate(() => (window as unknown as { train(u: string): Promise<{ losses: number[]; adapter: string }> }).train('/data.json'));
      const worst = Math.max(...got.losses.map((l, i) => Math.abs(l - want[i]!) / want[i]!));
      console.log(`browser training on ${got.adapter}: losses ${got.losses.map((l) => l.toFixed(6)).join(', ')}; Node CPU ${want.map((l) => l.toFixed(6)).join(', ')}; worst rel ${worst.toExponential(2)}`);
      expect(got.losses.length, errors.join('\n')).toBe(STEPS + 1);
      got.losses.forEach((l, i) => expect(Math.abs(l - want[i]!) / want[i]!, `step ${i}: ${l} vs ${want[i]}`).toBeLessThan(TOL));
      for (let i = 1; i < got.losses.length; i++) expect(got.losses[i]!, `step ${i}`).toBeLessThan(got.losses[i - 1]!);
    } finally {
      await browser?.close();
      await closeServer(server);
    }
  }, 120_000);
});
