// Decode on the wasm backend at the ~100M Bamba of bench/llama/compare.ts (its checkpoint under
// ~/.cache/archc-bench/ck/bamba-100m; made there with `archc init-weights` when missing): for each
// weight format and batch size, aggregate decode tokens/s of `--gen` tokens after a 64-token prompt
// per sequence, and the split of a step's wall time between the weight products (WasmKernels.linearAt,
// which the calling thread shares with the workers) and the rest (the program module's steps —
// norms, conv, SSD step, attention — and the dispatch, on the calling thread alone). Best of
// `--rounds` rounds, formats and batch sizes interleaved within a round.
//
// Run: npx tsx bench/decode.ts [--formats bf16,q8a8,q4a8] [--batch 1,2,4,8] [--threads 2] [--rounds 3] [--gen 32]
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
import { Model } from '../runtime/model.ts';
import { WasmKernels } from '../runtime/wasm/kernels.ts';

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

const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(ckpt, 'config.json')) });
const program = lowerToProgram(c.graph, c.bindings);
const kernels = await wasmKernelVariants(), wasmProg = await wasmProgram(program);
const V = program.outputs.logits!;
const models = new Map<string, Model>();
for (const f of FORMATS) {
  models.set(f, await Model.loadProgram(program, ckpt, { threads: THREADS, backend: 'wasm', wasmKernels: kernels, wasmProgram: wasmProg,
    ...(f === 'bf16' ? {} : { quantize: f.slice(0, 2) as 'q8' | 'q4', activations: f.endsWith('a8') ? 'q8' : 'f32' }) }));
}

type Row = { tokPerS: number; stepMs: number; productsMs: number };
const best = new Map<string, Row>();
for (let r = 0; r < ROUNDS; r++) {
  for (const f of FORMATS) for (const B of BATCHES) {
    const m = models.get(f)!;
    const prompts = Array.from({ length: B }, (_, b) => Array.from({ length: 64 }, (_, i) => (i * 7919 + b * 31) % V));
    const { states } = m.prefill(prompts);
    inProducts = 0;
    const t0 = performance.now();
    for (let k = 0; k < GEN; k++) m.decode(prompts.map((p) => p[k % 64]!), states);
    const ms = performance.now() - t0;
    for (const s of states) m.releaseSequence(s);
    const row = { tokPerS: (B * GEN) / (ms / 1000), stepMs: ms / GEN, productsMs: inProducts / GEN };
    const key = `${f}:${B}`;
    if (!best.has(key) || row.tokPerS > best.get(key)!.tokPerS) best.set(key, row);
    process.stderr.write(`round ${r + 1}/${ROUNDS} ${f} batch ${B}: ${row.tokPerS.toFixed(1)} tok/s (load ${loadavg()[0]!.toFixed(1)})\n`);
  }
}
for (const m of models.values()) m.dispose();

const rows = [['weights', 'batch', 'decode tok/s', '× batch 1', 'step ms', 'products ms', 'the rest ms']];
for (const f of FORMATS) for (const B of BATCHES) {
  const x = best.get(`${f}:${B}`)!, one = best.get(`${f}:${BATCHES[0]}`)!;
  rows.push([f, String(B), x.tokPerS.toFixed(1), (x.tokPerS / one.tokPerS).toFixed(2), x.stepMs.toFixed(2), x.productsMs.toFixed(2), (x.stepMs - x.productsMs).toFixed(2)]);
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log(`\n~100M Bamba, wasm, ${THREADS} threads, fastest of ${ROUNDS} rounds; ${GEN} tokens after a 64-token prompt per sequence`);
for (const r of rows) console.log(r.map((v, i) => v.padStart(widths[i]!)).join('  '));
console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'decode.json'), JSON.stringify({ threads: THREADS, rounds: ROUNDS, gen: GEN, results: Object.fromEntries(best) }, null, 2) + '\n');
