// The values passes read by `place(i)` (shaders.ts: where a kernel's buffers and states sit) in one
// uniform buffer per backend, written once when it is made: each distinct list in a slot of its own
// (at the device's uniform offset alignment), which a pass's bind group binds after its storage
// bindings. Nothing is written per run or per step.

import { type Pass, type WgslProfile, type WgslProgram, allPasses, placeVectors } from './shaders.ts';

// GPUBufferUsage and GPUShaderStage flags as numbers: the globals exist only once a GPU is loaded
const UNIFORM = 0x40, COPY_DST = 0x08, COMPUTE = 0x4;

/** The layout entry of `p`'s places at binding `binding` (none when it has none). */
export const placeLayout = (p: Pass, binding: number): GPUBindGroupLayoutEntry[] =>
  (p.places?.length ? [{ binding, visibility: COMPUTE, buffer: { type: 'uniform' } }] : []);

export class PlaceBuffer {
  private readonly buffer: GPUBuffer | null = null;
  /** Each list of values (joined by commas) → its slot's byte offset. */
  private readonly slots = new Map<string, number>();

  /** A slot for the places of every pass of `shaders`' rendering `profile` (each variant, the train
   *  entry's and the optimizer's). */
  constructor(device: GPUDevice, shaders: WgslProgram, profile: WgslProfile) {
    const { train, optimizer: o } = shaders;
    const passes = [...Object.values(shaders.profiles[profile]).flatMap((e) => e.kernels.flatMap((k) => allPasses(k, true))),
      ...(train?.[profile].kernels.flatMap((k) => k.passes) ?? []), ...(o ? [...o.passes, ...o.derived.flatMap((d) => (d.pass ? [d.pass] : []))] : [])];
    const lists = new Map(passes.filter((p) => p.places?.length).map((p) => [p.places!.join(','), p.places!]));
    if (!lists.size) return;
    const align = device.limits.minUniformBufferOffsetAlignment;
    const stride = Math.ceil(Math.max(...[...lists.values()].map((l) => 16 * placeVectors(l.length))) / align) * align;
    const words = new Uint32Array((stride / 4) * lists.size);
    [...lists].forEach(([key, list], i) => {
      this.slots.set(key, i * stride);
      words.set(list, (i * stride) / 4);
    });
    this.buffer = device.createBuffer({ size: words.byteLength, usage: UNIFORM | COPY_DST });
    device.queue.writeBuffer(this.buffer, 0, words);
  }

  /** The bind group entry of `p`'s places at binding `binding` (none when it has none). */
  entries(p: Pass, binding: number): GPUBindGroupEntry[] {
    if (!p.places?.length) return [];
    const offset = this.slots.get(p.places.join(','));
    if (offset === undefined || !this.buffer) throw new Error(`archc runtime: pass ${p.name} reads places its backend was not made with`);
    return [{ binding, resource: { buffer: this.buffer, offset, size: 16 * placeVectors(p.places.length) } }];
  }

  destroy(): void {
    this.buffer?.destroy();
  }
}
