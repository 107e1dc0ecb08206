// The WebGPU backend's load options, apart from its code: Model.load's public types import this
// file, which names none of WebGPU's global types (GPU, GPUDevice, …), so a generated package's
// .d.ts compile under `tsc --strict` without skipLibCheck in a project that does not declare them
// (TypeScript 5.9 has no WebGPU in its DOM lib; 6.0 has, and `@webgpu/types` beside it conflicts).

import type { ActivationFormat } from '../act-quant.ts';
import type { WgslProfile } from './shaders.ts';

/** How buffers larger than one binding are split (split.ts). */
export interface SplitOptions {
  /** The most bytes one binding may hold, below what the device allows (tests force splits with a
   *  small value); default: the device's maxStorageBufferBindingSize and maxBufferSize. */
  readonly maxBindingBytes?: number;
  /** The most tokens one batch carries: sizes the parts of the arena and scratch buffers when they
   *  split (default: the model's `context` param, else 4096). */
  readonly maxBatchTokens?: number;
  /** The most sequences one batch carries (default: `stateSlots`, at most maxBatchTokens). */
  readonly maxBatchSequences?: number;
  /** The state slots a split state pool holds at least (default 8). */
  readonly stateSlots?: number;
  /** Tokens a state slot holds, as the pool's parts are planned (default: the model's `context`
   *  param, else 4096; `Model.load` passes its `capacity`). */
  readonly capacity?: number;
  /** LoadOptions.activations (Model.load passes it): with 'q8' the products over q8/q4 weights run
   *  the passes that round their input first (runtime/webgpu/quant.ts), and scratch is planned for them. */
  readonly activations?: ActivationFormat;
}

/** The WebGPU entry point as an option takes it: `navigator.gpu`, or Dawn's `create([...])` of the
 *  `webgpu` package. Only what the backend calls is named, structurally, so a `GPU` from any
 *  declaration of WebGPU's types (the DOM lib, `@webgpu/types`) is one. */
export interface GpuEntry {
  requestAdapter(options?: object): Promise<unknown>;
}

export interface WebGpuOptions extends SplitOptions {
  /** A GPU object (navigator.gpu); default: navigator.gpu in a browser, else Dawn from the `webgpu` package. */
  readonly gpu?: GpuEntry;
  /** Dawn instance flags in Node (e.g. `backend=null` to validate shaders without running them). */
  readonly dawnFlags?: readonly string[];
  /** Which rendering of the program to run (default: by the adapter, `adapterProfile`). Naming
   *  one also says WebGPU on a CPU adapter is meant: no warning then. */
  readonly profile?: WgslProfile;
  /** Where a warning goes (once per adapter and process): default process.emitWarning in Node
   *  (`--no-warnings` silences it), console.warn elsewhere. */
  readonly onWarning?: (message: string) => void;
}
