// Bamba-9B in a browser tab (issue 17): a pre-quantised checkpoint served over HTTP from 127.0.0.1
// and loaded by URL in headless Chromium — on WebGPU (SwiftShader: its buffers live in host memory,
// so the fit is real, the speed is not) on the page, or on the wasm backend in a dedicated worker of
// a cross-origin isolated page — prefilling a fixed prompt of token ids and generating greedy tokens;
// then the CPU reference engine on the same checkpoint in Node, and the two compared: the tokens
// must be equal, and each step's max |logit difference| is printed relative to the reference
// logits' scale (1 + max |logit|; this project's tests hold WebGPU to 1e-4 of it, wasm to 1e-5).
//
// Measured: load time, prefill and per-token times on each side, and the peak memory of the browser's
// process tree (VmRSS, and Pss, which counts a page shared between processes once, summed over
// chromium's processes, sampled every 0.5 s from /proc), with a breakdown by process type at the
// peak. Results go to bench/results/browser-9b.json (one entry per backend) and the console.
//
// Memory discipline: the browser run and the CPU reference each run as a child process under
// `flock <lock>` (default /work/data/bigmem.lock when the checkpoint is 1 GB or more; --lock none to
// skip), one after the other, so only one process holding the model runs at a time. The checkpoint
// is streamed from disk by byte range (never read whole into Node) and served no-store (Chromium's
// disk cache keeps no copy).
//
// Run: npx tsx bench/browser-9b.ts [--weights DIR] [--backend webgpu|wasm] [--tokens 2] [--prompt-len 4]
//        [--threads 2] [--capacity 64] [--max-batch-tokens N|model] [--wasm-memory-bytes N] [--wasm-memory64 on|off|auto]
//        [--timeout-min 90] [--lock FILE|none] [--skip-cpu] [--build-only] [--activations q8]
// --wasm-memory64: the wasm worker's memory (LoadOptions.wasmMemory64): on, one memory64 memory; off,
// several 32-bit memories; auto (the default), memory64 where Chromium has it (>= 133) and the packed
// weights outgrow one 32-bit memory (Bamba-9B at 4 bits does). memory64 runs without the program
// module (it has no memory64 form): its stages run on the reference families.
// --activations q8: the products round their input rows to 8 bits (runtime/act-quant.ts), in the browser and in
// the CPU reference alike (wasm and cpu only; the tokens are compared as before).
// --weights defaults to /work/data/bamba9b-q4, made when absent (once, under the lock) by `archc
// quantize --to q4` from bench/bamba9b.ts' /work/data/bamba9b-bf16. The package is built once per
// config.json and source tree (archc build, without CUDA compiles) under .tmp/browser-9b/.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { delimiter, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { readHfConfig } from '../runtime/hfconfig.ts';
import { createRng } from '../runtime/rng.ts';
import { CHROMIUM, ISOLATED, bundle, closeServer, launchChromium, port, serve } from '../test/helpers/browser.ts';
import type { ModelClass, Run, Spec } from './browser-9b/page.ts';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(SELF, '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');
const RESULTS = join(ROOT, 'bench', 'results', 'browser-9b.json');
/** SwiftShader's WebGPU adapter in Debian's chromium (the flags test/webgpu/browser.test.ts uses). */
/** The tolerances this project's tests hold each backend's logits to, of the reference logits' scale
 *  (test/webgpu/*, test/browser/wasm.test.ts): reported, not asserted (the tokens are). */
const TOLERANCE = { webgpu: 1e-4, wasm: 1e-5 } as const;
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'];

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) die(`${name} needs a value`);
  return v;
}
function intFlag(name: string, dflt: number): number {
  const v = flag(name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1) die(`${name}: give a positive integer, got ${JSON.stringify(v)}`);
  return Number(v);
}
function die(msg: string): never {
  console.error(`browser-9b: ${msg}`);
  process.exit(2);
}
const t0 = Date.now();
const say = (line: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${line}`);
const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;

// ---- memory of a process tree, from /proc ----

/** Each process's parent, for every process visible in /proc. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ')'
      out.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** The processes below `root` (not root itself). */
function descendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const [pid, ppid] of parents()) kids.set(ppid, [...(kids.get(ppid) ?? []), pid]);
  const out: number[] = [];
  const todo = [...(kids.get(root) ?? [])];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(kids.get(p) ?? []));
  }
  return out;
}

/** A `key: N kB` field of a /proc file, in bytes (0 when the process is gone). */
function kb(file: string, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** chromium's process type (gpu-process, renderer, utility:…; the browser process has none). Chromium
 *  rewrites its command line into one space-separated string, so the flags are found by pattern. */
function kind(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const t = /--type=(\S+)/.exec(cmd)?.[1];
    if (t === 'utility') return `utility:${/--utility-sub-type=(\S+)/.exec(cmd)?.[1] ?? '?'}`;
    return t ?? (/chrom/.test(cmd.split(/[\0 ]/)[0]!) ? 'browser' : cmd.split(/[\0 ]/)[0]!.split('/').pop()!);
  } catch {
    return '?';
  }
}

interface MemoryPeak {
  readonly samples: number;
  /** Peak of VmRSS summed over the tree, and the tree at that moment by process type. */
  readonly peakRss: number;
  readonly atPeak: Record<string, number>;
  /** Peak of Pss summed over the tree (a shared page counted once). */
  readonly peakPss: number;
  /** Peak RSS of this Node process (server and driver). */
  readonly nodePeakRss: number;
}

/** Samples the tree below this process every `ms` until stopped. */
function sampleMemory(ms = 500): { stop(): MemoryPeak } {
  let peakRss = 0, peakPss = 0, samples = 0, nodePeakRss = 0;
  let atPeak: Record<string, number> = {};
  const tick = () => {
    const pids = descendants(process.pid);
    const by: Record<string, number> = {};
    let rss = 0, pss = 0;
    for (const p of pids) {
      const r = kb(`/proc/${p}/status`, 'VmRSS');
      rss += r;
      pss += kb(`/proc/${p}/smaps_rollup`, 'Pss');
      const k = kind(p);
      by[k] = (by[k] ?? 0) + r;
    }
    samples++;
    if (rss > peakRss) { peakRss = rss; atPeak = by; }
    peakPss = Math.max(peakPss, pss);
    nodePeakRss = Math.max(nodePeakRss, process.memoryUsage.rss());
  };
  tick();
  const timer = setInterval(tick, ms);
  return { stop: () => { clearInterval(timer); tick(); return { samples, peakRss, atPeak, peakPss, nodePeakRss }; } };
}

// ---- serving files by range, streamed from disk ----

const TYPES: Record<string, string> = { html: 'text/html', js: 'text/javascript', json: 'application/json' };

/** `file` under `dir` with `Range: bytes=a-b` honoured (206), streamed; no-store so Chromium's disk
 *  cache keeps no copy. Counts the bytes sent into `sent`. */
function sendStreamed(dir: string, name: string, req: IncomingMessage, res: ServerResponse, sent: { bytes: number }): void {
  const file = resolve(dir, name);
  let size: number;
  try {
    if (!file.startsWith(dir + sep) || !statSync(file).isFile()) throw new Error('not a file');
    size = statSync(file).size;
  } catch {
    res.writeHead(404).end();
    return;
  }
  for (const [k, v] of Object.entries(ISOLATED)) res.setHeader(k, v);
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-type', TYPES[file.split('.').pop()!] ?? 'application/octet-stream');
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let [a, b] = [0, size - 1];
  if (m) {
    [a, b] = [Number(m[1]), Math.min(m[2] ? Number(m[2]) : size - 1, size - 1)];
    if (a > b) { res.writeHead(416, { 'content-range': `bytes */${size}` }).end(); return; }
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${size}`, 'content-length': b - a + 1 });
  } else {
    res.writeHead(200, { 'content-length': size });
  }
  if (size === 0) { res.end(); return; }
  const stream = createReadStream(file, { start: a, end: b });
  stream.on('data', (c) => { sent.bytes += c.length; });
  stream.pipe(res);
}

// ---- the phases ----

interface Plan {
  readonly weights: string;
  readonly backend: 'webgpu' | 'wasm';
  readonly site: string;
  readonly pkg: string;
  readonly spec: Spec;
  readonly timeoutMin: number;
}

/** The browser phase (a child process under the lock): serve, launch, run, sample memory. */
async function browserPhase(plan: Plan, out: string): Promise<void> {
  const sent = { bytes: 0 };
  const server = await serve((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    if (path === '/favicon.ico') return void res.writeHead(204).end();
    if (path.startsWith('/ckpt/')) return sendStreamed(plan.weights, path.slice(6), req, res, sent);
    return sendStreamed(plan.site, path === '/' ? 'index.html' : path.slice(1), req, res, sent);
  });
  const memory = sampleMemory();
  let browser: Browser | null = null;
  const result: Record<string, unknown> = { chromium: spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).stdout.trim() };
  const timer = setTimeout(() => { say(`no result after ${plan.timeoutMin} min: stopping`); void browser?.close(); }, plan.timeoutMin * 60_000);
  try {
    browser = await launchChromium(plan.backend === 'webgpu' ? WEBGPU_ARGS : []);
    const page = await browser.newPage();
    page.on('console', (m) => say(`[${m.type() === 'log' ? 'page' : m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => say(`[pageerror] ${e.message}`));
    page.on('crash', () => say('[crash] the page crashed'));
    await page.goto(`http://127.0.0.1:${port(server)}/`);
    await page.waitForFunction(() => typeof (window as unknown as { bench?: unknown }).bench === 'function', null, { timeout: 60_000 });
    result.adapter = await page.evaluate(async () => {
      const a = await navigator.gpu?.requestAdapter();
      if (!a) return null;
      const l = a.limits;
      return { ...a.info && { vendor: a.info.vendor, architecture: a.info.architecture, description: a.info.description },
        maxBufferSize: l.maxBufferSize, maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage };
    });
    // memory64: a memory whose addresses are i64 (the descriptor's `address`, earlier `index`)
    result.memory64 = await page.evaluate(() => ['address', 'index'].some((key) => {
      try { new WebAssembly.Memory({ initial: 1n, [key]: 'i64' } as unknown as WebAssembly.MemoryDescriptor); return true; } catch { return false; }
    }));
    say(`chromium ${String(result.chromium)}; adapter ${JSON.stringify(result.adapter)}; memory64 ${String(result.memory64)}`);
    result.run = await page.evaluate(([spec, inWorker]) => (window as unknown as { bench(s: Spec, w: boolean): Promise<Run> }).bench(spec as Spec, inWorker as boolean), [plan.spec, plan.backend === 'wasm'] as const);
  } catch (e) {
    result.error = String((e as Error)?.message ?? e).split('\n').slice(0, 12).join('\n');
    say(`browser run failed: ${String(result.error)}`);
  } finally {
    clearTimeout(timer);
    result.memory = memory.stop();
    result.servedBytes = sent.bytes;
    await browser?.close().catch(() => {});
    await closeServer(server);
  }
  writeFileSync(out, JSON.stringify(result));
}

/** The CPU reference phase (a child process under the lock): the package on backend 'cpu' in Node. */
async function cpuPhase(plan: Plan, threads: number, out: string): Promise<void> {
  const { runSteps } = await import('./browser-9b/page.ts');
  const { Model } = await import(join(plan.pkg, 'dist', 'index.js')) as { Model: ModelClass };
  const result: Record<string, unknown> = {};
  try {
    result.run = await runSteps(Model, { ...plan.spec, url: plan.weights, opts: { backend: 'cpu', threads, capacity: plan.spec.opts.capacity,
      ...(plan.spec.opts.activations ? { activations: plan.spec.opts.activations } : {}) } }, (l) => say(`[cpu] ${l}`));
  } catch (e) {
    result.error = String((e as Error)?.message ?? e);
    say(`CPU reference failed: ${String(result.error)}`);
  }
  result.peakRss = kb('/proc/self/status', 'VmHWM');
  writeFileSync(out, JSON.stringify(result));
}

/** Runs this file as `phase` in a child process, under `flock lock` unless lock is null. */
function child(phase: string, planFile: string, out: string, lock: string | null, extra: string[] = []): Promise<number> {
  const cmd = [process.execPath, '--import', 'tsx', SELF, '--phase', phase, '--plan', planFile, '--out', out, ...extra];
  if (lock) say(`${phase}: waiting for ${lock} (one big-model process at a time)`);
  // its own process group, so a signal to this script stops the child's browser too (flock does not
  // pass signals on)
  const p = spawn(lock ? 'flock' : cmd[0]!, lock ? [lock, ...cmd] : cmd.slice(1), { stdio: 'inherit', cwd: ROOT, detached: true });
  const stop = () => { try { process.kill(-p.pid!, 'SIGTERM'); } catch { /* gone */ } };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  return new Promise((done) => p.on('exit', (code) => { process.off('SIGINT', stop).off('SIGTERM', stop); done(code ?? 1); }));
}

// ---- the parent: build, bundle, run both phases, compare ----

function checkpointBytes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

/** The package for the checkpoint's config.json, built once under .tmp/browser-9b/<key>: the
 *  config less its quantization_config (a bf16 checkpoint and its q4 make one package) and the
 *  committed trees of the sources a package is made from (a merge or commit rebuilds it). */
function buildPackage(weights: string): { work: string; pkg: string } {
  const { quantization_config: _, ...config } = readHfConfig(join(weights, 'config.json'));
  const trees = spawnSync('git', ['rev-parse', ...['compiler', 'codegen', 'runtime', 'models', 'cli'].map((d) => `HEAD:${d}`)], { cwd: ROOT, encoding: 'utf8' }).stdout;
  const work = join(ROOT, '.tmp', 'browser-9b', createHash('sha256').update(JSON.stringify(config)).update(trees).digest('hex').slice(0, 12));
  const pkg = join(work, 'pkg');
  if (existsSync(join(pkg, 'dist', 'index.js'))) return { work, pkg };
  mkdirSync(work, { recursive: true });
  say(`building the package for ${join(weights, 'config.json')} into ${pkg}`);
  // without nvcc on the PATH the build renders the CUDA sources but compiles none (not used here)
  const path = (process.env.PATH ?? '').split(delimiter).filter((d) => !existsSync(join(d, 'nvcc'))).join(delimiter);
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'build', BAMBA, '--hf-config', join(weights, 'config.json'), '-o', pkg, '--name', 'bamba-bench', '--force'],
    { stdio: 'inherit', cwd: ROOT, env: { ...process.env, PATH: path } });
  if (r.status !== 0) die(`archc build failed (exit ${r.status})`);
  return { work, pkg };
}

/** The default checkpoint, made once from bench/bamba9b.ts' bf16 one by `archc quantize --to q4`. */
const Q4_DIR = '/work/data/bamba9b-q4';
const BF16_DIR = '/work/data/bamba9b-bf16';
const BIG_LOCK = '/work/data/bigmem.lock';

function makeQ4(): void {
  if (!existsSync(BF16_DIR)) die(`no ${Q4_DIR} and no ${BF16_DIR} to make it from: run npx tsx bench/bamba9b.ts (it writes the bf16 checkpoint), or pass --weights DIR`);
  const cmd = [process.execPath, join(ROOT, 'bin', 'archc.js'), 'quantize', BAMBA, '--weights', BF16_DIR, '--to', 'q4', '-o', Q4_DIR];
  say(`making ${Q4_DIR}: flock ${BIG_LOCK} ${cmd.join(' ')}`);
  const r = spawnSync('flock', [BIG_LOCK, ...cmd], { stdio: 'inherit', cwd: ROOT });
  if (r.status !== 0) die(`archc quantize failed (exit ${r.status})`);
}

/** The page and worker bundles (esbuild) of bench/browser-9b/page.ts over the package. */
async function bundleSite(work: string, pkg: string): Promise<string> {
  const site = join(work, 'site');
  mkdirSync(site, { recursive: true });
  const imports = `import { Model } from ${JSON.stringify(join(pkg, 'dist', 'index.js'))};\n`
    + `import { page, worker } from ${JSON.stringify(join(ROOT, 'bench', 'browser-9b', 'page.ts'))};\n`;
  writeFileSync(join(site, 'page.js'), `${imports}page(Model, 'worker.bundle.js');\n`);
  writeFileSync(join(site, 'worker.js'), `${imports}worker(Model);\n`);
  await bundle(join(site, 'page.js'), join(site, 'page.bundle.js'));
  await bundle(join(site, 'worker.js'), join(site, 'worker.bundle.js'));
  writeFileSync(join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/page.bundle.js"></script>\n');
  return site;
}

/** max |got − ref| / (1 + max |ref|). */
function relErr(got: readonly number[], ref: readonly number[]): number {
  if (got.length !== ref.length) return Infinity;
  let scale = 0, err = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]!));
    const e = Math.abs(got[i]! - ref[i]!);
    err = Number.isNaN(e) ? Infinity : Math.max(err, e);
  }
  return err / (1 + scale);
}

async function main(): Promise<void> {
  const phase = flag('--phase');
  if (phase) {
    const plan = JSON.parse(readFileSync(flag('--plan')!, 'utf8')) as Plan;
    if (phase === 'browser') return browserPhase(plan, flag('--out')!);
    if (phase === 'cpu') return cpuPhase(plan, intFlag('--threads', 2), flag('--out')!);
    die(`unknown phase ${phase}`);
  }
  const weights = resolve(flag('--weights') ?? Q4_DIR);
  if (weights === Q4_DIR && !existsSync(Q4_DIR)) makeQ4();
  if (!existsSync(join(weights, 'config.json'))) die(`${weights}: no config.json (a checkpoint directory in Hugging Face layout is needed)`);
  const backend = flag('--backend') ?? 'webgpu';
  if (backend !== 'webgpu' && backend !== 'wasm') die(`--backend: webgpu or wasm, got ${JSON.stringify(backend)}`);
  const tokens = intFlag('--tokens', 2);
  const promptLen = intFlag('--prompt-len', 4);
  const threads = intFlag('--threads', 2);
  const capacity = intFlag('--capacity', Math.max(64, promptLen + tokens));
  const timeoutMin = intFlag('--timeout-min', 90);
  const bytes = checkpointBytes(weights);
  const lockFlag = flag('--lock');
  const lock = lockFlag === 'none' ? null : lockFlag ?? (bytes >= 1e9 ? BIG_LOCK : null);

  const vocab = readHfConfig(join(weights, 'config.json')).vocab_size;
  if (typeof vocab !== 'number') die(`${join(weights, 'config.json')}: no vocab_size`);
  // a fixed prompt: token ids from a seeded generator, the same on every run
  const rng = createRng(17);
  const prompt = Array.from({ length: promptLen }, () => rng.nextU32() % vocab);

  const { work, pkg } = buildPackage(weights);
  const site = await bundleSite(work, pkg);
  if (process.argv.includes('--build-only')) return say(`built ${pkg} and bundled ${site}`);
  // WebGPU plans its buffers' splits for maxBatchTokens (default: the model's context). For
  // Bamba-9B that is 4096 tokens, whose forward arena splits into 3 bindings of 1 GiB, and the SSD's
  // state-passing pass then binds 11 storage buffers, over the 10 Chromium's SwiftShader adapter
  // allows (Dawn in Node allows 12): RT501 for 29 passes (planSplits with Chromium's limits). This
  // run's batches hold at most the prompt, so the plan is made for `capacity` tokens unless told `model`.
  const mbt = flag('--max-batch-tokens') === 'model' ? null : intFlag('--max-batch-tokens', capacity);
  // wasm: --wasm-memory-bytes lowers the bytes one WebAssembly memory may hold (a small model then
  // spreads its weights over several memories as Bamba-9B must)
  const memBytes = flag('--wasm-memory-bytes') ? intFlag('--wasm-memory-bytes', 0) : null;
  const m64 = flag('--wasm-memory64') ?? 'auto';
  if (!['on', 'off', 'auto'].includes(m64)) die(`--wasm-memory64: on, off or auto, got ${m64}`);
  const activations = flag('--activations') as 'f32' | 'q8' | undefined;
  if (activations !== undefined && activations !== 'q8' && activations !== 'f32') die(`--activations: f32 or q8, got ${activations}`);
  const opts = { backend, capacity, ...(activations ? { activations } : {}),
    ...(backend === 'wasm' ? { threads, ...(memBytes ? { wasmMemoryBytes: memBytes } : {}), ...(m64 === 'auto' ? {} : { wasmMemory64: m64 === 'on' }) } : mbt ? { webgpu: { maxBatchTokens: mbt } } : {}) } as const;
  const plan: Plan = { weights, backend, site, pkg, spec: { url: '/ckpt/', opts, prompt, tokens }, timeoutMin };
  const planFile = join(work, 'plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  say(`${weights}: ${gb(bytes)} of safetensors; ${backend} in ${backend === 'wasm' ? `a worker, ${threads} threads` : 'the page'}; prompt ${JSON.stringify(prompt)}; ${tokens} tokens; load options ${JSON.stringify(opts)}`);

  const browserOut = join(work, `browser-${backend}.json`);
  // the CPU reference of one checkpoint, prompt and token count is made once (the other backend's
  // run reuses it): keyed by the checkpoint's files (names, sizes, times) and the spec
  const files = readdirSync(weights).sort().map((f) => { const st = statSync(join(weights, f)); return `${f} ${st.size} ${st.mtimeMs}`; });
  const cpuKey = createHash('sha256').update(JSON.stringify({ weights, files, prompt, tokens, capacity })).digest('hex').slice(0, 12);
  const cpuOut = join(work, `cpu-${cpuKey}.json`);
  const bcode = await child('browser', planFile, browserOut, lock);
  const b = existsSync(browserOut) ? JSON.parse(readFileSync(browserOut, 'utf8')) as { run?: Run; error?: string; memory: MemoryPeak; adapter?: unknown; memory64?: boolean; chromium: string; servedBytes: number } : null;
  if (!b) die(`the browser phase wrote nothing (exit ${bcode})`);
  const skipCpu = process.argv.includes('--skip-cpu');
  const reuse = !skipCpu && existsSync(cpuOut) && !(JSON.parse(readFileSync(cpuOut, 'utf8')) as { error?: string }).error;
  if (reuse) say(`the CPU reference of this checkpoint and spec was made before: ${cpuOut}`);
  const ccode = skipCpu || reuse ? 0 : await child('cpu', planFile, cpuOut, lock, ['--threads', String(threads)]);
  const c = !skipCpu && existsSync(cpuOut) ? JSON.parse(readFileSync(cpuOut, 'utf8')) as { run?: Run; error?: string; peakRss: number } : null;
  if (!skipCpu && !c) die(`the CPU phase wrote nothing (exit ${ccode})`);

  const steps = b.run && c?.run ? b.run.steps.map((s, i) => ({ token: s.token, want: c.run!.steps[i]!.token, relErr: relErr(s.logits, c.run!.steps[i]!.logits) })) : [];
  const equal = steps.length === tokens && steps.every((s) => s.token === s.want);
  const m = b.memory;
  console.log(`\n== Bamba in a browser tab: ${backend}${backend === 'wasm' ? ` (worker, ${b.run?.threads ?? '?'} threads)` : ''}, ${weights} (${gb(bytes)})`);
  if (b.error) console.log(`browser: FAILED: ${b.error}`);
  if (b.run) {
    const r = b.run;
    console.log(`browser: load ${(r.loadMs / 1000).toFixed(1)} s, prefill ${promptLen} tokens ${(r.steps[0]!.ms / 1000).toFixed(1)} s, decode ${r.steps.slice(1).map((s) => `${(s.ms / 1000).toFixed(1)} s`).join(', ') || '-'}`);
    console.log(`browser tokens ${JSON.stringify(r.steps.map((s) => s.token))}; top-5 ${JSON.stringify(r.steps.map((s) => s.top5.map((t) => t.id)))}`);
    if (r.memories.length) console.log(`wasm memories: ${r.memories.map((x) => `${gb(x.bytes)}${x.address === 'i64' ? ' memory64' : ''} (${x.weights} weights)`).join(', ')}`);
  }
  console.log(`browser peak memory: VmRSS ${gb(m.peakRss)} summed over its processes (${Object.entries(m.atPeak).map(([k, v]) => `${k} ${gb(v)}`).join(', ')}), Pss ${gb(m.peakPss)}; ${m.samples} samples; Node (server, driver) ${gb(m.nodePeakRss)}; served ${gb(b.servedBytes)}`);
  if (c?.error) console.log(`cpu reference: FAILED: ${c.error}`);
  if (c?.run) console.log(`cpu reference: load ${(c.run.loadMs / 1000).toFixed(1)} s, prefill ${(c.run.steps[0]!.ms / 1000).toFixed(1)} s, tokens ${JSON.stringify(c.run.steps.map((s) => s.token))}, peak RSS ${gb(c.peakRss)}`);
  for (const [i, s] of steps.entries()) console.log(`step ${i}: browser ${s.token}, cpu ${s.want} ${s.token === s.want ? 'equal' : 'DIFFER'}; max |logit diff| / (1 + max |logit|) = ${s.relErr.toExponential(2)} (${s.relErr <= TOLERANCE[backend] ? 'within' : 'OVER'} ${backend}'s ${TOLERANCE[backend]})`);
  console.log(skipCpu ? 'tokens not compared (--skip-cpu)' : `tokens ${equal ? 'EQUAL' : 'NOT EQUAL'} to the CPU reference`);

  const strip = (r: Run | undefined) => r && { ...r, steps: r.steps.map(({ logits: _, ...s }) => s) };
  const entry = {
    date: new Date().toISOString(), command: `npx tsx bench/browser-9b.ts ${process.argv.slice(2).join(' ')}`,
    weights, checkpointBytes: bytes, prompt, tokens, capacity,
    chromium: b.chromium, adapter: b.adapter, memory64: b.memory64,
    browser: { ...(b.error ? { error: b.error } : {}), run: strip(b.run), memory: m, servedBytes: b.servedBytes },
    cpu: skipCpu ? null : { ...(c?.error ? { error: c.error } : {}), run: strip(c?.run), peakRss: c?.peakRss },
    steps, tolerance: TOLERANCE[backend], tokensEqual: skipCpu ? null : equal,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const all = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, unknown> : {};
  // one entry per backend, and per wasm memory limit when one is given
  const key = `${backend}${memBytes ? `-memory-bytes-${memBytes}` : ''}`;
  all[key] = entry;
  writeFileSync(RESULTS, `${JSON.stringify(all, null, 2)}\n`);
  say(`wrote ${RESULTS} (${key})`);
  if (b.error || c?.error || (!skipCpu && !equal)) process.exitCode = 1;
}

await main();
