// The CPU reference kernels: f32 activations, row-major, packed batches of sequences.

export type { KvCache, SeqSlice } from './seq.ts';
export type { SsdDims } from './ssd.ts';
export { add, clamp, exp, gelu, mul, neg, silu, softplus } from './elementwise.ts';
export { split } from './layout.ts';
export { embedding, linear, linearIn } from './linear.ts';
export { layernorm, rmsnorm, rmsnormGated } from './norm.ts';
export { causalConv1d } from './conv.ts';
export { ssdChunked, ssdSequential } from './ssd.ts';
export { attention, rope } from './attention.ts';
