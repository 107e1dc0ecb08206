// AdamW, clipping and the schedule against steps computed by hand from PyTorch's documented
// formulas (torch.optim.AdamW, clip_grad_norm_, get_cosine_schedule_with_warmup), within f32
// rounding (1e-6 relative: masters and moments are stored as f32).

import { describe, expect, it } from 'vitest';
import { adamwStep, clipFactor, globalNorm, newParam, scheduledLr } from '../../runtime/train/optim.ts';
import { prng } from '../helpers/random.ts';

const C = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
const close = (got: number, want: number, what: string) => expect(Math.abs(got - want) / Math.max(Math.abs(want), 1e-12), `${what}: ${got} vs ${want}`).toBeLessThan(1e-6);

describe('AdamW', () => {
  it('takes two steps as computed by hand, decaying matrices only', () => {
    const r = prng(3);
    const w0 = Array.from({ length: 6 }, () => 2 * r() - 1);
    const g1 = Array.from({ length: 6 }, () => 2 * r() - 1), g2 = Array.from({ length: 6 }, () => 2 * r() - 1);
    for (const shape of [[2, 3], [6]]) {
      const p = newParam('w', shape, w0);
      const wd = shape.length === 2 ? C.weightDecay : 0;
      adamwStep(p, g1, 1, C.lr, C);
      adamwStep(p, g2, 2, 0.5 * C.lr, C);
      w0.forEach((w, i) => {
        // step 1: m = 0.1 g, v = 0.05 g²; m̂ = g, v̂ = g², so the update is lr · g / (|g| + eps)
        const m1 = 0.1 * g1[i]!, v1 = 0.05 * g1[i]! ** 2;
        const a = w * (1 - C.lr * wd) - C.lr * g1[i]! / (Math.abs(g1[i]!) + C.eps);
        // step 2 at lr/2: m = 0.9 m1 + 0.1 g2, v = 0.95 v1 + 0.05 g2², bias corrections 1 − 0.9², 1 − 0.95²
        const m2 = 0.9 * m1 + 0.1 * g2[i]!, v2 = 0.95 * v1 + 0.05 * g2[i]! ** 2, lr2 = 0.5 * C.lr;
        const b = a * (1 - lr2 * wd) - lr2 / (1 - 0.81) * m2 / (Math.sqrt(v2) / Math.sqrt(1 - 0.9025) + C.eps);
        close(p.value[i]!, b, `${shape} w[${i}]`);
        close(p.expAvg[i]!, m2, `m[${i}]`);
        close(p.expAvgSq[i]!, v2, `v[${i}]`);
      });
    }
  });

  it('scales the gradient by the clip factor before the moments', () => {
    const p = newParam('w', [2, 2], [1, 1, 1, 1]), q = newParam('w', [2, 2], [1, 1, 1, 1]);
    const g = [0.3, -0.2, 0.5, 0.1];
    adamwStep(p, g, 1, C.lr, C, 0.25);
    adamwStep(q, g.map((x) => 0.25 * x), 1, C.lr, C);
    expect(Array.from(p.expAvg)).toEqual(Array.from(q.expAvg));
    expect(Array.from(p.value)).toEqual(Array.from(q.value));
  });
});

describe('clip_grad_norm_', () => {
  it('multiplies by max_norm / (norm + 1e-6) when the norm is over, by 1 otherwise', () => {
    const norm = globalNorm([[3], [4, 0]]);
    expect(norm).toBe(5);
    close(clipFactor(norm, 1), 1 / (5 + 1e-6), 'clipped');
    expect(clipFactor(norm, 10)).toBe(1);
    expect(clipFactor(norm, 0)).toBe(1);
  });
});

describe('warmup + cosine schedule', () => {
  it('rises linearly from 0 over the warmup, then falls as a half cosine to 0 at the last step', () => {
    const lr = 1e-3, warmup = 4, total = 14;
    expect(scheduledLr(lr, 0, warmup, total)).toBe(0);
    close(scheduledLr(lr, 2, warmup, total), lr / 2, 'half way up');
    close(scheduledLr(lr, 4, warmup, total), lr, 'peak');
    close(scheduledLr(lr, 9, warmup, total), lr / 2, 'half way down: cos(π/2) = 0');
    close(scheduledLr(lr, 4 + 10 / 3, warmup, total), lr * 0.75, 'a third down: ½(1 + cos(π/3))');
    expect(scheduledLr(lr, 14, warmup, total)).toBeLessThan(1e-18);
    close(scheduledLr(lr, 0, 0, total), lr, 'no warmup starts at the peak');
  });
});
