// archc train: a causal LM trained on packed text from a .arch file (issue 20). The loop
// (runtime/train/trainer.ts) runs on a gradient engine (runtime/train/engine.ts): the kernel program's
// train entry on the wasm backend (`--engine kernels`, the default; with `--backend webgpu` whole steps
// on WebGPU, AdamW there too: cli/train-webgpu.ts), the f32 engine on the wasm kernels
// (runtime/train/f32/, `--engine wasm`) or the float64 reference (`--engine reference`); the
// run directory is one Hugging Face checkpoint (config.json, model.safetensors, the tokenizer)
// plus optimizer.safetensors, trainer_state.json, metrics.jsonl and loss.svg, rewritten whole at
// each save, so `--resume RUN` continues bit for bit. docs/TRAINING.md "The training loop".

import { type Hash, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { type Compiled, compileFile } from '../compiler/compile.ts';
import { computeStats } from '../compiler/stats.ts';
import type { Graph } from '../compiler/ir.ts';
import { hfConfigText, initWeights } from '../compiler/init.ts';
import { RuntimeError, describeError } from '../runtime/errors.ts';
import { createRng } from '../runtime/rng.ts';
import type { Tokenizer } from '../runtime/tokenizer.ts';
import { assertShapes } from '../runtime/checkpoint-shapes.ts';
import { openCheckpoint } from '../runtime/safetensors.ts';
import { toF32 } from '../runtime/tensor.ts';
import { readTrainSettings, readTrainState, writeTrainState } from '../runtime/train/checkpoint.ts';
import { type RowBatch, type SamplerPosition, packedBatches } from '../runtime/train/data-rows.ts';
import type { TrainEngine } from '../runtime/train/engine.ts';
import { ADAMW_DEFAULTS, newParam } from '../runtime/train/optim.ts';
import { type Variant, compareMarkdown } from '../runtime/train/compare.ts';
import { lossCurveSvg } from '../runtime/train/svg.ts';
import { type Metric, type TrainConfig, type TrainState, evaluateAsync, trainStepAsync } from '../runtime/train/trainer.ts';
import { type CommonOpts, setsOf, withCommon, withPreset } from './common.ts';
import { printWarnings } from './errors.ts';
import { OUTPUT_MARKER, checkReplaceable, exitOnSignals, writeDirAtomic, yieldToSignals } from './fsutil.ts';
import { numberFlag, optionsFor, usage } from './run.ts';

interface TrainFlags extends CommonOpts {
  data?: string; eval?: string; steps?: string; seqLen?: string; batch?: string; lr?: string; warmup?: string; clip?: string;
  weightDecay?: string; seed?: string; weights?: string; tokenizer?: string; saveEvery?: string; fileOrder?: boolean;
  dataCache?: string; out?: string; resume?: string; force?: boolean; engine?: string; backend?: string;
}

/** What a run is, saved in trainer_state.json and read back by --resume. */
interface Settings {
  model: string; modelName?: string; hfConfig?: string; set: string[]; data: string; dataBytes: number; eval?: string; weights?: string;
  seqLen: number; batch: number; seed: number; shuffle: boolean; steps: number; saveEvery: number;
  /** The data order's scheme (ROWS_LOADER): a run of another replays other batches. */
  loader: string;
  lr: number; warmup: number; clip: number; weightDecay: number; beta1: number; beta2: number; eps: number;
  /** The gradient engine (a run saved before engines had a name ran on the reference). */
  engine?: EngineName;
  /** Where --engine kernels runs the train entry: wasm (absent), or webgpu (the optimizer there too). */
  backend?: 'webgpu';
}

type EngineName = 'wasm' | 'reference' | 'kernels';
const ENGINES: readonly EngineName[] = ['wasm', 'reference', 'kernels'];

/** Flags that define a run: with --resume they come from the run, and giving one is refused. */
const RUN_FLAGS: [keyof TrainFlags, string][] = [['data', '--data'], ['eval', '--eval'], ['seqLen', '--seq-len'], ['batch', '--batch'], ['lr', '--lr'],
  ['warmup', '--warmup'], ['clip', '--clip'], ['weightDecay', '--weight-decay'], ['seed', '--seed'], ['weights', '--weights'], ['tokenizer', '--tokenizer'],
  ['fileOrder', '--file-order'], ['hfConfig', '--hf-config'], ['preset', '--preset'], ['model', '--model'], ['engine', '--engine'], ['backend', '--backend']];

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/** Rows over the whole corpus from a token file, a random phase and permutation per epoch
 *  (runtime/train/data-rows.ts); runs saved before it (a 1024-document streaming shuffle) have none. */
const ROWS_LOADER = 'rows-1';

export function registerTrainCommand(p: Command): void {
  withPreset(withCommon(p.command('train [files...]').description('train a causal LM on packed text (f32 gradients on the wasm kernels, or the float64 reference; AdamW); checkpoints resume bit-exactly; several models: trained on the same batches and compared')))
    .option('--data <file>', 'training text (documents separated by the EOS token\'s text) or JSONL (a "text" field per line)')
    .option('--eval <file>', 'evaluation text or JSONL: loss and bits per byte at each save')
    .option('--steps <n>', 'optimizer steps in the run (the schedule\'s length); with --resume, the new total')
    .option('--seq-len <n>', 'tokens a packed row holds (default 256)')
    .option('--batch <n>', 'rows per step, flattened into one packed batch (default 8)')
    .option('--lr <x>', 'peak learning rate (default 1e-3)')
    .option('--warmup <n>', 'linear warmup steps before the cosine decay (default 0)')
    .option('--clip <x>', 'clip the gradients\' global norm to this; 0 turns clipping off (default 1)')
    .option('--weight-decay <x>', 'AdamW decoupled weight decay, on matrices only (default 0.1)')
    .option('--seed <n>', 'seed of the random init and the data order (default 0)')
    .option('--weights <dir>', 'start from this checkpoint (fine-tuning) instead of a random init')
    .option('--tokenizer <dir>', 'the directory holding tokenizer.json (default: --weights)')
    .option('--save-every <n>', 'save the run every n steps (default: at the end only)')
    .option('--file-order', 'rows in the file\'s order, documents cut at their starts (default: a seeded random order over the whole file)')
    .option('--data-cache <dir>', 'where the data\'s token files are kept and reused (default: archc-data in the OS temp directory)')
    .option('-o, --out <dir>', 'the run directory to write (with --resume: default the run itself)')
    .option('--resume <dir>', 'continue the run saved in this directory')
    .option('--force', 'replace the output directory even if it holds files archc did not write')
    .option('--engine <name>', 'gradient engine: kernels (the kernel program\'s train entry on the wasm backend, ARCHC_THREADS threads; the default), wasm (the f32 engine on the wasm kernels) or reference (float64, exact, slow)')
    .option('--backend <name>', 'with --engine kernels: wasm (the default) or webgpu (whole steps on the device, AdamW too; Dawn, or SwiftShader through VK_ICD_FILENAMES)')
    .action(async (files: string[], o: TrainFlags) => (files.length > 1 ? compare(files, o) : train(files[0], o)));
}

/** The float64 reference engine: the f32 masters widened exactly, the graph evaluated by
 *  lossGradients (here, not in runtime/: the runtime ships without the compiler; passed in, as
 *  compiler/grad.ts loads the runtime's loader, which `archc --help` must not). */
export function referenceEngine(g: Graph, lossGradients: typeof import('../compiler/grad.ts').lossGradients): TrainEngine {
  const widen = (w: ReadonlyMap<string, Float32Array>) => new Map([...w].map(([k, v]) => [k, Float64Array.from(v)]));
  return {
    weights: g.weights.map((w) => ({ name: w.name, shape: w.shape })),
    step: (w, b) => lossGradients(g, widen(w), b),
    evaluate: (w, b) => lossGradients(g, widen(w), b, { grads: false }),
  };
}

/** The f32 engine on the wasm kernels (runtime/train/f32/), on ARCHC_THREADS threads (default: the cores). */
async function wasmEngine(g: Graph): Promise<{ engine: TrainEngine; close: () => void }> {
  const [{ wasmKernelVariants }, { F32Engine, openWasmGemm }, { defaultThreads }] = await Promise.all([
    import('../codegen/wasm/assemble.ts'), import('../runtime/train/f32/engine.ts'), import('../runtime/wasm/threads.ts')]);
  const { gemm, kernels } = await openWasmGemm(await wasmKernelVariants(), defaultThreads());
  return { engine: new F32Engine(g, gemm), close: () => kernels.close() };
}

/** The kernel program's train entry on the wasm backend (runtime/wasm/train.ts), ARCHC_THREADS threads, or on WebGPU. */
async function kernelsEngine(c: Compiled, backend: Settings['backend']): Promise<{ engine: TrainEngine; close: () => void }> {
  if (backend === 'webgpu') return (await import('./train-webgpu.ts')).webgpuEngine(c);
  const [{ trainEntryBackend }, { TrainEntryEngine }] = await Promise.all([import('./train-entry.ts'), import('../runtime/train/entry-engine.ts')]);
  const be = await trainEntryBackend(c, 'wasm');
  return { engine: new TrainEntryEngine(be), close: () => be.dispose() };
}

const int = (v: string | undefined, flag: string, min: number, dflt: number) => numberFlag(v, flag, { int: true, min, what: min > 0 ? 'a positive integer' : 'an integer ≥ 0' }) ?? dflt;
const real = (v: string | undefined, flag: string, dflt: number, positive = false) =>
  numberFlag(v, flag, positive ? { minExclusive: 0, what: 'a positive number' } : { min: 0, what: 'a number ≥ 0' }) ?? dflt;

/** The run's settings: from RUN/trainer_state.json with --resume, else from the flags. */
function settingsFrom(file: string | undefined, o: TrainFlags): { s: Settings; resumed?: Resumed } {
  if (o.resume) {
    const dir = resolve(o.resume);
    if (file !== undefined) usage('--resume', `a resumed run trains the model it was started with; drop ${JSON.stringify(file)}`);
    for (const [k, flag] of RUN_FLAGS) if (o[k] !== undefined) usage(flag, 'it cannot be combined with --resume', `the run's settings are in ${join(dir, 'trainer_state.json')}`);
    if (o.set.length) usage('--set', 'it cannot be combined with --resume', `the run's settings are in ${join(dir, 'trainer_state.json')}`);
    const saved = readTrainSettings(dir);
    const s = saved.settings as unknown as Settings;
    const stateFile = join(dir, 'trainer_state.json');
    const bad = (['seqLen', 'batch', 'seed', 'steps', 'saveEvery', 'lr', 'warmup', 'clip', 'weightDecay', 'beta1', 'beta2', 'eps', 'dataBytes'] as const)
      .find((k) => typeof s[k] !== 'number' || !Number.isFinite(s[k])) ?? (['model', 'data'] as const).find((k) => typeof s[k] !== 'string');
    if (bad) throw new RuntimeError('RT601', [dir, `${stateFile}: settings.${bad} is missing or of the wrong type`], { file: stateFile, key: `settings.${bad}` });
    if (s.loader !== ROWS_LOADER || typeof s.shuffle !== 'boolean') throw new RuntimeError('RT601', [dir, `${stateFile}: its data order is not ${ROWS_LOADER} (a run saved before rows were shuffled over the whole file); its batches cannot be replayed`], { file: stateFile, key: 'settings.loader' });
    const at = (saved.settings as { sampler?: Partial<SamplerPosition> }).sampler;
    if (!Number.isSafeInteger(at?.epoch) || !Number.isSafeInteger(at?.batch)) throw new RuntimeError('RT601', [dir, `${stateFile}: settings.sampler (the data's epoch and batch) is missing or bad`], { file: stateFile, key: 'settings.sampler' });
    // the batches are replayed from the data file: another file would not continue the same run
    const size = existsSync(s.data) ? statSync(s.data).size : -1;
    if (size !== s.dataBytes) throw new RuntimeError('RT601', [dir, `its data file ${s.data} ${size < 0 ? 'is gone' : `holds ${size} bytes, not the ${s.dataBytes} it was trained on`}; the batches it trained on cannot be replayed`], { file: s.data });
    const steps = int(o.steps, '--steps', 1, s.steps);
    if (steps <= saved.step) usage('--steps', `the run in ${dir} has taken ${saved.step} steps already; give a larger total`);
    return { s: { ...s, steps, saveEvery: int(o.saveEvery, '--save-every', 1, s.saveEvery) }, resumed: { step: saved.step, dir, sampler: at as SamplerPosition } };
  }
  if (file === undefined) usage('train', 'give the model file (MODEL.arch), or --resume RUN');
  if (!o.data) usage('--data', 'train needs a data file (text or JSONL)');
  if (!o.steps) usage('--steps', 'train needs the number of optimizer steps');
  if (!o.out) usage('--out', 'train needs the run directory to write (-o RUN)');
  const steps = int(o.steps, '--steps', 1, 1);
  return {
    s: {
      model: resolve(file), modelName: o.model, hfConfig: o.hfConfig && resolve(o.hfConfig), set: setsOf(file, o), data: resolve(o.data), dataBytes: dataSize(o.data), eval: o.eval && resolve(o.eval), weights: o.weights && resolve(o.weights),
      seqLen: int(o.seqLen, '--seq-len', 1, 256), batch: int(o.batch, '--batch', 1, 8), seed: int(o.seed, '--seed', 0, 0),
      shuffle: !o.fileOrder, loader: ROWS_LOADER, steps, saveEvery: int(o.saveEvery, '--save-every', 1, steps),
      lr: real(o.lr, '--lr', 1e-3, true), warmup: int(o.warmup, '--warmup', 0, 0), clip: real(o.clip, '--clip', 1), weightDecay: real(o.weightDecay, '--weight-decay', ADAMW_DEFAULTS.weightDecay),
      beta1: ADAMW_DEFAULTS.beta1, beta2: ADAMW_DEFAULTS.beta2, eps: ADAMW_DEFAULTS.eps, engine: engineFlag(o.engine), ...backendFlag(o),
    },
  };
}

function engineFlag(v: string | undefined): EngineName {
  if (v === undefined) return 'kernels';
  if (!(ENGINES as readonly string[]).includes(v)) usage('--engine', `${JSON.stringify(v)} is not an engine`, `one of ${ENGINES.join(', ')}`);
  return v as EngineName;
}

function backendFlag(o: TrainFlags): Pick<Settings, 'backend'> {
  if (o.backend === undefined || o.backend === 'wasm') return {};
  if (o.backend !== 'webgpu') usage('--backend', `the train entry does not train on ${JSON.stringify(o.backend)}`, 'wasm or webgpu');
  if ((o.engine ?? 'kernels') !== 'kernels') usage('--backend', 'it is the backend of --engine kernels (the default)', 'drop --engine or give --engine kernels');
  return { backend: 'webgpu' };
}

/** The data file's size (RT100 naming it when it cannot be read), kept to refuse resuming on another file. */
function dataSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (e) {
    throw new RuntimeError('RT100', [path, describeError(e)], { file: path });
  }
}

/** The files a run directory holds besides the state, read now (a resumed run rewrites its own). */
function readSmallFiles(dir: string, names: readonly string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const n of names) if (existsSync(join(dir, n))) out.set(n, readFileSync(join(dir, n)));
  return out;
}

/** One model in training: its settings, graph and engine, the loop's state and what it has recorded. */
interface Run {
  readonly s: Settings; readonly g: Graph; readonly engine: TrainEngine; readonly state: TrainState; readonly config: TrainConfig;
  /** Ends the engine's threads. */
  readonly close: () => void;
  readonly tok: Tokenizer; readonly tokFiles: Map<string, Buffer>; readonly configText: string;
  readonly metrics: Metric[]; readonly evals: Record<string, number>[];
  /** Seconds spent in training steps, and the packed tokens they read (tokens/s; not the first step). */
  secs: number; packed: number;
  /** sha256 of every trained batch's ids and positions, in order: equal runs read equal batches. */
  readonly digest: Hash;
  /** The next batch of the data (saved with the run: a resumed run starts there). */
  sampler: SamplerPosition;
  readonly dataCache?: string;
}

/** A run continued from its directory: where it stopped. */
interface Resumed { readonly step: number; readonly dir: string; readonly sampler: SamplerPosition }

/** Compiles the model, loads the tokenizer, sizes the gradients and sets up the state (fresh, from
 *  --weights, or resumed). */
async function prepare(s: Settings, o: TrainFlags, resumed?: Resumed): Promise<Run> {
  const source = resumed?.dir ?? s.weights;
  const tokDir = resumed ? resumed.dir : o.tokenizer ? resolve(o.tokenizer) : s.weights;
  if (!tokDir) usage('--tokenizer', 'a random init needs the tokenizer to read the data with: give --tokenizer DIR (a directory holding tokenizer.json)');
  const { loadTokenizer } = await import('../runtime/tokenizer.ts');
  const tok = await loadTokenizer(tokDir);
  if (!tok) usage(resumed ? '--resume' : o.tokenizer ? '--tokenizer' : '--weights', `${join(tokDir, 'tokenizer.json')} does not exist`, 'the data are tokenised with the model\'s tokenizer.json');
  const tokFiles = readSmallFiles(tokDir, TOKENIZER_FILES);
  const compiled = compileFile(s.model, optionsFor(s.model, { set: s.set, model: s.modelName, hfConfig: s.hfConfig }, source));
  printWarnings(compiled);
  const g = compiled.graph;
  // the run's config.json: the checkpoint's own when there is one (transformers reads it), else archc's
  const configText = source ? readFileSync(join(source, 'config.json'), 'utf8') : hfConfigText(compiled, 'f32', (c) => { c.archc = { model: g.model, note: 'trained by archc train' }; });
  const [{ gradientBytes, lossGradients }, { checkGradientMemory }] = await Promise.all([import('../compiler/grad.ts'), import('./grads.ts')]);
  // the f32 engines hold what the reference does in half the bytes
  const name = s.engine ?? 'reference';
  await checkGradientMemory(source ?? s.model, gradientBytes(g, s.seqLen * s.batch) / (name === 'reference' ? 1 : 2));
  const { engine, close } = name === 'wasm' ? await wasmEngine(g) : name === 'kernels' ? await kernelsEngine(compiled, s.backend)
    : { engine: referenceEngine(g, lossGradients), close: () => {} };

  let state: TrainState;
  if (resumed) state = readTrainState(resumed.dir, engine.weights);
  else if (s.weights) {
    const ckpt = openCheckpoint(s.weights);
    try {
      assertShapes(ckpt, engine.weights, { allowExtra: true });
      state = { step: 0, tokens: 0, params: engine.weights.map((w) => newParam(w.name, w.shape, toF32(ckpt.read(w.name)))) };
    } finally {
      ckpt.close();
    }
  } else {
    state = { step: 0, tokens: 0, params: initWeights(g, createRng(s.seed), 'f32').map((w) => newParam(w.name, w.tensor.shape, w.tensor.data as Float32Array)) };
  }
  const metrics: Metric[] = resumed ? readMetrics(resumed.dir, state.step) : [];
  const evals: Record<string, number>[] = resumed ? readJsonl(join(resumed.dir, 'eval.jsonl')).filter((e) => e.step! <= state.step) : [];
  const config: TrainConfig = { lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, steps: s.steps, warmup: s.warmup, clip: s.clip };
  return { s, g, engine, close, state, config, tok, tokFiles, configText, metrics, evals, secs: 0, packed: 0, digest: createHash('sha256'),
    sampler: resumed?.sampler ?? { epoch: 0, batch: 0 }, dataCache: o.dataCache && resolve(o.dataCache) };
}

/** Trains `r` to its last step on the batches replayed from the seed (a resumed run skips those it
 *  has trained on), calling `save` every --save-every steps and at the end. */
async function trainRun(r: Run, save: () => Promise<void>, label = ''): Promise<void> {
  const { s, state } = r;
  const batches = packedBatches(s.data, r.tok, { seqLen: s.seqLen, batch: s.batch, seed: s.seed, shuffle: s.shuffle, cacheDir: r.dataCache, start: r.sampler });
  const from = state.step;
  exitOnSignals();
  const bar = progressLine(s.steps, from, label);
  while (state.step < s.steps) {
    const b = batches.next().value as RowBatch;
    r.sampler = b.next;
    r.digest.update(new Uint8Array(b.tokens.buffer, b.tokens.byteOffset, b.tokens.byteLength));
    r.digest.update(new Uint8Array(b.positions.buffer, b.positions.byteOffset, b.positions.byteLength));
    const t0 = performance.now();
    const m = await trainStepAsync(r.engine, r.config, state, b);
    // tokens/s leaves out the first step when there are others: it pays the JIT's warm-up
    if (state.step > from + 1 || s.steps - from === 1) r.secs += (performance.now() - t0) / 1000, r.packed += b.tokens.length;
    r.metrics.push(m);
    bar(m);
    if (state.step % s.saveEvery === 0 || state.step === s.steps) await save();
    await yieldToSignals(); // SIGINT/SIGTERM between steps: the last save stands
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
}

/** With --eval: loss and bits per byte over the eval file at the run's current step; then the
 *  masters and moments of an engine that keeps them on its device read back, for the save. */
async function evaluateRun(r: Run): Promise<void> {
  await r.engine.device?.sync(r.state);
  if (!r.s.eval) return;
  const e = await evaluateAsync(r.engine, r.state, packedBatches(r.s.eval, r.tok, { seqLen: r.s.seqLen, batch: r.s.batch, seed: 0, shuffle: false, once: true, cacheDir: r.dataCache }));
  r.evals.push({ step: r.state.step, eval_loss: e.loss, eval_tokens: e.tokens, eval_bits_per_byte: e.bitsPerByte });
}

/** The run directory's files, into `dir` (a temp directory the caller puts in place). */
function writeRunFiles(dir: string, r: Run, title: string): void {
  writeFileSync(join(dir, 'config.json'), r.configText);
  for (const [n, b] of r.tokFiles) writeFileSync(join(dir, n), b);
  writeTrainState(dir, r.state, { ...r.s, sampler: r.sampler });
  writeFileSync(join(dir, 'metrics.jsonl'), r.metrics.map((m) => JSON.stringify(m) + '\n').join(''));
  if (r.evals.length) writeFileSync(join(dir, 'eval.jsonl'), r.evals.map((m) => JSON.stringify(m) + '\n').join(''));
  writeFileSync(join(dir, 'loss.svg'), lossCurveSvg([{ label: title, points: r.metrics }], `${title}: training loss`));
}

async function train(file: string | undefined, o: TrainFlags): Promise<void> {
  const { s, resumed } = settingsFrom(file, o);
  const out = resolve(o.out ?? resumed!.dir);
  // refused before any work: an output that is not ours, a missing tokenizer
  checkReplaceable(out, 'checkpoint', o.force ?? false);
  const r = await prepare(s, o, resumed);
  try {
    await trainRun(r, async () => {
      await evaluateRun(r);
      await writeDirAtomic(out, 'checkpoint', (tmp) => writeRunFiles(tmp, r, r.g.model), { force: o.force });
    });
  } finally {
    r.close();
  }
  const last = r.metrics.at(-1);
  const ev = r.evals.at(-1);
  process.stdout.write(`trained ${s.steps} steps, ${r.state.tokens.toLocaleString('en-US')} tokens: loss ${last ? last.loss.toFixed(4) : '-'}` +
    (ev ? `, eval loss ${ev.eval_loss!.toFixed(4)}, ${ev.eval_bits_per_byte!.toFixed(4)} bits/byte` : '') + `; wrote ${out}\n`);
}

/** Names of the variants, from their file names (`a.arch` -> `a`), made unique by the folder above
 *  (`x/a.arch` -> `x-a`) and then a number; names of the comparison's own files are taken. The same
 *  file given twice is refused: its runs would be the same. */
function variantNames(files: readonly string[]): string[] {
  const taken = new Set(['compare.json', 'compare.md', 'loss.svg', OUTPUT_MARKER]);
  const seen = new Map<string, string>();
  return files.map((f) => {
    const path = resolve(f);
    if (seen.has(path)) usage('train', `${f} is the file of variant ${seen.get(path)} again: the two runs would be the same`, 'a variant is a .arch file of its own: copy the model and change what the variant changes');
    const base = basename(f, extname(f)).replace(/[^\w.-]+/g, '_').replace(/^\.+/, '') || 'model'; // no hidden or `.`/`..` folders
    let name = taken.has(base) ? `${basename(dirname(path))}-${base}` : base;
    for (let k = 2; taken.has(name); k++) name = `${base}-${k}`;
    taken.add(name);
    seen.set(path, name);
    return name;
  });
}

/** `archc train a.arch b.arch ... -o RUN`: each variant trained one after another on the same batches
 *  (same data, seed and settings) into RUN/<name>/ (a run directory of its own), then compare.json,
 *  compare.md and one loss.svg with every curve. Every variant compiles and sizes before any trains;
 *  RUN is written whole at the end, or not at all. */
async function compare(files: string[], o: TrainFlags): Promise<void> {
  if (o.resume) usage('--resume', 'a comparison cannot be resumed; resume one of its variants: --resume RUN/<name>');
  if (o.saveEvery !== undefined) usage('--save-every', 'a comparison is written once, at the end');
  const names = variantNames(files);
  const out = resolve(o.out ?? usage('--out', 'train needs the run directory to write (-o RUN)'));
  checkReplaceable(out, 'checkpoint', o.force ?? false);
  const runs: Run[] = [];
  for (const f of files) runs.push(await prepare(settingsFrom(f, o).s, o));
  const context = runs[0]!.s.seqLen;
  const rows: Variant[] = [];
  try {
    await writeDirAtomic(out, 'checkpoint', async (tmp) => {
      for (const [i, r] of runs.entries()) {
        await trainRun(r, async () => {}, `${names[i]} (${i + 1}/${runs.length}): `);
        await evaluateRun(r);
        const dir = join(tmp, names[i]!);
        mkdirSync(dir);
        writeRunFiles(dir, r, names[i]!);
        // each variant's folder is an archc checkpoint of its own (`--resume RUN/<name>` replaces it)
        writeFileSync(join(dir, OUTPUT_MARKER), JSON.stringify({ kind: 'checkpoint', files: readdirSync(dir).sort() }, null, 2) + '\n');
        const st = computeStats(r.g, context, 1);
        const ev = r.evals.at(-1);
        rows.push({
          name: names[i]!, file: r.s.model, set: r.s.set, model: r.g.model, parameters: st.parameters.total, flops_per_token: st.flopsPerToken.prefill,
          state_bytes: st.state.totalBytes, steps: r.state.step, tokens: r.state.tokens, tokens_per_s: r.packed / Math.max(r.secs, 1e-9),
          final_loss: r.metrics.at(-1)!.loss, ...(ev ? { eval_loss: ev.eval_loss!, eval_bits_per_byte: ev.eval_bits_per_byte! } : {}), batches_sha256: r.digest.digest('hex'),
        });
      }
      const { s } = runs[0]!;
      const shared = { data: s.data, eval: s.eval, steps: s.steps, seq_len: s.seqLen, batch: s.batch, seed: s.seed, lr: s.lr, warmup: s.warmup, clip: s.clip, weight_decay: s.weightDecay, context };
      writeFileSync(join(tmp, 'compare.json'), JSON.stringify({ format: 'archc-compare-1', settings: shared, variants: rows }, null, 2) + '\n');
      writeFileSync(join(tmp, 'compare.md'), compareMarkdown(rows, shared));
      writeFileSync(join(tmp, 'loss.svg'), lossCurveSvg(runs.map((r, i) => ({ label: names[i]!, points: r.metrics })), 'training loss'));
    }, { force: o.force });
  } finally {
    for (const r of runs) r.close();
  }
  process.stdout.write(rows.map((v) => `${v.name}: loss ${v.final_loss.toFixed(4)}` + (v.eval_bits_per_byte !== undefined ? `, ${v.eval_bits_per_byte.toFixed(4)} bits/byte` : '') +
    `, ${Math.round(v.tokens_per_s).toLocaleString('en-US')} tokens/s\n`).join('') + `wrote ${out}\n`);
}

/** A run's metrics.jsonl or eval.jsonl (none: []); a line that is not JSON is RT601 naming file and line. */
function readJsonl(path: string): Record<string, number>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').map((l, i) => {
    try {
      return l ? JSON.parse(l) as Record<string, number> : null;
    } catch (e) {
      throw new RuntimeError('RT601', [dirname(path), `${path}:${i + 1}: ${describeError(e)}`], { file: path, line: i + 1 });
    }
  }).filter((x) => x !== null);
}

/** metrics.jsonl up to the saved step (the rows of steps after it are retrained). */
function readMetrics(dir: string, step: number): Metric[] {
  return (readJsonl(join(dir, 'metrics.jsonl')) as unknown as Metric[]).filter((m) => m.step <= step);
}

/** On a terminal: one line rewritten per step with loss, tokens/s and the time left. */
function progressLine(total: number, from: number, label: string): (m: Metric) => void {
  const t0 = performance.now();
  return (m) => {
    if (!process.stderr.isTTY) return;
    const per = (performance.now() - t0) / 1000 / (m.step - from);
    const eta = Math.round(per * (total - m.step));
    const clock = `${Math.floor(eta / 60)}m${String(eta % 60).padStart(2, '0')}s`;
    process.stderr.write(`\r${label}step ${m.step}/${total}  loss ${m.loss.toFixed(4)}  lr ${m.lr.toExponential(2)}  |g| ${m.grad_norm.toFixed(3)}  ${Math.round(m.tokens_per_s).toLocaleString('en-US')} tok/s  ETA ${clock}   `);
  };
}
