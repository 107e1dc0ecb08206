// The wasm backend on one memory64 memory (runtime/wasm/memory64.ts, the kernels' i64 form of
// codegen/wasm/addr.ts) against one 32-bit memory, bit for bit. Node 20 has memory64 only behind
// --experimental-wasm-memory64 (V8 11.3's draft JS API, `index: 'i64'`, at most 4 GiB a memory; it
// validates the final binary encoding), so the runs are in a child Node started with the flag
// (test/wasm/memory64-child.ts, one process serving every run of the file): a random tiny Bamba
// (bf16, q4 on 1 and 2 threads and on the plain SIMD module, q8, q4 and q8 with 8-bit activations)
// and the trained tiny-bamba-a (bf16 quantised to q4), weights pushed past memory 0's share into region 1 by
// a small wasmMemoryBytes; logits of every way through the model and three greedy tokens. Both runs
// without the program module (it has no memory64 form). In this process (no flag) forcing memory64
// is RT303 naming the option, or, on an engine with memory64, loads. Headless Chromium:
// test/browser/memory64.test.ts.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { Model } from '../../runtime/model.ts';
import { memory64Support } from '../../runtime/wasm/memory64.ts';
import { MEMORY0_RESERVE } from '../../runtime/wasm/memories.ts';
import { ROOT, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a');
const CHILD = join(import.meta.dirname, 'memory64-child.ts');
const PAGE = 65536;
const work = makeDir('archc-wasm-memory64-');
afterAll(() => removeDir(work));

function randomBamba(name: string, dtype: 'f32' | 'bf16', wide = false): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeCheckpoint(dir, wide ? { vocab: 64, d_model: 256, d_ff: 1024, n_layers: 4, mamba_heads: 8 } : { vocab: 64, d_model: 96, d_ff: 256, n_layers: 4 }, { dtype, seed: 7 });
  return dir;
}

interface ChildResult {
  support: { api: string; maxPages: number };
  choice: Record<string, unknown> & { room: number; forcedPastRoom: { code: string; key: string; message: string } | null; forcedNoKernels: { code: string; key: string } | null };
  one: { memory: number; bytes: number; weightBytes: number; weights: number; address?: string }[];
  wide: { memory: number; bytes: number; weightBytes: number; weights: number; address?: string }[];
  diffs: (string | null)[];
  nonzero: boolean[];
  outputs: number;
}

/** The child Node (memory64-child.ts), one for the file: started at its first job, ended with the file. */
let server: { proc: ChildProcess; waiting: ((line: string | Error) => void)[]; stderr: string } | undefined;
afterAll(async () => {
  const proc = server?.proc;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  // it ends with its stdin; one that does not is killed rather than left behind
  const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await new Promise((done) => { proc.once('close', done); proc.stdin!.end(); });
  clearTimeout(kill);
});

/** One job in the child: its answer, or the child's words when it failed or died. */
function child(arg: object): Promise<ChildResult> {
  if (!server) {
    const proc = spawn(process.execPath, ['--experimental-wasm-memory64', '--expose-gc', '--import', 'tsx', CHILD], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const s = { proc, waiting: [] as ((line: string | Error) => void)[], stderr: '' };
    proc.stderr!.on('data', (b: Buffer) => { s.stderr += b.toString('utf8'); });
    createInterface({ input: proc.stdout! }).on('line', (line) => { if (/^(RESULT|FAILED) /.test(line)) s.waiting.shift()?.(line); });
    proc.on('close', (code, signal) => { for (const w of s.waiting.splice(0)) w(new Error(`${CHILD} ended (${code ?? signal}):\n${s.stderr}`)); });
    server = s;
  }
  const s = server;
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { s.proc.kill('SIGKILL'); }, 240_000);
    s.waiting.push((line) => {
      clearTimeout(timer);
      if (line instanceof Error) rej(line);
      else if (line.startsWith('FAILED ')) rej(new Error(`${CHILD} failed: ${JSON.parse(line.slice(7))}\n${s.stderr}`));
      else res(JSON.parse(line.slice(7)) as ChildResult);
    });
    s.proc.stdin!.write(`${JSON.stringify(arg)}\n`);
  });
}

/** Loads `dir` both ways in the child and checks every output bit for bit, and where the weights went. */
async function compare(what: string, dir: string, ids: [number[], number[]], threads: number, quantize?: 'q8' | 'q4', activations?: 'q8', plain = false): Promise<ChildResult> {
  // memory 0 takes weights while they leave it a quarter of the limit: a limit of 4 pages leaves it
  // 3 pages' worth, so nearly every weight goes to region 1 (from 2 GiB under Node 20's 4 GiB maximum)
  const limit = 4 * PAGE;
  const r = await child({ dir, quantize, activations, plain, threads, limit, a: ids[0], b: ids[1] });
  expect(r.one.length, `${what}: the default limit keeps one 32-bit memory`).toBe(1);
  expect(r.one[0]!.address, `${what}: the 32-bit run`).toBeUndefined();
  expect(r.wide.length, `${what}: one memory64 memory`).toBe(1);
  const [wide] = r.wide;
  expect(wide!.address).toBe('i64');
  expect(wide!.weights, `${what}: every packed weight is in it`).toBe(r.one[0]!.weights);
  expect(wide!.weightBytes, `${what}: every packed byte is in it`).toBe(r.one[0]!.weightBytes);
  // region 1 starts at half the engine's maximum: the memory reaches past it only with weights there
  expect(wide!.bytes, `${what}: weights past region 0`).toBeGreaterThan(r.support.maxPages * PAGE / 2);
  expect(r.one[0]!.weightBytes, `${what}: more weights than memory 0 takes`).toBeGreaterThan(limit * (1 - MEMORY0_RESERVE));
  r.nonzero.forEach((nz, i) => expect(nz, `${what}: output ${i} is not all zeros`).toBe(true));
  r.diffs.forEach((d, i) => expect(d, `${what}, ${threads} thread(s): output ${i} of ${r.outputs}${i === r.outputs - 1 ? ' (greedy tokens)' : ''}`).toBeNull());
  return r;
}

describe('wasm on one memory64 memory = one 32-bit memory, bit for bit (Node 20 with --experimental-wasm-memory64)', () => {
  const ids = (seed: number): [number[], number[]] => [randomIds(13, 64, seed), randomIds(8, 64, seed + 1)];
  it('random Bamba, bf16 weights, 2 threads; the choice at load', async () => {
    const r = await compare('bf16', randomBamba('bf16', 'bf16'), ids(1), 2);
    expect(r.support.api, 'Node 20 has the draft JS API').toBe('index');
    const c = r.choice;
    expect([c.fits32, c.past32, c.pastRoom, c.noKernels, c.never]).toEqual([false, true, false, false, false]);
    expect(c.forcedPastRoom?.code).toBe('RT303');
    expect(c.forcedPastRoom?.key).toBe('wasmMemory64');
    expect(c.forcedPastRoom?.message).toContain(`${c.room + 1} bytes of packed weights`);
    expect(c.forcedNoKernels?.code).toBe('RT303');
  });
  it('random Bamba, q4, 1 and 2 threads', async () => {
    const dir = randomBamba('q4', 'bf16');
    await compare('q4', dir, ids(3), 1, 'q4');
    await compare('q4', dir, ids(3), 2, 'q4');
  });
  it('random Bamba, f32 weights quantised to q8', async () => compare('q8', randomBamba('q8', 'f32'), ids(5), 2, 'q8'));
  // weights of 512 KiB and more: read by the load pool straight into their panels (runtime/load-pool.ts), past 2 GiB
  it('random Bamba, bf16 weights of 0.5-1 MiB through the load pool', async () => compare('bf16 wide', randomBamba('bf16-wide', 'bf16', true), ids(13), 2));
  // the plain SIMD module: other tiles and cache blocks, q4 dequantised for every row count
  it('random Bamba, q4, plain SIMD module', async () => compare('q4 plain', randomBamba('q4-plain', 'bf16'), ids(11), 2, 'q4', undefined, true));
  // 8-bit activations: the rows rounded by digits8 (decode) and round8 (prefill) in the memory64 form
  it('random Bamba, q4 and q8 with 8-bit activations', async () => {
    await compare('q4a8', randomBamba('q4a8', 'bf16'), ids(7), 2, 'q4', 'q8');
    await compare('q8a8', randomBamba('q8a8', 'f32'), ids(9), 1, 'q8', 'q8');
  });
  it('trained tiny-bamba-a, bf16 quantised to q4', async () => {
    const text = Array.from(new TextEncoder().encode('The quick brown fox jumps over the lazy dog, and the dog sleeps on.'));
    await compare('tiny-bamba-a q4', join(TINY_A, 'bf16'), [text.slice(0, 40), text.slice(40, 60)], 2, 'q4');
  });
});

describe('wasmMemory64 in this process', () => {
  let kernels: Uint8Array[], kernels64: Uint8Array[];
  beforeAll(async () => { [kernels, kernels64] = await Promise.all([wasmKernelVariants(), wasmKernelVariants(true)]); });
  it('forced: RT303 naming the option where the engine has no memory64, else it loads on one i64 memory', async () => {
    const dir = randomBamba('forced', 'f32');
    const load = Model.loadProgram(programFor(dir), dir, { backend: 'wasm', wasmKernels: kernels, wasmKernels64: kernels64, threads: 1, wasmMemory64: true });
    if (memory64Support() === null) {
      const err = await load.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe('RT303');
      expect((err as RuntimeError).key).toBe('wasmMemory64');
      expect((err as RuntimeError).message).toMatch(/no memory64/);
    } else {
      const m = await load;
      expect(m.memories.map((r) => r.address)).toEqual(['i64']);
      m.dispose();
    }
  });
  it('left out, a small model keeps one 32-bit memory', async () => {
    const dir = randomBamba('auto', 'f32');
    const m = await Model.loadProgram(programFor(dir), dir, { backend: 'wasm', wasmKernels: kernels, wasmKernels64: kernels64, threads: 1 });
    expect(m.memories.length).toBe(1);
    expect(m.memories[0]!.address).toBeUndefined();
    m.dispose();
  });
});
