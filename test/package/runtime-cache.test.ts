// The compiled runtime kept between package builds (codegen/emit.ts runtimeCache, checkAndEmit): the
// first build under a home folder checks and emits everything and keeps the runtime's output; a
// second finds it, checks and emits only its generated files, and its dist/ equals the first's byte
// for byte; a type error in a generated file still fails a build that found the cache; a cache
// folder left without its completion mark is not used but replaced; the 8 most recently used entries
// are kept. The packages hold the cpu backend alone (no build target's part), so each build is the
// TypeScript and little else.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage, type BuildInput, packageRuntimeCache } from '../../codegen/package.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { computeStats } from '../../compiler/stats.ts';
import { compileTiny } from '../helpers/checkpoints.ts';

const work = mkdtempSync(join(tmpdir(), 'archc-runtime-cache-'));
const home = join(work, 'home');
const cacheRoot = join(home, '.cache', 'archc', 'runtime');
let input: BuildInput;
const savedHome = process.env.HOME;

/** Every file under `dir` by its path there, with its bytes. */
function tree(dir: string): Map<string, Buffer> {
  return new Map((readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort()
    .map((f) => [relative(dir, f), readFileSync(f)]));
}

beforeAll(() => {
  // os.homedir() reads HOME: this file's process keeps its cache apart from the user's
  process.env.HOME = home;
  const compiled = compileTiny();
  input = { graph: compiled.graph, program: lowerToProgram(compiled.graph, compiled.bindings), stats: computeStats(compiled.graph, 64, 1), source: 'bamba.arch' };
});

afterAll(() => {
  process.env.HOME = savedHome;
  rmSync(work, { recursive: true, force: true });
});

describe('the runtime compiled once for every package', () => {
  it('the first build keeps the runtime (over a folder without the mark), the 8 most recently used entries stay', async () => {
    const at = packageRuntimeCache()!;
    expect(at.startsWith(cacheRoot)).toBe(true);
    // a folder under the cache's name without the mark (emptied by hand, say), holding a runtime
    // file that a build reading it would ship
    mkdirSync(join(at, 'runtime'), { recursive: true });
    writeFileSync(join(at, 'runtime', 'marker.txt'), 'not whole');
    // other versions' runtimes, last used a day ago and 0..8 seconds after it, and a temp folder a
    // build left two hours ago
    const day = Date.now() / 1000 - 86400;
    const others = Array.from({ length: 9 }, (_, i) => `other${i}`);
    others.forEach((o, i) => {
      mkdirSync(join(cacheRoot, o, 'runtime'), { recursive: true });
      writeFileSync(join(cacheRoot, o, '.complete'), '');
      utimesSync(join(cacheRoot, o, '.complete'), day + i, day + i);
    });
    const stale = join(cacheRoot, `${basename(at)}.tmp-1-left`);
    mkdirSync(stale);
    utimesSync(stale, day, day);
    await buildPackage(input, join(work, 'cold'));
    expect(existsSync(join(work, 'cold', 'dist', 'runtime', 'marker.txt'))).toBe(false);
    expect(readdirSync(at).sort()).toEqual(['.complete', 'cli', 'runtime']);
    expect(existsSync(join(at, 'runtime', 'marker.txt'))).toBe(false);
    // this build's entry and the 7 most recently used others
    expect(readdirSync(cacheRoot).sort()).toEqual([...others.slice(2), basename(at)].sort());
    for (const o of others.slice(2)) rmSync(join(cacheRoot, o), { recursive: true });
  }, 300_000);

  it('a build that finds the cache emits the same dist as the one that made it, and marks it used', async () => {
    const at = packageRuntimeCache()!;
    // the second build reads the cache: a mark put into the kept runtime shows in its dist
    const marked = join(at, 'runtime', 'marker.txt');
    writeFileSync(marked, 'from the cache');
    const mark = join(at, '.complete');
    utimesSync(mark, 1e9, 1e9);
    await buildPackage(input, join(work, 'warm'));
    expect(readFileSync(join(work, 'warm', 'dist', 'runtime', 'marker.txt'), 'utf8')).toBe('from the cache');
    expect(statSync(mark).mtimeMs).toBeGreaterThan(Date.now() - 600e3);
    rmSync(marked);
    rmSync(join(work, 'warm', 'dist', 'runtime', 'marker.txt'));
    const cold = tree(join(work, 'cold', 'dist')), warm = tree(join(work, 'warm', 'dist'));
    expect([...warm.keys()]).toEqual([...cold.keys()]);
    expect(cold.size).toBeGreaterThan(100);
    for (const [f, bytes] of cold) expect(warm.get(f)!.equals(bytes), f).toBe(true);
  }, 300_000);

  it('a type error in a generated file fails a build that found the cache', async () => {
    const broken: BuildInput = { ...input, targets: new Map([['wasm', {
      sources: new Map([['kernels.ts', 'export const wrong: number = "a string";\n']]), files: new Map(), load: {}, report: {}, summary: null,
    }]]) };
    await expect(buildPackage(broken, join(work, 'broken'))).rejects.toThrow(/generated TypeScript does not compile[\s\S]*kernels\.ts[\s\S]*not assignable/);
  }, 300_000);
});
