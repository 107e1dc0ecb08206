// The model a generated package exports: loads a Hugging Face checkpoint directory for its
// program, then runs packed prefill, decode with the hybrid cache, loss, and streaming generation.

import { type ActivationFormat, checkActivations } from './act-quant.ts';
import type { StatePool } from './backend.ts';
import type { CudaLoadOptions } from './cuda/backend.ts';
import { type SlotState, runBatch, runBatchAsync } from './engine.ts';
import { RuntimeError } from './errors.ts';
import { type TensorSource, fetchCheckpoint, isUrl } from './fetch.ts';
import { type HfConfig, otherModel } from './hfconfig.ts';
import { type LoadProgress, checkCheckpoint, checkConfig, checkFits, loadedWeightBytes, nodeCheckpoint, onNode } from './load.ts';
import { LoadPool } from './load-pool.ts';
import { defaultThreads } from './wasm/threads.ts';
import { readAllWeights } from './load-weights.ts';
import { RUNTIME_LIMITS } from './limits.ts';
import { causalLmLoss } from './loss.ts';
import type { EntryName, Program } from './program.ts';
import { type Rows, countOf, forwardRows, labelIds, oneEach, stepRows } from './inputs.ts';
import type { QuantDType } from './quant.ts';
import { packedBits, packedSource } from './quantckpt.ts';
import { type QuantPlan, type QuantizeOption, planQuant } from './quantplan.ts';
import { type GenerateManyOptions, type GenerateOptions, type GeneratedToken, type GeneratedTokenOf, generateMany, generateOne } from './generate.ts';
import { type SavedSequence, type SequenceState, Sequences } from './sequences.ts';
import { type Backend, type LoadableBackend, type MemoryReport, checkTargetRuns, defaultBackend, runTarget } from './targets.ts';
import type { Tokenizer } from './tokenizer.ts';
import type { WebGpuOptions } from './webgpu/options.ts';
import type { WgslProgram } from './webgpu/shaders.ts';

/** A backend a model can load its weights into. */

/** Where the kernels run: one of the run targets (runtime/targets.ts). A GPU's results are read
 *  asynchronously: on `webgpu` use the async methods (forwardAsync, stepAsync, prefillAsync,
 *  decodeAsync; generate is async). */
export type { Backend, LoadProgress, SavedSequence, SequenceState };

export interface LoadOptions {
  /** Where to run: `wasm` (matrix products, SSD and attention in WebAssembly SIMD) or `cpu` (the
   *  reference engine). Default: wasm when its kernel module is at hand (`wasmKernels`: a package
   *  and the CLI always pass it), else cpu. */
  readonly backend?: Backend;
  /** The program's WGSL (the generated package passes its own; `renderProgram` in codegen/wgsl). */
  readonly wgsl?: WgslProgram;
  /** Where WebGPU comes from (default: navigator.gpu, else the `webgpu` package). */
  readonly webgpu?: WebGpuOptions;
  /** Tokens one sequence may hold (its slot's KV cache rows); default: the model's `context` param. */
  readonly capacity?: number;
  /** Accept checkpoint tensors the model does not use. */
  readonly allowExtra?: boolean;
  /** Called after each weight is read and uploaded: weights done of all, its name, and the
   *  checkpoint bytes read so far of all it reads, with the rate (runtime/load.ts LoadProgress). */
  readonly onProgress?: (done: number, total: number, tensor: string, progress: LoadProgress) => void;
  /** Bytes of memory the loaded weights may take (default, in Node: the machine's available memory
   *  or a cgroup limit's room, whichever is less; in a browser unchecked). A load that needs more is
   *  refused (RT146) before anything is read or allocated. */
  readonly memoryAvailable?: number;
  /** Threads for matrix products (default: ARCHC_THREADS, else the machine's cores, at most 8; in a
   *  browser navigator.hardwareConcurrency, at most 8). On `wasm` in a browser, threads run only in
   *  a Web Worker of a cross-origin isolated page; elsewhere (the main thread) the model runs on one
   *  (see `Model.threads`). */
  readonly threads?: number;
  /** Refuse weights holding NaN or ±Infinity (RT144); one pass over each tensor (default true). */
  readonly checkWeights?: boolean;
  /** The `wasm` backend's kernel module, or its variants in order of preference (`archc build`
   *  writes the fused multiply-add and the plain one into the package's src/kernels.ts, and the
   *  package's `Model.load` passes them): the first the engine accepts runs (runtime/wasm/module.ts). */
  readonly wasmKernels?: Uint8Array | WebAssembly.Module | readonly Uint8Array[];
  /** The `wasm` backend's module of this program's own kernels (codegen/wasm/program.ts; `archc
   *  build` writes it into the package). Without it the stages, norms, conv and SSD step run on the
   *  reference families; null: run them there though a package has it (as on memory64, which the
   *  program module has no form for: the 32-bit run to compare one with). */
  readonly wasmProgram?: Uint8Array | WebAssembly.Module | null;
  /** The `wasm` backend's most bytes per WebAssembly memory (default and at most 4 GiB, the most a
   *  memory can address; whole 64 KiB pages). Memory 0 keeps the arena, state slots and scratch and
   *  the packed weights that leave it a quarter free; the rest go to further memories of their own
   *  (runtime/wasm/kernels.ts). Lower it to spread a small model (tests). */
  readonly wasmMemoryBytes?: number;
  /** The `wasm` backend's memory: true, one memory64 memory (past 4 GiB; the engine must have
   *  memory64, and `wasmKernels64` be given); false, 32-bit memories as above; left out, memory64
   *  where the engine has it and the packed weights outgrow one 32-bit memory (runtime/wasm/choice.ts).
   *  On memory64 the stages run on the reference families (the program module is 32-bit only). */
  readonly wasmMemory64?: boolean;
  /** The `wasm` backend's products read their weights ahead of use (runtime/wasm/layout.ts
   *  READ_AHEAD_FLAG): left out, timed both ways once the weights are in and the faster kept (where
   *  they are 64 MB or more; runtime/wasm/read-ahead.ts). The same results either way. */
  readonly wasmReadAhead?: boolean;
  /** The kernel module's memory64 form, its variants as `wasmKernels` (archc build writes them). */
  readonly wasmKernels64?: Uint8Array | WebAssembly.Module | readonly Uint8Array[];
  /** backend 'cuda': where the kernels, the driver and the device come from. */
  readonly cuda?: CudaLoadOptions;
  /** Quantise the products' and embeddings' weights as they stream in (runtime/quant.ts, the
   *  choice of weights runtime/quantplan.ts): `'q8'`, `'q4'`, or a default with per-tensor
   *  overrides. A checkpoint quantised already (compressed-tensors pack-quantized) loads as it is. */
  readonly quantize?: QuantizeOption;
  /** Where `quantize` runs: `'wasm'` (default) in WebAssembly SIMD, on `threads` worker threads
   *  overlapped with the reads where workers and SharedArrayBuffer exist, else on the loading
   *  thread (runtime/quantize-wasm.ts); `'js'` the reference (runtime/quant.ts) on the loading
   *  thread. Both give the same codes and scales, bit for bit; without SIMD 'wasm' is the reference. */
  readonly quantizer?: 'wasm' | 'js';
  /** How products over q8/q4 weights read their input: `'f32'` (default: exactly, the weights
   *  dequantised) or `'q8'`, rounded to 8 bits per group of 32 first (W4A8/W8A8 as llama.cpp's CPU
   *  kernels: the integer-dot kernels then multiply integers only; runtime/act-quant.ts defines the
   *  rounding, the same on every backend). */
  readonly activations?: ActivationFormat;
  /** The most sequences open at once (default 256; more is RT333). A handle dropped without release
   *  frees its slot when garbage collected (an abandoned generate); releasing frees it at once. */
  readonly maxSequences?: number;
}

/** What a load quantised: each weight's format, and the candidates kept as stored (with why). */
export interface QuantReport {
  readonly formats: ReadonlyMap<string, QuantDType>;
  readonly kept: QuantPlan['kept'];
  /** True when the checkpoint held the codes already. */
  readonly prequantized: boolean;
  /** Where the weights were quantised: `wasm, N workers`, `wasm, the loading thread` (no workers
   *  or shared memory here), `js` (LoadOptions.quantizer 'js', or no WebAssembly SIMD); null when
   *  the checkpoint held the codes or nothing was quantised. */
  readonly quantizer: string | null;
  /** How the products over these weights read their input (LoadOptions.activations). */
  readonly activations: ActivationFormat;
}

export interface ForwardInput {
  /** Token ids of all sequences, concatenated. */
  readonly ids: ArrayLike<number>;
  /** Position ids (a 0 starts a new sequence), as in Hugging Face's padding-free mode. */
  readonly positions?: ArrayLike<number>;
  /** Cumulative sequence lengths [0, l0, l0+l1, …, T] (alternative to positions). */
  readonly cuSeqlens?: readonly number[];
  /** Sequence index of each token (alternative to positions). */
  readonly seqIdx?: ArrayLike<number>;
  /** Labels for the causal-LM loss (shifted inside; -100 ignored). */
  readonly labels?: ArrayLike<number>;
  readonly zLossCoefficient?: number;
}

export interface ForwardResult {
  /** [T, vocab], row-major. */
  readonly logits: Float32Array;
  readonly tokens: number;
  readonly vocab: number;
  readonly loss?: number;
}

export type { GenerateManyOptions, GenerateOptions, GeneratedToken, GeneratedTokenOf } from './generate.ts';

export class Model {
  /** The state slots of this model's sequences. */
  private readonly pool: StatePool;
  private readonly seqs: Sequences; // the handles over them

  private constructor(
    readonly program: Program,
    readonly config: HfConfig,
    readonly tokenizer: Tokenizer | null,
    private readonly backend: LoadableBackend,
    readonly capacity: number,
    readonly vocab: number,
    /** The checkpoint directory (or URL) it was loaded from. */
    readonly dir: string,
    private readonly tokenizerPath: string,
    /** The quantised weights, or null when every weight is as stored. */
    readonly quantization: QuantReport | null = null,
    maxSequences: number = RUNTIME_LIMITS.sequences.value,
  ) {
    this.pool = backend.createStatePool(capacity);
    this.seqs = new Sequences(this.pool, capacity, maxSequences, program);
  }

  /** Loads `dir` (config.json, model.safetensors or its index, tokenizer.json) for `program`: a
   *  directory in Node, a URL (fetched, tensor by tensor) in a browser or when it starts with http(s)://. */
  static async loadProgram(program: Program, dir: string, opts: LoadOptions = {}): Promise<Model> {
    const target = runTarget(opts.backend ?? defaultBackend(opts));
    checkTargetRuns(program, target);
    const files = isUrl(dir) || !onNode() ? await fetchCheckpoint(dir) : nodeCheckpoint(dir);
    /** A checkpoint of another model fails its checks: said first (RT166), with the first problem. */
    const named = <T>(check: () => T): T => {
      try {
        return check();
      } catch (e) {
        const other = e instanceof RuntimeError && ['RT164', 'RT210', 'RT160', 'RT161', 'RT162'].includes(e.code) ? otherModel(files.config, program.model) : null;
        if (!other) throw e;
        throw new RuntimeError('RT166', [dir, other, program.model, (e as RuntimeError).text.split('\n').slice(0, 3).join('; ')], { file: files.configPath }, { cause: e });
      }
    };
    const { reads, chosen } = named(() => checkConfig(program, files.config, files.configPath));
    // the model's program records the values its checkpoint chose (model.program.params.tie)
    if (Object.keys(chosen).length) program = { ...program, params: { ...program.params, ...chosen } };
    /** The checkpoint tensor a program weight reads (a tied head: the embedding's). */
    const tensorOf = (name: string) => reads.get(name) ?? name;
    const raw = await files.tensors();
    let ckpt: TensorSource = raw;
    try {
      const bits = packedBits(files.config, files.configPath);
      const packed = bits ? await packedSource(raw, bits) : null;
      if (packed && opts.quantize !== undefined) throw new RuntimeError('RT175', [dir, [...new Set(packed.formats.values())].join(', ')]);
      if (packed) ckpt = packed.source;
      // the headers checked against the program, and the room for the weights, before the backend
      // allocates anything or a byte of tensor data is read
      named(() => checkCheckpoint(program, ckpt, opts, packed ? new Set(packed.formats.keys()) : new Set(), tensorOf));
      const plan: QuantPlan = packed ? { formats: packed.formats, kept: [] }
        : opts.quantize !== undefined ? planQuant(program, opts.quantize, (n) => ckpt.tensors.get(tensorOf(n))?.shape ?? [])
        : { formats: new Map(), kept: [] };
      checkActivations(opts, target, plan);
      const weightBytes = loadedWeightBytes(program, ckpt, plan.formats, tensorOf, target.name);
      await checkFits(weightBytes, opts, dir, target.name, plan.formats);
      // the load pool's workers (stored tensors of a local file: runtime/load-pool.ts) boot, ~40 ms,
      // while the backend opens
      const rowsPool = onNode() && !isUrl(dir) && !packed && !plan.formats.size ? LoadPool.start(opts.threads ?? defaultThreads()) : null;
      let backend: Awaited<ReturnType<typeof target.open>>;
      try {
        backend = await target.open(program, opts, weightBytes);
      } catch (e) {
        rowsPool?.close();
        throw e;
      }
      let quantizer: string | null = null;
      try {
        quantizer = await readAllWeights({ program, ckpt, plan, packed, backend, opts, dir, shared: new Set(reads.values()), tensorOf, rowsPool });
        await backend.loaded?.(opts);
      } catch (e) {
        rowsPool?.close();
        backend.dispose();
        throw e;
      }
      const tokenizer = await files.tokenizer();
      const ctx = program.params.context;
      const capacity = opts.capacity ?? (typeof ctx === 'number' ? ctx : 4096);
      if (!Number.isInteger(capacity) || capacity < 1) throw new RuntimeError('RT303', [`capacity ${capacity}`, 'give a positive integer']);
      const maxSequences = opts.maxSequences ?? RUNTIME_LIMITS.sequences.value;
      if (!Number.isInteger(maxSequences) || maxSequences < 1) throw new RuntimeError('RT303', [`maxSequences ${maxSequences}`, 'give a positive integer']);
      const vocab = program.outputs.logits ?? fail('the program has no logits output');
      const quantization = plan.formats.size || plan.kept.length ? { ...plan, prequantized: !!packed, quantizer, activations: opts.activations ?? 'f32' } : null;
      return new Model(program, files.config, tokenizer, backend, capacity, vocab, dir, files.path('tokenizer.json'), quantization, maxSequences);
    } finally {
      ckpt.close();
    }
  }

  /** A fresh sequence in a state slot of its own (conv and SSM states, KV caches); every call checks its handle. */
  newSequence(): SequenceState {
    return this.seqs.create();
  }

  /** A new sequence that continues exactly like `s` (its slot copied). */
  copySequence(s: SequenceState): SequenceState {
    return this.seqs.copy(s);
  }

  /** The sequence's state as bytes (a header, then the slot: runtime/sequences.ts) for `restoreSequence`. */
  saveSequence(s: SequenceState): SavedSequence {
    const st = this.seqs.state(s, 'saveSequence');
    return this.seqs.pack(st.length, this.pool.save(st.slot));
  }

  /** A new sequence from saved bytes, checked whole (RT335, RT336) before it takes a slot. */
  restoreSequence(saved: SavedSequence): SequenceState {
    return this.seqs.restore(saved);
  }

  /** saveSequence on any backend (a GPU's state is read asynchronously). */
  async saveSequenceAsync(s: SequenceState): Promise<SavedSequence> {
    const { slot, length } = this.seqs.state(s, 'saveSequence');
    return this.seqs.pack(length, this.pool.saveAsync ? await this.pool.saveAsync(slot) : this.pool.save(slot));
  }

  /** restoreSequence on any backend. */
  async restoreSequenceAsync(saved: SavedSequence): Promise<SequenceState> {
    return this.restoreSequence(saved);
  }

  /** Gives the sequence's slot back to the pool; the handle is refused from then on (RT330). */
  releaseSequence(s: SequenceState): void {
    this.seqs.release(s);
  }

  /** Sequences open now (made and not released or collected). */
  get openSequences(): number {
    return this.seqs.open;
  }

  /** Threads its matrix products run on (the calling thread counts): what `threads` asked for,
   *  or fewer where this thread may not wait for workers (wasm on a browser's main thread). */
  get threads(): number {
    return this.backend.threads ?? 1;
  }

  /** The wasm backend's WebAssembly memories and the packed weights in each (memory 0 first; see
   *  LoadOptions.wasmMemoryBytes); empty on other backends. */
  get memories(): readonly MemoryReport[] {
    return this.backend.memories?.() ?? [];
  }

  /** Bytes of one sequence's state slot. */
  get slotBytes(): number {
    return this.pool.slotBytes;
  }

  /** Frees the weights and the thread pool's copies of them. */
  dispose(): void {
    this.seqs.close();
    this.backend.dispose();
  }

  /** Packed prefill from fresh states: logits for every token, and the loss when labels are given. */
  forward(input: ForwardInput): ForwardResult {
    const b = this.forwardBatch(input);
    try {
      return this.forwardResult(input, this.run('forward', b.ids, b.positions, b.seqs, b.sequences));
    } finally {
      b.sequences[0]?.pool.dispose?.();
    }
  }

  /** forward on any backend (a GPU's logits are read asynchronously). */
  async forwardAsync(input: ForwardInput): Promise<ForwardResult> {
    const b = this.forwardBatch(input);
    try {
      return this.forwardResult(input, await this.runAsync('forward', b.ids, b.positions, b.seqs, b.sequences));
    } finally {
      b.sequences[0]?.pool.dispose?.(); // its slots die with the call
    }
  }

  private forwardBatch(input: ForwardInput): Rows & { sequences: SlotState[] } {
    const rows = forwardRows(this, input);
    // A forward pass keeps no state: its sequences get slots of a pool of their own, as long as the
    // longest of them.
    const pool = this.backend.createStatePool(rows.longest);
    return { ...rows, sequences: rows.seqs.map(() => ({ pool, slot: pool.acquire(), length: 0, capacity: pool.capacity })) };
  }

  private forwardResult(input: ForwardInput, logits: Float32Array): ForwardResult {
    const T = logits.length / this.vocab;
    let loss: number | undefined;
    if (input.labels) {
      const labels = labelIds(input.labels, T, this.vocab);
      loss = causalLmLoss(logits, T, this.vocab, labels, input.zLossCoefficient ?? 0).loss;
    }
    return { logits, tokens: T, vocab: this.vocab, loss };
  }

  /** Runs new tokens of several sequences at once, continuing from their states: logits [Σ lens, vocab],
   *  or with `lastOnly` [sequences, vocab] for each sequence's last token (the head runs on those alone). */
  step(chunks: readonly ArrayLike<number>[], states: readonly SequenceState[], lastOnly = false): Float32Array {
    const b = this.stepBatch(chunks, states, lastOnly, 'step');
    return this.run(b.entry, b.ids, b.positions, b.seqs, b.sequences);
  }

  /** step on any backend (a GPU's logits are read asynchronously). */
  stepAsync(chunks: readonly ArrayLike<number>[], states: readonly SequenceState[], lastOnly = false): Promise<Float32Array> {
    const b = this.stepBatch(chunks, states, lastOnly, 'step');
    return this.runAsync(b.entry, b.ids, b.positions, b.seqs, b.sequences);
  }

  /** The batch of a step: every handle, count and id checked before anything is allocated. */
  private stepBatch(chunks: readonly ArrayLike<number>[], states: readonly SequenceState[], lastOnly: boolean, what: string) {
    const S = countOf(chunks, 'sequences');
    if (countOf(states, 'states') !== S) throw new RuntimeError('RT301', [`${S} sequences but ${states.length} states`]);
    const sequences = Array.from(states, (s) => this.seqs.state(s, what));
    return { ...stepRows(this, chunks, sequences, lastOnly), sequences };
  }

  private run(entry: EntryName, tokens: Int32Array, positions: Int32Array, seqs: readonly { start: number; len: number }[], sequences: readonly SlotState[]): Float32Array {
    return runBatch(this.backend, this.program, entry, { tokens, positions, seqs, sequences }).get('logits') ?? fail('the program has no logits output');
  }

  private async runAsync(entry: EntryName, tokens: Int32Array, positions: Int32Array, seqs: readonly { start: number; len: number }[], sequences: readonly SlotState[], view = false): Promise<Float32Array> {
    return (await runBatchAsync(this.backend, this.program, entry, { tokens, positions, seqs, sequences }, view)).get('logits') ?? fail('the program has no logits output');
  }

  /** Prefill of several prompts; returns their states and each prompt's last-token logits. */
  prefill(prompts: readonly ArrayLike<number>[]): { states: SequenceState[]; logits: Float32Array[] } {
    const states = this.newSequences(prompts);
    try {
      return { states, logits: this.perPrompt(this.step(prompts, states, true), prompts.length) };
    } catch (e) {
      for (const s of states) this.seqs.release(s);
      throw e;
    }
  }

  /** prefill on any backend. */
  async prefillAsync(prompts: readonly ArrayLike<number>[]): Promise<{ states: SequenceState[]; logits: Float32Array[] }> {
    const states = this.newSequences(prompts);
    try {
      return { states, logits: this.perPrompt(await this.stepAsync(prompts, states, true), prompts.length) };
    } catch (e) {
      for (const s of states) this.seqs.release(s);
      throw e;
    }
  }

  /** A fresh sequence for each prompt, all within the bound or none. */
  private newSequences(prompts: readonly ArrayLike<number>[]): SequenceState[] {
    this.seqs.reserve(countOf(prompts, 'prompts'));
    return Array.from(prompts, () => this.seqs.create());
  }

  private perPrompt(last: Float32Array, n: number): Float32Array[] {
    return Array.from({ length: n }, (_, i) => last.slice(i * this.vocab, (i + 1) * this.vocab));
  }

  /** One token per sequence through the cache; [n, vocab]. */
  decode(tokens: readonly number[], states: readonly SequenceState[]): Float32Array {
    const b = this.stepBatch(oneEach(tokens), states, false, 'decode');
    return this.run(b.entry, b.ids, b.positions, b.seqs, b.sequences);
  }

  /** decode on any backend. `view`: the logits as a view of the backend's own memory where it has
   *  one (CPU, wasm), valid only until the model next runs (a step, decode, prefill or forward),
   *  which overwrites it; no copy (a 1 MB copy a step at 8 rows of 32,000, and its garbage, cost a
   *  server ~4 % of its 8-stream tokens). */
  decodeAsync(tokens: readonly number[], states: readonly SequenceState[], opts: { view?: boolean } = {}): Promise<Float32Array> {
    const b = this.stepBatch(oneEach(tokens), states, false, 'decode');
    return this.runAsync(b.entry, b.ids, b.positions, b.seqs, b.sequences, opts.view ?? false);
  }

  /** Streams generated tokens for a prompt (text needs the tokenizer; ids do not); with
   *  `sequence`, continuing that sequence (runtime/generate.ts). */
  generate(prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
    return generateOne(this, prompt, opts);
  }

  /** Several prompts generated together, one batched decode step per token; each token says whose
   *  it is (`index`), and each sequence samples with seed + its index and stops on its own. */
  generateMany(prompts: readonly (string | readonly number[])[], opts: GenerateManyOptions = {}): AsyncGenerator<GeneratedTokenOf> {
    return generateMany(this, prompts, opts);
  }

  encode(text: string): number[] {
    if (!this.tokenizer) throw new RuntimeError('RT400', [this.tokenizerPath, 'the checkpoint has no tokenizer.json; pass token ids instead']);
    return this.tokenizer.encode(text);
  }
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
