// CLI start-up benchmark: wall time of `archc --help`, `archc check` and `archc stats` on Bamba-9B,
// each a fresh `node bin/archc.js` process, as a user runs them (median and fastest of N runs, after
// one untimed run that rebuilds the bundle if a source changed).
// Run: npx tsx bench/startup.ts [runs]   (default 11; writes bench/results/startup.json)

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './timing.ts';

const ROOT = join(import.meta.dirname, '..');
const runs = Number(process.argv[2] ?? 11);
if (!Number.isInteger(runs) || runs <= 0) throw new Error(`runs must be a positive integer, got ${process.argv[2]}`);

const COMMANDS: [string, string[]][] = [
  ['--help', ['--help']],
  ['check bamba', ['check', 'models/bamba.arch']],
  ['stats bamba', ['stats', 'models/bamba.arch']],
];

function once(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'archc.js'), ...args], { cwd: ROOT, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`archc ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const rows = COMMANDS.map(([label, args]) => {
  once(args);
  const samples = Array.from({ length: runs }, () => once(args));
  return { command: label, runs, medianMs: median(samples), minMs: Math.min(...samples) };
});

console.log('command          median ms   fastest ms');
for (const r of rows) console.log(`${r.command.padEnd(16)} ${r.medianMs.toFixed(0).padStart(9)} ${r.minMs.toFixed(0).padStart(12)}`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'startup.json'), JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
