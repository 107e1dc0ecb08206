// The build's status line (cli/phases.ts): on a terminal, the phase in progress with its count and
// seconds, cleared at the end; off a terminal (pipes, CI, files), nothing at all.

import { describe, expect, it } from 'vitest';
import { phases } from '../../cli/phases.ts';

const stream = (isTTY: boolean) => {
  const out: string[] = [];
  return { out, s: { isTTY, columns: 60, write: (t: string) => out.push(t) } as unknown as NodeJS.WriteStream };
};

describe('build phases', () => {
  it('on a terminal: one line per phase, redrawn in place, cut to the width, cleared at the end', () => {
    const { out, s } = stream(true);
    const p = phases('building bamba.arch', 3, s);
    p.start('compiling');
    p.start('cuda kernels (nvcc sm_80, sm_90) with a name long enough to need cutting at the width');
    p.end();
    expect(out[0]).toBe('\rbuilding bamba.arch [1/3] compiling 0 s\x1b[K');
    expect(out[1]!.startsWith('\rbuilding bamba.arch [2/3] cuda kernels (nvcc sm_80, sm_90)')).toBe(true);
    expect(out[1]!.replace(/\x1b\[K$/, '').length - 1).toBeLessThanOrEqual(59);
    expect(out.at(-1)).toBe('\r\x1b[K');
  });

  it('off a terminal: prints nothing', () => {
    const { out, s } = stream(false);
    const p = phases('building', 2, s);
    p.start('compiling');
    p.end();
    expect(out).toEqual([]);
  });
});
