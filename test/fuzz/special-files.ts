// Special files in every place the CLI reads or writes one: the .arch source and an import,
// --hf-config, a checkpoint's config.json, tokenizer.json and its two companions, model.safetensors, a shard and the
// shard index, --weights itself, eval's --text, and the outputs (graph -o, forward --out, build,
// init-weights and quantize -o). Each case puts one kind of file there — a FIFO (an output one with
// a reader, or with none), a link to
// /dev/zero, /dev/null or /dev/full, a directory, a socket, an empty file, a link to a good copy
// out of the folder — runs the command in a child process and reports how it ended. What must hold
// (test/fuzz/special-files.test.ts): a coded error and a non-zero exit, or exit 0 with the output
// a regular file gives; no hang, no stack trace; the special file left as it was.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { delimiter, join } from 'node:path';
import { ARCHC, BAMBA, ROOT, TINY, setsFor, writeCheckpoint } from '../helpers/checkpoints.ts';

export const KINDS = ['fifo', 'fifo-alone', 'zero', 'null', 'full', 'dir', 'socket', 'empty', 'outside'] as const;
export type Kind = (typeof KINDS)[number];

/** Where a case puts its special file, and the command that then reads or writes it. */
export interface Place {
  readonly name: string;
  /** Output places: the command writes the special file (a FIFO gets a reader). */
  readonly output?: 'file' | 'dir';
  /** Kinds that do not apply here (e.g. a link out of the folder for a file that has none). */
  readonly skip?: readonly Kind[];
  /** The path inside the case folder that becomes special. */
  readonly at: string;
  /** The command line, given the case folder. */
  readonly argv: (d: string) => string[];
}

const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32', 'tokenizer.json');
/** A Bamba whose vocabulary is the shared tokenizer's. */
const PARAMS = { ...TINY, vocab: 264 };
const SETS = setsFor(PARAMS).flatMap((s) => ['--set', s]);
const CPU = ['--backend', 'cpu'];
const forwardOf = (weights: string) => ['forward', BAMBA, ...SETS, '--weights', weights, '--ids', '1,2,3;4,5', '--loss', ...CPU];
const FORWARD = (d: string) => forwardOf(join(d, 'ckpt'));
const SHARDED = (d: string) => forwardOf(join(d, 'sharded'));

export const PLACES: readonly Place[] = [
  { name: 'source', at: 'main.arch', argv: (d) => ['check', join(d, 'main.arch')] },
  { name: 'import', at: 'lib.arch', argv: (d) => ['check', join(d, 'main.arch')] },
  { name: 'hf-config', at: 'hf.json', argv: (d) => ['check', BAMBA, '--hf-config', join(d, 'hf.json')] },
  { name: 'config.json', at: 'ckpt/config.json', argv: FORWARD },
  { name: 'tokenizer.json', at: 'ckpt/tokenizer.json', argv: (d) => ['run', BAMBA, ...SETS, '--weights', join(d, 'ckpt'), '--prompt', 'hello', '--max-tokens', '2', ...CPU] },
  { name: 'tokenizer_config.json', at: 'ckpt/tokenizer_config.json', argv: (d) => PLACES.find((p) => p.name === '--text')!.argv(d) },
  { name: 'special_tokens_map.json', at: 'ckpt/special_tokens_map.json', argv: (d) => PLACES.find((p) => p.name === '--text')!.argv(d) },
  { name: 'model.safetensors', at: 'ckpt/model.safetensors', argv: FORWARD },
  { name: 'shard', at: 'sharded/model-00001-of-00002.safetensors', argv: SHARDED },
  { name: 'index', at: 'sharded/model.safetensors.index.json', argv: SHARDED },
  { name: '--weights', at: 'ckpt', skip: ['empty'], argv: FORWARD },
  { name: '--text', at: 'text.txt', argv: (d) => ['eval', BAMBA, ...SETS, '--weights', join(d, 'ckpt'), '--text', join(d, 'text.txt'), '--window', '8', '--max-windows', '2', ...CPU] },
  { name: 'graph -o', output: 'file', at: 'out.txt', skip: ['outside'], argv: (d) => ['graph', BAMBA, ...SETS, '-o', join(d, 'out.txt')] },
  { name: 'forward --out', output: 'file', at: 'out.npy', skip: ['outside'], argv: (d) => [...FORWARD(d), '--out', join(d, 'out.npy')] },
  { name: 'build -o', output: 'dir', at: 'pkg', skip: ['outside'], argv: (d) => ['build', BAMBA, ...SETS, '-o', join(d, 'pkg')] },
  { name: 'init-weights -o', output: 'dir', at: 'new', skip: ['outside'], argv: (d) => ['init-weights', BAMBA, ...SETS, '-o', join(d, 'new')] },
  { name: 'quantize -o', output: 'dir', at: 'q8', skip: ['outside'], argv: (d) => ['quantize', BAMBA, ...SETS, '--weights', join(d, 'ckpt'), '--to', 'q8', '-o', join(d, 'q8')] },
];

export interface Case {
  readonly place: Place;
  readonly kind: Kind;
}

/** Every (place, kind) that applies, in a fixed order. */
export const CASES: readonly Case[] = PLACES.flatMap((place) => KINDS
  // a FIFO nobody reads: where the command writes a file (an input FIFO never gets a writer here)
  .filter((k) => !place.skip?.includes(k) && (k !== 'fifo-alone' || place.output === 'file'))
  .map((kind) => ({ place, kind })));

/** A case folder as a regular run sees it: main.arch importing lib.arch, hf.json, a checkpoint with
 *  a tokenizer, the same checkpoint in two shards, a text. */
export function makeFolder(d: string): void {
  writeFileSync(join(d, 'lib.arch'), 'block Id()(x) {\n  return x\n}\n');
  writeFileSync(join(d, 'main.arch'), 'import lib\nmodel M(tokens: i32[T]) {\n  weight e[8, 4]\n  return head(i: Id()(embedding(tokens, e)), e)\n}\n');
  mkdirSync(join(d, 'ckpt'));
  const { tensors } = writeCheckpoint(join(d, 'ckpt'), PARAMS, { seed: 5 });
  copyFileSync(join(d, 'ckpt', 'config.json'), join(d, 'hf.json'));
  copyFileSync(TOKENIZER, join(d, 'ckpt', 'tokenizer.json'));
  copyFileSync(join(TOKENIZER, '..', 'tokenizer_config.json'), join(d, 'ckpt', 'tokenizer_config.json'));
  writeFileSync(join(d, 'ckpt', 'special_tokens_map.json'), '{}\n');
  mkdirSync(join(d, 'sharded'));
  writeCheckpoint(join(d, 'sharded'), PARAMS, { tensors, shardSize: 200_000 });
  writeFileSync(join(d, 'text.txt'), 'hello world, the quick brown fox jumps over the lazy dog. '.repeat(4));
}

/** What a path is, as far as "left as it was" goes: its kind, a link's target, a folder's names,
 *  a file's bytes. */
export function fingerprint(p: string): string {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return 'absent';
  }
  if (st.isSymbolicLink()) return `link ${readlinkSync(p)}`;
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isDirectory()) return `dir ${readdirSync(p).sort().join(',')}`;
  return `file ${readFileSync(p).toString('base64')}`;
}

/** Puts `kind` at `p` (the regular file or folder there is moved to `p.orig` first, which a link
 *  out of the folder then names). Returns what must be closed after the run. */
export async function makeSpecial(d: string, p: string, kind: Kind): Promise<{ close: () => void }> {
  const orig = join(d, 'orig');
  mkdirSync(orig, { recursive: true });
  let was: string | undefined;
  try {
    lstatSync(p);
    was = join(orig, p.split('/').pop()!);
    execFileSync('mv', [p, was]);
  } catch {
    // nothing there (an output)
  }
  let server: Server | undefined;
  switch (kind) {
    case 'fifo': case 'fifo-alone': execFileSync('mkfifo', [p]); break;
    case 'zero': symlinkSync('/dev/zero', p); break;
    case 'null': symlinkSync('/dev/null', p); break;
    case 'full': symlinkSync('/dev/full', p); break;
    case 'dir': mkdirSync(p); writeFileSync(join(p, 'mine.txt'), 'mine'); break;
    case 'socket':
      server = createServer();
      await new Promise<void>((done) => server!.listen(p, done));
      break;
    case 'empty': writeFileSync(p, ''); break;
    case 'outside': symlinkSync(was!, p); break;
  }
  return { close: () => server?.close() };
}

export interface Exit {
  /** The exit status, or null when a signal (or the time-out) ended the process. */
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** `node bin/archc.js …args` in the repository root, killed after `waitMs`. */
export function runArchc(args: readonly string[], waitMs: number): Promise<Exit> {
  // without nvcc: `build` writes its CUDA kernels as source (NVRTC at load) rather than compiling
  // them, minutes with a cold cache on a loaded machine, which is not what these cases are about
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', PATH: (process.env.PATH ?? '').split(delimiter).filter((p) => p && !existsSync(join(p, 'nvcc'))).join(delimiter) };
  delete env.ARCHC_DEBUG;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ARCHC, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, waitMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

export interface CaseRun {
  readonly result: Exit;
  /** The special file before and after. */
  readonly before: string;
  readonly after: string;
  /** What a FIFO's reader got (output places). */
  readonly read?: Buffer;
  /** Runs that timed out before this one (a loaded machine gets a second, longer wait). */
  readonly timeouts: number;
}

/** Runs one case in folder `d` (made by makeFolder); `waits` are the successive time-outs. */
export async function runCase(d: string, c: Case, waits: readonly number[]): Promise<CaseRun> {
  const p = join(d, c.place.at);
  const special = await makeSpecial(d, p, c.kind);
  const before = fingerprint(p);
  let timeouts = 0;
  try {
    for (const wait of waits) {
      // a FIFO output gets a reader (cat), which is stopped after the run
      let reader: { proc: ChildProcess; ended: Promise<void> } | undefined;
      const chunks: Buffer[] = [];
      if (c.place.output && c.kind === 'fifo') {
        const proc = spawn('cat', [p], { stdio: ['ignore', 'pipe', 'ignore'] });
        proc.stdout!.on('data', (b: Buffer) => chunks.push(b));
        reader = { proc, ended: new Promise<void>((done) => proc.once('close', () => done())) };
      }
      const result = await runArchc(c.place.argv(d), wait);
      let read: Buffer | undefined;
      if (reader) {
        // a command that refused the FIFO never opened it, so its reader still waits in open():
        // opening the FIFO for writing (and closing it at once) lets it through to an end of file,
        // retried until the reader has opened it; one the command wrote already has all its bytes
        const unblock = setInterval(() => {
          try {
            closeSync(openSync(p, constants.O_WRONLY | constants.O_NONBLOCK));
          } catch {
            // no reader yet (ENXIO), or it has gone
          }
        }, 50);
        const stop = setTimeout(() => reader!.proc.kill('SIGKILL'), 5_000);
        await reader.ended;
        clearInterval(unblock);
        clearTimeout(stop);
        read = Buffer.concat(chunks);
      }
      if (result.timedOut) {
        timeouts++;
        continue;
      }
      return { result, before, after: fingerprint(p), read, timeouts };
    }
    return { result: { code: null, signal: 'SIGKILL', timedOut: true, stdout: '', stderr: '' }, before, after: fingerprint(p), timeouts };
  } finally {
    special.close();
    rmSync(join(d, 'orig'), { recursive: true, force: true });
  }
}
