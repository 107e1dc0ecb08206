// The CUDA backend's device memory that grows: a buffer whose contents are kept as it grows (the
// arena, the batch, the state pool), and the state pool — slots in one device buffer, copied, saved
// and restored by device copies.

import type { StatePool } from '../backend.ts';
import { slotLayout } from '../program.ts';
import type { CudaBackend } from './backend.ts';

/** A device allocation that grows (contents kept) when more is asked of it. */
export class DeviceBuffer {
  ptr: bigint = 0n;
  bytes = 0;
  constructor(private readonly b: CudaBackend) {}
  /** At least `bytes`; the old contents are copied over when `keep`. */
  reserve(bytes: number, keep = false): bigint {
    if (bytes <= this.bytes) return this.ptr;
    this.b.sync();  // launches in flight may use the old allocation
    const size = Math.max(bytes, Math.ceil(this.bytes * 1.5), 256);
    const p = this.b.alloc(size);
    if (keep && this.bytes) this.b.call(this.b.driver.cuMemcpyDtoD(p, this.ptr, this.bytes), 'cuMemcpyDtoD');
    this.free();
    this.ptr = p;
    this.bytes = size;
    return p;
  }
  free(): void {
    if (this.bytes) this.b.driver.cuMemFree(this.ptr);
    this.ptr = 0n;
    this.bytes = 0;
  }
}

/** State slots in one device buffer (grown, contents kept, as slots are acquired). */
export class CudaStatePool implements StatePool {
  readonly slotBytes: number;
  readonly floats: number;
  private readonly mem: DeviceBuffer;
  private used: boolean[] = [];

  constructor(readonly backend: CudaBackend, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) fail(`a state pool needs a positive capacity, got ${capacity}`);
    this.floats = slotLayout(backend.program.states, capacity).floats;
    this.slotBytes = 4 * this.floats;
    this.mem = new DeviceBuffer(backend);
  }

  /** The pool's device address, room for every slot in use ensured. */
  reserve(): bigint {
    return this.mem.reserve(Math.max(1, this.used.length) * this.slotBytes, true);
  }

  private at(slot: number): bigint {
    if (!this.used[slot]) fail(`state slot ${slot} is not in use`);
    return this.mem.ptr + BigInt(slot) * BigInt(this.slotBytes);
  }

  acquire(): number {
    let s = this.used.indexOf(false);
    if (s < 0) { s = this.used.length; this.used.push(true); } else this.used[s] = true;
    this.backend.sync();
    this.reserve();
    this.backend.call(this.backend.driver.cuMemsetD8(this.at(s), 0, this.slotBytes), 'cuMemsetD8(state slot)');
    return s;
  }

  release(slot: number): void {
    this.at(slot);
    this.used[slot] = false;
  }

  copy(from: number, to: number): void {
    this.backend.sync();
    this.backend.call(this.backend.driver.cuMemcpyDtoD(this.at(to), this.at(from), this.slotBytes), 'cuMemcpyDtoD(state slot)');
  }

  save(slot: number): Uint8Array {
    this.backend.sync();
    const out = new Uint8Array(this.slotBytes);
    this.backend.call(this.backend.driver.cuMemcpyDtoH(out, this.at(slot), this.slotBytes), 'cuMemcpyDtoH(state slot)');
    return out;
  }

  restore(slot: number, bytes: Uint8Array): void {
    if (bytes.byteLength !== this.slotBytes) fail(`a saved slot of ${bytes.byteLength} bytes does not fit slots of ${this.slotBytes}`);
    this.backend.sync();
    this.backend.call(this.backend.driver.cuMemcpyHtoD(this.at(slot), bytes, this.slotBytes), 'cuMemcpyHtoD(state slot)');
  }
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
