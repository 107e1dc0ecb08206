// `archc build`: writes a self-contained npm package for one compiled model. The package holds the
// generated TypeScript (params, weight table, kernel program, a Model bound to it), a copy of the
// hand-written runtime, compiled JS with .d.ts, graph.json, a README and a build report.
// Everything is written to a temp directory beside the target and renamed into place at the end.

import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { type WriteDirOptions, writeDirAtomic, yieldToSignals } from '../cli/fsutil.ts';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Project, VariableDeclarationKind, ts, type SourceFile } from 'ts-morph';
import { InternalError } from '../dsl/diagnostics.ts';
import type { Graph } from '../compiler/ir.ts';
import { checkProgramJson, graphToJson } from '../compiler/schema.ts';
import type { Stats } from '../compiler/stats.ts';
import { programReport } from '../compiler/kernel/report.ts';
import type { Program } from '../runtime/program.ts';
import { type Backend, RUN_TARGETS } from '../runtime/targets.ts';
import { jsonLiteral, literal } from './literal.ts';
import { writeWebFolder } from './web.ts';
import { type CopiedSources, checkAndEmit, runtimeCache } from './emit.ts';
import type { BuildOptions, PackagePart } from './targets.ts';
import { BUILD_TARGETS } from './targets.ts';

const RUNTIME_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'runtime');
const ROOT_PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'package.json');
// `archc serve`'s server (Node only): shipped under src/cli/serve/, where its imports of ../../runtime/ hold
const SERVE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'serve');
/** What every package copies into src/ unchanged: the runtime (less its tests) and the server. */
const COPIED: readonly CopiedSources[] = [
  { from: RUNTIME_DIR, to: 'runtime', keep: (p) => !p.endsWith('.test.ts') },
  { from: SERVE_DIR, to: join('cli', 'serve'), keep: () => true },
];

export interface BuildInput {
  readonly graph: Graph;
  readonly program: Program;
  readonly stats: Stats;
  /** The .arch file it was built from (for the report). */
  readonly source: string;
  /** npm package name; default `archc-model-<model name>`. */
  readonly packageName?: string;
  /** What each build target ships (codegen/targets.ts), in BUILD_TARGETS order; a package runs on
   *  these backends and on `cpu`. */
  readonly targets?: ReadonlyMap<Backend, PackagePart>;
}

export interface BuildResult {
  readonly dir: string;
  readonly files: readonly string[];
}

/** Builds the package into `outDir` (replacing it only once the new one is complete, and only if
 *  it is empty or an earlier package, unless `force`: see writeDirAtomic). */
/** The build targets a package is made of, in order (for a progress display). */
export const PACKAGE_TARGETS: readonly Backend[] = BUILD_TARGETS.map((t) => t.name);

export async function buildPackage(input: BuildInput, outDir: string, opts: WriteDirOptions = {}): Promise<BuildResult> {
  const target = resolve(outDir);
  await writeDirAtomic(target, 'package', (tmp) => writePackage(input, tmp), opts);
  return { dir: target, files: listFiles(target).map((f) => relative(target, f)) };
}

async function writePackage(input: BuildInput, dir: string): Promise<void> {
  const started = Date.now();
  const problems = checkProgramJson(JSON.parse(JSON.stringify(input.program, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))));
  if (problems.length) throw new InternalError(`the kernel program fails its schema: ${problems.slice(0, 5).join('; ')}`);
  const src = join(dir, 'src');
  for (const c of COPIED) cpSync(c.from, join(src, c.to), { recursive: true, filter: c.keep });

  const compilerOptions = packageCompilerOptions(dir);
  const project = new Project({ compilerOptions });
  project.addSourceFilesAtPaths(join(src, 'runtime', '**', '*.ts'));
  generateModelFile(project.createSourceFile(join(src, 'model.ts'), '', { overwrite: true }), input);
  generateIndexFile(project.createSourceFile(join(src, 'index.ts'), '', { overwrite: true }), input);
  project.createSourceFile(join(src, 'serve.ts'), SERVE_ENTRY, { overwrite: true });
  if (parts(input).has('wasm')) project.createSourceFile(join(src, 'train.ts'), trainEntry(trainerOf(input)), { overwrite: true });
  for (const part of parts(input).values()) {
    for (const [file, text] of part.sources) project.createSourceFile(join(src, file), text, { overwrite: true });
  }
  project.saveSync();
  await yieldToSignals();
  await checkAndEmit(compilerOptions, src, packageRuntimeCache(compilerOptions));
  // the chat page, beside the server's JS as it is beside its source
  cpSync(join(SERVE_DIR, 'page.html'), join(dir, 'dist', 'cli', 'serve', 'page.html'));

  const name = input.packageName ?? `archc-model-${input.graph.model.toLowerCase()}`;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(packageJson(name, input), null, 2) + '\n');
  await writeWebFolder(dir, SERVE_DIR);
  writeFileSync(join(dir, 'graph.json'), graphToJson(input.graph));
  writeFileSync(join(dir, 'README.md'), readme(name, input));
  for (const part of parts(input).values()) {
    for (const [path, bytes] of part.files) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), bytes);
    }
  }
  writeFileSync(join(dir, 'build-report.json'), JSON.stringify(report(input, Date.now() - started), null, 2) + '\n');
}

/** The compiler options of a package written at `dir` (its TypeScript under src/, emitted to dist/). */
function packageCompilerOptions(dir: string): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    declaration: true,
    skipLibCheck: true,
    rewriteRelativeImportExtensions: true,
    allowImportingTsExtensions: true,
    rootDir: join(dir, 'src'),
    outDir: join(dir, 'dist'),
    types: ['node'],
    typeRoots: [resolve(dirname(ROOT_PACKAGE), 'node_modules', '@types')],
    // The package's dependencies are typed from archc's own node_modules while compiling; the
    // emitted JS imports them by name, resolved from the package's node_modules once installed.
    paths: Object.fromEntries(['tokenizers', 'jinja'].map((p) => [`@huggingface/${p}`, [resolve(dirname(ROOT_PACKAGE), 'node_modules', '@huggingface', p)]])),
  };
}

/** Where the runtime's compiled form is kept between builds (codegen/emit.ts): the same for every
 *  package, wherever it is written (the key leaves the package's own folders out). */
export function packageRuntimeCache(options: ts.CompilerOptions = packageCompilerOptions('.')): string | null {
  return runtimeCache(options, COPIED, ROOT_PACKAGE);
}

/** Every build target's part of a package (BUILD_TARGETS order): what `archc build` passes to buildPackage. */
export async function packageParts(program: Program, opts: BuildOptions, between?: () => Promise<void>, starting?: (target: Backend) => void): Promise<Map<Backend, PackagePart>> {
  const out = new Map<Backend, PackagePart>();
  for (const t of BUILD_TARGETS) {
    starting?.(t.name);
    out.set(t.name, await t.package(program, opts));
    await between?.();
  }
  return out;
}

function parts(input: BuildInput): ReadonlyMap<Backend, PackagePart> {
  return input.targets ?? new Map();
}

/** What the package's Trainer trains with on WebGPU (built with --train), an expression. */
function trainerOf(input: BuildInput): string | undefined {
  return parts(input).get('webgpu')?.trainer;
}

/** The backends a package runs on: its build targets', then the reference engine. */
function backends(input: BuildInput): Backend[] {
  return [...parts(input).keys(), 'cpu'];
}

// ---- generated TypeScript ------------------------------------------------------------------

function generateModelFile(file: SourceFile, input: BuildInput): void {
  const { graph, program } = input;
  file.addStatements(`// Generated by archc from ${commentText(basename(input.source))}: model ${graph.model}. Do not edit.`);
  file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: './runtime/program.ts', namedImports: ['Program'] });
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['The params this program was built with.'],
    declarations: [{ name: 'PARAMS', initializer: `${literal(graph.params)} as const` }],
  });
  file.addInterface({
    isExported: true,
    name: 'WeightInfo',
    docs: ['One checkpoint tensor the model reads.'],
    properties: [
      { name: 'name', type: 'string', isReadonly: true },
      { name: 'shape', type: 'readonly number[]', isReadonly: true },
      { name: 'dtype', type: `'f32' | 'f16' | 'bf16'`, isReadonly: true },
    ],
  });
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: [`The ${graph.weights.length} checkpoint tensors, by Hugging Face name${program.choices.length ? ` (config.json's ${program.choices.map((c) => c.keys[0]).join(', ')} at the default)` : ''}.`],
    declarations: [{
      name: 'WEIGHTS',
      type: 'readonly WeightInfo[]',
      initializer: literal(graph.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: w.dtype }))),
    }],
  });
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: [`The kernel program: ${program.entries.decode.kernels.length} kernels per decode step, ${program.entries.prefill.kernels.length} per prefill, ${program.states.length} states per sequence slot.`],
    declarations: [{ name: 'PROGRAM', type: 'Program', initializer: jsonLiteral(program) }],
  });
}

function generateIndexFile(file: SourceFile, input: BuildInput): void {
  const model = input.graph.model;
  file.addStatements(`// Generated by archc: the ${model} model package entry point. Do not edit.`);
  file.addImportDeclaration({ moduleSpecifier: './model.ts', namedImports: ['PROGRAM'] });
  file.addImportDeclaration({ moduleSpecifier: './runtime/model.ts', namedImports: [{ name: 'Model', alias: 'RuntimeModel' }, 'type LoadOptions'] });
  file.addExportDeclaration({ moduleSpecifier: './model.ts', namedExports: ['PARAMS', 'WEIGHTS', 'PROGRAM', 'type WeightInfo'] });
  file.addExportDeclaration({
    moduleSpecifier: './runtime/model.ts',
    namedExports: ['type LoadOptions', 'type ForwardInput', 'type ForwardResult', 'type GenerateOptions', 'type GenerateManyOptions', 'type GeneratedToken',
      'type GeneratedTokenOf', 'type SavedSequence'],
  });
  // the sampler generate uses, for a loop over decode() of one's own
  file.addExportDeclaration({ moduleSpecifier: './runtime/sampling.ts', namedExports: ['sampleToken', 'rngFor', 'type SamplingOptions'] });
  file.addExportDeclaration({ moduleSpecifier: './runtime/engine.ts', namedExports: ['type SequenceState'] });
  file.addExportDeclaration({ moduleSpecifier: './runtime/errors.ts', namedExports: ['RuntimeError'] });
  file.addFunction({
    isExported: true,
    isAsync: true,
    name: 'load',
    docs: [`Loads a Hugging Face checkpoint (config.json, safetensors, tokenizer.json) as ${model}: a directory in Node, a URL in a browser.\n`
      + 'On `backend: \'webgpu\'` the package\'s own WGSL is used (loaded only then).'],
    parameters: [{ name: 'dir', type: 'string' }, { name: 'options', type: 'LoadOptions', initializer: '{}' }],
    returnType: 'Promise<RuntimeModel>',
    statements: [
      // the default: the first backend the package runs on (wasm when it ships its kernels)
      `const backend = options.backend ?? ${JSON.stringify(backends(input)[0])};`,
      // each build target hands its part of the package to its backend (codegen/targets.ts)
      `return RuntimeModel.loadProgram(PROGRAM, dir, { ...options, backend${[...parts(input).values()].flatMap((p) => Object.entries(p.load)).map(([f, e]) => `, ${f}: ${e}`).join('')} });`,
    ],
  });
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['`Model.load(dir, { backend })`'],
    declarations: [{ name: 'Model', initializer: '{ load } as const' }],
  });
  // the same name as a type: `const m: Model = await Model.load(dir)`
  file.addTypeAlias({ isExported: true, name: 'Model', type: 'RuntimeModel', docs: [`A loaded ${model}: what \`Model.load\` and \`load\` give.`] });
}

/** `<package>/serve`: `archc serve` for Node apps, over a model the app loaded (a subpath, so a
 *  browser bundle of the package never reaches node:http). */
const SERVE_ENTRY = `// Generated by archc: the OpenAI-compatible server (archc serve) over a loaded model, for Node apps. Do not edit.
import { basename, resolve } from 'node:path';
import { loadChatTemplate } from './cli/serve/chat.ts';
import { type RunningServer, type ServeOptions, serve as listen } from './cli/serve/server.ts';
import type { Model } from './runtime/model.ts';

export type { RunningServer, ServeOptions };

/** Serves \`model\` at http://host:port (default 127.0.0.1:8080; port 0: any free one, \`url\` says which):
 *  /v1/chat/completions and /v1/completions (streamed or whole), /v1/models, /health, /metrics and a
 *  chat page at /. The model id defaults to the checkpoint directory's name, the chat template to its
 *  tokenizer_config.json's. \`close()\` stops it. */
export function serve(model: Model, options: Partial<ServeOptions> & { host?: string; port?: number } = {}): Promise<RunningServer> {
  const { host = '127.0.0.1', port = 8080, id, template, ...rest } = options;
  return listen(model, host, port, { ...rest, id: id ?? basename(resolve(model.dir)), template: template !== undefined ? template : loadChatTemplate(model.dir) });
}
`;

/** `<package>/train`: fine-tuning in Node on the f32 engine over the package's wasm kernels and its
 *  graph.json (runtime/train/session.ts); a package with the wasm target only. Built with `--train`,
 *  also on WebGPU from what the webgpu target ships (its `trainer`, an expression). */
const trainEntry = (trainer: string | undefined) => `// Generated by archc: training this model (fine-tuning a checkpoint in Node; from weights in memory in a page too). Do not edit.
import { wasmKernelBytes } from './kernels.ts';
import { type Metric, type PackedBatch, Trainer as Session, type TrainerOptions, packageGraph } from './runtime/train/session.ts';

export type { Metric, PackedBatch, TrainerOptions };
export type Trainer = Session;

// @ts-ignore TS1470: the package's sources are compiled before its package.json says "type": "module"; the output is ESM
const here: string = import.meta.url;

${trainer ? `/** What the Trainer trains with on WebGPU: the program with its train entry and its WGSL (src/train-wgsl.ts, loaded only then). */
const webgpu = () => ${trainer};

` : ''}/** \`Trainer.open(dir, { steps, lr, warmup, ... })\`: a trainer starting from the checkpoint in dir
 *  (with \`resume: true\`: continuing a run it saved there; \`backend: 'webgpu'\`: ${trainer ? 'on WebGPU, stepping with stepAsync' : 'refused, RT606: this package was built without --train'});
 *  \`Trainer.pack(sequences)\`: a packed batch. */
export const Trainer = {
  open: (dir: string, options: TrainerOptions & { resume?: boolean }): Promise<Session> =>
    Session.open(packageGraph(here), wasmKernelBytes(), dir, options${trainer ? ', webgpu' : ''}),
  /** A trainer from weights in memory (no file read: in a page, on WebGPU${trainer ? '' : ' with a package built with --train'}). */
  start: (weights: Parameters<typeof Session.start>[0], options: TrainerOptions): Promise<Session> =>
    Session.start(weights, () => packageGraph(here), wasmKernelBytes(), options${trainer ? ', webgpu' : ''}),
  pack: Session.pack,
} as const;
`;

// ---- package files -------------------------------------------------------------------------

/** The Node modules the runtime imports: a browser bundle gets empty ones (only Node paths use them). */
/** What the runtime imports that a browser does not have: every `node:` module its sources name
 *  (found by reading them, so a new import cannot be forgotten) and the Node-only packages. */
function nodeModules(): string[] {
  const found = new Set(['webgpu', 'koffi']);
  for (const f of listFiles(RUNTIME_DIR).filter((p) => p.endsWith('.ts'))) {
    for (const m of readText(f).matchAll(/['"](node:[\w/]+)['"]/g)) found.add(m[1]!);
  }
  return [...found].sort();
}

function packageJson(name: string, input: BuildInput): object {
  const root = JSON.parse(readText(ROOT_PACKAGE)) as { version: string; dependencies: Record<string, string> };
  const optional = [...new Set([...parts(input).values()].flatMap((p) => p.optionalDependencies ?? []))];
  const fail = (msg: string): never => { throw new InternalError(msg); };
  return {
    name,
    version: '0.1.0',
    description: `${input.graph.model} (${input.stats.parameters.total.toLocaleString('en-US')} parameters), compiled by archc ${root.version}`,
    type: 'module',
    main: './dist/index.js',
    types: './dist/index.d.ts',
    exports: {
      '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './serve': { types: './dist/serve.d.ts', default: './dist/serve.js' },
      ...(parts(input).has('wasm') ? { './train': { types: './dist/train.d.ts', default: './dist/train.js' } } : {}), './graph.json': './graph.json',
    },
    files: ['dist', 'src', 'web', 'graph.json', 'build-report.json', 'README.md', ...new Set([...parts(input).values()].flatMap((p) => [...p.files.keys()].map((f) => f.split('/')[0]!)))],
    engines: { node: '>=20' },
    dependencies: Object.fromEntries(['@huggingface/tokenizers', '@huggingface/jinja'].map((d) => [d, root.dependencies[d]])),
    // the cuda backend's FFI to the driver, only loaded by backend 'cuda'
    ...(optional.length ? { optionalDependencies: Object.fromEntries(optional.map((d) => [d, root.dependencies[d] ?? fail(`archc has no dependency ${d}`)])) } : {}),
    // WebGPU in Node comes from the `webgpu` package (Dawn), installed by whoever wants it; browsers
    // have navigator.gpu, and their bundlers leave Node's modules out (the `browser` map)
    peerDependencies: { webgpu: root.dependencies.webgpu },
    peerDependenciesMeta: { webgpu: { optional: true } },
    browser: Object.fromEntries(nodeModules().map((m) => [m, false])),
  };
}

/** What the checkpoint's config.json decides at load, with the parameter count of each value. */
function atLoadText(stats: Stats): string {
  return (stats.parameters.atLoad ?? []).map((c) => `\nThe checkpoint's \`${c.key}\` decides at load which tensors the weights read (absent: ${JSON.stringify(c.value)}): `
    + `${c.totals.map((t) => `${JSON.stringify(t.value)}, ${t.total.toLocaleString('en-US')} parameters`).join('; ')}.`).join('');
}

/** User text (a file name) as it may stand in a one-line comment of generated code: line breaks of
 *  every kind (\n, \r, U+2028, U+2029, U+0085) and other control characters written as \u escapes,
 *  so nothing after them can become code; `*` + `/` is split so a block comment cannot end either. */
export function commentText(text: string): string {
  return text
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/\*\//g, '*\\/');
}

function readme(name: string, input: BuildInput): string {
  const { graph, stats } = input;
  return `# ${name}

${graph.model}, compiled by archc from \`${commentText(basename(input.source)).replace(/`/g, "'")}\`: ${stats.parameters.total.toLocaleString('en-US')} parameters,
${graph.weights.length} checkpoint tensors; ${input.program.entries.decode.kernels.length} kernels per decode step, ${input.program.entries.prefill.kernels.length} per prefill.${atLoadText(stats)}

## Use

\`\`\`js
import { Model } from '${name}';

// a Hugging Face checkpoint directory: config.json, model.safetensors (or the sharded index), tokenizer.json
const model = await Model.load('/path/to/checkpoint');   // { backend: 'cpu' } for the reference engine
// in TypeScript \`Model\` is also the loaded model's type: function run(m: Model) { … }

// logits for a packed batch of two sequences (position ids restart at 0 for each)
const { logits, vocab } = model.forward({ ids: [1, 2, 3, 4, 5], positions: [0, 1, 2, 0, 1] });

// streaming generation
for await (const { text } of model.generate('The capital of France is', { maxTokens: 32, temperature: 0.7, topP: 0.9, seed: 1 })) {
  process.stdout.write(text);
}

// prefill and decode with the hybrid cache (KV for attention, conv + SSM state for Mamba layers)
const { states, logits: last } = model.prefill([[1, 2, 3], [4, 5]]);   // each sequence in a state slot
const next = model.decode([42, 7], states);                             // one batched step, [2, vocab]
const fork = model.copySequence(states[0]);                             // continue two ways from here
const saved = model.saveSequence(states[1]);                            // bytes; restoreSequence(saved) resumes it
for (const s of [...states, fork]) model.releaseSequence(s);
\`\`\`

On a GPU (WebGPU: \`navigator.gpu\` in a browser; in Node install the optional peer \`webgpu\`), results are
read asynchronously:

\`\`\`js
const gpu = await Model.load('/path/to/checkpoint', { backend: 'webgpu' }); // in a browser: a URL
const { logits: l } = await gpu.forwardAsync({ ids: [1, 2, 3] });
const { states: s } = await gpu.prefillAsync([[1, 2, 3]]);
const n = await gpu.decodeAsync([42], s);
\`\`\`

In a browser the \`wasm\` backend runs on several threads only inside a Worker of a cross-origin isolated
page (\`Cross-Origin-Opener-Policy: same-origin\`, \`Cross-Origin-Embedder-Policy: require-corp\`); on the main
thread or without isolation it runs on one (\`model.threads\` says which). A model past 4 GiB goes into one memory64
memory where the engine has it (Chromium >= 133, Node >= 24; \`wasmMemory64\`: true or false forces either way), else
several 32-bit memories. Load the model in a module Worker and pass prompts and results by messages:

\`\`\`js
// model-worker.js, started by the page with new Worker(new URL('./model-worker.js', import.meta.url), { type: 'module' })
import { Model } from '${name}';
const model = Model.load(new URL('/ckpt/', location.href).href);
self.onmessage = async ({ data: prompt }) => {
  for await (const { text } of (await model).generate(prompt, { maxTokens: 64 })) self.postMessage(text);
};
\`\`\`

The package's \`web/\` folder is a chat page that runs the model itself: put this package's folder (web/ imports
dist/wgsl.js on WebGPU) and a checkpoint on any static server (cross-origin isolated for wasm threads) and open \`web/?model=<checkpoint URL>&backend=wasm\` (or \`webgpu\`;
\`&threads=N\`). It shows the load's progress, streams each reply with its tokens/s, stops on request, and chats
through the checkpoint's chat template (a text completion of the message when it has none); the model runs in
\`web/model-worker.js\`, this package bundled for the browser. \`archc serve\` serves the same page at \`/\`.

In Node, \`${name}/serve\` puts a loaded model behind an OpenAI-compatible HTTP server (\`archc serve\`:
chat and text completions streamed or whole, continuous batching, a state cache, a chat page at \`/\`):

\`\`\`js
import { serve } from '${name}/serve';
const server = await serve(model, { port: 8080 });   // server.url; any OpenAI client at \`\${server.url}/v1\`
await server.close();
\`\`\`

${parts(input).has('wasm') ? `In Node, \`${name}/train\` fine-tunes a checkpoint (f32 masters, gradients on the wasm kernels, AdamW with clipping and a
warmup + cosine schedule; the files \`archc train\` writes, resumed bit for bit):

\`\`\`js
import { Trainer } from '${name}/train';
const t = await Trainer.open('/path/to/checkpoint', { steps: 100, lr: 1e-4, warmup: 10 });
for (const batch of t.batches('data.txt', { seqLen: 256, batch: 8 })) {   // or Trainer.pack([[ids…], [ids…]])
  const { loss, lr } = t.step(batch);
  if (t.state.step === 100) break;
}
t.save('/path/to/run');                     // a checkpoint Model.load reads; Trainer.open(run, { steps: 200, resume: true }) goes on
t.close();
\`\`\`

${trainerOf(input) ? `Built with \`--train\`, it trains on WebGPU too (the \`webgpu\` package, or \`webgpu: { gpu }\`), every step whole on the device:
\`await t.stepAsync(batch)\`, \`await t.evaluateAsync(batches)\`, \`await t.saveAsync(dir)\` (the masters read back) after
\`Trainer.open(dir, { steps: 100, backend: 'webgpu' })\`. In a page (this package bundled for the browser), start from
weights in memory instead: \`await Trainer.start([{ name, shape, value }, …], { steps: 100, backend: 'webgpu' })\`.

` : ''}` : ''}Load options: \`backend\`, where the kernels run (the first is the default):
${backends(input).map((b) => `- \`'${b}'\`: ${RUN_TARGETS.find((t) => t.name === b)!.about}`).join('\n')}

and \`threads\` (threads for the products; default \`ARCHC_THREADS\`, else the cores, at most 8; in a browser \`navigator.hardwareConcurrency\`, at most 8), \`capacity\` (tokens a sequence may hold; default the model's context), \`allowExtra\`, \`onProgress\` (after each weight: weights done, and checkpoint bytes read of the total with the rate), \`memoryAvailable\` (bytes the weights may take; default in Node the machine's available memory or its cgroup's room: a load that needs more is refused before it reads, RT146).

Sampling options: \`temperature\`, \`topK\`, \`topP\`, \`minP\`, \`repetitionPenalty\`, \`seed\`, \`stop\` (token ids),
\`stopStrings\`, \`maxTokens\`, \`stopAtContext\` (end at the sequence's capacity instead of refusing a run that would pass it, RT307). \`forward({ ids, labels })\` also returns the causal-LM \`loss\`.

The checkpoint's config.json must match the params this package was built with (\`PARAMS\`); a mismatch is
reported key by key. Rebuild with \`archc build <model.arch> --hf-config <checkpoint>/config.json\` for another
configuration.

## Files

- \`graph.json\` — the model graph (schema \`archc-graph/1\`)
- \`build-report.json\` — what was built: dispatches per decode step and prefill, arena and state-slot bytes,
  every kernel with the ops it fused and its source lines, the kernels a backend runs on a reference path
  (\`fallbacks\`, with the reason), parameter counts, FLOPs and state sizes
- \`web/\` — the chat page (\`index.html\`) and its model worker (\`model-worker.js\`, with the chunks beside it that it loads on demand, and \`dist/wgsl.js\` on WebGPU)
- \`src/\` — generated TypeScript (\`model.ts\`, \`wgsl.ts\`: the WGSL of every kernel, one binding per buffer, split at load where a buffer is larger than the device's bindings; \`index.ts\`) and the archc runtime; \`dist/\` — compiled JS and .d.ts
`;
}

function report(input: BuildInput, ms: number): object {
  const ctx = input.graph.params.context;
  const r = programReport(input.program, { prefillTokens: 4096, decodeBatch: 8, context: typeof ctx === 'number' ? ctx : 4096 });
  return {
    model: input.graph.model,
    source: basename(input.source),
    params: input.graph.params,
    dispatches: r.dispatches,
    memory: r.memory,
    kernels: r.kernels,
    fallbacks: r.fallbacks,
    states: input.program.states.length,
    stats: input.stats,
    backends: backends(input),
    targets: Object.fromEntries([...parts(input)].map(([t, p]) => [t, p.report])),
    buildMs: ms,
  };
}

function readText(p: string): string {
  return readFileSync(p, 'utf8');
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]);
}
