// Every shipped model at its tiny preset (GPT-2: learned positions, LayerNorm, GELU, Conv1D
// weights; Llama; Qwen3: QK-norm; Mamba-2): the gradient of the mean loss on a packed batch against
// central finite differences on a sample of every weight's elements (rel 1e-5, absolute 1e-9), and
// the float64 graph forward against the model's f32 CPU program (logits within 1e-4 of their scale).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { lossGradients } from '../../compiler/grad.ts';
import { presetSets } from '../../compiler/presets.ts';
import { createRng } from '../../runtime/rng.ts';
import { ROOT, expectLogitsClose } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { centralDiff, packed, relErr, sample } from './helpers.ts';

const tmp = useTmpDirs('archc-grad-models-');

describe('gradients of every model', () => {
  for (const model of ['gpt2', 'llama', 'qwen3', 'mamba2']) {
    it(`${model} (tiny preset)`, async () => {
      const file = join(ROOT, 'models', `${model}.arch`);
      const c = compileFile(file, { set: [...presetSets(file, 'tiny'), 'n_layers=2'] });
      const w = new Map(initWeights(c.graph, createRng(3), 'f32').map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
      const vocab = c.graph.values[c.graph.outputs[0]!.value]!.type.shape.at(-1) as number;
      const b = packed([5, 3, 6], vocab, 4);
      const { grads, logits } = lossGradients(c.graph, w, b);
      const dir = tmp();
      writeFileSync(join(dir, 'config.json'), hfConfigText(c, 'f32'));
      writeSafetensors(join(dir, 'model.safetensors'), initWeights(c.graph, createRng(3), 'f32'), { format: 'pt' });
      const m = await Model.loadProgram(lowerToProgram(c.forProgram.graph, c.forProgram.bindings, { choices: c.forProgram.choices }), dir, { backend: 'cpu' });
      expectLogitsClose(logits, m.forward({ ids: Array.from(b.tokens), cuSeqlens: [0, 5, 8, 14] }).logits, 1e-4, `${model}: f64 graph vs cpu program`, vocab);
      let checked = 0;
      for (const [name, x] of w) {
        const g = grads!.get(name)!;
        for (const i of sample(x.length, 2, name.length)) {
          const fd = centralDiff(x, i, () => lossGradients(c.graph, w, b, { grads: false }).loss);
          // floor 1e-4: an absolute 1e-9 for tiny gradients, where the differences carry ~1e-10 of rounding
          expect(relErr(g[i]!, fd, 1e-4), `${name}[${i}]: grad ${g[i]} vs fd ${fd}`).toBeLessThan(1e-5);
          checked++;
        }
      }
      expect(checked).toBe(2 * w.size);
    }, 120_000);
  }
});
