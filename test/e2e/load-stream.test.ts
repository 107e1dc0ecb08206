// Streaming checkpoint load (runtime/model.ts, runtime/load.ts): onProgress's bytes (monotone, the
// total the checkpoint's tensors hold, counted once for a tied tensor); the early refusal RT146 when
// the weights do not fit the memory given (before the backend opens: a backend that would fail to
// open is never reached) and the header checks before it too; and weights loaded unchanged through
// the reused buffer and shared memory: logits bit for bit those of the same backend fed fresh
// memory for every tensor (as the loader did before), and close to the CPU reference, on the
// trained tiny-bamba-a (f32, bf16) and a random Bamba, cpu (1 and 2 threads) and wasm, as stored
// and with q8/q4.

import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { loadedWeightBytes } from '../../runtime/load.ts';
import { LoadPool } from '../../runtime/load-pool.ts';
import { type LoadOptions, type LoadProgress, Model } from '../../runtime/model.ts';
import { type NamedTensor, openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import { planQuant } from '../../runtime/quantplan.ts';
import { ROOT, expectLogitsClose, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const TINY_A = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a');
const work = makeDir('archc-load-stream-');
let kernels: Uint8Array[];
let random: string;
beforeAll(async () => {
  kernels = await wasmKernelVariants();
  random = join(work, 'random');
  mkdirSync(random);
  writeCheckpoint(random, { vocab: 96, tie: true }, { dtype: 'bf16', seed: 4 });
});
afterAll(() => removeDir(work));

async function load(dir: string, opts: LoadOptions): Promise<Model> {
  const program = programFor(dir);
  const extra = opts.backend === 'wasm' ? { wasmKernels: kernels, wasmProgram: await wasmProgram(program) } : {};
  return Model.loadProgram(program, dir, { ...extra, ...opts });
}

/** Logits of a packed forward of two sequences. */
function logits(m: Model, seed: number): Float32Array {
  const ids = randomIds(24, m.vocab, seed);
  return m.forward({ ids, positions: [...Array(24).keys()].map((i) => i % 12) }).logits;
}

/** A load as the loader did before the streaming change: every tensor in fresh memory, none read
 *  by the load pool (runtime/load-pool.ts); `given` counts the tensors the loader asked to read into
 *  memory of its own (which this load ignores). */
async function loadFresh(dir: string, opts: LoadOptions, given: { n: number }): Promise<Model> {
  const ckpt = openCheckpoint(join(dir, 'model.safetensors'));
  const proto = Object.getPrototypeOf(ckpt) as { read(name: string, alloc?: unknown): unknown };
  ckpt.close();
  const plain = proto.read;
  const spy = vi.spyOn(proto, 'read').mockImplementation(function (this: unknown, name: string, alloc?: unknown) {
    if (alloc) given.n++;
    return plain.call(this, name);
  });
  const noPool = vi.spyOn(LoadPool, 'start').mockReturnValue(null as unknown as LoadPool);
  try {
    return await load(dir, opts);
  } finally {
    spy.mockRestore();
    noPool.mockRestore();
  }
}

/** Tensors the load pool reads (of at least 256 KiB: runtime/load-weights.ts DIRECT_FROM), counted. */
function poolReads(): { n: number; restore(): void } {
  const count = { n: 0, restore: () => spy.mockRestore() };
  const plain = LoadPool.prototype.read;
  const spy = vi.spyOn(LoadPool.prototype, 'read').mockImplementation(function (this: LoadPool, ...a: Parameters<LoadPool['read']>) {
    count.n++;
    return plain.apply(this, a);
  });
  return count;
}

describe('progress in bytes', () => {
  it('bytes read are monotone, end at the total, and the total is the tensors the program reads (a tied one once)', async () => {
    for (const [dir, backend] of [[join(TINY_A, 'bf16'), 'wasm'], [random, 'cpu']] as const) {
      const seen: { done: number; total: number; p: LoadProgress }[] = [];
      const m = await load(dir, { backend, threads: 2, onProgress: (done, total, _t, p) => seen.push({ done, total, p }) });
      const ckpt = openCheckpoint(join(dir, 'model.safetensors'));
      const total = ckpt.totalBytes;
      ckpt.close();
      m.dispose();
      expect(seen.length, dir).toBe(m.program.weights.length);
      seen.forEach((s, i) => {
        expect(s.done).toBe(i + 1);
        expect(s.total).toBe(seen.length);
        expect(s.p.totalBytes, `${dir}: total`).toBe(total);
        expect(s.p.bytesRead).toBeGreaterThan(0);
        expect(s.p.bytesRead).toBeGreaterThanOrEqual(i ? seen[i - 1]!.p.bytesRead : 0);
        expect(s.p.bytesPerSecond).toBeGreaterThan(0);
      });
      expect(seen.at(-1)!.p.bytesRead, dir).toBe(total);
    }
  });
});

describe('early refusal', () => {
  it('RT146 names the bytes needed and available and q4, before the backend opens; q4 fits where f32 does not', async () => {
    const dir = join(TINY_A, 'f32');
    const program = programFor(dir);
    const ckpt = openCheckpoint(join(dir, 'model.safetensors'));
    const asStored = loadedWeightBytes(program, ckpt, new Map(), (n) => n, 'cpu');
    const q4 = loadedWeightBytes(program, ckpt, planQuant(program, 'q4', (n) => ckpt.tensors.get(n)?.shape ?? []).formats, (n) => n, 'cpu');
    ckpt.close();
    expect(asStored).toBeGreaterThanOrEqual(ckpt.totalBytes - 4096);
    expect(q4).toBeLessThan(asStored / 3);
    const progress = vi.fn();
    // backend wasm without its kernel module fails as it opens (RT303): RT146 shows it never did
    const err = await Model.loadProgram(program, dir, { backend: 'wasm', memoryAvailable: q4, onProgress: progress }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RT146');
    expect((err as RuntimeError).message).toContain(asStored.toLocaleString('en-US'));
    expect((err as RuntimeError).message).toContain(q4.toLocaleString('en-US'));
    expect((err as RuntimeError).message).toContain('--quantize q4');
    expect(progress).not.toHaveBeenCalled();
    const m = await Model.loadProgram(program, dir, { backend: 'cpu', threads: 1, quantize: 'q4', memoryAvailable: q4 });
    m.dispose();
    const tooSmall = await Model.loadProgram(program, dir, { backend: 'cpu', quantize: 'q4', memoryAvailable: q4 - 1 }).catch((e: unknown) => e);
    expect((tooSmall as RuntimeError).code).toBe('RT146');
    expect((tooSmall as RuntimeError).message).toContain('more memory');
  });

  it('the headers are checked before the backend opens: a wrong shape is RT160, not the backend\'s RT303', async () => {
    // a checkpoint of vocab 96 with the config.json of one of vocab 97: the embedding's shape is wrong
    const dir = join(work, 'wrong'), other = join(work, 'other');
    mkdirSync(dir);
    mkdirSync(other);
    writeCheckpoint(dir, { vocab: 96 }, { dtype: 'f32', seed: 1 });
    writeCheckpoint(other, { vocab: 97 }, { dtype: 'f32', seed: 1 });
    copyFileSync(join(other, 'config.json'), join(dir, 'config.json'));
    const err = await Model.loadProgram(programFor(dir), dir, { backend: 'wasm' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(['RT160', 'RT164']).toContain((err as RuntimeError).code);
  });
});

describe('weights loaded unchanged', () => {
  const cases: [string, string, LoadOptions][] = [];
  for (const d of ['f32', 'bf16']) {
    cases.push([`tiny-bamba-a ${d} wasm`, join('TINY', d), { backend: 'wasm', threads: 2 }]);
    cases.push([`tiny-bamba-a ${d} cpu 2 threads`, join('TINY', d), { backend: 'cpu', threads: 2 }]);
  }
  // the reference quantiser reads through the reused buffer; the wasm one's workers read a local
  // file themselves (test/e2e/quantizer-load.test.ts: its model is the reference's, bit for bit)
  cases.push(['tiny-bamba-a bf16 wasm q4', join('TINY', 'bf16'), { backend: 'wasm', threads: 2, quantize: 'q4', quantizer: 'js' }]);
  cases.push(['tiny-bamba-a f32 cpu q8', join('TINY', 'f32'), { backend: 'cpu', threads: 1, quantize: 'q8', quantizer: 'js' }]);
  cases.push(['tiny-bamba-a f32 cpu 1 thread', join('TINY', 'f32'), { backend: 'cpu', threads: 1 }]);
  cases.push(['tiny-bamba-a f32 wasm 1 thread', join('TINY', 'f32'), { backend: 'wasm', threads: 1 }]);
  cases.push(['random bf16 wasm', 'RANDOM', { backend: 'wasm', threads: 2 }]);
  cases.push(['random bf16 cpu 2 threads', 'RANDOM', { backend: 'cpu', threads: 2 }]);
  it.each(cases)('%s: logits bit for bit those of fresh memory per tensor, and close to the CPU reference', async (what, where, opts) => {
    const dir = where === 'RANDOM' ? random : join(TINY_A, where.slice(5));
    const pooled = poolReads();
    const streamed = await load(dir, opts).finally(() => pooled.restore());
    // tiny-bamba-a f32's largest tensors pass through the load pool when nothing is quantised
    if (where === join('TINY', 'f32') && !opts.quantize) expect(pooled.n, `${what}: tensors the load pool read`).toBeGreaterThan(0);
    const given = { n: 0 };
    const fresh = await loadFresh(dir, opts, given);
    // (the cpu backend on one thread keeps every tensor in memory of its own: none is)
    if (opts.backend !== 'cpu' || opts.threads !== 1 || opts.quantize) expect(given.n, `${what}: tensors read into a reused buffer or shared memory`).toBeGreaterThan(0);
    const ref = await load(dir, { backend: 'cpu', threads: 1 });
    try {
      const a = logits(streamed, 5), b = logits(fresh, 5), r = logits(ref, 5);
      let differ = -1;
      for (let i = 0; i < a.length && differ < 0; i++) if (!Object.is(a[i], b[i])) differ = i;
      expect(differ, `${what}: logit ${differ} is ${a[differ]}, fresh memory gives ${b[differ]}`).toBe(-1);
      // the reference engine on the stored weights; quantised weights are further off
      expectLogitsClose(a, r, opts.quantize ? 0.5 : 1e-4, what, streamed.vocab);
    } finally {
      streamed.dispose();
      fresh.dispose();
      ref.dispose();
    }
  });
});

describe('non-finite weights through the load pool', () => {
  it('RT144 names the tensor, the count and the first value as the loading thread says it; checkWeights: false loads', async () => {
    // tiny-bamba-a f32 with a NaN and an infinity in a tensor of over 1 MiB (read by the load pool)
    const src = join(TINY_A, 'f32'), dir = join(work, 'nan');
    mkdirSync(dir);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(dir, f));
    const ckpt = openCheckpoint(join(src, 'model.safetensors'));
    const name = [...ckpt.tensors.values()].find((t) => t.end - t.begin >= 1 << 20 && t.name.includes('in_proj'))!.name;
    const tensors: NamedTensor[] = [...ckpt.tensors.keys()].map((n) => ({ name: n, tensor: ckpt.read(n) }));
    ckpt.close();
    const data = tensors.find((t) => t.name === name)!.tensor.data as Float32Array;
    data[data.length - 3] = Infinity;
    data[777] = NaN;
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const message = async (opts: LoadOptions, pool = true) => {
      const noPool = pool ? null : vi.spyOn(LoadPool, 'start').mockReturnValue(null as unknown as LoadPool);
      const e = await load(dir, opts).then(() => null, (x: unknown) => x).finally(() => noPool?.mockRestore());
      expect(e, JSON.stringify(opts)).toBeInstanceOf(RuntimeError);
      expect((e as RuntimeError).code).toBe('RT144');
      return (e as RuntimeError).message;
    };
    const want = await message({ backend: 'cpu', threads: 1 }, false);
    expect(want).toContain(name);
    expect(want).toMatch(/\b2\b.*NaN.*777/s);
    for (const opts of [{ backend: 'cpu', threads: 2 }, { backend: 'cpu', threads: 1 }, { backend: 'wasm', threads: 2 }, { backend: 'wasm', threads: 1 }] as LoadOptions[]) {
      expect(await message(opts), JSON.stringify(opts)).toBe(want);
    }
    const m = await load(dir, { backend: 'wasm', threads: 2, checkWeights: false });
    m.dispose();
  });
});
