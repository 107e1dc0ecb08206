// Front-end benchmark: `archc check` and `archc stats` work (parse, resolve, instantiate, verify,
// stats) on Bamba-9B and on generated deep models, to show that time grows linearly with layers.
// Run: npx tsx bench/frontend.ts   (writes bench/results/frontend.json)

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileFile } from '../compiler/compile.ts';
import { computeStats } from '../compiler/stats.ts';
import { median, timeCalls } from './timing.ts';

const MODELS = join(import.meta.dirname, '..', 'models');

/** Median milliseconds per call. */
const time = (f: () => void, reps: number): number => 1000 * median(timeCalls(f, reps));

const rows: { model: string; layers: number; nodes: number; checkMs: number; statsMs: number; msPerLayer: number }[] = [];
const run = (label: string, layers: number, set: string[]) => {
  const file = join(MODELS, 'bamba.arch');
  compileFile(file, { set }); // warm up
  let nodes = 0;
  const reps = layers >= 1000 ? 3 : 7;
  const checkMs = time(() => {
    nodes = compileFile(file, { set }).graph.nodes.length;
  }, reps);
  const statsMs = time(() => {
    computeStats(compileFile(file, { set }).graph, 4096, 1);
  }, reps);
  rows.push({ model: label, layers, nodes, checkMs, statsMs, msPerLayer: checkMs / layers });
};

run('bamba-9b', 32, []);
for (const n of [125, 250, 500, 1000]) {
  const attn = Array.from({ length: Math.floor(n / 9) }, (_, i) => 9 * i + 8);
  run(`bamba-${n}L`, n, [`n_layers=${n}`, `attn_layers=${JSON.stringify(attn)}`]);
}

console.log('model          layers   nodes   check ms   stats ms   check ms/layer');
for (const r of rows) {
  console.log(`${r.model.padEnd(14)} ${String(r.layers).padStart(6)} ${String(r.nodes).padStart(7)} ${r.checkMs.toFixed(1).padStart(10)} ${r.statsMs.toFixed(1).padStart(10)} ${r.msPerLayer.toFixed(3).padStart(16)}`);
}
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(join(import.meta.dirname, 'results', 'frontend.json'), JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
