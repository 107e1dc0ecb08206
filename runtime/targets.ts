// The run targets: every backend a model can run on, listed once, each with how it opens. Model.load's
// `backend` option, the CLI's --backend choices and the package README iterate this list; what a
// target ships in a package is its build-target record (codegen/targets.ts). A backend's code loads
// only when it is opened (a CPU user never loads Dawn, the CUDA driver or wasm worker threads), so
// this module imports no backend (only types, the errors and the limits).

import type { ActivationFormat } from './act-quant.ts';
import type { Backend as KernelBackend } from './backend.ts';
import { RuntimeError } from './errors.ts';
import { RUNTIME_LIMITS } from './limits.ts';
import type { LoadOptions } from './model.ts';
import type { PanelTarget } from './load-pool.ts';
import { type DerivedWeight, type Program, type ProgramWeight, stateFormatMismatch } from './program.ts';

/** A backend as Model.load uses it: the kernel interface, and whether every weight was made. */
export type LoadableBackend = KernelBackend & {
  complete(): boolean;
  /** Called once the weights are in, before the first run (wasm: restarts its workers where packing
   *  added a memory, and chooses whether its products read ahead). */
  loaded?(opts: LoadOptions): Promise<void>;
  /** wasm: where the packed weights went, memory by memory. */
  memories?(): MemoryReport[];
  /** wasm: room for a product weight's panels that the loader fills itself (runtime/load-pool.ts),
   *  then uploads as a stand-in without data; null where the backend packs it at upload. */
  panelTarget?(w: ProgramWeight, dtype: 'f32' | 'bf16'): PanelTarget | null;
  /** wasm: the same for the parts of a concatenation, one target each, or null. */
  concatPanels?(d: DerivedWeight, dtype: 'f32' | 'bf16'): PanelTarget[] | null;
};

/** One WebAssembly memory of the wasm backend: its index (0 holds the arena, state slots and
 *  scratch besides), its size in bytes, and the bytes and count of the packed weights in it. */
export interface MemoryReport {
  readonly memory: number;
  readonly bytes: number;
  readonly weightBytes: number;
  readonly weights: number;
  /** 'i64': the one memory64 memory (LoadOptions.wasmMemory64), which holds every weight. */
  readonly address?: 'i64';
}

export interface RunTarget {
  readonly name: string;
  /** One line for --help and the docs. */
  readonly about: string;
  /** Whether Model.load picks it when no backend is named (the first that says yes). */
  byDefault(opts: LoadOptions): boolean;
  /** LoadOptions.activations it runs (runtime/act-quant.ts). */
  readonly activations: readonly ActivationFormat[];
  /** Whether its attention kernels take a sliding window (`attention(..., window: W)`); one that
   *  does not refuses such a program (RT177) rather than attend to every key. */
  readonly slidingWindow: boolean;
  /** Whether it keeps SSM states in bf16 (runtime/program.ts withSsmState); one that does not
   *  refuses such a program (RT178) rather than read them as f32. */
  readonly bf16States: boolean;
  /** Whether archc forward --grads --engine kernels runs the kernel program's train entry on it
   *  (runtime/cpu/train.ts runTrain; the wasm families in runtime/wasm/train.ts; on WebGPU
   *  runtime/webgpu/train.ts runTrainAsync, and archc train's steps whole there: cli/train-webgpu.ts). */
  readonly trainEntry: boolean;
  /** `weightBytes`: what the loaded weights will hold (runtime/load.ts loadedWeightBytes), for a backend that sizes its memory by it. */
  open(program: Program, opts: LoadOptions, weightBytes?: number): Promise<LoadableBackend>;
}

export const RUN_TARGETS = [
  {
    name: 'wasm',
    about: 'matrix products, SSD and attention as WebAssembly SIMD kernels on worker threads (the default)',
    byDefault: (opts) => opts.wasmKernels !== undefined,
    activations: ['f32', 'q8'],
    slidingWindow: true,
    bf16States: true,
    trainEntry: true,
    async open(program, opts, weightBytes): Promise<LoadableBackend> {
      if (!opts.wasmKernels) throw new RuntimeError('RT303', ['backend wasm without its kernel module', 'pass wasmKernels (written by archc build)']);
      const [{ openWasmBackend }, { chooseMemory64 }] = await Promise.all([import('./wasm/backend.ts'), import('./wasm/choice.ts')]);
      // one memory64 memory, or 32-bit memories (runtime/wasm/choice.ts). The program module has no
      // memory64 form yet (its stages would run on the reference functions), so left out, memory64 is
      // chosen only where no program module is given; several memories keep the module otherwise
      const auto = opts.wasmMemory64 === undefined && opts.wasmProgram ? false : opts.wasmMemory64;
      const m64 = chooseMemory64(auto, opts.wasmKernels64, weightBytes ?? 0);
      // the default thread count is the wasm backend's own (a browser's cores); fewer where this thread cannot wait for workers
      const b = await openWasmBackend(program, m64 ? m64.kernels : opts.wasmKernels, opts.threads === undefined ? undefined : checkedThreads(opts.threads),
        m64 ? undefined : opts.wasmProgram ?? undefined, opts.wasmMemoryBytes, m64?.support);
      b.useActivations(opts.activations ?? 'f32');
      return b;
    },
  },
  {
    name: 'cpu',
    about: 'the reference engine (TypeScript; products split across worker threads)',
    byDefault: () => true,
    activations: ['f32', 'q8'],
    slidingWindow: true,
    bf16States: true,
    trainEntry: true,
    async open(program, opts): Promise<LoadableBackend> {
      const [{ CpuBackend }, { defaultThreads, linearPool }] = await Promise.all([import('./cpu/backend.ts'), import('./cpu/pool.ts')]);
      const threads = checkedThreads(opts.threads ?? defaultThreads());
      const b = new CpuBackend(program, threads > 1 ? linearPool(threads) : undefined);
      b.useActivations(opts.activations ?? 'f32');
      return b;
    },
  },
  {
    name: 'webgpu',
    about: 'WGSL kernels through WebGPU: Dawn in Node (the `webgpu` package), navigator.gpu in a browser',
    byDefault: () => false,
    activations: ['f32', 'q8'],
    slidingWindow: true,
    bf16States: true,
    trainEntry: true,
    async open(program, opts): Promise<LoadableBackend> {
      if (!opts.wgsl) throw new RuntimeError('RT303', ['backend webgpu without the program\'s WGSL', 'pass LoadOptions.wgsl (the package\'s WGSL)']);
      const other = stateFormatMismatch(program, opts.wgsl.bf16States);
      if (other) throw new RuntimeError('RT303', [`WGSL rendered for SSM states in ${other.kernels} with a program that keeps them in ${other.program}`, 'render the WGSL from this program (codegen/wgsl/render.ts renderProgram), or load with the state format the package was built for']);
      const { createWebGpuBackend } = await import('./webgpu/backend.ts');
      return createWebGpuBackend(program, opts.wgsl, { ...(opts.capacity !== undefined ? { capacity: opts.capacity } : {}), ...opts.webgpu, ...(opts.activations ? { activations: opts.activations } : {}) });
    },
  },
  {
    name: 'cuda',
    about: 'CUDA kernels on an NVIDIA GPU through its driver (libcuda, via koffi)',
    byDefault: () => false,
    activations: ['f32', 'q8'],
    slidingWindow: true,
    bf16States: true,
    trainEntry: false,
    async open(program, opts): Promise<LoadableBackend> {
      const b = await (await import('./cuda/backend.ts')).openCudaBackend(program, opts.cuda);
      try {
        b.useActivations(opts.activations ?? 'f32');
      } catch (e) {
        b.dispose();
        throw e;
      }
      return b;
    },
  },
] as const satisfies readonly RunTarget[];

/** Where the kernels run (see RUN_TARGETS). */
export type Backend = (typeof RUN_TARGETS)[number]['name'];

export const BACKEND_NAMES: readonly Backend[] = RUN_TARGETS.map((t) => t.name);

/** The backend Model.load runs on when none is named. */
export function defaultBackend(opts: LoadOptions): Backend {
  return RUN_TARGETS.find((t) => t.byDefault(opts))!.name;
}

export function runTarget(name: string): RunTarget {
  const t = RUN_TARGETS.find((r) => r.name === name);
  if (!t) throw new RuntimeError('RT303', [`backend ${name}`, `this package runs on: ${BACKEND_NAMES.join(', ')}`]);
  return t;
}

/** Throws RT178 where `program` keeps SSM states in bf16 and `target` does not, RT177 where it has a
 *  sliding-window attention kernel that `target` does not run. */
export function checkTargetRuns(program: Program, target: RunTarget): void {
  const bf16 = target.bf16States ? undefined : program.states.find((s) => s.dtype === 'bf16');
  if (bf16) throw new RuntimeError('RT178', [target.name, bf16.name]);
  if (target.slidingWindow) return;
  for (const e of Object.values(program.entries)) {
    for (const k of e.kernels) {
      if ((k.family === 'attention' || k.family === 'attention_decode') && k.attrs.window) throw new RuntimeError('RT177', [target.name, k.name, k.attrs.window]);
    }
  }
}

/** A thread count asked for, checked. */
export function checkedThreads(threads: number): number {
  const most = RUNTIME_LIMITS.threads.value;
  if (!Number.isInteger(threads) || threads < 1 || threads > most) throw new RuntimeError('RT303', [`threads ${threads}`, `give an integer from 1 to ${most} (limit ${RUNTIME_LIMITS.threads.name})`]);
  return threads;
}
