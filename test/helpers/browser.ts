// Running a built package in headless Chromium: bundle an entry for the browser with esbuild, serve
// files from 127.0.0.1 (byte ranges honoured, headers of the caller's choosing), launch Debian's
// chromium through playwright-core; the tiny Bamba package the browser tests share.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { join } from 'node:path';
import { build } from 'esbuild';
import { type Browser, type Page, chromium } from 'playwright-core';
import { BAMBA, writeCheckpoint } from './checkpoints.ts';
import { builtPackage } from './package-cache.ts';

export const CHROMIUM = '/usr/bin/chromium';

/** The shape of the browser tests' tiny Bamba (TINY with these): one package serves them all. */
export const BROWSER_PARAMS = { vocab: 512, d_model: 64, d_ff: 256 } as const;

/** Writes a bf16 checkpoint of BROWSER_PARAMS (weights from `seed`) into `ckpt` and gives the package
 *  `archc build --hf-config` makes for it, named tiny-bamba: built once for every file that asks,
 *  as a package depends on the config alone (package-cache.ts). */
export function browserPackage(ckpt: string, seed: number): Promise<string> {
  writeCheckpoint(ckpt, BROWSER_PARAMS, { dtype: 'bf16', seed });
  return builtPackage([BAMBA, '--hf-config', join(ckpt, 'config.json'), '--name', 'tiny-bamba']);
}

/** Flags every launch takes: no sandbox (containers), nothing fetched from the network. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Headless Chromium with `args` beside CHROMIUM_ARGS; throws, naming what to install, when it is missing. */
export function launchChromium(args: readonly string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM} (the browser tests need Debian's chromium: see .ci/run)`);
  return chromium.launch({ executablePath: CHROMIUM, args: [...args, ...CHROMIUM_ARGS], headless: true });
}

/** The page's uncaught errors and its console errors (and warnings with `warnings`), as they come. */
export function pageErrors(page: Page, warnings = false): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' || (warnings && m.type() === 'warning')) errors.push(m.text()); });
  return errors;
}

/** Bundles `entry` (ESM, platform browser) into `outfile`; returns the bundle's text, checked to
 *  import none of Node's modules statically (the package's browser map leaves them out; `external`
 *  keeps the runtime's own dynamic imports of them, on paths a browser never takes, as they are). */
export async function bundle(entry: string, outfile: string, external: readonly string[] = []): Promise<string> {
  await build({ entryPoints: [entry], bundle: true, platform: 'browser', format: 'esm', outfile, logLevel: 'error', external: [...external] });
  const text = readFileSync(outfile, 'utf8');
  if (/from ["']node:/.test(text)) throw new Error(`${outfile} imports a node: module`);
  return text;
}

export function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

export function port(s: Server): number {
  const a = s.address();
  if (!a || typeof a === 'string') throw new Error('the test server has no port');
  return a.port;
}

export function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

const TYPES: Record<string, string> = { html: 'text/html', js: 'text/javascript', json: 'application/json' };

/** Cross-origin isolation: the headers that give a page SharedArrayBuffer and shared wasm memory. */
export const ISOLATED: Readonly<Record<string, string>> = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/** A static file with `headers`, honouring one `Range: bytes=a-b` (206 with Content-Range, the
 *  range noted in `ranges`); 404 when absent. */
export function sendFile(file: string, req: IncomingMessage, res: ServerResponse, ranges?: string[], headers: Readonly<Record<string, string>> = {}): void {
  if (!existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
  const data = readFileSync(file);
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('content-type', TYPES[file.split('.').pop()!] ?? 'application/octet-stream');
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) { res.writeHead(200).end(data); return; }
  const [a, b] = [Number(m[1]), Math.min(Number(m[2]), data.length - 1)];
  ranges?.push(`${file.split('/').pop()} ${a}-${b}`);
  res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${data.length}` }).end(data.subarray(a, b + 1));
}
