#!/usr/bin/env node
// archc's entry point: runs the TypeScript sources through tsx's loader.
import { register } from 'tsx/esm/api';

register();
try {
  const { main } = await import('../cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  // Only a broken installation gets here (main reports every error itself).
  process.stderr.write(`archc: internal error while starting: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.ARCHC_DEBUG) process.stderr.write(`${e instanceof Error ? e.stack : ''}\n`);
  process.exitCode = 70;
}
