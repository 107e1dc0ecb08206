// The wasm backend against the machine's limits and against the reference engine, in one run with
// the contenders interleaved round by round (so load from elsewhere hits them alike):
//   1. matrix product GFLOP/s at the prefill (T=512) and decode (T=1) shapes of a ~100M Bamba
//      (d_model 768, d_ff 1280, vocab 32000): wasm (both module variants: fused multiply-add and
//      plain SIMD), the CPU engine's linear, numpy's BLAS (if python3 has numpy), all on the same
//      threads; and wasm with bf16 weights at the MLP's prefill shapes (against numpy's f32 product);
//   2. decode GEMV weight bytes/s over every product of one decode step of the 12 layers (f32, bf16;
//      both variants), against a plain memory-copy loop over as many bytes (1 and 2 threads);
//   3. end to end at that configuration: prefill 512 tokens and decode 64 tokens after 16, reference
//      engine vs wasm (the variant the runtime picks), f32 and bf16 weights.
//   4. with --quant, instead of 1-3: end to end with bf16 weights and the same checkpoint loaded with
//      `quantize: 'q8'` and `'q4'` (the wasm variant the runtime picks), decode 64 tokens after 16 and
//      prefill 512, side by side in interleaved rounds, decode also in CPU time per token (steadier
//      than wall time on a loaded machine) (writes bench/results/wasm-quant.json).
// Prints tables and writes bench/results/wasm.json.
//
// Run: npx tsx bench/wasm.ts [--threads 2] [--rounds 3] [--e2e-rounds 2] [--skip-e2e] [--best] [--quant]
// --best: each contender's fastest round instead of the median over rounds (on a machine loaded by
// other work, the fastest round is the better estimate of what each can do; rounds stay interleaved).

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wasmKernels, wasmKernelVariants } from '../codegen/wasm/assemble.ts';
import { wasmProgram } from '../codegen/wasm/program.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { LinearPool } from '../runtime/cpu/pool.ts';
import { Model } from '../runtime/model.ts';
import { createRng } from '../runtime/rng.ts';
import { f32ToBf16, type Tensor } from '../runtime/tensor.ts';
import { type PackedWeight, WasmKernels } from '../runtime/wasm/kernels.ts';
import { wasmModule } from '../runtime/wasm/module.ts';
import { WASM_TARGETS } from '../codegen/wasm/target.ts';
import { copyBench } from './memcopy.ts';
import { median, timeCalls } from './timing.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const BAMBA = join(ROOT, 'models', 'bamba.arch');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const THREADS = arg('--threads', 2);
const ROUNDS = arg('--rounds', 3);
const E2E_ROUNDS = arg('--e2e-rounds', 2);
const SKIP_E2E = process.argv.includes('--skip-e2e');
const BEST = process.argv.includes('--best');
const QUANT = process.argv.includes('--quant');
/** Seconds per call over rounds: the median, or with --best the fastest. */
const over = (xs: readonly number[]): number => (BEST ? Math.min(...xs) : median(xs));
const STAT = BEST ? 'fastest of' : 'median over';

// The ~100M configuration of the issue: 12 layers, attention at 5 and 11.
const SETS = ['vocab=32000', 'd_model=768', 'n_layers=12', 'attn_layers=[5,11]', 'n_heads=12', 'n_kv_heads=4', 'mamba_heads=24',
  'd_state=64', 'd_ff=1280', 'chunk=64', 'context=1024'];
const D = 768, FF = 1280, V = 32000, INNER = 1536, IN_PROJ = 2 * INNER + 2 * 64 + 24;
/** [T, K, N] of its products: in_proj, out_proj, q/k/v, gate/up, down, head. */
const PREFILL: [number, number, number][] = [[512, D, IN_PROJ], [512, INNER, D], [512, D, 1280], [512, D, 2 * FF], [512, FF, D]];
const DECODE: [number, number, number][] = [[1, D, IN_PROJ], [1, INNER, D], [1, D, 2 * FF], [1, FF, D], [1, D, V]];
/** Prefill shapes also run with bf16 weights (wasm only; numpy's column is its f32 product). */
const PREFILL_BF16: [number, number, number][] = [[512, D, 2 * FF], [512, FF, D]];

const rand = createRng(1);
const randF32 = (n: number) => Float32Array.from({ length: n }, () => rand.next() - 0.5);
const fmt = (x: number, d = 1) => x.toFixed(d);

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ')).join('\n');
}

// ---- 1. matrix products -----------------------------------------------------------------------

const NUMPY = `
import sys, json, time, numpy as np
shapes = json.loads(sys.argv[1]); out = {}
try:
    import ctypes, glob, scipy_openblas64, os
    lib = ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(scipy_openblas64.__file__), 'lib', '*.so*'))[0])
    lib.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
    out['core'] = lib.scipy_openblas_get_corename64_().decode()
except Exception as e:
    out['core'] = 'unknown'
rng = np.random.default_rng(0)
for T, K, N in shapes:
    x = rng.standard_normal((T, K), dtype=np.float32); w = rng.standard_normal((N, K), dtype=np.float32)
    reps = 5 if T > 1 else 50
    x @ w.T
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); x @ w.T; ts.append(time.perf_counter() - t)
    out[f'{T}x{K}x{N}'] = sorted(ts)[len(ts) // 2]
print(json.dumps(out))
`;

function numpyRound(shapes: [number, number, number][]): Record<string, number | string> | null {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS) };
  // the machine's env pins an old core type for old OpenBLAS builds; unset both together here only
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync('python3', ['-c', NUMPY, JSON.stringify(shapes)], { encoding: 'utf8', env });
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout) as Record<string, number | string>;
}

/** The module variants by name (fma, plain), each on its own memory and threads. */
type Variants = Record<string, WebAssembly.Module>;

type Shape = [number, number, number, 'f32' | 'bf16'];

function matmulBench(variants: Variants): object {
  const shapes: Shape[] = [...PREFILL.map(([T, K, N]): Shape => [T, K, N, 'f32']), ...PREFILL_BF16.map(([T, K, N]): Shape => [T, K, N, 'bf16']),
    ...DECODE.map(([T, K, N]): Shape => [T, K, N, 'f32'])];
  const names = Object.keys(variants);
  const wks = names.map((n) => new WasmKernels(variants[n]!, THREADS));
  const pool = new LinearPool(THREADS);
  const ws = shapes.map(([, K, N, dtype]) => {
    const f = randF32(N * K);
    return (dtype === 'f32' ? { dtype, shape: [N, K], data: f } : { dtype, shape: [N, K], data: Uint16Array.from(f, f32ToBf16) }) as Tensor;
  });
  const packed = wks.map((wk) => ws.map((w) => wk.pack(w)));
  const shared = ws.map((w, i) => (shapes[i]![3] === 'f32' ? pool.share(w) : null));
  const xs = shapes.map(([T, K]) => randF32(T * K));
  const f32Key = ([T, K, N]: Shape) => `${T}x${K}x${N}`;
  const key = (s: Shape) => `${f32Key(s)}${s[3] === 'bf16' ? ' bf16' : ''}`;
  const samples: Record<string, Record<string, number[]>> = {};
  for (const s of shapes) samples[key(s)] = Object.fromEntries([...names, 'engine', 'numpy'].map((n) => [n, []]));
  let core = 'n/a';
  for (let r = 0; r < ROUNDS; r++) {
    shapes.forEach((s, i) => {
      const reps = s[0] > 1 ? 5 : 50;
      wks.forEach((wk, v) => samples[key(s)]![names[v]!]!.push(median(timeCalls(() => wk.linear(packed[v]![i]!, xs[i]!, s[0], null), reps, 1))));
      // the engine's product is slow at prefill shapes: one call per round there (f32 weights only)
      const w = shared[i];
      if (w) samples[key(s)]!.engine!.push(median(timeCalls(() => pool.linear(xs[i]!, s[0], s[1], w, null), s[0] > 1 ? 1 : 20, s[0] > 1 ? 0 : 2)));
    });
    const np = numpyRound(shapes.filter((s) => s[3] === 'f32').map(([T, K, N]) => [T, K, N]));
    if (np) {
      core = String(np.core);
      for (const s of shapes) samples[key(s)]!.numpy!.push(np[f32Key(s)] as number);
    }
    process.stderr.write(`matmul round ${r + 1}/${ROUNDS} (load ${loadavg()[0]!.toFixed(1)})\n`);
  }
  for (const wk of wks) wk.close();
  pool.close();
  const rows = [['shape T×K×N', ...names.map((n) => `wasm ${n} GFLOP/s`), 'engine GFLOP/s', 'numpy GFLOP/s', ...names.map((n) => `${n} / numpy`)]];
  const out: Record<string, object> = {};
  for (const s of shapes) {
    const f = 2 * s[0] * s[1] * s[2] / 1e9;
    const m = samples[key(s)]!;
    const g = Object.fromEntries(Object.entries(m).map(([n, t]) => [n, t.length ? f / over(t) : NaN]));
    out[key(s)] = g;
    rows.push([key(s), ...names.map((n) => fmt(g[n]!)), fmt(g.engine!), m.numpy!.length ? fmt(g.numpy!) : '-',
      ...names.map((n) => (m.numpy!.length ? `${fmt(100 * g[n]! / g.numpy!)} %` : '-'))].map((c) => (c === 'NaN' ? '-' : c)));
  }
  console.log(`\nMatrix products, ${THREADS} threads, f32 weights unless marked bf16 (numpy: f32), ${STAT} ${ROUNDS} interleaved rounds (numpy OpenBLAS core: ${core})\n${table(rows)}`);
  return { core, gflops: out };
}

// ---- 2. GEMV bandwidth vs memory copy ---------------------------------------------------------

function gemvBench(variants: Variants): object {
  // every product of one decode step: 10 Mamba layers (in_proj, out_proj), 2 attention layers
  // (q/k/v, o), 12 MLPs (gate/up, down) and the head
  const mats: [number, number][] = [];
  for (let l = 0; l < 12; l++) {
    if (l === 5 || l === 11) mats.push([1280, D], [D, D]);
    else mats.push([IN_PROJ, D], [D, INNER]);
    mats.push([2 * FF, D], [D, FF]);
  }
  mats.push([V, D]);
  const names = Object.keys(variants);
  const out: Record<string, object> = {};
  const rows = [['weights', 'bytes/step', ...names.map((n) => `GEMV ${n} GB/s`), 'copy 1t GB/s', `copy ${THREADS}t GB/s`, ...names.map((n) => `${n} / best copy`)]];
  for (const dtype of ['f32', 'bf16'] as const) {
    const wks = names.map((n) => new WasmKernels(variants[n]!, THREADS));
    const ws = mats.map(([N, K]) => {
      const f = randF32(N * K);
      return (dtype === 'f32' ? { dtype, shape: [N, K], data: f } : { dtype, shape: [N, K], data: Uint16Array.from(f, f32ToBf16) }) as Tensor;
    });
    const packed: PackedWeight[][] = wks.map((wk) => ws.map((w) => wk.pack(w)));
    const bytes = packed[0]!.reduce((s, p) => s + p.panels * 8 * p.K * (dtype === 'f32' ? 4 : 2), 0);
    const xs = mats.map(([, K]) => randF32(K));
    const gemv: number[][] = names.map(() => []), copy1: number[] = [], copyN: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      wks.forEach((wk, v) => gemv[v]!.push(median(timeCalls(() => packed[v]!.forEach((p, i) => wk.linear(p, xs[i]!, 1, null)), 5, 1))));
      copy1.push(copyBench(bytes, 1, 5));
      copyN.push(copyBench(bytes, THREADS, 5));
    }
    for (const wk of wks) wk.close();
    // a copy reads and writes every byte (STREAM's convention counts both); the GEMV reads its weights
    const g = gemv.map((t) => bytes / over(t) / 1e9), c1 = 2 * bytes / over(copy1) / 1e9, cN = 2 * bytes / over(copyN) / 1e9;
    const best = Math.max(c1, cN);
    out[dtype] = { bytesPerStep: bytes, ...Object.fromEntries(names.map((n, v) => [`gemv${n === 'fma' ? 'Fma' : 'Plain'}GBs`, g[v]])), copy1GBs: c1, copyNGBs: cN,
      ...Object.fromEntries(names.map((n, v) => [`ratio${n === 'fma' ? 'Fma' : 'Plain'}`, g[v]! / best])) };
    rows.push([dtype, `${fmt(bytes / 2 ** 20)} MiB`, ...g.map((x) => fmt(x)), fmt(c1), fmt(cN), ...g.map((x) => `${fmt(100 * x / best)} %`)]);
  }
  console.log(`\nDecode GEMV over one step's products vs a memory copy of as many bytes (copy counts read + write), ${THREADS} threads, ${STAT} ${ROUNDS} interleaved rounds\n${table(rows)}`);
  return out;
}

// ---- 3. end to end ------------------------------------------------------------------------------

async function e2eBench(kernels: Uint8Array[]): Promise<object> {
  const out: Record<string, object> = {};
  const rows = [['weights', 'engine', 'prefill 512 tok/s', 'decode tok/s', 'prefill ×', 'decode ×']];
  for (const dtype of ['f32', 'bf16'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'archc-bench-wasm-'));
    try {
      const init = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', dir, '--dtype', dtype, ...SETS.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
      if (init.status !== 0) throw new Error(`init-weights failed:\n${init.stderr}`);
      const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')) });
      const program = lowerToProgram(c.graph, c.bindings);
      const models = {
        engine: await Model.loadProgram(program, dir, { threads: THREADS }),
        wasm: await Model.loadProgram(program, dir, { threads: THREADS, backend: 'wasm', wasmKernels: kernels, wasmProgram: await wasmProgram(program) }),
      };
      const prompt = Array.from({ length: 512 }, (_, i) => (i * 7919) % V);
      const t: Record<string, { prefill: number[]; decode: number[] }> = { engine: { prefill: [], decode: [] }, wasm: { prefill: [], decode: [] } };
      let maxRel = 0;
      for (let r = 0; r < E2E_ROUNDS; r++) {
        const last: Record<string, Float32Array> = {};
        for (const [name, m] of Object.entries(models)) {
          const t0 = performance.now();
          const { logits } = m.prefill([prompt]);
          t[name]!.prefill.push((performance.now() - t0) / 1000);
          last[name] = logits[0]!;
          // decode: 64 tokens after a 16-token prompt, batch 1
          const { states } = m.prefill([prompt.slice(0, 16)]);
          const t1 = performance.now();
          for (let k = 0; k < 64; k++) m.decode([prompt[16 + k]!], states);
          t[name]!.decode.push((performance.now() - t1) / 1000);
          m.releaseSequence(states[0]!);
          process.stderr.write(`${dtype} ${name} round ${r + 1}/${E2E_ROUNDS}: prefill ${fmt(t[name]!.prefill.at(-1)!, 2)} s, decode ${fmt(t[name]!.decode.at(-1)!, 2)} s (load ${loadavg()[0]!.toFixed(1)})\n`);
        }
        const scale = Math.max(...Array.from(last.engine!, Math.abs));
        for (let i = 0; i < V; i++) maxRel = Math.max(maxRel, Math.abs(last.wasm![i]! - last.engine![i]!) / scale);
      }
      const res = Object.fromEntries(Object.entries(t).map(([n, s]) => [n, { prefillTokS: 512 / over(s.prefill), decodeTokS: 64 / over(s.decode) }]));
      out[dtype] = { ...res, maxRelLogitDiff: maxRel };
      const e = res.engine!, w = res.wasm!;
      rows.push([dtype, 'reference', fmt(e.prefillTokS), fmt(e.decodeTokS), '', '']);
      rows.push([dtype, 'wasm', fmt(w.prefillTokS), fmt(w.decodeTokS), `${fmt(w.prefillTokS / e.prefillTokS, 2)}×`, `${fmt(w.decodeTokS / e.decodeTokS, 2)}×`]);
      for (const m of Object.values(models)) m.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`\nEnd to end, ~100M Bamba (${SETS.join(' ')}), ${THREADS} threads, ${STAT} ${E2E_ROUNDS} interleaved rounds; decode = 64 tokens after 16, batch 1\n${table(rows)}`);
  return out;
}

// ---- 4. quantised weights end to end ---------------------------------------------------------

async function quantBench(kernels: Uint8Array[]): Promise<object> {
  const dir = mkdtempSync(join(tmpdir(), 'archc-bench-wasm-quant-'));
  try {
    const init = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), 'init-weights', BAMBA, '-o', dir, '--dtype', 'bf16', ...SETS.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`init-weights failed:\n${init.stderr}`);
    const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(dir, 'config.json')) });
    const program = lowerToProgram(c.graph, c.bindings);
    const wasmProg = await wasmProgram(program);
    const names = ['bf16', 'q8', 'q4'] as const;
    const models = await Promise.all(names.map((n) => Model.loadProgram(program, dir, { threads: THREADS, backend: 'wasm', wasmKernels: kernels, wasmProgram: wasmProg,
      ...(n === 'bf16' ? {} : { quantize: n }) })));
    const prompt = Array.from({ length: 512 }, (_, i) => (i * 7919) % V);
    // decode also in CPU time (this process, worker threads included; the workers block, not spin,
    // between products): on a machine loaded by other work it moves far less than wall time
    const t = names.map(() => ({ prefill: [] as number[], decode: [] as number[], decodeCpu: [] as number[] }));
    for (let r = 0; r < E2E_ROUNDS; r++) {
      models.forEach((m, i) => {
        const { states } = m.prefill([prompt.slice(0, 16)]);
        const t1 = performance.now(), c1 = process.cpuUsage();
        for (let k = 0; k < 64; k++) m.decode([prompt[16 + k]!], states);
        t[i]!.decode.push((performance.now() - t1) / 1000);
        const c = process.cpuUsage(c1);
        t[i]!.decodeCpu.push((c.user + c.system) / 1e6);
        m.releaseSequence(states[0]!);
        const t0 = performance.now();
        m.prefill([prompt]);
        t[i]!.prefill.push((performance.now() - t0) / 1000);
        process.stderr.write(`${names[i]} round ${r + 1}/${E2E_ROUNDS}: decode ${fmt(t[i]!.decode.at(-1)!, 2)} s (CPU ${fmt(t[i]!.decodeCpu.at(-1)!, 2)} s), prefill ${fmt(t[i]!.prefill.at(-1)!, 2)} s (load ${loadavg()[0]!.toFixed(1)})\n`);
      });
    }
    for (const m of models) m.dispose();
    const res = names.map((_, i) => ({ decodeTokS: 64 / over(t[i]!.decode), decodeCpuMsTok: 1000 * over(t[i]!.decodeCpu) / 64, prefillTokS: 512 / over(t[i]!.prefill) }));
    const rows = [['weights', 'decode tok/s', 'decode × bf16', 'decode CPU ms/tok', 'CPU × bf16', 'prefill 512 tok/s', 'prefill × bf16']];
    names.forEach((n, i) => rows.push([n, fmt(res[i]!.decodeTokS), `${fmt(res[i]!.decodeTokS / res[0]!.decodeTokS, 2)}×`, fmt(res[i]!.decodeCpuMsTok, 2),
      `${fmt(res[0]!.decodeCpuMsTok / res[i]!.decodeCpuMsTok, 2)}×`, fmt(res[i]!.prefillTokS), `${fmt(res[i]!.prefillTokS / res[0]!.prefillTokS, 2)}×`]));
    console.log(`\nQuantised weights end to end, wasm, ~100M Bamba (${SETS.join(' ')}), ${THREADS} threads, ${STAT} ${E2E_ROUNDS} interleaved rounds; decode = 64 tokens after 16, batch 1\n${table(rows)}`);
    return Object.fromEntries(names.map((n, i) => [n, res[i]]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// both variants a build ships, by name; end to end runs the one the runtime picks (fma where it validates)
const kernels = await wasmKernelVariants();
if (QUANT) {
  const load0 = loadavg()[0];
  const quant = await quantBench(kernels);
  const conditions = `load average ${load0?.toFixed(1)} at the start, ${loadavg()[0]?.toFixed(1)} at the end, on ${cpus().length} cores`;
  console.log(`\n${conditions}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'wasm-quant.json'), JSON.stringify({ bench: 'wasm --quant', date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length,
    threads: THREADS, rounds: E2E_ROUNDS, statistic: BEST ? 'fastest round' : 'median', conditions, quant }, null, 2) + '\n');
  console.log(`wrote ${join('bench', 'results', 'wasm-quant.json')}`);
  process.exit(0);
}
const variants: Variants = Object.fromEntries(await Promise.all(WASM_TARGETS.map(async (t) => [t.fma ? 'fma' : 'plain', await wasmModule(await wasmKernels(t))] as const)));
const load0 = loadavg()[0];
const matmul = matmulBench(variants);
const gemv = gemvBench(variants);
const e2e = SKIP_E2E ? null : await e2eBench(kernels);
const conditions = `load average ${load0?.toFixed(1)} at the start, ${loadavg()[0]?.toFixed(1)} at the end, on ${cpus().length} cores`;
console.log(`\n${conditions}`);
const dir = join(ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'wasm.json'), JSON.stringify({ bench: 'wasm', date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length,
  threads: THREADS, rounds: ROUNDS, statistic: BEST ? 'fastest round' : 'median', conditions, matmul, gemv, e2e }, null, 2) + '\n');
console.log(`wrote ${join('bench', 'results', 'wasm.json')}`);
