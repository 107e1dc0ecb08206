// The compiled runtime kept between package builds (codegen/package.ts runtimeCache, checkAndEmit):
// the first build under a home folder checks and emits everything and keeps the runtime's output; a
// second finds it, checks and emits only its generated files, and its dist/ equals the first's byte
// for byte; a type error in a generated file still fails a build that found the cache; a cache folder
// left without its completion mark is not used; the 8 most recently used entries are kept. The packages hold the cpu backend alone (no build
// target's part), so each build is the TypeScript and little else.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage, type BuildInput } from '../../codegen/package.ts';
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
  it('a build that finds the cache emits the same dist as the one that made it', async () => {
    await buildPackage(input, join(work, 'cold'));
    const kept = readdirSync(cacheRoot);
    expect(kept).toHaveLength(1);
    expect(readdirSync(join(cacheRoot, kept[0]!)).sort()).toEqual(['.complete', 'cli', 'runtime']);
    // the second build reads the cache: a mark put into the kept runtime shows in its dist
    const marked = join(cacheRoot, kept[0]!, 'runtime', 'marker.txt');
    writeFileSync(marked, 'from the cache');
    const mark = join(cacheRoot, kept[0]!, '.complete');
    utimesSync(mark, 1e9, 1e9);
    await buildPackage(input, join(work, 'warm'));
    expect(readFileSync(join(work, 'warm', 'dist', 'runtime', 'marker.txt'), 'utf8')).toBe('from the cache');
    // the entry's use is marked (it is kept among the most recently used)
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

  it('a cache folder without its completion mark is not used, and is made whole again; 8 entries are kept', async () => {
    const [key] = readdirSync(cacheRoot);
    const at = join(cacheRoot, key!);
    // a folder under the cache's name without the mark (emptied by hand, say), holding a runtime
    // file that a build reading it would ship
    rmSync(at, { recursive: true });
    mkdirSync(join(at, 'runtime'), { recursive: true });
    writeFileSync(join(at, 'runtime', 'marker.txt'), 'not whole');
    // other versions' runtimes, last used a day ago and 9..1 seconds after it, and a temp folder a
    // build left two hours ago
    const day = Date.now() / 1000 - 86400;
    const others = Array.from({ length: 9 }, (_, i) => `other${i}`);
    others.forEach((o, i) => {
      mkdirSync(join(cacheRoot, o, 'runtime'), { recursive: true });
      writeFileSync(join(cacheRoot, o, '.complete'), '');
      utimesSync(join(cacheRoot, o, '.complete'), day + i, day + i);
    });
    const stale = join(cacheRoot, `${key}.tmp-1-left`);
    mkdirSync(stale);
    utimesSync(stale, day, day);
    await buildPackage(input, join(work, 'again'));
    expect(existsSync(join(work, 'again', 'dist', 'runtime', 'marker.txt'))).toBe(false);
    expect([...tree(join(work, 'again', 'dist')).keys()]).toEqual([...tree(join(work, 'cold', 'dist')).keys()]);
    expect(readdirSync(at).sort()).toEqual(['.complete', 'cli', 'runtime']);
    // this build's entry and the 7 most recently used others
    expect(readdirSync(cacheRoot).sort()).toEqual([...others.slice(2), key].sort());
  }, 300_000);
});
