// The CUDA backend's decode steps as CUDA Graphs (runtime/cuda/graph.ts), against the stand-in
// libcuda (test/helpers/fake-cuda/libcuda.c), which records a capture's launches into a graph, runs
// them when the graph is launched, refuses what a driver refuses during a capture, and logs every
// launch that runs (its function, dims, argument bytes and the tokens its arguments point to, read
// as it runs). So: a step is captured once per shape, replayed after, captured again when its
// launches change (the pool or the arena grown); a replay runs exactly what launching the step
// directly runs; graphs are off by load option or ARCHC_CUDA_GRAPHS=0; a failing call is named.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { renderProgram } from '../../codegen/cuda/build.ts';
import { runEntry } from '../../runtime/backend.ts';
import { ARGS_FIELDS } from '../../runtime/cuda/abi.ts';
import { type CudaBackend, openCudaBackend } from '../../runtime/cuda/backend.ts';
import { GRAPH_SHAPES } from '../../runtime/cuda/graph.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { Model } from '../../runtime/model.ts';
import type { StatePool } from '../../runtime/backend.ts';
import { compileTiny, makeDir, randomTensors, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { type FakeCuda, fakeCuda, fakeKernels, withPhases } from '../helpers/fake-cuda.ts';

const compiled = compileTiny();
const program = lowerToProgram(compiled.graph, compiled.bindings);
const tensors = randomTensors(compiled, { dtype: 'bf16', seed: 5 });
const rendered = renderProgram(program);
const kernels = fakeKernels(rendered);
const decodeLaunches = program.entries.decode.kernels.length;

describe('CUDA Graphs for decode steps', () => {
  let fake: FakeCuda;
  beforeAll(async () => {
    fake = await fakeCuda();
    process.env.FAKE_CUDA_TOKENS_AT = String(8 * ARGS_FIELDS.indexOf('tokens'));
  }, 60_000);
  afterEach(() => {
    delete process.env.FAKE_CUDA_FAIL;
    delete process.env.ARCHC_CUDA_GRAPHS;
  });

  async function open(graphs?: boolean, ks = kernels): Promise<CudaBackend> {
    const b = await openCudaBackend(program, { library: fake.lib, kernels: ks, ...(graphs === undefined ? {} : { graphs }) });
    for (const w of program.weights) b.uploadWeight(w, tensors.find((t) => t.name === w.name)!.tensor);
    return b;
  }

  /** One decode step of the sequences in `slots`, one token each; the launches it ran, from the log. */
  function step(b: CudaBackend, pool: StatePool, tokens: readonly number[], slots: readonly number[]): [number, bigint] {
    fake.runLog(true);
    runEntry(b, program, 'decode', {
      tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, () => 3), seqs: tokens.map((_, i) => ({ start: i, len: 1 })),
      slots, lengths: slots.map(() => 3),
    }, pool);
    return fake.runLog();
  }

  it('captures a step once per shape, replays it, captures again when its launches change; a replay runs what direct launches run', async () => {
    const b = await open();
    try {
      const pool = b.createStatePool(64);
      const slots = [pool.acquire(), pool.acquire()];
      const g0 = fake.graphs();
      const delta = () => fake.graphs().map((x, i) => x - g0[i]!);
      step(b, pool, [5], [slots[0]!]);
      expect(b.graphs!.counts).toEqual({ captures: 1, replays: 0 });
      const g8 = step(b, pool, [8], [slots[0]!]);
      const g9 = step(b, pool, [9], [slots[0]!]);
      expect(b.graphs!.counts).toEqual({ captures: 1, replays: 2 });
      // [begun, instantiated, graph launches, alive, capturing]
      expect(delta()).toEqual([1, 1, 3, 1, 0]);
      expect(g8[0]).toBeGreaterThan(decodeLaunches / 2);
      // the same steps launched one by one: the same launches ran, each seeing its own step's token
      b.useGraphs(false);
      expect(delta()[3]).toBe(0);
      expect(step(b, pool, [8], [slots[0]!])).toEqual(g8);
      expect(step(b, pool, [9], [slots[0]!])).toEqual(g9);
      expect(g9[1]).not.toBe(g8[1]);
      expect(delta()[2]).toBe(3);

      b.useGraphs(true);
      const d8 = step(b, pool, [8], [slots[0]!]);
      expect(d8).toEqual(g8);
      // another shape gets its own graph, and both are kept; its larger arena moved the first
      // shape's views, so that one is captured again, once
      const two = step(b, pool, [1, 2], slots);
      expect(step(b, pool, [1, 2], slots)).toEqual(two);
      const moved8 = step(b, pool, [8], [slots[0]!]);
      expect(moved8[1]).not.toBe(g8[1]);
      expect(step(b, pool, [8], [slots[0]!])).toEqual(moved8);
      expect(step(b, pool, [1, 2], slots)).toEqual(two);
      expect(b.graphs!.counts).toEqual({ captures: 3, replays: 3 });
      expect(delta()[3]).toBe(2);

      // the pool grows (a third slot): its address moves, so the step is captured again, and runs
      // what the direct launches run at the new address
      pool.acquire();
      const moved = step(b, pool, [8], [slots[0]!]);
      expect(b.graphs!.counts).toEqual({ captures: 4, replays: 3 });
      expect(moved[1]).not.toBe(moved8[1]);
      const args = new Uint8Array(1024);
      fake.last(new Uint8Array(128), new Uint32Array(6), args);
      expect(new DataView(args.buffer).getBigUint64(8 * ARGS_FIELDS.indexOf('pool'), true)).toBe((pool as unknown as { reserve(): bigint }).reserve());
      expect(delta()[3]).toBe(2);
      // a prefill longer than any step so far grows the arena they share: captured again
      runEntry(b, program, 'prefill', { tokens: Int32Array.from({ length: 40 }, (_, i) => i % 7), positions: Int32Array.from({ length: 40 }, (_, i) => i), seqs: [{ start: 0, len: 40 }], slots: [slots[1]!], lengths: [0] }, pool);
      step(b, pool, [8], [slots[0]!]);
      expect(b.graphs!.counts).toEqual({ captures: 5, replays: 3 });
      const direct = (() => { b.useGraphs(false); const r = step(b, pool, [8], [slots[0]!]); b.useGraphs(true); return r; })();
      expect(step(b, pool, [8], [slots[0]!])).toEqual(direct);
      expect(step(b, pool, [8], [slots[0]!])).toEqual(direct);
      expect(b.graphs!.counts).toEqual({ captures: 1, replays: 1 });
    } finally {
      b.dispose();
    }
  });

  it('a step with a kernel of phases (96 KiB of shared memory, a workspace): its limit raised before the capture, the replay running what direct launches run', async () => {
    const b = await open(true, (['forward', 'prefill', 'decode'] as const).reduce((ks, e) => withPhases(ks, e), kernels));
    try {
      const pool = b.createStatePool(8);
      const s = [pool.acquire(), pool.acquire()];
      const first = step(b, pool, [3, 4], s);
      expect(step(b, pool, [3, 4], s)).toEqual(first);
      expect(b.graphs!.counts).toEqual({ captures: 1, replays: 1 });
      const name = new Uint8Array(128), dims = new Uint32Array(6), args = new Uint8Array(1024);
      fake.last(name, dims, args);
      expect(new TextDecoder().decode(name.subarray(0, name.indexOf(0)))).toMatch(/^archc_two_/);
      expect(new DataView(args.buffer).getBigUint64(8 * ARGS_FIELDS.indexOf('scratch'), true)).toBe(b.scratch.ptr);
      b.useGraphs(false);
      expect(step(b, pool, [3, 4], s)).toEqual(first);
    } finally {
      b.dispose();
    }
  });

  it('a step written to first is still one graph; one dispatched out of order is launched kernel by kernel, in its order', async () => {
    const b = await open(true);
    try {
      const pool = b.createStatePool(8);
      const entry = program.entries.decode, logits = entry.outputs.logits!;
      const batch = { tokens: Int32Array.of(5), positions: Int32Array.of(0), seqs: [{ start: 0, len: 1 }], slots: [pool.acquire()], lengths: [0] };
      const inv = b.begin(entry, batch, pool);
      inv.write(logits, new Float32Array(logits.width).fill(Number.NaN));
      for (const k of entry.kernels) inv.dispatch(k);
      inv.read(logits);
      expect(b.graphs!.counts).toEqual({ captures: 1, replays: 0 });
      const begun = fake.graphs()[0];
      fake.runLog(true);
      const name = new Uint8Array(128), dims = new Uint32Array(6), args = new Uint8Array(1024);
      const backwards = b.begin(entry, batch, pool);
      for (const k of [...entry.kernels].reverse()) backwards.dispatch(k);
      backwards.read(logits);
      expect(fake.graphs()[0]).toBe(begun);
      expect(b.graphs!.counts).toEqual({ captures: 1, replays: 0 });
      expect(fake.runLog()[0]).toBeGreaterThan(decodeLaunches / 2);
      // the last launch run: the first kernel's
      fake.last(name, dims, args);
      expect(new TextDecoder().decode(name.subarray(0, name.indexOf(0)))).toMatch(new RegExp(`_${rendered.find((r) => r.entry === 'decode' && r.index === 0 && r.format === 'bf16')!.id}$`));
    } finally {
      b.dispose();
    }
  });

  it(`keeps ${GRAPH_SHAPES} shapes' graphs, dropping the one used longest ago; frees them all at dispose`, async () => {
    const b = await open(true);
    const alive = fake.graphs()[3]!;
    try {
      const pool = b.createStatePool(8);
      const slots = Array.from({ length: GRAPH_SHAPES + 1 }, () => pool.acquire());
      const batch = (n: number) => step(b, pool, slots.slice(0, n).map((s) => s + 1), slots.slice(0, n));
      // the largest first (the arena then moves no more), used longest ago once the others are
      for (const n of [GRAPH_SHAPES + 1, ...Array.from({ length: GRAPH_SHAPES }, (_, i) => i + 1)]) batch(n);
      expect(b.graphs!.counts).toEqual({ captures: GRAPH_SHAPES + 1, replays: 0 });
      expect(fake.graphs()[3]! - alive).toBe(GRAPH_SHAPES);
      batch(2);
      expect(b.graphs!.counts).toEqual({ captures: GRAPH_SHAPES + 1, replays: 1 });
      batch(GRAPH_SHAPES + 1);
      expect(b.graphs!.counts).toEqual({ captures: GRAPH_SHAPES + 2, replays: 1 });
      expect(fake.graphs()[3]! - alive).toBe(GRAPH_SHAPES);
    } finally {
      b.dispose();
    }
    expect(fake.graphs()[3]).toBe(alive);
  });

  it('is off with the load option graphs: false, or ARCHC_CUDA_GRAPHS=0; on by default through Model.load', async () => {
    for (const b of [await open(false), await (async () => { process.env.ARCHC_CUDA_GRAPHS = '0'; return open(); })()]) {
      try {
        expect(b.graphs).toBeNull();
        const pool = b.createStatePool(4);
        const begun = fake.graphs()[0];
        expect(step(b, pool, [4], [pool.acquire()])[0]).toBeGreaterThan(decodeLaunches / 2);
        expect(fake.graphs()[0]).toBe(begun);
      } finally {
        b.dispose();
      }
    }
    delete process.env.ARCHC_CUDA_GRAPHS;
    const dir = makeDir();
    try {
      writeCheckpoint(dir);
      for (const graphs of [undefined, false]) {
        const m = await Model.loadProgram(program, dir, { backend: 'cuda', cuda: { library: fake.lib, kernels, graphs } });
        try {
          const begun = fake.graphs()[0]!;
          const { states } = m.prefill([[1, 2, 3]]);
          const a = m.decode([4], states);
          m.decode([5], states);
          expect(a.length).toBe(program.outputs.logits);
          expect(fake.graphs()[0]! - begun).toBe(graphs === false ? 0 : 1);
        } finally {
          m.dispose();
        }
      }
    } finally {
      removeDir(dir);
    }
  });

  it('a failing call during capture: RT704 naming it and the step, the stream out of capture, nothing leaked', async () => {
    const b = await open(true);
    try {
      const pool = b.createStatePool(4);
      const s = pool.acquire();
      const alive = fake.graphs()[3];
      for (const [fn, named, error] of [
        ['cuStreamBeginCapture', /cuStreamBeginCapture\(decode T=1 S=1\)/, /CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED \(900\)/],
        ['cuLaunchKernel', /cuLaunchKernel\(model\./, /CUDA_ERROR_INVALID_VALUE \(1\)/],
        ['cuGraphInstantiateWithFlags', /cuGraphInstantiate\(decode T=1 S=1, \d+ launches\)/, /CUDA_ERROR_INVALID_VALUE/],
        ['cuGraphLaunch', /cuGraphLaunch\(decode T=1 S=1\)/, /CUDA_ERROR_INVALID_VALUE/],
      ] as const) {
        process.env.FAKE_CUDA_FAIL = fn;
        const e = (() => { try { step(b, pool, [3], [s]); return null; } catch (x) { return x; } })();
        expect(e, fn).toBeInstanceOf(RuntimeError);
        expect((e as RuntimeError).code).toBe('RT704');
        expect((e as RuntimeError).message).toMatch(named);
        expect((e as RuntimeError).message).toMatch(error);
        expect(fake.graphs()[4], `${fn}: still capturing`).toBe(0);
        delete process.env.FAKE_CUDA_FAIL;
      }
      // the graph a failed launch left held is kept (cuGraphLaunch failed after the capture): 1
      expect(fake.graphs()[3]! - alive!).toBe(1);
      step(b, pool, [3], [s]);
      step(b, pool, [3], [s]);
      expect(b.graphs!.counts.replays).toBeGreaterThan(0);
    } finally {
      b.dispose();
    }
  });
});
