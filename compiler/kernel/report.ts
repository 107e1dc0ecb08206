// What a kernel program costs at run time, for the build report, `archc build`'s summary and the
// benchmarks: dispatches per entry and per layer, arena and state-slot bytes, and every kernel with
// the ops it absorbed and the lines it came from, and the kernels a target runs on a reference path.

import { type Entry, type Program, slotLayout } from '../../runtime/program.ts';
import { wasmFallbacks } from '../../runtime/wasm/plan.ts';
import { arenaBytes } from './memory.ts';

export interface ProgramReport {
  readonly dispatches: {
    readonly decode: number;
    readonly prefill: number;
    readonly forward: number;
    /** Decode kernels per layer, by the kind of layer (its stateful kernels: ssd, attention). */
    readonly perLayer: Readonly<Record<string, number>>;
    /** Decode kernels outside the layers (embedding, head). */
    readonly outsideLayers: number;
  };
  readonly memory: {
    /** The larger of the two arenas below: one arena serves both entry points. */
    readonly arenaBytes: number;
    readonly arenaBytesByEntry: { readonly prefill: number; readonly decode: number };
    readonly prefillTokens: number;
    readonly decodeBatch: number;
    /** One sequence's conv windows, SSM states and KV caches up to `context` tokens. */
    readonly stateBytesPerSlot: number;
    readonly context: number;
  };
  /** Every kernel of the prefill and decode entries. */
  readonly kernels: readonly { readonly entry: string; readonly name: string; readonly family: string; readonly fused: readonly string[]; readonly source: readonly string[] }[];
  /** Kernels of the prefill, decode and forward entries that a target runs on a reference path
   *  (runtime/cpu/families.ts) rather than as its own code, and why. Only the wasm target has any:
   *  the WGSL and CUDA renderers cover every family (a table by family) and reject, at build, a
   *  kernel they cannot render. */
  readonly fallbacks: readonly { readonly target: 'wasm'; readonly entry: string; readonly name: string; readonly family: string; readonly reason: string }[];
}

export interface ReportSizes {
  readonly prefillTokens: number;
  readonly decodeBatch: number;
  readonly context: number;
}

/** `model.layers.12.mamba.in_proj:linear` -> `model.layers.12` */
const layerOf = (name: string): string | undefined => /^(.*?\.\w+\.\d+)[.:]/.exec(name)?.[1];

function perLayer(e: Entry): { kinds: Record<string, number>; outside: number } {
  const layers = new Map<string, { kinds: Set<string>; count: number }>();
  let outside = 0;
  for (const k of e.kernels) {
    const l = layerOf(k.name);
    if (!l) { outside++; continue; }
    const entry = layers.get(l) ?? layers.set(l, { kinds: new Set(), count: 0 }).get(l)!;
    entry.count++;
    if (k.family.startsWith('ssd')) entry.kinds.add('ssd');
    if (k.family.startsWith('attention')) entry.kinds.add('attention');
  }
  const kinds: Record<string, number> = {};
  for (const { kinds: ks, count } of layers.values()) {
    const kind = [...ks].sort().join('+') || 'other';
    kinds[kind] = Math.max(kinds[kind] ?? 0, count);
  }
  return { kinds, outside };
}

export function programReport(p: Program, sizes: ReportSizes): ProgramReport {
  const { kinds, outside } = perLayer(p.entries.decode);
  const prefill = arenaBytes(p.entries.prefill, sizes.prefillTokens, 1);
  const decode = arenaBytes(p.entries.decode, sizes.decodeBatch, sizes.decodeBatch);
  return {
    dispatches: {
      decode: p.entries.decode.kernels.length,
      prefill: p.entries.prefill.kernels.length,
      forward: p.entries.forward.kernels.length,
      perLayer: kinds,
      outsideLayers: outside,
    },
    memory: {
      arenaBytes: Math.max(prefill, decode),
      arenaBytesByEntry: { prefill, decode },
      prefillTokens: sizes.prefillTokens,
      decodeBatch: sizes.decodeBatch,
      stateBytesPerSlot: 4 * slotLayout(p.states, sizes.context).floats,
      context: sizes.context,
    },
    kernels: (['prefill', 'decode'] as const).flatMap((entry) =>
      p.entries[entry].kernels.map((k) => ({ entry, name: k.name, family: k.family, fused: k.fused, source: k.source }))),
    fallbacks: wasmFallbacks(p).map((f) => ({ target: 'wasm' as const, ...f })),
  };
}

/** One line on the fallbacks: `wasm: 3 of 150 kernels on the reference path (embedding 3); webgpu, cuda: none`. */
export function fallbackSummary(p: Program, r: ProgramReport): string {
  const total = Object.values(p.entries).reduce((n, e) => n + e.kernels.length, 0);
  const families = new Map<string, number>();
  for (const f of r.fallbacks) families.set(f.family, (families.get(f.family) ?? 0) + 1);
  const by = [...families].map(([f, n]) => `${f} ${n}`).join(', ');
  return `wasm: ${r.fallbacks.length} of ${total} kernels on the reference path${by ? ` (${by})` : ''}; webgpu, cuda: none`;
}
