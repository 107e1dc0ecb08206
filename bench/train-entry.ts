// The train entry's size (compiler/kernel/train.ts): kernels unfused and after the kernel rules, and
// the memory plan's arena against every buffer apart, for a model at a packed batch of T tokens in S
// sequences (default tiny-bamba-a's shape at its training batch, 4 rows of 256). No timing.
// Run: npx tsx bench/train-entry.ts [T S]   (another model's config.json: ARCHC_BENCH_CONFIG=path)

import { join } from 'node:path';
import { compileFile, loadConfig } from '../compiler/compile.ts';
import { arenaBytes } from '../compiler/kernel/memory.ts';
import { lowerToProgram } from '../compiler/lower.ts';

const CONFIG = process.env.ARCHC_BENCH_CONFIG ?? join(import.meta.dirname, '..', '..', 'shared', 'models', 'tiny-bamba-a', 'f32', 'config.json');
const [T, S] = process.argv.length > 3 ? [Number(process.argv[2]), Number(process.argv[3])] : [1024, 4];

const c = compileFile(join(import.meta.dirname, '..', 'models', 'bamba.arch'), { hfConfigData: loadConfig(CONFIG) });
const unfused = lowerToProgram(c.graph, c.bindings, { train: true, rules: [] }).train!;
const p = lowerToProgram(c.graph, c.bindings, { train: true }), t = p.train!;
const apart = 4 * t.buffers.reduce((n, b) => n + b.width * (b.rows === 'T' ? T : b.rows === 'S' ? S : 1), 0);
const params = c.graph.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
console.log(`${CONFIG}: ${params} parameters; train entry ${unfused.kernels.length} kernels unfused, ${t.kernels.length} after the rules, ${t.buffers.length} buffers`);
console.log(`arena: ${t.arena.T} floats per token + ${t.arena.C} constant (the forward entry: ${p.entries.forward.arena.T} per token)`);
console.log(`at T=${T}, S=${S}: ${mb(arenaBytes(t, T, S))} planned, ${mb(apart)} with every buffer apart (unfused plan: ${mb(arenaBytes(unfused, T, S))})`);
