// The wasm backend's packed product matrices (runtime/wasm/kernels.ts panels), by the weight as the
// backend stores it: packed at upload, or, for a train program's f32 masters (stored again every
// step, and read by the train entry's products as they are: runtime/wasm/train.ts), packed only
// when an inference product first reads them. A weight stored again reuses its name's panels; an
// expert's slice of a mixture's matrices is packed when first chosen.

import { type HostWeight, isQuant } from '../quant.ts';
import type { Tensor } from '../tensor.ts';
import type { PackedWeight, WasmKernels } from './kernels.ts';
import { expertSlice } from './experts.ts';

export class Panels {
  private readonly packed = new WeakMap<HostWeight, PackedWeight>();
  private readonly byName = new Map<string, PackedWeight>();
  /** Matrices whose packing waits for their first reader: their names and layouts. */
  private readonly later = new WeakMap<HostWeight, { name: string; transposed: boolean }>();
  private readonly experts = new Map<string, PackedWeight>();

  constructor(private readonly kernels: WasmKernels) {}

  /** Packs weight `name` (`t`, [K, N] when `transposed`) now, or takes the panels the loader filled
   *  (`pre`); `kept` (t, or a stand-in without data) finds them. */
  pack(name: string, t: HostWeight, transposed: boolean, pre: PackedWeight | undefined, kept: HostWeight): void {
    const p = pre ?? (isQuant(t) ? this.kernels.packQuant(t) : this.kernels.pack(t, transposed, this.byName.get(name)));
    this.byName.set(name, p);
    this.packed.set(kept, p);
  }

  /** The stored matrices' panels, in the order they were packed. */
  all(): PackedWeight[] {
    return [...this.byName.values()];
  }

  /** Leaves the packing of `t` to its first reader (`get`). */
  defer(name: string, t: HostWeight, transposed: boolean): void {
    this.later.set(t, { name, transposed });
  }

  /** The panels of a stored matrix (packed now if they were deferred); undefined for other weights. */
  get(w: HostWeight): PackedWeight | undefined {
    const m = this.later.get(w);
    if (m && !this.packed.has(w)) this.pack(m.name, w, m.transposed, undefined, w);
    return this.packed.get(w);
  }

  /** Expert e's slice of the mixture's matrix `w`. */
  expert(w: string, e: number, t: Tensor): PackedWeight {
    const key = `${w}#${e}`;
    return this.experts.get(key) ?? this.experts.set(key, this.kernels.pack(expertSlice(t, e))).get(key)!;
  }

  /** Every expert slice packed so far, packed again in place from its matrix as stored now (`tensor`). */
  repackExperts(tensor: (w: string) => Tensor): void {
    for (const [key, p] of this.experts) {
      const at = key.lastIndexOf('#');
      this.kernels.pack(expertSlice(tensor(key.slice(0, at)), Number(key.slice(at + 1))), false, p);
    }
  }
}
