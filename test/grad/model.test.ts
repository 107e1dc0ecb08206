// The whole tiny Bamba: the float64 graph forward against the f32 CPU program's logits, and the
// gradient of the mean causal-LM loss against central finite differences on a sample of every
// weight's elements (packed ragged sequences, chunk boundaries inside and across them).

import { describe, expect, it } from 'vitest';
import { lossGradients } from '../../compiler/grad.ts';
import { Model } from '../../runtime/model.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type Params, compileTiny, expectLogitsClose, makeDir, randomTensors, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { centralDiff, packed, relErr, sample } from './helpers.ts';

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
