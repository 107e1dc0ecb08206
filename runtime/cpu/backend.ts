// The CPU backend: the reference implementation of the backend interface. Weights stay in their
// checkpoint dtype (matrices in shared memory when a thread pool runs the products); derived
// weights are made as soon as their parts arrive. Activations live in one Float32Array arena laid
// out by the compiler's memory plan; state slots are Float32Arrays laid out by `slotLayout`.

import { type Backend, type Invocation, type RunBatch, type StatePool, copyFloats, viewColumns } from '../backend.ts';
import { compileExpr, exprLeaves } from '../expr.ts';
import type { DerivedWeight, Entry, EntryOf, FamilyTable, Kernel, Program, ProgramBuffer, ProgramWeight, TrainKernel, View } from '../program.ts';
import { byFamily, isBackward, kvRows, sequenceFloats, slotLayout, weightsRead } from '../program.ts';
import { type ActivationFormat, quantizeActivations } from '../act-quant.ts';
import { type HostWeight, type QuantDType, concatQuant, dequantizeRows, isQuant } from '../quant.ts';
import { type Tensor, toF32 } from '../tensor.ts';
import { CPU_FAMILIES, type Ctx } from './families.ts';
import { type BackwardTable, CPU_BACKWARD } from './train.ts';
import { linear, linearIn } from './linear.ts';
import type { LinearPool } from './pool.ts';
import type { KvCache } from './seq.ts';

/** The CPU's one scheduling decision: a product of at least this many multiply-adds per row is split
 *  by output columns across the thread pool; smaller ones run on the calling thread. */
export const SPLIT_COLUMNS_FROM = 1 << 14;

export class CpuBackend implements Backend {
  readonly name: string = 'cpu';
  /** The reference products and embedding read both formats exactly per runtime/quant.ts. */
  readonly quantFormats: readonly QuantDType[] = ['q8', 'q4'];
  private readonly weights = new Map<string, HostWeight>();
  private readonly widened = new Map<string, Float32Array>();
  /** Weights the kernels read (the rest are only parts of derived weights). */
  private readonly read: Set<string>;
  /** Weights a matrix product reads: shared with the pool's threads. */
  private readonly matrices = new Set<string>();
  private pending: DerivedWeight[];
  private arena = new Float32Array(0);
  /** The implementation of each kernel family (a subclass may replace some). */
  readonly families: FamilyTable<[Ctx], void> = CPU_FAMILIES;
  /** The implementation of each train-entry family (runtime/families.ts BACKWARD_FAMILIES; a subclass may replace it). */
  get backward(): BackwardTable {
    return CPU_BACKWARD;
  }
  private acts: ActivationFormat = 'f32';

  constructor(readonly program: Program, private readonly pool?: LinearPool) {
    this.read = weightsRead({ ...program.entries, ...(program.train ? { train: program.train } : {}) });
    for (const e of Object.values(program.entries)) {
      for (const k of e.kernels) if (k.family === 'matmul' && 'weight' in k.inputs.w!) this.matrices.add(k.inputs.w.weight);
    }
    this.pending = [...program.derived];
  }

  /** How products over q8/q4 weights read their input (runtime/act-quant.ts; LoadOptions.activations). */
  get activations(): ActivationFormat {
    return this.acts;
  }

  useActivations(a: ActivationFormat): void {
    this.acts = a;
  }

  /** Threads the matrix products run on (the calling thread counts). */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  uploadWeight(w: ProgramWeight, t: HostWeight): void {
    this.store(w.name, t);
    // derived weights whose parts are all in; then drop parts nothing else needs
    const ready = this.pending.filter((d) => parts(d).every((p) => this.weights.has(p)));
    if (!ready.length) return;
    this.pending = this.pending.filter((d) => !ready.includes(d));
    for (const d of ready) this.store(d.name, this.derive(d));
    const needed = new Set(this.pending.flatMap(parts));
    for (const d of ready) {
      for (const p of parts(d)) {
        if (!this.read.has(p) && !needed.has(p)) {
          const t = this.weights.get(p);
          if (t && this.pool) this.pool.release([t]);
          this.weights.delete(p);
          this.widened.delete(p);
        }
      }
    }
  }

  /** Every weight stored again, the same shapes (a training step's masters), and every derived
   *  weight made again from them. */
  updateWeights(weights: ReadonlyMap<string, Float32Array>): void {
    // all out first: a derived weight is made once every part is in again, never from a stale part
    if (this.pool) this.pool.release(this.weights.values());
    this.weights.clear();
    this.widened.clear();
    this.pending = [...this.program.derived];
    for (const w of this.program.weights) {
      const data = weights.get(w.name) ?? fail(`updateWeights: no weight ${w.name}`);
      this.uploadWeight(w, { dtype: 'f32', shape: w.shape, data });
    }
  }

  hostCopy(weight: string): 'none' | 'shared' | 'own' {
    return this.pool && this.matrices.has(weight) ? 'shared' : 'own';
  }

  /** True once every weight the kernels read is in. */
  complete(): boolean {
    return [...this.read].every((n) => this.weights.has(n));
  }

  /** Keeps a weight (a subclass may place matrices elsewhere and keep a stand-in). */
  protected store(name: string, t: HostWeight): void {
    this.weights.set(name, this.pool && this.matrices.has(name) && t.shape.length === 2 ? this.pool.share(t) : t);
  }

  private derive(d: DerivedWeight): HostWeight {
    if (d.from.kind === 'concat') {
      const qs = d.from.parts.map((p) => this.weights.get(p)!);
      // quantised parts (one format: the load plan gives a merged product's parts one) are
      // concatenated as codes and scales, rows after rows
      if (qs.some(isQuant)) {
        if (!qs.every((q) => isQuant(q) && q.dtype === qs[0]!.dtype)) fail(`parts of ${d.name} mix quantised and other weights`);
        return concatQuant(qs.filter(isQuant));
      }
      // the parts as stored (a checkpoint may hold another dtype than the program declares); parts
      // of mixed dtypes are widened to f32
      const ts = qs as Tensor[];
      const dtype = ts.every((t) => t.dtype === ts[0]!.dtype) ? ts[0]!.dtype : 'f32';
      const n = ts.reduce((a, t) => a + t.data.length, 0);
      // parts the loader read into one buffer, in order and adjacent (runtime/load-weights.ts): that
      // buffer is the concatenation
      const d0 = ts[0]!.data;
      let end = d0.byteOffset;
      if (ts.every((t) => t.dtype === dtype && t.data.buffer === d0.buffer && t.data.byteOffset === end && (end += t.data.byteLength) > 0)) {
        return { dtype, shape: d.shape, data: dtype === 'f32' ? new Float32Array(d0.buffer, d0.byteOffset, n) : new Uint16Array(d0.buffer, d0.byteOffset, n) };
      }
      // a matrix the thread pool reads is made in shared memory (`store` would copy it there)
      const bytes = n * (dtype === 'f32' ? 4 : 2), buf = this.pool && this.matrices.has(d.name) ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
      const data = dtype === 'f32' ? new Float32Array(buf) : new Uint16Array(buf);
      let at = 0;
      for (const t of ts) {
        data.set((dtype === 'f32' && t.dtype !== 'f32' ? toF32(t) : t.data) as Float32Array, at);
        at += t.data.length;
      }
      return { dtype, shape: d.shape, data };
    }
    const n = d.shape.reduce((a, b) => a * b, 1);
    const fn = compileExpr(d.from.body, { weight: (w) => this.f32(w) });
    const data = new Float32Array(n);
    for (let j = 0; j < n; j++) data[j] = fn(0, j);
    return { dtype: 'f32', shape: d.shape, data };
  }

  /** A float weight as stored (a quantised one is read through `weight`). */
  tensor(name: string): Tensor {
    const t = this.weight(name);
    return isQuant(t) ? fail(`weight ${name} is ${t.dtype}, read where only float weights are`) : t;
  }

  /** A weight as stored: float, or quantised (products and embeddings). */
  weight(name: string): HostWeight {
    return this.weights.get(name) ?? fail(`weight ${name} was not loaded`);
  }

  f32(name: string): Float32Array {
    let w = this.widened.get(name);
    if (!w) {
      const t = this.weight(name);
      w = isQuant(t) ? dequantizeRows(t, 0, t.shape[0]) : t.dtype === 'f32' ? (t.data as Float32Array) : toF32(t);
      this.widened.set(name, w);
    }
    return w;
  }

  linear(x: Float32Array, rows: number, K: number, w: HostWeight, b: Tensor | null, split: boolean): Float32Array {
    if (this.acts === 'q8' && isQuant(w)) {
      const xq = new Float32Array(rows * K);
      quantizeActivations(x, 0, K, rows, K, xq);
      x = xq;
    }
    return split && this.pool ? this.pool.linear(x, rows, K, w, b) : linear(x, rows, K, w, b);
  }

  /** Room for a kernel's contiguous copy of a view's columns (Ctx.operand), read only while the
   *  kernel runs (a subclass may hand out reused arrays). */
  columns(n: number): Float32Array {
    return new Float32Array(n);
  }

  /** y = x·W + b with W stored [K, N] (a product reading its weight the other way round: the
   *  train entry's dX = dY·W). */
  linearTransposed(x: Float32Array, rows: number, K: number, weight: string, b: Tensor | null): Float32Array {
    return linearIn(x, rows, K, this.tensor(weight), b);
  }

  createStatePool(capacity: number): StatePool {
    return new CpuStatePool(this.program, capacity);
  }

  begin(entry: Entry, batch: RunBatch, pool: StatePool): Invocation {
    return this.beginTrain(entry, batch, pool);
  }

  /** An invocation of an inference entry or of the train entry (runtime/cpu/train.ts runTrain). */
  beginTrain(entry: EntryOf<TrainKernel>, batch: RunBatch, pool: StatePool): CpuInvocation {
    if (!(pool instanceof CpuStatePool)) fail('the state pool was not made by the CPU backend');
    const T = batch.tokens.length, S = batch.seqs.length;
    return new CpuInvocation(this, entry, batch, pool, this.arenaOf(entry.arena.T * T + entry.arena.S * S + (entry.arena.C ?? 0)));
  }

  /** The arena for a run of `floats` floats (a subclass may place it elsewhere). */
  protected arenaOf(floats: number): Float32Array {
    if (this.arena.length < floats) this.arena = new Float32Array(floats);
    return this.arena;
  }

  dispose(): void {
    if (this.pool) this.pool.release(this.weights.values());
    this.weights.clear();
    this.widened.clear();
  }
}

/** The weights a derived weight is made from. */
const parts = (d: DerivedWeight): readonly string[] =>
  d.from.kind === 'concat' ? d.from.parts : exprLeaves(d.from.body).flatMap((l) => (l.op === 'w' ? [l.name] : []));

export class CpuInvocation implements Invocation, Ctx {
  readonly T: number;
  readonly S: number;
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqs: RunBatch['seqs'];
  readonly labels?: Int32Array;

  constructor(private readonly backend: CpuBackend, private readonly entry: EntryOf<TrainKernel>, private readonly batch: RunBatch,
    private readonly pool: CpuStatePool, private readonly arena: Float32Array) {
    this.T = batch.tokens.length;
    this.S = batch.seqs.length;
    this.tokens = batch.tokens;
    this.positions = batch.positions;
    this.seqs = batch.seqs;
    this.labels = batch.labels;
  }

  dispatch(k: TrainKernel): void {
    if (isBackward(k)) (this.backend.backward[k.family] as (k: TrainKernel, c: Ctx) => void)(k, this);
    else byFamily(this.backend.families, k, this);
  }

  read(v: View): Float32Array {
    return copyFloats(this.rowsOf(v));
  }

  readView(v: View): Float32Array {
    return this.rowsOf(v);
  }

  readAsync(v: View): Promise<Float32Array> {
    return Promise.resolve(this.read(v));
  }

  private buffer(v: View): ProgramBuffer {
    return this.entry.buffers[v.buf] ?? fail(`view of buffer ${v.buf}, which the entry does not have`);
  }

  rows(v: View): number {
    const b = this.buffer(v);
    return b.rows === 'T' ? this.T : b.rows === 'S' ? this.S : 1;
  }

  private base(b: ProgramBuffer): number {
    const { arena } = this.entry;
    if (b.rows === 'T') return b.offset * this.T;
    return arena.T * this.T + (b.rows === 'C' && arena.C !== undefined ? arena.S * this.S + b.offset : b.offset * this.S);
  }

  /** The view's rows, contiguous: a window of the arena when it spans its buffer, else a copy. */
  private rowsOf(v: View): Float32Array {
    const b = this.buffer(v);
    const rows = this.rows(v);
    const base = this.base(b);
    return viewColumns(this.arena.subarray(base, base + rows * b.width), rows, b.width, v, (n) => this.backend.columns(n));
  }

  operand(k: TrainKernel, name: string): Float32Array {
    const o = k.inputs[name] ?? fail(`${k.name} has no operand ${name}`);
    const pre = (k as Kernel).pre?.[name];
    if ('input' in o) fail(`${k.name} reads the integer input ${o.input} as floats`);
    const data = 'weight' in o ? this.f32(o.weight) : this.rowsOf(o);
    if (!pre) return data;
    const width = 'buf' in o ? o.width : data.length;
    const fn = compileExpr(pre, { x: (r, c) => data[r * width + c]!, weight: (n) => this.f32(n) });
    const out = new Float32Array(data.length);
    for (let i = 0; i < out.length; i++) out[i] = fn(Math.floor(i / width), i % width);
    return out;
  }

  tensor(name: string): Tensor {
    return this.backend.tensor(name);
  }

  weight(name: string): HostWeight {
    return this.backend.weight(name);
  }

  f32(name: string): Float32Array {
    return this.backend.f32(name);
  }

  write(v: View, data: Float32Array): void {
    const b = this.buffer(v);
    const rows = this.rows(v);
    if (data.length !== rows * v.width) fail(`writing ${data.length} floats into a view of ${rows} x ${v.width}`);
    const base = this.base(b);
    if (v.col === 0 && v.width === b.width) this.arena.set(data, base);
    else if (v.width >= 64) for (let r = 0; r < rows; r++) this.arena.set(data.subarray(r * v.width, (r + 1) * v.width), base + r * b.width + v.col);
    // narrow columns element by element (a subarray per row costs more than a short row's copy)
    else for (let r = 0, i = 0; r < rows; r++) for (let j = 0, o = base + r * b.width + v.col; j < v.width; j++) this.arena[o + j] = data[i++]!;
  }

  span(v: View): { data: Float32Array; at: number; ld: number } {
    const b = this.buffer(v);
    return { data: this.arena, at: this.base(b) + v.col, ld: b.width };
  }

  out(v: View): Float32Array | null {
    const b = this.buffer(v), base = this.base(b);
    return v.col === 0 && v.width === b.width ? this.arena.subarray(base, base + this.rows(v) * b.width) : null;
  }

  linear(k: Kernel, x: Float32Array, rows: number, K: number, w: HostWeight, b: Tensor | null): Float32Array {
    if (k.family === 'matmul' && k.attrs.transposed) return this.backend.linearTransposed(x, rows, K, (k.inputs.w as { weight: string }).weight, b);
    return this.backend.linear(x, rows, K, w, b, k.family === 'matmul' && k.sizes.K * k.sizes.N >= SPLIT_COLUMNS_FROM);
  }

  states(index: number): Float32Array[] {
    return this.batch.slots.map((s) => this.pool.state(s, index));
  }

  stateDtype(index: number): 'bf16' | undefined {
    return this.pool.program.states[index]?.dtype;
  }

  caches(index: number): KvCache[] {
    return this.batch.slots.map((s, i) => this.pool.kv(s, index, this.batch.lengths[i]!));
  }
}

/** State slots as Float32Arrays, made on first use and reused once released. */
export class CpuStatePool implements StatePool {
  readonly slotBytes: number;
  private readonly floats: number;
  private readonly offsets: number[];
  private readonly slots: (Float32Array | null)[] = [];
  private readonly free: number[] = [];

  constructor(readonly program: Program, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) fail(`a state pool needs a positive capacity, got ${capacity}`);
    const { floats, offsets } = slotLayout(program.states, capacity);
    this.floats = floats;
    this.offsets = offsets;
    this.slotBytes = 4 * floats;
  }

  acquire(): number {
    const reused = this.free.pop();
    if (reused !== undefined) {
      this.slots[reused] = this.newSlot(reused, this.floats);
      return reused;
    }
    this.slots.push(this.newSlot(this.slots.length, this.floats));
    return this.slots.length - 1;
  }

  /** The zeroed memory of slot `index` (a subclass may place it elsewhere). */
  protected newSlot(_index: number, floats: number): Float32Array {
    return new Float32Array(floats);
  }

  release(slot: number): void {
    this.slot(slot);
    this.slots[slot] = null;
    this.free.push(slot);
  }

  copy(from: number, to: number): void {
    this.slot(to).set(this.slot(from));
  }

  save(slot: number): Uint8Array {
    return new Uint8Array(this.slot(slot).slice().buffer);
  }

  restore(slot: number, bytes: Uint8Array): void {
    if (bytes.byteLength !== this.slotBytes) fail(`a saved slot of ${bytes.byteLength} bytes does not fit slots of ${this.slotBytes}`);
    this.slot(slot).set(new Float32Array(bytes.slice().buffer));
  }

  private slot(i: number): Float32Array {
    return this.slots[i] ?? fail(`state slot ${i} is not in use`);
  }

  state(slot: number, index: number): Float32Array {
    const at = this.offsets[index]!;
    return this.slot(slot).subarray(at, at + sequenceFloats(this.program.states[index]!));
  }

  kv(slot: number, index: number, len: number): KvCache {
    const s = this.program.states[index]!;
    const row = (s.shape[1] as number) * (s.shape[2] as number);
    const at = this.offsets[index]!;
    const mem = this.slot(slot);
    const rows = kvRows(s, this.capacity); // a windowed cache: a ring of min(window, capacity) rows
    return { k: mem.subarray(at, at + rows * row), v: mem.subarray(at + rows * row, at + 2 * rows * row), len, capacity: this.capacity, rows };
  }
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
