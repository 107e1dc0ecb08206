// Running generated CUDA kernels without a GPU: the `.cu` sources compile as host C++ against an
// emulation header (cuda-emu/emu.h) into one binary per set of kernels (cached by content), and a
// backend runs each dispatch through it — arena, state pool and weights over stdin, results back
// over stdout. Weights and derived weights are made by a CPU backend, then narrowed as the CUDA
// backend stores them (matrices bf16, the rest f32; a quantised matrix as its codes and scales, run
// by the kernel's source for that format).

import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { renderKernel } from '../../codegen/cuda/render.ts';
import type { Backend, Invocation, RunBatch, StatePool } from '../../runtime/backend.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { ARGS_FIELDS, type MatrixFormat, type SourceFormat, kernelOffsets, kernelWeights, launchesOf, matrixFormat, packArgs, quantDeviceBytes, quantMatrix, scratchFloats, sourceFormats } from '../../runtime/cuda/abi.ts';
import type { ActivationFormat } from '../../runtime/act-quant.ts';
import { type HostWeight, type QuantDType, QUANT_DTYPES, isQuant } from '../../runtime/quant.ts';
import type { Entry, EntryName, Kernel, Program, ProgramWeight, View } from '../../runtime/program.ts';
import { slotLayout } from '../../runtime/program.ts';
import { fromF32 } from '../../runtime/tensor.ts';
import { entryFunctions, functionName, renamedInclude } from '../../runtime/cuda/kernels.ts';

const EMU = join(import.meta.dirname, 'cuda-emu');
const CACHE = join(tmpdir(), 'archc-cuda-emu');
const run = promisify(execFile);

export const sourceId = (src: string): string => createHash('sha256').update(src).digest('hex').slice(0, 16);

/** Every kernel source of `program` (all entries, every format of a matrix), by id. */
export function programSources(program: Program, a8 = false): Map<string, string> {
  const out = new Map<string, string>();
  // a product's sources for f32 activations (q8, q4) or 8-bit ones (q8a8, q4a8): a test builds the ones
  // it runs (each source is a compile of a minute or so in the emulator's build)
  // (a kernel without 8-bit forms, e.g. a quantised embedding's gather, keeps its q8/q4 ones)
  const wanted = (f: string, all: readonly string[]) => (a8 ? !all.includes(`${f}a8`) : !f.endsWith('a8'));
  // (kernels with nothing to read are runOp's placeholders for its inputs, never dispatched)
  for (const e of Object.values(program.entries)) {
    for (const k of e.kernels) {
      if (!Object.keys(k.inputs).length) continue;
      const all = sourceFormats(k);
      for (const f of all.filter((f) => wanted(f, all))) { const s = renderKernel(program, e, k, f).source; out.set(sourceId(s), s); }
    }
  }
  return out;
}

/** Compiles the kernels into one emulator binary (in `parts` translation units); returns its path. */
export async function buildEmulator(sources: ReadonlyMap<string, string>, parts = 2): Promise<string> {
  // every file of the emulator is in the key: a binary built with an older one is never reused
  const support = ['emu.h', 'warp-mma.h', 'main.cpp', ...readdirSync(join(EMU, 'include')).sort().map((f) => join('include', f))]
    .map((f) => readFileSync(join(EMU, f), 'utf8')).join('\n');
  const ids = [...sources.keys()].sort();
  const dir = join(CACHE, sourceId(support + ids.join(',')));
  const bin = join(dir, 'emu');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const groups = Array.from({ length: Math.min(parts, ids.length) }, (_, g) => ids.filter((_, i) => i % parts === g));
  const launcher = 'struct Launcher { const char* id; int count; const char* const* names; void (*const* fns)(const void*); size_t args_bytes; };\n';
  groups.forEach((g, gi) => {
    const body = g.map((id) => {
      const src = sources.get(id)!;
      writeFileSync(join(dir, `${id}.cu`), src);
      const fns = entryFunctions(src);
      return `namespace k_${id} {\n${renamedInclude(id, src)}`
        + fns.map((f, i) => `void run_${i}(const void* a) { ${functionName(f, id)}(*static_cast<const ArchcArgs*>(a)); }\n`).join('')
        + `const char* const NAMES[] = {${fns.map((f) => `"${f}"`).join(', ')}};\nvoid (*const FNS[])(const void*) = {${fns.map((_, i) => `run_${i}`).join(', ')}};\n}\n`
        + `extern const Launcher L_${id} = {"${id}", ${fns.length}, k_${id}::NAMES, k_${id}::FNS, sizeof(k_${id}::ArchcArgs)};\n`;
    }).join('');
    writeFileSync(join(dir, `part${gi}.cpp`), `#include "emu.h"\n${launcher}${body}`);
  });
  writeFileSync(join(dir, 'launchers.inc'), `${launcher}${ids.map((id) => `extern const Launcher L_${id};`).join('\n')}\nstatic const Launcher* LAUNCHERS[] = {${ids.map((id) => `&L_${id}`).join(', ')}};\n`);
  const cxx = (src: string, out: string, extra: string[] = []) =>
    run('g++', ['-std=c++20', '-O1', '-w', '-pthread', `-I${EMU}`, `-I${join(EMU, 'include')}`, `-I${dir}`, ...extra, '-c', src, '-o', out], { maxBuffer: 1 << 24 });
  try {
    await Promise.all([...groups.map((_, gi) => cxx(join(dir, `part${gi}.cpp`), join(dir, `part${gi}.o`))), cxx(join(EMU, 'main.cpp'), join(dir, 'main.o'))]);
    await run('g++', ['-pthread', '-o', `${bin}.tmp`, join(dir, 'main.o'), ...groups.map((_, gi) => join(dir, `part${gi}.o`))]);
  } catch (e) {
    throw new Error(`the CUDA emulator does not compile (sources in ${dir}):\n${(e as { stderr?: string }).stderr?.slice(0, 4000) ?? e}`);
  }
  renameSync(`${bin}.tmp`, bin);
  return bin;
}

/** An entry's outputs on `b`, yielding to the event loop after every kernel: the emulator runs each
 *  kernel as a child process, and a minute of them back to back would stall a vitest worker past
 *  its RPC deadline on a loaded machine. */
export async function runEntryYielding(b: Backend, p: Program, name: EntryName, batch: RunBatch, pool: StatePool): Promise<Map<string, Float32Array>> {
  const entry = p.entries[name];
  const inv = b.begin(entry, batch, pool);
  for (const k of entry.kernels) {
    inv.dispatch(k);
    await new Promise((r) => setImmediate(r));
  }
  return new Map(Object.entries(entry.outputs).map(([n, v]) => [n, inv.read(v)]));
}

/** A backend that runs the generated CUDA kernels in the emulator binary `bin`. */
export class EmuCudaBackend implements Backend {
  readonly name = 'cuda-emu';
  readonly quantFormats: readonly QuantDType[] = QUANT_DTYPES;
  readonly cpu: CpuBackend;
  /** 'q8': products over q8/q4 weights run their q8a8 / q4a8 sources (as the CUDA backend's useActivations). */
  activations: ActivationFormat = 'f32';

  constructor(readonly program: Program, readonly bin: string) {
    this.cpu = new CpuBackend(program);
  }

  useActivations(a: ActivationFormat): void {
    this.activations = a;
  }

  uploadWeight(w: ProgramWeight, t: HostWeight): void {
    this.cpu.uploadWeight(w, t);
  }

  /** The source kernel `k` runs: its matrix's format as uploaded (bf16 for float weights), over 8-bit
   *  activations for a product with activations 'q8'. */
  format(k: Kernel): SourceFormat {
    const m = quantMatrix(k);
    const w = m ? this.cpu.weight(m) : null;
    if (!w || !isQuant(w)) return 'bf16';
    return this.activations === 'q8' && k.family === 'matmul' ? `${w.dtype}a8` : w.dtype;
  }

  /** Weight `name` as the CUDA backend stores it. */
  weightBytes(name: string, dtype: MatrixFormat | 'f32'): Uint8Array {
    if (dtype === 'f32') return new Uint8Array(this.cpu.f32(name).slice().buffer);
    const q = this.cpu.weight(name);
    if (dtype !== 'bf16') return isQuant(q) && q.dtype === dtype ? quantDeviceBytes(q) : fail(`weight ${name} is not ${dtype}`);
    const t = this.cpu.tensor(name);
    const bf = t.dtype === 'bf16' ? (t.data as Uint16Array) : (fromF32(this.cpu.f32(name), [t.data.length], 'bf16').data as Uint16Array);
    return new Uint8Array(bf.slice().buffer);
  }

  createStatePool(capacity: number): EmuStatePool {
    return new EmuStatePool(this.program, capacity);
  }

  begin(entry: Entry, batch: RunBatch, pool: StatePool): Invocation {
    if (!(pool instanceof EmuStatePool)) throw new Error('archc test: the state pool was not made by the emulated CUDA backend');
    return new EmuInvocation(this, entry, batch, pool);
  }

  dispose(): void {
    this.cpu.dispose();
  }
}

class EmuInvocation implements Invocation {
  readonly arena: Float32Array;
  constructor(private readonly b: EmuCudaBackend, private readonly entry: Entry, private readonly batch: RunBatch, private readonly pool: EmuStatePool) {
    this.arena = new Float32Array(entry.arena.T * batch.tokens.length + entry.arena.S * batch.seqs.length);
  }

  private at(v: View): { base: number; stride: number; rows: number } {
    const buf = this.entry.buffers[v.buf]!;
    const T = this.batch.tokens.length, S = this.batch.seqs.length;
    const rows = buf.rows === 'T' ? T : buf.rows === 'S' ? S : 1;
    const base = buf.rows === 'T' ? buf.offset * T : this.entry.arena.T * T + buf.offset * S;
    return { base: base + v.col, stride: buf.width, rows };
  }

  write(v: View, data: Float32Array): void {
    const { base, stride, rows } = this.at(v);
    for (let r = 0; r < rows; r++) this.arena.set(data.subarray(r * v.width, (r + 1) * v.width), base + r * stride);
  }

  readAsync(v: View): Promise<Float32Array> {
    return Promise.resolve(this.read(v));
  }

  read(v: View): Float32Array {
    const { base, stride, rows } = this.at(v);
    const out = new Float32Array(rows * v.width);
    for (let r = 0; r < rows; r++) out.set(this.arena.subarray(base + r * stride, base + r * stride + v.width), r * v.width);
    return out;
  }

  dispatch(k: Kernel): void {
    const { program } = this.b;
    const T = this.batch.tokens.length, S = this.batch.seqs.length;
    const format = this.b.format(k);
    const rendered = renderKernel(program, this.entry, k, format);
    const launches = launchesOf(this.entry, k, rendered.schedule, T, S);
    if (!launches.length) return;
    const src = rendered.source;
    const fns = entryFunctions(src);
    const weights = kernelWeights(k, matrixFormat(format)).map((w) => this.b.weightBytes(w.name, w.dtype));
    const ints = (xs: ArrayLike<number>) => new Uint8Array(Int32Array.from(xs).buffer);
    const i64 = (xs: number[]) => new Uint8Array(BigInt64Array.from(xs.map(BigInt)).buffer);
    const mem = this.pool.mem();
    // the launcher's packed arguments, pointers left for the emulator to fill in
    const args = packArgs({
      ptr: Object.fromEntries(ARGS_FIELDS.map((f) => [f, 0n])) as Parameters<typeof packArgs>[0]['ptr'],
      slotFloats: this.pool.floats, T, S, capacity: this.pool.capacity, ...kernelOffsets(program, this.entry, k, T, S, this.pool.capacity),
    });
    const parts: Uint8Array[] = [
      ints([launches.length, T, S, weights.length, args.byteLength]),
      ...launches.map((l) => ints([fns.indexOf(l.fn), l.grid[0], l.grid[1], l.block[0], l.shared])),
      i64([this.arena.length, mem.length, scratchFloats(rendered.schedule, T, S)]), args,
      ...weights.flatMap((w) => [i64([w.byteLength]), w]),
      ints(this.batch.tokens), ints(this.batch.positions),
      ints(this.batch.seqs.map((s) => s.start)), ints(this.batch.seqs.map((s) => s.len)), ints(this.batch.lengths), ints(this.batch.slots),
      new Uint8Array(this.arena.buffer.slice(0)), new Uint8Array(mem.buffer.slice(0)),
    ];
    const r = spawnSync(this.b.bin, [sourceId(src)], { input: Buffer.concat(parts), maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`archc test: emulated kernel ${k.name} failed (${r.status ?? r.signal}): ${r.stderr}`);
    const out = new Float32Array(r.stdout.buffer.slice(r.stdout.byteOffset, r.stdout.byteOffset + r.stdout.byteLength));
    this.arena.set(out.subarray(0, this.arena.length));
    mem.set(out.subarray(this.arena.length));
  }
}

/** State slots in one contiguous Float32Array, as the CUDA backend keeps them. */
export class EmuStatePool implements StatePool {
  readonly slotBytes: number;
  readonly floats: number;
  private data = new Float32Array(0);
  private used: boolean[] = [];

  constructor(program: Program, readonly capacity: number) {
    this.floats = slotLayout(program.states, capacity).floats;
    this.slotBytes = this.floats * 4;
  }

  mem(): Float32Array {
    return this.data;
  }

  acquire(): number {
    let s = this.used.indexOf(false);
    if (s < 0) {
      s = this.used.length;
      const grown = new Float32Array((s + 1) * this.floats);
      grown.set(this.data);
      this.data = grown;
      this.used.push(true);
    }
    this.used[s] = true;
    this.data.fill(0, s * this.floats, (s + 1) * this.floats);
    return s;
  }

  release(slot: number): void {
    this.used[slot] = false;
  }

  copy(from: number, to: number): void {
    this.data.copyWithin(to * this.floats, from * this.floats, (from + 1) * this.floats);
  }

  save(slot: number): Uint8Array {
    return new Uint8Array(this.data.slice(slot * this.floats, (slot + 1) * this.floats).buffer);
  }

  restore(slot: number, bytes: Uint8Array): void {
    this.data.set(new Float32Array(bytes.slice().buffer), slot * this.floats);
  }
}

function fail(msg: string): never {
  throw new Error(`archc test: ${msg}`);
}
