// Start-up: the light commands must not load the heavy packages (ts-morph for `build`, the tokenizer
// and cli-progress for `run`, ajv for graph.json). Which packages a command resolves is recorded by
// a module hook; start-up time itself is measured by bench/startup.ts, not here.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHC, BAMBA, ROOT } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs();
const HEAVY = ['ts-morph', '@huggingface/tokenizers', 'cli-progress', 'ajv', 'handlebars'];

/** The packages `archc …args` resolves (after one untimed run that may rebuild the bundle). */
function packagesLoaded(args: string[]): string[] {
  execFileSync(process.execPath, [ARCHC, ...args], { cwd: ROOT, stdio: 'pipe' });
  const log = join(tmp(), 'imports.txt');
  execFileSync(process.execPath, ['--import', join(ROOT, 'test', 'helpers', 'trace-imports.mjs'), ARCHC, ...args], {
    cwd: ROOT, stdio: 'pipe', env: { ...process.env, ARCHC_TRACE_IMPORTS: log },
  });
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

describe('start-up', () => {
  it.each([[['--help']], [['check', BAMBA]], [['stats', BAMBA]]])('archc %j loads no heavy package', (args) => {
    const loaded = packagesLoaded(args);
    expect(loaded).toContain('commander'); // the hook saw the CLI's own imports
    expect(loaded.filter((p) => HEAVY.some((h) => p === h || p.startsWith(`${h}/`)))).toEqual([]);
  });
});
