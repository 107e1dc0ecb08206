// package.json's scripts point at files that exist, and `npm run bench` runs the benchmarks of
// bench/ (listed here, not run: benchmarks are not tests).

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/checkpoints.ts';

/** bench/run.ts' HELPERS (importing run.ts would run the benchmarks). */
const HELPERS = ['run.ts', 'timing.ts', 'memcopy.ts'];

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

describe('package.json scripts', () => {
  it.each(Object.entries(pkg.scripts))('%s names only files that exist', (_name, command) => {
    for (const file of command.split(/\s+/).filter((w) => /\.(m?js|ts)$/.test(w))) expect(existsSync(join(ROOT, file)), file).toBe(true);
  });

  it('npm run bench -- --list names every benchmark in bench/', () => {
    const listed = execFileSync('npm', ['run', '-s', 'bench', '--', '--list'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
    const files = readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts') && !HELPERS.includes(f));
    expect(HELPERS.every((h) => existsSync(join(ROOT, 'bench', h)))).toBe(true);
    expect(listed.sort()).toEqual(files.map((f) => f.slice(0, -3)).sort());
    expect(listed).toContain('startup');
  });
});
