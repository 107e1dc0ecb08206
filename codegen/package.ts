// `archc build`: writes a self-contained npm package for one compiled model. The package holds the
// generated TypeScript (params, weight table, kernel program, a Model bound to it), a copy of the
// hand-written runtime, compiled JS with .d.ts, graph.json, a README and a build report.
// Everything is written to a temp directory beside the target and renamed into place at the end.

import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { type WriteDirOptions, writeDirAtomicAsync, yieldToSignals } from '../cli/fsutil.ts';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Project, VariableDeclarationKind, ts, type SourceFile } from 'ts-morph';
import { InternalError } from '../dsl/diagnostics.ts';
import type { Graph } from '../compiler/ir.ts';
import { checkProgramJson, graphToJson } from '../compiler/schema.ts';
import type { Stats } from '../compiler/stats.ts';
import { programReport } from '../compiler/kernel/report.ts';
import type { Program } from '../runtime/program.ts';
import { type CudaBuild, cudaManifest } from './cuda/build.ts';
import { renderProgram } from './wgsl/render.ts';

const RUNTIME_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'runtime');
const ROOT_PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'package.json');

export interface BuildInput {
  readonly graph: Graph;
  readonly program: Program;
  readonly stats: Stats;
  /** The .arch file it was built from (for the report). */
  readonly source: string;
  /** npm package name; default `archc-model-<model name>`. */
  readonly packageName?: string;
  /** The `wasm` backend's assembled kernel modules (codegen/wasm/: its variants, the fused
   *  multiply-add one first), shipped in src/kernels.ts. */
  readonly wasmKernels?: readonly Uint8Array[];
  /** The program's own wasm module (codegen/wasm/program.ts), shipped beside them in src/kernels.ts. */
  readonly wasmProgram?: Uint8Array;
  /** The CUDA kernels (`.cu` sources, and cubins where nvcc compiled them). */
  readonly cuda?: CudaBuild;
}

export interface BuildResult {
  readonly dir: string;
  readonly files: readonly string[];
}

/** Builds the package into `outDir` (replacing it only once the new one is complete, and only if
 *  it is empty or an earlier package, unless `force`: see writeDirAtomic). */
export async function buildPackage(input: BuildInput, outDir: string, opts: WriteDirOptions = {}): Promise<BuildResult> {
  const target = resolve(outDir);
  await writeDirAtomicAsync(target, 'package', (tmp) => writePackage(input, tmp), opts);
  return { dir: target, files: listFiles(target).map((f) => relative(target, f)) };
}

async function writePackage(input: BuildInput, dir: string): Promise<void> {
  const started = Date.now();
  const problems = checkProgramJson(JSON.parse(JSON.stringify(input.program, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))));
  if (problems.length) throw new InternalError(`the kernel program fails its schema: ${problems.slice(0, 5).join('; ')}`);
  const src = join(dir, 'src');
  cpSync(RUNTIME_DIR, join(src, 'runtime'), { recursive: true, filter: (p) => !p.endsWith('.test.ts') });

  const compilerOptions: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    declaration: true,
    skipLibCheck: true,
    rewriteRelativeImportExtensions: true,
    allowImportingTsExtensions: true,
    rootDir: src,
    outDir: join(dir, 'dist'),
    types: ['node'],
    typeRoots: [resolve(dirname(ROOT_PACKAGE), 'node_modules', '@types')],
    // The package's dependencies are typed from archc's own node_modules while compiling; the
    // emitted JS imports them by name, resolved from the package's node_modules once installed.
    paths: { '@huggingface/tokenizers': [resolve(dirname(ROOT_PACKAGE), 'node_modules', '@huggingface', 'tokenizers')] },
  };
  const project = new Project({ compilerOptions });
  project.addSourceFilesAtPaths(join(src, 'runtime', '**', '*.ts'));
  generateModelFile(project.createSourceFile(join(src, 'model.ts'), '', { overwrite: true }), input);
  generateWgslFile(project.createSourceFile(join(src, 'wgsl.ts'), '', { overwrite: true }), input);
  generateIndexFile(project.createSourceFile(join(src, 'index.ts'), '', { overwrite: true }), input);
  if (input.wasmKernels) generateKernelsFile(project.createSourceFile(join(src, 'kernels.ts'), '', { overwrite: true }), input.wasmKernels, input.wasmProgram);
  project.saveSync();
  await yieldToSignals();
  await checkAndEmit(compilerOptions, src);

  const name = input.packageName ?? `archc-model-${input.graph.model.toLowerCase()}`;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(packageJson(name, input), null, 2) + '\n');
  writeFileSync(join(dir, 'graph.json'), graphToJson(input.graph));
  writeFileSync(join(dir, 'README.md'), readme(name, input));
  if (input.cuda) writeCuda(dir, input.cuda);
  writeFileSync(join(dir, 'build-report.json'), JSON.stringify(report(input, Date.now() - started), null, 2) + '\n');
}

/** cuda/: each distinct kernel source once (kernels/<id>.cu), the compiled modules, and the
 *  manifest (runtime/cuda/kernels.ts: each entry's kernels by name and id, the modules). */
function writeCuda(dir: string, cuda: CudaBuild): void {
  for (const k of cuda.kernels) {
    mkdirSync(dirname(join(dir, k.path)), { recursive: true });
    writeFileSync(join(dir, k.path), k.source);
  }
  for (const [path, bytes] of cuda.modules) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), bytes);
  }
  writeFileSync(join(dir, 'cuda', 'manifest.json'), JSON.stringify(cudaManifest(cuda), null, 2) + '\n');
}

/** Type-checks and emits the package's TypeScript (saved under `src`) on a worker thread: the
 *  longest step of a build, and one the main thread keeps waiting on, not running, so a SIGINT
 *  ends the build at once (cli/fsutil.ts exitOnSignals). The worker is plain CommonJS text with
 *  ts-morph's resolved path, so it runs the same from the sources and from the CLI's bundle. */
async function checkAndEmit(compilerOptions: ts.CompilerOptions, src: string): Promise<void> {
  const worker = new Worker(EMIT_WORKER, { eval: true, workerData: { tsMorph: createRequire(import.meta.url).resolve('ts-morph'), compilerOptions, src } });
  try {
    const result = await new Promise<{ errors?: string; skipped?: boolean }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new InternalError(`the TypeScript worker exited with code ${code}`)));
    });
    if (result.errors) throw new InternalError(`generated TypeScript does not compile:\n${result.errors}`);
    if (result.skipped) throw new InternalError('TypeScript emit was skipped');
  } finally {
    await worker.terminate();
  }
}

const EMIT_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { Project, ts } = require(workerData.tsMorph);
const project = new Project({ compilerOptions: workerData.compilerOptions });
project.addSourceFilesAtPaths(workerData.src + '/**/*.ts');
const diagnostics = project.getPreEmitDiagnostics().filter((d) => d.getCategory() === ts.DiagnosticCategory.Error);
if (diagnostics.length) parentPort.postMessage({ errors: project.formatDiagnosticsWithColorAndContext(diagnostics.slice(0, 10)) });
else parentPort.postMessage({ skipped: project.emitSync().getEmitSkipped() });
`;

// ---- generated TypeScript ------------------------------------------------------------------

/** A TypeScript literal for plain data (JSON plus Infinity and NaN). */
function literal(v: unknown, indent = ''): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== 'object' || x === null)) return `[${v.map((x) => literal(x)).join(', ')}]`;
    const inner = indent + '  ';
    return `[\n${v.map((x) => inner + literal(x, inner)).join(',\n')},\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return '{}';
  const inner = indent + '  ';
  const key = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));
  const flat = entries.every(([, x]) => typeof x !== 'object' || x === null || (Array.isArray(x) && x.every((y) => typeof y !== 'object')));
  if (flat && entries.length <= 8) return `{ ${entries.map(([k, x]) => `${key(k)}: ${literal(x)}`).join(', ')} }`;
  return `{\n${entries.map(([k, x]) => `${inner}${key(k)}: ${literal(x, inner)}`).join(',\n')},\n${indent}}`;
}

function generateModelFile(file: SourceFile, input: BuildInput): void {
  const { graph, program } = input;
  file.addStatements(`// Generated by archc from ${basename(input.source)}: model ${graph.model}. Do not edit.`);
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
    declarations: [{ name: 'PROGRAM', type: 'Program', initializer: literal(program) }],
  });
}

/** The program's WGSL (codegen/wgsl), imported only when a model loads on WebGPU. */
function generateWgslFile(file: SourceFile, input: BuildInput): void {
  const wgsl = renderProgram(input.program);
  const passes = Object.values(wgsl.profiles).flatMap((p) => Object.values(p)).reduce((n, e) => n + e.kernels.reduce((m, k) => m + k.passes.length, 0), 0);
  file.addStatements(`// Generated by archc from ${basename(input.source)}: the WGSL of model ${input.graph.model}. Do not edit.`);
  file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: './runtime/webgpu/shaders.ts', namedImports: ['WgslProgram'] });
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: [`Every kernel of every entry as WGSL compute shaders for GPUs and for CPU adapters (${passes} passes), with bindings and workgroup counts: one binding per buffer, as rendered at build time; the backend re-specialises the passes that bind a buffer larger than the device's binding at load (runtime/webgpu/split.ts).`],
    declarations: [{ name: 'WGSL', type: 'WgslProgram', initializer: literal(wgsl) }],
  });
}

function generateIndexFile(file: SourceFile, input: BuildInput): void {
  const model = input.graph.model;
  file.addStatements(`// Generated by archc: the ${model} model package entry point. Do not edit.`);
  if (input.wasmKernels) file.addImportDeclaration({ moduleSpecifier: './kernels.ts', namedImports: ['wasmKernelBytes', ...(input.wasmProgram ? ['wasmProgramBytes'] : [])] });
  file.addImportDeclaration({ moduleSpecifier: './model.ts', namedImports: ['PROGRAM'] });
  file.addImportDeclaration({ moduleSpecifier: './runtime/model.ts', namedImports: [{ name: 'Model', alias: 'RuntimeModel' }, 'type LoadOptions'] });
  file.addExportDeclaration({ moduleSpecifier: './model.ts', namedExports: ['PARAMS', 'WEIGHTS', 'PROGRAM', 'type WeightInfo'] });
  file.addExportDeclaration({
    moduleSpecifier: './runtime/model.ts',
    namedExports: ['type LoadOptions', 'type ForwardInput', 'type ForwardResult', 'type GenerateOptions', 'type GeneratedToken', 'type SavedSequence'],
  });
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
      `const wgsl = options.wgsl ?? (options.backend === 'webgpu' ? (await import('./wgsl.ts')).WGSL : undefined);`,
      ...(input.wasmKernels
        ? [`const wasmKernels = (options.backend ?? 'wasm') === 'wasm' && !options.wasmKernels ? wasmKernelBytes() : options.wasmKernels;`,
          ...(input.wasmProgram
            ? [`const wasmProgram = (options.backend ?? 'wasm') === 'wasm' && !options.wasmProgram ? wasmProgramBytes() : options.wasmProgram;`,
              'return RuntimeModel.loadProgram(PROGRAM, dir, { ...options, wgsl, wasmKernels, wasmProgram });']
            : ['return RuntimeModel.loadProgram(PROGRAM, dir, { ...options, wgsl, wasmKernels });'])]
        : ['return RuntimeModel.loadProgram(PROGRAM, dir, { ...options, wgsl });']),
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

/** src/kernels.ts: the wasm backend's module variants, assembled at build, as base64 (no file to
 *  locate at run time); the runtime runs the first the engine accepts. Beside them the program's own
 *  module, if built. */
function generateKernelsFile(file: SourceFile, variants: readonly Uint8Array[], program?: Uint8Array): void {
  file.addStatements(`// Generated by archc: the wasm backend's kernel modules (${variants.map((b) => b.length).join(' and ')} bytes: fused multiply-add, then plain SIMD; from codegen/wasm/kernels.ts). Do not edit.`);
  file.addVariableStatement({ declarationKind: VariableDeclarationKind.Const, declarations: [{ name: 'BASE64', initializer: `[\n${variants.map((b) => `  ${JSON.stringify(Buffer.from(b).toString('base64'))},\n`).join('')}]` }] });
  file.addFunction({
    isExported: true, name: 'wasmKernelBytes', returnType: 'Uint8Array[]',
    statements: 'return BASE64.map((s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));',
  });
  if (!program) return;
  // the program's own kernels (codegen/wasm/program.ts), sizes as constants
  file.addVariableStatement({ declarationKind: VariableDeclarationKind.Const, declarations: [{ name: 'PROGRAM_BASE64', initializer: JSON.stringify(Buffer.from(program).toString('base64')) }] });
  file.addFunction({
    isExported: true, name: 'wasmProgramBytes', returnType: 'Uint8Array',
    statements: 'return Uint8Array.from(atob(PROGRAM_BASE64), (c) => c.charCodeAt(0));',
  });
}

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
  return {
    name,
    version: '0.1.0',
    description: `${input.graph.model} (${input.stats.parameters.total.toLocaleString('en-US')} parameters), compiled by archc ${root.version}`,
    type: 'module',
    main: './dist/index.js',
    types: './dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './graph.json': './graph.json' },
    files: ['dist', 'src', 'graph.json', 'build-report.json', 'README.md', ...(input.cuda ? ['cuda'] : [])],
    engines: { node: '>=20' },
    dependencies: { '@huggingface/tokenizers': root.dependencies['@huggingface/tokenizers'] },
    // the cuda backend's FFI to the driver, only loaded by backend 'cuda'
    ...(input.cuda ? { optionalDependencies: { koffi: root.dependencies.koffi } } : {}),
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

function readme(name: string, input: BuildInput): string {
  const { graph, stats } = input;
  return `# ${name}

${graph.model}, compiled by archc from \`${basename(input.source)}\`: ${stats.parameters.total.toLocaleString('en-US')} parameters,
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
thread or without isolation it runs on one (\`model.threads\` says which). Load the model in a module Worker
and pass prompts and results by messages:

\`\`\`js
// model-worker.js, started by the page with new Worker(new URL('./model-worker.js', import.meta.url), { type: 'module' })
import { Model } from '${name}';
const model = Model.load(new URL('/ckpt/', location.href).href);
self.onmessage = async ({ data: prompt }) => {
  for await (const { text } of (await model).generate(prompt, { maxTokens: 64 })) self.postMessage(text);
};
\`\`\`

Load options: \`backend\` (\`'wasm'\`, the default when the package ships its kernels: WebAssembly SIMD
products, SSD and attention; \`'cpu'\`: the reference engine; \`'webgpu'\`; \`'cuda'\` on an NVIDIA GPU), \`threads\` (threads for the products; default \`ARCHC_THREADS\`, else the
cores, at most 8; in a browser \`navigator.hardwareConcurrency\`, at most 8), \`capacity\` (tokens a sequence may hold; default the model's context), \`allowExtra\`, \`onProgress\`.

Sampling options: \`temperature\`, \`topK\`, \`topP\`, \`minP\`, \`repetitionPenalty\`, \`seed\`, \`stop\` (token ids),
\`stopStrings\`, \`maxTokens\`. \`forward({ ids, labels })\` also returns the causal-LM \`loss\`.

The checkpoint's config.json must match the params this package was built with (\`PARAMS\`); a mismatch is
reported key by key. Rebuild with \`archc build <model.arch> --hf-config <checkpoint>/config.json\` for another
configuration.

## Files

- \`graph.json\` — the model graph (schema \`archc-graph/1\`)
- \`build-report.json\` — what was built: dispatches per decode step and prefill, arena and state-slot bytes,
  every kernel with the ops it fused and its source lines, parameter counts, FLOPs and state sizes
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
    states: input.program.states.length,
    stats: input.stats,
    backends: [...(input.wasmKernels ? ['wasm'] : []), 'cpu', 'webgpu', ...(input.cuda ? ['cuda'] : [])],
    ...(input.cuda ? { cuda: { ...input.cuda.report, kernels: input.cuda.kernels.length } } : {}),
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
