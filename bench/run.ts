// `npm run bench [-- NAME…]`: runs the named benchmarks of bench/ (default: all but the full-size
// ones, which write and read tens of GB and run only by name), each in a child process of its own
// through tsx, one after another; `--list` prints their names.
// Each benchmark prints its table and writes bench/results/NAME.json.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const DIR = import.meta.dirname;
/** The helpers benchmarks import. */
export const HELPERS = ['run.ts', 'timing.ts', 'memcopy.ts'];
/** Every bench/*.ts but the helpers. */
export const BENCHMARKS = readdirSync(DIR)
  .filter((f) => f.endsWith('.ts') && !HELPERS.includes(f))
  .map((f) => f.slice(0, -3))
  .sort();
/** Bamba-9B at full size (a 19.6 GB checkpoint, tens of minutes): only when named. */
const FULL_SIZE = ['bamba9b', 'browser-9b'];

const args = process.argv.slice(2);
if (args.includes('--list')) {
  process.stdout.write(BENCHMARKS.join('\n') + '\n');
  process.exit(0);
}
const unknown = args.filter((a) => !BENCHMARKS.includes(a));
if (unknown.length) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.join(', ')}\n`);
  process.exit(2);
}
const tsx = join(DIR, '..', 'node_modules', 'tsx', 'dist', 'cli.mjs');
for (const name of args.length ? args : BENCHMARKS.filter((b) => !FULL_SIZE.includes(b))) {
  process.stdout.write(`\n== bench/${name}.ts\n`);
  const r = spawnSync(process.execPath, [tsx, join(DIR, `${name}.ts`)], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`bench/${name}.ts failed (exit ${r.status ?? r.signal})\n`);
    process.exit(1);
  }
}
