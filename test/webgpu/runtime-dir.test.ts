// Mesa's Vulkan drivers probe for a Wayland display, and libwayland prints "XDG_RUNTIME_DIR is invalid
// or not set in the environment" once per probe where the variable names no directory of ours (servers,
// containers, CI). findGpu gives Dawn a private one then. Run in a child process: the variable must be
// unset or wrong before Dawn loads, which this test process has already done. CI installs Mesa's
// drivers (.ci/run) so that a driver that probes is there.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ICDS = '/usr/share/vulkan/icd.d';
/** Mesa's software Vulkan driver (lavapipe): probes Wayland at instance creation. */
const lavapipe = () => readdirSync(ICDS).find((f) => f.startsWith('lvp_icd'));

/** A child that opens Dawn the way the runtime does and asks for an adapter; prints the variable it ended with. */
const CHILD = `
const { findGpu } = await import(${JSON.stringify(join(process.cwd(), 'runtime/webgpu/backend.ts'))});
await (await findGpu()).requestAdapter();
console.log('XDG=' + process.env.XDG_RUNTIME_DIR);
`;

function run(xdg: string | undefined): { stderr: string; stdout: string; status: number | null } {
  const env: Record<string, string> = { ...process.env as Record<string, string>, VK_ICD_FILENAMES: join(ICDS, lavapipe() ?? 'missing') };
  if (xdg === undefined) delete env.XDG_RUNTIME_DIR;
  else env.XDG_RUNTIME_DIR = xdg;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { env, encoding: 'utf8', timeout: 240_000 });
  return { stderr: r.stderr, stdout: r.stdout, status: r.status };
}

describe('Dawn and XDG_RUNTIME_DIR', () => {
  it('Mesa\'s Vulkan driver is installed (the case below needs one that probes Wayland)', () => {
    expect(lavapipe(), `no lvp_icd*.json in ${ICDS}: apt-get install mesa-vulkan-drivers`).toBeDefined();
  });

  for (const [what, xdg] of [['unset', undefined], ['naming no directory', '/nonexistent/archc-xdg']] as const) {
    it(`with the variable ${what}: no message from the driver, a private directory instead`, () => {
      const r = run(xdg);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/XDG_RUNTIME_DIR/);
      const dir = /XDG=(.*)/.exec(r.stdout)?.[1];
      expect(dir).toMatch(/archc-xdg-/);
      expect(dir).not.toBe(xdg);
    }, 300_000);
  }

  it('a usable directory the caller gave is kept', () => {
    const r = run(process.env.TMPDIR ?? '/tmp');
    expect(r.status, r.stderr).toBe(0);
    expect(/XDG=(.*)/.exec(r.stdout)?.[1]).toBe(process.env.TMPDIR ?? '/tmp');
  }, 300_000);
});
