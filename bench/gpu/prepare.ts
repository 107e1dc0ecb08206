// Prepares the GPU script's folder (bench/gpu/work/, ignored by git): everything bench/gpu/run.sh
// needs on a machine with an NVIDIA GPU and Python but no Node. For each model, the compiled CUDA
// modules (cubins for --cuda-arch, PTX of the lowest) and kernel sources, and "sessions": runs of
// the program's entries recorded as launches (function, grid, block, ArchcArgs packed by
// runtime/cuda/abi.ts with its ten pointers left for the driver to fill in, the weights of its
// table, the shape of a product or an attention for torch's baseline). The tiny model carries its
// weights (as the CUDA backend stores them) and the CPU engine's result of every launch and the
// logits of every run; the Bamba-9B-shaped model carries only the weight sizes and how to fill them
// (bench/gpu/driver.py fills them with random values on the GPU that keep its states finite), each
// run's floor (bytes it must move, FLOPs it must do) and the build report's cost model.
//
//   npx tsx bench/gpu/prepare.ts [--out bench/gpu/work] [--cuda-arch sm_90] [--cache DIR] [--tiny-only] [--ptx]
// (sm_90 by default: the machines lent are Hopper's, and what a device call carries, the working tree
// with it, is at most 64 MiB; the folder is ~40 MiB for sm_90, ~75 for sm_80 and sm_90)

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildCuda, type CudaBuild } from '../../codegen/cuda/build.ts';
import { costReport } from '../../codegen/cuda/cost.ts';
import { CUDA_TARGET, cudaSchedule } from '../../codegen/cuda/schedule.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { RunBatch, StatePool } from '../../runtime/backend.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { ARGS_FIELDS, type MatrixFormat, kernelOffsets, kernelViews, kernelWeights, launchesOf, packArgs, quantDeviceBytes, quantMatrix, scratchFloats, viewBase, type ArgsValues } from '../../runtime/cuda/abi.ts';
import { type Entry, type EntryName, type Kernel, type Program, ofFamily } from '../../runtime/program.ts';
import { isQuant, quantBytes, quantize } from '../../runtime/quant.ts';
import { planQuant } from '../../runtime/quantplan.ts';
import { slotLayout, withSsmState } from '../../runtime/program.ts';
import { fromF32 } from '../../runtime/tensor.ts';
import { compileTiny, randomTensors } from '../../test/helpers/checkpoints.ts';

const HERE = import.meta.dirname;
const ROOT = join(HERE, '..', '..');

/** H200 figures the floors are measured against. */
export const H200 = { bandwidth: 4.8e12, bf16Flops: 990e12 };

export interface TraceLaunch {
  readonly kernel: string;
  readonly family: string;
  readonly id: string;
  readonly fn: string;
  /** Bytes of dynamic shared memory. */
  readonly shared: number;
  readonly grid: readonly number[];
  readonly block: readonly number[];
  /** ArchcArgs, base64, pointers zero. */
  readonly args: string;
  /** Indexes into the model's weights: the kernel's table, in slot order. */
  readonly weights: readonly number[];
  /** The CPU engine's values of the kernel's outputs after it ran: [arena float offset, rows, stride, width, offset in refs.bin (floats)]. */
  readonly check?: readonly (readonly number[])[];
  /** A product's shape: [rows, K, N] (timed beside torch's F.linear of [rows, K] x [N, K]). */
  readonly product?: readonly number[];
  /** An attention's shape: [sequences, queries a sequence, keys a query sees at most, heads, KV heads,
   *  head dim] (timed beside torch's scaled_dot_product_attention). */
  readonly attention?: readonly number[];
}

export interface TraceRun {
  readonly name: string;
  readonly entry: EntryName;
  readonly T: number;
  readonly S: number;
  /** tokens, positions, seq_start, seq_len, seq_before, seq_slot (int32), as the backend lays them out. */
  readonly batch: readonly number[];
  readonly arenaFloats: number;
  /** The kernels' workspace, the most any launch of the run needs. */
  readonly scratchFloats: number;
  readonly launches: readonly TraceLaunch[];
  /** Logits: [arena float offset, rows, stride, width, offset in refs.bin] (the tiny model only). */
  readonly logits?: readonly number[];
  /** Timed runs: how many, and the floor. */
  readonly time?: { readonly reps: number; readonly bytes: number; readonly flops: number };
  /** Where the run's logits are, checked finite after a timed run: [arena float offset, rows, stride, width]. */
  readonly output?: readonly number[];
}

export interface TraceModel {
  readonly name: string;
  readonly modules: CudaBuild['report']['modules'];
  /** The folder of the modules and kernel sources when another model's (the same build). */
  readonly moduleDir?: string;
  /** A weight without `offset` is filled on the device: around + scale · (u - 0.5), u uniform; with
   *  `segments`, element by element as `fillValues` makes them here, each segment from its seed. */
  readonly weights: readonly {
    readonly name: string; readonly dtype: MatrixFormat | 'f32'; readonly bytes: number; readonly offset?: number; readonly around?: number; readonly scale?: number;
    readonly segments?: readonly FillSegment[];
  }[];
  /** build-report.json's `targets.cuda.cost` for this program: the model the driver prints the
   *  measured kernels beside. */
  readonly cost?: object;
  /** The weights' bytes (the tiny model), in weights.bin at `offset`. */
  readonly weightFile?: string;
  readonly refFile?: string;
  readonly sessions: readonly { readonly slots: number; readonly slotFloats: number; readonly capacity: number; readonly runs: readonly TraceRun[] }[];
}

const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');
/** The rows a product takes: S for one reading each sequence's last row, else T · heads a row. */
const productRows = (k: Kernel, T: number, S: number): number =>
  (k.prologue ?? []).some((p) => p.kind === 'gather_last') ? S : T * ('buf' in k.inputs.x! ? k.inputs.x.width / ofFamily(k, 'matmul').sizes.K : 1);

/** Fake addresses for the nine pointers, so the Python driver's packing can be checked here. */
export const FAKE_POINTERS = Object.fromEntries(ARGS_FIELDS.map((f, i) => [f, BigInt(0x1000 * (i + 1))])) as ArgsValues['ptr'];

/** Records launches of `program` (and, with `cpu`, runs it there and keeps every kernel's result). */
class Recorder {
  readonly weightIndex = new Map<string, number>();
  readonly weights: { name: string; dtype: MatrixFormat | 'f32'; bytes: number }[] = [];
  readonly refs: Float32Array[] = [];
  refFloats = 0;

  /** `format`: the format each kernel's matrix is in (bf16, or q8/q4 as the CPU backend holds it). */
  constructor(readonly program: Program, readonly cpu: CpuBackend | null, readonly build: CudaBuild, readonly format: (k: Kernel) => MatrixFormat = () => 'bf16') {
    for (const e of Object.values(program.entries)) {
      for (const k of e.kernels) {
        for (const w of kernelWeights(k, format(k))) {
          const key = `${w.dtype}:${w.name}`;
          if (this.weightIndex.has(key)) continue;
          const src = program.weights.find((x) => x.name === w.name) ?? program.derived.find((x) => x.name === w.name)!;
          const [N, K] = src.shape as [number, number];
          this.weightIndex.set(key, this.weights.length);
          this.weights.push({ name: w.name, dtype: w.dtype, bytes: w.dtype === 'bf16' || w.dtype === 'f32' ? src.shape.reduce((a, b) => a * b, 1) * (w.dtype === 'bf16' ? 2 : 4) : quantBytes(w.dtype, N, K) });
        }
      }
    }
  }

  ref(data: Float32Array): number {
    const at = this.refFloats;
    this.refs.push(data);
    this.refFloats += data.length;
    return at;
  }

  /** `check`: keep the CPU engine's values of every kernel's outputs (`ends`: their first and last
   *  rows only, for a model whose outputs are large). */
  run(name: string, entryName: EntryName, batch: RunBatch, capacity: number, cpuPool: StatePool | null, check: boolean | 'ends'): TraceRun {
    const entry = this.program.entries[entryName];
    const T = batch.tokens.length, S = batch.seqs.length;
    const inv = cpuPool && this.cpu ? this.cpu.begin(entry, batch, cpuPool) : null;
    const floats = slotLayout(this.program.states, capacity).floats;
    const launches: TraceLaunch[] = [];
    let scratch = 0;
    entry.kernels.forEach((k, index) => {
      inv?.dispatch(k);
      const plan = cudaSchedule(k, CUDA_TARGET);
      const ls = launchesOf(entry, k, plan, T, S);
      if (!ls.length) return;
      scratch = Math.max(scratch, scratchFloats(plan, T, S));
      const args = packArgs({ ptr: zeroPointers(), slotFloats: floats, T, S, capacity, ...kernelOffsets(this.program, entry, k, T, S, capacity) });
      const checkViews = check && inv ? kernelViews(k).filter((v) => v.key.startsWith('out:')).flatMap((v) => {
        const b = entry.buffers[v.view.buf]!;
        const rows = b.rows === 'T' ? T : b.rows === 'S' ? S : 1;
        const values = inv.read(v.view), base = viewBase(entry, v.view, T, S), w = v.view.width;
        if (check !== 'ends' || rows < 3) return [[base, rows, b.width, w, this.ref(values)]];
        return [0, rows - 1].map((r) => [base + r * b.width, 1, b.width, w, this.ref(values.slice(r * w, (r + 1) * w))]);
      }) : undefined;
      const format = this.format(k);
      const id = this.build.kernels.find((x) => x.entry === entryName && x.index === index && x.format === format)!.id;
      ls.forEach((l, i) => launches.push({
        kernel: k.name, family: k.family, id, fn: l.fn, grid: l.grid, block: l.block, shared: l.shared, args: b64(args),
        weights: kernelWeights(k, format).map((w) => this.weightIndex.get(`${w.dtype}:${w.name}`)!),
        // the kernel's results, checked after its last launch
        check: i === ls.length - 1 ? checkViews : undefined,
        // its shape, for torch's baseline
        ...(i === 0 && k.family === 'matmul' ? { product: [productRows(k, T, S), ofFamily(k, 'matmul').sizes.K, ofFamily(k, 'matmul').sizes.N] } : {}),
        ...(i === 0 && (k.family === 'attention' || k.family === 'attention_decode') ? { attention: attentionShape(k, entryName, batch) } : {}),
      }));
    });
    const out = entry.outputs.logits!;
    const b = entry.buffers[out.buf]!;
    const rows = b.rows === 'T' ? T : b.rows === 'S' ? S : 1;
    const batchInts = [...batch.tokens, ...batch.positions, ...batch.seqs.map((s) => s.start), ...batch.seqs.map((s) => s.len), ...batch.lengths, ...batch.slots];
    return {
      name, entry: entryName, T, S, batch: batchInts, arenaFloats: entry.arena.T * T + entry.arena.S * S, scratchFloats: scratch, launches,
      logits: inv ? [viewBase(entry, out, T, S), rows, b.width, out.width, this.ref(inv.read(out))] : undefined,
      output: [viewBase(entry, out, T, S), rows, b.width, out.width],
    };
  }
}

/** [sequences, queries a sequence, keys a query sees at most, heads, KV heads, head dim] of an
 *  attention kernel (sequences of one length: the timed runs). */
function attentionShape(k: Kernel, entry: EntryName, batch: RunBatch): number[] {
  const { H, KV, Dh } = ofFamily(k, 'attention', 'attention_decode').sizes;
  const S = batch.seqs.length, q = entry === 'decode' ? 1 : batch.seqs[0]!.len;
  return [S, q, q + batch.lengths[0]!, H, KV, Dh];
}

const zeroPointers = (): ArgsValues['ptr'] => Object.fromEntries(ARGS_FIELDS.map((f) => [f, 0n])) as ArgsValues['ptr'];

function batchOf(lens: readonly number[], before: readonly number[], slots: readonly number[], vocab: number, seed: number): RunBatch {
  let start = 0, x = seed;
  const seqs = lens.map((len) => { const s = { start, len }; start += len; return s; });
  const rand = () => { x = (x * 1103515245 + 12345) % 2147483648; return x; };
  return {
    tokens: Int32Array.from({ length: start }, () => rand() % vocab),
    positions: Int32Array.from(seqs.flatMap((s, i) => Array.from({ length: s.len }, (_, j) => before[i]! + j))),
    seqs, slots, lengths: before,
  };
}

/** The tiny Bamba: its weights (bf16, or its products and embedding quantised to `quant` as a load
 *  would), a packed ragged prefill then two decode steps, and a forward; with `ssm` bf16, its SSM
 *  states kept in bf16 (runtime/program.ts withSsmState: the state passing and the decode scan read
 *  and write them so). */
async function tiny(o: Prep, quant?: 'q8' | 'q4', ssm: 'f32' | 'bf16' = 'f32'): Promise<TraceModel> {
  const { out, archs, cache } = o;
  const name = quant ? `tiny-${quant}` : ssm === 'bf16' ? 'tiny-ssm-bf16' : 'tiny';
  mkdirSync(join(out, name), { recursive: true });
  const compiled = compileTiny();
  const program = withSsmState(lowerToProgram(compiled.graph, compiled.bindings), ssm);
  const tensors = randomTensors(compiled, { dtype: 'bf16', seed: 3 });
  const build = await buildCuda(program, { archs, cacheDir: cache });
  // (the q4 model's build is the same program's: the same modules and sources, written once)
  const modules = quant ? { modules: build.report.modules.filter((m) => o.ptx || m.kind !== 'ptx'), moduleDir: 'tiny' } : { modules: writeModules(o, name, build) };
  const cpu = new CpuBackend(program);
  const plan = quant ? planQuant(program, quant, (n) => tensors.find((t) => t.name === n)?.tensor.shape ?? []) : null;
  for (const w of program.weights) {
    const t = tensors.find((x) => x.name === w.name)!.tensor;
    const f = plan?.formats.get(w.name);
    const q = f ? quantize(t, f) : null;
    if (q && 'reason' in q) throw new Error(`${w.name}: ${q.reason}`);
    cpu.uploadWeight(w, q ? q.q : t);
  }
  const formatOf = (k: Kernel): MatrixFormat => { const m = quantMatrix(k); const w = m ? cpu.weight(m) : null; return w && isQuant(w) ? w.dtype : 'bf16'; };
  const rec = new Recorder(program, cpu, build, formatOf);
  // the weights as the CUDA backend stores them (matrices bf16 or codes then scales, the rest f32; derived ones made)
  let offset = 0;
  const blobs = rec.weights.map((w) => {
    const h = cpu.weight(w.name);
    const t = isQuant(h) ? null : h;
    const bytes = isQuant(h) ? quantDeviceBytes(h) : w.dtype === 'f32' ? new Uint8Array(cpu.f32(w.name).slice().buffer)
      : new Uint8Array((t!.dtype === 'bf16' ? (t!.data as Uint16Array) : (fromF32(cpu.f32(w.name), [t!.data.length], 'bf16').data as Uint16Array)).slice().buffer);
    const at = offset;
    offset += bytes.byteLength;
    return { ...w, offset: at, bytes: bytes.byteLength, data: bytes };
  });
  writeFileSync(join(out, name, 'weights.bin'), Buffer.concat(blobs.map((b) => b.data)));
  const vocab = program.outputs.logits!;
  const capacity = 32;
  const pool = cpu.createStatePool(capacity);
  const slots = [pool.acquire(), pool.acquire(), pool.acquire()];
  const lens = [5, 19, 2];
  const runs: TraceRun[] = [rec.run(`${name} prefill (packed 5+19+2)`, 'prefill', batchOf(lens, [0, 0, 0], slots, vocab, 1), capacity, pool, true)];
  for (let step = 0; step < 2; step++) {
    runs.push(rec.run(`${name} decode step ${step + 1} (batch 3)`, 'decode', batchOf([1, 1, 1], lens.map((l) => l + step), slots, vocab, 7 + step), capacity, pool, true));
  }
  const fpool = cpu.createStatePool(capacity);
  const fslots = [fpool.acquire(), fpool.acquire(), fpool.acquire()];
  const forward = rec.run(`${name} forward (packed 5+19+2)`, 'forward', batchOf(lens, [0, 0, 0], fslots, vocab, 1), capacity, fpool, true);
  const refs = new Float32Array(rec.refFloats);
  let at = 0;
  for (const r of rec.refs) { refs.set(r, at); at += r.length; }
  writeFileSync(join(out, name, 'refs.bin'), refs);
  return {
    name, ...modules, weights: blobs.map(({ data: _, ...w }) => w), weightFile: 'weights.bin', refFile: 'refs.bin',
    sessions: [{ slots: 3, slotFloats: slotLayout(program.states, capacity).floats, capacity, runs }, { slots: 3, slotFloats: slotLayout(program.states, capacity).floats, capacity, runs: [forward] }],
  };
}

/** The floor of a run: bytes it must move (weights, and the state and KV cache it reads), FLOPs of
 *  its matrix products and attention. */
export function floorOf(program: Program, e: Entry, T: number, S: number, context: readonly number[]): { bytes: number; flops: number } {
  const seen = new Map<string, number>();
  let bytes = 0, flops = 0;
  for (const k of e.kernels) {
    for (const w of kernelWeights(k)) {
      const src = program.weights.find((x) => x.name === w.name) ?? program.derived.find((x) => x.name === w.name)!;
      seen.set(`${w.dtype}:${w.name}`, src.shape.reduce((a, b) => a * b, 1) * (w.dtype === 'bf16' ? 2 : 4));
    }
    if (k.family === 'matmul') {
      // N of the product, not the output's width: SwiGLU's epilogue writes one column per gate and up pair
      const { K, N } = ofFamily(k, 'matmul').sizes;
      flops += 2 * productRows(k, T, S) * K * N;
    }
    if (k.family === 'attention' || k.family === 'attention_decode') {
      const { H, Dh } = k.sizes as { H: number; Dh: number };
      const st = program.states[k.state!]!;
      const kvRow = st.shape[1]! * st.shape[2]!;
      // QKᵀ and PV over the keys each query sees (causal), and the cache read once
      let pairs = 0;
      for (let s = 0; s < S; s++) { const len = e === program.entries.decode ? 1 : T / S; pairs += len * context[s]! + len * (len + 1) / 2; }
      flops += 4 * H * Dh * pairs;
      bytes += context.reduce((a, c) => a + c, 0) * 2 * kvRow * 4;
    }
    if (k.family === 'ssd_step' || k.family === 'conv' || k.family === 'ssd' || k.family === 'conv_step') {
      const st = program.states[k.state!]!;
      bytes += 2 * S * st.shape.reduce((a, b) => a * b, 1) * 4;
    }
    for (const s of k.epilogue ?? []) if (s.kind === 'conv_step') bytes += 2 * S * program.states[s.state]!.shape.reduce((a, b) => a * b, 1) * 4;
  }
  // every weight the entry reads, once
  return { bytes: bytes + [...seen.values()].reduce((a, b) => a + b, 0), flops };
}

/** The Bamba-9B-shaped model: prefill of 4096 tokens, decode of batch 1 and 8 (1024 tokens of context each). */
async function bamba9b(o: Prep): Promise<TraceModel> {
  const { archs, cache } = o;
  const compiled = compileFile(join(ROOT, 'models', 'bamba.arch'), {});
  const program = lowerToProgram(compiled.graph, compiled.bindings);
  const build = await buildCuda(program, { archs, cacheDir: cache });
  const modules = writeModules(o, 'bamba9b', build);
  const rec = new Recorder(program, null, build);
  const vocab = program.outputs.logits!;
  const capacity = 4096;
  const slotFloats = slotLayout(program.states, capacity).floats;
  const prefill = rec.run('prefill 4096 tokens', 'prefill', batchOf([4096], [0], [0], vocab, 1), capacity, null, false);
  const decode = (n: number) => rec.run(`decode batch ${n} (context 1024)`, 'decode', batchOf(Array(n).fill(1), Array(n).fill(1024), Array.from({ length: n }, (_, i) => i), vocab, 5), capacity, null, false);
  const runs = [prefill, decode(1), decode(8)].map((r) => {
    const e = program.entries[r.entry];
    const context = r.entry === 'decode' ? Array(r.S).fill(1024) : [0];
    return { ...r, time: { reps: r.entry === 'decode' ? 20 : 3, ...floorOf(program, e, r.T, r.S, context) } };
  });
  const weights = rec.weights.map((w) => ({ ...w, ...fillOf(w.name, w.dtype) }));
  // the cost model as build-report.json carries it (targets.cuda.cost)
  return { name: 'bamba9b', modules, weights, cost: costReport(program), sessions: [{ slots: 8, slotFloats, capacity, runs }] };
}

/** `count` elements made by fillValues(count, seed, around, scale), on the device or here. */
export interface FillSegment { readonly seed: number; readonly count: number; readonly around: number; readonly scale: number }

/** The values bench/gpu/fill.cu makes for a buffer of n elements (the same hash, the same f32
 *  roundings: a sum and a product of floats rounded through a double round as in f32). */
export function fillValues(n: number, seed: number, around: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  const a = Math.fround(around), s = Math.fround(scale), sd = Math.imul(seed, 0x85EBCA6B);
  for (let i = 0; i < n; i++) {
    let h = Math.imul(i, 0x9E3779B9) ^ sd;
    h ^= h >>> 16; h = Math.imul(h, 0x7FEB352D); h ^= h >>> 15; h = Math.imul(h, 0x846CA68B); h ^= h >>> 16;
    out[i] = a + Math.fround(s * ((h >>> 8) / 16777216 - 0.5));
  }
  return out;
}

/** A narrow model with Bamba-9B's head dims (attention 128, Mamba 64), state (128), groups (1),
 *  chunk (256) and GQA ratio (4), a Mamba and an attention layer, small vocab: the kernels' 9B-only
 *  branches (256-token chunks in row tiles, 128-wide heads) checked against the CPU engine at a
 *  cost it can pay here (d_model 1024: products of K 1024, 2048 and 4096). */
export const NARROW: Record<string, number | number[]> = {
  vocab: 256, d_model: 1024, n_layers: 2, attn_layers: [1], n_heads: 8, n_kv_heads: 2, mamba_heads: 32, d_ff: 4096, context: 512,
};

/** The narrow model: weights made by the fill kernels' hash (here for the CPU engine, on the device
 *  by the driver: no weight file to carry but A = -exp(A_log)'s few floats), a packed ragged prefill
 *  (270 + 14 tokens: the first sequence past a chunk, the second starting inside one), two decode
 *  steps of both; each kernel's first and last output rows and each run's logits kept. */
export async function narrow(o: Prep): Promise<TraceModel> {
  const { out, archs, cache } = o;
  const name = 'narrow9b';
  mkdirSync(join(out, name), { recursive: true });
  const compiled = compileFile(join(ROOT, 'models', 'bamba.arch'), { set: Object.entries(NARROW).map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(', ')}]` : v}`) });
  const program = lowerToProgram(compiled.graph, compiled.bindings);
  const build = await buildCuda(program, { archs, cacheDir: cache });
  const modules = writeModules(o, name, build);
  const cpu = new CpuBackend(program);
  // matrices bf16 (as the kernels read them), the rest f32; seed: the weight's index + 1
  const segment = new Map<string, FillSegment & { readonly dtype: 'bf16' | 'f32' }>();
  program.weights.forEach((w, i) => {
    const count = w.shape.reduce((a, b) => a * b, 1), dtype = w.shape.length === 2 ? 'bf16' as const : 'f32' as const;
    const f = { seed: i + 1, count, ...fillOf(w.name, dtype), dtype };
    segment.set(w.name, f);
    const v = fillValues(count, f.seed, f.around, f.scale);
    cpu.uploadWeight(w, dtype === 'bf16' ? fromF32(v, w.shape, 'bf16') : { dtype: 'f32', shape: w.shape, data: v });
  });
  const rec = new Recorder(program, cpu, build);
  let offset = 0;
  const carried: Uint8Array[] = [];
  const weights = rec.weights.map((w) => {
    const own = segment.get(w.name);
    const d = program.derived.find((x) => x.name === w.name);
    if (own && own.dtype === w.dtype) return { ...w, segments: [own] };
    if (d?.from.kind === 'concat' && d.from.parts.every((p) => segment.get(p)?.dtype === w.dtype)) return { ...w, segments: d.from.parts.map((p) => segment.get(p)!) };
    if (w.dtype !== 'f32') throw new Error(`${name}: weight ${w.name} (${w.dtype}) is neither filled nor f32`);
    const bytes = new Uint8Array(cpu.f32(w.name).slice().buffer);
    carried.push(bytes);
    offset += bytes.byteLength;
    return { ...w, offset: offset - bytes.byteLength };
  });
  writeFileSync(join(out, name, 'weights.bin'), Buffer.concat(carried));
  const capacity = 512;
  const pool = cpu.createStatePool(capacity);
  const slots = [pool.acquire(), pool.acquire()];
  const lens = [270, 14];
  const vocab = program.outputs.logits!;
  const runs = [rec.run(`${name} prefill (packed 270+14)`, 'prefill', batchOf(lens, [0, 0], slots, vocab, 1), capacity, pool, 'ends')];
  for (let step = 0; step < 2; step++) {
    runs.push(rec.run(`${name} decode step ${step + 1} (batch 2)`, 'decode', batchOf([1, 1], lens.map((l) => l + step), slots, vocab, 7 + step), capacity, pool, 'ends'));
  }
  const refs = new Float32Array(rec.refFloats);
  let at = 0;
  for (const r of rec.refs) { refs.set(r, at); at += r.length; }
  writeFileSync(join(out, name, 'refs.bin'), refs);
  return {
    name, modules, weights, weightFile: 'weights.bin', refFile: 'refs.bin',
    sessions: [{ slots: 2, slotFloats: slotLayout(program.states, capacity).floats, capacity, runs }],
  };
}

/** How the driver fills a weight of the 9B-shaped model: values in around ± scale / 2 that keep
 *  32 layers' activations and 4096 tokens' SSM states finite — A = -exp(A_log) negative (the derived
 *  weight the kernels read), dt = softplus(· + dt_bias) small, norms and D near 1, matrices small. */
export function fillOf(name: string, dtype: string): { around: number; scale: number } {
  if (/^neg\(exp\(w:.*A_log\)\)$/.test(name)) return { around: -1, scale: 1 };
  if (/\.dt_bias$/.test(name)) return { around: -4, scale: 1 };
  if (/norm|\.D$/.test(name)) return { around: 1, scale: 0.1 };
  return { around: 0, scale: dtype === 'f32' ? 0.1 : 0.02 };
}

/** Where and how prepare writes: the folder, the architectures, nvcc's cache, and whether PTX goes
 *  too (`--ptx`; without it only cubins: the folder travels to a GPU machine, whose copy of it is
 *  limited, and a card of none of the architectures gets the sources compiled by NVRTC). */
interface Prep { readonly out: string; readonly archs: readonly string[]; readonly cache: string; readonly ptx: boolean }

/** Writes a model's modules and kernel sources; returns the modules written. */
function writeModules({ out, ptx }: Prep, model: string, build: CudaBuild): CudaBuild['report']['modules'] {
  const modules = build.report.modules.filter((m) => ptx || m.kind !== 'ptx');
  for (const m of modules) {
    mkdirSync(dirname(join(out, model, m.file)), { recursive: true });
    writeFileSync(join(out, model, m.file), build.modules.get(m.file)!);
  }
  for (const k of build.kernels) {
    mkdirSync(join(out, model, 'cuda', 'kernels'), { recursive: true });
    writeFileSync(join(out, model, k.path), k.source);
  }
  return modules;
}

/** The fill kernel random weights are made with (bench/gpu/fill.cu), per architecture. */
function fillModules(out: string, archs: readonly string[]): void {
  mkdirSync(join(out, 'fill'), { recursive: true });
  for (const arch of archs) execFileSync('nvcc', ['-cubin', `-arch=${arch}`, '-o', join(out, 'fill', `${arch}.cubin`), join(HERE, 'fill.cu')]);
  execFileSync('nvcc', ['-ptx', `-arch=${archs[0]}`, '-o', join(out, 'fill', `${archs[0]}.ptx`), join(HERE, 'fill.cu')]);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, dflt: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : dflt; };
  const out = opt('--out', join(HERE, 'work'));
  const archs = opt('--cuda-arch', 'sm_90').split(',').filter(Boolean);
  const t0 = performance.now();
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'tiny'), { recursive: true });
  mkdirSync(join(out, 'bamba9b'), { recursive: true });
  fillModules(out, archs);
  const cache = opt('--cache', join(HERE, '.cache'));
  const o: Prep = { out, archs, cache, ptx: argv.includes('--ptx') };
  const models = [await tiny(o), await tiny(o, 'q4'), await tiny(o, undefined, 'bf16'), ...(argv.includes('--tiny-only') ? [] : [await narrow(o), await bamba9b(o)])];
  // for the driver's own check of its argument packing: one launch packed with fake pointers
  const sample = models[0]!.sessions[0]!.runs[0]!.launches[0]!;
  const withPointers = Buffer.from(sample.args, 'base64');
  const fake = packArgs({ ptr: FAKE_POINTERS, slotFloats: 0, T: 0, S: 0, capacity: 0, views: [], states: [] });
  fake.subarray(0, 8 * ARGS_FIELDS.length).forEach((b, i) => { withPointers[i] = b; });
  writeFileSync(join(out, 'trace.json'), JSON.stringify({
    format: 'archc-gpu-bench/2', archs, h200: H200, models,
    abiCheck: { launch: sample.args, pointers: Object.fromEntries(Object.entries(FAKE_POINTERS).map(([k, v]) => [k, Number(v)])), packed: withPointers.toString('base64') },
  }));
  process.stdout.write(`prepared ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) await main();
