// Lowering benchmark: the back half of the pipeline (lowering, kernel rules, memory plan) on
// GPT-2-like programs of 32 to 255 layers, to show that its time grows linearly with the layers
// (the kernel rules' work is bounded in CI by test/compiler/kernel/work.test.ts; this shows seconds).
// Run: npx tsx bench/lowering.ts [layers...]   (writes bench/results/lowering.json)

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileFile } from '../compiler/compile.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { median, timeCalls } from './timing.ts';

const FILE = join(import.meta.dirname, '..', 'models', 'gpt2.arch');
const layers = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [32, 64, 128, 255];

const rows: { layers: number; ops: number; kernels: number; lowerMs: number; msPerLayer: number }[] = [];
for (const n of layers) {
  // small widths: lowering's work depends on the ops, not on their sizes
  const { graph, bindings, choices } = compileFile(FILE, { set: [`n_layers=${n}`, 'd_model=64', 'n_heads=4', 'vocab=256', 'context=64'] }).forProgram;
  let kernels = 0;
  const lowerMs = 1000 * median(timeCalls(() => {
    const p = lowerToProgram(graph, bindings, { choices });
    kernels = Object.values(p.entries).reduce((s, e) => s + e.kernels.length, 0);
  }, 3, 1));
  rows.push({ layers: n, ops: graph.nodes.length, kernels, lowerMs, msPerLayer: lowerMs / n });
}

console.log('layers     ops   kernels   lower ms   ms/layer');
for (const r of rows) {
  console.log(`${String(r.layers).padStart(6)} ${String(r.ops).padStart(7)} ${String(r.kernels).padStart(9)} ${r.lowerMs.toFixed(1).padStart(10)} ${r.msPerLayer.toFixed(2).padStart(10)}`);
}
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(join(import.meta.dirname, 'results', 'lowering.json'), JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
