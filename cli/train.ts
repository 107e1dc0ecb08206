// archc train: a causal LM trained on packed text from a .arch file (issue 20). The loop
// (runtime/train/trainer.ts) runs on the float64 reference engine (runtime/train/engine.ts); the
// run directory is one Hugging Face checkpoint (config.json, model.safetensors, the tokenizer)
// plus optimizer.safetensors, trainer_state.json, metrics.jsonl and loss.svg, rewritten whole at
// each save, so `--resume RUN` continues bit for bit. docs/TRAINING.md "The training loop".

import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { compileFile } from '../compiler/compile.ts';
import type { Graph } from '../compiler/ir.ts';
import { hfConfigText, initWeights } from '../compiler/init.ts';
import { RuntimeError, describeError } from '../runtime/errors.ts';
import { createRng } from '../runtime/rng.ts';
import { assertShapes, openCheckpoint } from '../runtime/safetensors.ts';
import { toF32 } from '../runtime/tensor.ts';
import { readTrainSettings, readTrainState, writeTrainState } from '../runtime/train/checkpoint.ts';
import { type PackedBatch, packedBatches } from '../runtime/train/data.ts';
import type { TrainEngine } from '../runtime/train/engine.ts';
import { ADAMW_DEFAULTS, newParam } from '../runtime/train/optim.ts';
import { lossCurveSvg } from '../runtime/train/svg.ts';
import { type Metric, type TrainConfig, type TrainState, evaluate, trainStep } from '../runtime/train/trainer.ts';
import { type CommonOpts, setsOf, withCommon, withPreset } from './common.ts';
import { printWarnings } from './errors.ts';
import { checkReplaceable, exitOnSignals, writeDirAtomic, yieldToSignals } from './fsutil.ts';
import { numberFlag, optionsFor, usage } from './run.ts';

interface TrainFlags extends CommonOpts {
  data?: string; eval?: string; steps?: string; seqLen?: string; batch?: string; lr?: string; warmup?: string; clip?: string;
  weightDecay?: string; seed?: string; weights?: string; tokenizer?: string; saveEvery?: string; shuffleBuffer?: string;
  out?: string; resume?: string; force?: boolean;
}

/** What a run is, saved in trainer_state.json and read back by --resume. */
interface Settings {
  model: string; modelName?: string; set: string[]; data: string; dataBytes: number; eval?: string; weights?: string;
  seqLen: number; batch: number; seed: number; shuffleBuffer: number; steps: number; saveEvery: number;
  lr: number; warmup: number; clip: number; weightDecay: number; beta1: number; beta2: number; eps: number;
}

/** Flags that define a run: with --resume they come from the run, and giving one is refused. */
const RUN_FLAGS: [keyof TrainFlags, string][] = [['data', '--data'], ['eval', '--eval'], ['seqLen', '--seq-len'], ['batch', '--batch'], ['lr', '--lr'],
  ['warmup', '--warmup'], ['clip', '--clip'], ['weightDecay', '--weight-decay'], ['seed', '--seed'], ['weights', '--weights'], ['tokenizer', '--tokenizer'],
  ['shuffleBuffer', '--shuffle-buffer'], ['hfConfig', '--hf-config'], ['preset', '--preset'], ['model', '--model']];

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

export function registerTrainCommand(p: Command): void {
  withPreset(withCommon(p.command('train [file]').description('train a causal LM on packed text (float64 CPU reference gradients, AdamW); checkpoints resume bit-exactly')))
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
    .option('--shuffle-buffer <n>', 'documents the streaming shuffle holds; 0 keeps the file\'s order (default 1024)')
    .option('-o, --out <dir>', 'the run directory to write (with --resume: default the run itself)')
    .option('--resume <dir>', 'continue the run saved in this directory')
    .option('--force', 'replace the output directory even if it holds files archc did not write')
    .action(async (file: string | undefined, o: TrainFlags) => train(file, o));
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

const int = (v: string | undefined, flag: string, min: number, dflt: number) => numberFlag(v, flag, { int: true, min, what: min > 0 ? 'a positive integer' : 'an integer ≥ 0' }) ?? dflt;
const real = (v: string | undefined, flag: string, dflt: number, positive = false) =>
  numberFlag(v, flag, positive ? { minExclusive: 0, what: 'a positive number' } : { min: 0, what: 'a number ≥ 0' }) ?? dflt;

/** The run's settings: from RUN/trainer_state.json with --resume, else from the flags. */
function settingsFrom(file: string | undefined, o: TrainFlags): { s: Settings; resumed?: { step: number; dir: string } } {
  if (o.resume) {
    const dir = resolve(o.resume);
    if (file !== undefined) usage('--resume', `a resumed run trains the model it was started with; drop ${JSON.stringify(file)}`);
    for (const [k, flag] of RUN_FLAGS) if (o[k] !== undefined) usage(flag, 'it cannot be combined with --resume', `the run's settings are in ${join(dir, 'trainer_state.json')}`);
    if (o.set.length) usage('--set', 'it cannot be combined with --resume', `the run's settings are in ${join(dir, 'trainer_state.json')}`);
    const saved = readTrainSettings(dir);
    const s = saved.settings as unknown as Settings;
    const stateFile = join(dir, 'trainer_state.json');
    const bad = (['seqLen', 'batch', 'seed', 'shuffleBuffer', 'steps', 'saveEvery', 'lr', 'warmup', 'clip', 'weightDecay', 'beta1', 'beta2', 'eps', 'dataBytes'] as const)
      .find((k) => typeof s[k] !== 'number' || !Number.isFinite(s[k])) ?? (['model', 'data'] as const).find((k) => typeof s[k] !== 'string');
    if (bad) throw new RuntimeError('RT601', [dir, `${stateFile}: settings.${bad} is missing or of the wrong type`], { file: stateFile, key: `settings.${bad}` });
    // the batches are replayed from the data file: another file would not continue the same run
    const size = existsSync(s.data) ? statSync(s.data).size : -1;
    if (size !== s.dataBytes) throw new RuntimeError('RT601', [dir, `its data file ${s.data} ${size < 0 ? 'is gone' : `holds ${size} bytes, not the ${s.dataBytes} it was trained on`}; the batches it trained on cannot be replayed`], { file: s.data });
    const steps = int(o.steps, '--steps', 1, s.steps);
    if (steps <= saved.step) usage('--steps', `the run in ${dir} has taken ${saved.step} steps already; give a larger total`);
    return { s: { ...s, steps, saveEvery: int(o.saveEvery, '--save-every', 1, s.saveEvery) }, resumed: { step: saved.step, dir } };
  }
  if (file === undefined) usage('train', 'give the model file (MODEL.arch), or --resume RUN');
  if (!o.data) usage('--data', 'train needs a data file (text or JSONL)');
  if (!o.steps) usage('--steps', 'train needs the number of optimizer steps');
  if (!o.out) usage('--out', 'train needs the run directory to write (-o RUN)');
  const steps = int(o.steps, '--steps', 1, 1);
  return {
    s: {
      model: resolve(file), modelName: o.model, set: setsOf(file, o), data: resolve(o.data), dataBytes: dataSize(o.data), eval: o.eval && resolve(o.eval), weights: o.weights && resolve(o.weights),
      seqLen: int(o.seqLen, '--seq-len', 1, 256), batch: int(o.batch, '--batch', 1, 8), seed: int(o.seed, '--seed', 0, 0),
      shuffleBuffer: int(o.shuffleBuffer, '--shuffle-buffer', 0, 1024), steps, saveEvery: int(o.saveEvery, '--save-every', 1, steps),
      lr: real(o.lr, '--lr', 1e-3, true), warmup: int(o.warmup, '--warmup', 0, 0), clip: real(o.clip, '--clip', 1), weightDecay: real(o.weightDecay, '--weight-decay', ADAMW_DEFAULTS.weightDecay),
      beta1: ADAMW_DEFAULTS.beta1, beta2: ADAMW_DEFAULTS.beta2, eps: ADAMW_DEFAULTS.eps,
    },
  };
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

async function train(file: string | undefined, o: TrainFlags): Promise<void> {
  const { s, resumed } = settingsFrom(file, o);
  const out = resolve(o.out ?? resumed!.dir);
  // refused before any work: an output that is not ours, a missing tokenizer
  checkReplaceable(out, 'checkpoint', o.force ?? false);
  const source = resumed?.dir ?? s.weights;
  const tokDir = resumed ? resumed.dir : o.tokenizer ? resolve(o.tokenizer) : s.weights;
  if (!tokDir) usage('--tokenizer', 'a random init needs the tokenizer to read the data with: give --tokenizer DIR (a directory holding tokenizer.json)');
  const { loadTokenizer } = await import('../runtime/tokenizer.ts');
  const tok = await loadTokenizer(tokDir);
  if (!tok) usage(resumed ? '--resume' : o.tokenizer ? '--tokenizer' : '--weights', `${join(tokDir, 'tokenizer.json')} does not exist`, 'the data are tokenised with the model\'s tokenizer.json');
  const tokFiles = readSmallFiles(tokDir, TOKENIZER_FILES);
  const compiled = compileFile(s.model, optionsFor(s.model, { set: s.set, model: s.modelName }, source));
  printWarnings(compiled);
  const g = compiled.graph;
  // the run's config.json: the checkpoint's own when there is one (transformers reads it), else archc's
  const configText = source ? readFileSync(join(source, 'config.json'), 'utf8') : hfConfigText(compiled, 'f32', (c) => { c.archc = { model: g.model, note: 'trained by archc train' }; });
  const [{ gradientBytes, lossGradients }, { checkGradientMemory }] = await Promise.all([import('../compiler/grad.ts'), import('./grads.ts')]);
  await checkGradientMemory(source ?? s.model, gradientBytes(g, s.seqLen * s.batch));
  const engine = referenceEngine(g, lossGradients);

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

  // the data replayed from the seed: a resumed run skips the batches it has trained on
  const batches = packedBatches(s.data, tok, { seqLen: s.seqLen, batch: s.batch, seed: s.seed, shuffleBuffer: s.shuffleBuffer });
  for (let k = 0; k < state.step; k++) batches.next();

  const save = async () => {
    if (s.eval) {
      const e = evaluate(engine, state, packedBatches(s.eval, tok, { seqLen: s.seqLen, batch: s.batch, seed: 0, shuffleBuffer: 0, once: true }));
      evals.push({ step: state.step, eval_loss: e.loss, eval_tokens: e.tokens, eval_bits_per_byte: e.bitsPerByte });
    }
    await writeDirAtomic(out, 'checkpoint', (tmp) => {
      writeFileSync(join(tmp, 'config.json'), configText);
      for (const [n, b] of tokFiles) writeFileSync(join(tmp, n), b);
      writeTrainState(tmp, state, s);
      writeFileSync(join(tmp, 'metrics.jsonl'), metrics.map((m) => JSON.stringify(m) + '\n').join(''));
      if (evals.length) writeFileSync(join(tmp, 'eval.jsonl'), evals.map((m) => JSON.stringify(m) + '\n').join(''));
      writeFileSync(join(tmp, 'loss.svg'), lossCurveSvg([{ label: g.model, points: metrics }], `${g.model}: training loss`));
    }, { force: o.force });
  };

  exitOnSignals();
  const bar = progressLine(s.steps, state.step);
  while (state.step < s.steps) {
    const m = trainStep(engine, config, state, batches.next().value as PackedBatch);
    metrics.push(m);
    bar(m);
    if (state.step % s.saveEvery === 0 || state.step === s.steps) await save();
    await yieldToSignals(); // SIGINT/SIGTERM between steps: the last save stands
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  const last = metrics.at(-1);
  const ev = evals.at(-1);
  process.stdout.write(`trained ${s.steps} steps, ${state.tokens.toLocaleString('en-US')} tokens: loss ${last ? last.loss.toFixed(4) : '-'}` +
    (ev ? `, eval loss ${ev.eval_loss!.toFixed(4)}, ${ev.eval_bits_per_byte!.toFixed(4)} bits/byte` : '') + `; wrote ${out}\n`);
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
function progressLine(total: number, from: number): (m: Metric) => void {
  const t0 = performance.now();
  return (m) => {
    if (!process.stderr.isTTY) return;
    const per = (performance.now() - t0) / 1000 / (m.step - from);
    const eta = Math.round(per * (total - m.step));
    const clock = `${Math.floor(eta / 60)}m${String(eta % 60).padStart(2, '0')}s`;
    process.stderr.write(`\rstep ${m.step}/${total}  loss ${m.loss.toFixed(4)}  lr ${m.lr.toExponential(2)}  |g| ${m.grad_norm.toFixed(3)}  ${Math.round(m.tokens_per_s).toLocaleString('en-US')} tok/s  ETA ${clock}   `);
  };
}
