// The state pool: each sequence decodes in a slot of its own (conv windows, SSM states, KV caches up
// to the capacity). Several sequences of different lengths decode together as one batch exactly as
// each does alone; a copied or saved-and-restored slot continues exactly like the original; the
// capacity is enforced; prefill runs the head on each prompt's last token only.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../runtime/model.ts';
import { SAVED_HEADER_BYTES } from '../../runtime/sequences.ts';
import { expectLogitsClose, loadModel, makeDir, randomIds, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';

let dir: string;
let model: Model;

beforeAll(async () => {
  dir = makeDir();
  // Mamba at 1 and 3, attention at 0 and 2: every kind of state in the slot
  writeCheckpoint(dir, { attn_layers: [0, 2] }, { seed: 5 });
  model = await loadModel(dir, { capacity: 40 });
});
afterAll(() => removeDir(dir));

describe('state slots', () => {
  it('decoding token by token in a slot equals one forward pass', () => {
    const ids = randomIds(30, model.vocab, 9);
    const V = model.vocab;
    const whole = model.forward({ ids }).logits;
    const state = model.newSequence();
    const got = new Float32Array(30 * V);
    got.set(model.step([ids.slice(0, 3)], [state]), 0);
    for (let t = 3; t < 30; t++) got.set(model.decode([ids[t]!], [state]), t * V);
    expectLogitsClose(got, whole, 1e-5, 'decode in a slot vs forward', V);
    model.releaseSequence(state);
  });

  it('4 sequences of different lengths decoded together for 16 steps = each decoded alone', () => {
    const V = model.vocab;
    const prompts = [randomIds(3, V, 11), randomIds(9, V, 12), randomIds(1, V, 13), randomIds(6, V, 14)];
    const next = prompts.map((_, i) => randomIds(16, V, 20 + i));
    // together: one packed prefill, then batched decode over the four slots
    const { states } = model.prefill(prompts);
    expect(new Set(states.map((s) => s.slot)).size).toBe(4);
    const together: Float32Array[] = prompts.map(() => new Float32Array(16 * V));
    for (let t = 0; t < 16; t++) {
      const logits = model.decode(next.map((n) => n[t]!), states);
      together.forEach((out, i) => out.set(logits.subarray(i * V, (i + 1) * V), t * V));
    }
    // alone: each sequence by itself
    prompts.forEach((p, i) => {
      const { states: [s] } = model.prefill([p]);
      const alone = new Float32Array(16 * V);
      for (let t = 0; t < 16; t++) alone.set(model.decode([next[i]![t]!], [s!]), t * V);
      expectLogitsClose(together[i]!, alone, 1e-6, `sequence ${i} batched vs alone`, V);
      model.releaseSequence(s!);
    });
    for (const s of states) model.releaseSequence(s);
  });

  it('a slot copied mid-sequence, and one saved and restored, continue exactly like the original', () => {
    const V = model.vocab;
    const ids = randomIds(20, V, 31);
    const { states: [orig] } = model.prefill([ids.slice(0, 7)]);
    for (let t = 7; t < 10; t++) model.decode([ids[t]!], [orig!]);
    const copy = model.copySequence(orig!);
    const saved = model.saveSequence(orig!);
    // what the sequence holds: less than the slot (its KV rows past 10 are not saved)
    expect(saved.bytes.byteLength).toBeLessThan(SAVED_HEADER_BYTES + model.slotBytes);
    const restored = model.restoreSequence(saved);
    expect([copy.length, restored.length]).toEqual([10, 10]);
    for (let t = 10; t < 20; t++) {
      // the three decode together, each in its own slot
      const l = model.decode([ids[t]!, ids[t]!, ids[t]!], [orig!, copy, restored]);
      expect(Array.from(l.subarray(V, 2 * V))).toEqual(Array.from(l.subarray(0, V)));
      expect(Array.from(l.subarray(2 * V, 3 * V))).toEqual(Array.from(l.subarray(0, V)));
    }
    // and a different continuation of the copy leaves the original untouched
    const branch = model.copySequence(orig!);
    model.decode([1], [branch]);
    const a = model.decode([2], [model.copySequence(orig!)]);
    const b = model.decode([2], [orig!]);
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('released slots are reused, zeroed', () => {
    const s = model.newSequence();
    model.decode([5], [s]);
    model.releaseSequence(s);
    const t = model.newSequence();
    expect(t.slot).toBe(s.slot);
    const u = model.newSequence();
    expect(u.slot).not.toBe(s.slot);
    const l = model.decode([7, 7], [t, u]);
    expect(Array.from(l.subarray(0, V()))).toEqual(Array.from(l.subarray(V(), 2 * V())));
  });

  it('stops at the capacity with RT302; a batch cannot hold one slot twice', () => {
    const state = model.newSequence();
    model.step([randomIds(40, model.vocab, 1)], [state]);
    expect(() => model.decode([1], [state])).toThrow(/RT302.*capacity 40/);
    const s = model.newSequence();
    expect(() => model.decode([1, 2], [s, s])).toThrow(/RT301.*shares its state slot/);
  });
});

function V(): number {
  return model.vocab;
}

describe('prefill computes the head for the last tokens only', () => {
  it('its logits equal the last rows of a full forward of each prompt', () => {
    const V = model.vocab;
    const prompts = [randomIds(9, V, 2), randomIds(4, V, 3), randomIds(1, V, 4)];
    const { logits } = model.prefill(prompts);
    prompts.forEach((p, i) => {
      const full = model.forward({ ids: p }).logits;
      expectLogitsClose(logits[i]!, rows(full, V, p.length - 1, p.length), 1e-5, `prompt ${i}`, V);
    });
    expect(model.step(prompts, prompts.map(() => model.newSequence()), true).length).toBe(3 * V);
    // the gather is a prologue of the head: one head kernel, no separate gather
    const prefill = model.program.entries.prefill.kernels;
    expect(prefill.filter((k) => k.family === 'gather_last')).toEqual([]);
    expect(prefill.at(-1)!.prologue?.[0]).toEqual({ kind: 'gather_last' });
  });
});
