// The causal-LM loss and generation, end to end on a tiny random Bamba checkpoint.
// Loss: computed here from the forward logits in float64 (shifted labels, -100 ignored, plus the
// z-loss mean of logsumexp² over all rows) and compared with forward({ ids, labels }).loss to 1e-9
// relative (both read the same f32 logits; only the summation order differs).
// Generation: greedy = argmax of a full forward recomputed over the growing sequence (no cache);
// seeded sampling is reproducible.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateOptions, Model } from '../../runtime/model.ts';
import { argmax, loadModel, makeDir, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

let dir: string;
let model: Model;
let V: number;

beforeAll(async () => {
  dir = makeDir();
  writeCheckpoint(dir, { tie: false, mamba_groups: 2 }, { seed: 3 });
  model = await loadModel(dir);
  V = model.vocab;
});
afterAll(() => removeDir(dir));

/** Cross-entropy written out: mean over rows t whose label[t + 1] ≠ -100 of
 *  log Σ_v exp(logit[t, v]) − logit[t, label[t + 1]], plus coef · mean_t (log Σ_v exp(logit[t, v]))². */
function directLoss(logits: Float32Array, labels: readonly number[], coef = 0): number {
  const T = labels.length;
  const lse = (t: number) => {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[t * V + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[t * V + v]! - m);
    return m + Math.log(s);
  };
  let sum = 0;
  let n = 0;
  let z = 0;
  for (let t = 0; t < T; t++) {
    const l = lse(t);
    z += l * l;
    const y = t + 1 < T ? labels[t + 1]! : -100;
    if (y === -100) continue;
    sum += l - logits[t * V + y]!;
    n++;
  }
  return sum / n + coef * (z / T);
}

const close = (got: number | undefined, want: number) => {
  expect(got).toBeTypeOf('number');
  expect(Math.abs(got! - want), `loss ${got} vs direct ${want}`).toBeLessThanOrEqual(1e-9 * Math.abs(want));
};

describe('loss', () => {
  it('one sequence, labels = ids with some -100: equals the direct computation', () => {
    const ids = randomIds(11, V, 700);
    const labels = ids.map((id, t) => (t === 3 || t === 8 ? -100 : id));
    const r = model.forward({ ids, labels });
    close(r.loss, directLoss(r.logits, labels));
    // a random model is close to uniform: the loss is near log V, not 0 and not huge
    expect(r.loss!).toBeGreaterThan(0.5 * Math.log(V));
    expect(r.loss!).toBeLessThan(4 * Math.log(V));
  });

  it('packed sequences (the boundary label -100) = the token-weighted mean of each alone', () => {
    const a = randomIds(7, V, 701);
    const b = randomIds(11, V, 702);
    const labels = [...a, -100, ...b.slice(1)];
    const r = model.forward({ ids: [...a, ...b], cuSeqlens: [0, 7, 18], labels });
    close(r.loss, directLoss(r.logits, labels));
    const la = model.forward({ ids: a, labels: a }).loss!;
    const lb = model.forward({ ids: b, labels: b }).loss!;
    expect(Math.abs(r.loss! - (6 * la + 10 * lb) / 16)).toBeLessThanOrEqual(1e-5 * r.loss!);
  });

  it.each([1e-4, 0.5])('z-loss coefficient %f adds coef · mean(logsumexp²) over all rows', (coef) => {
    const ids = randomIds(9, V, 703);
    const labels = ids.map((id, t) => (t === 5 ? -100 : id));
    const plain = model.forward({ ids, labels });
    const r = model.forward({ ids, labels, zLossCoefficient: coef });
    close(r.loss, directLoss(r.logits, labels, coef));
    expect(r.loss!).toBeGreaterThan(plain.loss!);
  });
});

describe('generate', () => {
  const collect = async (prompt: readonly number[], opts: GenerateOptions) => {
    const out: number[] = [];
    for await (const t of model.generate(prompt, opts)) out.push(t.id);
    return out;
  };

  it('greedy: each token is the argmax of a full forward over everything so far (no cache)', async () => {
    const prompt = randomIds(5, V, 800);
    const got = await collect(prompt, { maxTokens: 8 });
    const seq = [...prompt];
    const want: number[] = [];
    for (let n = 0; n < 8; n++) {
      const logits = model.forward({ ids: seq }).logits;
      const id = argmax(logits, (seq.length - 1) * V, seq.length * V);
      want.push(id);
      seq.push(id);
    }
    expect(got).toEqual(want);
  });

  it('greedy stops before a stop token and after maxTokens', async () => {
    const prompt = randomIds(5, V, 801);
    const all = await collect(prompt, { maxTokens: 6 });
    expect(all).toHaveLength(6);
    // stop on the first token that was not generated before it (the first one when all repeat)
    const k = Math.max(0, all.findIndex((id, i) => i > 0 && !all.slice(0, i).includes(id)));
    expect(await collect(prompt, { maxTokens: 6, stop: [all[k]!] })).toEqual(all.slice(0, k));
    expect(await collect(prompt, { maxTokens: 2 })).toEqual(all.slice(0, 2));
  });

  it('seeded sampling: same seed → same tokens, another seed → other tokens; top-k 1 is greedy', async () => {
    const prompt = randomIds(4, V, 802);
    const opts = { maxTokens: 16, temperature: 1.5 };
    const a = await collect(prompt, { ...opts, seed: 1 });
    const b = await collect(prompt, { ...opts, seed: 1 });
    const c = await collect(prompt, { ...opts, seed: 2 });
    expect(a).toHaveLength(16);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(a.every((id) => Number.isInteger(id) && id >= 0 && id < V)).toBe(true);
    expect(await collect(prompt, { maxTokens: 8, temperature: 1, topK: 1, seed: 9 })).toEqual(await collect(prompt, { maxTokens: 8 }));
  });
});

describe('generate continuing a sequence, and several prompts at once', () => {
  const ids = async (it: AsyncIterable<{ id: number }>) => {
    const out: number[] = [];
    for await (const t of it) if (t.id >= 0) out.push(t.id);
    return out;
  };

  it('two turns on one sequence = one generation over the whole history (greedy); the sequence holds every token', async () => {
    const [p1, p2] = [randomIds(4, V, 810), randomIds(3, V, 811)];
    const s = model.newSequence();
    const g1 = await ids(model.generate(p1, { maxTokens: 5, sequence: s }));
    expect(s.length).toBe(4 + 5);
    const g2 = await ids(model.generate(p2, { maxTokens: 4, sequence: s }));
    expect(s.length).toBe(4 + 5 + 3 + 4);
    expect(g2).toEqual(await ids(model.generate([...p1, ...g1, ...p2], { maxTokens: 4 })));
    // the sequence is the caller's: still open, and it continues like a fresh run over the history
    const next = model.decode([7], [s]);
    const want = model.forward({ ids: [...p1, ...g1, ...p2, ...g2, 7] }).logits;
    const T = 4 + 5 + 3 + 4 + 1;
    let worst = 0, scale = 0;
    for (let v = 0; v < V; v++) {
      worst = Math.max(worst, Math.abs(next[v]! - want[(T - 1) * V + v]!));
      scale = Math.max(scale, Math.abs(want[(T - 1) * V + v]!));
    }
    expect(worst).toBeLessThanOrEqual(1e-5 * scale);
    model.releaseSequence(s);
  });

  it('a continued sequence must hold its prompt and maxTokens (RT307 up front, nothing fed)', async () => {
    const s = model.newSequence();
    model.step([randomIds(model.capacity - 4, V, 812)], [s]);
    await expect(ids(model.generate([1, 2], { maxTokens: 3, sequence: s }))).rejects.toMatchObject({ code: 'RT307' });
    expect(s.length).toBe(model.capacity - 4);
    expect(await ids(model.generate([1, 2], { maxTokens: 3, sequence: s, stopAtContext: true }))).toHaveLength(2);
    expect(s.length).toBe(model.capacity);
    model.releaseSequence(s);
  });

  it('generateMany: the tokens of each prompt are what generate gives it alone (greedy, and seeded with seed + index)', async () => {
    const prompts = [randomIds(5, V, 813), randomIds(2, V, 814), randomIds(7, V, 815)];
    for (const opts of [{ maxTokens: 6 }, { maxTokens: 6, temperature: 1.3, seed: 4 }]) {
      const got: number[][] = prompts.map(() => []);
      const open = model.openSequences;
      for await (const t of model.generateMany(prompts, opts)) if (t.id >= 0) got[t.index]!.push(t.id);
      expect(model.openSequences).toBe(open);
      for (const [i, p] of prompts.entries()) {
        expect(got[i], `prompt ${i}`).toEqual(await ids(model.generate(p, { ...opts, ...(opts.seed !== undefined ? { seed: opts.seed + i } : {}) })));
      }
    }
  });

  it('generateMany: a prompt that stops early leaves the others going; breaking off releases every sequence', async () => {
    const prompts = [randomIds(5, V, 816), randomIds(5, V, 817)];
    const alone = await ids(model.generate(prompts[0]!, { maxTokens: 6 }));
    const got: number[][] = [[], []];
    for await (const t of model.generateMany(prompts, { maxTokens: 6, stop: [alone[1]!] })) if (t.id >= 0) got[t.index]!.push(t.id);
    expect(got[0]).toEqual(alone.slice(0, alone.indexOf(alone[1]!)));
    const open = model.openSequences;
    for await (const t of model.generateMany(prompts, { maxTokens: 6 })) if (t.index === 1) break;
    expect(model.openSequences).toBe(open);
  });
});

