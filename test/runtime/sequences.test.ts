// The sequence-state API refuses what its caller gets wrong, with a code, before it touches a slot:
// released, foreign and forged handles (generation counters), restored blobs (header, sizes, length,
// finite values; no slot leaked on refusal), ids and positions (integers in range), too many tokens
// (before allocating), too many live sequences; and slots of dropped handles come back (abandoned
// `generate` iterators). The same on the CPU engine and the wasm backend with its program module
// (where a forged slot used to reach the shared memory).

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { Model, type SequenceState } from '../../runtime/model.ts';
import { SAVED_HEADER_BYTES } from '../../runtime/sequences.ts';
import { makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { expectRuntimeError } from '../helpers/errors.ts';

let dir: string;
const models: Record<string, Model> = {};

beforeAll(async () => {
  dir = makeDir('archc-seq-');
  // attention at 0 and 2, Mamba at 1 and 3: KV caches, conv windows and SSM states in a slot
  writeCheckpoint(dir, { attn_layers: [0, 2] }, { seed: 5 });
  const program = programFor(dir);
  models.cpu = await Model.loadProgram(program, dir, { threads: 1, capacity: 24, maxSequences: 6 });
  models.wasm = await Model.loadProgram(program, dir, {
    backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 1, capacity: 24, maxSequences: 6,
  });
}, 120_000);
afterAll(() => {
  for (const m of Object.values(models)) m.dispose();
  removeDir(dir);
});

describe.each(['cpu', 'wasm'])('sequence handles on %s', (name) => {
  const m = () => models[name]!;

  afterEach(() => expect(m().openSequences, 'a test left sequences open').toBe(0));

  it("decodeAsync's view: the copy's values without a copy, until the model next runs", async () => {
    const x = m().newSequence();
    m().decode([2], [x]);
    const y = m().copySequence(x), z = m().copySequence(x);
    const view = await m().decodeAsync([3], [x], { view: true });
    const got = Array.from(view);
    const copy = await m().decodeAsync([3], [y]);
    expect(got).toEqual(Array.from(copy));
    // the next run (another token) overwrites it: the view shows that run's logits, the copy keeps its own
    const other = await m().decodeAsync([5], [z]);
    expect(Array.from(other)).not.toEqual(got);
    expect(Array.from(view)).toEqual(Array.from(other));
    expect(Array.from(copy)).toEqual(got);
    for (const s of [x, y, z]) m().releaseSequence(s);
  });

  it('a released handle is refused everywhere (RT330), also after its slot is reused', () => {
    const a = m().newSequence();
    m().decode([3], [a]);
    m().releaseSequence(a);
    const b = m().newSequence();
    expect(b.slot).toBe(a.slot); // the slot now belongs to b
    const c = m().copySequence(b);
    const before = Array.from(m().decode([4], [c]));
    m().releaseSequence(c);
    expectRuntimeError(() => m().decode([1], [a]), 'RT330', 'decode', 'released');
    expectRuntimeError(() => m().step([[1, 2]], [a]), 'RT330', 'step');
    expectRuntimeError(() => m().copySequence(a), 'RT330', 'copySequence');
    expectRuntimeError(() => m().saveSequence(a), 'RT330', 'saveSequence');
    expectRuntimeError(() => m().releaseSequence(a), 'RT330', 'releaseSequence');
    // b is untouched: it continues as its copy did
    expect(b.length).toBe(0);
    expect(Array.from(m().decode([4], [b]))).toEqual(before);
    m().releaseSequence(b);
  });

  it('a handle of another model (RT331) or a forged one (RT332) never reaches a slot', () => {
    const other = models[name === 'cpu' ? 'wasm' : 'cpu']!;
    const s = other.newSequence();
    expectRuntimeError(() => m().decode([1], [s]), 'RT331', 'another model');
    expectRuntimeError(() => m().releaseSequence(s), 'RT331');
    other.releaseSequence(s);
    const mine = m().newSequence();
    const forged = [{ ...mine, slot: 1e6 }, { slot: 0, length: 0, capacity: 24 }, null, 7, 'slot'] as unknown as SequenceState[];
    for (const f of forged) expectRuntimeError(() => m().decode([1], [f]), 'RT332', 'decode', 'not a sequence');
    // a handle is frozen: its fields cannot be forged in place
    expect(() => { (mine as { slot: number }).slot = 9; }).toThrow(TypeError);
    expect(mine.slot).not.toBe(9);
    m().releaseSequence(mine);
  });

  it('ids, positions, cu_seqlens and labels: integers in range, checked before they become i32 (RT300, RT304, RT301, RT320)', () => {
    const s = m().newSequence();
    for (const id of [NaN, -1, 1.5, 2 ** 32 + 3, m().vocab, Infinity]) expectRuntimeError(() => m().decode([id], [s]), 'RT300', String(id));
    expectRuntimeError(() => m().step([[1, 2 ** 31]], [s]), 'RT300', '2147483648');
    expectRuntimeError(() => m().forward({ ids: [1, NaN] }), 'RT300', 'NaN');
    for (const p of [-5, 1.5, NaN, 24, 2 ** 32]) expectRuntimeError(() => m().forward({ ids: [1, 2], positions: [0, p] }), 'RT304', 'position', String(p));
    expectRuntimeError(() => m().forward({ ids: [1, 2, 3], cuSeqlens: [0, 1.5, 3] }), 'RT301', 'integers');
    for (const y of [NaN, 1.5, 2 ** 32 + 1]) expectRuntimeError(() => m().forward({ ids: [1, 2], labels: [1, y] }), 'RT320', String(y));
    expect(s.length).toBe(0); // nothing ran
    m().releaseSequence(s);
  });

  it('too many tokens is refused before allocating (RT302, RT305)', () => {
    expectRuntimeError(() => m().forward({ ids: new Array(2 ** 20).fill(1) }), 'RT302', 'capacity 24');
    // 2^20 one-token sequences fit the capacity: their arena does not fit one typed array
    expectRuntimeError(() => m().forward({ ids: { length: 2 ** 31 } as unknown as number[] }), 'RT305', 'run-bytes');
    expectRuntimeError(() => m().forward({ ids: { length: 2 ** 60 } as unknown as number[] }), 'RT301', 'must be an array');
    const s = m().newSequence();
    expectRuntimeError(() => m().step([{ length: 2 ** 40 } as unknown as number[]], [s]), 'RT302', 'capacity 24');
    m().releaseSequence(s);
  });

  it('restored blobs are checked whole (RT335, RT336) and a refusal takes no slot', () => {
    const s = m().newSequence();
    m().step([randomIds(5, m().vocab, 1)], [s]);
    const saved = m().saveSequence(s);
    const open = m().openSequences;
    const edit = (f: (b: Uint8Array, d: DataView) => void) => {
      const b = saved.bytes.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const cases: [unknown, string, string][] = [
      [{ length: -3, bytes: saved.bytes }, 'RT335', 'length -3'],
      [{ length: NaN, bytes: saved.bytes }, 'RT335', 'length NaN'],
      [{ length: 5.5, bytes: saved.bytes }, 'RT335', 'length 5.5'],
      [{ length: 5, bytes: new Uint8Array(12) }, 'RT335', 'shorter than the 48-byte header'],
      [{ length: 5, bytes: saved.bytes.subarray(0, saved.bytes.length - 4) }, 'RT335', 'bytes, expected'],
      [{ length: 5, bytes: edit((b) => { b[0] = 0; }) }, 'RT335', 'no archcseq header'],
      [{ length: 5, bytes: edit((_, d) => d.setUint32(8, 9, true)) }, 'RT335', 'version 9'],
      [{ length: 5, bytes: edit((_, d) => d.setUint32(36, 1, true)) }, 'RT335', 'another program'],
      [{ length: 5, bytes: edit((_, d) => d.setUint32(24, 12, true)) }, 'RT335', 'gives 12 bytes of state'],
      [{ length: 99, bytes: edit((_, d) => d.setUint32(16, 99, true)) }, 'RT335', 'length 99 is over the capacity 24'],
      [{ length: 5, bytes: edit((_, d) => d.setFloat32(SAVED_HEADER_BYTES + 40, NaN, true)) }, 'RT336', 'NaN at float 10'],
      [{ length: 5, bytes: edit((_, d) => d.setFloat32(d.byteLength - 4, -Infinity, true)) }, 'RT336', '-Infinity'],
      [{ length: 5, bytes: [1, 2, 3] }, 'RT335', 'Uint8Array'],
      [null, 'RT335', 'Uint8Array'],
    ];
    for (const [blob, code, text] of cases) {
      expectRuntimeError(() => m().restoreSequence(blob as never), code, text);
      expect(m().openSequences).toBe(open);
    }
    // the blob itself restores, and continues like the original
    const r = m().restoreSequence(saved);
    expect(r.length).toBe(5);
    expect(Array.from(m().decode([7], [r]))).toEqual(Array.from(m().decode([7], [s])));
    m().releaseSequence(r);
    m().releaseSequence(s);
  });

  it('a saved sequence holds what it holds, not the whole slot, and restores into a larger capacity', async () => {
    const s = m().newSequence();
    m().step([randomIds(3, m().vocab, 2)], [s]);
    const short = m().saveSequence(s);
    m().step([randomIds(9, m().vocab, 3)], [s]);
    const long = m().saveSequence(s);
    // two attention layers: each token adds its K and V rows; the rest is the same size
    const rows = (long.bytes.length - short.bytes.length) / 9;
    expect(rows).toBeGreaterThan(0);
    expect(short.bytes.length).toBeLessThan(SAVED_HEADER_BYTES + m().slotBytes);
    expect(SAVED_HEADER_BYTES + m().slotBytes - long.bytes.length).toBe(rows * (24 - 12));
    const wide = await Model.loadProgram(m().program, dir, { threads: 1, capacity: 48, backend: name as 'cpu' | 'wasm',
      ...(name === 'wasm' ? { wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(m().program) } : {}) });
    try {
      const r = wide.restoreSequence(long);
      expect(r.length).toBe(12);
      expect(Array.from(wide.decode([7], [r]))).toEqual(Array.from(m().decode([7], [s])));
      wide.releaseSequence(r);
    } finally {
      wide.dispose();
    }
    m().releaseSequence(s);
  });

  it('live sequences are bounded (RT333); prefill takes all its slots or none', () => {
    const held = Array.from({ length: 6 }, () => m().newSequence());
    expectRuntimeError(() => m().newSequence(), 'RT333', 'maxSequences = 6');
    expectRuntimeError(() => m().copySequence(held[0]!), 'RT333');
    m().releaseSequence(held.pop()!);
    m().releaseSequence(held.pop()!);
    expectRuntimeError(() => m().prefill([[1], [2], [3]]), 'RT333', '4 open and 3 more');
    expect(m().openSequences).toBe(4);
    // a prefill that fails on its inputs gives its slots back
    expectRuntimeError(() => m().prefill([[1], [NaN]]), 'RT300');
    expect(m().openSequences).toBe(4);
    for (const s of held) m().releaseSequence(s);
    expect(m().openSequences).toBe(0);
  });

  it('generate: an iterator stopped early frees its slot; an abandoned one frees it when collected', async () => {
    const gen = m().generate([1, 2, 3], { maxTokens: 5, temperature: 0 });
    for await (const _ of gen) break; // return() runs the generator's finally
    expect(m().openSequences).toBe(0);
    // six iterators that each took a token and were dropped hold every slot …
    const dropped = async () => {
      for (let i = 0; i < 6; i++) await m().generate([1, 2], { maxTokens: 5, temperature: 0 }).next();
    };
    await dropped();
    expect(m().openSequences).toBe(6);
    // … until they are collected
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    for (let i = 0; i < 20 && m().openSequences > 0; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(m().openSequences).toBe(0);
    const s = m().newSequence();
    m().releaseSequence(s);
  });

  it('generate: a prompt and maxTokens over the capacity are refused up front (RT307), or stop at it with stopAtContext', async () => {
    const ids = async (prompt: number[], opts: object) => {
      const out: number[] = [];
      for await (const t of m().generate(prompt, { temperature: 0, stop: [], ...opts })) if (t.id >= 0) out.push(t.id);
      return out;
    };
    const refused = async (prompt: number[], opts: object) => {
      const gen = m().generate(prompt, { temperature: 0, stop: [], ...opts });
      const err = await gen.next().then(() => null, (e: unknown) => e);
      expectRuntimeError(() => { throw err; }, 'RT307', 'capacity 24', 'capacity', '--capacity', 'stopAtContext');
      expect(m().openSequences).toBe(0);
    };
    // capacity 24: 3 prompt tokens and 22 generated fit (the last generated token is never fed back)
    const full = await ids([1, 2, 3], { maxTokens: 22 });
    expect(full).toHaveLength(22);
    // one more is refused before the first token, not broken off midway with RT302
    await refused([1, 2, 3], { maxTokens: 23 });
    await refused([1, 2, 3], { maxTokens: 400 });
    // stopAtContext: the same tokens, ended cleanly at the capacity
    expect(await ids([1, 2, 3], { maxTokens: 400, stopAtContext: true })).toEqual(full);
    expect(await ids(Array.from({ length: 24 }, (_, i) => i % 7), { maxTokens: 5, stopAtContext: true })).toHaveLength(1);
    // a prompt over the capacity has nothing to stop at
    await refused(Array.from({ length: 25 }, (_, i) => i % 7), { maxTokens: 1, stopAtContext: true });
  });
});

describe('a disposed model', () => {
  it('refuses its handles (RT334)', async () => {
    const m = await Model.loadProgram(programFor(dir), dir, { threads: 1, capacity: 8 });
    const s = m.newSequence();
    m.dispose();
    expectRuntimeError(() => m.decode([1], [s]), 'RT334', 'disposed');
  });

  it('refuses a bad maxSequences at load (RT303)', async () => {
    for (const n of [0, -1, 1.5, NaN]) {
      await expect(Model.loadProgram(programFor(dir), dir, { threads: 1, maxSequences: n })).rejects.toThrow(/RT303: unsupported maxSequences/);
    }
  });
});
