// Prepares the Hugging Face comparison for a machine that has PyTorch and transformers but no Node:
// random Bamba checkpoints of several configurations, and archc's CPU logits for a packed batch of
// each, written with a manifest to .device/hf-check/ (carried to the device by tools/device-check.sh).
// Run: npx tsx tools/hf-check/make.ts

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeNpy } from '../../cli/npy.ts';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import type { DType } from '../../runtime/tensor.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const OUT = join(ROOT, '.device', 'hf-check');
const BAMBA = join(ROOT, 'models', 'bamba.arch');

const BASE = ['vocab=512', 'd_model=64', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=8', 'd_state=16', 'd_ff=128'];
const CASES: { name: string; set: string[]; dtype: DType }[] = [
  { name: 'mid-attn-tied-f32', set: ['n_layers=4', 'attn_layers=[1]', 'chunk=8'], dtype: 'f32' },
  { name: 'first-attn-2groups-untied-bf16', set: ['n_layers=3', 'attn_layers=[0]', 'mamba_groups=2', 'tie=false', 'chunk=5'], dtype: 'bf16' },
  { name: 'last-attn-biases-f32', set: ['n_layers=3', 'attn_layers=[2]', 'proj_bias=true', 'chunk=16'], dtype: 'f32' },
];
const SEQS = [[1, 17, 33, 250, 7, 9, 100, 3, 44, 12, 5], [400, 2, 2, 2, 80], [66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85]];

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const manifest = [];
for (const c of CASES) {
  const dir = join(OUT, c.name);
  mkdirSync(dir);
  const compiled = compileFile(BAMBA, { set: [...BASE, ...c.set] });
  writeFileSync(join(dir, 'config.json'), hfConfigText(compiled, c.dtype));
  writeSafetensors(join(dir, 'model.safetensors'), initWeights(compiled.graph, createRng(42), c.dtype), { format: 'pt' });
  const model = await Model.loadProgram(lowerToProgram(compiled.graph, compiled.bindings), dir);
  const ids = SEQS.flat();
  const positions = SEQS.flatMap((s) => s.map((_, i) => i));
  const { logits } = model.forward({ ids, positions });
  writeFileSync(join(dir, 'archc-logits.npy'), encodeNpy(logits, [ids.length, model.vocab]));
  manifest.push({ name: c.name, dtype: c.dtype, seqs: SEQS });
  console.log(`${c.name}: ${compiled.graph.weights.length} tensors, logits [${ids.length}, ${model.vocab}]`);
}
writeFileSync(join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2));
console.log(`wrote ${OUT}`);
