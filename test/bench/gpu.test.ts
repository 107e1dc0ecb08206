// The GPU script's preparation and its driver up to the first CUDA call (no GPU here): prepare
// writes the tiny model's modules, weights, launches and CPU results; the Python driver's dry run
// reads all of it (the tiny model in bf16 and with q4 weights), packs every launch's ArchcArgs and
// checks its packing against runtime/cuda/abi.ts;
// the recorded launches are the kernel program's, with the arguments the CUDA backend would pack.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARGS_BYTES } from '../../runtime/cuda/abi.ts';
import { ROOT } from '../helpers/checkpoints.ts';

const work = mkdtempSync(join(tmpdir(), 'archc-gpu-bench-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('bench/gpu', () => {
  it('prepare writes the tiny model; the driver\'s dry run reads it and packs arguments as the ABI does', () => {
    execFileSync('npx', ['tsx', join(ROOT, 'bench', 'gpu', 'prepare.ts'), '--out', join(work, 'work'), '--tiny-only', '--cache', join(tmpdir(), 'archc-cuda-test-cache')], { cwd: ROOT, stdio: 'pipe' });
    const trace = JSON.parse(readFileSync(join(work, 'work', 'trace.json'), 'utf8'));
    const tiny = trace.models[0];
    expect(tiny.name).toBe('tiny');
    for (const m of tiny.modules) expect(existsSync(join(work, 'work', 'tiny', m.file)), m.file).toBe(true);
    const launches = tiny.sessions.flatMap((s: { runs: { launches: { args: string; family: string; kernel: string; fn: string; check?: unknown[] }[] }[] }) => s.runs.flatMap((r) => r.launches));
    expect(new Set(launches.map((l: { family: string }) => l.family))).toEqual(new Set(['embedding', 'matmul', 'conv', 'ssd', 'attention', 'ssd_step', 'attention_decode']));
    launches.forEach((l: (typeof launches)[number], i: number) => {
      expect(Buffer.from(l.args, 'base64').length).toBe(ARGS_BYTES);
      // a kernel's results are checked after its last launch (a product's prologue phase comes first)
      const next = launches[i + 1];
      if (next?.kernel === l.kernel && next.fn !== l.fn) expect(l.check).toBeUndefined();
      else expect(l.check!.length).toBeGreaterThan(0);
    });
    const out = execFileSync('python3', [join(ROOT, 'bench', 'gpu', 'driver.py'), '--work', join(work, 'work'), '--dry-run'], { encoding: 'utf8' });
    expect(out).toMatch(/argument packing matches runtime\/cuda\/abi\.ts/);
    expect(out).toMatch(/tiny: 3 runs, \d+ launches packed/);
    // the tiny model again with q4 products and embedding: their q4 sources, codes and scales
    const q4 = trace.models[1];
    expect(q4.name).toBe('tiny-q4');
    expect(q4.weights.filter((w: { dtype: string }) => w.dtype === 'q4').length).toBeGreaterThan(5);
    const q4ids = new Set(q4.sessions.flatMap((s: { runs: { launches: { id: string }[] }[] }) => s.runs.flatMap((r) => r.launches.map((l) => l.id))));
    expect([...q4ids].filter((id) => launches.some((l: { id?: string }) => l.id === id)).length).toBeLessThan(q4ids.size);
    expect(out).toMatch(/tiny-q4: 3 runs, \d+ launches packed/);
    // a driver that packed differently would stop: flip one byte of the expected packing
    const broken = { ...trace, abiCheck: { ...trace.abiCheck, packed: Buffer.from(Buffer.from(trace.abiCheck.packed, 'base64').map((b, i) => (i === 8 ? b ^ 1 : b))).toString('base64') } };
    execFileSync('bash', ['-c', `cp -r "${join(work, 'work')}" "${join(work, 'broken')}"`]);
    writeFileSync(join(work, 'broken', 'trace.json'), JSON.stringify(broken));
    expect(() => execFileSync('python3', [join(ROOT, 'bench', 'gpu', 'driver.py'), '--work', join(work, 'broken'), '--dry-run'], { stdio: 'pipe' })).toThrow(/packs ArchcArgs differently/);
  }, 300_000);
});
