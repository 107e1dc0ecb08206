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
 *  is split where the package imports lazily, so the wasm path never fetches the WGSL (web/chunks/). */
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
      entryPoints: { 'model-worker': entry }, outdir: web, chunkNames: 'chunks/[name]-[hash]',
      bundle: true, splitting: true, platform: 'browser', format: 'esm', target: 'es2022', nodePaths, logLevel: 'silent',
    });
  } catch (e) {
    throw new InternalError(`bundling web/model-worker.js failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    rmSync(entry);
  }
}
