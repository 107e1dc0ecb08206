// Bamba-9B at full size on this machine: the published model's shape (untied, 9.78B weights) with
// random weights, written once as a sharded bf16 checkpoint like the published one, then, for each
// weight format (q4, q8 and, with --formats, bf16 where memory allows), in a fresh process each:
//   load from the bf16 checkpoint (quantising as it streams) on the wasm backend: seconds, GB/s of
//   checkpoint, peak resident memory; prefill 512 tokens; decode 32 tokens after it (batch 1);
//   the decode's weight bytes per second against this machine's memory-copy bandwidth;
// and the logits of a short prompt against the CPU reference engine loaded with the same format
// (each format's kernels must equal its reference within 1e-5 of the logits' scale).
//
// Run: npx tsx bench/bamba9b.ts [--dir /work/data/bamba9b-bf16] [--formats q4,q8] [--threads 2]
//        [--prefill 512] [--decode 32] [--check 4] [--no-reference] [--load-only] [--tied]
//        (formats: bf16, q8, q4, and q8a8 / q4a8 with 8-bit activations)
//        [--llama bamba9b-q4_0.gguf] [--rounds 1] [--cold] [--profile]
// --cold: no read of the checkpoint before the loads, and the page cache dropped before each (where
// /proc/sys/vm/drop_caches is writable): a load from disk, as after a download or a reboot.
// --llama: llama.cpp's llama-bench on that GGUF (bench/llama/to_gguf.py of the same checkpoint, then
// llama-quantize Q4_0) after archc's runs, same threads, prefill and decode, for the side by side.
// --rounds N: N interleaved rounds (archc's formats, then llama.cpp), each ratio of the round's own
// pair, and their median: both sides move by 10-20 % from run to run on a shared machine.
// --profile: the decode's wall time per token by kernel family, the products (linearAt: the rows'
// rounding, the GEMV and its threads' meeting) apart from their matmul's prologue and epilogue.
// The checkpoint (~19.6 GB untied, 18.5 GB tied) is made with `archc init-weights models/bamba.arch
// --dtype bf16 --set tie=false --shard-size 5000000000` when the directory does not exist. Big
// processes run one at a time (each holds the model). Writes bench/results/bamba9b.json.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { readHfConfig } from '../runtime/hfconfig.ts';
import { Model } from '../runtime/model.ts';
import type { QuantDType } from '../runtime/quant.ts';
import { WasmKernels } from '../runtime/wasm/kernels.ts';
import { QUANT_LAYOUT } from '../runtime/wasm/layout.ts';
import { run, tool } from './llama/common.ts';
import { copyBench } from './memcopy.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');
const argv = process.argv.slice(2);
const flag = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : dflt;
};
const TIED = argv.includes('--tied');
const DIR = resolve(flag('--dir', `/work/data/bamba9b-bf16${TIED ? '-tied' : ''}`));
/** bf16, q8, q4, or q8a8 / q4a8: the weights' format with 8-bit activations (runtime/act-quant.ts). */
const FORMATS = flag('--formats', 'q4,q8').split(',');
const THREADS = Number(flag('--threads', '2'));
const PREFILL = Number(flag('--prefill', '512'));
const DECODE = Number(flag('--decode', '32'));
const CHECK = Number(flag('--check', '4'));
const REFERENCE = !argv.includes('--no-reference');
/** Only load (time, peak RSS): no runs, no reference. */
const LOAD_ONLY = argv.includes('--load-only');
const CHILD = flag('--child', '');
const LLAMA = flag('--llama', '');
const COLD = argv.includes('--cold');
const ROUNDS = Number(flag('--rounds', '1'));
const PROFILE = argv.includes('--profile');

/** Bytes per weight a wasm decode step reads of a product's matrix in each format: the packed
 *  panels (runtime/wasm/layout.ts QUANT_LAYOUT: one group is 8 columns × 32 k), not the
 *  checkpoint's 4.5 and 8.5 bits. */
const BYTES_PER_WEIGHT: Record<string, number> = { bf16: 2, q8: QUANT_LAYOUT.q8.group / 256, q4: QUANT_LAYOUT.q4.group / 256 };

/** The prompt: fixed ids spread over the vocabulary (random weights: any ids will do). */
const promptIds = (n: number, vocab: number): number[] => Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab);

interface ChildResult {
  backend: string;
  format: string;
  loadS: number;
  checkpointBytes: number;
  rssAfterLoad: number;
  peakRss: number;
  weightBytesPerToken: number;
  prefillS?: number;
  decodeS?: number;
  decodeCpuS?: number;
  /** --profile: decode wall ms per token by kernel family. */
  decodeSplit?: Record<string, number>;
  checkS: number;
  logitsFile: string;
}

/** One process: load the checkpoint with `format` on `backend`, the short prompt's logits to a file,
 *  then (wasm) prefill PREFILL and decode DECODE. Prints its result as one JSON line. */
async function child(spec: string): Promise<void> {
  const [backend, format, logitsFile] = spec.split(':') as ['wasm' | 'cpu', string, string];
  const weights = format.slice(0, format.endsWith('a8') ? -2 : undefined) as 'bf16' | QuantDType;
  const activations = format.endsWith('a8') ? 'q8' : 'f32';
  const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(DIR, 'config.json')) });
  const program = lowerToProgram(c.graph, c.bindings);
  const wasm = backend === 'wasm' ? { wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program) } : {};
  const t0 = performance.now();
  // a checkpoint quantised already (archc quantize) loads as it is
  const prequantised = 'quantization_config' in readHfConfig(join(DIR, 'config.json'));
  const model = await Model.loadProgram(program, DIR, { backend, threads: THREADS, capacity: Math.max(PREFILL + DECODE, CHECK) + 8,
    ...(weights === 'bf16' || prequantised ? {} : { quantize: weights }), ...(weights === 'bf16' ? {} : { activations }), ...wasm });
  const loadS = (performance.now() - t0) / 1000;
  const rssAfterLoad = process.resourceUsage().maxRSS * 1024;
  const V = model.vocab;
  // the products' weights a decode step reads: every 2-D weight but the embedding table (a gather)
  let weightBytesPerToken = 0;
  for (const w of program.weights) {
    if (w.shape.length !== 2 || /embed_tokens/.test(w.name)) continue;
    weightBytesPerToken += w.shape[0]! * w.shape[1]! * (BYTES_PER_WEIGHT[weights] ?? 2);
  }
  if (LOAD_ONLY) {
    const out = { backend, format, loadS, checkpointBytes: checkpointBytes(DIR), rssAfterLoad, peakRss: rssAfterLoad, weightBytesPerToken, checkS: 0, logitsFile };
    model.dispose();
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
    return;
  }
  const t1 = performance.now();
  const checked = model.prefill([promptIds(CHECK, V)]);
  const checkS = (performance.now() - t1) / 1000;
  writeFileSync(logitsFile, checked.logits[0]!);
  model.releaseSequence(checked.states[0]!);
  const out: ChildResult = { backend, format, loadS, checkpointBytes: checkpointBytes(DIR), rssAfterLoad, peakRss: 0, weightBytesPerToken, checkS, logitsFile };
  if (backend === 'wasm') {
    const ids = promptIds(PREFILL + DECODE, V);
    const t2 = performance.now();
    const { states, logits } = model.prefill([ids.slice(0, PREFILL)]);
    out.prefillS = (performance.now() - t2) / 1000;
    // greedy continuation (what a user's decode does), timed token by token
    let next = argmax(logits[0]!);
    const spent = PROFILE ? profileFamilies(model) : null;
    const t3 = performance.now(), c3 = process.cpuUsage();
    for (let k = 0; k < DECODE; k++) {
      const l = model.decode([next], states);
      next = argmax(l);
    }
    out.decodeS = (performance.now() - t3) / 1000;
    const cu = process.cpuUsage(c3);
    out.decodeCpuS = (cu.user + cu.system) / 1e6;
    if (spent) {
      // the products run inside the matmul family: its own share is the fused prologues and epilogues
      spent.set('matmul', (spent.get('matmul') ?? 0) - (spent.get('products') ?? 0));
      spent.set('outside the families', out.decodeS * 1000 - [...spent.values()].reduce((a, b) => a + b, 0));
      out.decodeSplit = Object.fromEntries([...spent].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / DECODE]));
    }
  }
  out.peakRss = process.resourceUsage().maxRSS * 1024;
  model.dispose();
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

/** Wraps the wasm backend's kernel families and its products (WasmKernels.linearAt) in timers:
 *  wall ms spent in each, by name ('products' for linearAt), from now on. */
function profileFamilies(model: Model): Map<string, number> {
  const spent = new Map<string, number>();
  const timed = (key: string, fn: () => void) => {
    const t0 = performance.now();
    fn();
    spent.set(key, (spent.get(key) ?? 0) + performance.now() - t0);
  };
  const backend = (model as unknown as { backend: { families: Record<string, (...a: unknown[]) => void> } }).backend;
  for (const [f, run] of Object.entries(backend.families)) backend.families[f] = (...a: unknown[]) => timed(f, () => run(...a));
  const proto = WasmKernels.prototype as unknown as { linearAt: (...a: unknown[]) => void };
  const orig = proto.linearAt;
  proto.linearAt = function (this: unknown, ...a: unknown[]) { timed('products', () => orig.apply(this, a)); };
  return spent;
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
  return b;
}

function checkpointBytes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

/** Reads every shard once (the page cache then holds what fits): seconds and bytes. */
function warmPageCache(dir: string): { s: number; bytes: number } {
  const buf = Buffer.allocUnsafe(64 << 20);
  let bytes = 0;
  const t0 = performance.now();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) {
    const fd = openSync(join(dir, f), 'r');
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) bytes += n;
    closeSync(fd);
  }
  return { s: (performance.now() - t0) / 1000, bytes };
}

/** Drops the page cache (clean pages only: written data is synced first); false where not allowed. */
function dropCaches(): boolean {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1\n');
    return true;
  } catch {
    return false;
  }
}

/** Runs one child process; its RESULT line, with stderr passed through. */
function runChild(spec: string): Promise<ChildResult> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...argv, '--child', spec], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d; });
    p.on('close', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) fail(new Error(`child ${spec} exited ${code ?? signal}:\n${out}`));
      else done(JSON.parse(line.slice(7)) as ChildResult);
    });
  });
}

function compareLogits(a: string, b: string): { maxAbs: number; scale: number; rel: number; sameTop: boolean } {
  const x = new Float32Array(readFileSync(a).buffer.slice(0)), y = new Float32Array(readFileSync(b).buffer.slice(0));
  let maxAbs = 0, scale = 0;
  for (let i = 0; i < x.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return { maxAbs, scale, rel: maxAbs / scale, sameTop: argmax(x) === argmax(y) };
}

const fmt = (x: number | undefined, d = 1): string => (x === undefined ? '—' : x.toFixed(d));
const gb = (b: number): string => (b / 1e9).toFixed(2);

async function main(): Promise<void> {
  const conditions = () => `load average ${loadavg()[0]!.toFixed(1)}, ${gb(freemem())} of ${gb(totalmem())} GB free`;
  if (!existsSync(DIR)) {
    console.log(`writing ${DIR} (archc init-weights, bf16, ${TIED ? 'tied' : 'untied'}, shards of 5 GB) …`);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', DIR, '--dtype', 'bf16', '--set', `tie=${TIED}`, '--shard-size', '5000000000'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('init-weights failed');
    console.log(`  written in ${fmt((performance.now() - t0) / 1000)} s`);
  }
  console.log(`Bamba-9B (${DIR}), ${THREADS} threads, ${cpus()[0]?.model}; ${conditions()}`);
  const copy = { one: 0, all: 0 };
  {
    const bytes = 512 << 20;
    copy.one = 2 * bytes / copyBench(bytes, 1, 5) / 1e9;
    copy.all = 2 * bytes / copyBench(bytes, THREADS, 5) / 1e9;
  }
  console.log(`memory copy (read + write counted, 512 MiB): 1 thread ${fmt(copy.one)} GB/s, ${THREADS} threads ${fmt(copy.all)} GB/s`);
  const warm = COLD ? null : warmPageCache(DIR);
  if (warm) console.log(`read the checkpoint once: ${gb(warm.bytes)} GB in ${fmt(warm.s)} s (${fmt(warm.bytes / warm.s / 1e9, 2)} GB/s)`);
  const tmp = mkdtempSync(join(tmpdir(), 'archc-bamba9b-'));
  const results: (ChildResult & { check?: ReturnType<typeof compareLogits>; round: number })[] = [];
  const llamas: ReturnType<typeof llamaBench>[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
      for (const format of FORMATS) {
        if (COLD) console.log(`  page cache ${dropCaches() ? 'dropped' : 'NOT dropped (/proc/sys/vm/drop_caches is not writable here)'}`);
        const r = await runChild(`wasm:${format}:${join(tmp, `wasm-${format}.f32`)}`);
        let check;
        if (REFERENCE && !LOAD_ONLY && round === 1) {
          const ref = await runChild(`cpu:${format}:${join(tmp, `cpu-${format}.f32`)}`);
          check = compareLogits(r.logitsFile, ref.logitsFile);
          console.log(`  ${format}: reference loaded in ${fmt(ref.loadS)} s, its ${CHECK}-token prefill ${fmt(ref.checkS)} s`);
        }
        results.push({ ...r, check, round });
        console.log(`  ${format}: load ${fmt(r.loadS)} s (${fmt(r.checkpointBytes / r.loadS / 1e9, 2)} GB/s), peak RSS ${gb(r.peakRss)} GB, `
          + (LOAD_ONLY ? '' : `prefill ${PREFILL} ${fmt(PREFILL / r.prefillS!)} tok/s, decode ${fmt(DECODE / r.decodeS!, 2)} tok/s (CPU ${fmt(r.decodeCpuS! * 1000 / DECODE)} ms a token, all threads); `) + conditions());
        if (r.decodeSplit) console.log(`  ${format}: decode wall ms per token by family: ${Object.entries(r.decodeSplit).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ')}`);
      }
      if (LLAMA) llamas.push(llamaBench(LLAMA));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const rows = [['round', 'format', 'load s', 'load GB/s', 'RSS after load GB', 'peak RSS GB', `prefill ${PREFILL} tok/s`, 'decode tok/s', 'decode weight GB/s', `× copy ${THREADS}t`, 'logits vs reference']];
  for (const r of results) {
    const decodeGBs = r.weightBytesPerToken * DECODE / r.decodeS! / 1e9;
    const ran = r.decodeS !== undefined;
    rows.push([String(r.round), r.format, fmt(r.loadS), fmt(r.checkpointBytes / r.loadS / 1e9, 2), gb(r.rssAfterLoad), gb(r.peakRss), ran ? fmt(PREFILL / r.prefillS!, 1) : '—', ran ? fmt(DECODE / r.decodeS!, 2) : '—',
      ran ? fmt(decodeGBs, 2) : '—', ran ? fmt(decodeGBs / copy.all, 2) : '—', r.check ? `${r.check.rel.toExponential(1)} of scale${r.check.sameTop ? '' : ', top-1 differs'}` : '—']);
  }
  llamas.forEach((l, i) => rows.push([String(i + 1), `llama.cpp ${l.type}`, '—', '—', '—', '—', fmt(l.prefill, 1), fmt(l.decode, 2), '—', '—', '—']));
  // each round's 4-bit archc format against that round's llama.cpp run, and the median of the rounds
  const ratios = llamas.flatMap((l, i) => {
    const q4 = results.find((r) => r.round === i + 1 && r.format.startsWith('q4') && r.decodeS !== undefined);
    return q4 ? [{ format: q4.format, decode: DECODE / q4.decodeS! / l.decode, prefill: PREFILL / q4.prefillS! / l.prefill }] : [];
  });
  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
  if (ratios.length) {
    console.log(`archc ${ratios[0]!.format} / llama.cpp ${llamas[0]!.type}, by round: decode ${ratios.map((r) => fmt(r.decode, 2)).join(' ')}; prefill ${ratios.map((r) => fmt(r.prefill, 2)).join(' ')}`);
    console.log(`  median of ${ratios.length}: decode ${fmt(median(ratios.map((r) => r.decode)), 2)}×, prefill ${fmt(median(ratios.map((r) => r.prefill)), 2)}×`);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(`\n${rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n')}\n\n${conditions()}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'bamba9b.json'), JSON.stringify({ bench: 'bamba9b', date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model,
    cores: cpus().length, threads: THREADS, dir: DIR, tied: TIED, copyGBs: copy, warmRead: warm, prefill: PREFILL, decode: DECODE, rounds: ROUNDS, results, llama: llamas, ratios }, null, 2) + '\n');
}

/** llama-bench on `gguf`: prefill PREFILL and decode DECODE tokens/s, one repetition, THREADS threads. */
function llamaBench(gguf: string): { type: string; prefill: number; decode: number; loadAverage: number } {
  const out = run(tool('llama-bench'), ['-m', gguf, '-t', String(THREADS), '-p', String(PREFILL), '-n', String(DECODE), '-r', '1', '-o', 'json'], `llama-bench ${gguf}`);
  const rows = JSON.parse(out) as { n_prompt: number; n_gen: number; avg_ts: number; model_type: string }[];
  const pp = rows.find((r) => r.n_prompt === PREFILL && r.n_gen === 0), tg = rows.find((r) => r.n_gen === DECODE && r.n_prompt === 0);
  if (!pp || !tg) throw new Error(`llama-bench ${gguf}: no pp${PREFILL}/tg${DECODE} rows in its output`);
  console.log(`  llama.cpp ${tg.model_type}: prefill ${PREFILL} ${fmt(pp.avg_ts, 1)} tok/s, decode ${fmt(tg.avg_ts, 2)} tok/s; load average ${loadavg()[0]!.toFixed(1)}`);
  return { type: tg.model_type, prefill: pp.avg_ts, decode: tg.avg_ts, loadAverage: loadavg()[0]! };
}

if (CHILD) await child(CHILD);
else await main();
