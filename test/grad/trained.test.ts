// The trained tiny-bamba-a (f32): the float64 graph's loss against the CPU program's on eval text
// (two packed sequences, the longer across a 64-token chunk boundary), and the gradient against
// central finite differences (rel 1e-5): along a random direction over every weight at once, and
// at single elements of weights of each kind (embedding, SSM, conv, skip, attention, MLP).

import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileFile, loadConfig } from '../../compiler/compile.ts';
import { type GradBatch, lossGradients, readWeightsF64 } from '../../compiler/grad.ts';
import { positionsFor } from '../../runtime/engine.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { BAMBA, loadModel } from '../helpers/checkpoints.ts';
import { centralDiff, randomF64, relErr } from './helpers.ts';

const DIR = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32');
const TEXT = readFileSync(resolve(DIR, '../eval-A.txt'));

describe('trained tiny-bamba-a gradients', () => {
  it('loss equals the CPU program; sampled gradients equal finite differences', async () => {
    const c = compileFile(BAMBA, { hfConfigData: loadConfig(join(DIR, 'config.json')) });
    const ckpt = openCheckpoint(DIR);
    const w = readWeightsF64(c.graph, ckpt);
    ckpt.close();
    const lens = [66, 14];
    const tokens = Int32Array.from(TEXT.subarray(1000, 1000 + 80));
    const seqs = [{ start: 0, len: 66 }, { start: 66, len: 14 }];
    const labels = Int32Array.from(tokens);
    labels[0] = labels[66] = -100;
    const b: GradBatch = { tokens, positions: positionsFor(seqs, 80), seqs, labels };
    const r = lossGradients(c.graph, w, b);
    const model = await loadModel(DIR, { backend: 'cpu' });
    const ref = model.forward({ ids: Array.from(tokens), cuSeqlens: [0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, x) => a + x, 0))], labels: Array.from(labels) });
    expect(relErr(r.loss, ref.loss!, 1e-12), `loss ${r.loss} vs cpu ${ref.loss}`).toBeLessThan(1e-5);
    // a trained byte model: far below log(264) = 5.58 nats
    expect(r.loss).toBeLessThan(3);
    // every weight at once: the directional derivative along a random direction v
    const v = new Map([...w].map(([n, x], k) => [n, randomF64(x.length, 100 + k)]));
    const shifted = (h: number) => {
      const moved = new Map([...w].map(([n, x]) => [n, x.map((e, i) => e + h * v.get(n)![i]!)]));
      return lossGradients(c.graph, moved, b, { grads: false }).loss;
    };
    const h = 1e-6, fdDir = (shifted(h) - shifted(-h)) / (2 * h);
    const dir = [...r.grads!].reduce((s, [n, g]) => s + g.reduce((t, e, i) => t + e * v.get(n)![i]!, 0), 0);
    expect(relErr(dir, fdDir, 1e-5), `directional: grad·v ${dir} vs fd ${fdDir}`).toBeLessThan(1e-5);
    // single elements of weights of each kind: the element with the largest gradient
    const names = ['model.embed_tokens.weight', 'model.layers.0.mamba.A_log', 'model.layers.1.mamba.conv1d.weight',
      'model.layers.3.mamba.D', 'model.layers.2.self_attn.k_proj.weight', 'model.layers.5.feed_forward.down_proj.weight'];
    let worst = relErr(dir, fdDir, 1e-5);
    for (const name of names) {
      const x = w.get(name)!, g = r.grads!.get(name)!;
      const i = g.reduce((best, e, j) => (Math.abs(e) > Math.abs(g[best]!) ? j : best), 0);
      const fd = centralDiff(x, i, () => lossGradients(c.graph, w, b, { grads: false }).loss, 1e-4);
      const e = relErr(g[i]!, fd, 1e-5);
      worst = Math.max(worst, e);
      expect(e, `${name}[${i}]: grad ${g[i]} vs fd ${fd}`).toBeLessThan(1e-5);
    }
    console.log(`tiny-bamba-a: loss ${r.loss.toFixed(6)} (cpu ${ref.loss!.toFixed(6)}), a directional and ${names.length} single fd checks, worst rel err ${worst.toExponential(2)}`);
  }, 300_000);
});
