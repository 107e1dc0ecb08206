// End-to-end CPU throughput of a Bamba model: prefill tokens/s, decode tokens/s and peak RSS, for
// a tiny config and a ~100M-parameter one, on random f32 weights written to a temp dir (removed
// afterwards). Each config runs in a child process of its own, so its peak RSS is its own.
// Prints a table and writes bench/results/cpu-run.json.
//
// Run: npx tsx bench/cpu-run.ts [--only tiny|100m] [--runs N] [--threads N]   (threads default: ARCHC_THREADS, else the cores, at most 8)

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { defaultThreads } from '../runtime/cpu/pool.ts';
import { Model } from '../runtime/model.ts';
import { createRng } from '../runtime/rng.ts';
import { numel } from '../runtime/tensor.ts';
import { median, timeCalls } from './timing.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');

interface BenchConfig {
  readonly name: string;
  readonly sets: readonly string[];
  /** Prompt length of every prefilled sequence. */
  readonly prompt: number;
  /** Batch sizes (sequences run together) for prefill and for decode. */
  readonly prefillBatches: readonly number[];
  readonly decodeBatches: readonly number[];
  /** Decode steps per timed run (each step is one token for every sequence of the batch). */
  readonly decodeSteps: number;
  /** Timed runs per measurement (after one untimed warm-up run). */
  readonly runs: number;
}

const CONFIGS: readonly BenchConfig[] = [
  {
    name: 'tiny',
    sets: ['vocab=96', 'd_model=32', 'n_layers=4', 'attn_layers=[1,3]', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=4', 'd_state=8', 'd_ff=64', 'chunk=4', 'dtype="f32"'],
    prompt: 128, prefillBatches: [1, 4], decodeBatches: [1, 4], decodeSteps: 64, runs: 5,
  },
  {
    // 768 wide, 8 layers (attention at 3), 24 Mamba heads × 64 dims, state 64, SwiGLU 2560, 32k vocab, tied
    name: '100m',
    sets: ['vocab=32000', 'd_model=768', 'n_layers=8', 'attn_layers=[3]', 'n_heads=12', 'n_kv_heads=4', 'mamba_heads=24', 'd_state=64', 'd_ff=2560', 'chunk=64', 'dtype="f32"'],
    prompt: 64, prefillBatches: [1], decodeBatches: [1, 4], decodeSteps: 16, runs: 3,
  },
];

interface Measurement {
  readonly batch: number;
  /** Tokens per timed run (batch × prompt for prefill, batch × steps for decode). */
  readonly tokens: number;
  readonly runs: number;
  readonly medianSeconds: number;
  readonly tokensPerSecond: number;
}

interface ConfigResult {
  readonly name: string;
  readonly sets: readonly string[];
  readonly parameters: number;
  readonly weightBytes: number;
  readonly prompt: number;
  readonly decodeSteps: number;
  readonly initSeconds: number;
  readonly loadSeconds: number;
  readonly prefill: readonly Measurement[];
  readonly decode: readonly Measurement[];
  readonly rssAfterLoadMiB: number;
  readonly peakRssMiB: number;
}

const MiB = 1024 * 1024;

function ids(n: number, vocab: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => Math.floor(rng.next() * vocab));
}

/** Median seconds of `fn` over `runs` timed calls after one warm-up call. */
function timeRuns(runs: number, fn: () => void): number {
  return median(timeCalls(fn, runs, 1));
}

/** One config, in this process: write the checkpoint with `archc init-weights`, load, measure. */
async function runConfig(cfg: BenchConfig, runs: number): Promise<ConfigResult> {
  const dir = mkdtempSync(join(tmpdir(), `archc-bench-${cfg.name}-`));
  try {
    const t0 = performance.now();
    const init = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', dir, '--dtype', 'f32', ...cfg.sets.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`init-weights failed:\n${init.stderr}`);
    const initSeconds = (performance.now() - t0) / 1000;
    const weightBytes = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(join(dir, f)).size, 0);

    const t1 = performance.now();
    const compiled = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')) });
    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const model = await Model.loadProgram(program, dir);
    const loadSeconds = (performance.now() - t1) / 1000;
    const rssAfterLoadMiB = process.memoryUsage().rss / MiB;
    const parameters = program.weights.reduce((s, w) => s + numel(w.shape), 0);
    const V = model.vocab;

    const prefill = cfg.prefillBatches.map((B): Measurement => {
      const prompts = Array.from({ length: B }, (_, b) => ids(cfg.prompt, V, 10 + b));
      const s = timeRuns(runs, () => { for (const st of model.prefill(prompts).states) model.releaseSequence(st); });
      return { batch: B, tokens: B * cfg.prompt, runs, medianSeconds: s, tokensPerSecond: (B * cfg.prompt) / s };
    });

    const decode = cfg.decodeBatches.map((B): Measurement => {
      const prompts = Array.from({ length: B }, (_, b) => ids(cfg.prompt, V, 20 + b));
      const next = Array.from({ length: cfg.decodeSteps }, (_, t) => ids(B, V, 100 + t));
      const samples: number[] = [];
      for (let r = 0; r <= runs; r++) {
        const { states } = model.prefill(prompts); // untimed: decode starts from a filled cache
        const t = performance.now();
        for (let k = 0; k < cfg.decodeSteps; k++) model.decode(next[k]!, states);
        if (r > 0) samples.push((performance.now() - t) / 1000); // run 0 warms up
        for (const st of states) model.releaseSequence(st);
      }
      const s = median(samples);
      return { batch: B, tokens: B * cfg.decodeSteps, runs, medianSeconds: s, tokensPerSecond: (B * cfg.decodeSteps) / s };
    });

    const peakRssMiB = (process.resourceUsage().maxRSS * 1024) / MiB;
    return {
      name: cfg.name, sets: cfg.sets, parameters, weightBytes, prompt: cfg.prompt, decodeSteps: cfg.decodeSteps,
      initSeconds, loadSeconds, prefill, decode, rssAfterLoadMiB, peakRssMiB,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const RESULT_TAG = 'CPU-RUN-RESULT ';

async function main(): Promise<void> {
  const runsArg = arg('--runs');
  const child = arg('--child');
  if (child) {
    const cfg = CONFIGS.find((c) => c.name === child)!;
    const r = await runConfig(cfg, runsArg ? Number(runsArg) : cfg.runs);
    process.stdout.write(RESULT_TAG + JSON.stringify(r) + '\n');
    return;
  }
  const threadsArg = arg('--threads');
  if (threadsArg) process.env.ARCHC_THREADS = threadsArg;
  const threads = defaultThreads();
  const only = arg('--only');
  const chosen = CONFIGS.filter((c) => !only || c.name === only);
  const results: ConfigResult[] = [];
  for (const cfg of chosen) {
    process.stderr.write(`${cfg.name}: writing random weights, loading, measuring…\n`);
    // a fresh process per config, so that its peak RSS is its own (tsx's loader flags carry over)
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', cfg.name, ...(runsArg ? ['--runs', runsArg] : [])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
    if (r.status !== 0 || !line) throw new Error(`${cfg.name} failed (status ${r.status})\n${r.stdout}`);
    results.push(JSON.parse(line.slice(RESULT_TAG.length)) as ConfigResult);
  }

  const rows: string[][] = [['config', 'params', 'prompt', 'batch', 'prefill tok/s', 'decode tok/s', 'load s', 'peak RSS MiB']];
  for (const r of results) {
    const batches = [...new Set([...r.prefill.map((m) => m.batch), ...r.decode.map((m) => m.batch)])].sort((a, b) => a - b);
    for (const b of batches) {
      const p = r.prefill.find((m) => m.batch === b);
      const d = r.decode.find((m) => m.batch === b);
      rows.push([r.name, `${(r.parameters / 1e6).toFixed(2)}M`, String(r.prompt), String(b),
        p ? p.tokensPerSecond.toFixed(1) : '-', d ? d.tokensPerSecond.toFixed(1) : '-', r.loadSeconds.toFixed(2), r.peakRssMiB.toFixed(0)]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`CPU engine, ${threads} thread${threads === 1 ? '' : 's'}, f32 weights; median of timed runs after a warm-up; decode = ${results.map((r) => `${r.decodeSteps} steps (${r.name})`).join(', ')} after a prefill of the prompt`);
  console.log(fmt(rows[0]!));
  for (const r of rows.slice(1)) console.log(fmt(r));

  const out = join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const cpu = cpus()[0];
  writeFileSync(join(out, `cpu-run-${threads}t.json`), JSON.stringify({
    bench: 'cpu-run', date: new Date().toISOString(), node: process.version, cpu: cpu?.model, cores: cpus().length, threads, results,
  }, null, 2) + '\n');
  console.log(`wrote ${join('bench', 'results', `cpu-run-${threads}t.json`)}`);
}

await main();
