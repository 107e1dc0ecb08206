#!/usr/bin/env node
// archc's entry point. The CLI runs from an esbuild bundle in dist/cli-<stamp>/, rebuilt whenever a
// source file is newer than the bundle: bundling the TypeScript sources and chevrotain halves
// start-up time against loading hundreds of modules one by one. The bundle is split at dynamic
// imports, so heavy modules (ts-morph, the tokenizer, cli-progress, ajv) load only in the commands
// that use them. Each build goes to a fresh directory named by the sources' newest mtime, so a
// process still reading an older bundle is never disturbed. Without a writable dist/ it falls back
// to running the sources through tsx.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const SOURCES = ['cli', 'compiler', 'dsl', 'runtime', 'codegen'];

function newestSource() {
  let newest = statSync(join(root, 'package.json')).mtimeMs;
  for (const dir of SOURCES) {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true, recursive: true })) {
      if (e.isFile() && e.name.endsWith('.ts')) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
    }
  }
  return newest;
}

async function entry() {
  try {
    const dir = join(dist, `cli-${Math.floor(newestSource())}`);
    const bundle = join(dir, 'archc.mjs');
    if (!existsSync(bundle)) {
      const { buildSync } = await import('esbuild');
      mkdirSync(dist, { recursive: true });
      const tmp = `${dir}.${process.pid}.tmp`;
      buildSync({
        entryPoints: { archc: join(root, 'cli', 'main.ts') },
        outdir: tmp,
        outExtension: { '.js': '.mjs' },
        bundle: true,
        splitting: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        // chevrotain is bundled (it is hundreds of small modules); the rest load from node_modules
        external: ['ts-morph', 'ajv', 'commander', 'cli-progress', '@huggingface/tokenizers', 'esbuild', 'tsx', 'wabt'],
        // The sources find models/ and runtime/ beside their own directory; the bundle sits one level
        // deeper than they do, so each of its files reports a URL in dist/ instead.
        define: { 'import.meta.url': '__archcUrl' },
        banner: { js: "const __archcUrl = new URL('../archc.mjs', import.meta.url).href;" },
        logLevel: 'silent',
      });
      try {
        renameSync(tmp, dir);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another process put the same build in place first
      }
      // older bundles (and temp builds of crashed processes) go, but not ones a running process may still read
      for (const e of readdirSync(dist)) {
        const p = join(dist, e);
        if (p !== dir && /^(cli-|archc\.mjs)/.test(e) && Date.now() - statSync(p).mtimeMs > 60_000) rmSync(p, { recursive: true, force: true });
      }
    }
    return await import(pathToFileURL(bundle).href);
  } catch {
    const { register } = await import('tsx/esm/api');
    register();
    return await import('../cli/main.ts');
  }
}

try {
  const { main } = await entry();
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  // Only a broken installation gets here (main reports every error itself).
  process.stderr.write(`archc: internal error while starting: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.ARCHC_DEBUG) process.stderr.write(`${e instanceof Error ? e.stack : ''}\n`);
  process.exitCode = 70;
}
