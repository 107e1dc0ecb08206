// Quantised weights for the product and backend tests: random weights quantised as the runtime does
// (runtime/quant.ts), as a kernel test's input, and a backend that quantises what it is given on upload.

import type { Backend } from '../../runtime/backend.ts';
import type { Program } from '../../runtime/program.ts';
import { type QuantDType, type QuantTensor, isQuant, quantize } from '../../runtime/quant.ts';
import { planQuant } from '../../runtime/quantplan.ts';
import { uniform } from '../runtime/cpu/check.ts';
import type { OpInput } from './kernels.ts';

/** A random [N, K] weight quantised to `dtype`, a spread of magnitudes so groups differ in scale. */
export function spreadQuantWeight(rand: () => number, N: number, K: number, dtype: QuantDType): QuantTensor {
  const v = uniform(rand, N * K);
  for (let i = 0; i < v.length; i += 32) {
    const m = 0.01 + 2 * rand();
    for (let j = i; j < i + 32; j++) v[j]! *= m;
  }
  const q = quantize({ dtype: 'f32', shape: [N, K], data: v }, dtype);
  if ('reason' in q) throw new Error(q.reason);
  return q.q;
}

/** An f32 weight [N, K] uniform in [-1, 1), and its `f` form for the upload (a kernel test's input). */
export function quantWeightInput(rand: () => number, N: number, K: number, f: QuantDType): OpInput {
  const data = uniform(rand, N * K, -1, 1);
  const q = quantize({ dtype: 'f32', shape: [N, K], data }, f);
  if ('reason' in q) throw new Error(q.reason);
  return { weight: { dtype: 'f32', shape: [N, K], data }, upload: q.q };
}

/** `b`, with the weights loading would quantise to `format` quantised as they are uploaded (as
 *  Model.load's `quantize` does); counts them in `quantised`. */
export function quantiseOnUpload<B extends Backend>(b: B, p: Program, format: QuantDType, quantised: { n: number }): B {
  const plan = planQuant(p, format, (n) => p.weights.find((w) => w.name === n)?.shape ?? []);
  const upload = b.uploadWeight.bind(b);
  b.uploadWeight = (w, t) => {
    const f = plan.formats.get(w.name);
    if (!f || isQuant(t)) return upload(w, t);
    const q = quantize(t, f);
    if ('reason' in q) throw new Error(`${w.name}: ${q.reason}`);
    quantised.n++;
    upload(w, q.q);
  };
  return b;
}
