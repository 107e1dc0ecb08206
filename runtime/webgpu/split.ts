// Buffers larger than one storage binding, split into parts that a shader binds separately.
//
// The compiler renders every pass with one binding per buffer (codegen/wgsl: the arena, the integer
// inputs, the state pool, scratch buffers, one per weight), each read and written through its
// accessors. At load the backend plans, from the limits of the device it obtained, which buffers
// exceed a binding (maxStorageBufferBindingSize, maxBufferSize) and into how many parts each is cut,
// and lays out each pass's binding region accordingly (shaders.ts `bindingRegion`: a split buffer
// is declared once per part and its accessors pick the part by compares against the part
// boundaries). The shader text around the region is the renderer's, unread and unchanged.
//
// Where a part boundary falls: a weight's parts hold whole rows of its first dimension (a product's
// lanes over one output column all take the same branch); the state pool's parts hold whole slots
// when a slot fits a binding (one sequence's states never straddle parts); the arena and scratch
// buffers are laid out per batch (offsets scale with the token count), so their parts are cut at the
// binding limit and a row may straddle two. Buffers sized per batch get a fixed number of parts,
// planned for `maxBatchTokens` tokens (the arena, scratch) and `stateSlots` slots (the state pool):
// a shader's bindings cannot change after it is made; a batch or pool beyond them is RT505.

import { RuntimeError } from '../errors.ts';
import type { EntryName, Program } from '../program.ts';
import { slotLayout } from '../program.ts';
import type { SplitOptions } from './options.ts';
import { rotaryWords } from './rotary.ts';
import { CHUNK_FIELDS, SEQ_FIELDS, WHOLE, allPasses, shaderCode, type BindingKind, type BindingLayout, type Pass, type RunCount, type WgslEntry, type WgslProfile, type WgslProgram } from './shaders.ts';

export type { SplitOptions };
/** The integer buffer's rotary table, whose words `intsWords` counts. */
export { fillRotary } from './rotary.ts';

/** The device limits a split is planned against. */
export interface BindingLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxStorageBuffersPerShaderStage: number;
}

/** How one buffer is cut: `parts` parts of `partBytes` each (the last may hold less). One part:
 *  not split, `partBytes` is then the most it may grow to. */
export interface BufferSplit {
  readonly parts: number;
  readonly partBytes: number;
  /** Bytes planned for (a weight's size; the arena at maxBatchTokens; the pool at stateSlots). */
  readonly bytes: number;
}

export interface SplitPlan {
  /** The most bytes one part holds: the binding limit rounded down to 16. */
  readonly partLimit: number;
  readonly maxBatchTokens: number;
  readonly maxBatchSequences: number;
  readonly stateSlots: number;
  /** Bytes of one state slot at the model's context (the pool's parts hold whole ones). */
  readonly slotBytes: number;
  /** Every buffer a pass may bind, by binding kind ('ints' is never split); for the arena and
   *  scratch buffers, the most parts any entry binds. */
  readonly buffers: ReadonlyMap<BindingKind, BufferSplit>;
  /** The parts of the arena and scratch buffers each entry's passes bind (their sizes differ by
   *  entry: a forward holds logits for every token, a decode step a few rows). */
  readonly entries: Readonly<Record<EntryName, ReadonlyMap<BindingKind, number>>>;
}

/** Buffers laid out per batch, whose parts are planned per entry. */
export const BATCH_BUFFERS = ['arena', 'scratch0', 'scratch1', 'scratch2'] as const;

const ceil16 = (n: number) => Math.ceil(n / 16) * 16;
const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
/** Elements an index of a part may reach: the WGSL accessors compare u32 element indices. */
const MAX_ELEMENTS = 2 ** 32;

/** Bytes of a weight on the device (bf16/f16 two per u32). */
export function weightDeviceBytes(w: { shape: readonly number[]; dtype: string }): number {
  const n = product(w.shape);
  return 4 * Math.ceil((w.dtype === 'f32' ? 4 * n : 2 * n) / 4);
}

/** Words of the integer buffer for a batch of T tokens, S sequences and `chunks` SSD chunks (the
 *  rotary table last: a row per token). */
export function intsWords(shaders: WgslProgram, T: number, S: number, chunks: number): number {
  return shaders.header + 3 * T + SEQ_FIELDS * S + CHUNK_FIELDS * chunks + T * rotaryWords(shaders.rotary);
}

function splitOf(bytes: number, partLimit: number, rowBytes = 0): BufferSplit {
  if (bytes <= partLimit) return { parts: 1, partBytes: partLimit, bytes };
  const partBytes = rowBytes > 0 && rowBytes % 4 === 0 && rowBytes <= partLimit ? Math.floor(partLimit / rowBytes) * rowBytes : partLimit;
  return { parts: Math.ceil(bytes / partBytes), partBytes, bytes };
}

/** The split of every buffer of `program` on a device with `limits`, and what does not fit, for the
 *  shaders of rendering `profile`. */
export function planSplits(program: Program, shaders: WgslProgram, limits: BindingLimits, opts: SplitOptions = {},
  profile: WgslProfile = 'gpu'): { plan: SplitPlan; problems: string[] } {
  const rendered = shaders.profiles[profile];
  const problems: string[] = [];
  const bindingBytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize, opts.maxBindingBytes ?? Infinity);
  const partLimit = Math.floor(bindingBytes / 16) * 16;
  const ctx = program.params.context;
  const maxT = opts.maxBatchTokens ?? (typeof ctx === 'number' ? ctx : 4096);
  const stateSlots = opts.stateSlots ?? 8;
  const maxS = opts.maxBatchSequences ?? Math.min(stateSlots, maxT);
  const capacity = opts.capacity ?? (typeof ctx === 'number' ? ctx : 4096);
  for (const [k, v] of [['maxBatchTokens', maxT], ['maxBatchSequences', maxS], ['stateSlots', stateSlots], ['capacity', capacity]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RuntimeError('RT303', [`webgpu.${k} ${v}`, 'give a positive integer']);
  }
  if (partLimit < 16) throw new RuntimeError('RT303', [`webgpu.maxBindingBytes ${opts.maxBindingBytes}`, 'give at least 16 bytes']);
  const buffers = new Map<BindingKind, BufferSplit>();
  for (const w of [...program.weights, ...program.derived]) {
    const bytes = weightDeviceBytes(w);
    const raw = (w.dtype === 'f32' ? 4 : 2) * product(w.shape);
    buffers.set(`w:${w.name}`, splitOf(bytes, partLimit, w.shape.length >= 2 ? raw / w.shape[0]! : 0));
  }
  // buffers laid out per batch, per entry, at maxBatchTokens tokens and maxBatchSequences sequences
  // (a decode step has one token per sequence; a batch of S sequences of T tokens in all has at
  // most T/chunk + S SSD chunks, and never more than T)
  const entries = {} as Record<EntryName, Map<BindingKind, number>>;
  const most = new Map<BindingKind, number>(BATCH_BUFFERS.map((b) => [b, 0]));
  for (const [name, e] of Object.entries(program.entries) as [EntryName, Program['entries'][EntryName]][]) {
    const T = name === 'decode' ? maxS : maxT;
    const Q = rendered[name].chunk;
    const rows = { T, S: maxS, C: 1, chunks: Q ? Math.min(T, Math.ceil(T / Q) + maxS) : 0 };
    const n = (c: RunCount) => Math.ceil((rows[c.rows] * c.times) / c.per);
    const bytes = new Map<BindingKind, number>([['arena', 4 * (e.arena.T * T + e.arena.S * maxS)]]);
    for (const k of rendered[name].kernels) {
      for (const p of allPasses(k, opts.activations === 'q8')) for (const [role, c] of Object.entries(p.scratch ?? {})) bytes.set(role as BindingKind, Math.max(bytes.get(role as BindingKind) ?? 0, 4 * n(c!)));
    }
    entries[name] = new Map(BATCH_BUFFERS.map((b) => [b, splitOf(bytes.get(b) ?? 0, partLimit).parts]));
    for (const b of BATCH_BUFFERS) most.set(b, Math.max(most.get(b)!, bytes.get(b) ?? 0));
  }
  for (const b of BATCH_BUFFERS) buffers.set(b, splitOf(most.get(b)!, partLimit));
  const ints = 4 * intsWords(shaders, maxT, maxS, maxT);
  if (ints > partLimit) problems.push(`the integer inputs of a batch of ${maxT} tokens take ${ints} bytes; one binding holds at most ${partLimit} (lower webgpu.maxBatchTokens)`);
  buffers.set('ints', { parts: 1, partBytes: partLimit, bytes: ints });
  const slotBytes = 4 * slotLayout(program.states, capacity).floats;
  buffers.set('state', splitOf(slotBytes * stateSlots, partLimit, slotBytes));
  for (const [kind, s] of buffers) {
    if (s.parts > 1 && s.parts * s.partBytes / 4 > MAX_ELEMENTS) problems.push(`${bufferName(kind)} takes ${s.bytes} bytes; a shader indexes at most 2^32 elements of it`);
  }
  const plan: SplitPlan = { partLimit, maxBatchTokens: maxT, maxBatchSequences: maxS, stateSlots, slotBytes, buffers, entries };
  problems.push(...bindingProblems(rendered, plan, limits.maxStorageBuffersPerShaderStage, opts.activations === 'q8'));
  return { plan, problems };
}

/** What a binding kind is, in words. */
export function bufferName(kind: BindingKind): string {
  return kind.startsWith('w:') ? `weight ${kind.slice(2)}` : kind === 'state' ? 'the state pool' : kind === 'ints' ? 'the integer inputs' : `the ${kind}`;
}

/** The parts of buffer `kind` that the passes of `entry` bind. */
export function partsOf(plan: SplitPlan, kind: BindingKind, entry: EntryName): number {
  return plan.entries[entry].get(kind) ?? plan.buffers.get(kind)?.parts ?? 1;
}

/** Passes that would bind more storage buffers than a shader stage may, naming the kernel, the pass
 *  and the buffers that split. */
function bindingProblems(rendered: Readonly<Record<EntryName, WgslEntry>>, plan: SplitPlan, allowed: number, a8: boolean): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const [entry, e] of Object.entries(rendered) as [EntryName, WgslEntry][]) {
    for (const k of e.kernels) {
      for (const p of allPasses(k, a8)) {
        const parts = (b: BindingKind) => partsOf(plan, b, entry);
        const n = p.bindings.reduce((s, b) => s + parts(b), 0);
        if (n <= allowed || seen.has(`${k.kernel}/${p.name}`)) continue;
        seen.add(`${k.kernel}/${p.name}`);
        const split = p.bindings.filter((b) => parts(b) > 1).map((b) => `${bufferName(b)} in ${parts(b)} parts of ${plan.buffers.get(b)!.partBytes} bytes`);
        out.push(`kernel ${k.kernel} (${entry}, pass ${p.name}) binds ${n} storage buffers (${p.bindings.length} buffers${split.length ? `; ${split.join(', ')}` : ''}); the adapter allows ${allowed} per shader stage`);
      }
    }
  }
  return out;
}

/** A pass as a device runs it: its code for the plan and what each binding holds. */
export interface BoundPass {
  readonly pass: Pass;
  readonly code: string;
  readonly bindings: readonly { readonly kind: BindingKind; readonly part: number }[];
}

/** `pass` (of `entry`) for `plan`: its binding region laid out as the plan cuts each buffer (whole,
 *  or parts of `partBytes / 4` elements; shaders.ts `bindingRegion`), the parts of binding i bound
 *  in order from `@binding` i's place on. */
export function specialise(pass: Pass, plan: SplitPlan, entry: EntryName): BoundPass {
  const layouts = pass.bindings.map((kind): BindingLayout => {
    const parts = partsOf(plan, kind, entry);
    return parts === 1 ? WHOLE : { parts, per: plan.buffers.get(kind)!.partBytes / 4 };
  });
  const bindings = pass.bindings.flatMap((kind, i) => Array.from({ length: layouts[i]!.parts }, (_, part) => ({ kind, part })));
  return { pass, code: shaderCode(pass, layouts), bindings };
}

// GPUBufferUsage flags as numbers: the globals exist only once a GPU is loaded
const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08;

/** What a split buffer needs of its backend: the device, and the encoder work is recorded into. */
export interface Recorder {
  readonly device: GPUDevice;
  commands(): GPUCommandEncoder;
  flush(): void;
}

/** One contiguous range of a split buffer within one part. */
export interface PartRange {
  readonly buffer: GPUBuffer;
  /** Byte offset inside the part. */
  readonly offset: number;
  readonly bytes: number;
  /** Byte offset of the range from the start of the requested span. */
  readonly from: number;
}

/** A buffer as `split.parts` GPU buffers, part i holding bytes [i · partBytes, (i + 1) · partBytes),
 *  allocated as far as `bytes` reaches (grown on demand; a part not yet needed is bound as a small
 *  buffer of its own, since two writable bindings may not share one). */
export class SplitBuffer {
  private readonly parts: (GPUBuffer | null)[];
  private readonly empty: (GPUBuffer | null)[];
  /** Bytes the parts hold now. */
  bytes = 0;

  constructor(private readonly gpu: Recorder, readonly kind: BindingKind, readonly split: BufferSplit) {
    this.parts = Array.from({ length: split.parts }, () => null);
    this.empty = Array.from({ length: split.parts }, () => null);
  }

  /** The most bytes this buffer can hold. */
  get capacity(): number {
    return this.split.parts * this.split.partBytes;
  }

  /** Grows the parts to hold `bytes` (false when more than `capacity`); contents are kept when `keep`. */
  ensure(bytes: number, keep: boolean): boolean {
    if (bytes <= this.bytes) return true;
    if (bytes > this.capacity) return false;
    const { partBytes } = this.split;
    for (let i = 0; i < this.parts.length; i++) {
      const need = Math.min(partBytes, bytes - i * partBytes);
      if (need <= 0) break;
      const have = this.parts[i];
      if (have && have.size >= need) continue;
      const b = this.gpu.device.createBuffer({ size: Math.max(16, Math.min(ceil16(need), ceil16(partBytes))), usage: STORAGE | COPY_SRC | COPY_DST });
      if (have) {
        if (keep) this.gpu.commands().copyBufferToBuffer(have, 0, b, 0, have.size);
        this.gpu.flush();
        have.destroy();
      }
      this.parts[i] = b;
    }
    this.bytes = bytes;
    return true;
  }

  /** The buffer bound as part `i`. */
  part(i: number): GPUBuffer {
    return this.parts[i] ?? (this.empty[i] ??= this.gpu.device.createBuffer({ size: 16, usage: STORAGE }));
  }

  /** The parts' ranges covering bytes [offset, offset + bytes). */
  ranges(offset: number, bytes: number): PartRange[] {
    const out: PartRange[] = [];
    const { partBytes } = this.split;
    for (let at = offset; at < offset + bytes;) {
      const i = Math.floor(at / partBytes);
      const inside = at - i * partBytes;
      const n = Math.min(partBytes - inside, offset + bytes - at);
      out.push({ buffer: this.parts[i] ?? fail(`${bufferName(this.kind)}: part ${i} is not allocated`), offset: inside, bytes: n, from: at - offset });
      at += n;
    }
    return out;
  }

  /** Writes `data` at byte `offset` (through the queue). */
  write(offset: number, data: ArrayBufferView): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    for (const r of this.ranges(offset, bytes.byteLength)) this.gpu.device.queue.writeBuffer(r.buffer, r.offset, bytes as Uint8Array<ArrayBuffer>, r.from, r.bytes);
  }

  /** Records a copy of `bytes` from `src` at `srcOffset` to this buffer at `offset`. */
  copyFrom(src: SplitBuffer, srcOffset: number, offset: number, bytes: number): void {
    const enc = this.gpu.commands();
    for (const r of src.ranges(srcOffset, bytes)) {
      for (const d of this.ranges(offset + r.from, r.bytes)) enc.copyBufferToBuffer(r.buffer, r.offset + d.from, d.buffer, d.offset, d.bytes);
    }
  }

  /** Records a clear of bytes [offset, offset + bytes). */
  clear(offset: number, bytes: number): void {
    const enc = this.gpu.commands();
    for (const r of this.ranges(offset, bytes)) enc.clearBuffer(r.buffer, r.offset, r.bytes);
  }

  /** Bytes on the device. */
  deviceBytes(): number {
    return this.parts.reduce((s, b) => s + (b?.size ?? 0), 0);
  }

  destroy(): void {
    for (const b of [...this.parts, ...this.empty]) b?.destroy();
    this.parts.fill(null);
    this.empty.fill(null);
    this.bytes = 0;
  }
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
