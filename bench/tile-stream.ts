// The bf16 row-tile products (codegen/wasm/kernels.ts gemm_bf16) as a decode step of `--rows`
// sequences reads them: every product of bench/decode.ts' ~100M Bamba (12 layers: 10 Mamba-2 mixers'
// in_proj [3224, 768] and out_proj [768, 1536], 2 attention layers' q/k/v [1280, 768] and o [768, 768],
// 12 MLPs' gate/up [2560, 768] and down [768, 1280], the head [32000, 768]; 200 MB of bf16 panels,
// each weight its own copy, so they come from memory), for module variants that differ only in the
// widening tile's read-ahead (WasmTarget.tileReadAhead; runtime/wasm/layout.ts TILE_READ_AHEAD),
// interleaved round by round in one process. Reports the fastest step's wall time on one thread and
// on `--threads`, and on one thread its CPU time (less sensitive to other work on the machine, not to
// the memory bandwidth it shares). `--cached`: one [768, 768] weight (1.2 MB, stays in cache) read as
// often, the same multiply-adds with no stream from memory: the step's arithmetic floor.
//
// `--mr 6,4`: also modules of other row-tile heights (WasmTarget.rowsPerTile; widenFrom at least it);
// `--pair 2,0`: with and without a short last tile over two panels at once (WasmTarget.pairRows).
// Run: npx tsx bench/tile-stream.ts [--rows 1,8] [--threads 2] [--rounds 5] [--ahead 512,512:off,0] [--mr 6] [--pair 2] [--cached]
import { cpuUsage } from 'node:process';
import { wasmKernels } from '../codegen/wasm/assemble.ts';
import { WASM_FMA_TARGET, type WasmTarget } from '../codegen/wasm/target.ts';
import { type PackedWeight, WasmKernels } from '../runtime/wasm/kernels.ts';
import { wasmModule } from '../runtime/wasm/module.ts';

const argv = process.argv;
const arg = (name: string, dflt: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : dflt);
const ROWS = arg('--rows', '1,8').split(',').map(Number), THREADS = Number(arg('--threads', '2')), ROUNDS = Number(arg('--rounds', '5'));
const SHAPES: [number, number, number][] = [[3224, 768, 10], [768, 1536, 10], [1280, 768, 2], [768, 768, 2], [2560, 768, 12], [768, 1280, 12], [32000, 768, 1]];
const MAXR = Math.max(...ROWS), CACHED = argv.includes('--cached');

function bf16(N: number, K: number, seed: number): Uint16Array {
  const v = new Uint16Array(N * K), f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < v.length; i++) { f[0] = Math.sin((i + seed) * 12.9898) * 0.05; v[i] = u[0]! >>> 16; }
  return v;
}

async function variant(t: WasmTarget, threads: number) {
  const wk = new WasmKernels(await wasmModule(await wasmKernels(t)), threads);
  const xAt = wk.allocate(4 * MAXR * 1536), yAt = wk.allocate(4 * MAXR * 32000);
  new Float32Array(wk.memory.buffer, xAt, MAXR * 1536).forEach((_, i, a) => { a[i] = Math.cos(i); });
  const packed: PackedWeight[] = [];
  let seed = 0;
  if (CACHED) {
    // one [768, 768] weight read 169 times: about a step's multiply-adds (99.6 M), nothing from memory
    const w = wk.pack({ dtype: 'bf16', shape: [768, 768], data: bf16(768, 768, 0) });
    for (let i = 0; i < 169; i++) packed.push(w);
  } else for (const [N, K, n] of SHAPES) for (let l = 0; l < n; l++) packed.push(wk.pack({ dtype: 'bf16', shape: [N, K], data: bf16(N, K, seed++) }));
  await wk.start();
  const step = (T: number) => { for (const p of packed) wk.linearAt(p, xAt, p.K, T, yAt, p.panels * 8); };
  return { wk, step, macs: packed.reduce((a, p) => a + p.N * p.K, 0) };
}

/** Milliseconds of the fastest of `n` steps: wall, and the process's CPU time. */
function fastest(fn: () => void, n: number): { wall: number; cpu: number } {
  let wall = Infinity, cpu = Infinity;
  for (let i = 0; i < n; i++) {
    const c0 = cpuUsage(), t0 = performance.now();
    fn();
    wall = Math.min(wall, performance.now() - t0);
    const c = cpuUsage(c0);
    cpu = Math.min(cpu, (c.user + c.system) / 1000);
  }
  return { wall, cpu };
}

// a read-ahead `D:off`: the module's loads D bytes ahead, switched off in the memory (runtime/wasm/layout.ts READ_AHEAD_FLAG)
const AHEADS = arg('--ahead', `${WASM_FMA_TARGET.tileReadAhead},${WASM_FMA_TARGET.tileReadAhead}:off,0`).split(',');
const AHEAD = AHEADS.map((a) => Number(a.replace(':off', ''))), OFF = AHEADS.map((a) => a.endsWith(':off'));
const MRS = arg('--mr', `${WASM_FMA_TARGET.rowsPerTile}`).split(',').map(Number);
const PAIRS = arg('--pair', `${WASM_FMA_TARGET.pairRows}`).split(',').map(Number);
for (const mr of MRS) if (!(Number.isInteger(mr) && mr >= 1 && mr <= WASM_FMA_TARGET.tokenBlock)) throw new Error(`--mr: rows per tile from 1 to ${WASM_FMA_TARGET.tokenBlock}, got ${mr}`);
for (const p of PAIRS) if (!(Number.isInteger(p) && p >= 0)) throw new Error(`--pair: a count of rows, 0 or more, got ${p}`);
const names: string[] = [], targets: WasmTarget[] = [];
const offs: boolean[] = [];
for (const mr of MRS) for (const pairRows of PAIRS) for (const [ai, a] of AHEAD.entries()) {
  offs.push(OFF[ai]!);
  names.push(`${MRS.length > 1 ? `MR ${mr}, ` : ''}${PAIRS.length > 1 ? `pairs ${pairRows}, ` : ''}${a ? `read-ahead ${a}${OFF[ai] ? ' switched off' : ''}` : 'none'}`);
  targets.push({ ...WASM_FMA_TARGET, tileReadAhead: a, rowsPerTile: mr, widenFrom: Math.max(mr, WASM_FMA_TARGET.widenFrom), tokenBlock: Math.floor(WASM_FMA_TARGET.tokenBlock / mr) * mr, pairRows: Math.min(pairRows, mr - 1) });
}
for (const threads of new Set([1, THREADS])) {
  const vs = [];
  for (const [i, t] of targets.entries()) {
    const v = await variant(t, threads);
    v.wk.readAhead = !offs[i];
    vs.push(v);
  }
  console.log(`${threads} thread${threads > 1 ? 's' : ''}, ${(vs[0]!.macs * 2 / 1e6).toFixed(0)} MB of bf16 panels a step`);
  for (const T of ROWS) {
    const by: { wall: number; cpu: number }[][] = vs.map(() => []);
    for (let r = 0; r < ROUNDS; r++) vs.forEach((v, i) => by[i]!.push(fastest(() => v.step(T), 3)));
    vs.forEach((v, i) => {
      const wall = Math.min(...by[i]!.map((b) => b.wall)), cpu = Math.min(...by[i]!.map((b) => b.cpu));
      console.log(`  ${T} rows, ${names[i]!.padEnd(24)} wall ${by[i]!.map((b) => b.wall.toFixed(1)).join(' ')} ms (best ${wall.toFixed(1)}, ${(2 * v.macs * T / wall / 1e6).toFixed(1)} GFLOP/s)${threads === 1 ? `, CPU ${cpu.toFixed(1)} ms` : ''}`);
    });
  }
  for (const v of vs) v.wk.close();
}
process.exit(0);
