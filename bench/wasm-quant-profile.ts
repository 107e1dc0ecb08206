// Where a q8/q4 decode step's time goes on the wasm backend, at the ~100M Bamba's product shapes
// (d_model 768, 12 layers, d_ff 1280, vocab 32000; bench/wasm.ts --quant runs it end to end):
//   1. every product of one decode step alone (random weights, the fma module variant), 1 and
//      `--threads` threads: wall and CPU (all threads) ms per call, weight GB/s and G weights/s
//      (wall) per shape, against a one-thread memory copy; the activations' digits alone;
//   2. with --e2e, the model's decode: CPU time per token (all threads: workers block between
//      products) in the products (linearAt, digits included) vs the rest;
//   3. with --prefill (alone), the prefill products over 8-bit activations (`--rows`, 512): one thread,
//      the module's exports called directly, rows made and product in GFLOP-equivalent/s (2·T·N·K per
//      call): the one-row GEMV per row (dot8), the integer GEMM (gemm8, tiles of `--tiles` rows, each
//      its own module), the dequantising f32 GEMM over rounded rows (round8 + gemm); then 2 threads
//      through linearAt as the backend runs them (the GEMV per row, and the path it picks);
//   4. with --prefill-e2e (alone), the model's prefill of `--rows` tokens with 8-bit activations
//      (the integer GEMM alternating with the path before it: q4a8 the GEMV per row, q8a8 the
//      dequantising GEMM past 12 rows): wall time per
//      kernel family (the weight products, linearAt, apart from their fused prologues and epilogues),
//      then 32 tokens of decode (wall and CPU per token).
// Best of `--rounds` rounds (the machine is shared).
//
// Run: npx tsx bench/wasm-quant-profile.ts [--threads 2] [--rounds 5] [--dtype q4|q8] [--activations f32|q8] [--e2e | --e2e-only]
//      npx tsx bench/wasm-quant-profile.ts --prefill [--rows 512] [--tiles 3,4,5,6] [--rounds 5]
//      npx tsx bench/wasm-quant-profile.ts --prefill-e2e [--rows 512] [--threads 2] [--rounds 3] [--dtype q4|q8]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernels, wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { WASM_FMA_TARGET } from '../codegen/wasm/target.ts';
import { A8_DOT_ROWS } from '../runtime/wasm/kernels.ts';
import type { Exports } from '../runtime/wasm/memories.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import type { ActivationFormat } from '../runtime/act-quant.ts';
import { Model } from '../runtime/model.ts';
import { type QuantDType, type QuantTensor, quantize } from '../runtime/quant.ts';
import { type PackedWeight, WasmKernels } from '../runtime/wasm/kernels.ts';
import { QUANT_LAYOUT } from '../runtime/wasm/layout.ts';
import { wasmModule } from '../runtime/wasm/module.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const arg = (name: string, dflt: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const THREADS = arg('--threads', 2), ROUNDS = arg('--rounds', 5);
const DTYPES: QuantDType[] = process.argv.includes('--dtype') ? [process.argv[process.argv.indexOf('--dtype') + 1] as QuantDType] : ['q4', 'q8'];
/** The activations of the products (runtime/act-quant.ts): f32 and 8-bit, or one with --activations. */
const ACTS: ActivationFormat[] = process.argv.includes('--activations') ? [process.argv[process.argv.indexOf('--activations') + 1] as ActivationFormat] : ['f32', 'q8'];
const D = 768, FF = 1280, V = 32000, INNER = 1536, IN_PROJ = 2 * INNER + 2 * 64 + 24;
const SETS = ['vocab=32000', 'd_model=768', 'n_layers=12', 'attn_layers=[5,11]', 'n_heads=12', 'n_kv_heads=4', 'mamba_heads=24',
  'd_state=64', 'd_ff=1280', 'chunk=64', 'context=1024'];

/** Fastest of `rounds` of `reps` calls, seconds per call: wall, and CPU of the process (every
 *  thread; workers block, not spin, between products). */
function best(fn: () => void, reps: number, rounds = ROUNDS): { wall: number; cpu: number } {
  fn();
  let wall = Infinity, cpu = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) fn();
    const c = process.cpuUsage(c0);
    wall = Math.min(wall, (performance.now() - t0) / 1000 / reps);
    cpu = Math.min(cpu, (c.user + c.system) / 1e6 / reps);
  }
  return { wall, cpu };
}

function quantWeight(N: number, K: number, dtype: QuantDType): QuantTensor {
  const v = new Float32Array(N * K);
  for (let i = 0; i < v.length; i++) v[i] = Math.sin(i * 12.9898) * 0.05;
  const q = quantize({ dtype: 'f32', shape: [N, K], data: v }, dtype);
  if ('reason' in q) throw new Error(q.reason);
  return q.q;
}

const f = (x: number, d = 2) => x.toFixed(d);

// one decode step's products: [N, K, count per step]
const SHAPES: [string, number, number, number][] = [
  ['in_proj', IN_PROJ, D, 10], ['out_proj', D, INNER, 10], ['qkv', 1280, D, 2], ['o', D, D, 2], ['gate/up', 2 * FF, D, 12], ['down', D, FF, 12], ['head', V, D, 1]];

async function micro(): Promise<void> {
  const module = await wasmModule(await wasmKernels(WASM_FMA_TARGET));
  console.log(`load ${loadavg()[0]!.toFixed(1)}; ${THREADS} threads; best of ${ROUNDS}`);
  for (const dtype of DTYPES) {
    for (const acts of ACTS) for (const threads of new Set([1, THREADS])) {
      const wk = new WasmKernels(module, threads);
      wk.activations = acts;
      const xAt = wk.allocate(4 * 8192), yAt = wk.allocate(4 * (V + 8));
      new Float32Array(wk.memory.buffer, xAt, 2048).forEach((_, i, a) => { a[i] = Math.cos(i) * 3; });
      let total = 0, totalCpu = 0, bytes = 0;
      const rows: string[] = [];
      for (const [name, N, K, n] of SHAPES) {
        const p: PackedWeight = wk.packQuant(quantWeight(N, K, dtype));
        const b = p.panels * (K / 32) * QUANT_LAYOUT[dtype].group;
        const { wall: s, cpu } = best(() => wk.linearAt(p, xAt, K, 1, yAt, p.panels * 8), Math.max(3, Math.round(2e6 / b)));
        total += s * n;
        totalCpu += cpu * n;
        bytes += b * n;
        rows.push(`  ${name.padEnd(9)} [${N}x${K}] x${n}: ${f(s * 1e3, 3)} ms/call (CPU ${f(cpu * 1e3, 3)}), ${f(b / s / 1e9)} GB/s, ${f(N * K / s / 1e9)} G weights/s, ${f(s * n * 1e3)} ms/step`);
      }
      const ex = (wk as unknown as { mems: { list: { ex: Exports }[] } }).mems.list[0]!.ex;
      const dAt = wk.allocate(8192);
      // the rows as the one-row product takes them (q8a8: the integer GEMM's nibble digits)
      const dig = best(() => (acts === 'f32' ? ex.digits!(xAt, D, 1, D, dAt, dtype === 'q4' ? 1 : 0) : ex[dtype === 'q4' ? 'digits8_q4' : 'digits8s_q8']!(xAt, D, 1, D, dAt, 1)), 2000).cpu;
      console.log(`${dtype}, activations ${acts}, ${threads} thread(s): products of one step ${f(total * 1e3)} ms, CPU ${f(totalCpu * 1e3)} ms (${f(bytes / 2 ** 20, 1)} MiB, ${f(bytes / total / 1e9)} GB/s); digits of one 768 row ${f(dig * 1e6)} us (x ${SHAPES.reduce((a, s) => a + s[3], 0)} per step)`);
      console.log(rows.join('\n'));
      wk.close();
    }
  }
  // memory copy of one step's q4 bytes, one thread (read + write counted)
  const n = 64 << 20, src = new Uint8Array(n).fill(1), dst = new Uint8Array(n);
  const c = best(() => dst.set(src), 3).wall;
  console.log(`memory copy 64 MiB, 1 thread: ${f(2 * n / c / 1e9)} GB/s (read + write)`);
}

/** Prefill products over 8-bit activations, by path (see the header, 3). */
async function prefill(): Promise<void> {
  const T = arg('--rows', 512), given = process.argv.includes('--tiles') ? process.argv[process.argv.indexOf('--tiles') + 1]!.split(',').map(Number) : null;
  const shapes = SHAPES.filter(([name]) => name !== 'head' && name !== 'qkv' && name !== 'o');
  console.log(`load ${loadavg()[0]!.toFixed(1)}; ${T} rows; best of ${ROUNDS}; GFLOP-equivalent/s (2·T·N·K), one thread (CPU time) unless said`);
  const x = Float32Array.from({ length: T * FF }, (_, i) => Math.cos(i * 0.37) * 3 * (1 + (i % 97 === 0 ? 8 : 0)));
  const gflops = (N: number, K: number, s: number) => f(2 * T * N * K / s / 1e9, 1);
  for (const dtype of DTYPES) {
    const rows: Record<string, string[]> = {};
    // one thread: CPU time; threads: wall (a worker spins a while after each product)
    const time = (label: string, name: string, N: number, K: number, fn: () => void, wall = false) => {
      const b = best(fn, 2);
      (rows[name] ??= []).push(`${label} ${gflops(N, K, wall ? b.wall : b.cpu)}`);
    };
    const tiles = given ?? [WASM_FMA_TARGET.a8Tile[dtype]];
    for (const R of tiles) {
      const module = await wasmModule(await wasmKernels({ ...WASM_FMA_TARGET, a8Tile: { ...WASM_FMA_TARGET.a8Tile, [dtype]: R } }));
      const wk = new WasmKernels(module, 1);
      const ex = (wk as unknown as { mems: { list: { ex: Exports }[] } }).mems.list[0]!.ex;
      const xAt = wk.allocate(4 * T * FF), opAt = wk.allocate(4 * (T + 8) * FF), yAt = wk.allocate(4 * T * IN_PROJ + 64), s = wk.allocate(4 * FF * 8);
      new Float32Array(wk.memory.buffer, xAt, T * FF).set(x);
      for (const [name, N, K] of shapes) {
        const p = wk.packQuant(quantWeight(N, K, dtype)), ldy = p.panels * 8;
        time(`gemm8 (tiles of ${R})`, name, N, K, () => { ex[dtype === 'q4' ? 'digits8_q4' : 'digits8s_q8']!(xAt, K, T, K, opAt, R); ex[`gemm8_${dtype}`]!(opAt, p.at, yAt, T, K, ldy, 0, p.panels, s); });
        if (R === tiles[0]) {
          time('GEMV per row', name, N, K, () => { ex[`digits8_${dtype}`]!(xAt, K, T, K, opAt, 1); ex[`dot8_${dtype}`]!(opAt, p.at, yAt, T, K, ldy, 0, p.panels); });
          time('dequantised f32 GEMM', name, N, K, () => { ex.round8(xAt, K, T, K, opAt, wk.MR); ex[`gemm_${dtype}`](opAt, p.at, yAt, T, K, ldy, 0, p.panels, s); });
        }
      }
      wk.close();
    }
    // as the backend runs them, on THREADS threads: the rows' path by A8_DOT_ROWS (the GEMV for
    // every row, then the one the backend picks)
    const module = await wasmModule(await wasmKernels(WASM_FMA_TARGET));
    const wk = new WasmKernels(module, THREADS);
    wk.activations = 'q8';
    const xAt = wk.allocate(4 * T * FF), yAt = wk.allocate(4 * T * IN_PROJ + 64);
    new Float32Array(wk.memory.buffer, xAt, T * FF).set(x);
    const limits = A8_DOT_ROWS as { -readonly [k in keyof typeof A8_DOT_ROWS]: number }, picked = limits[dtype];
    for (const [name, N, K] of shapes) {
      const p = wk.packQuant(quantWeight(N, K, dtype));
      for (const [label, lim] of [['GEMV per row', Infinity], ['as picked', picked]] as const) {
        limits[dtype] = lim;
        time(`${THREADS} threads (wall), ${label}`, name, N, K, () => wk.linearAt(p, xAt, K, T, yAt, p.panels * 8), true);
      }
      limits[dtype] = picked;
    }
    wk.close();
    console.log(`${dtype}, 8-bit activations:`);
    for (const [name, N, K] of shapes) console.log(`  ${name.padEnd(9)} [${N}x${K}]: ${rows[name]!.join(', ')}`);
  }
}

/** A random ~100M Bamba (bf16) in a temporary directory, its program and modules; removed after `fn`. */
async function withModel(fn: (dir: string, program: ReturnType<typeof lowerToProgram>, wasmProg: Uint8Array, kernels: Uint8Array[]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'archc-bench-qprof-'));
  try {
    const init = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', join(ROOT, 'models', 'bamba.arch'), '-o', dir, '--dtype', 'bf16', ...SETS.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(init.stderr);
    const c = compileFile(join(ROOT, 'models', 'bamba.arch'), { hfConfigData: loadConfig(join(dir, 'config.json')) });
    const program = lowerToProgram(c.graph, c.bindings);
    await fn(dir, program, await wasmProgram(program), await wasmKernelVariants());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prefill with 8-bit activations, wall time by kernel family (see the header, 4). */
async function prefillE2e(): Promise<void> {
  const T = arg('--rows', 512);
  await withModel(async (dir, program, wasmProg, kernels) => {
    const spent = new Map<string, number>();
    const timed = (key: string, fn: () => void) => {
      const t0 = performance.now();
      fn();
      spent.set(key, (spent.get(key) ?? 0) + performance.now() - t0);
    };
    const proto = WasmKernels.prototype as unknown as { linearAt: (...a: unknown[]) => void };
    const orig = proto.linearAt;
    proto.linearAt = function (this: unknown, ...a: unknown[]) { timed('products (linearAt)', () => orig.apply(this, a)); };
    const limits = A8_DOT_ROWS as { -readonly [k in keyof typeof A8_DOT_ROWS]: number };
    const ids = Array.from({ length: T }, (_, i) => (i * 7919) % 32000);
    for (const q of DTYPES) {
      const m = await Model.loadProgram(program, dir, { threads: THREADS, backend: 'wasm', wasmKernels: kernels, wasmProgram: wasmProg, quantize: q, activations: 'q8' });
      const families = (m as unknown as { backend: { families: Record<string, (...a: unknown[]) => void> } }).backend.families;
      for (const [f, run] of Object.entries(families)) families[f] = (...a: unknown[]) => timed(f, () => run(...a));
      // the path before the integer GEMM: its tiles set to none, the GEMV's limit as it was
      const wk = (m as unknown as { backend: { kernels: { a8Tile: Record<string, number> } } }).backend.kernels, tile = wk.a8Tile[q]!, dotRows = limits[q];
      const variants = [['integer GEMM', dotRows, tile], [q === 'q4' ? 'GEMV per row' : 'GEMV to 12 rows, then the dequantising GEMM', q === 'q4' ? Infinity : 12, 0]] as const;
      const bestOf = new Map<string, { ms: number; split: Map<string, number> }>(), decode = new Map<string, [number, number]>();
      for (let r = 0; r < ROUNDS; r++) {
        for (const [label, lim, tiles] of variants) {
          limits[q] = lim;
          wk.a8Tile = { ...wk.a8Tile, [q]: tiles };
          spent.clear();
          const t0 = performance.now();
          const { states } = m.prefill([ids]);
          const ms = performance.now() - t0;
          if (ms < (bestOf.get(label)?.ms ?? Infinity)) bestOf.set(label, { ms, split: new Map(spent) });
          // then 32 tokens of decode after the prompt: wall and CPU (all threads) per token
          const t1 = performance.now(), c1 = process.cpuUsage();
          for (let k = 0; k < 32; k++) m.decode([ids[k]!], states);
          const c = process.cpuUsage(c1), tok = (performance.now() - t1) / 32;
          if (tok < (decode.get(label)?.[0] ?? Infinity)) decode.set(label, [tok, (c.user + c.system) / 1000 / 32]);
          m.releaseSequence(states[0]!);
        }
      }
      limits[q] = dotRows;
      wk.a8Tile = { ...wk.a8Tile, [q]: tile };
      for (const [label, { ms, split }] of bestOf) {
        const prod = split.get('products (linearAt)') ?? 0;
        // the products run inside the matmul family: its own share is the fused prologues and epilogues
        split.set('matmul', (split.get('matmul') ?? 0) - prod);
        const parts = [...split].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${f(v, 1)}`);
        const [tok, cpu] = decode.get(label)!;
        console.log(`${q}a8 prefill ${T}, ${label}, ${THREADS} thread(s): ${f(ms, 1)} ms (${f(T / ms * 1000, 0)} tok/s); wall ms by family: ${parts.join(', ')}; outside the families ${f(ms - [...split.values()].reduce((a, b) => a + b, 0), 1)}; then decode ${f(tok)} ms/token (${f(1000 / tok, 1)} tok/s), CPU ${f(cpu)} ms (load ${loadavg()[0]!.toFixed(1)})`);
      }
      m.dispose();
    }
  });
}

/** The model's decode: CPU time in linearAt (the products, digits included) vs the rest. */
async function e2e(): Promise<void> {
  await withModel(async (dir, program, wasmProg, kernels) => {
    const proto = WasmKernels.prototype as unknown as { linearAt: (...a: unknown[]) => void };
    const orig = proto.linearAt;
    let inProducts = 0;
    proto.linearAt = function (this: unknown, ...a: unknown[]) {
      const c0 = process.cpuUsage();
      orig.apply(this, a);
      const c = process.cpuUsage(c0);
      inProducts += (c.user + c.system) / 1000;
    };
    for (const [q, acts] of [['bf16', 'f32'], ['q8', 'f32'], ['q4', 'f32'], ['q8', 'q8'], ['q4', 'q8']] as const) {
      if (q !== 'bf16' && !ACTS.includes(acts)) continue;
      const m = await Model.loadProgram(program, dir, { threads: THREADS, backend: 'wasm', wasmKernels: kernels, wasmProgram: wasmProg, ...(q === 'bf16' ? {} : { quantize: q, activations: acts }) });
      let bestTok = Infinity, bestProd = 0;
      for (let r = 0; r < ROUNDS; r++) {
        const { states } = m.prefill([[1, 2, 3, 4, 5, 6, 7, 8]]);
        inProducts = 0;
        const c0 = process.cpuUsage();
        for (let k = 0; k < 32; k++) m.decode([k + 10], states);
        const c = process.cpuUsage(c0), tok = (c.user + c.system) / 1000 / 32;
        if (tok < bestTok) [bestTok, bestProd] = [tok, inProducts / 32];
        m.releaseSequence(states[0]!);
      }
      console.log(`${q}${q === 'bf16' ? '' : `, activations ${acts}`} decode, ${THREADS} thread(s): CPU ${f(bestTok)} ms/token (all threads), of which products ${f(bestProd)} ms, the rest ${f(bestTok - bestProd)} ms (load ${loadavg()[0]!.toFixed(1)})`);
      m.dispose();
    }
  });
}

if (process.argv.includes('--prefill-e2e')) {
  await prefillE2e();
  process.exit(0);
}
if (process.argv.includes('--prefill')) {
  await prefill();
  process.exit(0);
}
if (!process.argv.includes('--e2e-only')) await micro();
if (process.argv.some((a) => a.startsWith('--e2e'))) await e2e();
process.exit(0);
