// The WebGPU backend's state slots (the StatePool of runtime/backend.ts) in one device buffer, split
// into parts where the load's plan says so (split.ts).

import type { StatePool } from '../backend.ts';
import { RuntimeError } from '../errors.ts';
import { slotLayout } from '../program.ts';
import type { WebGpuBackend } from './backend.ts';
import { SplitBuffer } from './split.ts';

/** State slots in one device buffer, slot i at i · slot bytes, grown (and copied) as slots are
 *  taken; split into parts when the plan says so (split.ts), up to the slots the parts hold. */
export class WebGpuStatePool implements StatePool {
  readonly slotBytes: number;
  private buf: SplitBuffer | null = null;
  private slots = 0;
  private readonly used = new Set<number>();
  private readonly free: number[] = [];

  constructor(private readonly gpu: WebGpuBackend, readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) fail(`a state pool needs a positive capacity, got ${capacity}`);
    this.slotBytes = 4 * slotLayout(gpu.program.states, capacity).floats;
  }

  buffer(): SplitBuffer {
    return this.buf ?? this.grow(1);
  }

  private grow(slots: number): SplitBuffer {
    this.buf ??= new SplitBuffer(this.gpu, 'state', this.gpu.plan.buffers.get('state')!);
    const most = this.slotBytes ? Math.floor(this.buf.capacity / this.slotBytes) : Infinity;
    const want = Math.min(most, slots);
    this.buf.ensure(Math.max(16, want * this.slotBytes), true);
    this.slots = want;
    return this.buf;
  }

  acquire(): number {
    const slot = this.free.pop() ?? this.used.size;
    if (slot >= this.slots) {
      const most = this.slotBytes ? Math.floor(this.buffer().capacity / this.slotBytes) : Infinity;
      if (slot >= most) {
        const s = this.gpu.plan.buffers.get('state')!;
        throw new RuntimeError('RT505', [`state slot ${slot + 1}`, (slot + 1) * this.slotBytes, s.parts * s.partBytes,
          s.parts > 1 ? `the pool was planned for ${this.gpu.plan.stateSlots} slots: load with a larger webgpu.stateSlots, or release sequences` : 'release sequences, or load with a smaller capacity']);
      }
      this.grow(Math.max(slot + 1, 2 * this.slots));
    }
    this.used.add(slot);
    if (this.slotBytes) this.buf!.clear(slot * this.slotBytes, this.slotBytes);
    return slot;
  }

  release(slot: number): void {
    this.check(slot);
    this.used.delete(slot);
    this.free.push(slot);
  }

  copy(from: number, to: number): void {
    this.check(from);
    this.check(to);
    if (!this.slotBytes || from === to) return;
    // a buffer cannot be copied into itself: through a temporary
    const tmp = new SplitBuffer(this.gpu, 'state', { parts: 1, partBytes: this.slotBytes, bytes: this.slotBytes });
    tmp.ensure(this.slotBytes, false);
    tmp.copyFrom(this.buf!, from * this.slotBytes, 0, this.slotBytes);
    this.buf!.copyFrom(tmp, 0, to * this.slotBytes, this.slotBytes);
    this.gpu.flush();
    tmp.destroy();
  }

  save(): Uint8Array {
    throw new RuntimeError('RT504', ['webgpu', 'saveAsync (Model.saveSequenceAsync)']);
  }

  dispose(): void {
    this.gpu.flush();
    this.buf?.destroy();
    this.buf = null;
    this.slots = 0;
    this.used.clear();
    this.gpu.pools.delete(this);
  }

  async saveAsync(slot: number): Promise<Uint8Array> {
    this.check(slot);
    return new Uint8Array(await this.gpu.readBytes(this.buf!, slot * this.slotBytes, this.slotBytes));
  }

  restore(slot: number, bytes: Uint8Array): void {
    this.check(slot);
    if (bytes.byteLength !== this.slotBytes) fail(`a saved slot of ${bytes.byteLength} bytes does not fit slots of ${this.slotBytes}`);
    this.gpu.flush();
    this.buf!.write(slot * this.slotBytes, bytes);
  }

  private check(slot: number): void {
    if (!this.used.has(slot)) fail(`state slot ${slot} is not in use`);
  }
}


function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
