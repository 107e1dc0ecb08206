// The whole tiny Bamba: the float64 graph forward against the f32 CPU program's logits, and the
// gradient of the mean causal-LM loss against central finite differences on a sample of every
// weight's elements (packed ragged sequences, chunk boundaries inside and across them).

import { describe, expect, it } from 'vitest';
import { type GradBatch, lossGradients } from '../../compiler/grad.ts';
import { Model } from '../../runtime/model.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type Params, compileTiny, expectLogitsClose, makeDir, randomTensors, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { centralDiff, packed, relErr, sample } from './helpers.ts';
import { expectRuntimeError } from '../helpers/errors.ts';

const weightsOf = (c: ReturnType<typeof compileTiny>, seed: number) =>
  new Map(randomTensors(c, { seed }).map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));

describe('tiny Bamba gradients', () => {
  // chunk 4: the 6- and 9-token sequences cross chunk boundaries; 3 tokens stay inside one chunk
  const lens = [6, 3, 9];

  it('the float64 graph forward equals the f32 CPU program (logits within 1e-4 of their scale)', async () => {
    const dir = makeDir('archc-grad-');
    try {
      const { compiled, tensors } = writeCheckpoint(dir, {}, { seed: 3 });
      const b = packed(lens, 96, 11);
      const w = new Map(tensors.map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
      const r = lossGradients(compiled.graph, w, b, { grads: false });
      const model = await Model.loadProgram(lowerToProgram(compiled.forProgram.graph, compiled.forProgram.bindings, { choices: compiled.forProgram.choices }), dir, { backend: 'cpu' });
      const cu = [0, 6, 9, 18];
      const ref = model.forward({ ids: Array.from(b.tokens), cuSeqlens: cu, labels: Array.from(b.labels) });
      expectLogitsClose(r.logits, ref.logits, 1e-4, 'f64 graph vs cpu program', 96);
      expect(relErr(r.loss, ref.loss!, 1e-12)).toBeLessThan(1e-5);
      expect(r.tokens).toBe(15);
    } finally {
      removeDir(dir);
    }
  });

  for (const params of [{}, { tie: false }] as Params[]) it(`every weight${params.tie === false ? ', untied head' : ''}: sampled elements against central finite differences (rel 1e-5; finite differences with h = 1e-5 are good to ~1e-7 here)`, () => {
    const c = compileTiny(params);
    const w = weightsOf(c, 5);
    const b = packed(lens, 96, 12);
    const { grads } = lossGradients(c.graph, w, b);
    let checked = 0, worst = 0;
    for (const [name, x] of w) {
      const g = grads!.get(name)!;
      expect(g.length, name).toBe(x.length);
      for (const i of sample(x.length, 3, name.length)) {
        const fd = centralDiff(x, i, () => lossGradients(c.graph, w, b, { grads: false }).loss);
        const e = relErr(g[i]!, fd, 1e-6);
        worst = Math.max(worst, e);
        expect(e, `${name}[${i}]: grad ${g[i]} vs fd ${fd}`).toBeLessThan(1e-5);
        checked++;
      }
    }
    console.log(`model fd: ${checked} elements over ${w.size} weights, worst rel err ${worst.toExponential(2)}`);
    expect(checked).toBeGreaterThan(3 * 30);
  });
});

describe('lossGradients refuses a bad batch with a code naming the problem', () => {
  const c = compileTiny();
  const w = weightsOf(c, 1);
  const good = packed([3, 4], 96, 2);
  const rows: [string, Partial<GradBatch>, string, string][] = [
    ['a token id past the vocabulary', { tokens: Int32Array.from([1, 2, 96, 4, 5, 6, 7]) }, 'RT300', 'token id 96 at position 2'],
    ['a label past the vocabulary', { labels: Int32Array.from([-100, 2, 3, -100, 5, 200, 7]) }, 'RT320', 'label 200 at position 5'],
    ['a negative label other than -100', { labels: Int32Array.from([-100, 2, 3, -100, -1, 6, 7]) }, 'RT320', 'label -1 at position 4'],
    ['labels of another length', { labels: Int32Array.from([1, 2]) }, 'RT322', 'labels hold 2 values, expected T = 7'],
    ['positions of another length', { positions: Int32Array.from([0, 1]) }, 'RT301', '2 positions for 7 tokens'],
    ['sequences that leave a gap', { seqs: [{ start: 0, len: 3 }, { start: 4, len: 3 }] }, 'RT301', 'sequence 1 covers rows 4..7, expected to start at 3'],
    ['sequences that do not cover the batch', { seqs: [{ start: 0, len: 3 }] }, 'RT301', 'sequences cover 3 rows of 7'],
    ['nothing to predict', { labels: Int32Array.from([5, -100, -100, -100, -100, -100, -100]) }, 'RT301', 'no label to predict'],
  ];
  for (const [what, change, code, says] of rows) {
    it(what, () => {
      expectRuntimeError(() => lossGradients(c.graph, w, { ...good, ...change }), code, says);
    });
  }
});
