// Generated hostile programs (test/fuzz/generate.ts: depth, length, repetition, recursion, huge
// numbers, odd names, growing values, param chains, broken text, token damage) through the whole
// front end, in a child process: every one must compile or give coded diagnostics — no crash, no
// hang, no death by memory. A fixed seed and a fixed count; the long run is bench/fuzz-programs.ts.

import { describe, expect, it } from 'vitest';
import { CLASSES, generateProgram } from './generate.ts';
import { runPrograms } from './runner.ts';

const SEED = 20261130;
const COUNT = 20 * CLASSES.length;

describe('generated-program fuzz', () => {
  it(`${COUNT} programs of ${CLASSES.length} classes: 0 crashes, 0 hangs`, async () => {
    const jobs = Array.from({ length: COUNT }, (_, i) => generateProgram(SEED, i));
    const results = await runPrograms(jobs);
    const bad = results.filter((r) => r.kind !== 'ok' && r.kind !== 'diagnosed');
    const report = bad.map((r) => `program ${r.job.id} (${r.job.cls}): ${r.kind} ${r.detail.join(' ')}\n${r.job.text.slice(0, 300)}`);
    expect(report).toEqual([]);
    // Every diagnostic is coded; the run reached the limits and also compiled programs.
    const codes = new Set(results.flatMap((r) => (r.kind === 'diagnosed' ? r.detail : [])));
    for (const c of codes) expect(c).toMatch(/^AC\d{3}$/);
    expect(codes).toContain('AC500');
    expect(results.filter((r) => r.kind === 'ok').length).toBeGreaterThan(COUNT / 10);
    for (const cls of CLASSES) expect(results.filter((r) => r.job.cls === cls).length).toBe(20);
  }, 600_000);
});
