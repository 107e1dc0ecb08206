// The kernels' memory64 form (codegen/wasm/addr.ts: i32 address arithmetic widened at each access,
// weights at an i32 offset from an i64 base) against the 32-bit form, on the same products: four
// [4096, 4096] weights per format (f32, bf16, q8, q4; Bamba-9B's width), one row (decode: the GEMV,
// q8/q4 by the integer-dot kernel) and 64 rows (a prefill block), rounds interleaved
// (bench/wasm-memory64/core.ts). The memory64 weights lie in region 1 (runtime/wasm/memories.ts:
// past 2 GiB under Node 20's 4 GiB memory64, past 4 GiB in Chromium). In Node, or with --browser in
// headless Chromium in a worker of a cross-origin isolated page (its engine's memory64 is the one
// that matters: Node 20's is a draft behind a flag). Prints weight GB/s per form and the ratio;
// writes bench/results/wasm-memory64.json (one entry per place).
//
// Run: node --experimental-wasm-memory64 --import tsx bench/wasm-memory64.ts [--browser] [--threads 2] [--rounds 5] [--n 4096] [--count 4]

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { build } from 'esbuild';
import { ISOLATED, closeServer, launchChromium, port, sendFile, serve } from '../test/helpers/browser.ts';
import { type Row, measure } from './wasm-memory64/core.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const arg = (name: string, dflt: number): number => { const i = process.argv.indexOf(name); return i >= 0 ? Number(process.argv[i + 1]) : dflt; };
const opts = { threads: arg('--threads', 2), rounds: arg('--rounds', 5), n: arg('--n', 4096), count: arg('--count', 4) };
const BROWSER = process.argv.includes('--browser');
const [kernels, kernels64] = await Promise.all([wasmKernelVariants(), wasmKernelVariants(true)]);

async function inBrowser(): Promise<{ rows: Row[]; at64: number; engine: string }> {
  const site = join(ROOT, '.tmp', `bench-memory64-${process.pid}`);
  mkdirSync(site, { recursive: true });
  writeFileSync(join(site, 'worker.ts'), `
    import { measure } from ${JSON.stringify(join(ROOT, 'bench', 'wasm-memory64', 'core.ts'))};
    self.onmessage = async ({ data: { kernels, kernels64, opts } }) => {
      try { self.postMessage({ ok: { ...(await measure(kernels, kernels64, opts, (s) => self.postMessage({ say: s }))), engine: navigator.userAgent } }); }
      catch (e) { self.postMessage({ error: String(e && e.stack || e) }); }
    };`);
  // Node's modules the runtime names (only its Node paths use them) as empty ones, as the package's `browser` map makes them
  await build({ entryPoints: [join(site, 'worker.ts')], bundle: true, platform: 'browser', format: 'esm', outfile: join(site, 'worker.bundle.js'), logLevel: 'error',
    plugins: [{ name: 'no-node', setup(b) { b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'no-node' })); b.onLoad({ filter: /.*/, namespace: 'no-node' }, () => ({ contents: '', loader: 'js' })); } }] });
  writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><p>bench</p>\n');
  const server = await serve((req, res) => sendFile(join(site, new URL(req.url ?? '/', 'http://x').pathname.slice(1) || 'index.html'), req, res, undefined, ISOLATED));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`[page] ${m.text()}`));
    await page.goto(`http://127.0.0.1:${port(server)}/`);
    // the modules as base64 (what crosses into the page is JSON); the driver as text (no helpers of this file's compiler)
    const b64 = (bs: Uint8Array[]) => JSON.stringify(bs.map((b) => Buffer.from(b).toString('base64')));
    return await page.evaluate(`new Promise((res, rej) => {
      const bytes = (ss) => ss.map((s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
      const w = new Worker('worker.bundle.js', { type: 'module' });
      w.onmessage = ({ data }) => { if (data.say) console.log(data.say); else { w.terminate(); data.error ? rej(new Error(data.error)) : res(data.ok); } };
      w.onerror = (e) => rej(new Error(e.message));
      w.postMessage({ kernels: bytes(${b64(kernels)}), kernels64: bytes(${b64(kernels64)}), opts: ${JSON.stringify(opts)} });
    })`) as { rows: Row[]; at64: number; engine: string };
  } finally {
    await browser.close();
    await closeServer(server);
  }
}

const where = BROWSER ? 'chromium' : 'node';
const r = BROWSER ? await inBrowser() : { ...(await measure(kernels, kernels64, opts, (s) => console.log(s))), engine: `node ${process.version}` };
console.log(`${r.engine}: memory64 form vs 32-bit, ${opts.threads} threads, ${opts.count} weights [${opts.n}, ${opts.n}] per format, median of ${opts.rounds} interleaved rounds (weight GB/s); memory64 weights from ${(r.at64 / 2 ** 30).toFixed(2)} GiB`);
for (const row of r.rows) console.log(`${row.format.padEnd(5)} T=${String(row.T).padEnd(3)} i32 ${row.i32GBs.toFixed(2).padStart(6)}  memory64 ${row.memory64GBs.toFixed(2).padStart(6)}  ratio ${row.ratio.toFixed(3)}`);
const out = join(ROOT, 'bench', 'results', 'wasm-memory64.json');
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
const prev = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown> : {};
writeFileSync(out, JSON.stringify({ ...prev, [where]: { date: new Date().toISOString(), engine: r.engine, ...opts, at64: r.at64, rows: r.rows } }, null, 2));
