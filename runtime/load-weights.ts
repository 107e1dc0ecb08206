// Model.load's reading of the weights: each tensor read (a local file, shards or a URL), checked,
// quantised where the plan says (runtime/quantize-wasm.ts: on worker threads overlapped with the
// reads where it can, else on the loading thread; `quantizer: 'js'` the reference) and handed to the
// backend by runtime/load.ts `loadWeights`, with the read buffers reused and let go as the sizes ahead
// allow (the load's peak memory: the loaded model and about one tensor).

import { RuntimeError } from './errors.ts';
import { type TensorSource, isUrl } from './fetch.ts';
import { checkFinite, loadWeights, onNode } from './load.ts';
import { LoadPool, type PanelTarget } from './load-pool.ts';
import type { LoadOptions } from './model.ts';
import { exprLeaves } from './expr.ts';
import type { DerivedWeight, Program } from './program.ts';
import { type HostWeight, quantize } from './quant.ts';
import { type QuantMemory, QuantPool, quantizeWasm, quantizerModule } from './quantize-wasm.ts';
import type { packedSource } from './quantckpt.ts';
import type { QuantPlan } from './quantplan.ts';
import type { LoadableBackend } from './targets.ts';
import type { Tensor } from './tensor.ts';
import { defaultThreads } from './wasm/threads.ts';

/** Weights ahead a load's read buffer is kept for: one larger than any of them needs is let go. */
const LOAD_WINDOW = 16;
/** Tensors of at least this many bytes go through the load pool (smaller ones cost more to hand out
 *  to workers than they take to read; tiny-bamba-a f32's MLP weights, 640 KiB, pass through it). */
const DIRECT_FROM = 1 << 18;
/** Stored dtypes the load pool reads as they are: bytes an element, the exponent bits (RT144's test). */
const STORED: Readonly<Record<string, { eb: number; mask: number }>> = { F32: { eb: 4, mask: 0x7f800000 }, BF16: { eb: 2, mask: 0x7f80 }, F16: { eb: 2, mask: 0x7c00 } };

export interface WeightReading {
  readonly program: Program;
  readonly ckpt: TensorSource;
  readonly plan: QuantPlan;
  /** A checkpoint quantised already (its codes read as they are), or null. */
  readonly packed: Awaited<ReturnType<typeof packedSource>> | null;
  readonly backend: LoadableBackend;
  readonly opts: LoadOptions;
  /** The checkpoint's folder or URL. */
  readonly dir: string;
  /** Tensors two weights read (a tied embedding and head): read once, kept until both have them. */
  readonly shared: ReadonlySet<string>;
  /** The checkpoint tensor a program weight reads. */
  readonly tensorOf: (weight: string) => string;
  /** A load pool started early (its workers boot while the backend opens), used where stored
   *  tensors go through one and closed here either way; else one is started when needed. */
  readonly rowsPool?: LoadPool | null;
}

/** Reads every weight of the program into the backend; returns where quantising ran
 *  (QuantReport.quantizer), or null where nothing was quantised here. */
export async function readAllWeights({ program, ckpt, plan, packed, backend, opts, dir, shared, tensorOf, rowsPool: early }: WeightReading): Promise<string | null> {
  const refused = [...new Set(plan.formats.values())].find((f) => !backend.quantFormats?.includes(f));
  if (refused) throw new RuntimeError('RT171', [backend.name, refused]);
  const kept = new Map<string, Tensor>();
  // one buffer for the tensors nothing keeps after their upload (those quantised as they
  // arrive, a wasm product's weight packed into the memory: runtime/backend.ts hostCopy),
  // grown as needed and let go once none of the next LOAD_WINDOW weights needs it that large
  // (Bamba-9B's 1.05 GB embedding buffer is not kept through every layer for the head); shared
  // memory for the matrices a thread pool keeps
  const transient = (weight: string) => !shared.has(tensorOf(weight)) && !packed?.formats.has(tensorOf(weight))
    && (plan.formats.has(weight) || backend.hostCopy?.(weight) === 'none');
  const stored = (weight: string) => { const t = ckpt.tensors.get(tensorOf(weight)); return t ? t.end - t.begin : 0; };
  const names = program.weights.map((w) => w.name);
  const sizes = names.map((w) => (transient(w) ? stored(w) : 0));
  const within = (i: number) => Math.max(0, ...sizes.slice(i, i + LOAD_WINDOW));
  const later = new Map(names.map((w, i) => [w, within(i)])); // weight -> the largest transient tensor soon from it on
  const after = new Map(names.map((w, i) => [w, within(i + 1)])); // ... after it
  // quantising runs in WebAssembly SIMD on worker threads where it can (runtime/quantize-wasm.ts:
  // the tensor read next overlaps it), else on this thread; `quantizer: 'js'` forces the reference
  const pool = !packed && plan.formats.size && opts.quantizer !== 'js' ? await QuantPool.start(opts.threads ?? defaultThreads()) : null;
  const sharedMemory = (bytes: number) => new SharedArrayBuffer(bytes);
  // With the pool, two buffers take turns (runtime/load.ts `ahead`: a tensor is read while the
  // one before it is still being quantised or waits for its upload), in shared memory the
  // workers read; a read takes the one the read before it did not.
  const scratch: (ArrayBuffer | SharedArrayBuffer)[] = [new ArrayBuffer(0), new ArrayBuffer(0)];
  // and with each, the codes and scales of a tensor quantised from it that the backend keeps
  // no copy of (hostCopy 'none': packed at upload)
  const none = (): ArrayBufferLike[] => [new ArrayBuffer(0), new ArrayBuffer(0)];
  const outs = [none(), none()];
  const out = (i: number): QuantMemory => (bytes, part) => (outs[i]![part]!.byteLength >= bytes ? outs[i]![part]! : (outs[i]![part] = sharedMemory(bytes)));
  let last = -1; // the buffer the previous read took, or -1
  /** The buffer for a transient weight (chosen before any await: the next read may begin then). */
  const take = (weight: string, busy: number): ((bytes: number) => ArrayBufferLike) => {
    const free = pool ? [0, 1].filter((b) => b !== busy) : [0];
    const i = free.find((b) => scratch[b]!.byteLength >= stored(weight)) ?? free[0]!;
    last = i;
    return (bytes) => (scratch[i]!.byteLength >= bytes ? scratch[i]! : (scratch[i] = pool ? sharedMemory(bytes) : new ArrayBuffer(bytes)));
  };
  const fileOf = (name: string) => ckpt.tensors.get(name)?.file ?? ckpt.path;
  const local = onNode() && !isUrl(dir) && !packed; // the tensors' `file` is a path here
  // with nothing quantised, stored tensors of a local file on a backend in host memory (hostCopy)
  // are read by the load pool's threads straight to where the backend keeps them
  const wanted = local && !plan.formats.size && backend.hostCopy;
  if (!wanted) early?.close();
  const rowsPool = wanted ? early ?? LoadPool.start(opts.threads ?? defaultThreads()) : null;
  const byName = new Map(program.weights.map((w) => [w.name, w]));
  // the parts of a concatenated weight (program.derived concat: of one stored dtype, each part only
  // its) read into one buffer, each at its place: the backend's concatenation then finds them
  // adjacent and copies nothing (runtime/cpu/backend.ts derive)
  type Group = { d: DerivedWeight; dtype: string; buf: ArrayBufferLike | null; bytes: number; shared: boolean; left: number; panels?: PanelTarget[] | null };
  const together = new Map<string, { group: Group; at: number; i: number }>();
  const inConcats = program.derived.flatMap((d) => (d.from.kind === 'concat' ? d.from.parts : []));
  // parts of derived weights (the backend may drop them) are read on this thread, as a worker keeps
  // what it wrote until it collects garbage; a concatenation's kept in shared memory are not
  const soon = new Set(program.derived.flatMap((d) => (d.from.kind === 'concat' ? d.from.parts : exprLeaves(d.from.body).flatMap((l) => (l.op === 'w' ? [l.name] : [])))));
  for (const d of program.derived) {
    if (d.from.kind !== 'concat') continue;
    const infos = d.from.parts.map((p) => (byName.has(p) && !shared.has(tensorOf(p)) && inConcats.filter((q) => q === p).length === 1 ? ckpt.tensors.get(tensorOf(p)) : undefined));
    if (infos.some((t) => !t || !STORED[t.fileDtype] || t.fileDtype !== infos[0]!.fileDtype || t.end - t.begin < DIRECT_FROM)) continue;
    // in shared memory where the backend keeps the concatenation there (ArrayBuffers are let go sooner)
    const group: Group = { d, dtype: infos[0]!.dtype, buf: null, bytes: infos.reduce((a, t) => a + t!.end - t!.begin, 0), shared: backend.hostCopy?.(d.name) === 'shared', left: infos.length };
    let at = 0;
    d.from.parts.forEach((p, i) => { together.set(p, { group, at, i }); at += infos[i]!.end - infos[i]!.begin; });
  }
  /** Where a weight kept as stored is read to: its place in its concatenation's panels (wasm) or
   *  buffer, or memory of its own. */
  const placeOf = (weight: string, bytes: number, copy: string): { dst: ArrayBufferLike; dstAt: number } | PanelTarget => {
    const sab = (n: number) => (typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
    const t = together.get(weight);
    if (t && t.group.panels === undefined) {
      const g = t.group;
      g.panels = g.dtype === 'f32' || g.dtype === 'bf16' ? backend.concatPanels?.(g.d, g.dtype) ?? null : null;
    }
    if (t?.group.panels) return t.group.panels[t.i]!;
    if (t) {
      const dst = (t.group.buf ??= t.group.shared ? sab(t.group.bytes) : new ArrayBuffer(t.group.bytes));
      if (--t.group.left === 0) t.group.buf = null; // the parts hold it now, and the concatenation once made
      return { dst, dstAt: t.at };
    }
    // shared where workers write it (a weight the backend keeps: see `soon`)
    return { dst: copy === 'shared' || (rowsPool!.threads && !soon.has(weight)) ? sab(bytes) : new ArrayBuffer(bytes), dstAt: 0 };
  };
  /** A weight through the load pool (runtime/load-pool.ts), or null where it does not take it. */
  const direct = async (weight: string, name: string, copy: string): Promise<HostWeight | null> => {
    const info = ckpt.tensors.get(name)!;
    const s = STORED[info.fileDtype];
    const bytes = info.end - info.begin;
    if (!rowsPool || !s || bytes < DIRECT_FROM || (copy === 'none' && info.fileDtype === 'F16')) return null;
    const to = copy === 'none' ? backend.panelTarget?.(byName.get(weight)!, info.dtype as 'f32' | 'bf16') : placeOf(weight, bytes, copy);
    if (!to) return null;
    const rows = info.shape[0] ?? 1;
    const bad = await rowsPool.read(info.file, info.begin, s.eb, opts.checkWeights ?? true ? s.mask : 0, rows, bytes / s.eb / rows, to, soon.has(weight) && !together.get(weight)?.group.shared && !('N' in to)).catch((e: Error) => {
      throw new RuntimeError('RT142', [info.file, name, e.message], { file: info.file, tensor: name }, { cause: e });
    });
    if (bad) {
      // said as the loading thread says it (RT144 names the count and the first value)
      checkFinite(await ckpt.read(name), info.file, name);
      throw new RuntimeError('RT142', [info.file, name, 'its values changed while it was read'], { file: info.file, tensor: name });
    }
    // a weight packed into the backend's memory is uploaded as a stand-in without data
    const [buf, at, n] = 'dst' in to ? [to.dst, to.dstAt, bytes / s.eb] : [new ArrayBuffer(0), 0, 0];
    const data = s.eb === 4 ? new Float32Array(buf, at, n) : new Uint16Array(buf, at, n);
    return { dtype: info.dtype, shape: [...info.shape], data };
  };
  const read = async (weight: string): Promise<HostWeight> => {
    const name = tensorOf(weight);
    const busy = last;
    last = -1;
    for (const b of [0, 1]) if (b !== busy && scratch[b]!.byteLength > (later.get(weight) ?? 0)) [scratch[b], outs[b]] = [new ArrayBuffer(0), none()];
    if (packed?.formats.has(name)) return packed.readQuant(name);
    const f = plan.formats.get(weight);
    let t = kept.get(name);
    const copy = backend.hostCopy?.(weight) ?? 'own';
    let slot = -1; // the scratch buffer this read took
    if (!f && !shared.has(name)) {
      const got = await direct(weight, name, copy);
      if (got) return got;
    }
    if (f && pool && local && !shared.has(name)) {
      // a local file: the workers read their rows themselves; this read takes a turn only for
      // the codes and scales
      take(weight, busy);
      slot = last;
      const info = ckpt.tensors.get(name)!;
      const q = await pool.quantizeFile(info, f, copy === 'none' ? out(slot) : undefined).catch((e: Error) => {
        throw new RuntimeError('RT142', [info.file, name, e.message], { file: info.file, tensor: name }, { cause: e });
      });
      if (q && q !== 'refused' && 'q' in q) return q.q;
      // refused (the reason is the reference's: read below) or not the module's dtype
    }
    if (!t) {
      const alloc = transient(weight) ? take(weight, busy)
        : (!shared.has(name) && copy === 'shared' && typeof SharedArrayBuffer !== 'undefined') || (pool && f) ? sharedMemory : undefined;
      slot = last; // now: the next read may begin at the await
      t = await ckpt.read(name, alloc);
      // the wasm quantiser refuses non-finite values itself: RT144 is then said (below) as here
      if ((opts.checkWeights ?? true) && !(f && opts.quantizer !== 'js' && !shared.has(name))) checkFinite(t, fileOf(name), name);
      if (shared.has(name)) kept.set(name, t);
    }
    if (!f) return t;
    const q = pool ? await pool.quantize(t, f, slot >= 0 && copy === 'none' ? out(slot) : undefined) : opts.quantizer === 'js' ? quantize(t, f) : quantizeWasm(t, f);
    // its input is done with: let the buffer go now, before the upload, unless a weight soon needs it
    if (slot >= 0 && scratch[slot]!.byteLength > (after.get(weight) ?? 0)) scratch[slot] = new ArrayBuffer(0);
    if ('reason' in q) {
      if (opts.checkWeights ?? true) checkFinite(t, fileOf(name), name);
      throw new RuntimeError('RT176', [weight, f, q.reason], { tensor: weight });
    }
    return q.q;
  };
  const quantizer = packed || !plan.formats.size ? null : pool ? `wasm, ${pool.threads} worker${pool.threads > 1 ? 's' : ''}`
    : opts.quantizer !== 'js' && quantizerModule() ? 'wasm, the loading thread' : 'js';
  try {
    await loadWeights(program, ckpt, read, opts, backend, tensorOf, pool !== null);
  } finally {
    pool?.close();
    rowsPool?.close();
  }
  return quantizer;
}
