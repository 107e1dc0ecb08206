// A narrow model with Bamba-9B's shapes where its kernels branch (test/fixtures/configs/bamba-narrow.json):
// Mamba heads of 64 with a state of 128 in one group and chunks of 256, attention heads of 128 with
// GQA (2 query heads on a KV head), products whose K reaches 4,096 (out_proj, after the gated norm)
// and 14,336 (down_proj); width 256, one Mamba and one attention layer (attn_layer_indices [1]),
// a vocabulary of 384. Its CUDA kernels, run on the CPU in the emulator, match the CPU engine within
// 2e-2 of the scale (the tensor-core tiles round x to bf16) — the logits and the state slots (conv
// window, SSM state, KV cache). The emulator runs a 28,672-column gate/up product at ~0.1 G
// multiply-adds a second, so the checks share the work out over two variants of the model:
// - its MLP at 256 (`--set d_ff=256`, the rest as it is): a packed ragged prefill of 264 tokens whose
//   first sequence spans two 256-token chunks and whose others start inside the second; the first
//   sequence's slot saved and restored into another; a decode step of 3 rows, the original and the
//   restored slot of the first sequence (which must agree) and the third;
// - its Mamba layer alone (`--set n_layers=1 attn_layers=[]`) with the MLP of 14,336: a ragged
//   prefill of 17 tokens (the tensor-core tiles: more than 16 rows) and a decode step of 3 rows (the
//   GEMV), both with K = 4,096 and 14,336.
// About 30 s of CPU time with the emulator built (43 s with its build), most of it the emulated
// products; several minutes of wall time on 2 cores at a load average of 16.

import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { compileFile, loadConfig } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { Backend, StatePool } from '../../runtime/backend.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import { createRng } from '../../runtime/rng.ts';
import { BAMBA, randomTensors } from '../helpers/checkpoints.ts';
import { buildEmulator, EmuCudaBackend, programSources, runEntryYielding } from '../helpers/cuda-emu.ts';
import { expectClose } from '../runtime/cpu/check.ts';

const CONFIG = loadConfig(join(import.meta.dirname, '..', 'fixtures', 'configs', 'bamba-narrow.json'));
/** The narrow model (`set`: params overridden), its program and random weights. initWeights' own SSM
 *  (dt in [1e-3, 1e-1]): states decay slowly, so what one chunk passes to the next counts. */
function narrow(set: string[] = []) {
  const compiled = compileFile(BAMBA, { hfConfigData: CONFIG, set });
  const tensors = new Map(randomTensors(compiled, { dtype: 'bf16', seed: 5, plainInit: true }).map((t) => [t.name, t.tensor]));
  return { program: lowerToProgram(compiled.graph, compiled.bindings), tensors };
}
const short = narrow(['d_ff=256']);
const wide = narrow(['n_layers=1', 'attn_layers=[]']);
const VOCAB = 384;

let bin = '';
beforeAll(async () => {
  bin = await buildEmulator(new Map([...programSources(wide.program), ...programSources(short.program)]));
}, 600_000);

/** Within `tol` of the reference's largest magnitude, which must be well away from 0. */
function closeToScale(got: Float32Array, ref: Float32Array, tol: number, what: string): void {
  const scale = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  expect(scale, `${what}: scale`).toBeGreaterThan(1e-3);
  expectClose(got, ref, { atol: tol * scale, rtol: 0 }, what);
}

type Model = ReturnType<typeof narrow>;

/** A prefill of sequences of `lens` on `b`: its logits, and the pool and slots it leaves. */
async function prefill(b: Backend, m: Model, lens: readonly number[]) {
  for (const w of m.program.weights) b.uploadWeight(w, m.tensors.get(w.name)!);
  const rng = createRng(17);
  let start = 0;
  const seqs = lens.map((len) => { const s = { start, len }; start += len; return s; });
  const tokens = Int32Array.from({ length: start }, () => Math.floor(rng.next() * VOCAB));
  const positions = Int32Array.from(seqs.flatMap((s) => Array.from({ length: s.len }, (_, i) => i)));
  const pool = b.createStatePool(Math.max(...lens) + 4);
  const slots = seqs.map(() => pool.acquire());
  const logits = (await runEntryYielding(b, m.program, 'prefill', { tokens, positions, seqs, slots, lengths: seqs.map(() => 0) }, pool)).get('logits')!;
  return { logits, pool, slots };
}

/** One decode step of a row per slot, each slot's sequence `lengths` long; its logits. */
async function decode(b: Backend, m: Model, pool: StatePool, slots: readonly number[], lengths: readonly number[]): Promise<Float32Array> {
  const tokens = Int32Array.from(lengths, (n) => (11 * n + 5) % VOCAB);
  const seqs = slots.map((_, i) => ({ start: i, len: 1 }));
  return (await runEntryYielding(b, m.program, 'decode', { tokens, positions: Int32Array.from(lengths), seqs, slots, lengths }, pool)).get('logits')!;
}

const slotOf = (pool: StatePool, slot: number) => new Float32Array(pool.save(slot).slice().buffer);

it("has Bamba-9B's head, state, chunk, GQA and K sizes", () => {
  const sizes = (m: Model, entry: 'prefill' | 'decode', family: string, name = '') => m.program.entries[entry].kernels.find((k) => k.family === family && k.name.includes(name))!.sizes;
  for (const m of [wide, short]) {
    expect(sizes(m, 'prefill', 'ssd')).toEqual({ H: 64, P: 64, G: 1, N: 128, chunk: 256 });
    expect(sizes(m, 'decode', 'matmul', 'out_proj')).toEqual({ K: 4096, N: 256 });
  }
  expect(sizes(short, 'decode', 'attention_decode')).toEqual({ H: 2, KV: 1, Dh: 128 });
  expect(sizes(wide, 'prefill', 'matmul', 'down_proj')).toEqual({ K: 14336, N: 256 });
  expect(wide.program.entries.decode.kernels.map((k) => k.family)).not.toContain('attention_decode');
});

it('CUDA (emulated) = the CPU engine: a ragged prefill over two 256-token chunks, a restored slot, 3 rows of decode', async () => {
  const lens = [257, 1, 6];
  const run = async (b: Backend) => {
    const p = await prefill(b, short, lens);
    const slots = p.slots.map((s) => slotOf(p.pool, s));
    const restored = p.pool.acquire();
    p.pool.restore(restored, p.pool.save(p.slots[0]!));
    // the first sequence in its own slot and in the restored copy, and the third
    const logits = await decode(b, short, p.pool, [p.slots[0]!, restored, p.slots[2]!], [lens[0]!, lens[0]!, lens[2]!]);
    return [p.logits, ...slots, logits, slotOf(p.pool, restored), slotOf(p.pool, p.slots[2]!)];
  };
  const [want, got] = [await run(new CpuBackend(short.program)), await run(new EmuCudaBackend(short.program, bin))];
  const parts = ['prefill logits', ...lens.map((n, i) => `slot of sequence ${i + 1} (${n} tokens) after the prefill`),
    'decode logits, 3 rows', 'restored slot after the step', 'slot of sequence 3 after the step'];
  parts.forEach((what, i) => closeToScale(got[i]!, want[i]!, 2e-2, what));
  // the restored slot decodes its step as the original does
  const logits = got[4]!;
  closeToScale(logits.subarray(VOCAB, 2 * VOCAB), logits.subarray(0, VOCAB), 1e-5, 'the restored slot against the original');
}, 600_000);

it('CUDA (emulated) = the CPU engine with the MLP of 14,336: a ragged prefill on the tiles, 3 rows of decode', async () => {
  const lens = [8, 2, 7];
  const run = async (b: Backend) => {
    const p = await prefill(b, wide, lens);
    return [p.logits, await decode(b, wide, p.pool, p.slots, lens), slotOf(p.pool, p.slots[0]!)];
  };
  const [want, got] = [await run(new CpuBackend(wide.program)), await run(new EmuCudaBackend(wide.program, bin))];
  ['prefill logits', 'decode logits, 3 rows', 'slot of sequence 1 after the step'].forEach((what, i) => closeToScale(got[i]!, want[i]!, 2e-2, what));
}, 600_000);
