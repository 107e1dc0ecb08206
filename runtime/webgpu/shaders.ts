// The WGSL a WebGPU backend runs: for every kernel of every entry, the passes (compute shaders) that
// make it, each with the buffers it binds and how many workgroups a run of T tokens and S sequences
// dispatches. Plain data, rendered by the compiler (codegen/wgsl/) and shipped in the package.

import type { EntryName } from '../program.ts';

/** What a binding of a pass is: the arena, the integer inputs, the state pool, a scratch buffer or a
 *  weight (by name). Binding i of a pass is `@binding(i)` of its shader. */
export type BindingKind = 'arena' | 'ints' | 'state' | 'scratch0' | 'scratch1' | 'scratch2' | `w:${string}`;

/** A count known only at run time: `ceil(n(rows) · times / per)`, where n(T) = tokens,
 *  n(S) = sequences, n(C) = 1 and n(chunks) = the SSD chunks of the batch. */
export interface RunCount {
  readonly rows: 'T' | 'S' | 'C' | 'chunks';
  readonly times: number;
  readonly per: number;
}

export interface Pass {
  /** e.g. `product`, `epilogue`, `chunk states`. */
  readonly name: string;
  readonly code: string;
  readonly bindings: readonly BindingKind[];
  /** Workgroups: `groups(rows) · columns`, laid out over x and y when over 65535. */
  readonly groups: RunCount;
  readonly columns: number;
  /** Run only when the product rows n(rows)·times are at most / above this (matmul paths). */
  readonly rowsAtMost?: number;
  readonly rowsAbove?: number;
  /** The product rows those bounds are checked against (default: the pass's own `groups`). */
  readonly rows?: RunCount;
  /** Floats each scratch buffer must hold for this pass. */
  readonly scratch?: Readonly<Partial<Record<'scratch0' | 'scratch1' | 'scratch2', RunCount>>>;
}

export interface KernelShaders {
  readonly kernel: string;
  readonly passes: readonly Pass[];
}

export interface WgslEntry {
  readonly kernels: readonly KernelShaders[];
  /** The SSD chunk length the batch's chunk table is made for (0: no chunked scan). */
  readonly chunk: number;
}

/** The adapter shapes a program is rendered for (the compiler's WGSL target records): `gpu` for GPUs,
 *  `cpu` for adapters that run shaders on CPU cores (SwiftShader and the like: no barriers in
 *  products and norms). The backend picks one by its adapter. */
export type WgslProfile = 'gpu' | 'cpu';

export interface WgslProgram {
  readonly format: 'archc-wgsl/2';
  /** Words before the token ids in the integer buffer: T, S, capacity, slot floats, state offsets. */
  readonly header: number;
  /** Every entry's kernels, rendered once per profile. */
  readonly profiles: Readonly<Record<WgslProfile, Readonly<Record<EntryName, WgslEntry>>>>;
}

/** Fields of one sequence's record in the integer buffer (start, len, slot, before, first chunk, chunks). */
export const SEQ_FIELDS = 8;
/** Fields of one chunk's record (start row, len, sequence). */
export const CHUNK_FIELDS = 4;
