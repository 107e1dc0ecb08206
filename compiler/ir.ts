// The model graph IR: plain, serialisable data. Values are numbered tensors (inputs, weights or
// node outputs); nodes are primitive ops in execution order; state lists what stateful ops carry.
// compiler/printer.ts prints it; compiler/schema.ts validates its JSON form (graph.json).

import type { Attrs, Dim, StateKind, TensorType } from './ops.ts';
import type { DType } from '../runtime/tensor.ts';

export type { Attrs, Dim, TensorType, DType, StateKind };

/** Where a graph element came from in the .arch text. */
export interface Loc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export type ValueSource =
  | { readonly kind: 'input'; readonly name: string }
  | { readonly kind: 'weight'; readonly name: string }
  | { readonly kind: 'node'; readonly node: number; readonly index: number };

export interface Value {
  readonly id: number;
  readonly type: TensorType;
  readonly source: ValueSource;
}

export interface Node {
  readonly id: number;
  readonly op: string;
  /** Value ids in the op's slot order; null for an absent optional slot. */
  readonly inputs: readonly (number | null)[];
  readonly outputs: readonly number[];
  readonly attrs: Attrs;
  /** The instance path that emitted the node, e.g. `model.layers.3.mamba`. */
  readonly scope: string;
  readonly loc?: Loc;
}

export interface Weight {
  /** The checkpoint tensor name, e.g. `model.layers.0.mamba.in_proj.weight`. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Block types from the model down to the declaring block, e.g. `['Mamba2', 'Linear']`. */
  readonly blocks: readonly string[];
  readonly loc?: Loc;
}

export interface State {
  /** `<node scope>:<kind>`, e.g. `model.layers.0.mamba.conv1d:conv`. */
  readonly name: string;
  readonly node: number;
  readonly kind: StateKind;
  readonly per: 'token' | 'sequence';
  readonly shape: readonly number[];
  readonly dtype: 'f32';
  /** A KV cache of sliding-window attention: the slot holds the last `window` rows, a ring. */
  readonly window?: number;
}

export type ParamValue = number | boolean | string | readonly ParamValue[];

export interface Graph {
  readonly format: 'archc-graph/1';
  readonly model: string;
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly inputs: readonly { readonly name: string; readonly value: number }[];
  readonly outputs: readonly { readonly name: string; readonly value: number }[];
  readonly values: readonly Value[];
  readonly nodes: readonly Node[];
  readonly weights: readonly Weight[];
  readonly state: readonly State[];
}
