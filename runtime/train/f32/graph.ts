// The graph the f32 training engine walks, as a structural type: compiler/ir.ts' Graph satisfies it
// (and so does graph.json read back), so runtime/ needs no import from the compiler.

import type { SeqSlice } from '../../cpu/seq.ts';
import type { Gemm } from './gemm.ts';

export type AttrValue = number | boolean | string | readonly AttrValue[];

export interface TrainGraph {
  readonly inputs: readonly { readonly name: string; readonly value: number }[];
  readonly outputs: readonly { readonly name: string; readonly value: number }[];
  readonly values: readonly {
    readonly id: number;
    readonly type: { readonly shape: readonly (number | string)[] };
    readonly source: { readonly kind: 'input' | 'weight'; readonly name: string } | { readonly kind: 'node' };
  }[];
  readonly nodes: readonly { readonly op: string; readonly inputs: readonly (number | null)[]; readonly outputs: readonly number[]; readonly attrs: Readonly<Record<string, AttrValue>> }[];
  readonly weights: readonly { readonly name: string; readonly shape: readonly number[] }[];
}

/** An operand: f32 floats, or integer ids/positions. */
export type Data32 = Float32Array | Int32Array;

/** One node's evaluation in the engine (as compiler/vjp.ts' VjpCtx, in f32, with the products). */
export interface Ctx32 {
  readonly ins: readonly (Data32 | null)[];
  readonly shapes: readonly (readonly number[] | null)[];
  readonly outShapes: readonly (readonly number[])[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
  readonly seqs: readonly SeqSlice[];
  readonly gemm: Gemm;
}

/** One op of the engine: the forward in f32 with what its backward saves, and the backward. */
export interface Op32 {
  forward(c: Ctx32): { outs: Float32Array[]; saved?: unknown };
  backward(c: Ctx32, saved: unknown, dOuts: readonly (Float32Array | null)[]): (Float32Array | null)[];
}
