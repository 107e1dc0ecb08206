// The WebGPU backend kernel by kernel: one prefill and one decode step of a Bamba checkpoint, each
// kernel submitted alone and awaited (queue.onSubmittedWorkDone), so the time of every kernel and
// the passes it dispatched show where a step goes. Totals are grouped by kernel family and pass.
//
// Run: npx tsx bench/webgpu-profile.ts <checkpoint dir> [--prompt N] [--profile gpu|cpu] [--top N]
// (a checkpoint from `archc init-weights models/bamba.arch -o DIR --dtype bf16 --set ...`).
// Without a GPU, Dawn runs on SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json

import { existsSync, mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderProgram } from '../codegen/wgsl/render.ts';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { Model } from '../runtime/model.ts';
import type { EntryName } from '../runtime/program.ts';
import type { WebGpuBackend } from '../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../runtime/webgpu/shaders.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'archc-xdg-'));
  const dir = process.argv[2];
  if (!dir || dir.startsWith('--')) throw new Error('usage: npx tsx bench/webgpu-profile.ts <checkpoint dir> [--prompt N] [--profile gpu|cpu] [--top N]');
  const promptLen = Number(arg('--prompt') ?? 64);
  const top = Number(arg('--top') ?? 12);
  const profile = arg('--profile') as WgslProfile | undefined;
  const compiled = compileFile(join(ROOT, 'models', 'bamba.arch'), { hfConfigData: loadConfig(join(dir, 'config.json')) });
  const program = lowerToProgram(compiled.graph, compiled.bindings);
  const wgsl = renderProgram(program);
  const model = await Model.loadProgram(program, dir, { backend: 'webgpu', wgsl, capacity: promptLen + 8, ...(profile ? { webgpu: { profile } } : {}) });
  const backend = (model as unknown as { backend: WebGpuBackend }).backend;
  console.log(`adapter: ${backend.adapter}; profile ${backend.profile}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const pool = backend.createStatePool(promptLen + 8);
  const slot = pool.acquire();
  const tokens = Int32Array.from({ length: promptLen }, (_, i) => (i * 7919) % model.vocab);
  const runs: [EntryName, Parameters<WebGpuBackend['begin']>[1]][] = [
    ['prefill', { tokens, positions: Int32Array.from({ length: promptLen }, (_, i) => i), seqs: [{ start: 0, len: promptLen }], slots: [slot], lengths: [0] }],
    ['decode', { tokens: Int32Array.of(5), positions: Int32Array.of(promptLen), seqs: [{ start: 0, len: 1 }], slots: [slot], lengths: [promptLen] }],
  ];
  for (const [name, batch] of runs) {
    const entry = program.entries[name];
    const shaders = backend.shaders.profiles[backend.profile][name];
    // one warm-up run (pipelines are made on first use), then the timed one
    for (const timed of [false, true]) {
      const inv = backend.begin(entry, batch, pool);
      await backend.device.queue.onSubmittedWorkDone();
      const rows: { kernel: string; family: string; ms: number; dispatches: number; passes: string }[] = [];
      const t0 = performance.now();
      for (const [i, k] of entry.kernels.entries()) {
        const d0 = backend.dispatches;
        const t = performance.now();
        inv.dispatch(k);
        backend.flush();
        await backend.device.queue.onSubmittedWorkDone();
        rows.push({ kernel: k.name, family: k.family, ms: performance.now() - t, dispatches: backend.dispatches - d0, passes: shaders.kernels[i]!.passes.map((p) => p.name).join(', ') });
      }
      if (!timed) continue;
      const total = performance.now() - t0;
      console.log(`\n${name} (T=${batch.tokens.length}): ${total.toFixed(1)} ms, ${rows.reduce((s, r) => s + r.dispatches, 0)} dispatches, ${entry.kernels.length} kernels`);
      const byFamily = new Map<string, { ms: number; n: number }>();
      for (const r of rows) {
        const key = r.family + (r.family === 'matmul' ? (r.kernel === 'head' ? ' (head)' : '') : '');
        const f = byFamily.get(key) ?? { ms: 0, n: 0 };
        byFamily.set(key, { ms: f.ms + r.ms, n: f.n + 1 });
      }
      for (const [f, v] of [...byFamily].sort((a, b) => b[1].ms - a[1].ms)) console.log(`  ${f.padEnd(22)} ${v.ms.toFixed(1).padStart(9)} ms  ${(100 * v.ms / total).toFixed(1).padStart(5)}%  (${v.n} kernels)`);
      console.log(`  slowest kernels:`);
      for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, top)) console.log(`  ${r.ms.toFixed(2).padStart(9)} ms  ${r.kernel} [${r.passes}] ${r.dispatches} dispatch(es)`);
    }
  }
  model.dispose();
  process.exit(0); // Dawn's instance holds the process open
}

await main();
