// Generated hostile programs (test/fuzz/generate.ts: depth, length, repetition, recursion, huge
// numbers, odd names, growing values, param chains, broken text, token damage, the shipped models
// with edge config values, the runtime's contract and the kernels' edges) through the whole pipeline
// in a child process — compile, lower, render for wasm (assembled), WGSL and CUDA source: every one
// must get through or give coded diagnostics — no crash, no hang, no death by memory. A fixed seed
// and a small count; the long run is bench/fuzz-programs.ts.

import { describe, expect, it } from 'vitest';
import { CLASSES, generateProgram } from './generate.ts';
import { runPrograms } from './runner.ts';

const SEED = 20261130;
const PER_CLASS = 6;
const COUNT = PER_CLASS * CLASSES.length;

describe('generated-program fuzz', () => {
  it(`${COUNT} programs of ${CLASSES.length} classes through lowering and every renderer: 0 crashes, 0 hangs`, async () => {
    const jobs = Array.from({ length: COUNT }, (_, i) => generateProgram(SEED, i));
    const results = await runPrograms(jobs, { concurrency: 2 });
    const bad = results.filter((r) => r.kind !== 'ok' && r.kind !== 'diagnosed');
    const report = bad.map((r) => `program ${r.job.id} (${r.job.cls}): ${r.kind} ${r.detail.join(' ')}\n${r.job.text.slice(0, 300)}`);
    expect(report).toEqual([]);
    // Every diagnostic is coded; the run reached the limits and the contract checks, and programs
    // of the shipped models and of the contract class got through every renderer.
    const codes = new Set(results.flatMap((r) => (r.kind === 'diagnosed' ? r.detail : [])));
    for (const c of codes) expect(c).toMatch(/^AC\d{3}$/);
    for (const c of ['AC500', 'AC400']) expect(codes).toContain(c);
    expect(results.filter((r) => r.kind === 'ok').length).toBeGreaterThan(COUNT / 10);
    for (const cls of ['models', 'contract'] as const) expect(results.filter((r) => r.job.cls === cls && r.kind === 'ok').length, cls).toBeGreaterThan(0);
    for (const cls of CLASSES) expect(results.filter((r) => r.job.cls === cls).length).toBe(PER_CLASS);
  }, 600_000);
});
