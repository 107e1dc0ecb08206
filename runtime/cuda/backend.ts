// The CUDA backend: the kernel program on an NVIDIA GPU through the driver API (runtime/cuda/driver.ts).
// Weights are streamed to the device tensor by tensor as they are read (matrices bf16, or q8/q4
// codes and scales as loading quantised them; the rest f32: runtime/cuda/abi.ts), and each product
// or embedding runs the source for its matrix's format (a product over 8-bit activations its q8a8 /
// q4a8 one); derived weights are made on the host from their parts, then uploaded.
// An entry's activations live in one device arena laid out by the compiler's memory plan; the state
// pool is one device buffer of slots. A dispatch is one launch on the backend's stream; a read waits
// for the stream and copies the view back.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Backend, type Invocation, type RunBatch, type StatePool, viewColumns } from '../backend.ts';
import { compileExpr, exprLeaves } from '../expr.ts';
import type { DerivedWeight, Entry, EntryName, Kernel, Program, ProgramWeight, View } from '../program.ts';
import { stateFormatMismatch, weightsRead } from '../program.ts';
import { RuntimeError } from '../errors.ts';
import type { ActivationFormat } from '../act-quant.ts';
import { type HostWeight, type QuantDType, QUANT_DTYPES, concatQuant, isQuant } from '../quant.ts';
import { type Tensor, fromF32, toF32 } from '../tensor.ts';
import { ARGS_FIELDS, type MatrixFormat, kernelOffsets, kernelWeights, launchesOf, packArgs, scratchFloats, quantDeviceBytes, quantMatrix, viewBase } from './abi.ts';
import {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, CUDA_ERROR_NOT_FOUND, CUDA_SUCCESS,
  type CudaDriver, type DevicePtr, type Handle, addr, check, errorName, initDriver, openDriver,
} from './driver.ts';
import { type CudaKernels, type CudaLaunchPlan, type CudaManifestKernel, functionName, kernelIds, kernelsFromDir, planModules } from './kernels.ts';
import { type StepLaunch, StepGraphs, graphsByDefault } from './graph.ts';
import { openNvrtc } from './nvrtc.ts';
import { CudaStatePool, DeviceBuffer } from './pool.ts';

/** Compiles kernel sources for an architecture when no module covers them (NVRTC). */
export type CudaCompiler = (ids: readonly string[], arch: string, source: (id: string) => string) => Uint8Array;

export interface CudaBackendOptions {
  readonly driver: CudaDriver;
  readonly kernels: CudaKernels;
  /** Device ordinal (default 0). */
  readonly device?: number;
  /** For kernels without a module for this device; without it they are an error (RT705). */
  readonly compile?: CudaCompiler;
  /** Run each decode step as a CUDA Graph (runtime/cuda/graph.ts; default true, ARCHC_CUDA_GRAPHS=0 false). */
  readonly graphs?: boolean;
}

/** Functions of one kernel source, by entry name (`archc_main`, `archc_gemv`, a phase's `archc_<fn>`). */
type Loaded = ReadonlyMap<string, Handle>;

/** CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: a launch above 48 KiB of dynamic shared memory needs it raised. */
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
const DEFAULT_DYNAMIC_SHARED = 48 * 1024;

export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly driver: CudaDriver;
  readonly device: number;
  /** `sm_90` for a compute capability of 9.0. */
  readonly arch: string;
  readonly deviceName: string;
  private readonly modules: Handle[] = [];
  private readonly fns = new Map<string, Loaded>();
  private readonly stream: Handle;
  /** The quantised formats every kernel that may read one has a source for (from the manifest). */
  quantFormats: readonly QuantDType[] = [];
  /** Device weights by name and storage dtype. */
  private readonly weights = new Map<string, bigint>();
  /** The storage dtypes the kernels read each weight in (a matrix: bf16 unless uploaded quantised). */
  private readonly dtypes = new Map<string, Set<'bf16' | 'f32'>>();
  /** The format of each matrix uploaded quantised. */
  private readonly formats = new Map<string, QuantDType>();
  /** Checkpoint tensors kept on the host until the derived weights made from them are made. */
  private readonly parts = new Map<string, HostWeight>();
  private pending: DerivedWeight[];
  private readonly read: Set<string>;
  /** Each kernel's table of weight addresses on the device, by kernel. */
  private readonly tables = new Map<Kernel, bigint>();
  readonly arena: DeviceBuffer;
  /** tokens, positions, then per sequence start, len, before, slot (int32). */
  readonly batchBuf: DeviceBuffer;
  /** The kernels' workspace (each kernel's plan's scratch; they run in order on one stream). */
  readonly scratch: DeviceBuffer;
  /** Decode steps as CUDA Graphs (null: every launch made as dispatched; useGraphs). */
  graphs: StepGraphs | null = null;
  /** The invocation whose launches are held back for its step's graph, run by the next sync. */
  waiting: CudaInvocation | null = null;
  private disposed = false;

  constructor(readonly program: Program, opts: CudaBackendOptions) {
    const d = (this.driver = opts.driver);
    const ordinal = opts.device ?? 0;
    initDriver(d, ordinal);
    const dev = [0];
    this.call(d.cuDeviceGet(dev, ordinal), 'cuDeviceGet');
    this.device = dev[0]!;
    const major = [0], minor = [0];
    this.call(d.cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, this.device), 'cuDeviceGetAttribute');
    this.call(d.cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, this.device), 'cuDeviceGetAttribute');
    this.arch = `sm_${major[0]}${minor[0]}`;
    const name = new Uint8Array(256);
    this.call(d.cuDeviceGetName(name, name.length, this.device), 'cuDeviceGetName');
    this.deviceName = new TextDecoder().decode(name.subarray(0, Math.max(0, name.indexOf(0)))) || `device ${ordinal}`;
    const ctx: Handle[] = [null];
    this.call(d.cuDevicePrimaryCtxRetain(ctx, this.device), 'cuDevicePrimaryCtxRetain');
    this.call(d.cuCtxSetCurrent(ctx[0]), 'cuCtxSetCurrent');
    const stream: Handle[] = [null];
    this.call(d.cuStreamCreate(stream, 0), 'cuStreamCreate');
    this.stream = stream[0];
    this.useGraphs(opts.graphs ?? graphsByDefault());
    this.arena = new DeviceBuffer(this);
    this.batchBuf = new DeviceBuffer(this);
    this.scratch = new DeviceBuffer(this);
    this.read = weightsRead(program.entries);
    for (const e of Object.values(program.entries)) {
      for (const k of e.kernels) for (const w of kernelWeights(k)) (this.dtypes.get(w.name) ?? this.dtypes.set(w.name, new Set()).get(w.name)!).add(w.dtype as 'bf16' | 'f32');
    }
    this.pending = [...program.derived];
    try {
      this.loadModules(opts);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  call(code: number, what: string): void {
    check(this.driver, code, what);
  }

  alloc(bytes: number): bigint {
    const p: DevicePtr[] = [0];
    this.call(this.driver.cuMemAlloc(p, bytes), `cuMemAlloc(${bytes} bytes)`);
    return addr(p[0]!);
  }

  /** Loads the modules the device can run (cubin, else PTX), compiles the rest, and finds each
   *  kernel's functions. */
  private loadModules(opts: CudaBackendOptions): void {
    const { manifest } = opts.kernels;
    const other = stateFormatMismatch(this.program, manifest.bf16States);
    if (other) throw new RuntimeError('RT705', ['the package', `its kernels keep the SSM states in ${other.kernels}, the program in ${other.program}; load with the state format the package was built for`]);
    const names = new Map<string, string[]>();
    for (const ks of Object.values(manifest.entries)) for (const k of ks) for (const id of kernelIds(k)) (names.get(id) ?? names.set(id, []).get(id)!).push(k.name);
    const kernelsOf = (ids: readonly string[]) => {
      const all = [...new Set(ids.flatMap((id) => names.get(id) ?? []))];
      return all.length > 3 ? `${all.slice(0, 3).join(', ')} and ${all.length - 3} more` : all.join(', ');
    };
    const plan = planModules(manifest, this.arch);
    const images: { file: string; ids: readonly string[]; image: Uint8Array }[] = plan.load.map((m) => ({ file: m.file, ids: m.ids, image: m.kind === 'ptx' ? nulTerminated(opts.kernels.module(m.file)) : opts.kernels.module(m.file) }));
    if (plan.compile.length) {
      if (!opts.compile) throw new RuntimeError('RT705', ['the package', `none compiled for ${this.arch} (it has ${manifest.archs.join(', ') || 'no architectures'}) and NVRTC is not available to compile them; rebuild with --cuda-arch ${this.arch}`]);
      images.push({ file: `NVRTC (${this.arch})`, ids: plan.compile, image: opts.compile(plan.compile, this.arch, opts.kernels.source) });
    }
    const where = new Map<string, Handle>();
    for (const m of images) {
      const mod: Handle[] = [null];
      const r = this.driver.cuModuleLoadData(mod, m.image);
      if (r !== CUDA_SUCCESS) throw new RuntimeError('RT703', [m.file, kernelsOf(m.ids), `${this.deviceName} (${this.arch})`, errorName(this.driver, r)]);
      this.modules.push(mod[0]);
      for (const id of m.ids) where.set(id, mod[0]);
    }
    for (const [entry, ks] of Object.entries(manifest.entries) as [EntryName, CudaKernels['manifest']['entries'][EntryName]][]) {
      const kernels = this.program.entries[entry]?.kernels ?? [];
      if (kernels.length !== ks.length) throw new RuntimeError('RT705', ['the package', `its manifest lists ${ks.length} ${entry} kernels, the program has ${kernels.length}; rebuild the package`]);
      for (const k of ks) for (const id of kernelIds(k)) {
        if (this.fns.has(id)) continue;
        const mod = where.get(id) ?? fail(`no module holds kernel ${k.name}`);
        const fns = new Map<string, Handle>();
        const get = (fn: string, optional: boolean): void => {
          const out: Handle[] = [null];
          const r = this.driver.cuModuleGetFunction(out, mod, functionName(fn, id));
          if (r === CUDA_ERROR_NOT_FOUND && optional) return;
          if (r !== CUDA_SUCCESS) throw new RuntimeError('RT703', [`function ${functionName(fn, id)}`, k.name, `${this.deviceName} (${this.arch})`, errorName(this.driver, r)]);
          fns.set(fn, out[0]);
        };
        // a kernel of phases has their functions (and a product its GEMV); any other archc_main
        for (const p of k.launch.phases ?? []) get(`archc_${p.fn}`, false);
        if (!k.launch.phases) get('archc_main', false);
        get('archc_gemv', !(k.launch.phases && k.launch.gemvRows !== undefined));
        this.fns.set(id, fns);
      }
    }
    const all = Object.values(manifest.entries).flat();
    this.quantFormats = QUANT_DTYPES.filter((f) => all.some((k) => k.formats?.[f]));
    this.ids = new Map(Object.entries(manifest.entries).map(([e, ks]) => [e, [...ks]]));
    this.launches = new Map(Object.entries(manifest.entries).map(([e, ks]) => [e, ks.map((k) => k.launch)]));
  }

  /** Each entry's kernels' sources per format, in order (from the manifest). */
  private ids = new Map<string, CudaManifestKernel[]>();
  /** Each entry's kernels' launch plans, in order (from the manifest). */
  private launches = new Map<string, CudaLaunchPlan[]>();

  uploadWeight(w: ProgramWeight, t: HostWeight): void {
    if (this.read.has(w.name)) this.store(w.name, t);
    if (this.pending.some((d) => parts(d).includes(w.name))) this.parts.set(w.name, t);
    const ready = this.pending.filter((d) => parts(d).every((p) => this.parts.has(p)));
    if (!ready.length) return;
    this.pending = this.pending.filter((d) => !ready.includes(d));
    for (const d of ready) this.store(d.name, this.derive(d));
    const needed = new Set(this.pending.flatMap(parts));
    for (const p of [...this.parts.keys()]) if (!needed.has(p)) this.parts.delete(p);
  }

  /** True once every weight the kernels read is on the device. */
  complete(): boolean {
    return [...this.dtypes].every(([name, ds]) => [...ds].every((d) => this.weights.has(`${d === 'bf16' ? this.formats.get(name) ?? d : d}:${name}`)));
  }

  /** The format kernel `k`'s matrix is held in (bf16 without one). */
  kernelFormat(k: Kernel): MatrixFormat {
    const m = k.family === 'matmul' || k.family === 'embedding' ? k.inputs.w : undefined;
    const f = (m && 'weight' in m && this.formats.get(m.weight)) || 'bf16';
    if (f !== 'bf16' && !quantMatrix(k)) fail(`kernel ${k.name} reads ${f} weights it has no source for`);
    return f;
  }

  private store(name: string, t: HostWeight): void {
    if (isQuant(t)) {
      const ds = this.dtypes.get(name);
      if (!ds || ds.size !== 1 || !ds.has('bf16')) fail(`weight ${name} is ${t.dtype}, and a kernel reads it as f32`);
      this.formats.set(name, t.dtype);
    }
    for (const dtype of isQuant(t) ? [t.dtype] : this.dtypes.get(name) ?? []) {
      const bytes = isQuant(t) ? quantDeviceBytes(t) : dtype === 'bf16'
        ? (t.dtype === 'bf16' ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) : u8(fromF32(toF32(t), [t.data.length], 'bf16').data))
        : u8(t.dtype === 'f32' ? t.data : toF32(t));
      const key = `${dtype}:${name}`;
      const old = this.weights.get(key);
      if (old !== undefined) this.driver.cuMemFree(old);
      const p = this.alloc(Math.max(bytes.byteLength, 4));
      this.call(this.driver.cuMemcpyHtoD(p, bytes, bytes.byteLength), `cuMemcpyHtoD(weight ${name})`);
      this.weights.set(key, p);
    }
  }

  private derive(d: DerivedWeight): HostWeight {
    if (d.from.kind === 'concat') {
      const hs = d.from.parts.map((p) => this.parts.get(p)!);
      // quantised parts (one format: the load plan gives a merged product's parts one) stay codes
      if (hs.some(isQuant)) return concatQuant(hs.map((h) => (isQuant(h) ? h : fail(`parts of ${d.name} mix quantised and other weights`))));
      const ts = hs as Tensor[];
      const same = ts.every((t) => t.dtype === ts[0]!.dtype);
      const datas = ts.map((t) => (same ? t.data : toF32(t)));
      const data = new (datas[0]!.constructor as Float32ArrayConstructor)(datas.reduce((n, x) => n + x.length, 0));
      let at = 0;
      for (const x of datas) { data.set(x as Float32Array, at); at += x.length; }
      return { dtype: same ? ts[0]!.dtype : 'f32', shape: d.shape, data };
    }
    const n = d.shape.reduce((a, b) => a * b, 1);
    const f32 = new Map<string, Float32Array>();
    const fn = compileExpr(d.from.body, { weight: (w) => f32.get(w) ?? f32.set(w, toF32(this.parts.get(w) as Tensor)).get(w)! });
    const data = new Float32Array(n);
    for (let j = 0; j < n; j++) data[j] = fn(0, j);
    return { dtype: 'f32', shape: d.shape, data };
  }

  /** Kernel `k`'s weight table on the device (made on its first launch). */
  table(k: Kernel): bigint {
    let t = this.tables.get(k);
    if (t === undefined) {
      const slots = kernelWeights(k, this.kernelFormat(k));
      const ptrs = new BigUint64Array(Math.max(1, slots.length));
      slots.forEach((w, i) => { ptrs[i] = this.weights.get(`${w.dtype}:${w.name}`) ?? fail(`weight ${w.name} (${w.dtype}) of kernel ${k.name} is not on the device`); });
      t = this.alloc(ptrs.byteLength);
      this.call(this.driver.cuMemcpyHtoD(t, u8(ptrs), ptrs.byteLength), 'cuMemcpyHtoD(weight table)');
      this.tables.set(k, t);
    }
    return t;
  }

  /** How products over q8/q4 weights read their input (LoadOptions.activations): 'q8' runs their
   *  q8a8 / q4a8 sources, which round it to 8 bits per group as they stage it (runtime/act-quant.ts). */
  activations: ActivationFormat = 'f32';
  useActivations(a: ActivationFormat): void {
    if (a === 'q8' && ![...this.ids.values()].flat().some((k) => k.formats?.q8a8)) throw new RuntimeError('RT303', ['activations q8 with this package\'s CUDA kernels', 'it has no sources for 8-bit activations: rebuild it (archc build), or leave activations at f32']);
    this.activations = a;
  }

  /** The functions of kernel `index` of `entry` for its matrix's format (and the activations). */
  functions(entry: Entry, index: number): Loaded {
    const mk = this.ids.get(this.entryName(entry))?.[index] ?? fail('the entry is not one of the program\'s');
    const m = this.kernelFormat(entry.kernels[index]!);
    const f = m !== 'bf16' && this.activations === 'q8' && entry.kernels[index]!.family === 'matmul' ? `${m}a8` as const : m;
    return this.fns.get(f === 'bf16' ? mk.id : mk.formats?.[f] ?? fail(`the package has no ${f} source for kernel ${mk.name}; rebuild it`))!;
  }

  /** The launch plan of kernel `index` of `entry`. */
  launchPlan(entry: Entry, index: number): CudaLaunchPlan {
    return this.launches.get(this.entryName(entry))?.[index] ?? fail('the entry is not one of the program\'s');
  }

  private entryName(entry: Entry): string {
    return (Object.keys(this.program.entries) as EntryName[]).find((n) => this.program.entries[n] === entry) ?? fail('the entry is not one of the program\'s');
  }

  createStatePool(capacity: number): StatePool {
    return new CudaStatePool(this, capacity);
  }

  begin(entry: Entry, batch: RunBatch, pool: StatePool): Invocation {
    if (!(pool instanceof CudaStatePool) || pool.backend !== this) fail('the state pool was not made by this CUDA backend');
    const T = batch.tokens.length, S = batch.seqs.length;
    this.waiting?.flush();  // the batch buffer is about to change under them
    this.arena.reserve(4 * (entry.arena.T * T + entry.arena.S * S));
    const ints = new Int32Array(2 * T + 4 * S);
    ints.set(batch.tokens, 0);
    ints.set(batch.positions, T);
    batch.seqs.forEach((s, i) => {
      ints[2 * T + i] = s.start;
      ints[2 * T + S + i] = s.len;
      ints[2 * T + 2 * S + i] = batch.lengths[i]!;
      ints[2 * T + 3 * S + i] = batch.slots[i]!;
    });
    const base = this.batchBuf.reserve(ints.byteLength);
    this.call(this.driver.cuMemcpyHtoD(base, u8(ints), ints.byteLength), 'cuMemcpyHtoD(batch)');
    const at = (i: number) => base + BigInt(4 * i);
    const ptr = {
      arena: this.arena.ptr, pool: pool.reserve(), w: 0n, tokens: at(0), positions: at(T),
      seq_start: at(2 * T), seq_len: at(2 * T + S), seq_before: at(2 * T + 2 * S), seq_slot: at(2 * T + 3 * S),
      scratch: this.scratch.reserve(4 * Math.max(0, ...this.launches.get(this.entryName(entry))!.map((p) => scratchFloats(p, T, S)))),
    } satisfies Record<(typeof ARGS_FIELDS)[number], bigint>;
    const graphed = this.graphs !== null && entry === this.program.entries.decode;
    return new CudaInvocation(this, entry, T, S, pool, ptr, graphed ? `decode T=${T} S=${S}` : null);
  }

  /** Turns the decode steps' graphs on or off: launches held back run first, the graphs kept are dropped. */
  useGraphs(on: boolean): void {
    this.waiting?.flush();
    this.graphs?.dispose();
    this.graphs = on ? new StepGraphs(this.driver, this.stream, (l) => this.launch(l)) : null;
  }

  /** Runs the launches held back, then waits for the stream. */
  sync(): void {
    this.waiting?.flush();
    this.call(this.driver.cuStreamSynchronize(this.stream), 'cuStreamSynchronize');
  }

  /** Functions whose dynamic shared memory limit was raised, to how many bytes. */
  private readonly sharedLimit = new Map<Handle, number>();

  /** Raises `fn`'s dynamic shared memory limit to `bytes` where that is above what it allows. */
  allowShared(fn: Handle, bytes: number, what: string): void {
    if (bytes <= Math.max(DEFAULT_DYNAMIC_SHARED, this.sharedLimit.get(fn) ?? 0)) return;
    this.call(this.driver.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes), `cuFuncSetAttribute(${what}, ${bytes} bytes of shared memory)`);
    this.sharedLimit.set(fn, bytes);
  }

  launch({ fn, grid, block, shared, args, what }: StepLaunch): void {
    this.call(this.driver.cuLaunchKernel(fn, grid[0]!, grid[1]!, grid[2]!, block[0]!, block[1]!, block[2]!, shared, this.stream, [args], null), `cuLaunchKernel(${what})`);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const d = this.driver;
    this.waiting = null;
    this.graphs?.dispose();
    for (const p of [...this.weights.values(), ...this.tables.values()]) d.cuMemFree(p);
    this.weights.clear();
    this.tables.clear();
    this.arena?.free();
    this.batchBuf?.free();
    this.scratch?.free();
    for (const m of this.modules) d.cuModuleUnload(m);
    if (this.stream) d.cuStreamDestroy(this.stream);
    d.cuDevicePrimaryCtxRelease(this.device);
  }
}

class CudaInvocation implements Invocation {
  /** Launches held back for the step's graph; while `whole`, they are every launch of the step so far
   *  (its kernels dispatched in order from the first, none run yet). */
  private held: StepLaunch[] = [];
  private whole: boolean;
  private next = 0;

  /** `shape`: the step's graph's key, or null to launch as dispatched. */
  constructor(private readonly b: CudaBackend, private readonly entry: Entry, private readonly T: number, private readonly S: number,
    private readonly pool: CudaStatePool, private readonly ptr: Record<(typeof ARGS_FIELDS)[number], bigint>, private readonly shape: string | null) {
    this.whole = shape !== null;
  }

  /** Runs the launches held back: as the step's graph once all its kernels were dispatched, else one by one. */
  flush(): void {
    const ls = this.held;
    this.held = [];
    if (this.b.waiting === this) this.b.waiting = null;
    if (!ls.length) return;  // (nothing ran: a write before the step keeps it whole)
    if (this.whole && this.next === this.entry.kernels.length && this.b.graphs) this.b.graphs.run(this.shape!, ls);
    else for (const l of ls) this.b.launch(l);
    this.whole = false;
  }

  private region(v: View): { base: number; stride: number; rows: number } {
    const b = this.entry.buffers[v.buf] ?? fail(`a view of buffer ${v.buf}, which the entry lacks`);
    const rows = b.rows === 'T' ? this.T : b.rows === 'S' ? this.S : 1;
    return { base: viewBase(this.entry, { ...v, col: 0 }, this.T, this.S), stride: b.width, rows };
  }

  write(v: View, data: Float32Array): void {
    const { base, stride, rows } = this.region(v);
    if (data.length !== rows * v.width) fail(`writing ${data.length} floats into a view of ${rows} x ${v.width}`);
    this.b.sync();
    for (let r = 0; r < rows; r++) {
      const row = data.subarray(r * v.width, (r + 1) * v.width);
      this.b.call(this.b.driver.cuMemcpyHtoD(this.b.arena.ptr + BigInt(4 * (base + r * stride + v.col)), u8(row), row.byteLength), 'cuMemcpyHtoD(arena)');
    }
  }

  dispatch(k: Kernel): void {
    const index = this.entry.kernels.indexOf(k);
    if (index < 0) fail(`kernel ${k.name} is not in this entry`);
    if (index !== this.next && this.whole) { this.flush(); this.whole = false; }
    this.next = index + 1;
    const launches = launchesOf(this.entry, k, this.b.launchPlan(this.entry, index), this.T, this.S);
    if (!launches.length) return;
    const fns = this.b.functions(this.entry, index);
    const args = packArgs({
      ptr: { ...this.ptr, w: this.b.table(k) }, slotFloats: this.pool.floats, T: this.T, S: this.S, capacity: this.pool.capacity,
      ...kernelOffsets(this.b.program, this.entry, k, this.T, this.S, this.pool.capacity),
    });
    for (const l of launches) {
      const fn = fns.get(l.fn) ?? fail(`kernel ${k.name} has no function ${l.fn}`);
      const what = launches.length > 1 ? `${k.name} ${l.fn}` : k.name;
      this.b.allowShared(fn, l.shared, what);  // (before a capture, which takes launches only)
      const sl: StepLaunch = { fn, grid: l.grid, block: l.block, shared: l.shared, args, what };
      if (!this.whole) this.b.launch(sl);
      else { this.held.push(sl); this.b.waiting = this; }
    }
  }

  readAsync(v: View): Promise<Float32Array> {
    return Promise.resolve(this.read(v));
  }

  read(v: View): Float32Array {
    const { base, stride, rows } = this.region(v);
    this.b.sync();
    const all = new Float32Array(rows * stride);
    if (all.length) this.b.call(this.b.driver.cuMemcpyDtoH(u8(all), this.b.arena.ptr + BigInt(4 * base), all.byteLength), 'cuMemcpyDtoH(arena)');
    return viewColumns(all, rows, stride, v);
  }
}

/** The weights a derived weight is made from. */
const parts = (d: DerivedWeight): readonly string[] =>
  d.from.kind === 'concat' ? d.from.parts : exprLeaves(d.from.body).flatMap((l) => (l.op === 'w' ? [l.name] : []));

const u8 = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** PTX is text the driver reads up to a NUL. */
function nulTerminated(b: Uint8Array): Uint8Array {
  if (b[b.length - 1] === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}

/** How `backend: 'cuda'` finds its driver, device and kernels. */
export interface CudaLoadOptions {
  /** The package's cuda/ folder (default: the one beside this runtime), kernels at hand, or a
   *  function that makes them (called once the device is known to be there). */
  readonly kernels?: string | CudaKernels | (() => Promise<CudaKernels>);
  /** Each decode step as one CUDA Graph, replayed while its launches stay the same (default true;
   *  ARCHC_CUDA_GRAPHS=0 turns it off where a load says nothing). */
  readonly graphs?: boolean;
  /** The driver library (default libcuda.so.1, or ARCHC_LIBCUDA). */
  readonly library?: string;
  readonly device?: number;
}

/** The package's cuda/ folder: this file is <package>/{src,dist}/runtime/cuda/backend.*. */
export const packageKernelDir = (): string =>
  // @ts-ignore TS1470: the package's sources are compiled before its package.json says "type": "module"; the output is ESM
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'cuda');

/** Opens the driver (RT700 without one), initialises the device (RT701, RT702) and loads the
 *  program's kernels on it (RT703, RT705). */
export async function openCudaBackend(program: Program, o: CudaLoadOptions = {}): Promise<CudaBackend> {
  const driver = await openDriver(o.library);
  initDriver(driver, o.device);
  const k = o.kernels;
  const kernels = typeof k === 'function' ? await k() : typeof k === 'object' ? k : kernelsFromDir(k ?? packageKernelDir());
  const compile = (await openNvrtc()) ?? undefined;
  return new CudaBackend(program, { driver, kernels, device: o.device, compile, graphs: o.graphs });
}
