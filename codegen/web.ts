// A built package's web/ folder: the chat page (cli/serve/page.html, the same file `archc serve`
// serves at /) as index.html, and model-worker.js, the package bundled for the browser with the
// page's worker (cli/serve/page-worker.ts). On any static server, web/?model=<checkpoint URL> runs
// the model in the page (wasm or WebGPU, in that Worker); no build step on the user's side.

import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { InternalError } from '../dsl/diagnostics.ts';

/** The worker's entry, bundled from the package's compiled dist/ (its browser map in package.json
 *  leaves Node's modules out, so the package.json must be written first). */
const WORKER_ENTRY = `import { load } from './index.js';
import { runPageWorker } from './cli/serve/page-worker.js';
runPageWorker(load);
`;

/** Writes `dir`/web/ from the package's dist/ and the page beside `serveDir`'s sources. The bundle
 *  is split where the package imports lazily (its chunks beside the worker), and the WGSL (tens of MB
 *  at Bamba-9B's shapes) is not bundled at all: the worker imports the package's own dist/wgsl.js,
 *  only on WebGPU, so the package holds it once. */
export async function writeWebFolder(dir: string, serveDir: string): Promise<void> {
  const web = join(dir, 'web');
  mkdirSync(web, { recursive: true });
  cpSync(join(serveDir, 'page.html'), join(web, 'index.html'));
  // esbuild splits only real entry files (not stdin): this one lives while it bundles
  const entry = join(dir, 'dist', 'model-worker.entry.js');
  writeFileSync(entry, WORKER_ENTRY);
  // the package's dependencies (tokenizers, jinja) from where archc's own resolve: the package is
  // not installed yet, and may be written anywhere
  const nodePaths = createRequire(import.meta.url).resolve.paths('@huggingface/jinja') ?? [];
  try {
    await build({
      entryPoints: { 'model-worker': entry }, outdir: web, chunkNames: '[name]-[hash]',
      bundle: true, splitting: true, platform: 'browser', format: 'esm', target: 'es2022', nodePaths, logLevel: 'silent',
      // every output file sits in web/, so this path holds from whichever chunk imports it
      plugins: [{ name: 'package-wgsl', setup: (b) => { b.onResolve({ filter: /^\.\/wgsl\.js$/ }, () => ({ path: '../dist/wgsl.js', external: true })); } }],
    });
  } catch (e) {
    throw new InternalError(`bundling web/model-worker.js failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    rmSync(entry);
  }
}
