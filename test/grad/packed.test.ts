// Packed = separate: the gradient of a packed batch's mean loss equals the token-weighted sum
// Σ (n_s / N) · ∇L_s of each sequence's gradient computed alone, within 1e-6 relative per weight
// (max-norm); and it is not the gradient of the same rows run as one sequence (the check can fail).

import { describe, expect, it } from 'vitest';
import { type GradBatch, lossGradients } from '../../compiler/grad.ts';
import { positionsFor } from '../../runtime/engine.ts';
import { compileTiny, randomTensors } from '../helpers/checkpoints.ts';
import { packed } from './helpers.ts';

/** Rows [start, start + len) of `b` as a batch of its own. */
function alone(b: GradBatch, start: number, len: number): GradBatch {
  const seqs = [{ start: 0, len }];
  return { tokens: b.tokens.slice(start, start + len), positions: positionsFor(seqs, len), seqs, labels: b.labels.slice(start, start + len) };
}

/** max |a − b| / max |b| over one weight. */
function maxRel(a: Float64Array, b: Float64Array): number {
  let d = 0, m = 0;
  a.forEach((v, i) => { d = Math.max(d, Math.abs(v - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); });
  return m === 0 ? d : d / m;
}

describe('packed = separate', () => {
  // chunk 4 (TINY): sequences of 7 and 9 tokens end mid-chunk, so a chunk would span two sequences
  // if the scan ignored the boundaries; attention layers 1 and 3 and every conv see the boundary too
  for (const lens of [[7, 9, 2], [1, 12, 5, 4]]) {
    it(`sequences of ${lens.join(', ')} tokens`, () => {
      const c = compileTiny();
      const w = new Map(randomTensors(c, { seed: 21 }).map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
      const b = packed(lens, 96, 31);
      const whole = lossGradients(c.graph, w, b);
      // a one-token sequence predicts nothing: its weight n_s / N is 0 (alone it is refused, RT301)
      const parts = b.seqs.filter((s) => s.len > 1).map((s) => ({ n: s.len - 1, r: lossGradients(c.graph, w, alone(b, s.start, s.len)) }));
      const N = parts.reduce((n, p) => n + p.n, 0);
      expect(whole.tokens).toBe(N);
      // the loss: the token-weighted mean of the sequences' losses
      const lossSum = parts.reduce((s, p) => s + (p.n / N) * p.r.loss, 0);
      expect(Math.abs(whole.loss - lossSum) / whole.loss).toBeLessThan(1e-12);
      let worst = 0;
      for (const [name, g] of whole.grads!) {
        const sum = new Float64Array(g.length);
        for (const p of parts) p.r.grads!.get(name)!.forEach((v, i) => { sum[i] += (p.n / N) * v; });
        const e = maxRel(g, sum);
        worst = Math.max(worst, e);
        expect(e, name).toBeLessThan(1e-6);
      }
      console.log(`packed [${lens}]: worst rel diff ${worst.toExponential(2)} over ${whole.grads!.size} weights`);
      // the same rows as one sequence (labels unchanged) give another gradient
      const joined = lossGradients(c.graph, w, { ...b, seqs: [{ start: 0, len: b.tokens.length }], positions: positionsFor([{ start: 0, len: b.tokens.length }], b.tokens.length) });
      const mixer = [...whole.grads!.keys()].find((n) => n.endsWith('mamba.A_log'))!;
      expect(maxRel(joined.grads!.get(mixer)!, whole.grads!.get(mixer)!)).toBeGreaterThan(1e-3);
    });
  }
});
