// Runtime errors as data: a stable code, its text in one table, and where it happened (file, tensor,
// config key). Bad checkpoints, configs, tokenizer files, sampling options and inputs are
// RuntimeError; tests assert the code.

/** Every runtime error text. `{0}`, `{1}` … are filled from the arguments. */
export const RUNTIME_MESSAGES = {
  // 10x: finding and opening a checkpoint
  RT100: 'cannot read {0}: {1}',
  RT101: 'no checkpoint in {0}: expected model.safetensors or model.safetensors.index.json',
  // 11x: the safetensors header
  RT110: '{0}: file is {1} bytes, too short for the 8-byte header length',
  RT111: '{0}: header length is 0',
  RT112: '{0}: header length {1} is larger than the {2} bytes that follow it (truncated file?)',
  RT113: '{0}: header length {1} is over the limit of {2} bytes',
  RT114: '{0}: header is not valid UTF-8',
  RT115: '{0}: header is not valid JSON: {1}',
  RT116: '{0}: header must be a JSON object, found {1}',
  RT117: '{0}: __metadata__ must map strings to strings: {1}',
  RT118: '{0}: header JSON nests deeper than the limit {1} = {2}',
  // 12x: one tensor entry in the header
  RT120: '{0}: tensor {1}: {2}',
  RT121: '{0}: tensor {1}: unknown dtype {2} (known: {3})',
  RT122: '{0}: tensor {1}: shape entries must be non-negative integers, found {2}',
  RT123: '{0}: tensor {1}: data_offsets [{2}, {3}] hold {4} bytes but shape {5} of {6} needs {7}',
  RT124: '{0}: tensor {1}: data_offsets [{2}, {3}] lie outside the data section of {4} bytes (truncated file?)',
  RT125: '{0}: tensors {1} [{2}, {3}] and {4} [{5}, {6}] overlap',
  RT126: '{0}: {1} bytes of the data section [{2}, {3}) belong to no tensor: {4}',
  // 13x: sharded checkpoints
  RT130: '{0}: invalid index: {1}',
  RT131: '{0}: shard {1} (for tensor {2}) does not exist',
  RT132: '{0}: tensor {1} is listed for shard {2}, but that shard does not contain it',
  RT133: '{0}: shard path {1} (for tensor {2}) leaves the checkpoint directory',
  // 14x: reading tensors
  RT140: 'no tensor {1} in checkpoint {0}',
  RT141: 'checkpoint {0} is closed',
  RT142: '{0}: cannot read tensor {1}: {2}',
  RT143: '{0}: tensor {1}: {2} value {3} at index {4} does not fit in i32',
  RT144: '{0}: tensor {1} holds {2} non-finite values (the first, {3}, at index {4}); pass --no-check-weights (checkWeights: false) to load it anyway',
  RT145: '{0}: tensor {1} {2} needs {3} bytes in memory, over the limit {4} = {5}',
  RT146: '{0}: the weights need {1} bytes on the {2} backend{3}, more than the {4} bytes this process may take ({5}); {6}',
  // 15x: writing checkpoints
  RT150: 'cannot write {0}: tensor {1}: {2}',
  RT151: 'cannot write {0}: {1}',
  RT152: 'cannot write {0}: a weight takes {1} bytes to make, more than this machine\'s memory ({2} bytes)',
  // 16x: checking a checkpoint against the shapes a model expects
  RT160: '{0}: tensor {1} has shape {3}, expected {2}',
  RT161: '{0}: tensor {1} has dtype {3}, expected {2}',
  RT162: '{0}: missing tensor {1} (expected shape {2})',
  RT163: '{0}: unexpected tensor {1} (shape {2})',
  RT164: '{0}: checkpoint does not match the model ({1} problems):\n{2}',
  RT165: '{0}: tensor {1} is stored as {2}, an integer dtype; the model reads it as a float weight',
  RT166: '{0} looks like a checkpoint of another model: its config.json says {1}, and this program is {2} ({3})',
  // 17x: quantised weights (runtime/quant.ts, quantplan.ts, quantckpt.ts)
  RT170: 'quantize override {0}: {1}',
  RT171: 'the {0} backend does not read {1} weights yet; run with --backend cpu (or load without quantising)',
  RT172: '{0}: quantization_config{1} = {2} is not supported: {3}',
  RT173: '{0}: tensor {1}: {2}',
  RT174: 'quantize option {0}: expected {1}',
  RT175: '{0} holds weights quantised already ({1}); load it without --quantize',
  RT176: 'tensor {0} cannot be quantised to {1}: {2}; keep it as stored with --keep {0}=none',
  RT177: 'the {0} backend does not run sliding-window attention yet ({1}, window {2}); run with --backend cpu',
  RT178: 'the {0} backend does not keep SSM states in bf16 yet ({1}); run with --ssm-state f32',
  // 2xx: config.json
  RT200: 'cannot read config {0}: {1}',
  RT201: '{0}:{1}:{2}: invalid JSON: {3}',
  RT202: '{0}: config must be a JSON object, found {1}',
  RT203: '{0}:{1}:{2}: invalid __float__ value {3} (expected "Infinity", "-Infinity", "NaN" or a number)',
  RT204: '{0}: no config.json in the checkpoint; it says which architecture the weights are for (pass --hf-config FILE to use another)',
  RT205: 'cannot read config {0}: {1} bytes, over the limit {2} = {3}',
  RT210: '{0} does not match this program:\n  {1}\n{2}',
  // 3xx: inputs to a running model
  RT300: 'token id {0} at position {1} is out of range for a vocabulary of {2}',
  RT301: 'bad batch: {0}',
  RT302: 'cache full: {0}; load with a larger capacity (the load option capacity; archc run/forward --capacity N)',
  RT303: 'unsupported {0}; {1}',
  RT309: 'the {0} backend could not reserve its memory ({1}): this process may run under an address-space limit (ulimit -v; WebAssembly reserves several GiB of address space per memory); raise the limit, or use the reference engine (--backend cpu)',
  RT304: '{0} {1} at index {2} must be an integer in [0, {3})',
  RT305: 'a run of {0} tokens in {1} sequences needs {2} bytes, over the limit {3} = {4}',
  RT306: 'environment variable {0} = {1}: expected {2}',
  RT307: 'generate: a prompt of {0} tokens and maxTokens {1} need {2} tokens of the sequence, over its capacity {3}; load with a larger capacity (the load option capacity; archc run --capacity N), lower maxTokens, or pass stopAtContext (archc run --stop-at-context) to stop at the capacity',
  // 31x: sampling options and the logits they apply to
  RT310: 'sampling option temperature must be a finite number ≥ 0, got {0}',
  RT311: 'sampling option topK must be an integer ≥ 0, got {0}',
  RT312: 'sampling option topP must be in (0, 1], got {0}',
  RT313: 'sampling option minP must be in [0, 1], got {0}',
  RT314: 'sampling option repetitionPenalty must be a finite number > 0, got {0}',
  RT315: 'sampling option seed must be a safe integer, got {0}',
  RT316: 'cannot sample from logits of length {0}',
  RT317: 'logits contain NaN at index {0}',
  RT318: 'logits have no finite maximum (largest is {0})',
  RT319: 'the logits hold {0} non-finite values (the first, {1}, at token {2}, vocab index {3}): the weights or the model are broken',
  // 32x: loss inputs
  RT320: 'label {0} at position {1} ({2}) is out of range for a vocabulary of {3}; only -100 is ignored',
  RT321: 'logits hold {0} values, expected T × V = {1} × {2} = {3}',
  RT322: 'labels hold {0} values, expected T = {1}',
  RT323: 'T and V must be non-negative integers (V > 0), got T = {0}, V = {1}',
  RT324: 'zLossCoefficient must be a finite number ≥ 0, got {0}',
  // 33x: sequence handles and saved sequences (runtime/sequences.ts)
  RT330: '{0}: the sequence was released (slot {1} may now hold another sequence); make a new one with newSequence',
  RT331: '{0}: the sequence belongs to another model',
  RT332: '{0}: {1} is not a sequence; use one from newSequence, copySequence, prefill or restoreSequence',
  RT333: 'too many live sequences: {0} open and {1} more asked for, over the limit maxSequences = {2}; release the ones you no longer need (releaseSequence) or load with a larger maxSequences',
  RT334: '{0}: the model was disposed',
  RT335: 'cannot restore a sequence: {0}',
  RT336: 'cannot restore a sequence: state value {0} at float {1} is not finite',
  // 4xx: tokenizer
  RT400: 'cannot load tokenizer {0}: {1}',
  RT401: '{0}: invalid JSON: {1}',
  RT402: '{0}: {1}',
  RT403: '{0}: rejected by the tokenizer library: {1}',
  RT404: '{0}: {1} {2} is not in the vocabulary',
  RT405: '{0}: {1} must be a token string or an object with a string "content", found {2}',
  RT406: '{0}: {1} is true but no {2} is set',
  RT407: 'token id {0} at position {1} is not a non-negative integer',
  RT408: 'cannot encode: the tokenizer has no id for piece {0} and no unk_token',
  RT409: '{0}: {1}, over the limit {2} = {3}',
  RT410: '{0}: the chat template cannot be used: {1}',
  // 5xx: the WebGPU backend
  RT500: 'no WebGPU adapter: {0}',
  RT501: 'the model does not fit this WebGPU device ({0}):\n  {1}',
  RT502: 'the WebGPU device was lost: {0}',
  RT503: 'the WebGPU device rejected the shader of kernel {0} ({1}):\n{2}',
  RT504: 'the {0} backend reads results asynchronously: use {1}',
  RT505: '{0} needs {1} bytes on the WebGPU device; its buffers hold {2}: {3}',
  RT506: 'the WebGPU backend cannot run the train entry: {0}',
  // 6xx: training (runtime/train/, cli/train.ts)
  RT600: '{0}:{1}: {2}',
  RT601: 'cannot resume from {0}: {1}',
  RT602: 'training diverged at step {0}: {1}; lower --lr or check the data',
  RT603: 'the f32 training engine (--engine wasm) has no gradient for {0} yet: train this model with --engine kernels (the default) or --engine reference',
  RT604: 'Trainer option {0}: {1}',
  RT605: 'cannot save the run to {0}: {1}',
  RT606: 'the Trainer cannot train on {0}: {1}',
  // 7xx: the CUDA backend
  RT700: 'no CUDA driver: cannot load {0} ({1}); the cuda backend needs an NVIDIA GPU and its driver (libcuda.so.1)',
  RT701: 'the CUDA driver ({0}) failed to initialise: {1}; is an NVIDIA GPU present and its kernel module loaded (nvidia-smi)?',
  RT702: 'no CUDA device: the driver ({0}) reports {1} devices{2}',
  RT703: 'cannot load the CUDA module {0} (kernels {1}) on {2}: {3}',
  RT704: 'CUDA call {0} failed: {1}',
  RT705: 'no CUDA kernels for this program in {0}: {1}',
  RT706: 'cannot compile CUDA kernel {0} for {1} with NVRTC: {2}',
  RT707: 'the cuda backend needs the koffi package (npm install koffi): {0}',
} as const;

export type RuntimeCode = keyof typeof RUNTIME_MESSAGES;

/** Where a runtime error happened; every field is optional. `line`/`col` are 1-based. */
export interface RuntimeErrorContext {
  readonly file?: string;
  readonly tensor?: string;
  readonly key?: string;
  readonly line?: number;
  readonly col?: number;
  /** For an error that gathers several (checkShapes): the individual problems. */
  readonly problems?: readonly RuntimeError[];
}

export function runtimeMessage(code: RuntimeCode, args: readonly unknown[]): string {
  return RUNTIME_MESSAGES[code].replace(/\{(\d+)\}/g, (_, i: string) => String(args[Number(i)]));
}

/** A bad checkpoint, config or input. `message` is `CODE: text`; the text names the place. */
export class RuntimeError extends Error {
  readonly code: RuntimeCode;
  readonly text: string;
  readonly file?: string;
  readonly tensor?: string;
  readonly key?: string;
  readonly line?: number;
  readonly col?: number;
  readonly problems?: readonly RuntimeError[];

  constructor(code: RuntimeCode, args: readonly unknown[] = [], ctx: RuntimeErrorContext = {}, options?: { cause?: unknown }) {
    const text = runtimeMessage(code, args);
    super(`${code}: ${text}`, options);
    this.name = 'RuntimeError';
    this.code = code;
    this.text = text;
    if (ctx.file !== undefined) this.file = ctx.file;
    if (ctx.tensor !== undefined) this.tensor = ctx.tensor;
    if (ctx.key !== undefined) this.key = ctx.key;
    if (ctx.line !== undefined) this.line = ctx.line;
    if (ctx.col !== undefined) this.col = ctx.col;
    if (ctx.problems !== undefined) this.problems = ctx.problems;
  }
}

/** Throws a RuntimeError; `fail` reads better at call sites than `throw new`. */
export function fail(code: RuntimeCode, args: readonly unknown[], ctx: RuntimeErrorContext = {}, cause?: unknown): never {
  throw new RuntimeError(code, args, ctx, cause === undefined ? undefined : { cause });
}

/** A short description of a thrown value (fs errors keep their code: `ENOENT: no such file …`). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
