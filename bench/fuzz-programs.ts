// The long fuzz run: `npx tsx bench/fuzz-programs.ts [count=20000] [seed=1] [children=2]` puts generated
// programs (test/fuzz/generate.ts) through the whole pipeline in a child process (compile, lower,
// render for wasm, WGSL and CUDA source: test/fuzz/pipeline.ts) and prints, per class, how they
// ended, with crashes and hangs in full. The CI test (test/fuzz/programs.test.ts) runs a short prefix.

import { CLASSES, type Program, generateProgram } from '../test/fuzz/generate.ts';
import { type Result, runPrograms } from '../test/fuzz/runner.ts';

const count = Number(process.argv[2] ?? 20_000);
const seed = Number(process.argv[3] ?? 1);
const concurrency = Number(process.argv[4] ?? 2);
const t0 = performance.now();
const jobs = Array.from({ length: count }, (_, i) => generateProgram(seed, i));
const bad: Result<Program>[] = [];
let done = 0;
const results = await runPrograms(jobs, {
  concurrency,
  onResult: (r, i) => {
    if (r.kind === 'crash' || r.kind === 'hang' || r.kind === 'died') {
      bad.push(r);
      process.stderr.write(`program ${i} (${r.job.cls}): ${r.kind} ${r.detail.join(' ')}\n`);
    }
    if (++done % 1000 === 0) process.stderr.write(`${done}/${count} in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  },
});
const seconds = (performance.now() - t0) / 1000;
const rows = CLASSES.map((cls) => {
  const rs = results.filter((r) => r.job.cls === cls);
  const n = (k: Result['kind']) => rs.filter((r) => r.kind === k).length;
  const slowest = rs.reduce<Result<Program> | undefined>((a, r) => (!a || r.ms > a.ms ? r : a), undefined);
  return `${cls.padEnd(11)} ${String(rs.length).padStart(6)} ${String(n('ok')).padStart(6)} ${String(n('diagnosed')).padStart(9)} ${String(n('crash') + n('died')).padStart(6)} ${String(n('hang')).padStart(5)} ${((slowest?.ms ?? 0) / 1000).toFixed(2).padStart(8)} ${slowest ? `#${slowest.job.id}` : ''}`;
});
const codes = new Map<string, number>();
for (const r of results) if (r.kind === 'diagnosed') for (const c of r.detail) codes.set(c, (codes.get(c) ?? 0) + 1);
process.stdout.write(`seed ${seed}: ${count} programs in ${seconds.toFixed(1)} s with ${concurrency} child processes\n`);
process.stdout.write(`class       programs     ok diagnosed crashes hangs slowest s (program)\n${rows.join('\n')}\n`);
process.stdout.write(`codes: ${[...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')}\n`);
process.stdout.write(`crashes ${bad.filter((r) => r.kind !== 'hang').length}, hangs ${bad.filter((r) => r.kind === 'hang').length}\n`);
process.exitCode = bad.length ? 1 : 0;
