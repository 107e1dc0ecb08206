// The WebGPU backend, measured: kernels per decode step and prefill against the dispatches (compute
// passes) they take on WebGPU, shaders, GPU bytes for weights, state and arena, and tokens/s for
// prefill and decode against the CPU engine, for a tiny Bamba and a ~100M one (bf16 random weights
// written by `archc init-weights` to a temp dir, removed afterwards); and for Bamba-9B (no weights)
// the memory plan, how each buffer splits over bindings and whether it fits, for the WebGPU defaults,
// two assumed discrete-GPU profiles and the adapter here.
// Each config runs in a child process of its own. Prints tables; writes bench/results/webgpu.json.
//
// WebGPU is measured in the profile its adapter gets (`adapter`; on SwiftShader the CPU-adapter
// shape), or in each of `--profiles` (e.g. cpu,gpu: both shapes on one adapter), interleaved with the
// CPU engine round by round; the load average at the start and end is recorded (shared machines).
//
// Run: npx tsx bench/webgpu.ts [--only tiny|100m|9b] [--runs N] [--profiles adapter|cpu,gpu] [--prompt N] [--decode-steps N] [--max-binding-bytes B]
// (--max-binding-bytes: split every buffer over B bytes across bindings, to measure what a split costs)
// Without a GPU, Dawn runs on SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
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
import { type WebGpuBackend, describeAdapter, findGpu } from '../runtime/webgpu/backend.ts';
import type { BindingKind, WgslProfile, WgslProgram } from '../runtime/webgpu/shaders.ts';
import { type BindingLimits, type SplitOptions, partsOf, planSplits, weightDeviceBytes } from '../runtime/webgpu/split.ts';
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

async function runConfig(cfg: RunConfig, runs: number, profiles: readonly (WgslProfile | 'adapter')[]): Promise<object> {
  const loadStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), `archc-bench-webgpu-${cfg.name}-`));
  try {
    const init = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', dir, '--dtype', 'bf16', ...cfg.sets.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`init-weights failed:\n${init.stderr}`);
    const compiled = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')) });
    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const wgsl = renderProgram(program);
    const say = (what: string) => process.stderr.write(`  ${cfg.name}: ${what}\n`);
    say('weights written; loading');
    const capacity = cfg.prompt + cfg.decodeSteps + 8;
    // one model per WebGPU profile measured (the adapter's own first), and the CPU engine
    const gpus: { profile: WgslProfile; model: Model; backend: WebGpuBackend; loadSeconds: number }[] = [];
    for (const profile of profiles) {
      const t0 = performance.now();
      const maxBinding = arg('--max-binding-bytes');
      const split = maxBinding ? { maxBindingBytes: Number(maxBinding), maxBatchTokens: cfg.prompt, stateSlots: 2 } : {};
      const model = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl, capacity, webgpu: { ...split, ...(profile === 'adapter' ? {} : { profile }) } });
      const backend = (model as unknown as { backend: WebGpuBackend }).backend;
      gpus.push({ profile: backend.profile, model, backend, loadSeconds: (performance.now() - t0) / 1000 });
    }
    const cpu = await Model.loadProgram(program, dir, { capacity });
    const V = cpu.vocab;
    const prompt = ids(cfg.prompt, V, 1);
    const next = ids(cfg.decodeSteps, V, 2);

    // dispatches: one prefill, then one decode step (also the warm-up: pipelines are made on first use)
    const dispatches = new Map<WgslProfile, { decodeStep: number; prefill: number }>();
    for (const g of gpus) {
      let d0 = g.backend.dispatches;
      const { states } = await g.model.prefillAsync([prompt]);
      const prefill = g.backend.dispatches - d0;
      d0 = g.backend.dispatches;
      await g.model.decodeAsync([next[0]!], states);
      dispatches.set(g.profile, { decodeStep: g.backend.dispatches - d0, prefill });
      g.model.releaseSequence(states[0]!);
    }
    cpu.releaseSequence(cpu.prefill([prompt]).states[0]!);

    // rounds: each engine in turn times one prefill and one decode of `decodeSteps` tokens, so a
    // change in the machine's load falls on all of them alike
    const engines = [...gpus.map((g) => ({ name: `webgpu-${g.profile}`, model: g.model, async: true })), { name: 'cpu-engine', model: cpu, async: false }];
    const times = new Map(engines.map((e) => [e.name, { prefill: [] as number[], decode: [] as number[] }]));
    for (let round = 0; round < runs; round++) {
      for (const e of engines) {
        say(`round ${round + 1}/${runs}: ${e.name}`);
        const m = e.model;
        let t = performance.now();
        const { states: s } = e.async ? await m.prefillAsync([prompt]) : m.prefill([prompt]);
        times.get(e.name)!.prefill.push((performance.now() - t) / 1000);
        t = performance.now();
        for (const id of next) await (e.async ? m.decodeAsync([id], s) : m.decode([id], s));
        times.get(e.name)!.decode.push((performance.now() - t) / 1000);
        m.releaseSequence(s[0]!);
      }
    }
    const rate = (name: string) => {
      const t = times.get(name)!;
      return { prefillTokensPerSecond: cfg.prompt / median(t.prefill), decodeTokensPerSecond: cfg.decodeSteps / median(t.decode) };
    };
    const result = {
      name: cfg.name, sets: cfg.sets, adapter: gpus[0]?.backend.adapter,
      split: Object.fromEntries([...(gpus[0]?.backend.plan.buffers ?? [])].filter(([, s]) => s.parts > 1).map(([k, s]) => [k, s.parts])),
      parameters: program.weights.reduce((s, w) => s + numel(w.shape), 0),
      kernels: { decode: program.entries.decode.kernels.length, prefill: program.entries.prefill.kernels.length },
      shaders: Object.fromEntries(gpus.map((g) => [g.profile, { decode: passes(wgsl, 'decode', g.profile), prefill: passes(wgsl, 'prefill', g.profile) }])),
      dispatches: Object.fromEntries(dispatches),
      gpuBytes: gpus[0] ? {
        weights: gpus[0].backend.weightBytes(),
        statePerSlot: gpus[0].model.slotBytes,
        arenaPrefill: arenaBytes(program.entries.prefill, cfg.prompt, 1),
        arenaDecode: arenaBytes(program.entries.decode, 1, 1),
      } : {},
      prompt: cfg.prompt, decodeSteps: cfg.decodeSteps, runs,
      loadSeconds: Object.fromEntries(gpus.map((g) => [g.profile, g.loadSeconds])),
      webgpu: Object.fromEntries(gpus.map((g) => [g.profile, rate(`webgpu-${g.profile}`)])),
      cpu: { ...rate('cpu-engine'), threads: defaultThreads() },
      loadAverage: { start: loadStart, end: loadavg() },
    };
    for (const g of gpus) g.model.dispose();
    cpu.dispose();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Device limits a fit is checked against. */
interface Profile {
  readonly name: string;
  readonly limits: BindingLimits;
  readonly note: string;
}

/** The WebGPU spec's default limits (what a device gets without asking for more), and what we
 *  assume of discrete GPUs: Chrome/Dawn on D3D12 report 2 GiB − 4 per binding, on Vulkan and Metal
 *  4 GiB − 4, with buffers up to 4 GiB and 10 storage buffers per stage (Chrome's higher tier).
 *  These are assumptions, not measurements; the adapter at hand is measured. */
const PROFILES: readonly Profile[] = [
  { name: 'webgpuDefaults', limits: { maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 256 * MiB, maxStorageBuffersPerShaderStage: 8 }, note: 'the WebGPU spec defaults' },
  { name: 'discrete2GiB', limits: { maxStorageBufferBindingSize: 2 * 1024 * MiB - 4, maxBufferSize: 4 * 1024 * MiB, maxStorageBuffersPerShaderStage: 10 }, note: 'assumed: a discrete GPU through D3D12' },
  { name: 'discrete4GiB', limits: { maxStorageBufferBindingSize: 4 * 1024 * MiB - 4, maxBufferSize: 4 * 1024 * MiB, maxStorageBuffersPerShaderStage: 10 }, note: 'assumed: a discrete GPU through Vulkan or Metal' },
];

/** A split as text: `3 × 128 MiB` (one part: `1`). */
const parts = (n: number, bytes: number) => (n === 1 ? '1' : `${n} × ${bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(bytes % MiB ? 1 : 0)} MiB`}`);

/** Bamba-9B, no weights: the memory plan, and for each device profile how every buffer splits over
 *  bindings (runtime/webgpu/split.ts) and whether every pass fits the bindings a stage allows. */
async function fit9b(): Promise<object> {
  const compiled = compileFile(BAMBA, {});
  const program: Program = lowerToProgram(compiled.graph, compiled.bindings);
  const wgsl = renderProgram(program);
  const read = weightsRead(program.entries);
  const onGpu = [...program.weights, ...program.derived].filter((w) => read.has(w.name));
  const largest = onGpu.reduce((a, w) => (weightDeviceBytes(w) > weightDeviceBytes(a) ? w : a));
  const context = 4096;
  const prefillTokens = 4096;
  const decodeBatch = 8;
  // the batches the plan is made for: a 4096-token prefill (or forward), decode of 8 slots
  const opts: SplitOptions = { maxBatchTokens: prefillTokens, stateSlots: decodeBatch, capacity: context };
  const slot = 4 * slotLayout(program.states, context).floats;
  const bindings = Math.max(...Object.values(wgsl.profiles.gpu).flatMap((e) => e.kernels.flatMap((k) => k.passes.map((p) => p.bindings.length))));
  const fit = (limits: BindingLimits) => {
    const { plan, problems } = planSplits(program, wgsl, limits, opts);
    const split = [...plan.buffers].filter(([, s]) => s.parts > 1);
    // weights by name with layer numbers folded: `model.layers.*.mamba.in_proj.weight ×29: 2 × 117 MiB`
    const weights = new Map<string, { n: number; text: string }>();
    for (const [k, s] of split) {
      if (!k.startsWith('w:')) continue;
      const key = `${k.slice(2).replace(/\.layers\.\d+\./, '.layers.*.')}: ${parts(s.parts, s.partBytes)}`;
      weights.set(key, { n: (weights.get(key)?.n ?? 0) + 1, text: key });
    }
    const batch = (b: BindingKind) => Object.fromEntries((['forward', 'prefill', 'decode'] as const).map((e) => [e, parts(partsOf(plan, b, e), plan.buffers.get(b)!.partBytes)]));
    const state = plan.buffers.get('state')!;
    return {
      fits: problems.length === 0,
      splits: {
        arena: batch('arena'), scratch0: batch('scratch0'), scratch1: batch('scratch1'), scratch2: batch('scratch2'),
        state: `${parts(state.parts, state.partBytes)}${state.partBytes >= slot ? ` (${Math.floor(state.partBytes / slot)} slots a part)` : ' (slots straddle parts)'}`,
        weights: { split: split.filter(([k]) => k.startsWith('w:')).length, of: onGpu.length, byName: [...weights.values()].map((w) => (w.n > 1 ? `${w.text.replace(':', ` ×${w.n}:`)}` : w.text)) },
      },
      mostBindings: Object.fromEntries((['forward', 'prefill', 'decode'] as const).map((e) => [e, Math.max(...wgsl.profiles.gpu[e].kernels.flatMap((k) => k.passes.map((p) => p.bindings.reduce((n, b) => n + partsOf(plan, b, e), 0))))])),
      problems: problems.length, first: problems.slice(0, 3),
    };
  };
  let adapter: { name: string; limits: BindingLimits } | null = null;
  try {
    const gpu = await findGpu();
    const a = await gpu.requestAdapter();
    if (a) adapter = { name: describeAdapter(a), limits: { maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize, maxBufferSize: a.limits.maxBufferSize, maxStorageBuffersPerShaderStage: a.limits.maxStorageBuffersPerShaderStage } };
  } catch { /* no adapter: the profiles only */ }
  return {
    name: '9b',
    parameters: program.weights.reduce((s, w) => s + numel(w.shape), 0),
    kernels: { decode: program.entries.decode.kernels.length, prefill: program.entries.prefill.kernels.length },
    shaders: { decode: passes(wgsl, 'decode'), prefill: passes(wgsl, 'prefill') },
    wgslBytes: JSON.stringify(wgsl).length,
    gpuBytes: {
      weights: onGpu.reduce((s, w) => s + weightDeviceBytes(w), 0), largestWeight: { name: largest.name, bytes: weightDeviceBytes(largest) },
      arena: { prefill: arenaBytes(program.entries.prefill, prefillTokens, 1), forward: arenaBytes(program.entries.forward, prefillTokens, 1), decode: arenaBytes(program.entries.decode, decodeBatch, decodeBatch) },
      arenaAt: { prefillTokens, decodeBatch }, statePerSlot: slot, context,
    },
    planFor: opts,
    bindingsPerPassUnsplit: bindings,
    fit: {
      ...Object.fromEntries(PROFILES.map((p) => [p.name, { note: p.note, limits: p.limits, ...fit(p.limits) }])),
      ...(adapter ? { here: { adapter: adapter.name, limits: adapter.limits, ...fit(adapter.limits) } } : {}),
    },
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
    const base = CONFIGS.find((c) => c.name === child);
    const cfg = base && { ...base, prompt: Number(arg('--prompt') ?? base.prompt), decodeSteps: Number(arg('--decode-steps') ?? base.decodeSteps) };
    const profiles = (arg('--profiles') ?? 'adapter').split(',') as (WgslProfile | 'adapter')[];
    const r = cfg ? await runConfig(cfg, runsArg ? Number(runsArg) : cfg.runs, profiles) : await fit9b();
    process.stdout.write(TAG + JSON.stringify(r) + '\n');
    process.exit(0); // Dawn's instance holds the process open
  }
  const only = arg('--only');
  const results: Record<string, unknown>[] = [];
  for (const name of [...CONFIGS.map((c) => c.name), '9b'].filter((n) => !only || n === only)) {
    process.stderr.write(`${name}: measuring…\n`);
    const pass = ['--runs', '--prompt', '--decode-steps', '--profiles', '--max-binding-bytes'].flatMap((f) => (arg(f) ? [f, arg(f)!] : []));
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', name, ...pass],
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
