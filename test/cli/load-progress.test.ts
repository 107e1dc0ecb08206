// The load progress bar (cli/progress.ts): on a terminal, the commands that read a checkpoint
// (forward, eval, quantize) draw bytes read of the total, MB/s and the ETA on stderr; into a pipe
// they write no bar at all. The terminal is `script`'s pseudo-terminal (util-linux).

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARCHC, ROOT, makeDir, removeDir, runCli } from '../helpers/checkpoints.ts';

const TINY = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'bf16');
const BAMBA = join(ROOT, 'models', 'bamba.arch');
const work = makeDir('archc-load-progress-');
afterAll(() => removeDir(work));

/** `archc …args` with stdout and stderr on a pseudo-terminal: what it wrote, and its exit code. */
function onTerminal(args: readonly string[]): Promise<{ code: number; out: string }> {
  const cmd = [process.execPath, ARCHC, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve) => {
    execFile('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, timeout: 120_000, maxBuffer: 16 << 20, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout }));
  });
}

/** The bar's last drawing: read and total MB, the rate. */
function lastBar(out: string, what: string): { read: number; all: number; rate: number } | null {
  const m = [...out.matchAll(new RegExp(`${what} \\[[^\\]]*\\] (\\d+)/(\\d+) MB, (\\d+) MB/s, ETA `, 'g'))].at(-1);
  return m ? { read: Number(m[1]), all: Number(m[2]), rate: Number(m[3]) } : null;
}

describe('load progress bar', () => {
  it('forward and eval on a terminal draw bytes, MB/s and ETA up to the whole checkpoint; into a pipe nothing', async () => {
    const forward = ['forward', BAMBA, '--weights', TINY, '--ids', '1,2,3'];
    const tty = await onTerminal(forward);
    expect(tty.code, tty.out).toBe(0);
    const bar = lastBar(tty.out, 'loading weights');
    expect(bar, tty.out).not.toBeNull();
    expect(bar!.all).toBeGreaterThan(0);
    expect(bar!.read).toBe(bar!.all);
    const piped = await runCli(forward);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).not.toContain('loading weights');
    expect(piped.stderr).not.toContain('MB/s');

    const evalArgs = ['eval', BAMBA, '--weights', TINY, '--text', join(TINY, '..', 'eval-A.txt'), '--window', '64', '--max-windows', '1', '--quantize', 'q8'];
    const ev = await onTerminal(evalArgs);
    expect(ev.code, ev.out).toBe(0);
    expect(lastBar(ev.out, 'loading weights'), ev.out).not.toBeNull();
    expect(lastBar(ev.out, 'loading reference weights'), ev.out).not.toBeNull();
  });

  it('quantize on a terminal draws its bar', async () => {
    const r = await onTerminal(['quantize', BAMBA, '--weights', TINY, '--to', 'q4', '-o', join(work, 'q4')]);
    expect(r.code, r.out).toBe(0);
    const bar = lastBar(r.out, 'quantising weights');
    expect(bar, r.out).not.toBeNull();
    expect(bar!.all).toBeGreaterThan(0);
    expect(bar!.read).toBe(bar!.all);
  });
});
