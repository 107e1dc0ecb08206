// `archc build` makes a package that works on its own: packed with `npm pack`, installed into an
// empty directory (no archc there), loading a checkpoint and giving the same logits as archc does.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '../../codegen/package.ts';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { checkGraphJson } from '../../compiler/schema.ts';
import { computeStats } from '../../compiler/stats.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { runCli } from '../helpers/checkpoints.ts';
import { MODELS } from '../helpers/compile.ts';

const TINY = ['vocab=48', 'd_model=32', 'n_layers=3', 'attn_layers=[1]', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=4',
  'd_state=8', 'd_ff=48', 'chunk=4', 'dtype=f32'];

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'archc-pkg-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the generated package', () => {
  it('packs, installs into an empty directory and runs forward with the same logits', async () => {
    const file = join(MODELS, 'bamba.arch');
    const compiled = compileFile(file, { set: TINY });
    const ckpt = join(work, 'ckpt');
    execFileSync('mkdir', ['-p', ckpt]);
    writeFileSync(join(ckpt, 'config.json'), hfConfigText(compiled));
    writeSafetensors(join(ckpt, 'model.safetensors'), initWeights(compiled.graph, createRng(7)));

    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const pkg = join(work, 'pkg');
    // `archc build` in a child process (a TypeScript compile: too long to block this worker)
    const built = await runCli(['build', file, ...TINY.flatMap((s) => ['--set', s]), '-o', pkg, '--name', 'tiny-bamba'], 300_000);
    expect(built.code, built.stderr).toBe(0);
    for (const f of ['package.json', 'README.md', 'graph.json', 'build-report.json', 'dist/index.js', 'dist/index.d.ts', 'dist/model.js', 'src/model.ts', 'src/wgsl.ts', 'dist/wgsl.js']) {
      expect(existsSync(join(pkg, f)), f).toBe(true);
    }
    expect(checkGraphJson(JSON.parse(readFileSync(join(pkg, 'graph.json'), 'utf8')))).toEqual([]);

    // WebGPU for Node is an optional peer (browsers have navigator.gpu), and a browser bundle leaves Node's modules out
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    expect(manifest.dependencies.webgpu).toBeUndefined();
    expect(manifest.peerDependencies.webgpu).toMatch(/^\d/);
    expect(manifest.peerDependenciesMeta.webgpu.optional).toBe(true);
    expect(manifest.browser['node:fs']).toBe(false);

    execFileSync('npm', ['pack', pkg, '--pack-destination', work], { cwd: work, stdio: 'pipe' });
    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, 'tiny-bamba-0.1.0.tgz')], { cwd: app, stdio: 'pipe' });
    expect(existsSync(join(app, 'node_modules', 'archc'))).toBe(false);

    const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5];
    const positions = [0, 1, 2, 3, 4, 0, 1, 2, 3];
    writeFileSync(join(app, 'run.mjs'), `
      import { writeFileSync } from 'node:fs';
      import { Model } from 'tiny-bamba';
      const m = await Model.load(${JSON.stringify(ckpt)}, { backend: 'cpu' });
      const r = m.forward({ ids: ${JSON.stringify(ids)}, positions: ${JSON.stringify(positions)} });
      writeFileSync('logits.bin', Buffer.from(r.logits.buffer));
      // the package's own WGSL is found; without the optional \`webgpu\` installed, a clear error
      const e = await Model.load(${JSON.stringify(ckpt)}, { backend: 'webgpu' }).then(() => null, (err) => err);
      writeFileSync('webgpu.txt', String(e && e.message));
    `);
    execFileSync('node', ['run.mjs'], { cwd: app, stdio: 'pipe' });
    expect(existsSync(join(app, 'node_modules', 'webgpu'))).toBe(false);
    expect(readFileSync(join(app, 'webgpu.txt'), 'utf8')).toMatch(/RT500.*`webgpu` package/);
    const got = new Float32Array(new Uint8Array(readFileSync(join(app, 'logits.bin'))).buffer);

    const model = await Model.loadProgram(program, ckpt);
    const want = model.forward({ ids, positions }).logits;
    expect(got.length).toBe(ids.length * 48);
    expect(Array.from(got)).toEqual(Array.from(want));
  }, 400_000);

  it('a failed build leaves no package and no temp directory behind', () => {
    const out = join(work, 'broken');
    const compiled = compileFile(join(MODELS, 'bamba.arch'), { set: TINY });
    const program = lowerToProgram(compiled.graph, compiled.bindings);
    // a graph that fails its schema stops the build after the TypeScript was compiled
    const graph = { ...compiled.graph, format: 'broken' } as never;
    expect(() => buildPackage({ graph, program, stats: computeStats(compiled.graph, 64, 1), source: 'x.arch' }, out)).toThrow(/schema/);
    expect(existsSync(out)).toBe(false);
    expect(execFileSync('ls', ['-a', work]).toString()).not.toMatch(/\.broken\.tmp/);
  }, 60_000);
});
