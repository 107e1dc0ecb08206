// Temp directories for tests: under os.tmpdir(), removed after each test of the file that asks.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';

/** Registers cleanup and returns a maker: each call gives a fresh empty directory. */
export function useTmpDirs(prefix = 'archc-test-'): () => string {
  const made: string[] = [];
  afterEach(() => {
    for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    made.push(d);
    return d;
  };
}
