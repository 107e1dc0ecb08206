// Decode on the wasm backend at the ~100M Bamba of bench/llama/compare.ts (its checkpoint under
// ~/.cache/archc-bench/ck/bamba-100m; made there with `archc init-weights` when missing): for each
// weight format and batch size, aggregate decode tokens/s of `--gen` tokens after a 64-token prompt
// per sequence, and the split of a step's wall time between the weight products (WasmKernels.linearAt,
// which the calling thread shares with the workers) and the rest (the program module's steps —
// norms, conv, SSD step, attention — and the dispatch, on the calling thread alone). Best of
// `--rounds` rounds, formats and batch sizes interleaved within a round.
//
// `--ab`: each format also as `<format>/1t`, every program-module function run whole on the calling
// thread (runtime/wasm/split.ts not sharing them), interleaved with the shared runs in each round.
// `--profile`: also the rest of a step by kernel family (the wall time of the backend's family
// calls, a matmul's less its product: its prologue and epilogue), and what is left outside them
// (the engine's dispatch, the logits' copy), in ms a step.
//
// `--llama`: llama.cpp beside each run (after bench/llama/build.sh): llama-batched-bench on a GGUF of
// the same checkpoint (bf16 → BF16, q8/q8a8 → Q8_0, q4/q4a8 → Q4_0, `--pure`), `-npp 64 -ntg GEN -npl
// B -t THREADS`, the same 64-token prompts and tokens per sequence, its S_TG (generated tokens of all
// sequences over the generation's time), in the same rounds.
//
// `--ssm-state bf16`: the SSM states kept in bf16 (runtime/program.ts withSsmState).
//
// Run: npx tsx bench/decode.ts [--formats bf16,q8a8,q4a8] [--batch 1,2,4,8] [--threads 2] [--rounds 3] [--gen 32] [--ab] [--profile] [--llama] [--ssm-state bf16] [--read-ahead on|off]
// (writes bench/results/decode.json). Measure with nothing else running: two threads meeting at every
// product are as slow as the later one.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { withSsmState } from '../runtime/program.ts';
import { Model } from '../runtime/model.ts';
import { WasmKernels } from '../runtime/wasm/kernels.ts';
import { ProgramCalls } from '../runtime/wasm/split.ts';
import { gguf, type GgufFormat, run as runTool, tool } from './llama/common.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');
const flag = (name: string, dflt: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1]! : dflt);
const FORMATS = flag('--formats', 'bf16,q8a8,q4a8').split(',');
const BATCHES = flag('--batch', '1,2,4,8').split(',').map(Number);
const THREADS = Number(flag('--threads', '2')), ROUNDS = Number(flag('--rounds', '3')), GEN = Number(flag('--gen', '32'));
for (const f of FORMATS) if (!['bf16', 'q8', 'q4', 'q8a8', 'q4a8'].includes(f)) throw new Error(`--formats: bf16, q8, q4, q8a8 or q4a8, got ${f}`);
const SETS = ['vocab=32000', 'd_model=768', 'n_layers=12', 'attn_layers=[5,11]', 'n_heads=12', 'n_kv_heads=4', 'mamba_heads=24',
  'd_state=64', 'd_ff=1280', 'chunk=64', 'context=1024'];
const ckpt = join(homedir(), '.cache', 'archc-bench', 'ck', 'bamba-100m');
if (!existsSync(join(ckpt, 'model.safetensors'))) {
  mkdirSync(ckpt, { recursive: true });
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', ckpt, '--dtype', 'bf16', ...SETS.flatMap((s) => ['--set', s])], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('init-weights failed');
}

// the products' wall time, summed over a measured stretch
const proto = WasmKernels.prototype as unknown as { linearAt: (...a: unknown[]) => void };
const linearAt = proto.linearAt;
let inProducts = 0;
proto.linearAt = function (this: unknown, ...a: unknown[]) {
  const t0 = performance.now();
  linearAt.apply(this, a);
  inProducts += performance.now() - t0;
};

// --ab: the program module's functions whole on the calling thread while `whole`
const LABELS = process.argv.includes('--ab') ? FORMATS.flatMap((f) => [f, `${f}/1t`]) : FORMATS;
let whole = false;
const calls = ProgramCalls.prototype as unknown as { run: (...a: unknown[]) => void };
const callsRun = calls.run;
let inCalls = 0;
calls.run = function (this: unknown, fn, fixed, args, units, split, own) {
  const t0 = performance.now();
  callsRun.call(this, fn, fixed, args, units, split && !whole, own);
  inCalls += performance.now() - t0;
};

// --profile: wall time by family (or kernel), summed over a measured stretch: [the call less its
// product, of which in the program module's functions]
const PROFILE = process.argv.includes('--profile'), DETAIL = process.argv.includes('--by-kernel');
const byFam = new Map<string, [number, number]>();
let profiling = false;
function profile(m: Model): void {
  const families = (m as unknown as { backend: { families: Record<string, (...a: unknown[]) => void> } }).backend.families;
  for (const [name, fn] of Object.entries(families)) {
    families[name] = (...a: unknown[]) => {
      if (!profiling) return fn(...a);
      const t0 = performance.now(), p0 = inProducts, c0 = inCalls;
      fn(...a);
      const key = DETAIL ? `${name} ${(a[0] as { name: string }).name.replace(/[0-9]+/g, '#')}` : name;
      const v = byFam.get(key) ?? [0, 0];
      byFam.set(key, [v[0] + performance.now() - t0 - (inProducts - p0), v[1] + inCalls - c0]);
    };
  }
}

const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(ckpt, 'config.json')) });
const SSM_STATE = flag('--ssm-state', 'f32');
// --read-ahead on|off: LoadOptions.wasmReadAhead (default: timed at load, runtime/wasm/read-ahead.ts)
const READ_AHEAD = flag('--read-ahead', 'auto');
if (!['on', 'off', 'auto'].includes(READ_AHEAD)) throw new Error(`--read-ahead: on, off or auto, got ${READ_AHEAD}`);
if (SSM_STATE !== 'f32' && SSM_STATE !== 'bf16') throw new Error(`--ssm-state: f32 or bf16, got ${SSM_STATE}`);
const program = withSsmState(lowerToProgram(c.graph, c.bindings), SSM_STATE);
const kernels = await wasmKernelVariants(), wasmProg = await wasmProgram(program);
const V = program.outputs.logits!;
const models = new Map<string, Model>();
for (const f of FORMATS) {
  const t0 = performance.now();
  models.set(f, await Model.loadProgram(program, ckpt, { threads: THREADS, backend: 'wasm', wasmKernels: kernels, wasmProgram: wasmProg,
    ...(READ_AHEAD === 'auto' ? {} : { wasmReadAhead: READ_AHEAD === 'on' }),
    ...(f === 'bf16' ? {} : { quantize: f.slice(0, 2) as 'q8' | 'q4', activations: f.endsWith('a8') ? 'q8' : 'f32' }) }));
  const ra = (models.get(f) as unknown as { backend: { kernels: WasmKernels } }).backend.kernels.readAheadChoice!;
  process.stderr.write(`${f}: loaded in ${(performance.now() - t0).toFixed(0)} ms; read-ahead ${ra.readAhead ? 'on' : 'off'}${ra.timed ? ` (timed over ${(ra.timed.bytes / 2 ** 20).toFixed(0)} MB: on ${ra.timed.on.toFixed(1)} ms, off ${ra.timed.off.toFixed(1)} ms)` : ''}\n`);
  if (PROFILE) profile(models.get(f)!);
}

type Row = { tokPerS: number; stepMs: number; productsMs: number; families: Record<string, [number, number]> };
const best = new Map<string, Row>();

// --llama: llama.cpp's batched decode of the same checkpoint, its generation tokens/s (S_TG)
const LLAMA = process.argv.includes('--llama');
const ggufOf = (f: string): GgufFormat => (f.startsWith('bf16') ? 'BF16' : f.startsWith('q8') ? 'Q8_0' : 'Q4_0');
const llamaFiles = new Map(LLAMA ? FORMATS.map((f) => [f, gguf(ckpt, ggufOf(f))] as const) : []);
const llamaBest = new Map<string, number>();
function llamaDecode(f: string, B: number): number {
  const out = runTool(tool('llama-batched-bench'), ['-m', llamaFiles.get(f)!, '-c', String(B * (64 + GEN) + 64), '-b', '2048', '-ub', '512',
    '-npp', '64', '-ntg', String(GEN), '-npl', String(B), '-t', String(THREADS)], 'llama-batched-bench');
  // | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
  const row = out.split('\n').map((l) => l.split('|').map((c) => c.trim())).find((c) => c.length > 9 && c[1] === '64' && c[3] === String(B));
  if (!row) throw new Error(`llama-batched-bench: no result row for batch ${B} in:\n${out}`);
  return Number(row[8]);
}
for (let r = 0; r < ROUNDS; r++) {
  for (const f of LABELS) for (const B of BATCHES) {
    const m = models.get(f.replace('/1t', ''))!;
    whole = f.endsWith('/1t');
    const prompts = Array.from({ length: B }, (_, b) => Array.from({ length: 64 }, (_, i) => (i * 7919 + b * 31) % V));
    const { states } = m.prefill(prompts);
    inProducts = 0;
    inCalls = 0;
    byFam.clear();
    profiling = PROFILE;
    const t0 = performance.now();
    for (let k = 0; k < GEN; k++) m.decode(prompts.map((p) => p[k % 64]!), states);
    const ms = performance.now() - t0;
    profiling = false;
    for (const s of states) m.releaseSequence(s);
    const row = { tokPerS: (B * GEN) / (ms / 1000), stepMs: ms / GEN, productsMs: inProducts / GEN, families: Object.fromEntries([...byFam].map(([n, v]) => [n, [v[0] / GEN, v[1] / GEN] as [number, number]])) };
    const key = `${f}:${B}`;
    if (!best.has(key) || row.tokPerS > best.get(key)!.tokPerS) best.set(key, row);
    process.stderr.write(`round ${r + 1}/${ROUNDS} ${f} batch ${B}: ${row.tokPerS.toFixed(1)} tok/s (load ${loadavg()[0]!.toFixed(1)})\n`);
    if (LLAMA && !f.endsWith('/1t')) {
      const tps = llamaDecode(f, B);
      if (tps > (llamaBest.get(key) ?? 0)) llamaBest.set(key, tps);
      process.stderr.write(`round ${r + 1}/${ROUNDS} llama.cpp ${ggufOf(f)} batch ${B}: ${tps.toFixed(1)} tok/s\n`);
    }
  }
}
for (const m of models.values()) m.dispose();

const rows = [['weights', 'batch', 'decode tok/s', '× batch 1', 'step ms', 'products ms', 'the rest ms', ...(LLAMA ? ['llama.cpp tok/s', '× batch 1'] : [])]];
for (const f of LABELS) for (const B of BATCHES) {
  const x = best.get(`${f}:${B}`)!, one = best.get(`${f}:${BATCHES[0]}`)!;
  const l = llamaBest.get(`${f}:${B}`), l1 = llamaBest.get(`${f}:${BATCHES[0]}`);
  rows.push([f, String(B), x.tokPerS.toFixed(1), (x.tokPerS / one.tokPerS).toFixed(2), x.stepMs.toFixed(2), x.productsMs.toFixed(2), (x.stepMs - x.productsMs).toFixed(2),
    ...(LLAMA ? (l && l1 ? [`${ggufOf(f)} ${l.toFixed(1)}`, (l / l1).toFixed(2)] : ['-', '-']) : [])]);
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log(`\n~100M Bamba, wasm, ${THREADS} threads, fastest of ${ROUNDS} rounds; ${GEN} tokens after a 64-token prompt per sequence`);
for (const r of rows) console.log(r.map((v, i) => v.padStart(widths[i]!)).join('  '));
if (PROFILE) {
  // the rest of a step by family or kernel (ms: the call less its product / of which in the module),
  // then what no family call covers (the engine's dispatch, the logits' copy)
  const runs = LABELS.flatMap((f) => BATCHES.map((B) => [`${f}:${B}`, best.get(`${f}:${B}`)!] as const));
  const keys = [...new Set(runs.flatMap(([, x]) => Object.keys(x.families)))].sort();
  const prof = [['ms a step: call / in module', ...runs.map(([k]) => k)]];
  for (const n of keys) prof.push([n, ...runs.map(([, x]) => (x.families[n] ? `${x.families[n][0].toFixed(3)} / ${x.families[n][1].toFixed(3)}` : '-'))]);
  const sum = (x: Row, i: 0 | 1) => Object.values(x.families).reduce((a, v) => a + v[i], 0);
  prof.push(['all families', ...runs.map(([, x]) => `${sum(x, 0).toFixed(3)} / ${sum(x, 1).toFixed(3)}`)]);
  prof.push(['outside them', ...runs.map(([, x]) => (x.stepMs - x.productsMs - sum(x, 0)).toFixed(3))]);
  const w = prof[0]!.map((_, i) => Math.max(...prof.map((r) => r[i]!.length)));
  console.log('\nthe rest of a step by family');
  for (const r of prof) console.log(r.map((v, i) => (i ? v.padStart(w[i]!) : v.padEnd(w[i]!))).join('  '));
}
console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'decode.json'), JSON.stringify({ threads: THREADS, rounds: ROUNDS, gen: GEN, results: Object.fromEntries(best), ...(LLAMA ? { llama: Object.fromEntries(llamaBest) } : {}) }, null, 2) + '\n');
