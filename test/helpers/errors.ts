// Asserting runtime errors: the code, and what the message names.

import { expect } from 'vitest';
import { RuntimeError } from '../../runtime/errors.ts';

/** Runs `fn`, expects a RuntimeError with `code` whose message contains every one of `mentions`. */
export function expectRuntimeError(fn: () => unknown, code: string, ...mentions: string[]): RuntimeError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}, got ${String(err)}`).toBeInstanceOf(RuntimeError);
  const re = err as RuntimeError;
  expect(re.code, re.message).toBe(code);
  for (const m of mentions) expect(re.message).toContain(m);
  return re;
}
