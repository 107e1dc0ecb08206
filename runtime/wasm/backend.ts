// The `wasm` backend: matrix products in WebAssembly SIMD (runtime/wasm/kernels.ts, over weights
// packed into panels in shared memory, split across worker threads); with the program's own module
// (codegen/wasm/program.ts, runtime/wasm/program.ts) the arena and the state slots live in that
// memory too, and the matmul prologue and epilogue stages, norms, elementwise kernels, the conv,
// the one-token conv and SSD step and RoPE run as its rendered functions, the products reading x and
// writing y in place. The chunked SSD and prefill attention run as matrix products on the same
// kernels (runtime/wasm/ssd.ts, attention.ts), the steps between them (the SSD's, and its operands'
// `pre`; attention's cache append, softmax and division) in the program module over the arena and
// slots, as is the one-token attention. q8/q4 products read the codes packed in the memory
// (runtime/wasm/kernels.ts packQuant). Which kernels run there is runtime/wasm/plan.ts' decision
// (the renderer renders by the same plan); the rest (copies, gather_last, embeddings of large
// tables, and kernels the plan gives another reason for) run through the CPU reference
// implementations (runtime/cpu/families.ts) on the same arena and state slots, listed with their
// reasons in `fallbacks`.
// A model past one memory (4 GiB; LoadOptions.wasmMemoryBytes sets a lower limit): everything above
// stays in memory 0, with the weights that fit beside it; the others are packed into weight memories
// (`memories` reports where), whose products copy x in and y out (runtime/wasm/kernels.ts `staged`),
// bit for bit the single-memory results. Or one memory64 memory (LoadOptions.wasmMemory64), where the
// products read every weight in place, without the program module.

import type { ActivationFormat } from '../act-quant.ts';
import type { Invocation, RunBatch, StatePool } from '../backend.ts';
import { CpuBackend } from '../cpu/backend.ts';
import { CPU_FAMILIES, type Ctx, f32States } from '../cpu/families.ts';
import { type DerivedWeight, type Entry, type EntryName, type FamilyTable, type Kernel, type KernelOf, type Program, type ProgramWeight, type View, byFamily } from '../program.ts';
import type { PanelTarget } from '../load-pool.ts';
import { type HostWeight, type QuantDType, dequantizeRows, isQuant } from '../quant.ts';
import { readF32, type Tensor } from '../tensor.ts';
import { type PackedWeight, WasmKernels } from './kernels.ts';
import type { MemoryReport } from '../targets.ts';
import { wasmModule } from './module.ts';
import { type Arg, Heap, WasmProgram, WasmStatePool, rowsOf } from './program.ts';
import { sharing } from './split.ts';
import { type Fallback, NO_MODULE, type Placement, ownFunctions, wasmPlan, weightUses } from './plan.ts';
import { type At, ssdChunkedAt, ssdChunkedWasm, ssdWorkBytes } from './ssd.ts';
import { type ExpertProducts, runExperts } from './experts.ts';
import { attentionAt, attentionWasm, attentionWorkBytes } from './attention.ts';
import { RuntimeError } from '../errors.ts';
import { threadSupport, threadsHere, unsharedModule } from './threads.ts';
import type { Memory64Support } from './memory64.ts';
import type { BackwardTable } from '../cpu/train.ts';
import { WasmTrain, stepFloats } from './train.ts';
import { Panels } from './panels.ts';
import { chooseReadAhead } from './read-ahead.ts';

/**
 * The wasm backend as this thread can run it: `threads` (default: threads.ts' defaultThreads) where
 * it may share memory with workers and wait for them (Node; a cross-origin isolated page's worker),
 * else one, over a memory that is not shared where there is no shared memory (a page that is not
 * cross-origin isolated), with the module's memory import rewritten to match. The workers are
 * running when it resolves.
 */
export async function openWasmBackend(program: Program, kernels: Uint8Array | WebAssembly.Module | readonly Uint8Array[],
  threads?: number, own?: Uint8Array | WebAssembly.Module, memoryBytes?: number, memory64?: Memory64Support): Promise<WasmBackend> {
  const support = threadSupport();
  // both modules import the one memory: without shared memory their imports are rewritten to match
  const compile = async (m: Uint8Array | WebAssembly.Module | readonly Uint8Array[], what: string): Promise<WebAssembly.Module> => {
    if (m instanceof WebAssembly.Module && !support.shared) {
      throw new RuntimeError('RT303', [`a compiled ${what} without shared memory (a page that is not cross-origin isolated)`, 'pass the module\'s bytes (a Uint8Array), which are rewritten for an unshared memory']);
    }
    return wasmModule(m, support.shared ? undefined : unsharedModule);
  };
  const module = await compile(kernels, 'wasm kernel module (wasmKernels)');
  // The program module keeps the arena and state slots in the memory, and the engine holds views of
  // them across a kernel; an unshared memory detaches every view when it grows, so without shared
  // memory the stages stay on the reference families over a JS arena (products still run in wasm).
  const programModule = own === undefined || !support.shared ? undefined : await compile(own, 'wasm program module (wasmProgram)');
  const backend = new WasmBackend(program, module, threadsHere(threads, support), programModule, memoryBytes, memory64);
  try {
    await backend.start();
  } catch (e) {
    backend.dispose();
    throw e;
  }
  return backend;
}

export class WasmBackend extends CpuBackend {
  override readonly name: string = 'wasm';
  /** q8/q4 products read the codes in the memory (runtime/wasm/kernels.ts packQuant); quantised
   *  embeddings, and any other reader of a quantised weight, read the host copy through the
   *  reference (runtime/cpu/linear.ts embedding). */
  override readonly quantFormats: readonly QuantDType[] = ['q8', 'q4'];
  private readonly kernels: WasmKernels;
  /** Weights read as a matmul's `w`, whether transposed ([K, N], packed as [N, K]); those read by
   *  nothing else keep no host copy. */
  private readonly products: Map<string, boolean>;
  private readonly elsewhere: Set<string>;
  private readonly panels: Panels;
  /** Panels the loader filled (panelTarget, concatPanels), by weight, until its upload. */
  private readonly filled = new Map<string, PackedWeight>();
  /** Weights read only as a part of one derived weight. */
  private readonly soleParts: Set<string>;
  /** The chunked SSD and prefill attention as matrix products on the wasm kernels; the rendered
   *  families through the program module where the plan places the kernel; the rest as the CPU engine runs them. */
  override readonly families: FamilyTable<[Ctx], void> = {
    ...CPU_FAMILIES, ssd: (k, c) => { if (this.placed.has(k) || !this.train.runs(k, c)) this.ssd(k, c); }, attention: (k, c) => this.attention(k, c), experts: (k, c) => runExperts(k, c, this.experts),
    ...Object.fromEntries((['embedding', 'matmul', 'norm', 'elementwise', 'copy', 'rope', 'conv', 'conv_step', 'ssd_step', 'attention_decode', 'softmax', 'topk', 'gather', 'scatter'] as const)
      .map((f) => [f, (k: Kernel, c: Ctx) => { if (!this.rendered(k, c) && !(!this.placed.has(k) && this.train.runs(k, c))) byFamily(CPU_FAMILIES, k, c); }])),
  } as FamilyTable<[Ctx], void>;
  /** The program module (absent: every family but the products runs as the CPU engine's). */
  private readonly prog: WasmProgram | null;
  /** Each kernel's placement (runtime/wasm/plan.ts: the renderer rendered by the same plan). */
  private readonly placed = new Map<Kernel, Placement>();
  /** The kernels that run on a reference path here, and why: the plan's list with the program module, every kernel without it (build-report.json lists the former). */
  readonly fallbacks: readonly Fallback[];
  private readonly heap: Heap;
  private arenaBlock: { at: number; bytes: number } | null = null;
  private scratchBlock: { at: number; bytes: number } | null = null;
  private readonly weightCopies = new Map<string, number>();
  /** The experts' matrices, packed per expert when first chosen (runtime/wasm/experts.ts), again by updateWeights; `read`: bytes their products read. */
  readonly experts: ExpertProducts = { panel: (w, e) => this.panels.expert(w, e, this.tensor(w)), product: (p, x, n) => this.kernels.linear(p, x, n, null), read: 0 };
  /** The run in progress: where its arena and sequence table are, and its rotary tables. */
  private current: { entry: Entry; batch: RunBatch; pool: WasmStatePool; T: number; S: number; seq: number; ropes: Map<string, number>; ids: Map<string, number> } | null = null;
  private runBlocks: { at: number; bytes: number }[] = [];

  /** `module`: the assembled kernel module (codegen/wasm/); `threads` counts the calling thread;
   *  `programModule`: the program's own module (codegen/wasm/program.ts), if at hand; `memoryBytes`:
   *  the most one WebAssembly memory may hold (default 4 GiB); `memory64`: `module` is the kernels'
   *  memory64 form, over one i64 memory (runtime/wasm/choice.ts). */
  constructor(program: Program, module: WebAssembly.Module, threads: number, programModule?: WebAssembly.Module, memoryBytes?: number, memory64?: Memory64Support) {
    super(program);
    this.kernels = new WasmKernels(module, threads, memoryBytes, memory64 ?? null);
    this.panels = new Panels(this.kernels);
    this.heap = new Heap((bytes) => this.kernels.allocate(bytes));
    this.prog = programModule ? new WasmProgram(programModule, this.kernels.memory, program, this.kernels) : null;
    if (this.prog?.calls.record) this.kernels.useProgram(programModule!, this.prog.calls.record); // its workers run the module too
    const plan = wasmPlan(program);
    const fallbacks: Fallback[] = [];
    for (const [entry, e] of Object.entries(program.entries) as [EntryName, Entry][]) {
      e.kernels.forEach((k, i) => {
        const p = plan[entry][i]!;
        this.placed.set(k, p);
        if (!this.prog || p.path === 'reference') fallbacks.push({ entry, name: k.name, family: k.family, reason: p.path === 'reference' ? p.reason : NO_MODULE });
        else if (ownFunctions(k) && !this.prog.get(k)) {
          throw new Error(`archc runtime: the wasm program module has no function for ${entry} kernel ${k.name}, which the plan places in it`);
        }
      });
    }
    this.fallbacks = fallbacks;
    ({ products: this.products, elsewhere: this.elsewhere, soleParts: this.soleParts } = weightUses(program, !!this.prog));
    if (program.train) for (const n of this.products.keys()) this.elsewhere.add(n); // the train entry's products read them (./train.ts)
  }

  /** As the CPU backend's; the f32 copies in the memory (weightAt) and the experts' panels are written again too. */
  override updateWeights(weights: ReadonlyMap<string, Float32Array>): void {
    super.updateWeights(weights);
    for (const [name, at] of this.weightCopies) this.writeCopy(name, at);
    this.panels.repackExperts((w) => this.tensor(w));
  }

  /** Room in the memory for the panels of a concatenation the products alone read (not transposed)
   *  whose parts nothing else reads, each but the last a whole number of panels: one target per part
   *  for the loader to fill (runtime/load-weights.ts); their uploads are then stand-ins, and the
   *  concatenation, made of them, takes these panels. Null where that does not hold. */
  concatPanels(d: DerivedWeight, dtype: 'f32' | 'bf16'): PanelTarget[] | null {
    if (d.from.kind !== 'concat' || this.products.get(d.name) !== false || this.elsewhere.has(d.name) || d.shape.length !== 2) return null;
    const [N, K] = d.shape as [number, number], NR = this.kernels.NR;
    const shapes = d.from.parts.map((p) => this.program.weights.find((w) => w.name === p)?.shape);
    const last = shapes.length - 1;
    if (d.from.parts.some((p) => !this.soleParts.has(p)) || shapes.some((s, i) => s?.length !== 2 || s[1] !== K || (i < last && s[0]! % NR))
      || shapes.reduce((a, s) => a + s![0]!, 0) !== N) return null;
    const { p, buffer } = this.kernels.placePanels(N, K, dtype);
    this.filled.set(d.name, p);
    // part i's panels are the concatenation's from its first row on
    const targets: PanelTarget[] = [];
    for (let i = 0, row = 0; i <= last; row += shapes[i++]![0]!) targets.push({ buffer, at: p.at + row * K * (dtype === 'bf16' ? 2 : 4), N: shapes[i]![0]!, K, NR, transposed: false });
    return targets;
  }

  /** A weight only products read is packed into the memory at upload and keeps no host copy. */
  override hostCopy(weight: string): 'none' | 'shared' | 'own' {
    return this.products.has(weight) && !this.elsewhere.has(weight) ? 'none' : super.hostCopy(weight);
  }

  /** Room in the memory for the panels of a weight only products read, for the loader's threads to
   *  fill (runtime/load-pool.ts); its upload then passes a stand-in without data. Null for others. */
  panelTarget(w: ProgramWeight, dtype: 'f32' | 'bf16'): PanelTarget | null {
    const transposed = this.products.get(w.name);
    if (transposed === undefined || this.elsewhere.has(w.name) || w.shape.length !== 2) return null;
    const [N, K] = (transposed ? [w.shape[1], w.shape[0]] : w.shape) as [number, number];
    const { p, buffer } = this.kernels.placePanels(N, K, dtype);
    this.filled.set(w.name, p);
    return { buffer, at: p.at, N, K, NR: this.kernels.NR, transposed };
  }

  protected override store(name: string, t: HostWeight): void {
    const transposed = this.products.get(name);
    if (transposed === undefined || t.shape.length !== 2 || t.dtype === 'i32') return super.store(name, t);
    // a train program's f32 matrix: its panels packed when an inference product first reads it
    if (this.program.train && t.dtype === 'f32' && !this.filled.has(name)) return (this.panels.defer(name, t, transposed), super.store(name, t));
    // quantised weights are never transposed ones (runtime/quantplan.ts takes [out, in] matrices only)
    const pre = this.filled.get(name);
    this.filled.delete(name);
    // a stand-in for a weight only products read: the packed panels are its one copy
    const kept: HostWeight = this.elsewhere.has(name) ? t
      : isQuant(t) ? { dtype: t.dtype, shape: t.shape, codes: new Int8Array(0), scales: new Uint16Array(0) }
      : { dtype: t.dtype, shape: t.shape, data: new Float32Array(0) };
    this.panels.pack(name, t, transposed, pre, kept);
    super.store(name, kept);
  }

  /** The train entry's kernels (./train.ts): opened by `start` for a train program, else made on first use. */
  private trainKernels?: WasmTrain;
  get train(): WasmTrain { return (this.trainKernels ??= new WasmTrain(this.kernels)); }

  override get backward(): BackwardTable {
    return this.train.table;
  }

  override columns(n: number): Float32Array { return stepFloats(n); } // a train step's pool (./train.ts)

  override linearTransposed(x: Float32Array, rows: number, K: number, weight: string, b: Tensor | null): Float32Array {
    return this.train.transposed(x, rows, K, weight, this.f32(weight), b && readF32(b, 0, b.data.length, new Float32Array(b.data.length)));
  }

  override useActivations(a: ActivationFormat): void {
    super.useActivations(a);
    this.kernels.activations = a;
  }

  override linear(x: Float32Array, rows: number, K: number, w: HostWeight, b: Tensor | null, split: boolean): Float32Array {
    const p = this.panels.get(w);
    if (!p) return super.linear(x, rows, K, w, b, split);
    if (p.K !== K || x.length !== rows * K) throw new RangeError(`linear: weight [${p.N}, ${p.K}] does not match x of ${rows} rows of K=${K}`);
    const bias = b ? readF32(b, 0, p.N, new Float32Array(p.N)) : null;
    return this.kernels.linear(p, x, rows, bias);
  }

  /** The arena in the shared memory: the program module's (grown by doubling), else the train kernels' (./train.ts). */
  protected override arenaOf(floats: number): Float32Array {
    if (!this.prog) return this.trainKernels?.arena(floats) ?? super.arenaOf(floats);
    if (!this.arenaBlock || this.arenaBlock.bytes < 4 * floats) {
      if (this.arenaBlock) this.heap.release(this.arenaBlock);
      this.arenaBlock = this.heap.alloc(Math.max(4 * floats, 2 * (this.arenaBlock?.bytes ?? 0), 64));
    }
    return new Float32Array(this.kernels.memory.buffer, this.arenaBlock.at, this.arenaBlock.bytes >> 2);
  }

  override createStatePool(capacity: number): StatePool {
    return this.prog ? new WasmStatePool(this.program, capacity, this.heap, this.kernels.memory) : super.createStatePool(capacity);
  }

  override begin(entry: Entry, batch: RunBatch, pool: StatePool): Invocation {
    const inv = super.begin(entry, batch, pool);
    if (!this.prog) return inv;
    if (!(pool instanceof WasmStatePool)) throw new Error('archc runtime: the state pool was not made by the wasm backend');
    for (const b of this.runBlocks) this.heap.release(b);
    this.runBlocks = [];
    const S = batch.seqs.length;
    const seq = this.runAlloc(16 * S + 4);
    const table = new Int32Array(this.kernels.memory.buffer, seq, 4 * S + 1);
    batch.seqs.forEach((s, i) => table.set([s.start, s.len, pool.address(batch.slots[i]!)], 3 * i));
    table.set(batch.lengths.slice(0, S), 3 * S);
    table[4 * S] = pool.capacity;
    this.current = { entry, batch, pool, T: batch.tokens.length, S, seq, ropes: new Map(), ids: new Map() };
    return inv;
  }

  private runAlloc(bytes: number): number {
    const b = this.heap.alloc(bytes);
    this.runBlocks.push(b);
    return b.at;
  }

  /** Byte address of a weight's f32 copy in the memory (made on first use, widened or dequantised
   *  straight into the memory: an embedding table keeps no widened host copy besides). */
  private weightAt(name: string): number {
    let at = this.weightCopies.get(name);
    if (at === undefined) {
      const t = this.weight(name);
      const n = t.shape.reduce((a, b) => a * b, 1);
      at = this.heap.alloc(4 * Math.max(1, n)).at;
      this.writeCopy(name, at);
      this.weightCopies.set(name, at);
    }
    return at;
  }

  /** Weight `name` widened (or dequantised) to f32 at byte address `at` of the memory. */
  private writeCopy(name: string, at: number): void {
    const t = this.weight(name), n = t.shape.reduce((a, b) => a * b, 1), out = new Float32Array(this.kernels.memory.buffer, at, n);
    // a quantised table widens to exactly the values the reference reads (code · scale)
    if (isQuant(t)) dequantizeRows(t, 0, t.shape[0]!, out);
    else readF32(t, 0, n, out);
  }

  /** The run's token ids or positions in the memory ([T] i32, copied on first use). */
  private idsAt(input: 'tokens' | 'positions'): number {
    const run = this.current!;
    let at = run.ids.get(input);
    if (at === undefined) {
      const ids = input === 'tokens' ? run.batch.tokens : run.batch.positions;
      at = this.runAlloc(4 * Math.max(1, ids.length));
      new Int32Array(this.kernels.memory.buffer, at, ids.length).set(ids);
      run.ids.set(input, at);
    }
    return at;
  }

  /** The run's rotary table for (R, theta): [T][R/2] cos then [T][R/2] sin of the reference's angles. */
  private ropeAt(rotaryDim: number, theta: number): number {
    const run = this.current!;
    const key = `${rotaryDim}:${theta}`;
    let at = run.ropes.get(key);
    if (at === undefined) {
      const half = rotaryDim / 2, T = run.T, pos = run.batch.positions;
      at = this.runAlloc(16 * Math.max(1, T * half));
      const tab = new Float64Array(this.kernels.memory.buffer, at, 2 * T * half);
      for (let i = 0; i < half; i++) {
        // runtime/cpu/attention.ts' angles: f32 inverse frequencies, the angle rounded to f32
        const inv = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / rotaryDim)));
        for (let t = 0; t < T; t++) {
          const a = Math.fround(pos[t]! * inv);
          tab[t * half + i] = Math.cos(a);
          tab[(T + t) * half + i] = Math.sin(a);
        }
      }
      run.ropes.set(key, at);
    }
    return at;
  }

  private argValue(a: Arg): number {
    const run = this.current!;
    switch (a.kind) {
      case 'buf': {
        const b = run.entry.buffers[a.buf]!;
        return this.arenaBlock!.at + 4 * (b.rows === 'T' ? b.offset * run.T : run.entry.arena.T * run.T + b.offset * run.S);
      }
      case 'weight': return this.weightAt(a.name);
      case 'state': return run.pool.byteOffsets[a.index]!;
      case 'rope': return this.ropeAt(a.rotaryDim, a.theta);
      case 'ids': return this.idsAt(a.input);
    }
  }

  private scratch(bytes: number): number {
    if (!this.scratchBlock || this.scratchBlock.bytes < bytes) {
      if (this.scratchBlock) this.heap.release(this.scratchBlock);
      this.scratchBlock = this.heap.alloc(Math.max(bytes, 2 * (this.scratchBlock?.bytes ?? 0), 64));
    }
    return this.scratchBlock.at;
  }

  /** Whether `k` runs as the program module's functions (else on the reference families). */
  renders(k: Kernel): boolean {
    return !!this.prog && this.placed.get(k)?.path === 'module';
  }

  /** Runs `k` through the program module; false where the module has no function for it. */
  private rendered(k: Kernel, c: Ctx): boolean {
    const r = this.renders(k) ? this.prog!.get(k) : undefined;
    const run = this.current;
    if (!r || !run) return false;
    if (k.family === 'embedding') {
      // an id outside the table: the reference reports it (the module's function would trap)
      const ids = (k.inputs.ids as { input: 'tokens' | 'positions' }).input === 'tokens' ? c.tokens : c.positions;
      const V = k.sizes.V;
      if (ids.some((id) => id < 0 || id >= V)) return false;
    }
    const rows = rowsOf(k, (v) => c.rows(v as View));
    const args = r.args.map((a) => this.argValue(a));
    const perRow = r.scratch.reduce((a, p) => a + p.perRow, 0);
    const calls = this.prog!.calls;
    if (k.family !== 'matmul') {
      // the one-token attention's scores and sum: f64 [capacity] and [Dh]; each thread its own (split.ts)
      const extra = k.family === 'attention_decode' ? 8 * (run.pool.capacity + k.sizes.Dh) : 0;
      const { units, split, own } = sharing(k, rows), bytes = Math.ceil((4 * rows * perRow + extra + 16) / 64) * 64;
      calls.run(r.run!, [run.T, run.S, run.seq, rows, this.scratch(own ? bytes * this.kernels.threads : bytes), 0, 0], args, units, split, own ? bytes : 0);
      return true;
    }
    const p = this.panels.get(this.weight((k.inputs.w as { weight: string }).weight));
    if (!p || !r.post) throw new Error(`archc runtime: ${k.name}: the plan places it in the wasm module, but its matrix was not packed`);
    const K = k.sizes.K | 0, N = k.sizes.N | 0;
    if (p.K !== K || p.N !== N) throw new RangeError(`${k.name}: weight [${p.N}, ${p.K}] does not match K=${K}, N=${N}`);
    const outRows = k.prologue?.[0]?.kind === 'gather_last' ? run.S : rows;
    const ldy = p.panels * this.kernels.NR, scr = this.scratch(4 * rows * (perRow + ldy) + 16);
    const y0 = scr + 4 * rows * perRow;
    const fixed = [run.T, run.S, run.seq, rows, scr, ldy, y0] as const;
    let xAt: number, ldx: number;
    if (r.pre) {
      calls.run(r.pre, fixed, args, outRows, sharing(k, outRows, 'pre').split);
      [xAt, ldx] = [scr, K];
    } else {
      const xv = k.inputs.x as View;
      [xAt, ldx] = [this.argValue({ kind: 'buf', buf: xv.buf }) + 4 * xv.col, run.entry.buffers[xv.buf]!.width];
    }
    if (!outRows) return true;
    const y = k.outputs.y!;
    if (!k.epilogue?.length && !k.inputs.b && N % this.kernels.NR === 0) {
      // the product writes its output view itself
      this.kernels.linearAt(p, xAt, ldx, outRows, this.argValue({ kind: 'buf', buf: y.buf }) + 4 * y.col, run.entry.buffers[y.buf]!.width);
      return true;
    }
    this.kernels.linearAt(p, xAt, ldx, outRows, y0, ldy);
    calls.run(r.post, fixed, args, outRows, sharing(k, outRows, 'post').split);
    return true;
  }

  private ssd(k: KernelOf<'ssd'>, c: Ctx): void {
    const { H, P, G, N } = k.sizes;
    if (this.ssdInMemory(k, c)) return;
    const [x, dt, A, B, C, D] = ['x', 'dt', 'A', 'B', 'C', 'D'].map((n) => c.operand(k, n)) as Float32Array[];
    c.write(k.outputs.y!, f32States(c, k.state!, H * P * N, (states) => ssdChunkedWasm(this.kernels, x!, dt!, A!, B!, C!, D!, { H, P, G, N }, k.sizes.chunk, c.seqs, states)));
  }

  /** The chunked SSD over the arena and state slots in the shared memory, its operands' `pre`
   *  through the program module; false where the plan does not place it in the module (y sharing a
   *  buffer with an operand, say) or without the module. */
  private ssdInMemory(k: KernelOf<'ssd'>, c: Ctx): boolean {
    const run = this.current;
    if (!this.renders(k) || !run) return false;
    const names = ['x', 'dt', 'B', 'C'] as const;
    const views = names.map((n) => k.inputs[n] as View);
    const y = k.outputs.y!;
    const r = this.prog!.get(k);
    const { H, P, G, N } = k.sizes;
    const rows = c.T;
    const plan = r?.scratch ?? [];
    const perRow = plan.reduce((a, p) => a + p.perRow, 0);
    const Q = Math.min(k.sizes.chunk, c.seqs.reduce((a, sq) => Math.max(a, sq.len), 1));
    const bf16 = c.stateDtype?.(k.state!) === 'bf16';
    const scr = this.scratch(4 * rows * perRow + ssdWorkBytes(c.T, Q, { H, P, G, N }, this.kernels, bf16));
    const work = scr + 4 * rows * perRow;
    if (r?.pre) this.prog!.calls.run(r.pre, [run.T, run.S, run.seq, rows, scr, 0, 0], r.args.map((a) => this.argValue(a)), 1, false);
    const at = (n: (typeof names)[number], v: View): At => {
      if (k.pre?.[n]) {
        const i = plan.findIndex((p) => p.name === `pre:${n}`);
        return { at: scr + 4 * rows * plan.slice(0, i).reduce((a, p) => a + p.perRow, 0), ld: plan[i]!.perRow };
      }
      return { at: this.argValue({ kind: 'buf', buf: v.buf }) + 4 * v.col, ld: run.entry.buffers[v.buf]!.width };
    };
    const [x, dt, B, C] = names.map((n, i) => at(n, views[i] as View));
    const yAt: At = { at: this.argValue({ kind: 'buf', buf: y.buf }) + 4 * y.col, ld: run.entry.buffers[y.buf]!.width };
    const slots = c.states(k.state!).map((st) => st.byteOffset);
    ssdChunkedAt(this.kernels, this.prog!.ssd, this.prog!.calls, this.kernels.memory, x!, dt!, c.operand(k, 'A'), B!, C!, c.operand(k, 'D'), yAt,
      { H, P, G, N }, c.T, k.sizes.chunk, c.seqs, slots, work, bf16);
    return true;
  }

  private attention(k: KernelOf<'attention'>, c: Ctx): void {
    const { H, KV, Dh } = k.sizes;
    if (this.attentionInMemory(k, c)) return;
    const [q, kk, v] = ['q', 'k', 'v'].map((n) => c.operand(k, n)) as Float32Array[];
    c.write(k.outputs.y!, attentionWasm(this.kernels, q!, kk!, v!, c.T, H, KV, Dh, k.attrs.scale as number, c.seqs, c.caches(k.state!), (k.attrs.window as number | undefined) ?? 0));
  }

  /** Prefill attention over the arena and the caches in the slots, its steps between the products
   *  in the program module; false where the plan does not place it in the module (an operand with a
   *  `pre`, y sharing a buffer with an operand) or without the module. */
  private attentionInMemory(k: KernelOf<'attention'>, c: Ctx): boolean {
    const run = this.current;
    if (!this.renders(k) || !run) return false;
    const views = ['q', 'k', 'v'].map((n) => k.inputs[n] as View);
    const y = k.outputs.y!;
    const { H, KV, Dh } = k.sizes;
    const at = (v: View): At => ({ at: this.argValue({ kind: 'buf', buf: v.buf }) + 4 * v.col, ld: run.entry.buffers[v.buf]!.width });
    const [q, kk, v] = views.map(at);
    const caches = c.caches(k.state!).map((ch) => ({ k: ch.k.byteOffset, v: ch.v.byteOffset, len: ch.len, capacity: ch.capacity, rows: ch.rows ?? ch.capacity }));
    const window = (k.attrs.window as number | undefined) ?? 0;
    let maxKeys = 1;
    // keys a row sees: its sequence's earlier ones, or with a window the history it gathers (attentionAt)
    c.seqs.forEach((s, i) => { maxKeys = Math.max(maxKeys, (window ? Math.min(caches[i]!.len, window - 1) : caches[i]!.len) + s.len); });
    const work = this.scratch(attentionWorkBytes(maxKeys, window ? KV * Dh : 0, Dh, this.kernels));
    attentionAt(this.kernels, this.prog!.attn, this.prog!.calls, this.kernels.memory, q!, kk!, v!, at(y), c.T, H, KV, Dh, k.attrs.scale as number, c.seqs, caches, work, window);
    return true;
  }

  /** Threads the products run on (the calling thread counts). */
  override get threads(): number {
    return this.kernels.threads;
  }

  /** Starts the worker threads (before the first product: a browser's workers start only while
   *  this thread runs its event loop). */
  async start(): Promise<void> {
    await this.kernels.start();
    if (this.program.train && !this.trainKernels) this.trainKernels = await WasmTrain.open(this.kernels);
  }

  /** Once the weights are in: workers restarted where packing added a memory, the read-ahead chosen (read-ahead.ts). */
  async loaded(opts: { wasmReadAhead?: boolean } = {}): Promise<void> {
    await this.kernels.start();
    this.kernels.readAheadChoice = chooseReadAhead(this.kernels, this.panels.all(), opts.wasmReadAhead);
  }

  /** Where the packed weights are: memory 0 (with the arena, state slots and scratch), then the
   *  weight memories; each memory's bytes, its weights' bytes and their count. */
  memories(): MemoryReport[] {
    return this.kernels.memories();
  }

  override dispose(): void {
    super.dispose();
    this.kernels.close();
    this.trainKernels?.close();
  }
}
