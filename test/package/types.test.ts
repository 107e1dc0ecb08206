// The generated package's types, as a user's strict TypeScript sees them: `Model` is both the loader
// (`Model.load`) and the loaded model's type, so no one writes `Awaited<ReturnType<typeof load>>`.
// A consumer file is checked with `--strict` and without skipLibCheck against the package's .d.ts
// (resolved as an installed dependency; the TINY package, built once for this file and
// test/e2e/tie.test.ts by test/helpers/package-cache.ts), by two compilers: the TypeScript archc pins (5.9, whose DOM
// lib has no WebGPU types) and the newest at hand (ts-morph's, 6.x, whose DOM lib has them). The
// package's declarations name none of WebGPU's global types, so both compile them as they stand.

import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Project, ts } from 'ts-morph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeDir, removeDir } from '../helpers/checkpoints.ts';
import { tinyPackage } from '../helpers/package-cache.ts';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
let work: string;
let app: string;

beforeAll(async () => {
  work = makeDir('archc-types-');
  const pkg = await tinyPackage(join(work, 'pkg'));
  app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(pkg, join(app, 'node_modules', 'tiny-bamba'));
  symlinkSync(join(ROOT, 'node_modules', '@types'), join(app, 'node_modules', '@types'));
  // for the consumer that declares WebGPU itself (as a Node app on TypeScript 5.9 would)
  mkdirSync(join(app, 'node_modules', '@webgpu'));
  symlinkSync(join(ROOT, 'node_modules', '@webgpu', 'types'), join(app, 'node_modules', '@webgpu', 'types'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
}, 1_000_000);
afterAll(() => removeDir(work));

const COMPILERS = ['tsc', 'ts-morph'] as const;
type Compiler = (typeof COMPILERS)[number];

/** `--strict --noEmit` on one consumer file, by archc's tsc (5.9) or by ts-morph's TypeScript (6.x);
 *  its diagnostics as tsc prints them, `file(line,col): error TSn: text` (empty when it compiles). */
async function check(name: string, text: string, compiler: Compiler): Promise<{ code: number; out: string }> {
  writeFileSync(join(app, name), text);
  if (compiler === 'ts-morph') {
    const project = new Project({ compilerOptions: { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022 } });
    project.addSourceFileAtPath(join(app, name));
    const diags = project.getPreEmitDiagnostics().map((d) => d.compilerObject);
    const host = { getCanonicalFileName: (f: string) => f, getCurrentDirectory: () => app, getNewLine: () => '\n' };
    return { code: diags.length ? 2 : 0, out: ts.formatDiagnostics(diags, host) };
  }
  const args = [TSC, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', name];
  return promisify(execFile)(process.execPath, args, { cwd: app }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
}

it('the two compilers are the pinned TypeScript and a newer one', async () => {
  const pinned = (await promisify(execFile)(process.execPath, [TSC, '--version'])).stdout;
  expect(pinned).toMatch(/^Version 5\.9\./);
  expect(Number(ts.versionMajorMinor)).toBeGreaterThan(5.9);
});

describe.each(COMPILERS)('the generated package under --strict, without skipLibCheck (%s)', (compiler) => {
  it('exports Model as the loaded model\'s type: annotations, a function taking one, its methods typed', async () => {
    const r = await check('uses.ts', `
      import { Model, load, type ForwardResult, type GeneratedToken } from 'tiny-bamba';
      async function logitsOf(m: Model, ids: number[]): Promise<Float32Array> {
        const r: ForwardResult = m.forward({ ids });
        return r.logits;
      }
      export async function main(dir: string): Promise<number> {
        const m: Model = await Model.load(dir, { backend: 'cpu' });
        const n: Model = await load(dir);
        const out: GeneratedToken[] = [];
        for await (const t of n.generate([1, 2], { maxTokens: 2 })) out.push(t);
        return (await logitsOf(m, [1, 2, 3])).length + out.length + m.vocab;
      }
    `, compiler);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  }, 120_000);

  it('the type is checked, not any: a plain object and a misspelt method are errors', async () => {
    const r = await check('wrong.ts', `
      import { Model } from 'tiny-bamba';
      export const a: Model = { vocab: 3 };
      export async function f(m: Model): Promise<void> { m.forwrd({ ids: [1] }); }
    `, compiler);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/wrong\.ts\(3,\d+\): error TS\d+/);
    expect(r.out).toMatch(/wrong\.ts\(4,\d+\): error TS2551: Property 'forwrd' does not exist/);
    // `Model` is a type here, not only a value
    expect(r.out).not.toMatch(/TS2749/);
  }, 120_000);

  it('a GPU from the consumer\'s own WebGPU types is taken as `webgpu.gpu`', async () => {
    // 5.9 declares WebGPU only through @webgpu/types; 6.x's DOM lib declares it (and conflicts with @webgpu/types)
    const r = await check('gpu.ts', `${compiler === 'tsc' ? '/// <reference types="@webgpu/types" />' : ''}
      import { Model } from 'tiny-bamba';
      export async function onGpu(dir: string, gpu: GPU): Promise<Model> {
        return Model.load(dir, { backend: 'webgpu', webgpu: { gpu, stateSlots: 2 } });
      }
    `, compiler);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  }, 120_000);
});
