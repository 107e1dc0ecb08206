// Sampling: each logits processor on hand-made distributions, a slow full-sort reference on large
// random vocabularies, empirical frequencies of seeded draws, option validation; and the PRNG.

import { describe, expect, it, vi } from 'vitest';
import { createRng, xoshiro128ss } from '../../runtime/rng.ts';
import { type SamplingOptions, sampleToken, samplingDistribution, validateSampling } from '../../runtime/sampling.ts';
import { expectRuntimeError } from '../helpers/errors.ts';

const f32 = (xs: number[]) => Float32Array.from(xs);
/** Logits whose softmax is exactly `probs` (up to f32 rounding). */
const logitsOf = (probs: number[]) => f32(probs.map(Math.log));

/** The kept ids (ascending) and their renormalised probabilities, from samplingDistribution. */
function kept(logits: Float32Array, o: SamplingOptions, history: number[] = []): { ids: number[]; probs: number[] } {
  const d = samplingDistribution(logits, o, history);
  const total = d.weights.reduce((a, b) => a + b, 0);
  const pairs = [...d.ids].map((id, j) => [id, d.weights[j] / total] as const).sort((a, b) => a[0] - b[0]);
  return { ids: pairs.map((p) => p[0]), probs: pairs.map((p) => p[1]) };
}

/**
 * A slow reference written straight from the transformers processors: full softmax and full sorts
 * at every step, -Infinity for removed tokens.
 */
function reference(logits: Float32Array, o: SamplingOptions, history: number[]): { ids: number[]; probs: number[] } {
  let x = Array.from(logits);
  const p = o.repetitionPenalty ?? 1;
  for (const id of new Set(history)) x[id] = Math.fround(x[id] < 0 ? x[id] * p : x[id] / p);
  const T = o.temperature!;
  x = x.map((v) => v / T);
  const softmax = (v: number[]) => {
    const m = Math.max(...v);
    const e = v.map((a) => Math.exp(a - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((a) => a / s);
  };
  if (o.topK) {
    const kth = [...x].sort((a, b) => b - a)[Math.min(o.topK, x.length) - 1];
    x = x.map((v) => (v < kth ? -Infinity : v));
  }
  if (o.topP !== undefined && o.topP < 1) {
    const pr = softmax(x);
    const order = x.map((_, i) => i).sort((a, b) => pr[b] - pr[a] || a - b);
    let cum = 0;
    const keep = new Set<number>();
    for (const i of order) {
      keep.add(i);
      cum += pr[i];
      if (cum >= o.topP) break;
    }
    x = x.map((v, i) => (keep.has(i) ? v : -Infinity));
  }
  if (o.minP) {
    const pr = softmax(x);
    const top = Math.max(...pr);
    x = x.map((v, i) => (pr[i] < o.minP! * top ? -Infinity : v));
  }
  const pr = softmax(x);
  const ids = pr.map((_, i) => i).filter((i) => pr[i] > 0 && x[i] !== -Infinity);
  return { ids, probs: ids.map((i) => pr[i]) };
}

function expectProbs(actual: number[], expected: number[], tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i]), `prob ${i}: ${a} vs ${expected[i]}`).toBeLessThan(tol));
}

// ---- rng ---------------------------------------------------------------------------------------

describe('rng', () => {
  it('xoshiro128** matches the reference C implementation', () => {
    // Blackman & Vigna's xoshiro128starstar.c, state {1, 2, 3, 4}.
    const r = xoshiro128ss([1, 2, 3, 4]);
    expect(Array.from({ length: 8 }, () => r.nextU32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
    const s = xoshiro128ss([0xdeadbeef, 0x12345678, 0x9abcdef0, 0x0badf00d]);
    for (let i = 0; i < 1000; i++) s.nextU32();
    expect(Array.from({ length: 4 }, () => s.nextU32())).toEqual([285280189, 3509135031, 4017953115, 1797157445]);
  });

  it('is deterministic per seed and uniform on [0, 1)', () => {
    const a = createRng(42);
    const b = createRng(42);
    const xs = Array.from({ length: 20000 }, () => a.next());
    expect(Array.from({ length: 20000 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01); // sd of the mean: 0.289/√20000 ≈ 0.002
    expect(createRng(43).next()).not.toBe(createRng(42).next());
    expect(createRng(2 ** 40).next()).not.toBe(createRng(2 ** 40 + 2 ** 32).next());
    expect(createRng(0).next()).not.toBe(createRng(-1).next());
  });
});

// ---- greedy and penalties ----------------------------------------------------------------------

describe('greedy', () => {
  const rng = createRng(1);

  it('is the argmax, lowest index on ties, without touching the rng', () => {
    const logits = f32([0.5, 3, -1, 3, 2]);
    const before = createRng(9);
    const after = createRng(9);
    expect(sampleToken(logits, {}, [], before)).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topK: 1, topP: 0.1 }, [], before)).toBe(1);
    expect(before.next()).toBe(after.next());
  });

  it('applies the repetition penalty first, by sign, once per distinct id', () => {
    // p = 2: positive logits halve, negative logits double, a repeated id is penalised once.
    const logits = f32([4, -1, 2.5, 0]);
    expect(kept(logits, { temperature: 1, repetitionPenalty: 2 }, [0, 0, 0, 1]).probs).toEqual(
      reference(logits, { temperature: 1, repetitionPenalty: 2 }, [0, 1]).probs,
    );
    expect(sampleToken(logits, { repetitionPenalty: 2 }, [0, 0, 0], rng)).toBe(2); // 4 -> 2 < 2.5, not 4 -> 0.5
    expect(sampleToken(logits, { repetitionPenalty: 1.5 }, [0], rng)).toBe(0); // 4 -> 2.67 > 2.5
    expect(sampleToken(f32([-1, -1.5]), { repetitionPenalty: 2 }, [0], rng)).toBe(1); // -1 -> -2 < -1.5
    expect(sampleToken(f32([-1, -1.5]), { repetitionPenalty: 0.5 }, [1], rng)).toBe(1); // p < 1 favours: -1.5 -> -0.75
  });

  it('rejects NaN logits and history ids outside the vocabulary', () => {
    expectRuntimeError(() => sampleToken(f32([0, NaN]), {}, [], rng), 'RT317', 'index 1');
    expectRuntimeError(() => sampleToken(f32([0, 1]), { repetitionPenalty: 1.2 }, [0, 2], rng), 'RT300', 'token id 2 at position 1');
    expectRuntimeError(() => sampleToken(f32([-Infinity, -Infinity]), { temperature: 1 }, [], rng), 'RT318');
    expectRuntimeError(() => sampleToken(f32([]), {}, [], rng), 'RT316');
  });

  it('equals the plain argmax loop on lengths around the 4-wide groups, with ties, infinities and NaNs', () => {
    // the plain loop: the first index of the largest value, failing at the first NaN
    const plain = (s: Float32Array): number | string => {
      let best = 0, max = -Infinity;
      for (let i = 0; i < s.length; i++) {
        if (s[i] !== s[i]) return `index ${i}`;
        if (s[i]! > max) { max = s[i]!; best = i; }
      }
      return best;
    };
    const g = createRng(7), r = () => g.next();
    const pool = [-Infinity, Infinity, 0, -0, 1, 1, -2, 3.5, 3.5];
    let nans = 0;
    for (let c = 0; c < 3000; c++) {
      const n = 1 + (c % 23);
      // small values so that ties are common; now and then an infinity or a NaN
      const s = Float32Array.from({ length: n }, () => {
        const u = r();
        return u < 0.03 ? NaN : u < 0.15 ? pool[Math.floor(r() * pool.length)]! : Math.floor(r() * 5) - 2;
      });
      const want = plain(s);
      if (typeof want === 'string') {
        nans++;
        expectRuntimeError(() => sampleToken(s, {}, [], rng), 'RT317', want);
      } else expect(sampleToken(s, {}, [], rng)).toBe(want);
    }
    expect(nans).toBeGreaterThan(100);
  });
});
// ---- each filter on a hand-made distribution ---------------------------------------------------

describe('filters', () => {
  const probs = [0.1, 0.4, 0.05, 0.3, 0.15];
  const logits = logitsOf(probs);

  it('temperature rescales the logits', () => {
    const k = kept(logits, { temperature: 0.5 });
    const sq = probs.map((p) => p * p);
    const z = sq.reduce((a, b) => a + b, 0);
    expectProbs(k.probs, sq.map((s) => s / z));
  });

  it('top-k keeps the k largest, and every tie of the k-th', () => {
    expect(kept(logits, { temperature: 1, topK: 2 })).toMatchObject({ ids: [1, 3] });
    expectProbs(kept(logits, { temperature: 1, topK: 2 }).probs, [0.4 / 0.7, 0.3 / 0.7]);
    expect(kept(logits, { temperature: 1, topK: 5 }).ids).toEqual([0, 1, 2, 3, 4]);
    expect(kept(logits, { temperature: 1, topK: 50 }).ids).toEqual([0, 1, 2, 3, 4]);
    expect(kept(f32([1, 3, 3, 2, 3]), { temperature: 1, topK: 2 }).ids).toEqual([1, 2, 4]);
  });

  it('top-p keeps the smallest head with mass ≥ topP, at least one token', () => {
    // Sorted: 0.4 (id 1), 0.3 (id 3), 0.15 (id 4), 0.1 (id 0), 0.05 (id 2).
    expect(kept(logits, { temperature: 1, topP: 0.35 }).ids).toEqual([1]);
    expect(kept(logits, { temperature: 1, topP: 0.6 }).ids).toEqual([1, 3]);
    expect(kept(logits, { temperature: 1, topP: 0.8 }).ids).toEqual([1, 3, 4]);
    expect(kept(logits, { temperature: 1, topP: 0.9 }).ids).toEqual([0, 1, 3, 4]);
    expect(kept(logits, { temperature: 1, topP: 1e-9 }).ids).toEqual([1]);
    expect(kept(logits, { temperature: 1, topP: 1 }).ids).toEqual([0, 1, 2, 3, 4]);
    expectProbs(kept(logits, { temperature: 1, topP: 0.8 }).probs, [0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85]);
  });

  it('top-p breaks ties at the boundary towards lower ids', () => {
    // Four equal tokens: mass 0.25 each, so 0.5 needs exactly two of them.
    expect(kept(f32([1, 1, 1, 1]), { temperature: 1, topP: 0.5 }).ids).toEqual([0, 1]);
    expect(kept(f32([0, 5, 0, 5, 0]), { temperature: 1, topP: 0.3 }).ids).toEqual([1]);
    // e^5 ≈ 148.4: the two heavy tokens hold 0.990, one light one more 0.9933, two 0.9967.
    expect(kept(f32([0, 5, 0, 5, 0]), { temperature: 1, topP: 0.995 }).ids).toEqual([0, 1, 2, 3]);
  });

  it('min-p drops tokens below minP × the top probability', () => {
    // Top prob 0.4: minP 0.3 -> threshold 0.12 keeps 0.4, 0.3, 0.15.
    expect(kept(logits, { temperature: 1, minP: 0.3 }).ids).toEqual([1, 3, 4]);
    expect(kept(logits, { temperature: 1, minP: 0.2 }).ids).toEqual([0, 1, 3, 4]);
    expect(kept(logits, { temperature: 1, minP: 1 }).ids).toEqual([1]);
    expect(kept(logits, { temperature: 1, minP: 0 }).ids).toEqual([0, 1, 2, 3, 4]);
  });

  it('runs top-k, then top-p on the renormalised rest, then min-p', () => {
    // top-k 2 leaves 0.4/0.7 ≈ 0.571 and 0.3/0.7: top-p 0.5 then keeps only id 1,
    // where top-p 0.5 on the full distribution would keep ids 1 and 3.
    expect(kept(logits, { temperature: 1, topP: 0.5 }).ids).toEqual([1, 3]);
    expect(kept(logits, { temperature: 1, topK: 2, topP: 0.5 }).ids).toEqual([1]);
    // Temperature 2 flattens before top-p: sqrt-probs 0.632, 0.548, 0.387, 0.316, 0.224 (sum 2.107).
    expect(kept(logits, { temperature: 2, topP: 0.6 }).ids).toEqual([1, 3, 4]);
    // min-p after top-p: top-p 0.9 keeps 4 tokens; min-p 0.3 (threshold 0.12) drops 0.1.
    expect(kept(logits, { temperature: 1, topP: 0.9, minP: 0.3 }).ids).toEqual([1, 3, 4]);
  });
});

// ---- against the full-sort reference on larger vocabularies ------------------------------------

describe('large vocabularies', () => {
  const gaussian = (rng: ReturnType<typeof createRng>) => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());

  const cases: [string, number, SamplingOptions][] = [
    ['top-k 40', 3, { temperature: 0.8, topK: 40 }],
    ['top-p 0.9 peaked', 6, { temperature: 0.7, topP: 0.9 }],
    ['top-p 0.95 flat', 0.3, { temperature: 1.3, topP: 0.95 }],
    ['top-k + top-p + min-p', 3, { temperature: 1, topK: 200, topP: 0.8, minP: 0.05 }],
    ['min-p only', 2, { temperature: 1.1, minP: 0.1 }],
    ['everything + penalty', 3, { temperature: 0.9, topK: 1000, topP: 0.97, minP: 0.01, repetitionPenalty: 1.3 }],
  ];

  it.each(cases)('%s matches the reference', (_name, scale, o) => {
    const rng = createRng(123);
    const V = 6000;
    const logits = Float32Array.from({ length: V }, () => scale * gaussian(rng));
    const history = Array.from({ length: 300 }, () => rng.nextU32() % V);
    const got = kept(logits, o, history);
    const want = reference(logits, o, history);
    expect(got.ids).toEqual(want.ids);
    expectProbs(got.probs, want.probs, 1e-9);
  });

  it('handles V = 128k with top-k without sorting the vocabulary', () => {
    const rng = createRng(5);
    const V = 128 * 1024;
    const logits = Float32Array.from({ length: V }, () => 4 * gaussian(rng));
    const sorted = Array.from(logits).sort((a, b) => b - a);
    // the longest array any sort is called on while sampling (speed itself is for bench/)
    let longestSort = 0;
    const typedProto = Object.getPrototypeOf(Int32Array.prototype) as { sort: (...a: unknown[]) => unknown };
    const sorts = [vi.spyOn(Array.prototype, 'sort'), vi.spyOn(typedProto, 'sort')];
    try {
      for (let i = 0; i < 20; i++) sampleToken(logits, { temperature: 0.7, topK: 50, topP: 0.9 }, [], rng);
      for (const spy of sorts) for (const call of spy.mock.contexts) longestSort = Math.max(longestSort, (call as ArrayLike<unknown>).length);
    } finally {
      for (const spy of sorts) spy.mockRestore();
    }
    expect(longestSort).toBeLessThanOrEqual(1000);
    const k = kept(logits, { temperature: 0.7, topK: 50 });
    expect(k.ids.length).toBe(50);
    expect(Math.min(...k.ids.map((i) => logits[i]))).toBe(sorted[49]);
  });
});

// ---- draws -------------------------------------------------------------------------------------

describe('draws', () => {
  /**
   * Pearson chi-square of `n` seeded draws against the renormalised kept probabilities. With the
   * seed fixed the statistic is deterministic; the bound is the 99.9% quantile for its degrees
   * of freedom, so a correct sampler fails it for one seed in a thousand, and these seeds pass.
   */
  function chiSquare(logits: Float32Array, o: SamplingOptions, n: number, seed: number): { stat: number; df: number; unexpected: number } {
    const { ids, probs } = kept(logits, o);
    const counts = new Map<number, number>();
    const rng = createRng(seed);
    for (let i = 0; i < n; i++) {
      const id = sampleToken(logits, o, [], rng);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    let stat = 0;
    ids.forEach((id, j) => {
      const e = n * probs[j];
      stat += ((counts.get(id) ?? 0) - e) ** 2 / e;
    });
    const unexpected = [...counts.keys()].filter((id) => !ids.includes(id)).length;
    return { stat, df: ids.length - 1, unexpected };
  }
  const CHI2_999 = [NaN, 10.83, 13.82, 16.27, 18.47, 20.52]; // by degrees of freedom

  const probs = [0.1, 0.4, 0.05, 0.3, 0.15];
  const logits = logitsOf(probs);
  it.each([
    ['plain', { temperature: 1 }],
    ['temperature 0.5', { temperature: 0.5 }],
    ['top-k 3', { temperature: 1, topK: 3 }],
    ['top-p 0.8', { temperature: 1, topP: 0.8 }],
    ['min-p 0.2', { temperature: 1.5, minP: 0.2 }],
  ] as [string, SamplingOptions][])('frequencies match the renormalised probabilities: %s', (_name, o) => {
    const { stat, df, unexpected } = chiSquare(logits, o, 50000, 2024);
    expect(unexpected).toBe(0);
    expect(stat, `chi-square ${stat.toFixed(2)} with ${df} df`).toBeLessThan(CHI2_999[df]);
  });

  it('frequencies are within 0.01 of the probabilities (max abs diff, 50k draws)', () => {
    const rng = createRng(77);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 50000; i++) counts[sampleToken(logits, { temperature: 1 }, [], rng)]++;
    // sd of a frequency ≤ √(0.25/50000) ≈ 0.0022, so 0.01 is > 4 sd.
    counts.forEach((c, i) => expect(Math.abs(c / 50000 - probs[i])).toBeLessThan(0.01));
  });

  it('gives the same sequence for the same seed and another for another seed', () => {
    const run = (seed: number) => {
      const rng = createRng(seed);
      return Array.from({ length: 200 }, () => sampleToken(logits, { temperature: 1.2, topP: 0.95 }, [], rng));
    };
    expect(run(31)).toEqual(run(31));
    expect(run(31)).not.toEqual(run(32));
  });
});

// ---- validation --------------------------------------------------------------------------------

describe('validateSampling', () => {
  const rows: [SamplingOptions, string, string][] = [
    [{ temperature: -0.1 }, 'RT310', 'temperature'],
    [{ temperature: NaN }, 'RT310', 'temperature'],
    [{ temperature: Infinity }, 'RT310', 'temperature'],
    [{ topK: -1 }, 'RT311', 'topK'],
    [{ topK: 2.5 }, 'RT311', 'topK'],
    [{ topP: 0 }, 'RT312', 'topP'],
    [{ topP: 1.01 }, 'RT312', 'topP'],
    [{ topP: NaN }, 'RT312', 'topP'],
    [{ minP: -0.01 }, 'RT313', 'minP'],
    [{ minP: 1.5 }, 'RT313', 'minP'],
    [{ repetitionPenalty: 0 }, 'RT314', 'repetitionPenalty'],
    [{ repetitionPenalty: -1 }, 'RT314', 'repetitionPenalty'],
    [{ seed: 1.5 }, 'RT315', 'seed'],
  ];
  it.each(rows)('%o -> %s', (o, code, key) => {
    expect(expectRuntimeError(() => validateSampling(o), code, `sampling option ${key}`).key).toBe(key);
    expect(expectRuntimeError(() => sampleToken(f32([0, 1]), o, [], createRng(0)), code).key).toBe(key);
  });

  it('accepts the boundaries', () => {
    expect(() => validateSampling({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1e-3, seed: 0 })).not.toThrow();
    expect(() => validateSampling({ topP: 1e-9, minP: 1, seed: -(2 ** 53 - 1) })).not.toThrow();
    expect(() => validateSampling({})).not.toThrow();
  });
});
