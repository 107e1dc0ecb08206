// The WebGPU backend: runs a kernel program's WGSL (rendered by the compiler, runtime/webgpu/shaders.ts)
// through WebGPU — Dawn in Node (the `webgpu` package), `navigator.gpu` in browsers. Weights go to
// the GPU one tensor at a time in their stored dtype (bf16/f16 two per u32), or as q8/q4 codes with
// their f16 scales after them in the same buffer (`quantWords`, quant.ts); derived weights are made there
// (concatenations by buffer copies, of quantised parts on the host; expressions of small vectors on
// the host). A kernel whose matrix came quantised runs the passes rendered for its format (and for
// LoadOptions.activations: 'q8' rounds a product's input rows first). Activations live
// in one arena buffer laid out by the compiler's memory plan; the state pool is one buffer of slots.
// Work is recorded into a command encoder and submitted when something must be read or written, so
// a run of an entry is one submission; reading a result maps a staging buffer (asynchronous: use
// `readAsync`, or `runEntryAsync`).

import { type Backend, type Invocation, type RunBatch, type StatePool, viewColumns } from '../backend.ts';
import { compileExpr, exprLeaves } from '../expr.ts';
import { RuntimeError } from '../errors.ts';
import type { DerivedWeight, Entry, EntryName, Kernel, Program, ProgramWeight, View } from '../program.ts';
import { weightsRead } from '../program.ts';
import type { ActivationFormat } from '../act-quant.ts';
import { type HostWeight, type QuantDType, type QuantTensor, concatQuant, isQuant } from '../quant.ts';
import { type Tensor, toF32 } from '../tensor.ts';
import type { SplitOptions, WebGpuOptions } from './options.ts';
import { writable, type BindingKind, type KernelShaders, type Pass, type RunCount, type WgslProfile, type WgslProgram } from './shaders.ts';
import { findGpu } from './dawn.ts';
import { WebGpuStatePool } from './pool.ts';
import { checkA8Passes, quantPasses, quantWords } from './quant.ts';
import { type BindingLimits, type BoundPass, type SplitPlan, SplitBuffer, bufferName, partsOf, planSplits, specialise, weightDeviceBytes } from './split.ts';
import { batchInts, recordPasses } from './record.ts';
import { PlaceBuffer, placeLayout } from './places.ts';
import { shaderProblem } from './shader-check.ts';

export { findGpu, shaderProblem };

export type { WebGpuOptions };

/** Adapters that run shaders on CPU cores: SwiftShader (Chromium's, and Dawn's fallback), Mesa's
 *  llvmpipe and lavapipe, Microsoft's WARP (the Basic Render Driver). */
const CPU_ADAPTERS = /swiftshader|llvmpipe|lavapipe|basic render|\bwarp\b/i;

/** The program's shape for an adapter: `cpu` for a fallback adapter or one that names a CPU
 *  rasteriser (its barriers are emulated, so products and norms must do without), else `gpu`. */
export function adapterProfile(a: GPUAdapter): WgslProfile {
  const i = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (a as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  if (i.isFallbackAdapter || legacy) return 'cpu';
  return CPU_ADAPTERS.test([i.vendor, i.architecture, i.device, i.description].join(' ')) ? 'cpu' : 'gpu';
}

/** What a program needs of a device, checked against an adapter's limits before anything is
 *  uploaded: the split of every buffer over bindings (split.ts) and the passes of rendering
 *  `profile` that would bind more storage buffers than a shader stage may. */
export function preflight(program: Program, shaders: WgslProgram, limits: BindingLimits, opts: SplitOptions = {}, profile: WgslProfile = 'gpu'): string[] {
  return planSplits(program, shaders, limits, opts, profile).problems;
}

/** The problems as RT501's list: the first 12, then a count of the rest. */
function listProblems(problems: readonly string[]): string {
  const shown = problems.slice(0, 12);
  if (problems.length > shown.length) shown.push(`… and ${problems.length - shown.length} more`);
  return shown.join('\n  ');
}

/** Opens a device fit for `program` (its limits raised to what the adapter has). */
export async function createWebGpuBackend(program: Program, shaders: WgslProgram, opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
  const gpu = await findGpu(opts);
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new RuntimeError('RT500', ['requestAdapter() found none. Without a GPU, point Vulkan at SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (Debian\'s chromium package)']);
  }
  if (!opts.profile && adapterProfile(adapter) === 'cpu') warnCpuAdapter(describeAdapter(adapter), opts);
  const problems = preflight(program, shaders, adapter.limits, opts, opts.profile ?? adapterProfile(adapter));
  if (problems.length) throw new RuntimeError('RT501', [describeAdapter(adapter), listProblems(problems)]);
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    },
  });
  let backend: WebGpuBackend;
  try {
    backend = new WebGpuBackend(program, shaders, device, describeAdapter(adapter), true, opts, opts.profile ?? adapterProfile(adapter));
  } catch (e) {
    device.destroy();
    throw e;
  }
  try {
    await backend.checkShaders();
  } catch (e) {
    backend.dispose();
    throw e;
  }
  return backend;
}

/** The CPU adapters warned about so far in this process. */
const warnedAdapters = new Set<string>();

/** Says once per adapter that WebGPU runs on CPU cores here (SwiftShader, llvmpipe, …), where its
 *  emulated barriers make it far slower than the wasm backend on the same cores. Not said when the
 *  caller named a profile: that is a choice. */
function warnCpuAdapter(adapter: string, opts: WebGpuOptions): void {
  if (warnedAdapters.has(adapter)) return;
  warnedAdapters.add(adapter);
  const message = `WebGPU runs on ${adapter}, a CPU adapter: it is far slower there than backend 'wasm' on the same cores; `
    + `load with backend 'wasm' (archc: --backend wasm), or name webgpu.profile to keep WebGPU without this warning`;
  if (opts.onWarning) return opts.onWarning(message);
  const proc = (globalThis as { process?: { emitWarning?: (m: string, o: { code: string }) => void } }).process;
  if (proc?.emitWarning) proc.emitWarning(message, { code: 'ARCHC_WEBGPU_CPU_ADAPTER' });
  else console.warn(message);
}

export function describeAdapter(a: GPUAdapter): string {
  const i = a.info;
  return [i.vendor, i.architecture, i.device, i.description].filter((x) => x).join(' ') || 'an unnamed adapter';
}

// GPUBufferUsage, GPUShaderStage and GPUMapMode flags as numbers: the globals exist only once a GPU is loaded
const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08, MAP_READ = 0x01, COMPUTE = 0x4, MAP_MODE_READ = 0x1;

/** Buffers laid out per batch (the arena and scratch), split as the plan says. */
type BatchRole = 'arena' | 'scratch0' | 'scratch1' | 'scratch2';

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  /** Every kernel that may read a quantised matrix has passes rendered for q8 and q4. */
  readonly quantFormats: readonly QuantDType[] = ['q8', 'q4'];
  private readonly weights = new Map<string, SplitBuffer>();
  /** The format of each weight uploaded (or joined) as codes. */
  readonly formats = new Map<string, QuantDType>();
  /** Host copies of the parts of expression-derived weights, and of quantised parts of a
   *  concatenation (joined on the host: the scales follow the codes), until those are made. */
  private readonly host = new Map<string, Tensor | QuantTensor>();
  private readonly read: Set<string>;
  private pending: DerivedWeight[];
  private readonly pipelines: Map<string, Pipeline>;
  /** The last bind group of each pass, reused while its buffers stay the same. */
  private readonly groups = new Map<BoundPass, { buffers: readonly GPUBuffer[]; group: GPUBindGroup }>();
  /** Each pass specialised to the split plan. */
  private readonly bound = new Map<Pass, BoundPass>();
  /** The places of every pass this backend may run (places.ts), written once. */
  private readonly places: PlaceBuffer;
  private encoder: GPUCommandEncoder | null = null;
  private lost: string | null = null;
  /** The integer inputs of the current batch. */
  private ints: GPUBuffer | null = null;
  /** The arena and scratch buffers, grown as batches need (contents kept only until they grow). */
  private readonly batchBuffers = new Map<BatchRole, SplitBuffer>();
  /** How every buffer is split over bindings on this device (split.ts). */
  readonly plan: SplitPlan;
  /** How products over q8/q4 weights read their input (SplitOptions.activations, runtime/act-quant.ts). */
  readonly activations: ActivationFormat;
  /** Dispatches since creation (bench: dispatches per step). */
  dispatches = 0;
  /** Pipelines this backend compiled (texts new to its device; layers of one shape share theirs). */
  pipelinesMade = 0;

  /** `owned`: the backend made the device and destroys it on dispose; `profile`: the rendering of
   *  the program it runs (`adapterProfile` of the device's adapter). The split of buffers over
   *  bindings is planned from `device.limits` (and `opts`) for that rendering; RT501 when the program
   *  does not fit. */
  constructor(readonly program: Program, readonly shaders: WgslProgram, readonly device: GPUDevice, readonly adapter: string, private readonly owned = false,
    opts: SplitOptions = {}, readonly profile: WgslProfile = 'gpu') {
    const { plan, problems } = planSplits(program, shaders, device.limits, opts, profile);
    if (problems.length) throw new RuntimeError('RT501', [adapter, listProblems(problems)]);
    this.plan = plan;
    this.activations = checkA8Passes(Object.values(shaders.profiles[profile]), opts.activations ?? 'f32');
    this.read = weightsRead(program.train ? { ...program.entries, train: program.train } : program.entries);
    this.pending = [...program.derived];
    this.pipelines = PIPELINES.get(device) ?? PIPELINES.set(device, new Map()).get(device)!;
    this.places = new PlaceBuffer(device, shaders, profile);
    void device.lost.then((info) => { this.lost = info.message || info.reason; });
  }

  /** Compiles every shader a model with its weights as stored runs, and throws RT503 with the source
   *  around the first error. (Pipelines are made on first use: a backend compiles only the passes a
   *  run takes, once per device.) The q8/q4 variants of the products are not compiled here, so a
   *  load pays for them only when its weights are quantised, when they are made as they are first
   *  run; the tests run them (test/webgpu/quant-kernels.test.ts, quant.test.ts). */
  async checkShaders(): Promise<void> {
    for (const [entry, e] of Object.entries(this.shaders.profiles[this.profile])) {
      for (const k of e.kernels) {
        for (const p of k.passes) {
          const { code } = this.specialised(p, entry as EntryName);
          if (this.pipelines.has(code)) continue;
          const problem = await shaderProblem(this.device, code);
          if (problem) throw new RuntimeError('RT503', [k.kernel, `${entry}, pass ${p.name}`, problem]);
        }
      }
    }
  }

  /** Pass `p` of `entry` as this device runs it (split buffers bound part by part). */
  specialised(p: Pass, entry: EntryName): BoundPass {
    let b = this.bound.get(p);
    if (!b) this.bound.set(p, b = specialise(p, this.plan, entry));
    return b;
  }

  private layout(p: BoundPass): GPUBindGroupLayout {
    return this.device.createBindGroupLayout({
      entries: [...p.bindings.map(({ kind }, i) => ({
        binding: i, visibility: COMPUTE,
        buffer: { type: writable(kind) ? 'storage' as const : 'read-only-storage' as const },
      })), ...placeLayout(p.pass, p.bindings.length)],
    });
  }

  /** The bind group of pass `p` over `buffers` (made once while they stay the same). */
  bindGroup(p: BoundPass, buffers: readonly GPUBuffer[]): GPUBindGroup {
    const have = this.groups.get(p);
    if (have && have.buffers.every((b, i) => b === buffers[i])) return have.group;
    const entries = [...buffers.map((buffer, i) => ({ binding: i, resource: { buffer } })), ...this.places.entries(p.pass, buffers.length)];
    const group = this.device.createBindGroup({ layout: this.pipeline(p).layout, entries });
    this.groups.set(p, { buffers, group });
    return group;
  }

  uploadWeight(w: ProgramWeight, t: HostWeight): void {
    this.alive();
    const exprParts = new Set(this.pending.filter((d) => d.from.kind === 'expr').flatMap(parts));
    const concatPart = this.pending.some((d) => d.from.kind === 'concat' && d.from.parts.includes(w.name));
    if (isQuant(t)) {
      if (exprParts.has(w.name)) fail(`weight ${w.name} is quantised but an expression-derived weight reads it`);
      if (concatPart) this.host.set(w.name, t);
      if (this.read.has(w.name)) this.weights.set(w.name, this.uploadQuant(w.name, t));
    } else {
      if (exprParts.has(w.name)) this.host.set(w.name, t);
      if (this.read.has(w.name) || concatPart) this.weights.set(w.name, this.upload(w.name, t));
    }
    const ready = this.pending.filter((d) => parts(d).every((p) => this.weights.has(p) || this.host.has(p)));
    if (!ready.length) return;
    this.pending = this.pending.filter((d) => !ready.includes(d));
    for (const d of ready) this.weights.set(d.name, this.derive(d));
    const needed = new Set(this.pending.flatMap(parts));
    for (const d of ready) {
      for (const p of parts(d)) {
        if (this.read.has(p) || needed.has(p)) continue;
        this.host.delete(p);
        const b = this.weights.get(p);
        if (b) { this.flush(); b.destroy(); this.weights.delete(p); }
      }
    }
  }

  complete(): boolean {
    return [...this.read].every((n) => this.weights.has(n));
  }

  /** Bytes of weights on the device. */
  weightBytes(): number {
    let n = 0;
    for (const b of this.weights.values()) n += b.deviceBytes();
    return n;
  }

  /** A weight's buffer (in the parts the plan cuts it into), sized for its dtype on the device. */
  private weightBuffer(name: string): SplitBuffer {
    const w = weightOf(this.program, name);
    const b = new SplitBuffer(this, `w:${name}`, this.plan.buffers.get(`w:${name}`) ?? fail(`no split planned for weight ${name}`));
    b.ensure(Math.max(4, weightDeviceBytes(w)), false);
    return b;
  }

  /** A q8/q4 weight as one buffer: the codes as stored (q8 four a u32, q4 eight), then the f16
   *  scales two a u32 (codegen/wgsl/shader.ts `quantReader` reads this layout). */
  private uploadQuant(name: string, q: QuantTensor): SplitBuffer {
    const kernels = Object.values(this.shaders.profiles[this.profile]).flatMap((e) => e.kernels);
    const readers = kernels.filter((k) => k.passes.some((p) => p.bindings.includes(`w:${name}`)));
    const lacking = readers.find((k) => k.quant?.weight !== name);
    if (lacking) fail(`kernel ${lacking.kernel} reads weight ${name}, which came as ${q.dtype}, but has no passes rendered for quantised weights`);
    const b = new SplitBuffer(this, `w:${name}`, this.plan.buffers.get(`w:${name}`) ?? fail(`no split planned for weight ${name}`));
    const bytes = quantWords(q);
    if (!b.ensure(bytes.byteLength, false)) fail(`weight ${name} as ${q.dtype} takes ${bytes.byteLength} bytes, more than planned`);
    this.flush();
    b.write(0, bytes);
    this.formats.set(name, q.dtype);
    return b;
  }

  /** The passes of kernel `k` for the weights uploaded and the activations (runtime/webgpu/quant.ts). */
  passesOf(k: KernelShaders): readonly Pass[] {
    return quantPasses(k, k.quant && this.formats.get(k.quant.weight), this.activations);
  }


  private upload(name: string, t: Tensor): SplitBuffer {
    const b = this.weightBuffer(name);
    let bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (bytes.byteLength % 4) { const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4); padded.set(bytes); bytes = padded; }
    this.flush();
    b.write(0, bytes);
    return b;
  }

  private derive(d: DerivedWeight): SplitBuffer {
    if (d.from.kind === 'concat' && d.from.parts.some((p) => this.formats.has(p) || isQuantHost(this.host.get(p)))) {
      // quantised parts (one format: runtime/quantplan.ts) are joined on the host, codes then scales
      const qs = d.from.parts.map((p) => this.host.get(p));
      if (!qs.every(isQuantHost)) fail(`derived weight ${d.name} joins quantised and float parts`);
      return this.uploadQuant(d.name, concatQuant(qs));
    }
    if (d.from.kind === 'concat') {
      const sizes = d.from.parts.map((p) => weightBytesOf(this.program, p));
      if (sizes.some((s, i) => i < sizes.length - 1 && s % 4 !== 0)) fail(`derived weight ${d.name}: a part of an odd number of 16-bit values cannot be joined on the device`);
      const out = this.weightBuffer(d.name);
      let at = 0;
      d.from.parts.forEach((p, i) => { out.copyFrom(this.weights.get(p)!, 0, at, Math.ceil(sizes[i]! / 4) * 4); at += sizes[i]!; });
      return out;
    }
    const n = d.shape.reduce((a, b) => a * b, 1);
    const fn = compileExpr(d.from.body, { weight: (w) => { const t = this.host.get(w); return toF32(t && !isQuant(t) ? t : fail(`derived weight ${d.name} needs ${w} on the host, as floats`)); } });
    const data = new Float32Array(n);
    for (let j = 0; j < n; j++) data[j] = fn(0, j);
    return this.upload(d.name, { dtype: 'f32', shape: d.shape, data });
  }

  weight(name: string): SplitBuffer {
    return this.weights.get(name) ?? fail(`weight ${name} was not loaded`);
  }

  /** The encoder work is recorded into until the next submit. */
  commands(): GPUCommandEncoder {
    this.alive();
    return this.encoder ??= this.device.createCommandEncoder();
  }

  /** Submits recorded work. */
  flush(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
  }

  alive(): void {
    if (this.lost !== null) throw new RuntimeError('RT502', [this.lost]);
  }

  /** The integer buffer, holding at least `bytes` (contents kept only until it grows). */
  intsBuffer(bytes: number): GPUBuffer {
    if (this.ints && this.ints.size >= bytes) return this.ints;
    if (this.ints) { this.flush(); this.ints.destroy(); }
    return this.ints = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: STORAGE | COPY_SRC | COPY_DST });
  }

  /** The arena or a scratch buffer (in the parts the plan cuts it into). */
  batchBuffer(role: BatchRole): SplitBuffer {
    let b = this.batchBuffers.get(role);
    if (!b) this.batchBuffers.set(role, b = new SplitBuffer(this, role, this.plan.buffers.get(role)!));
    return b;
  }

  pipeline(p: BoundPass): Pipeline {
    let made = this.pipelines.get(p.code);
    if (!made) {
      const layout = this.layout(p);
      const module = this.device.createShaderModule({ code: p.code });
      const pipeline = this.device.createComputePipeline({ layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: 'main' } });
      made = { pipeline, layout };
      this.pipelines.set(p.code, made);
      this.pipelinesMade++;
    }
    return made;
  }

  /** `bytes` bytes (a multiple of 4) of `buffer` from `offset`, once the work submitted so far has run. */
  async readBytes(buffer: SplitBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: MAP_READ | COPY_DST });
    const enc = this.commands();
    for (const r of buffer.ranges(offset, bytes)) enc.copyBufferToBuffer(r.buffer, r.offset, staging, r.from, r.bytes);
    this.flush();
    try {
      await staging.mapAsync(MAP_MODE_READ);
    } catch (e) {
      this.alive();
      throw e;
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return out;
  }

  /** State pools not yet disposed (the model's own, and any a run is using). */
  readonly pools = new Set<WebGpuStatePool>();

  createStatePool(capacity: number): StatePool {
    const pool = new WebGpuStatePool(this, capacity);
    this.pools.add(pool);
    return pool;
  }

  begin(entry: Entry, batch: RunBatch, pool: StatePool): Invocation {
    if (!(pool instanceof WebGpuStatePool)) fail('the state pool was not made by the WebGPU backend');
    const name = (Object.keys(this.program.entries) as EntryName[]).find((n) => this.program.entries[n] === entry);
    const shaders = name ? this.shaders.profiles[this.profile][name] : undefined;
    if (!name || !shaders) fail('the entry is not one of the program\'s');
    return new WebGpuInvocation(this, entry, name, shaders.kernels, shaders.chunk, batch, pool);
  }

  dispose(): void {
    this.flush();
    for (const b of this.weights.values()) b.destroy();
    this.weights.clear();
    for (const b of this.batchBuffers.values()) b.destroy();
    this.ints?.destroy();
    for (const p of [...this.pools]) p.dispose();
    this.places.destroy();
    if (this.owned) this.device.destroy();
  }
}

interface Pipeline {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** Compute pipelines by shader text, per device: kept across runs, and across models on one device. */
const PIPELINES = new WeakMap<GPUDevice, Map<string, Pipeline>>();
const isQuantHost = (t: Tensor | QuantTensor | undefined): t is QuantTensor => !!t && isQuant(t);

function weightOf(program: Program, name: string): ProgramWeight | DerivedWeight {
  return [...program.weights, ...program.derived].find((x) => x.name === name) ?? fail(`no weight ${name}`);
}

function weightBytesOf(program: Program, name: string): number {
  const w = weightOf(program, name);
  const n = w.shape.reduce((a, b) => a * b, 1);
  return w.dtype === 'f32' ? 4 * n : 2 * n;
}

const parts = (d: DerivedWeight): readonly string[] =>
  d.from.kind === 'concat' ? d.from.parts : exprLeaves(d.from.body).flatMap((l) => (l.op === 'w' ? [l.name] : []));

class WebGpuInvocation implements Invocation {
  private readonly T: number;
  private readonly S: number;
  private readonly chunks: number;
  private readonly next: Map<Kernel, { kernel: string; passes: readonly Pass[] }>;

  constructor(private readonly gpu: WebGpuBackend, private readonly entry: Entry, private readonly entryName: EntryName, kernels: readonly { kernel: string; passes: readonly Pass[] }[],
    chunk: number, batch: RunBatch, private readonly pool: WebGpuStatePool) {
    this.T = batch.tokens.length;
    this.S = batch.seqs.length;
    this.next = new Map(entry.kernels.map((k, i) => [k, { kernel: kernels[i]!.kernel, passes: gpu.passesOf(kernels[i]!) }]));
    const { ints, chunks } = batchInts(gpu, batch, pool.capacity, chunk);
    this.chunks = chunks;
    gpu.flush();
    const what = `a batch of ${this.T} tokens, ${this.S} sequences`;
    if (ints.byteLength > gpu.plan.partLimit) throw new RuntimeError('RT505', [`${what}: the integer inputs`, ints.byteLength, gpu.plan.partLimit, 'run fewer tokens at once']);
    gpu.device.queue.writeBuffer(gpu.intsBuffer(ints.byteLength), 0, ints);
    // the arena, and scratch buffers as large as the entry's passes need for this batch
    const need: Partial<Record<BatchRole, number>> = { arena: 4 * (entry.arena.T * this.T + entry.arena.S * this.S) };
    for (const k of this.next.values()) {
      for (const p of k.passes) for (const [role, c] of Object.entries(p.scratch ?? {})) need[role as BatchRole] = Math.max(need[role as BatchRole] ?? 0, this.count(c!) * 4);
    }
    for (const [role, bytes] of Object.entries(need) as [BatchRole, number][]) {
      const b = gpu.batchBuffer(role);
      const parts = partsOf(gpu.plan, role, entryName);
      if (bytes > parts * b.split.partBytes) {
        const { maxBatchTokens: t, maxBatchSequences: s } = gpu.plan;
        throw new RuntimeError('RT505', [`${what}: ${bufferName(role)}`, bytes, parts * b.split.partBytes,
          b.split.parts > 1 ? `planned for ${t} tokens and ${s} sequences: load with a larger webgpu.maxBatchTokens or webgpu.maxBatchSequences, or run fewer at once` : 'run fewer tokens at once']);
      }
      b.ensure(bytes, false);
    }
  }

  private n(rows: RunCount['rows']): number {
    return rows === 'T' ? this.T : rows === 'S' ? this.S : rows === 'C' ? 1 : this.chunks;
  }

  private count(c: RunCount): number {
    return Math.ceil((this.n(c.rows) * c.times) / c.per);
  }

  dispatch(k: Kernel): void {
    const shaders = this.next.get(k) ?? fail(`${k.name} is not a kernel of this entry`);
    recordPasses(this.gpu, shaders.passes, (r) => this.n(r), (p) => this.gpu.specialised(p, this.entryName), (b) => this.bound(b.kind, b.part));
  }

  private bound(b: BindingKind, part: number): GPUBuffer {
    if (b.startsWith('w:')) return this.gpu.weight(b.slice(2)).part(part);
    if (b === 'state') return this.pool.buffer().part(part);
    if (b === 'ints') return this.gpu.intsBuffer(16);
    return this.gpu.batchBuffer(b as BatchRole).part(part);
  }

  private place(v: View): { base: number; stride: number; rows: number } {
    const b = this.entry.buffers[v.buf] ?? fail(`view of buffer ${v.buf}, which the entry does not have`);
    const rows = b.rows === 'T' ? this.T : b.rows === 'S' ? this.S : 1;
    const base = b.rows === 'T' ? b.offset * this.T : this.entry.arena.T * this.T + b.offset * this.S;
    return { base, stride: b.width, rows };
  }

  write(v: View, data: Float32Array): void {
    const { base, stride, rows } = this.place(v);
    if (data.length !== rows * v.width) fail(`writing ${data.length} floats into a view of ${rows} x ${v.width}`);
    this.gpu.flush();
    const arena = this.gpu.batchBuffer('arena');
    if (v.col === 0 && v.width === stride) arena.write(4 * base, data);
    else for (let r = 0; r < rows; r++) arena.write(4 * (base + r * stride + v.col), data.subarray(r * v.width, (r + 1) * v.width));
  }

  read(): Float32Array {
    throw new RuntimeError('RT504', ['webgpu', 'readAsync (or runEntryAsync, Model.forwardAsync / stepAsync / decodeAsync)']);
  }

  async readAsync(v: View): Promise<Float32Array> {
    const { base, stride, rows } = this.place(v);
    const all = await this.gpu.readBytes(this.gpu.batchBuffer('arena'), 4 * base, 4 * rows * stride);
    return viewColumns(new Float32Array(all), rows, stride, v);
  }
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}

export { WebGpuStatePool };
