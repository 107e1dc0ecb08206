// The generated package's types, as a user's strict TypeScript sees them: `Model` is both the loader
// (`Model.load`) and the loaded model's type, so no one writes `Awaited<ReturnType<typeof load>>`.
// A consumer file is checked by `tsc --strict` against the package's .d.ts (resolved as an
// installed dependency). --skipLibCheck: the package's own .d.ts name WebGPU's global types, which
// a Node consumer does not declare (another item of the same issue); the consumer is checked in full.

import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BAMBA, ROOT, TINY, makeDir, removeDir, runCli, setsFor } from '../helpers/checkpoints.ts';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
let work: string;
let app: string;

beforeAll(async () => {
  work = makeDir('archc-types-');
  const pkg = join(work, 'pkg');
  const built = await runCli(['build', BAMBA, '-o', pkg, '--name', 'tiny-bamba-types', ...setsFor(TINY).flatMap((s) => ['--set', s])], 400_000);
  expect(built.code, built.stderr).toBe(0);
  app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(pkg, join(app, 'node_modules', 'tiny-bamba-types'));
  symlinkSync(join(ROOT, 'node_modules', '@types'), join(app, 'node_modules', '@types'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
}, 420_000);
afterAll(() => removeDir(work));

/** `tsc --strict --noEmit` on one consumer file; its output (empty when it compiles). */
async function check(name: string, text: string): Promise<{ code: number; out: string }> {
  writeFileSync(join(app, name), text);
  const args = [TSC, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', name];
  return promisify(execFile)(process.execPath, args, { cwd: app }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );
}

describe('the generated package under tsc --strict', () => {
  it('exports Model as the loaded model\'s type: annotations, a function taking one, its methods typed', async () => {
    const r = await check('uses.ts', `
      import { Model, load, type ForwardResult, type GeneratedToken } from 'tiny-bamba-types';
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
    `);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  }, 120_000);

  it('the type is checked, not any: a plain object and a misspelt method are errors', async () => {
    const r = await check('wrong.ts', `
      import { Model } from 'tiny-bamba-types';
      export const a: Model = { vocab: 3 };
      export async function f(m: Model): Promise<void> { m.forwrd({ ids: [1] }); }
    `);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/wrong\.ts\(3,\d+\): error TS\d+/);
    expect(r.out).toMatch(/wrong\.ts\(4,\d+\): error TS2551: Property 'forwrd' does not exist/);
    // `Model` is a type here, not only a value
    expect(r.out).not.toMatch(/TS2749/);
  }, 120_000);
});
