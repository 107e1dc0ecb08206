// The commands that build and run models: build, init-weights, forward, run.

import { writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { type CompileOptions, type Compiled, compileFile, loadConfig } from '../compiler/compile.ts';
import type { CompiledModel } from '../compiler/pipeline.ts';
import { hfConfigText, initWeightsLazily } from '../compiler/init.ts';
import { computeStats } from '../compiler/stats.ts';
import { fallbackSummary, programReport } from '../compiler/kernel/report.ts';
import { CompileError, diag } from '../dsl/diagnostics.ts';
import { causalLmLoss } from '../runtime/loss.ts';
import type { Model } from '../runtime/model.ts';
import { RuntimeError } from '../runtime/errors.ts';
import { createRng } from '../runtime/rng.ts';
import { openCheckpoint, writeSafetensors, writeShardedSafetensors } from '../runtime/safetensors.ts';
import { DTYPE_BYTES, type DType, numel } from '../runtime/tensor.ts';
import type { Graph } from '../compiler/ir.ts';
import { RUNTIME_LIMITS } from '../runtime/limits.ts';
import { probePath } from '../runtime/paths.ts';
import { type HfConfig, otherModel } from '../runtime/hfconfig.ts';
import { withSsmState } from '../runtime/program.ts';
import { BACKEND_NAMES, type Backend } from '../runtime/targets.ts';
import { printWarnings } from './errors.ts';
import { type CommonOpts, setsOf, withCommon, withPreset } from './common.ts';
import { checkParent, checkReplaceable, exitOnSignals, probeWritable, writeDirAtomic, writeOutputFile, yieldToSignals } from './fsutil.ts';
import { encodeNpy } from './npy.ts';
import { type QuantFlags, quantizeOption, reportQuantization, withQuantize } from './quant.ts';
import { phases } from './phases.ts';
import { loadBar } from './progress.ts';

/** Why `name` is not an npm package name, or null: lowercase, URL-safe, at most 214 characters,
 *  optionally scoped (`@scope/name`), not starting with `.` or `_` (npm's rules). */
export function npmNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > 214) return `must have 1 to 214 characters, has ${name.length}`;
  if (name !== name.toLowerCase()) return 'must be lowercase';
  const m = /^(?:@([a-z0-9-~][a-z0-9-._~]*)\/)?([a-z0-9-~][a-z0-9-._~]*)$/.exec(name);
  if (!m) return 'may hold only a-z, 0-9, -, ., _ and ~ (and one @scope/ prefix), and may not start with . or _';
  if (m[2] === 'node_modules' || m[2] === 'favicon.ico') return `may not be ${m[2]}`;
  return null;
}

/** --cuda-arch: a comma-separated list of `sm_NN` or `compute_NN` (nvcc's names; `a`/`f` suffixes
 *  too), refused with AC315 before anything reaches nvcc. */
function archList(text = 'sm_80,sm_90'): string[] {
  const archs = text.split(',').map((a) => a.trim());
  for (const a of archs) {
    if (!/^(sm|compute)_\d{2,3}[af]?$/.test(a)) usage('--cuda-arch', `expected a comma-separated list of sm_NN or compute_NN, got ${JSON.stringify(shorten(a))}`);
  }
  return archs;
}

/** The params for a checkpoint: its config.json binds them unless --hf-config names another.
 *  A checkpoint without config.json is refused (its sizes would silently be the defaults). */
export function optionsFor(file: string, o: CommonOpts, weightsDir?: string): CompileOptions {
  let configPath = o.hfConfig;
  if (weightsDir !== undefined) {
    const dir = probePath(weightsDir);
    if (dir.kind === 'missing') throw new RuntimeError('RT100', [weightsDir, 'no such file or directory'], { file: weightsDir });
    if (dir.kind === 'bad') throw new RuntimeError('RT100', [weightsDir, dir.why], { file: weightsDir });
    const own = join(weightsDir, 'config.json');
    const found = dir.kind === 'dir' ? probePath(own) : { kind: 'missing' as const };
    if (found.kind === 'bad') throw new RuntimeError('RT200', [own, found.why], { file: own });
    if (found.kind === 'dir') throw new RuntimeError('RT200', [own, 'a directory, expected a file'], { file: own });
    if (found.kind === 'file') configPath ??= own;
    else if (configPath === undefined) throw new RuntimeError('RT204', [weightsDir], { file: own });
  }
  return { hfConfigData: configPath ? loadConfig(configPath) : undefined, set: setsOf(file, o), model: o.model };
}

/** The graph alone (init-weights needs no kernels). */
function compileGraphFor(file: string, o: CommonOpts): Compiled {
  const compiled = compileFile(file, optionsFor(file, o));
  printWarnings(compiled);
  return compiled;
}

/** The whole pipeline: graph and kernel program. */
export async function compileFor(file: string, o: CommonOpts, weightsDir?: string): Promise<CompiledModel> {
  // the kernel compiler loads only in the commands that make a program
  const { compileModel } = await import('../compiler/pipeline.ts');
  const options = optionsFor(file, o, weightsDir);
  const compiled = compileModel(file, options);
  // a checkpoint of another model: one line, not a warning per config key it lacks (the load then
  // refuses it, RT166, if it does not fit)
  const other = weightsDir && options.hfConfigData ? otherModel(options.hfConfigData.config as HfConfig, compiled.graph.model) : null;
  if (other && compiled.warnings.length) {
    process.stderr.write(`warning: ${join(weightsDir!, 'config.json')} says ${other}, not ${compiled.graph.model}: a checkpoint of another model? (${compiled.warnings.length} config warnings not shown)\n`);
  } else printWarnings(compiled);
  return compiled;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** A bad command-line value: a diagnostic without a place in any file. */
export function usage(what: string, message: string, hint?: string): never {
  throw new CompileError([diag('AC315', undefined, [what, message], hint)]);
}

/** `1,2,3;4,5` -> [[1,2,3],[4,5]]: decimal integers from 0 to 2^31 - 1 only (`0x10`, `1e2`, `-1`,
 *  `2.0` are refused, not converted). */
function parseIdLists(text: string, flag: string): number[][] {
  const max = RUNTIME_LIMITS.position.value;
  return text.split(';').map((part) => part.split(',').map((s) => {
    const t = s.trim();
    const hint = `${flag} takes integers separated by commas, sequences separated by ; (decimal, from 0 to ${max})`;
    if (!/^\d+$/.test(t)) usage(flag, `${JSON.stringify(shorten(text))}: ${JSON.stringify(t)} is not a non-negative decimal integer`, hint);
    const n = Number(t);
    if (n > max) usage(flag, `${JSON.stringify(shorten(text))}: ${t} is over ${max}`, hint);
    return n;
  }));
}

function shorten(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A number flag: decimal text only (`abc`, `0x1`, `` are refused with the flag's name). */
export function numberFlag(v: string | undefined, flag: string, rule: { int?: boolean; min?: number; minExclusive?: number; max?: number; what: string }): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  const ok = rule.int ? /^-?\d+$/.test(t) : /^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t);
  const n = Number(t);
  if (!ok || !Number.isFinite(n) || (rule.int && !Number.isSafeInteger(n)) || (rule.min !== undefined && n < rule.min) ||
    (rule.minExclusive !== undefined && n <= rule.minExclusive) || (rule.max !== undefined && n > rule.max)) {
    usage(flag, `expected ${rule.what}, got ${JSON.stringify(shorten(v))}`);
  }
  return n;
}

export type LoadFlags = CommonOpts & QuantFlags & { weights: string; allowExtra?: boolean; checkWeights?: boolean; backend?: string; cudaArch?: string; capacity?: string; ssmState?: 'f32' | 'bf16' };

/** --ssm-state f32|bf16: how the state slots keep the SSM states (runtime/program.ts withSsmState). */
export function withStateFormat(cmd: Command): Command {
  return cmd.addOption(new Option('--ssm-state <format>', 'how state slots keep the SSM states: f32 (the default) or bf16 (half the bytes, each value rounded to bf16 where stored, as transformers keeps a bf16 model\'s cache)').choices(['f32', 'bf16']));
}

/** --capacity: the tokens one sequence may hold (LoadOptions.capacity; default the `context` param). */
const capacityFlag = (v: string | undefined) => numberFlag(v, '--capacity', { int: true, min: 1, max: RUNTIME_LIMITS.position.value, what: 'a positive integer' });

export async function loadModel(file: string, o: LoadFlags, unquantised = false): Promise<Model> {
  const quantize = unquantised ? undefined : quantizeOption(o);
  const capacity = capacityFlag(o.capacity);
  const program = withSsmState((await compileFor(file, o, o.weights)).program, o.ssmState ?? 'f32');
  const backend = (o.backend ?? 'wasm') as Backend;
  // the checkpoint's headers are read first: a corrupt file is named (RT1xx) before anything is
  // made for a backend, even where a backend could not be made at all
  openCheckpoint(o.weights).close();
  const bar = await loadBar(unquantised ? 'loading reference weights' : 'loading weights');
  try {
    // what the backend's build target makes (the same a package ships), in this process
    const made = await (await import('../codegen/targets.ts')).buildTarget(backend)?.inProcess(program, { cudaArchs: archList(o.cudaArch) }) ?? {};
    // the runtime (with the tokenizer) loads only in the commands that run a model; the bar only on a terminal
    const { Model } = await import('../runtime/model.ts');
    const model = await Model.loadProgram(program, o.weights, {
      ...(quantize !== undefined ? { quantize } : {}),
      ...(!unquantised && o.activations ? { activations: o.activations } : {}),
      allowExtra: o.allowExtra,
      checkWeights: o.checkWeights,
      ...(capacity !== undefined ? { capacity } : {}),
      backend,
      ...made,
      // a WebGPU adapter that runs shaders on the CPU: said once, as the CLI's other warnings are
      webgpu: { onWarning: (m) => process.stderr.write(`warning: ${m}\n`) },
      onProgress: (_done, _total, tensor, p) => bar?.update(p, tensor),
    });
    if (!unquantised) reportQuantization(model);
    return model;
  } catch (e) {
    // WebAssembly memories reserve address space up front: under `ulimit -v` they cannot be made
    const why = e instanceof Error ? e.message : '';
    if (/out of memory|could not allocate memory|cannot allocate wasm memory/i.test(why) && !(e instanceof RuntimeError)) {
      throw new RuntimeError('RT309', [backend, why.replace(/\. Build with -sASSERTIONS.*$/s, '').replace(/^Aborted\((.*)\)$/s, '$1')]);
    }
    throw e;
  } finally {
    bar?.stop();
  }
}

export function registerRunCommands(p: Command): void {
  withStateFormat(withPreset(withCommon(p.command('build <file>').description('compile a model into an npm package (generated TypeScript runtime, graph.json, report)'))))
    .requiredOption('-o, --out <dir>', 'the package directory to write')
    .option('--name <name>', 'npm package name')
    .option('--force', 'replace the output directory even if it holds files archc did not write')
    .option('--cuda-arch <archs>', 'GPU architectures to compile the CUDA kernels for (where nvcc exists)', 'sm_80,sm_90')
    .option('--train', 'also ship the train program and its WGSL: the package\'s Trainer then trains on WebGPU')
    .action(async (file: string, o: CommonOpts & { out: string; name?: string; force?: boolean; cudaArch: string; train?: boolean; ssmState?: 'f32' | 'bf16' }) => {
      const t0 = performance.now();
      // Ctrl-C stops the build between its steps (each yields to the event loop) or while the
      // TypeScript is checked and emitted on a worker, leaving no output; exit 130 (143: SIGTERM).
      exitOnSignals();
      // ts-morph (TypeScript) takes a third of a second to load: only `build` needs it.
      checkReplaceable(resolve(o.out), 'package', o.force ?? false); // before the work, not after
      probeWritable(resolve(o.out));
      const { PACKAGE_TARGETS, buildPackage, packageParts } = await import('../codegen/package.ts');
      // compile, each target's part, then the package's TypeScript: one status line on a terminal
      const steps = phases(`building ${basename(file)}`, PACKAGE_TARGETS.length + 2);
      // the flags that reach package.json and nvcc, checked before the work
      const bad = o.name === undefined ? null : npmNameProblem(o.name);
      if (bad) usage('--name', `${JSON.stringify(shorten(o.name!))} is not an npm package name: it ${bad}`);
      const cudaArchs = archList(o.cudaArch);
      await yieldToSignals();
      let compiled: Awaited<ReturnType<typeof compileFor>>, targets: Awaited<ReturnType<typeof packageParts>>, r: Awaited<ReturnType<typeof buildPackage>>;
      try {
        steps.start('compiling');
        compiled = await compileFor(file, o);
        compiled = { ...compiled, program: withSsmState(compiled.program, o.ssmState ?? 'f32') };
        await yieldToSignals();
        const program = compiled.program;
        const ctx = compiled.graph.params.context;
        const stats = computeStats(compiled.graph, typeof ctx === 'number' ? ctx : 4096, 1, compiled.forProgram);
        // each build target's part, with a pause for pending signals after each
        // --train: the program with its train entry over the concrete graph (the Trainer's, graph.json's), f32 masters
        const train = o.train ? await (await import('./train-webgpu.ts')).trainProgram(compiled) : undefined;
        targets = await packageParts(program, { cudaArchs, train }, yieldToSignals,
          (t) => steps.start(t === 'cuda' ? `cuda kernels (nvcc ${cudaArchs.join(', ')})` : `${t} kernels`));
        steps.start('package (TypeScript check and emit)');
        // a preset's build is named for it (archc-model-bamba-tiny), so two sizes install side by side
        const packageName = o.name ?? (o.preset ? `archc-model-${compiled.graph.model.toLowerCase()}-${o.preset}` : undefined);
        r = await buildPackage({ graph: compiled.graph, program, stats, source: file, packageName, targets }, o.out, { force: o.force });
      } finally {
        steps.end();
      }
      const program = compiled.program;
      const ctx = compiled.graph.params.context;
      const rep = programReport(program, { prefillTokens: 4096, decodeBatch: 8, context: typeof ctx === 'number' ? ctx : 4096 });
      const d = rep.dispatches, m = rep.memory;
      const layers = Object.entries(d.perLayer).map(([k, n]) => `${n} per ${k} layer`).join(', ');
      process.stdout.write(`built ${r.dir}: model ${compiled.graph.model}, ${r.files.length} files in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`
        + `  kernels: ${d.decode} per decode step (${layers}, ${d.outsideLayers} outside the layers), ${d.prefill} per prefill\n`
        + `  memory: arena ${mib(m.arenaBytesByEntry.prefill)} for a ${m.prefillTokens}-token prefill, ${mib(m.arenaBytesByEntry.decode)} for a decode batch of ${m.decodeBatch}; `
        + `${mib(m.stateBytesPerSlot)} of state per sequence slot (context ${m.context})\n`
        + `  fallbacks: ${fallbackSummary(program, rep)} (build-report.json lists them)
`
        + [...targets.values()].flatMap((t) => (t.summary ? [`  ${t.summary}
`] : [])).join(''));
    });

  withPreset(withCommon(p.command('init-weights <file>').description('write a random checkpoint in Hugging Face layout (config.json + safetensors)')))
    .requiredOption('-o, --out <dir>', 'the checkpoint directory to write')
    .addOption(new Option('--dtype <dtype>', 'weight dtype').choices(['f32', 'bf16', 'f16']))
    .option('--seed <n>', 'random seed', '0')
    .option('--shard-size <bytes>', 'split into shards of at most this many bytes (writes model.safetensors.index.json)')
    .option('--force', 'replace the output directory even if it holds files archc did not write')
    .action(async (file: string, o: CommonOpts & { out: string; dtype?: DType; seed: string; shardSize?: string; force?: boolean }) => {
      const seed = numberFlag(o.seed, '--seed', { int: true, what: 'an integer' })!;
      const shardSize = numberFlag(o.shardSize, '--shard-size', { int: true, min: 1, what: 'a positive number of bytes' });
      checkReplaceable(resolve(o.out), 'checkpoint', o.force ?? false);
      const compiled = compileGraphFor(file, o);
      const g = compiled.graph;
      checkFitsInMemory(g, o.dtype, o.out);
      // made one at a time as they are written: a checkpoint larger than memory is fine
      const tensors = initWeightsLazily(g, createRng(seed), o.dtype);
      await writeDirAtomic(resolve(o.out), 'checkpoint', (tmp) => {
        writeFileSync(join(tmp, 'config.json'), hfConfigText(compiled, o.dtype));
        if (shardSize) writeShardedSafetensors(tmp, tensors, shardSize, { format: 'pt' });
        else writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
      }, { force: o.force });
      const n = tensors.reduce((s, t) => s + numel(t.shape), 0);
      process.stdout.write(`wrote ${o.out}: ${tensors.length} tensors, ${n.toLocaleString('en-US')} parameters\n`);
    });

  withStateFormat(withQuantize(withCommon(p.command('forward <file>').description('run a forward pass and write the logits as .npy'))))
    .requiredOption('--weights <dir>', 'checkpoint directory')
    .requiredOption('--ids <ids>', 'token ids, comma-separated; `;` separates packed sequences')
    .option('--positions <ids>', 'position ids (a 0 starts a new sequence)')
    .option('--step', 'feed the tokens one at a time through decode')
    .option('--loss', 'print the causal-LM loss (labels = the ids) as JSON')
    .option('--grads <file>', 'with --loss: write the gradient of the mean loss with respect to every weight as f32 safetensors (the checkpoint\'s names; computed in float64 on the CPU reference, or --engine wasm, kernels)')
    .option('--engine <name>', 'with --grads: reference (float64, the default), wasm (the f32 training engine on the wasm kernels) or kernels (the kernel program\'s train entry on --backend cpu, wasm or webgpu)')
    .option('--capacity <n>', 'tokens one sequence may hold (default: the model\'s context param)')
    .option('--out <file>', 'write float32 logits [tokens, vocab] as .npy')
    .option('--allow-extra', 'accept checkpoint tensors the model does not use')
    .option('--no-check-weights', 'load weights holding NaN or infinities')
    .addOption(new Option('--backend <backend>', 'where to run (webgpu: Dawn; without a GPU set VK_ICD_FILENAMES to SwiftShader\'s ICD)').choices(BACKEND_NAMES).default('wasm'))
    .option('--cuda-arch <archs>', 'backend cuda: architectures to compile the kernels for where nvcc exists (else NVRTC at load)', 'sm_80,sm_90')
    .action(async (file: string, o: LoadFlags & { ids: string; positions?: string; step?: boolean; loss?: boolean; out?: string; grads?: string; engine?: string }) => {
      const seqs = parseIdLists(o.ids, '--ids');
      if (o.out) checkParent(resolve(o.out)); // before the work, not after
      if (o.grads !== undefined) (await import('./grads.ts')).checkGradsFlags(o);
      const posSeqs = o.positions !== undefined ? parseIdLists(o.positions, '--positions') : undefined;
      if (posSeqs && o.step) usage('--positions', 'it cannot be combined with --step', 'decode numbers positions itself');
      if (posSeqs) checkPositions(seqs, posSeqs);
      // Sequence starts: from `;` in --ids, or from the zeros of --positions when --ids has one list.
      const starts = posSeqs && seqs.length === 1 ? posSeqs[0]!.flatMap((p, i) => (p === 0 && i > 0 ? [i] : [])) : [];
      const predicted = seqs.reduce((n, s) => n + s.length, 0) - seqs.length - starts.length;
      if (o.loss && predicted <= 0) {
        usage('--loss', 'no token to predict: the loss needs a sequence of at least two tokens');
      }
      const model = await loadModel(file, o);
      const ids = seqs.flat();
      const cu = [0];
      for (const s of seqs) cu.push(cu[cu.length - 1]! + s.length);
      let logits: Float32Array;
      let loss: number | undefined;
      if (o.step) {
        logits = await stepByStep(model, seqs);
      } else {
        const positions = posSeqs?.flat();
        // labels = ids; the first token of each packed sequence is not predicted from the one before
        const labels = o.loss ? Int32Array.from(ids) : undefined;
        if (labels) [...cu.slice(1, -1), ...starts].forEach((start) => (labels[start] = -100));
        const r = await model.forwardAsync(positions ? (seqs.length > 1 ? { ids, positions, cuSeqlens: cu, labels } : { ids, positions, labels }) : { ids, cuSeqlens: cu, labels });
        logits = r.logits;
        loss = r.loss;
      }
      if (o.loss && o.step) {
        const labels = Int32Array.from(ids);
        cu.slice(1, -1).forEach((start) => (labels[start] = -100));
        loss = causalLmLoss(logits, ids.length, model.vocab, labels).loss;
      }
      checkLogits(logits, model.vocab);
      if (o.out) await writeOutputFile(o.out, encodeNpy(logits, [ids.length, model.vocab]));
      // grad_norm: the gradients' global L2 norm (what clipping by global norm measures)
      const gradNorm = o.grads !== undefined ? await (await import('./grads.ts')).writeGradients(file, o, ids, posSeqs?.flat(), seqs.length > 1 ? cu : undefined, o.grads) : undefined;
      // tokens: the rows the loss averages over (each predicts the next id of its own sequence)
      if (o.loss) process.stdout.write(JSON.stringify({ loss, tokens: predicted, ...(gradNorm !== undefined ? { grad_norm: gradNorm } : {}) }) + '\n');
      if (!o.out && !o.loss) process.stdout.write(`logits [${ids.length}, ${model.vocab}]: pass --out FILE.npy to save them\n`);
    });

  withStateFormat(withQuantize(withCommon(p.command('run <file>').description('generate text from a prompt, or chat (--chat)'))))
    .requiredOption('--weights <dir>', 'checkpoint directory')
    .option('--prompt <text>', 'the prompt (needs tokenizer.json)')
    .option('--chat', 'chat through the checkpoint\'s chat template: a line of input is a turn, each continuing the kept state (/exit or Ctrl-D leaves)')
    .option('--system <text>', 'with --chat: a system message first')
    .option('--ids <ids>', 'prompt token ids instead of text')
    .option('--max-tokens <n>', 'tokens to generate', '64')
    .option('--temperature <t>', '0 = greedy', '0')
    .option('--top-k <k>')
    .option('--top-p <p>')
    .option('--min-p <p>')
    .option('--repetition-penalty <r>')
    .option('--seed <n>', 'sampling seed', '0')
    .option('--stop <ids>', 'stop token ids, comma-separated')
    .option('--capacity <n>', 'tokens one sequence may hold, prompt included (default: the model\'s context param)')
    .option('--stop-at-context', 'stop when the sequence is full instead of refusing a prompt and --max-tokens over --capacity')
    .option('--allow-extra', 'accept checkpoint tensors the model does not use')
    .option('--no-check-weights', 'load weights holding NaN or infinities')
    .addOption(new Option('--backend <backend>', 'where to run (webgpu: Dawn; without a GPU set VK_ICD_FILENAMES to SwiftShader\'s ICD)').choices(BACKEND_NAMES).default('wasm'))
    .option('--cuda-arch <archs>', 'backend cuda: architectures to compile the kernels for where nvcc exists (else NVRTC at load)', 'sm_80,sm_90')
    .action(async (file: string, o: CommonOpts & Record<string, string | undefined> & { weights: string; set: string[]; checkWeights?: boolean }) => {
      const chat = o.chat !== undefined;
      if (chat && (o.prompt !== undefined || o.ids !== undefined)) usage('--chat', 'the turns come from the input: give no --prompt or --ids', 'a system message: --system TEXT');
      if (!chat && o.system !== undefined) usage('--system', 'it needs --chat');
      if (!chat && o.prompt === undefined && o.ids === undefined) usage('arguments', 'missing --prompt TEXT (or --ids 1,2,3 when the checkpoint has no tokenizer)');
      if (o.prompt !== undefined && o.ids !== undefined) usage('arguments', 'give --prompt or --ids, not both');
      // Every flag is checked before the weights are loaded, and named as typed.
      const prompt = o.ids !== undefined ? parseIdLists(o.ids, '--ids').flat() : o.prompt ?? '';
      const options = {
        maxTokens: numberFlag(o.maxTokens, '--max-tokens', { int: true, min: 1, what: 'a positive integer' }),
        temperature: numberFlag(o.temperature, '--temperature', { min: 0, what: 'a finite number ≥ 0' }),
        topK: numberFlag(o.topK, '--top-k', { int: true, min: 0, what: 'an integer ≥ 0' }),
        topP: numberFlag(o.topP, '--top-p', { minExclusive: 0, max: 1, what: 'a number in (0, 1]' }),
        minP: numberFlag(o.minP, '--min-p', { min: 0, max: 1, what: 'a number in [0, 1]' }),
        repetitionPenalty: numberFlag(o.repetitionPenalty, '--repetition-penalty', { minExclusive: 0, what: 'a finite number > 0' }),
        seed: numberFlag(o.seed, '--seed', { int: true, what: 'an integer' }),
        stop: o.stop !== undefined ? parseIdLists(o.stop, '--stop').flat() : undefined,
        stopAtContext: o.stopAtContext !== undefined,
      };
      capacityFlag(o.capacity);
      // a prompt needs the tokenizer: check it before the weights take their time to load
      if (o.prompt !== undefined || chat) await checkTokenizer(o.weights, chat ? '--chat' : '--prompt');
      const template = chat ? await chatTemplateFor(o.weights) : null;
      const model = await loadModel(file, o as never);
      if (model.tokenizer && model.tokenizer.vocabSize > model.vocab) {
        process.stderr.write(`warning: ${join(o.weights, 'tokenizer.json')} has ids up to ${model.tokenizer.vocabSize - 1}, but the model's vocabulary has ${model.vocab} entries: a prompt with a larger id is refused, and the model never generates one\n`);
      }
      if (template) {
        const tty = !!process.stdin.isTTY && !!process.stdout.isTTY;
        await (await import('./serve/terminal.ts')).chatLoop(model, template, options, { input: process.stdin, output: process.stdout, status: process.stderr, tty }, o.system);
        return;
      }
      const t0 = performance.now();
      let n = 0;
      let first = 0;
      for await (const tok of model.generate(prompt, options)) {
        if (n === 0) first = performance.now();
        n++;
        process.stdout.write(model.tokenizer ? tok.text : `${n > 1 ? ' ' : ''}${tok.id}`);
      }
      // the output ends its line, also when stdout is a file or a pipe (the summary goes to stderr)
      process.stdout.write('\n');
      const t1 = performance.now();
      const rate = n > 1 ? ((n - 1) / ((t1 - first) / 1000)).toFixed(2) : '-';
      // With no token (the first was a stop token) there is no first-token time to report.
      const prefill = n > 0 ? `first after ${((first - t0) / 1000).toFixed(2)} s (prefill), then ${rate} tokens/s` : `stopped at once after ${((t1 - t0) / 1000).toFixed(2)} s`;
      process.stderr.write(`${n} tokens; ${prefill}\n`);
    });
}

/** Fails (RT400, naming --ids) when `dir` has no tokenizer.json, or one the library rejects. */
async function checkTokenizer(dir: string, flag: string): Promise<void> {
  const { loadTokenizer } = await import('../runtime/tokenizer.ts');
  const path = join(dir, 'tokenizer.json');
  if (!(await loadTokenizer(dir))) throw new RuntimeError('RT400', [path, `no such file: ${flag} needs one${flag === '--prompt' ? '; pass token ids with --ids 1,2,3 instead' : ''}`], { file: path });
}

/** --chat's template, before the weights load: RT410 naming tokenizer_config.json when there is none. */
async function chatTemplateFor(dir: string) {
  const template = (await import('./serve/chat.ts')).loadChatTemplate(dir);
  const file = join(dir, 'tokenizer_config.json');
  if (!template) throw new RuntimeError('RT410', [file, 'it has no chat_template (nor is there a chat_template.jinja beside it), which --chat needs'], { file, key: 'chat_template' });
  return template;
}

/** --positions must follow the sequences of --ids: the same `;`-separated lists of the same lengths
 *  (or one list for one list of ids, where a 0 starts a new sequence). */
function checkPositions(ids: readonly number[][], positions: readonly number[][]): void {
  const lengths = (xs: readonly number[][]) => xs.map((x) => x.length).join(', ');
  if (ids.length !== positions.length || ids.some((s, i) => s.length !== positions[i]!.length)) {
    usage('--positions', `sequences of ${lengths(positions)} positions for sequences of ${lengths(ids)} ids`, 'give one position per id, with ; where --ids has it');
  }
  if (ids.length > 1) {
    positions.forEach((p, i) => {
      if (p[0] !== 0) usage('--positions', `sequence ${i + 1} starts at position ${p[0]}; each ;-separated sequence starts at 0`);
      const k = p.indexOf(0, 1);
      if (k > 0) usage('--positions', `sequence ${i + 1} has a 0 at index ${k}, which would start another sequence; separate sequences with ;`);
    });
  }
}

/** RT319 before logits with NaN or infinities are written or summed into a loss. */
function checkLogits(logits: Float32Array, vocab: number): void {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! - logits[i]! !== 0) {
      if (bad++ === 0) first = i;
    }
  }
  if (bad > 0) throw new RuntimeError('RT319', [bad, logits[first], Math.floor(first / vocab), first % vocab]);
}

/** Refuses, before anything is allocated, a weight that cannot be held: one over the tensor-bytes
 *  limit, or one whose f32 draw and stored copy together exceed this machine's memory (init-weights
 *  holds one tensor at a time). */
function checkFitsInMemory(g: Graph, dtype: DType | undefined, out: string): void {
  for (const w of g.weights) {
    const bytes = numel(w.shape) * DTYPE_BYTES[dtype ?? w.dtype];
    const { tensorBytes } = RUNTIME_LIMITS;
    if (bytes > tensorBytes.value) throw new RuntimeError('RT145', [out, w.name, `[${w.shape.join(', ')}]`, bytes, tensorBytes.name, tensorBytes.value], { file: out, tensor: w.name });
    const held = bytes + 4 * numel(w.shape);
    if (held > totalmem()) throw new RuntimeError('RT152', [out, held.toLocaleString('en-US'), totalmem().toLocaleString('en-US')], { file: out });
  }
}

/** Logits of feeding every sequence one token at a time through decode. */
async function stepByStep(model: Model, seqs: readonly number[][]): Promise<Float32Array> {
  const V = model.vocab;
  const T = seqs.reduce((s, x) => s + x.length, 0);
  const out = new Float32Array(T * V);
  const states = seqs.map(() => model.newSequence());
  const offsets: number[] = [];
  let o = 0;
  for (const s of seqs) {
    offsets.push(o);
    o += s.length;
  }
  const longest = seqs.reduce((m, s) => Math.max(m, s.length), 0);
  for (let t = 0; t < longest; t++) {
    const active = seqs.map((s, i) => i).filter((i) => t < seqs[i]!.length);
    const logits = await model.decodeAsync(active.map((i) => seqs[i]![t]!), active.map((i) => states[i]!));
    active.forEach((i, k) => out.set(logits.subarray(k * V, (k + 1) * V), (offsets[i]! + t) * V));
  }
  return out;
}
