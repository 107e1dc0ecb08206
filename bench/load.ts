// Checkpoint load speed: Model.loadProgram of a ~100M Bamba (d_model 768, 12 layers, d_ff 1280,
// vocab 32000, as bench/wasm.ts) from a warm page cache, f32 and bf16 checkpoints, into the `wasm`
// and `cpu` backends, as stored and with `quantize: 'q8'` / `'q4'`. Each load runs in a fresh
// process (so its peak resident memory is its own): MB/s of checkpoint bytes read (the file sizes
// over the wall time of the whole Model.load; also over its CPU time, all threads: steadier than the
// wall time on a loaded machine), and the peak RSS (process.resourceUsage().maxRSS). `stream MB/s`:
// the same bytes over the time from the first tensor asked for to the last one uploaded (onProgress:
// the reading, checking, converting and packing, without the fixed costs before the first tensor —
// backend and worker start, module instantiation — or after the last), `fixed s` the rest of the load.
// The checkpoints are made once (archc init-weights) and kept under the directory given; `--sets
// d_model=1536,n_layers=24` changes the model (a checkpoint of its own, e.g. ~1 GB of f32 with those).
//
// With --base DIR (a checkout of an earlier commit holding this file at DIR/bench/load.ts), each case
// runs there too, interleaved round by round with this tree's, for a before/after on the same load.
//
// Run: npx tsx bench/load.ts [--dir /tmp/archc-bench-load] [--threads 2] [--rounds 2] [--only wasm:bf16:q4] [--base DIR] [--sets k=v,...]
// (writes bench/results/load.json). The quantiser alone: npx tsx bench/load.ts --quantiser [--rounds 3].

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');
const SETS = ['vocab=32000', 'd_model=768', 'n_layers=12', 'attn_layers=[5,11]', 'n_heads=12', 'n_kv_heads=4', 'mamba_heads=24',
  'd_state=64', 'd_ff=1280', 'chunk=64', 'context=1024'];

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
const DIR = resolve(flag('--dir', join(tmpdir(), 'archc-bench-load')));
const THREADS = Number(flag('--threads', '2'));
const ROUNDS = Number(flag('--rounds', '2'));
/** --sets: params changed from SETS (attn_layers's list kept whole: its commas are inside brackets). */
const CHANGED = flag('--sets', '').split(/,(?![^[]*\])/).filter(Boolean);
const keyOf = (s: string) => s.slice(0, s.indexOf('='));
const MODEL_SETS = [...SETS.filter((s) => !CHANGED.some((c) => keyOf(c) === keyOf(s))), ...CHANGED];
/** The checkpoint of a dtype: DIR/<dtype>, or DIR/<dtype>-<the changed params>. */
const ckptDir = (dtype: string) => join(DIR, CHANGED.length ? `${dtype}-${CHANGED.join('-').replace(/[^\w=-]/g, '_')}` : dtype);

type Case = { backend: 'wasm' | 'cpu'; dtype: 'f32' | 'bf16'; quant: 'none' | 'q8' | 'q4' };
interface Result { seconds: number; cpuSeconds: number; bytes: number; maxRssMiB: number; streamSeconds?: number }

/** One load in this process (the child's side): prints a JSON Result. */
async function one(c: Case): Promise<void> {
  const { compileFile, loadConfig } = await import('../compiler/compile.ts');
  const { lowerToProgram } = await import('../compiler/lower.ts');
  const { Model } = await import('../runtime/model.ts');
  const dir = ckptDir(c.dtype);
  const comp = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')) });
  const program = lowerToProgram(comp.graph, comp.bindings);
  const extra = c.backend === 'wasm'
    ? { wasmKernels: await (await import('../codegen/wasm/assemble.ts')).wasmKernelVariants(), wasmProgram: await (await import('../codegen/wasm/program.ts')).wasmProgram(program) }
    : {};
  const t0 = performance.now(), c0 = process.cpuUsage();
  let first = -1, last = 0; // when the first tensor was asked for, and the last uploaded (ms from t0)
  const onProgress = (_i: number, _n: number, _w: string, p: { seconds: number }) => {
    const now = performance.now() - t0;
    if (first < 0) first = now - p.seconds * 1000;
    last = now;
  };
  const model = await Model.loadProgram(program, dir, { backend: c.backend, threads: THREADS, onProgress, ...extra, ...(c.quant === 'none' ? {} : { quantize: c.quant }) });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0), cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const bytes = checkpointBytes(dir);
  model.dispose();
  const r: Result = { seconds, cpuSeconds, bytes, maxRssMiB: process.resourceUsage().maxRSS / 1024, streamSeconds: (last - first) / 1000 };
  process.stdout.write(JSON.stringify(r) + '\n');
  process.exit(0);
}

function checkpointBytes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

/** Makes the checkpoint once; reads it through so the page cache holds it. */
function prepare(dtype: 'f32' | 'bf16'): void {
  const dir = ckptDir(dtype);
  if (!existsSync(join(dir, 'config.json'))) {
    mkdirSync(DIR, { recursive: true });
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', dir, '--dtype', dtype, ...MODEL_SETS.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`init-weights failed:\n${r.stderr}`);
  }
  for (const f of readdirSync(dir)) if (f.endsWith('.safetensors')) readFileSync(join(dir, f));
}

/** The quantiser alone (--quantiser): a bf16 [4096, 4096] tensor of normal values (32 MB), q4 and
 *  q8, by the JS reference, the wasm module on this thread, and the worker pool of 1 and 2 threads:
 *  MB of bf16 per second of wall time and per CPU second (all threads of the process). */
async function quantiser(): Promise<void> {
  const { quantize } = await import('../runtime/quant.ts');
  const { QuantPool, quantizeWasm } = await import('../runtime/quantize-wasm.ts');
  const { f32ToBf16 } = await import('../runtime/tensor.ts');
  const N = 4096, K = 4096, data = new Uint16Array(new SharedArrayBuffer(N * K * 2));
  let seed = 1;
  const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  for (let i = 0; i < data.length; i++) data[i] = f32ToBf16((rand() + rand() + rand() + rand() - 2) * 0.02);
  const t = { dtype: 'bf16' as const, shape: [N, K], data };
  const MB = (N * K * 2) / 1e6;
  const pools = new Map([[1, await QuantPool.start(1)], [2, await QuantPool.start(2)]]);
  const rows = [['quantiser', 'format', 'MB/s wall', 'MB/CPU s']];
  for (const f of ['q4', 'q8'] as const) {
    const ways: [string, () => unknown][] = [['js (reference)', () => quantize(t, f)], ['wasm, this thread', () => quantizeWasm(t, f)],
      ['wasm, 1 worker', () => pools.get(1)!.quantize(t, f)], ['wasm, 2 workers', () => pools.get(2)!.quantize(t, f)]];
    for (const [name, run] of ways) {
      let wall = Infinity, cpu = Infinity;
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now(), c0 = process.cpuUsage();
        await run();
        const c = process.cpuUsage(c0);
        wall = Math.min(wall, (performance.now() - t0) / 1000);
        cpu = Math.min(cpu, (c.user + c.system) / 1e6);
      }
      rows.push([name, f, (MB / wall).toFixed(0), (MB / cpu).toFixed(0)]);
      process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
    }
  }
  for (const p of pools.values()) p?.close();
  process.stdout.write(rows.map((r) => r.join(' | ')).join('\n') + `\n(best of ${ROUNDS})\n`);
}

async function main(): Promise<void> {
  if (process.argv.includes('--quantiser')) return quantiser();
  const only = process.argv.indexOf('--one');
  if (only >= 0) {
    const [backend, dtype, quant] = process.argv[only + 1]!.split(':') as [Case['backend'], Case['dtype'], Case['quant']];
    return one({ backend, dtype, quant });
  }
  const filter = flag('--only', '');
  const cases: Case[] = [];
  for (const backend of ['wasm', 'cpu'] as const) for (const dtype of ['f32', 'bf16'] as const) for (const quant of ['none', 'q8', 'q4'] as const) cases.push({ backend, dtype, quant });
  const chosen = cases.filter((c) => !filter || filter.split(',').includes(`${c.backend}:${c.dtype}:${c.quant}`));
  prepare('f32');
  prepare('bf16');
  const base = flag('--base', '');
  const trees: [string, string][] = [['', ROOT], ...(base ? [['base', resolve(base)] as [string, string]] : [])];
  const rows = [['backend', 'checkpoint', 'quantize', 'tree', 'MB', 'seconds', 'MB/s', 'CPU s', 'MB/CPU s', 'stream MB/s', 'fixed s', 'peak RSS MiB']];
  const out: Record<string, Result> = {};
  for (const c of chosen) {
    prepare(c.dtype);
    const best = new Map<string, Result>();
    for (let r = 0; r < ROUNDS; r++) {
      for (const [tree, root] of trees) {
        const p = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench', 'load.ts'), '--dir', DIR, '--threads', String(THREADS), ...(CHANGED.length ? ['--sets', CHANGED.join(',')] : []), '--one', `${c.backend}:${c.dtype}:${c.quant}`], { encoding: 'utf8', cwd: root });
        if (p.status !== 0) throw new Error(`load ${c.backend}:${c.dtype}:${c.quant} (${root}) failed:\n${p.stderr}`);
        const res = JSON.parse(p.stdout.trim().split('\n').pop()!) as Result;
        if (!best.has(tree) || res.seconds < best.get(tree)!.seconds) best.set(tree, res);
      }
    }
    for (const [tree] of trees) {
      const b = best.get(tree)!;
      out[`${c.backend}:${c.dtype}:${c.quant}${tree ? `:${tree}` : ''}`] = b;
      rows.push([c.backend, c.dtype, c.quant, tree || 'this', (b.bytes / 1e6).toFixed(0), b.seconds.toFixed(2), (b.bytes / 1e6 / b.seconds).toFixed(0),
        b.cpuSeconds.toFixed(2), (b.bytes / 1e6 / b.cpuSeconds).toFixed(0), b.streamSeconds ? (b.bytes / 1e6 / b.streamSeconds).toFixed(0) : '-',
        b.streamSeconds ? (b.seconds - b.streamSeconds).toFixed(2) : '-', b.maxRssMiB.toFixed(0)]);
      process.stderr.write(`${rows.at(-1)!.join('  ')}\n`);
    }
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(rows.map((r) => r.map((x, i) => (i < 4 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ')).join('\n') + `\n(fastest of ${ROUNDS} fresh processes each, ${THREADS} threads${CHANGED.length ? `; ${CHANGED.join(', ')}` : ''})\n`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'load.json'), JSON.stringify({ threads: THREADS, rounds: ROUNDS, sets: CHANGED, results: out }, null, 2) + '\n');
}

await main();
