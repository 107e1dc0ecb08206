// q8/q4 weights on WebGPU: how the device holds one (`quantWords`) and which rendering of a kernel
// runs over it (`quantPasses`: its format's passes, or with 8-bit activations those that round the
// product's input first, codegen/wgsl/quant.ts).

import type { ActivationFormat } from '../act-quant.ts';
import { RuntimeError } from '../errors.ts';
import { type QuantDType, type QuantTensor, quantTensorBytes } from '../quant.ts';
import type { KernelShaders, Pass, WgslEntry } from './shaders.ts';

/** A q8/q4 weight as the device holds it: its code bytes (a multiple of 16: N·K is one of 32),
 *  then its f16 scales, the whole padded to a u32. */
export function quantWords(q: QuantTensor): Uint8Array {
  const out = new Uint8Array(Math.ceil(quantTensorBytes(q) / 4) * 4);
  out.set(new Uint8Array(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength));
  out.set(new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength), q.codes.byteLength);
  return out;
}

/** The passes of kernel `k` whose matrix went up as `f` (none: as stored): a product's `a8` set
 *  with activations 'q8' (an embedding has none: it is no product). */
export function quantPasses(k: KernelShaders, f: QuantDType | undefined, activations: ActivationFormat): readonly Pass[] {
  if (!f || !k.quant) return k.passes;
  return activations === 'q8' && k.quant.a8 ? k.quant.a8[f] : k.quant.passes[f];
}

/** `activations`, or RT303 where 'q8' is asked of WGSL rendered without its passes (an older package). */
export function checkA8Passes(entries: readonly WgslEntry[], activations: ActivationFormat): ActivationFormat {
  if (activations === 'q8' && !entries.some((e) => e.kernels.some((k) => k.quant?.a8))) {
    throw new RuntimeError('RT303', ['activations q8 with this WGSL', 'it has no passes for 8-bit activations: rebuild the package (archc build), or leave activations at f32']);
  }
  return activations;
}
