// `archc build` makes a package that works on its own: packed with `npm pack`, installed into an
// empty directory (no archc there), loading a checkpoint and giving the same logits as archc does,
// serving it over HTTP from its ./serve export, and fine-tuning it from its ./train export: on wasm,
// and (built with --train) on WebGPU, Dawn on SwiftShader, the device passed in by the test as a page
// would pass navigator.gpu: the same losses as on wasm within 1e-4 relative, the saved masters and
// moments within 1e-4 rel L2 per tensor.
// Builds, npm and node run as child processes awaited asynchronously: a synchronous build or
// install of a minute on a loaded machine would stall the test worker past vitest's RPC deadline.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { checkGraphJson, graphToJson } from '../../compiler/schema.ts';
import { Trainer, type TrainerOptions, trainGraphFromJson } from '../../runtime/train/session.ts';
import { findGpu } from '../../runtime/webgpu/backend.ts';
import { compareGrads } from '../grad/helpers.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { ROOT, expectLogitsClose, runCli } from '../helpers/checkpoints.ts';
import { MODELS } from '../helpers/compile.ts';

const run = (cmd: string, args: readonly string[], cwd: string) => promisify(execFile)(cmd, args, { cwd, maxBuffer: 16 << 20 });

const TRAIN_SEQS = [[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9]];
const TINY = ['vocab=48', 'd_model=32', 'n_layers=3', 'attn_layers=[1]', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=4',
  'd_state=8', 'd_ff=48', 'chunk=4', 'dtype=f32'];

let work: string;
/** Set once the first test has installed the package and trained it on wasm. */
let installed = false;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'archc-pkg-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the generated package', () => {
  it('packs, installs into an empty directory and runs forward with the same logits', async () => {
    const file = join(MODELS, 'bamba.arch');
    const compiled = compileFile(file, { set: TINY });
    const ckpt = join(work, 'ckpt');
    mkdirSync(ckpt);
    writeFileSync(join(ckpt, 'config.json'), hfConfigText(compiled));
    writeSafetensors(join(ckpt, 'model.safetensors'), initWeights(compiled.graph, createRng(7)));

    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const pkg = join(work, 'pkg');
    // a preset's build is named for it (the --set values then make it this test's tiny model)
    const built = await runCli(['build', file, '-o', pkg, '--preset', 'tiny', '--train', ...TINY.flatMap((s) => ['--set', s])], 900_000);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toMatch(/webgpu: the Trainer's train program and its WGSL \(src\/train-wgsl.ts, \d+ KiB\)/);
    for (const f of ['package.json', 'README.md', 'graph.json', 'build-report.json', 'dist/index.js', 'dist/index.d.ts', 'dist/model.js', 'src/model.ts', 'src/kernels.ts', 'src/wgsl.ts', 'dist/wgsl.js', 'dist/train-wgsl.js']) {
      expect(existsSync(join(pkg, f)), f).toBe(true);
    }
    expect(checkGraphJson(JSON.parse(readFileSync(join(pkg, 'graph.json'), 'utf8')))).toEqual([]);

    // WebGPU for Node is an optional peer (browsers have navigator.gpu), and a browser bundle leaves Node's modules out
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    expect(manifest.name).toBe('archc-model-bamba-tiny');
    expect(manifest.dependencies.webgpu).toBeUndefined();
    expect(manifest.peerDependencies.webgpu).toMatch(/^\d/);
    expect(manifest.peerDependenciesMeta.webgpu.optional).toBe(true);
    expect(manifest.browser['node:fs']).toBe(false);

    await run('npm', ['pack', pkg, '--pack-destination', work], work);
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, 'archc-model-bamba-tiny-0.1.0.tgz')], app);
    expect(existsSync(join(app, 'node_modules', 'archc'))).toBe(false);

    const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5];
    const positions = [0, 1, 2, 3, 4, 0, 1, 2, 3];
    writeFileSync(join(app, 'run.mjs'), `
      import { writeFileSync } from 'node:fs';
      import { Model, sampleToken, rngFor } from 'archc-model-bamba-tiny';
      const m = await Model.load(${JSON.stringify(ckpt)}, { backend: 'cpu' });
      // the sampler generate uses, exported: greedy over decode() is generate's first token
      const first = sampleToken(m.prefill([[3, 1, 4]]).logits[0], {}, [3, 1, 4], rngFor({ seed: 1 }));
      for await (const t of m.generate([3, 1, 4], { maxTokens: 1 })) writeFileSync('sampled.txt', String([first, t.id]));
      const r = m.forward({ ids: ${JSON.stringify(ids)}, positions: ${JSON.stringify(positions)} });
      writeFileSync('logits.bin', Buffer.from(r.logits.buffer));
      const w = await Model.load(${JSON.stringify(ckpt)}, { backend: 'wasm', threads: 2 });
      writeFileSync('logits-wasm.bin', Buffer.from(w.forward({ ids: ${JSON.stringify(ids)}, positions: ${JSON.stringify(positions)} }).logits.buffer));
      const d = await Model.load(${JSON.stringify(ckpt)});
      writeFileSync('logits-default.bin', Buffer.from(d.forward({ ids: ${JSON.stringify(ids)}, positions: ${JSON.stringify(positions)} }).logits.buffer));
      // the package's own WGSL is found; without the optional \`webgpu\` installed, a clear error
      const e = await Model.load(${JSON.stringify(ckpt)}, { backend: 'webgpu' }).then(() => null, (err) => err);
      writeFileSync('webgpu.txt', String(e && e.message));
      // the server, from the package's ./serve: a greedy completion of ids over HTTP, and the chat page
      const { serve } = await import('archc-model-bamba-tiny/serve');
      const s = await serve(m, { port: 0, id: 'tiny' });
      const body = JSON.stringify({ model: 'tiny', prompt: [3, 1, 4], max_tokens: 5, temperature: 0, return_token_ids: true });
      const r1 = await (await fetch(s.url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json();
      const alone = [];
      for await (const t of m.generate([3, 1, 4], { maxTokens: 5, temperature: 0 })) if (t.id >= 0) alone.push(t.id);
      const page = await (await fetch(s.url + '/')).text();
      await s.close();
      writeFileSync('served.json', JSON.stringify({ served: r1.choices[0].token_ids, alone, page: page.slice(0, 15) }));
      // fine-tuning from the package's ./train: two steps on one packed batch, saved as a run
      const { Trainer } = await import('archc-model-bamba-tiny/train');
      const t = await Trainer.open(${JSON.stringify(ckpt)}, { steps: 2, lr: 1e-2, threads: 2 });
      const losses = [0, 1].map(() => t.step(Trainer.pack(${JSON.stringify(TRAIN_SEQS)})).loss);
      losses.push(t.evaluate([Trainer.pack(${JSON.stringify(TRAIN_SEQS)})]).loss);
      t.save('run');
      t.close();
      writeFileSync('trained.json', JSON.stringify(losses));
      // on WebGPU without the optional \`webgpu\` installed: the same clear error as a model's load
      const g = await Trainer.open(${JSON.stringify(ckpt)}, { steps: 2, backend: 'webgpu' }).then(() => null, (err) => err);
      writeFileSync('train-webgpu.txt', String(g && g.message));
    `);
    await run(process.execPath, ['run.mjs'], app);
    expect(existsSync(join(app, 'node_modules', 'webgpu'))).toBe(false);
    expect(readFileSync(join(app, 'webgpu.txt'), 'utf8')).toMatch(/RT500.*`webgpu` package/);
    expect(readFileSync(join(app, 'train-webgpu.txt'), 'utf8')).toMatch(/RT500.*`webgpu` package/);
    const [first, generated] = readFileSync(join(app, 'sampled.txt'), 'utf8').split(',').map(Number);
    expect(first).toBe(generated);
    // served over HTTP as generated alone; the page found beside the package's server
    const served = JSON.parse(readFileSync(join(app, 'served.json'), 'utf8'));
    expect(served.served).toEqual(served.alone);
    expect(served.alone.length).toBeGreaterThan(0);
    expect(served.page).toBe('<!doctype html>');
    expect(manifest.exports['./serve']).toEqual({ types: './dist/serve.d.ts', default: './dist/serve.js' });
    const got = new Float32Array(new Uint8Array(readFileSync(join(app, 'logits.bin'))).buffer);
    // trained in the package as by archc's own Trainer over the same graph and kernels: the same weights, bit for bit
    expect(manifest.exports['./train']).toEqual({ types: './dist/train.d.ts', default: './dist/train.js' });
    const [l1, l2] = JSON.parse(readFileSync(join(app, 'trained.json'), 'utf8')) as number[];
    expect(l2!, `loss ${l1} then ${l2} on the same batch`).toBeLessThan(l1!);
    const mine = await Trainer.open(trainGraphFromJson(graphToJson(compiled.graph)), await wasmKernelVariants(), ckpt, { steps: 2, lr: 1e-2, threads: 2 });
    for (let k = 0; k < 2; k++) mine.step(Trainer.pack(TRAIN_SEQS));
    mine.save(join(work, 'run-ref'));
    mine.close();
    expect(readFileSync(join(app, 'run', 'model.safetensors')).equals(readFileSync(join(work, 'run-ref', 'model.safetensors')))).toBe(true);

    const model = await Model.loadProgram(program, ckpt);
    const want = model.forward({ ids, positions }).logits;
    expect(got.length).toBe(ids.length * 48);
    expect(Array.from(got)).toEqual(Array.from(want));
    // the wasm backend from the package's own kernels.wasm: the same logits to f32 rounding
    const wasm = new Float32Array(new Uint8Array(readFileSync(join(app, 'logits-wasm.bin'))).buffer);
    expectLogitsClose(wasm, want, 1e-5, 'packaged wasm backend vs cpu', 48);
    // the default backend is wasm: its logits bit for bit (sums in f32, so not the CPU engine's)
    const dflt = new Float32Array(new Uint8Array(readFileSync(join(app, 'logits-default.bin'))).buffer);
    expect(Array.from(dflt)).toEqual(Array.from(wasm));
    expect(Array.from(dflt)).not.toEqual(Array.from(want));
    installed = true;
  }, 1_000_000);

  it('built with --train, its Trainer takes the same steps on WebGPU as on wasm', async () => {
    expect(installed, 'the package was not built and installed (the test above failed)').toBe(true);
    const app = join(work, 'app'), ckpt = join(work, 'ckpt');
    // the installed package, in this process: the GPU comes from the test (Dawn), as a page passes navigator.gpu
    const { Trainer: Pkg } = await import(join(app, 'node_modules', 'archc-model-bamba-tiny', 'dist', 'train.js')) as { Trainer: { open(dir: string, o: TrainerOptions & { resume?: boolean }): Promise<Trainer>; pack: typeof Trainer.pack } };
    useSwiftShader();
    const webgpu = { gpu: await findGpu(), profile: 'cpu' as const };
    const t = await Pkg.open(ckpt, { steps: 2, lr: 1e-2, backend: 'webgpu', webgpu });
    try {
      const batch = Pkg.pack(TRAIN_SEQS);
      expect(() => t.step(batch)).toThrow(/RT504: .*Trainer.stepAsync/);
      const got = [(await t.stepAsync(batch)).loss, (await t.stepAsync(batch)).loss, (await t.evaluateAsync([batch])).loss];
      const want = JSON.parse(readFileSync(join(app, 'trained.json'), 'utf8')) as number[];
      console.log(`the package's Trainer on WebGPU: losses ${got.join(', ')}; on wasm ${want.join(', ')}`);
      got.forEach((l, i) => expect(Math.abs(l - want[i]!) / want[i]!, `loss ${i}: ${l} vs ${want[i]}`).toBeLessThan(1e-4));
      // the masters and moments come back from the device for a save
      expect(() => t.save(join(work, 'run-gpu'))).toThrow(/RT504: .*Trainer.saveAsync/);
      await t.saveAsync(join(work, 'run-gpu'));
      const tensors = (file: string) => {
        const c = openCheckpoint(file);
        try {
          return new Map([...c.tensors.keys()].map((n) => [n, toF32(c.read(n))]));
        } finally {
          c.close();
        }
      };
      for (const f of ['model.safetensors', 'optimizer.safetensors']) {
        const e = compareGrads(tensors(join(work, 'run-gpu', f)), tensors(join(app, 'run', f)));
        console.log(`saved ${f} against wasm's: rel L2 ${e.all.toExponential(2)}, worst ${e.name} ${e.worst.toExponential(2)}`);
        expect(e.worst, `${f}: ${e.name}`).toBeLessThan(1e-4);
      }
      // resumed on WebGPU: the saved masters on the device again, so the next step's loss (before its
      // update) is the loss the device evaluated after step 2
      const r = await Pkg.open(join(work, 'run-gpu'), { steps: 3, resume: true, backend: 'webgpu', webgpu });
      try {
        const m = await r.stepAsync(batch);
        expect(m.step).toBe(3);
        expect(Math.abs(m.loss - got[2]!) / got[2]!, `resumed: ${m.loss} vs ${got[2]}`).toBeLessThan(1e-6);
      } finally {
        r.close();
      }
    } finally {
      t.close();
    }
  }, 120_000);

  it('a failed build leaves no package and no temp directory behind', async () => {
    const out = join(work, 'broken');
    // a graph that fails its schema stops the build after the TypeScript was compiled (in a child
    // process: the build's signal handlers stay for the life of the process)
    const script = join(work, 'broken-build.mts');
    writeFileSync(script, `
      import { buildPackage } from ${JSON.stringify(join(ROOT, 'codegen', 'package.ts'))};
      import { compileFile } from ${JSON.stringify(join(ROOT, 'compiler', 'compile.ts'))};
      import { lowerToProgram } from ${JSON.stringify(join(ROOT, 'compiler', 'lower.ts'))};
      import { computeStats } from ${JSON.stringify(join(ROOT, 'compiler', 'stats.ts'))};
      const compiled = compileFile(${JSON.stringify(join(MODELS, 'bamba.arch'))}, { set: ${JSON.stringify(TINY)} });
      const program = lowerToProgram(compiled.graph, compiled.bindings);
      const graph = { ...compiled.graph, format: 'broken' };
      try {
        await buildPackage({ graph, program, stats: computeStats(compiled.graph, 64, 1), source: 'x.arch' }, ${JSON.stringify(out)});
        console.log('built');
      } catch (e) {
        console.log('failed: ' + e.message);
      }
    `);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script], ROOT);
    expect(stdout).toMatch(/^failed: .*schema/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((n) => n.startsWith('.broken.tmp'))).toEqual([]);
  }, 300_000);
});
