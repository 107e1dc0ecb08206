// The `wasm` target's per-program module at run time: its calling convention (shared with the
// renderer, codegen/wasm/program.ts), a small heap in the shared memory (the arena, state slots,
// per-run tables and kernel scratch live there, so the rendered kernels and the products read and
// write activations in place), and the state pool whose slots are in that memory.
//
// Calling convention: every rendered function takes i32 arguments
//   (T, S, seq, rows, scr, ldy, y0, u0, u1, a0, a1, …)
// T, S: the batch's rows; seq: byte address of [S][3] i32 (first row, row count, slot address) per
// sequence, then [S] i32 (the tokens each sequence held before the run: its KV caches' rows), then
// one i32 (the slots' capacity in tokens); rows: the kernel's input rows (family-specific, see `rowsOf`); scr: the kernel's scratch
// (laid out by `scratchPlan`, then y0); ldy, y0: where a matrix product left its result (floats per
// row, byte address); u0, u1: the units of the kernel this call computes (`unitsOf`: rows, heads or
// KV heads; [0, ALL) for all of them), so that threads can share a kernel, each unit computed by the
// same code whichever thread takes it (runtime/wasm/split.ts); then `kernelArgs(k)` in order: a buffer's byte address in the arena, a weight's
// f32 copy, a state's byte offset in a slot, a rotary table ([T][R/2] cos, then [T][R/2] sin, f64),
// the run's token ids or positions ([T] i32).
// Sizes, columns and row strides are constants in the code, so the kernels that differ only in
// where their memory is (the same layer at every depth) are one function.

import { RuntimeError } from '../errors.ts';
import { STATE_READ_TAIL } from './layout.ts';
import { type Entry, type EntryName, type Expr, type Kernel, type Program, isView, slotLayout } from '../program.ts';
import { exprLeaves } from '../expr.ts';
import { CpuStatePool } from '../cpu/backend.ts';
import type { SsdGlue } from './ssd.ts';
import type { AttnGlue } from './attention.ts';
import { ProgramCalls, type Wake } from './split.ts';

export type Arg =
  | { readonly kind: 'buf'; readonly buf: number }
  | { readonly kind: 'weight'; readonly name: string }
  | { readonly kind: 'state'; readonly index: number }
  | { readonly kind: 'rope'; readonly rotaryDim: number; readonly theta: number }
  | { readonly kind: 'ids'; readonly input: 'tokens' | 'positions' };

/** Leading arguments of every rendered function. */
export const FIXED = ['T', 'S', 'seq', 'rows', 'scr', 'ldy', 'y0', 'u0', 'u1'] as const;
/** u1 for a call over every unit. */
export const ALL = 0x7fffffff;

/**
 * What units a kernel's functions split into (u0, u1): 'row', its rows (a matmul's prologue and
 * epilogue, norms of whole rows, elementwise maps, embeddings: each row apart); 'head', the SSD
 * step's heads (of every sequence); 'kv', the one-token attention's KV heads (each appends its own
 * columns of the cache and computes its query heads); 'quad', a conv's channels by fours (each
 * channel's rows, state and epilogue apart: with no pre and an epilogue of maps that read their own
 * column only); 'whole' (called once, over [0, ALL)).
 * 'head' and 'kv' functions read their scratch (scr) as their own: each thread passes its own.
 */
export function unitsOf(k: Kernel): 'row' | 'head' | 'kv' | 'quad' | 'whole' {
  switch (k.family) {
    case 'matmul': case 'elementwise': case 'embedding': return 'row';
    case 'norm': return k.sizes.W === k.sizes.D ? 'row' : 'whole';
    case 'conv': return Object.keys(k.pre ?? {}).length === 0 && (k.epilogue ?? []).every((e) => e.kind === 'map' && e.width === k.sizes.C
      && exprLeaves(e.body).every((l) => l.op !== 'x' || !l.offset)) ? 'quad' : 'whole';
    case 'ssd_step': return 'head';
    case 'attention_decode': return 'kv';
    default: return 'whole';
  }
}

/** The export of kernel `index` of entry `entry` for one of its stages. */
export const exportName = (entry: EntryName, index: number, stage: 'run' | 'pre' | 'post') => `${entry}.${index}.${stage}`;

const key = (a: Arg) => (a.kind === 'buf' ? `b${a.buf}` : a.kind === 'weight' ? `w:${a.name}` : a.kind === 'state' ? `s${a.index}` : a.kind === 'ids' ? `i:${a.input}` : `r${a.rotaryDim}:${a.theta}`);

/** The kernel-specific arguments of `k`'s functions, in order (each once). */
export function kernelArgs(k: Kernel): Arg[] {
  const out = new Map<string, Arg>();
  const put = (a: Arg) => { if (!out.has(key(a))) out.set(key(a), a); };
  const exprWeights = (e: Expr | undefined) => { if (e) for (const l of exprLeaves(e)) if (l.op === 'w') put({ kind: 'weight', name: l.name }); };
  for (const name of Object.keys(k.inputs).sort()) {
    const o = k.inputs[name]!;
    if (isView(o)) put({ kind: 'buf', buf: o.buf });
  }
  for (const name of Object.keys(k.outputs).sort()) put({ kind: 'buf', buf: k.outputs[name]!.buf });
  for (const name of Object.keys(k.inputs).sort()) {
    const o = k.inputs[name]!;
    if ('weight' in o && !(k.family === 'matmul' && name === 'w')) put({ kind: 'weight', name: o.weight });
  }
  exprWeights(k.body);
  for (const name of Object.keys(k.pre ?? {}).sort()) exprWeights(k.pre![name]);
  for (const p of k.prologue ?? []) {
    if (p.kind !== 'gather_last') put({ kind: 'weight', name: p.weight });
    if (p.kind === 'layernorm' && p.bias) put({ kind: 'weight', name: p.bias });
  }
  for (const s of k.epilogue ?? []) {
    if (s.kind === 'map') exprWeights(s.body);
    if (s.kind === 'conv_step') { put({ kind: 'weight', name: s.weight }); if (s.bias) put({ kind: 'weight', name: s.bias }); exprWeights(s.post); }
  }
  if (k.state !== undefined) put({ kind: 'state', index: k.state });
  for (const s of k.epilogue ?? []) {
    if (s.kind === 'conv_step') put({ kind: 'state', index: s.state });
    if (s.kind === 'rope') put({ kind: 'rope', rotaryDim: s.rotaryDim, theta: s.theta });
  }
  if (k.family === 'rope') put({ kind: 'rope', rotaryDim: k.sizes.R, theta: k.attrs.theta as number });
  const ids = k.inputs.ids;
  if (k.family === 'embedding' && ids && 'input' in ids) put({ kind: 'ids', input: ids.input });
  return [...out.values()];
}

/** Scratch arrays of a kernel, in order, each `rows` rows of `perRow` floats (a multiple of 4);
 *  a matrix product's result y0 follows them. */
export function scratchPlan(k: Kernel): { name: string; perRow: number }[] {
  const plan: { name: string; perRow: number }[] = [];
  const add = (name: string, floats: number) => plan.push({ name, perRow: Math.ceil(floats / 4) * 4 });
  const views = Object.entries(k.inputs).filter(([, o]) => isView(o)) as [string, { width: number }][];
  if (k.family === 'matmul' && (k.prologue?.length || k.pre?.x)) add('x', k.sizes.K);
  // operands whose `pre` the SSDs, the conv and the routing families read materialised first
  if (k.family === 'ssd' || k.family === 'ssd_step' || k.family === 'conv' || k.family === 'conv_step' || k.family === 'softmax' || k.family === 'topk' || k.family === 'gather' || k.family === 'scatter') {
    for (const [name, o] of views.sort((a, b) => (a[0] < b[0] ? -1 : 1))) if (k.pre?.[name]) add(`pre:${name}`, o.width);
  }
  // a softmax part's exponentials in f64, per row
  if (k.family === 'softmax') add('exp', 2 * k.sizes.D);
  const maps = (k.epilogue ?? []).filter((s) => s.kind === 'map');
  const widest = Math.max(0, ...maps.map((s) => s.width));
  const bias = k.family === 'matmul' && k.inputs.b ? 1 : 0;
  if (maps.length + bias >= 2) add('y1', Math.max(widest, k.family === 'matmul' ? k.sizes.N : 0));
  if (maps.length + bias >= 3) add('y2', Math.max(widest, k.family === 'matmul' ? k.sizes.N : 0));
  if ((k.family === 'conv' || k.family === 'conv_step') && k.epilogue?.length) add('y0', k.sizes.C);
  return plan;
}

/** The `rows` argument: the rows the kernel reads (a norm over [T, heads, D] counts buffer rows). */
export function rowsOf(k: Kernel, rows: (v: { buf: number }) => number): number {
  switch (k.family) {
    case 'elementwise': return rows(k.outputs.y!);
    default: {
      const x = k.inputs.x;
      return x && isView(x) ? rows(x) : rows(k.outputs.y!);
    }
  }
}

/** A fingerprint of the program's entries (FNV-1a over their JSON): the module and the program it
 *  is loaded with must be the same. */
export function programHash(p: Program): number {
  // what the module's code depends on: the kernels and states
  const text = JSON.stringify([p.entries, p.states]);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** First-fit blocks over an allocator that never frees (the kernels' memory): freed blocks are
 *  reused for requests they hold. */
export class Heap {
  private readonly free: { at: number; bytes: number }[] = [];
  constructor(private readonly grow: (bytes: number) => number) {}

  alloc(bytes: number): { at: number; bytes: number } {
    const i = this.free.findIndex((b) => b.bytes >= bytes);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    const size = Math.ceil(bytes / 64) * 64;
    return { at: this.grow(size), bytes: size };
  }

  release(b: { at: number; bytes: number }): void {
    this.free.push(b);
    this.free.sort((x, y) => x.bytes - y.bytes);
  }
}

type Fn = (...args: number[]) => void;

/** One kernel's rendered functions and arguments. */
export interface Rendered {
  readonly run?: Fn;
  readonly pre?: Fn;
  readonly post?: Fn;
  readonly args: readonly Arg[];
  readonly scratch: readonly { name: string; perRow: number }[];
}

/** The program module instantiated on the shared memory, its functions by kernel. */
export class WasmProgram {
  private readonly byKernel = new Map<Kernel, Rendered>();
  /** The chunked SSD's steps around its products. */
  readonly ssd: SsdGlue;
  /** Prefill attention's steps around its products. */
  readonly attn: AttnGlue;
  /** The functions run whole, or shared by the products' threads (runtime/wasm/split.ts). */
  readonly calls: ProgramCalls;

  constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, program: Program, wake: Wake = { threads: 1, wakeProgram: () => 0 }) {
    const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, unknown>;
    this.calls = new ProgramCalls(module, ex, wake, memory);
    const hash = (ex.PROGRAM as WebAssembly.Global | undefined)?.value;
    if (hash !== programHash(program)) {
      throw new RuntimeError('RT303', ['a wasm program module built for another program', 'pass the wasmProgram rendered for this model (archc build writes it into the package)']);
    }
    const glue = (n: string) => ex[`ssd.${n}`] as (...args: number[]) => void;
    this.ssd = Object.fromEntries(['put', 'decays', 'mask', 'out', 'xw', 'state'].map((n) => [n, glue(n)])) as unknown as SsdGlue;
    this.attn = Object.fromEntries(['put', 'softmax', 'out'].map((n) => [n, ex[`attn.${n}`]])) as unknown as AttnGlue;
    for (const [name, e] of Object.entries(program.entries) as [EntryName, Entry][]) {
      e.kernels.forEach((k, i) => {
        const fn = (stage: 'run' | 'pre' | 'post') => ex[exportName(name, i, stage)] as Fn | undefined;
        const [run, pre, post] = [fn('run'), fn('pre'), fn('post')];
        if (run || pre || post) this.byKernel.set(k, { run, pre, post, args: kernelArgs(k), scratch: scratchPlan(k) });
      });
    }
  }

  get(k: Kernel): Rendered | undefined {
    return this.byKernel.get(k);
  }
}

/** State slots in the shared memory (so the rendered kernels update them in place). */
export class WasmStatePool extends CpuStatePool {
  private readonly blocks: ({ at: number; bytes: number } | undefined)[] = [];
  /** Byte offset of each state in a slot. */
  readonly byteOffsets: readonly number[];

  constructor(program: Program, capacity: number, private readonly heap: Heap, private readonly memory: WebAssembly.Memory) {
    super(program, capacity);
    this.byteOffsets = slotLayout(program.states, capacity).offsets.map((o) => 4 * o);
  }

  protected override newSlot(index: number, floats: number): Float32Array {
    // the SSD step's read-ahead reaches past a slot's last state by up to STATE_READ_TAIL bytes
    const b = (this.blocks[index] ??= this.heap.alloc(4 * floats + STATE_READ_TAIL));
    const a = new Float32Array(this.memory.buffer, b.at, floats);
    a.fill(0);
    return a;
  }

  /** Byte address of slot `index`. */
  address(index: number): number {
    return this.blocks[index]?.at ?? -1;
  }

  dispose(): void {
    for (const b of this.blocks) if (b) this.heap.release(b);
    this.blocks.length = 0;
  }
}
