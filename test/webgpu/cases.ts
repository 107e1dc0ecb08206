// Kernel cases shared by the WebGPU kernel tests (test/webgpu/kernels.test.ts, split.test.ts): one
// op, its attributes, and its inputs at T token rows, run through test/helpers/kernels.ts' runOp.

import type { Attrs } from '../../compiler/ops.ts';
import type { EntryName } from '../../runtime/program.ts';
import { type DType, fromF32 } from '../../runtime/tensor.ts';
import type { OpInput } from '../helpers/kernels.ts';
import { uniform } from '../runtime/cpu/check.ts';

export interface Case {
  readonly op: string;
  readonly attrs?: Attrs;
  /** The op's inputs for T token rows (seeded). */
  readonly inputs: (T: number, rand: () => number) => OpInput[];
  readonly Ts: readonly number[];
  readonly modes?: readonly EntryName[];
}

/** T rows of an activation of `shape`, uniform in [lo, hi). */
export const act = (rand: () => number, T: number, shape: readonly number[], lo = -1, hi = 1): OpInput =>
  ({ act: uniform(rand, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
/** A weight of `shape` in `dtype`, uniform in [lo, hi). */
export const weight = (rand: () => number, shape: readonly number[], dtype: DType = 'f32', lo = -1, hi = 1): OpInput =>
  ({ weight: fromF32(uniform(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape, dtype) });
