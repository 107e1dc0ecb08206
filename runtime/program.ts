// The kernel program: what a generated package executes. One step per kernel, in order, over
// numbered buffers; `release` lists the buffers whose last reader is that step (the memory plan).
// It is plain data (written into the generated package as a TypeScript constant).

import type { AttrValue, Dim, StateKind } from './ops.ts';
import type { DType } from './tensor.ts';

export interface ProgramBuffer {
  readonly id: number;
  readonly shape: readonly Dim[];
  readonly dtype: DType;
}

export interface ProgramStep {
  readonly op: string;
  readonly inputs: readonly (number | null)[];
  readonly outputs: readonly number[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** Index into `states` for stateful ops. */
  readonly state?: number;
  readonly scope: string;
  /** Buffers that no later step reads: free after this step. */
  readonly release: readonly number[];
}

export interface ProgramState {
  readonly name: string;
  readonly kind: StateKind;
  readonly per: 'token' | 'sequence';
  readonly shape: readonly number[];
}

export interface ProgramWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly buffer: number;
}

/** A param bound to config.json keys, with the value the program was built for. */
export interface ProgramBinding {
  readonly param: string;
  readonly keys: readonly string[];
  readonly value: unknown;
}

export interface Program {
  readonly format: 'archc-program/1';
  readonly model: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly bindings: readonly ProgramBinding[];
  readonly inputs: readonly { readonly name: string; readonly buffer: number }[];
  readonly outputs: readonly { readonly name: string; readonly buffer: number }[];
  readonly buffers: readonly ProgramBuffer[];
  readonly weights: readonly ProgramWeight[];
  readonly states: readonly ProgramState[];
  readonly steps: readonly ProgramStep[];
}
