// Special files fuzz (test/fuzz/special-files.ts): every (place, kind) case, by count. Each ends with
// a coded error (AC/RT) and a non-zero exit, or exit 0 with what a regular file gives; none hangs
// (a process still running after its wait is run again with a longer one: a loaded machine is slow,
// a hang never ends); no stack trace; the special file is left as it was (an empty file given as an
// output holds the output). Kinds that can only be refused (a FIFO, a device, a socket, a directory
// as an input) must be refused; a shard linked out of its checkpoint is RT133.

import { cpSync, mkdtempSync, rmSync, readFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNTIME_LIMITS } from '../../runtime/limits.ts';
import { inParallel } from '../helpers/checkpoints.ts';
import { type Case, type CaseRun, CASES, type Kind, PLACES, type Place, fingerprint, makeFolder, runArchc, runCase } from './special-files.ts';

/** Successive waits for one run (ms): a run past the last one is a hang. */
const WAITS = [90_000, 240_000];
const REFUSED: readonly Kind[] = ['fifo', 'fifo-alone', 'zero', 'null', 'full', 'dir', 'socket'];

interface Reference {
  readonly stdout: string;
  /** The bytes a file output holds. */
  readonly output?: Buffer;
}

/** The folder every run starts from (makeFolder's, written once: its checkpoints are compiled
 *  and written in this process), copied whole into each run's own folder. */
let template: string;
beforeAll(() => {
  template = mkdtempSync(join(tmpdir(), 'archc-special-template-'));
  makeFolder(template);
});
afterAll(() => { if (template) rmSync(template, { recursive: true, force: true }); });

/** A fresh folder as makeFolder leaves one; remove it with rmSync. */
function folder(prefix = 'archc-special-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cpSync(template, d, { recursive: true });
  return d;
}

/** `text` with the case folder's path replaced, so runs in two folders compare. */
const plain = (text: string, d: string) => text.split(d).join('<d>');

/** What the command gives in a folder with nothing special in it. */
async function reference(place: Place): Promise<Reference> {
  const d = folder('archc-special-ref-');
  try {
    const r = await runArchc(place.argv(d), WAITS[WAITS.length - 1]!);
    expect(r.code, `${place.name} in a plain folder: ${r.stderr}`).toBe(0);
    return { stdout: plain(r.stdout, d), ...(place.output === 'file' ? { output: readFileSync(join(d, place.at)) } : {}) };
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** The problems with one case's run (empty when it did what it must). */
function problems(c: Case, d: string, run: CaseRun, ref: Reference): string[] {
  const { result: r, before, after } = run;
  const out: string[] = [];
  if (r.timedOut) return [`still running after ${WAITS.join(' + ')} ms (a hang)`];
  if (/^\s+at /m.test(r.stderr)) out.push(`a stack trace: ${r.stderr.slice(0, 400)}`);
  const failed = r.code !== 0;
  if (r.code === null) out.push(`ended by ${r.signal}`);
  if (failed && !/\berror (AC|RT)\d{3}\b/.test(r.stderr)) out.push(`exit ${r.code} without a coded error: ${r.stderr.slice(0, 400)}`);
  const mustFail = (REFUSED.includes(c.kind) && !(c.place.output === 'file' && ['fifo', 'zero', 'null'].includes(c.kind)))
    || (c.kind === 'empty' && c.place.output !== 'file') || c.place.output === 'dir' || (c.kind === 'outside' && c.place.name === 'shard');
  if (mustFail && !failed) out.push(`exit 0 where it must be refused: ${r.stdout.slice(0, 200)}`);
  // a FIFO with a reader, a device that takes bytes and an empty file are written
  if (c.place.output === 'file' && ['fifo', 'zero', 'null', 'empty'].includes(c.kind) && failed) out.push(`refused: ${r.stderr.slice(0, 300)}`);
  if (c.kind === 'outside' && c.place.name === 'shard' && !r.stderr.includes('RT133')) out.push(`not RT133: ${r.stderr.slice(0, 300)}`);
  if (c.kind === 'fifo-alone' && !r.stderr.includes('AC607')) out.push(`not AC607: ${r.stderr.slice(0, 300)}`);
  if (!failed) {
    // exit 0: what a regular file gives (the text a run prints after its timings is not compared)
    if (c.place.name !== 'tokenizer.json' && plain(r.stdout, d) !== ref.stdout) out.push(`stdout ${JSON.stringify(r.stdout.slice(0, 200))}, expected ${JSON.stringify(ref.stdout.slice(0, 200))}`);
    if (c.kind === 'fifo' && !run.read?.equals(ref.output!)) out.push(`the FIFO's reader got ${run.read?.length} bytes, expected the ${ref.output!.length} of a file`);
    if (c.kind === 'empty' && c.place.output === 'file') {
      if (!readFileSync(join(d, c.place.at)).equals(ref.output!)) out.push('the output file does not hold what a new file gets');
      return out;
    }
  }
  if (after !== before) out.push(`the ${c.kind} was changed: ${before.slice(0, 60)} -> ${after.slice(0, 60)}`);
  return out;
}

describe('special files fuzz', () => {
  it(`${CASES.length} cases (${PLACES.length} places the CLI reads or writes × the kinds that apply): coded errors or correct output, no hang, nothing of the user's touched`, async () => {
    // the references are the pool's first jobs: every one has started before the first case does,
    // and a case waits for its place's only when it compares; places that run the same command
    // (and read no output file) share one run
    const refs = new Map<string, Promise<Reference>>();
    const commandOf = (p: Place) => JSON.stringify([p.argv('<d>'), p.output === 'file' ? p.at : '']);
    const referenceJobs = PLACES.filter((p, i) => PLACES.findIndex((q) => commandOf(q) === commandOf(p)) === i).map((p) => () => {
      const ref = reference(p);
      refs.set(commandOf(p), ref);
      return ref.then((): string[] => []);
    });
    const seen: string[] = [];
    const bad = (await inParallel([...referenceJobs, ...CASES.map((c) => async () => {
      const d = folder();
      try {
        const run = await runCase(d, c, WAITS);
        seen.push(`${c.place.name}/${c.kind}`);
        return problems(c, d, run, await refs.get(commandOf(c.place))!).map((p) => `${c.place.name} ${c.kind}: ${p}`);
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    })], 2)).flat();
    expect(bad).toEqual([]);
    expect(seen.length).toBe(CASES.length);
    // the system's own devices are still devices
    for (const dev of ['/dev/null', '/dev/zero', '/dev/full']) expect(fingerprint(dev)).toBe('chardev');
  }, 1_800_000);

  it('eval --text over text-bytes (a sparse file: no disk used) is RT100 naming the limit, by bytes read, twice', async () => {
    const d = folder();
    try {
      const place = PLACES.find((p) => p.name === '--text')!;
      truncateSync(join(d, place.at), RUNTIME_LIMITS.textBytes.value + 1);
      for (let i = 0; i < 2; i++) {
        const r = await runArchc(place.argv(d), WAITS[1]!);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^error RT100: cannot read \S*text\.txt: at least 268435457 bytes, over the limit text-bytes = 268435456/);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }, 600_000);
});
