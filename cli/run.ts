// The commands that build and run models: build, init-weights, forward, run.

import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { type Compiled, compileFile, loadConfig } from '../compiler/compile.ts';
import { hfConfigText, initWeights } from '../compiler/init.ts';
import { lowerToProgram } from '../compiler/lower.ts';
import { computeStats } from '../compiler/stats.ts';
import { programReport } from '../compiler/kernel/report.ts';
import { CompileError, diag } from '../dsl/diagnostics.ts';
import { causalLmLoss } from '../runtime/loss.ts';
import { Model } from '../runtime/model.ts';
import { createRng } from '../runtime/rng.ts';
import { writeSafetensors, writeShardedSafetensors } from '../runtime/safetensors.ts';
import type { DType } from '../runtime/tensor.ts';
import { type CommonOpts, withCommon } from './common.ts';
import { writeDirAtomic, writeFileAtomic } from './fsutil.ts';
import { encodeNpy } from './npy.ts';
import { renderProgram } from '../codegen/wgsl/render.ts';

/** Compiles for a checkpoint: its config.json binds the params unless --hf-config names another. */
function compileFor(file: string, o: CommonOpts, weightsDir?: string): Compiled {
  const configPath = o.hfConfig ?? (weightsDir && existsSync(join(weightsDir, 'config.json')) ? join(weightsDir, 'config.json') : undefined);
  return compileFile(file, { hfConfigData: configPath ? loadConfig(configPath) : undefined, set: o.set, model: o.model });
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** A bad command-line value: a diagnostic without a place in any file. */
function usage(what: string, message: string, hint?: string): never {
  throw new CompileError([diag('AC315', undefined, [what, message], hint)]);
}

/** `1,2,3;4,5` -> [[1,2,3],[4,5]] */
function parseIdLists(text: string, flag: string): number[][] {
  return text.split(';').map((part) => part.split(',').map((s) => {
    const n = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(n)) usage(flag, JSON.stringify(text), `${flag} takes integers separated by commas, sequences separated by ;`);
    return n;
  }));
}

async function loadModel(file: string, o: CommonOpts & { weights: string; allowExtra?: boolean; backend?: string }, progress: boolean): Promise<Model> {
  const compiled = compileFor(file, o, o.weights);
  const program = lowerToProgram(compiled.graph, compiled.bindings);
  const bar = progress && process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: 'loading weights [{bar}] {value}/{total} {tensor}', clearOnComplete: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined;
  bar?.start(program.weights.length, 0, { tensor: '' });
  try {
    const webgpu = o.backend === 'webgpu';
    return await Model.loadProgram(program, o.weights, {
      allowExtra: o.allowExtra,
      ...(webgpu ? { backend: 'webgpu' as const, wgsl: renderProgram(program) } : {}),
      onProgress: (done, _total, tensor) => bar?.update(done, { tensor }),
    });
  } finally {
    bar?.stop();
  }
}

export function registerRunCommands(p: Command): void {
  withCommon(p.command('build <file>').description('compile a model into an npm package (generated TypeScript runtime, graph.json, report)'))
    .requiredOption('-o, --out <dir>', 'the package directory to write')
    .option('--name <name>', 'npm package name')
    .action(async (file: string, o: CommonOpts & { out: string; name?: string }) => {
      const t0 = performance.now();
      // ts-morph (TypeScript) takes a third of a second to load: only `build` needs it.
      const { buildPackage } = await import('../codegen/package.ts');
      const compiled = compileFor(file, o);
      const program = lowerToProgram(compiled.graph, compiled.bindings);
      const ctx = compiled.graph.params.context;
      const stats = computeStats(compiled.graph, typeof ctx === 'number' ? ctx : 4096, 1);
      const r = buildPackage({ graph: compiled.graph, program, stats, source: file, packageName: o.name }, o.out);
      const rep = programReport(program, { prefillTokens: 4096, decodeBatch: 8, context: typeof ctx === 'number' ? ctx : 4096 });
      const d = rep.dispatches, m = rep.memory;
      const layers = Object.entries(d.perLayer).map(([k, n]) => `${n} per ${k} layer`).join(', ');
      process.stdout.write(`built ${r.dir}: model ${compiled.graph.model}, ${r.files.length} files in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`
        + `  kernels: ${d.decode} per decode step (${layers}, ${d.outsideLayers} outside the layers), ${d.prefill} per prefill\n`
        + `  memory: arena ${mib(m.arenaBytesByEntry.prefill)} for a ${m.prefillTokens}-token prefill, ${mib(m.arenaBytesByEntry.decode)} for a decode batch of ${m.decodeBatch}; `
        + `${mib(m.stateBytesPerSlot)} of state per sequence slot (context ${m.context})\n`);
    });

  withCommon(p.command('init-weights <file>').description('write a random checkpoint in Hugging Face layout (config.json + safetensors)'))
    .requiredOption('-o, --out <dir>', 'the checkpoint directory to write')
    .addOption(new Option('--dtype <dtype>', 'weight dtype').choices(['f32', 'bf16', 'f16']))
    .option('--seed <n>', 'random seed', '0')
    .option('--shard-size <bytes>', 'split into shards of at most this many bytes (writes model.safetensors.index.json)')
    .action((file: string, o: CommonOpts & { out: string; dtype?: DType; seed: string; shardSize?: string }) => {
      const compiled = compileFor(file, o);
      const g = compiled.graph;
      const tensors = initWeights(g, createRng(Number(o.seed)), o.dtype);
      writeDirAtomic(resolve(o.out), (tmp) => {
        writeFileSync(join(tmp, 'config.json'), hfConfigText(compiled, o.dtype));
        if (o.shardSize) writeShardedSafetensors(tmp, tensors, Number(o.shardSize), { format: 'pt' });
        else writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
      });
      const n = tensors.reduce((s, t) => s + t.tensor.data.length, 0);
      process.stdout.write(`wrote ${o.out}: ${tensors.length} tensors, ${n.toLocaleString('en-US')} parameters\n`);
    });

  withCommon(p.command('forward <file>').description('run a forward pass and write the logits as .npy'))
    .requiredOption('--weights <dir>', 'checkpoint directory')
    .requiredOption('--ids <ids>', 'token ids, comma-separated; `;` separates packed sequences')
    .option('--positions <ids>', 'position ids (a 0 starts a new sequence)')
    .option('--step', 'feed the tokens one at a time through decode')
    .option('--loss', 'print the causal-LM loss (labels = the ids) as JSON')
    .option('--out <file>', 'write float32 logits [tokens, vocab] as .npy')
    .option('--allow-extra', 'accept checkpoint tensors the model does not use')
    .addOption(new Option('--backend <backend>', 'where to run (webgpu: Dawn; without a GPU set VK_ICD_FILENAMES to SwiftShader\'s ICD)').choices(['cpu', 'webgpu']).default('cpu'))
    .action(async (file: string, o: CommonOpts & { weights: string; ids: string; positions?: string; step?: boolean; loss?: boolean; out?: string; allowExtra?: boolean; backend?: string }) => {
      const seqs = parseIdLists(o.ids, '--ids');
      const model = await loadModel(file, o, false);
      const ids = seqs.flat();
      const cu = [0];
      for (const s of seqs) cu.push(cu[cu.length - 1]! + s.length);
      let logits: Float32Array;
      let loss: number | undefined;
      if (o.step) {
        if (o.positions) usage('--positions', 'it cannot be combined with --step', 'decode numbers positions itself');
        logits = await stepByStep(model, seqs);
      } else {
        const positions = o.positions ? parseIdLists(o.positions, '--positions').flat() : undefined;
        // labels = ids; the first token of each packed sequence is not predicted from the one before
        const labels = o.loss ? Int32Array.from(ids) : undefined;
        if (labels) cu.slice(1, -1).forEach((start) => (labels[start] = -100));
        const r = await model.forwardAsync(positions ? { ids, positions, labels } : { ids, cuSeqlens: cu, labels });
        logits = r.logits;
        loss = r.loss;
      }
      if (o.loss && o.step) {
        const labels = Int32Array.from(ids);
        cu.slice(1, -1).forEach((start) => (labels[start] = -100));
        loss = causalLmLoss(logits, ids.length, model.vocab, labels).loss;
      }
      if (o.out) writeFileAtomic(o.out, encodeNpy(logits, [ids.length, model.vocab]));
      if (o.loss) process.stdout.write(JSON.stringify({ loss, tokens: ids.length }) + '\n');
      if (!o.out && !o.loss) process.stdout.write(`logits [${ids.length}, ${model.vocab}]: pass --out FILE.npy to save them\n`);
    });

  withCommon(p.command('run <file>').description('generate text from a prompt'))
    .requiredOption('--weights <dir>', 'checkpoint directory')
    .option('--prompt <text>', 'the prompt (needs tokenizer.json)')
    .option('--ids <ids>', 'prompt token ids instead of text')
    .option('--max-tokens <n>', 'tokens to generate', '64')
    .option('--temperature <t>', '0 = greedy', '0')
    .option('--top-k <k>')
    .option('--top-p <p>')
    .option('--min-p <p>')
    .option('--repetition-penalty <r>')
    .option('--seed <n>', 'sampling seed', '0')
    .option('--stop <ids>', 'stop token ids, comma-separated')
    .option('--allow-extra', 'accept checkpoint tensors the model does not use')
    .addOption(new Option('--backend <backend>', 'where to run (webgpu: Dawn; without a GPU set VK_ICD_FILENAMES to SwiftShader\'s ICD)').choices(['cpu', 'webgpu']).default('cpu'))
    .action(async (file: string, o: CommonOpts & Record<string, string | undefined> & { weights: string; set: string[] }) => {
      if (!o.prompt && !o.ids) usage('arguments', 'missing --prompt TEXT (or --ids 1,2,3 when the checkpoint has no tokenizer)');
      const model = await loadModel(file, o as never, true);
      const prompt = o.ids ? parseIdLists(o.ids, '--ids').flat() : o.prompt!;
      const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      const t0 = performance.now();
      let n = 0;
      let first = 0;
      for await (const tok of model.generate(prompt, {
        maxTokens: num(o.maxTokens), temperature: num(o.temperature), topK: num(o.topK), topP: num(o.topP), minP: num(o.minP),
        repetitionPenalty: num(o.repetitionPenalty), seed: num(o.seed), stop: o.stop ? parseIdLists(o.stop, '--stop').flat() : undefined,
      })) {
        if (n === 0) first = performance.now();
        n++;
        process.stdout.write(model.tokenizer ? tok.text : `${tok.id} `);
      }
      const t1 = performance.now();
      const rate = n > 1 ? ((n - 1) / ((t1 - first) / 1000)).toFixed(2) : '-';
      process.stderr.write(`\n${n} tokens; first after ${((first - t0) / 1000).toFixed(2)} s (prefill), then ${rate} tokens/s\n`);
    });
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
  const longest = Math.max(...seqs.map((s) => s.length));
  for (let t = 0; t < longest; t++) {
    const active = seqs.map((s, i) => i).filter((i) => t < seqs[i]!.length);
    const logits = await model.decodeAsync(active.map((i) => seqs[i]![t]!), active.map((i) => states[i]!));
    active.forEach((i, k) => out.set(logits.subarray(k * V, (k + 1) * V), (offsets[i]! + t) * V));
  }
  return out;
}
