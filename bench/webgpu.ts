// The WebGPU backend, measured: kernels per decode step and prefill against the dispatches (compute
// passes) they take on WebGPU, shaders, GPU bytes for weights, state and arena, and tokens/s for
// prefill and decode against the CPU engine, for a tiny Bamba and a ~100M one (bf16 random weights
// written by `archc init-weights` to a temp dir, removed afterwards); and for Bamba-9B (no weights)
// the memory plan and what a device must allow, against the WebGPU defaults and the adapter here.
// Each config runs in a child process of its own. Prints tables; writes bench/results/webgpu.json.
//
// Run: npx tsx bench/webgpu.ts [--only tiny|100m|9b] [--runs N]
// Without a GPU, Dawn runs on SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderProgram } from '../codegen/wgsl/render.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { arenaBytes } from '../compiler/kernel/memory.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { defaultThreads } from '../runtime/cpu/pool.ts';
import { Model } from '../runtime/model.ts';
import type { EntryName, Program } from '../runtime/program.ts';
import { slotLayout, weightsRead } from '../runtime/program.ts';
import { createRng } from '../runtime/rng.ts';
import { numel } from '../runtime/tensor.ts';
import { type WebGpuBackend, describeAdapter, findGpu, preflight } from '../runtime/webgpu/backend.ts';
import type { WgslProfile, WgslProgram } from '../runtime/webgpu/shaders.ts';
import { median } from './timing.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

interface RunConfig {
  readonly name: string;
  readonly sets: readonly string[];
  readonly prompt: number;
  readonly decodeSteps: number;
  readonly runs: number;
}

const CONFIGS: readonly RunConfig[] = [
  {
    name: 'tiny',
    sets: ['vocab=96', 'd_model=32', 'n_layers=4', 'attn_layers=[1,3]', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=4', 'd_state=8', 'd_ff=64', 'chunk=4'],
    prompt: 32, decodeSteps: 16, runs: 3,
  },
  {
    // issue 11's ~100M Bamba: 768 wide, 12 layers (attention at 5 and 11), 12/4 heads, 24 Mamba heads × 64, state 64, chunk 64, SwiGLU 1280, 32k vocab
    name: '100m',
    sets: ['vocab=32000', 'd_model=768', 'n_layers=12', 'attn_layers=[5,11]', 'n_heads=12', 'n_kv_heads=4', 'mamba_heads=24', 'd_state=64', 'd_ff=1280', 'chunk=64'],
    prompt: 64, decodeSteps: 8, runs: 1,
  },
];

const MiB = 1024 * 1024;
const passes = (w: WgslProgram, e: EntryName, p: WgslProfile = 'gpu') => w.profiles[p][e].kernels.reduce((n, k) => n + k.passes.length, 0);

function ids(n: number, vocab: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => Math.floor(rng.next() * vocab));
}

/** Median seconds over `runs` timed calls after one warm-up call. */
async function timeAsync(runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const s: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    s.push((performance.now() - t) / 1000);
  }
  return median(s);
}

async function runConfig(cfg: RunConfig, runs: number): Promise<object> {
  const dir = mkdtempSync(join(tmpdir(), `archc-bench-webgpu-${cfg.name}-`));
  try {
    const init = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', dir, '--dtype', 'bf16', ...cfg.sets.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`init-weights failed:\n${init.stderr}`);
    const compiled = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')) });
    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const wgsl = renderProgram(program);
    const say = (what: string) => process.stderr.write(`  ${cfg.name}: ${what}\n`);
    say('weights written; loading');
    const t0 = performance.now();
    const gpu = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl, capacity: cfg.prompt + cfg.decodeSteps + 8 });
    const loadSeconds = (performance.now() - t0) / 1000;
    const cpu = await Model.loadProgram(program, dir, { capacity: cfg.prompt + cfg.decodeSteps + 8 });
    const backend = (gpu as unknown as { backend: WebGpuBackend }).backend;
    const V = gpu.vocab;
    const prompt = ids(cfg.prompt, V, 1);
    const next = ids(cfg.decodeSteps, V, 2);

    // dispatches: one prefill, then one decode step
    let d0 = backend.dispatches;
    const { states } = await gpu.prefillAsync([prompt]);
    const prefillDispatches = backend.dispatches - d0;
    d0 = backend.dispatches;
    await gpu.decodeAsync([next[0]!], states);
    const decodeDispatches = backend.dispatches - d0;
    gpu.releaseSequence(states[0]!);

    const measure = async (m: Model, async: boolean) => {
      const prefill = await timeAsync(runs, async () => {
        const r = async ? await m.prefillAsync([prompt]) : m.prefill([prompt]);
        m.releaseSequence(r.states[0]!);
      });
      const decodeS: number[] = [];
      for (let r = 0; r <= runs; r++) {
        const { states: s } = async ? await m.prefillAsync([prompt]) : m.prefill([prompt]);
        const t = performance.now();
        for (const id of next) await (async ? m.decodeAsync([id], s) : m.decode([id], s));
        if (r > 0) decodeS.push((performance.now() - t) / 1000);
        m.releaseSequence(s[0]!);
      }
      return { prefillTokensPerSecond: cfg.prompt / prefill, decodeTokensPerSecond: cfg.decodeSteps / median(decodeS) };
    };
    say('timing WebGPU');
    const webgpu = await measure(gpu, true);
    say('timing the CPU engine');
    const cpuRate = await measure(cpu, false);
    const result = {
      name: cfg.name, sets: cfg.sets, adapter: backend.adapter,
      parameters: program.weights.reduce((s, w) => s + numel(w.shape), 0),
      kernels: { decode: program.entries.decode.kernels.length, prefill: program.entries.prefill.kernels.length },
      shaders: { decode: passes(wgsl, 'decode'), prefill: passes(wgsl, 'prefill') },
      dispatches: { decodeStep: decodeDispatches, prefill: prefillDispatches },
      gpuBytes: {
        weights: backend.weightBytes(),
        statePerSlot: gpu.slotBytes,
        arenaPrefill: arenaBytes(program.entries.prefill, cfg.prompt, 1),
        arenaDecode: arenaBytes(program.entries.decode, 1, 1),
      },
      prompt: cfg.prompt, decodeSteps: cfg.decodeSteps, runs, loadSeconds,
      webgpu, cpu: { ...cpuRate, threads: defaultThreads() },
    };
    gpu.dispose();
    cpu.dispose();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The WebGPU spec's default limits (what a device gets without asking for more). */
const DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 256 * MiB, maxStorageBuffersPerShaderStage: 8 };

/** Bamba-9B, no weights: the memory plan and the limits a device must allow. */
async function fit9b(): Promise<object> {
  const compiled = compileFile(BAMBA, {});
  const program: Program = lowerToProgram(compiled.graph, compiled.bindings);
  const wgsl = renderProgram(program);
  const read = weightsRead(program.entries);
  const bytesOf = (w: { shape: readonly number[]; dtype: string }) => (w.dtype === 'f32' ? 4 : 2) * numel(w.shape);
  const onGpu = [...program.weights, ...program.derived].filter((w) => read.has(w.name));
  const largest = onGpu.reduce((a, w) => (bytesOf(w) > bytesOf(a) ? w : a));
  const context = 4096;
  const prefillTokens = 4096;
  const decodeBatch = 8;
  const arena = Math.max(arenaBytes(program.entries.prefill, prefillTokens, 1), arenaBytes(program.entries.decode, decodeBatch, decodeBatch));
  const slot = 4 * slotLayout(program.states, context).floats;
  const bindings = Math.max(...Object.values(wgsl.profiles.gpu).flatMap((e) => e.kernels.flatMap((k) => k.passes.map((p) => p.bindings.length))));
  const needs = {
    maxStorageBufferBindingSize: Math.max(bytesOf(largest), arena, slot * decodeBatch),
    maxBufferSize: Math.max(bytesOf(largest), arena, slot * decodeBatch),
    maxStorageBuffersPerShaderStage: bindings,
  };
  const verdict = (limits: typeof DEFAULT_LIMITS) => {
    const problems = preflight(program, wgsl, limits as unknown as GPUSupportedLimits);
    for (const k of ['maxBufferSize'] as const) if (needs[k] > limits[k]) problems.push(`${k}: needs ${needs[k]}, has ${limits[k]}`);
    if (needs.maxStorageBufferBindingSize > limits.maxStorageBufferBindingSize && bytesOf(largest) <= limits.maxStorageBufferBindingSize) problems.push(`the arena or state pool (${needs.maxStorageBufferBindingSize} bytes) exceeds one binding`);
    return { fits: problems.length === 0, problems: problems.length, first: problems.slice(0, 3) };
  };
  let adapter: { name: string; limits: typeof DEFAULT_LIMITS } | null = null;
  try {
    const gpu = await findGpu();
    const a = await gpu.requestAdapter();
    if (a) adapter = { name: describeAdapter(a), limits: { maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize, maxBufferSize: a.limits.maxBufferSize, maxStorageBuffersPerShaderStage: a.limits.maxStorageBuffersPerShaderStage } };
  } catch { /* no adapter: the defaults only */ }
  return {
    name: '9b',
    parameters: program.weights.reduce((s, w) => s + numel(w.shape), 0),
    kernels: { decode: program.entries.decode.kernels.length, prefill: program.entries.prefill.kernels.length },
    shaders: { decode: passes(wgsl, 'decode'), prefill: passes(wgsl, 'prefill') },
    wgslBytes: JSON.stringify(wgsl).length,
    gpuBytes: { weights: onGpu.reduce((s, w) => s + bytesOf(w), 0), largestWeight: { name: largest.name, bytes: bytesOf(largest) }, arena, arenaAt: { prefillTokens, decodeBatch }, statePerSlot: slot, context },
    needs,
    fit: { webgpuDefaults: { limits: DEFAULT_LIMITS, ...verdict(DEFAULT_LIMITS) }, ...(adapter ? { here: { adapter: adapter.name, limits: adapter.limits, ...verdict(adapter.limits) } } : {}) },
  };
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const TAG = 'WEBGPU-RESULT ';

async function main(): Promise<void> {
  if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'archc-xdg-'));
  const runsArg = arg('--runs');
  const child = arg('--child');
  if (child) {
    const cfg = CONFIGS.find((c) => c.name === child);
    const r = cfg ? await runConfig(cfg, runsArg ? Number(runsArg) : cfg.runs) : await fit9b();
    process.stdout.write(TAG + JSON.stringify(r) + '\n');
    process.exit(0); // Dawn's instance holds the process open
  }
  const only = arg('--only');
  const results: Record<string, unknown>[] = [];
  for (const name of [...CONFIGS.map((c) => c.name), '9b'].filter((n) => !only || n === only)) {
    process.stderr.write(`${name}: measuring…\n`);
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', name, ...(runsArg ? ['--runs', runsArg] : [])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    const line = r.stdout.split('\n').find((l) => l.startsWith(TAG));
    if (r.status !== 0 || !line) throw new Error(`${name} failed (status ${r.status})\n${r.stdout}`);
    results.push(JSON.parse(line.slice(TAG.length)));
  }
  for (const r of results) console.log(JSON.stringify(r, null, 1).replace(/\n\s*(?=[\]}\d"])/g, ' '));
  const out = join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'webgpu.json'), JSON.stringify({ bench: 'webgpu', date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, results }, null, 2) + '\n');
  console.log(`wrote ${join('bench', 'results', 'webgpu.json')}`);
}

await main();
