// Random call sequences over the sequence-state API (seeded, by count) on the CPU engine and the wasm
// backend with its program module: new, copy, save, restore (of damaged blobs too), release (twice
// too), decode, step, prefill and forward with hostile ids, positions, cu_seqlens, labels, lengths and handles (released,
// forged, of the other model). Every call either returns finite logits or throws a coded RuntimeError,
// and the model's count of open sequences always equals the handles made and not released.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { RUNTIME_MESSAGES, RuntimeError } from '../../runtime/errors.ts';
import { Model, type SavedSequence, type SequenceState } from '../../runtime/model.ts';
import { SAVED_HEADER_BYTES } from '../../runtime/sequences.ts';
import { makeDir, programFor, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { prng } from '../helpers/random.ts';

const SEED = Number(process.env.ARCHC_SEQ_FUZZ_SEED ?? 20261206);
/** ARCHC_SEQ_FUZZ_CALLS runs a longer campaign (the CI count is 600 per backend). */
const CALLS = Number(process.env.ARCHC_SEQ_FUZZ_CALLS ?? 600);
const CAPACITY = 16;

let dir: string;
const models: Record<string, Model> = {};

beforeAll(async () => {
  dir = makeDir('archc-seqfuzz-');
  writeCheckpoint(dir, { attn_layers: [0, 2] }, { seed: 8 });
  const program = programFor(dir);
  const opts = { threads: 1, capacity: CAPACITY, maxSequences: 8 } as const;
  models.cpu = await Model.loadProgram(program, dir, opts);
  models.wasm = await Model.loadProgram(program, dir, { ...opts, backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program) });
}, 120_000);
afterAll(() => {
  for (const m of Object.values(models)) m.dispose();
  removeDir(dir);
});

describe.each(['cpu', 'wasm'])('sequence API fuzz on %s', (name) => {
  it(`${CALLS} random calls: finite logits or coded errors; open sequences counted exactly`, () => {
    const m = models[name]!;
    const other = models[name === 'cpu' ? 'wasm' : 'cpu']!;
    const r = prng(SEED + (name === 'cpu' ? 0 : 1));
    const int = (n: number) => Math.floor(r() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const V = m.vocab;
    const handles: SequenceState[] = [];
    const live = new Set<SequenceState>();
    const blobs: SavedSequence[] = [];
    const codes = new Map<string, number>();
    let logits = 0;

    const id = () => (r() < 0.97 ? int(V) : pick([NaN, -1, V, 1.5, 2 ** 32 + 1, -(2 ** 31), Infinity, '3' as unknown as number]));
    const ids = (n: number) => Array.from({ length: n }, id);
    const handle = (): SequenceState => {
      const k = r();
      if (k < 0.75 && live.size) return pick([...live]);
      if (k < 0.85 && handles.length) return pick(handles);
      if (k < 0.92) return { slot: int(4), length: int(4), capacity: CAPACITY };
      const s = other.newSequence();
      other.releaseSequence(s); // released there, and of another model here
      return s;
    };
    const damaged = (b: SavedSequence): SavedSequence => {
      const bytes = b.bytes.slice();
      const d = new DataView(bytes.buffer);
      switch (int(6)) {
        case 0: return b;
        case 1: bytes[int(SAVED_HEADER_BYTES)] ^= 1 << int(8); return { length: b.length, bytes };
        case 2: d.setFloat32(SAVED_HEADER_BYTES + 4 * int((bytes.length - SAVED_HEADER_BYTES) / 4), pick([NaN, Infinity, -Infinity]), true); return { length: b.length, bytes };
        case 3: return { length: pick([-1, NaN, 0.5, CAPACITY + 1, b.length + 1]), bytes: b.bytes };
        case 4: return { length: b.length, bytes: b.bytes.subarray(0, int(b.bytes.length)) };
        default: return { length: b.length, bytes: new Uint8Array(int(64)) };
      }
    };
    const made = (s: SequenceState) => { handles.push(s); live.add(s); };
    const finite = (l: Float32Array) => {
      expect(l.every(Number.isFinite), 'logits must be finite').toBe(true);
      logits++;
    };

    const ops: (() => void)[] = [
      () => made(m.newSequence()),
      () => { const s = pick([...live]); if (s) { m.releaseSequence(s); live.delete(s); } },
      () => { const s = handle(); finite(m.step([ids(1 + int(CAPACITY))], [s])); },
      () => made(m.copySequence(handle())),
      () => { const s = handle(); m.releaseSequence(s); live.delete(s); },
      () => blobs.push(m.saveSequence(handle())),
      () => made(m.restoreSequence(blobs.length ? damaged(pick(blobs)) : { length: 0, bytes: new Uint8Array(4) })),
      () => { const n = 1 + int(3); finite(m.decode(ids(n), Array.from({ length: n }, handle))); },
      () => { const n = 1 + int(2); finite(m.step(Array.from({ length: n }, () => ids(int(5))), Array.from({ length: n }, handle), r() < 0.5)); },
      () => { const p = m.prefill(Array.from({ length: 1 + int(2) }, () => ids(1 + int(4)))); p.states.forEach(made); p.logits.forEach(finite); },
      () => {
        const T = 1 + int(2 * CAPACITY);
        const positions = r() < 0.5 ? undefined : Array.from({ length: T }, (_, t) => (r() < 0.95 ? t % 7 : pick([-1, 1.5, CAPACITY, NaN])));
        const labels = r() < 0.7 ? undefined : Array.from({ length: T }, () => (r() < 0.9 ? int(V) : pick([-100, -1, NaN, 1.5, V, 2 ** 32])));
        const cuSeqlens = positions || r() < 0.7 ? undefined : [0, ...(T > 2 ? [pick([1, T >> 1, 1.5, T, -1])] : []), T];
        const out = m.forward({ ids: ids(T), positions, labels, cuSeqlens });
        finite(out.logits);
        // NaN only when no label is counted (each label t ≥ 1 not -100 is the target of row t - 1)
        if (labels) expect(Number.isFinite(out.loss) || labels.slice(1).every((y) => y === -100)).toBe(true);
      },
    ];
    for (let i = 0; i < CALLS; i++) {
      try {
        pick(ops)();
      } catch (e) {
        if (!(e instanceof RuntimeError)) throw new Error(`call ${i}: not a RuntimeError: ${String(e)}`, { cause: e });
        expect(Object.keys(RUNTIME_MESSAGES)).toContain(e.code);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
      expect(m.openSequences, `call ${i}`).toBe(live.size);
    }
    // the run reached the refusals it is about, and also ran the model
    for (const c of ['RT300', 'RT302', 'RT330', 'RT331', 'RT332', 'RT333', 'RT335']) expect(codes.get(c) ?? 0, `${c} in ${[...codes]}`).toBeGreaterThan(0);
    expect(logits).toBeGreaterThan(CALLS / 10);
    if (process.env.ARCHC_SEQ_FUZZ_CALLS) console.log(`${name}: ${CALLS} calls, ${logits} logits finite, refusals ${JSON.stringify(Object.fromEntries([...codes].sort()))}`);
    for (const s of live) m.releaseSequence(s);
    expect(m.openSequences).toBe(0);
  }, 300_000);
});
