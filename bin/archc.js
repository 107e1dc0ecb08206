#!/usr/bin/env node
// archc's entry point. The CLI runs from one bundled file, dist/archc.mjs, rebuilt with esbuild
// whenever a source file is newer than it: bundling the TypeScript sources and chevrotain halves
// start-up time against loading hundreds of modules one by one. Without a writable dist/ it falls
// back to running the sources through tsx.

import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'archc.mjs');
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
    if (!existsSync(bundle) || statSync(bundle).mtimeMs < newestSource()) {
      const { buildSync } = await import('esbuild');
      mkdirSync(dirname(bundle), { recursive: true });
      const tmp = `${bundle}.${process.pid}.tmp`;
      buildSync({
        entryPoints: [join(root, 'cli', 'main.ts')],
        outfile: tmp,
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        // chevrotain is bundled (it is hundreds of small modules); the rest load from node_modules
        external: ['ts-morph', 'ajv', 'commander', 'cli-progress', '@huggingface/tokenizers', 'esbuild', 'tsx', 'wabt'],
        logLevel: 'silent',
      });
      renameSync(tmp, bundle);
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
