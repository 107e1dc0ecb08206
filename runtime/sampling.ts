// Next-token choice from one row of logits [V], with transformers' logits processors in its order:
// repetition penalty, temperature, top-k, top-p, min-p, then a draw from what is left. Greedy
// (temperature 0 or unset) is the argmax after the repetition penalty. Sized for V ~ 128k: top-k
// and top-p are quickselects (expected O(V)); nothing sorts the vocabulary.

import { createRng, type Rng } from './rng.ts';
import { fail, type RuntimeCode } from './errors.ts';

export interface SamplingOptions {
  /** 0 or undefined: greedy. */
  temperature?: number;
  /** Keep tokens whose logit is ≥ the k-th largest (ties kept, like transformers); 0/undefined: off. */
  topK?: number;
  /** Keep the smallest most-probable set with mass ≥ topP; 1/undefined: off. */
  topP?: number;
  /** Drop tokens with prob < minP × the top prob; 0/undefined: off. */
  minP?: number;
  /** > 1 discourages tokens already in the history; 1/undefined: off. */
  repetitionPenalty?: number;
  /** Seed for `rngFor`; sampleToken itself takes the generator. */
  seed?: number;
}

/** Throws a RuntimeError naming the first out-of-range option. */
export function validateSampling(o: SamplingOptions): void {
  const bad = (code: RuntimeCode, key: keyof SamplingOptions): never => fail(code, [o[key]], { key });
  const { temperature: t, topK: k, topP: p, minP: m, repetitionPenalty: r, seed: s } = o;
  if (t !== undefined && !(Number.isFinite(t) && t >= 0)) bad('RT310', 'temperature');
  if (k !== undefined && !(Number.isInteger(k) && k >= 0)) bad('RT311', 'topK');
  if (p !== undefined && !(p > 0 && p <= 1)) bad('RT312', 'topP');
  if (m !== undefined && !(m >= 0 && m <= 1)) bad('RT313', 'minP');
  if (r !== undefined && !(Number.isFinite(r) && r > 0)) bad('RT314', 'repetitionPenalty');
  if (s !== undefined && !Number.isSafeInteger(s)) bad('RT315', 'seed');
}

/** The generator for a run with these options: seeded when `seed` is set, random otherwise. */
export function rngFor(o: SamplingOptions): Rng {
  return createRng(o.seed);
}

// Scratch reused across calls (sampling is synchronous, so one set suffices).
let scores = new Float32Array(0);
let selectBuf = new Float32Array(0);

/** What is left to draw from: candidate ids, ascending, and their unnormalised probabilities
 * (the most probable candidate has weight 1). */
export interface TokenDistribution {
  readonly ids: Int32Array;
  readonly weights: Float64Array;
}

/**
 * One token id from `logits` [V]. `history` is every id so far (prompt included), read only by the
 * repetition penalty. Greedy draws nothing from `rng`; sampling draws exactly one number, and
 * candidates are visited in a fixed order, so one seed gives one sequence.
 */
export function sampleToken(logits: Float32Array, o: SamplingOptions, history: readonly number[], rng: Rng): number {
  const { ids, weights } = samplingDistribution(logits, o, history);
  if ((o.temperature ?? 0) === 0) return ids[0];
  let total = 0;
  for (let j = 0; j < weights.length; j++) total += weights[j];
  let u = rng.next() * total;
  for (let j = 0; j < weights.length; j++) {
    u -= weights[j];
    if (u < 0) return ids[j];
  }
  return ids[ids.length - 1]; // u landed on the rounding error past the last weight
}

/**
 * The argmax of `s` (the lowest index on ties), failing with RT317 at the first NaN. `!(x <= max)`
 * holds only for a new maximum or a NaN, so four values at a time take one well-predicted branch,
 * and a group that holds either is looked at value by value, in order: 26 against 58 µs at
 * V = 32k (a batch of 8 greedy streams argmaxes 8 rows a step).
 */
function argmax(s: Float32Array): { best: number; max: number } {
  const n = s.length;
  let best = 0, max = -Infinity;
  for (let i = 0; i < n; i += 4) {
    if (i + 4 <= n && s[i]! <= max && s[i + 1]! <= max && s[i + 2]! <= max && s[i + 3]! <= max) continue;
    for (let j = i, end = Math.min(i + 4, n); j < end; j++) {
      const x = s[j]!;
      if (!(x <= max)) {
        if (x !== x) fail('RT317', [j]);
        max = x;
        best = j;
      }
    }
  }
  return { best, max };
}

/** The processors without the draw: greedy gives the argmax alone. */
export function samplingDistribution(logits: Float32Array, o: SamplingOptions, history: readonly number[]): TokenDistribution {
  validateSampling(o);
  const V = logits.length;
  if (V === 0) fail('RT316', [V]);
  // Repetition penalty (transformers: gather, then score < 0 ? score * p : score / p, in f32) on a copy; greedy without one reads the logits.
  const penalty = o.repetitionPenalty ?? 1;
  if (scores.length < V) scores = new Float32Array(V);
  const s = penalty === 1 && (o.temperature ?? 0) === 0 ? logits : scores.subarray(0, V);
  if (s !== logits) s.set(logits);

  if (penalty !== 1) {
    const p = Math.fround(penalty);
    const seen = new Set<number>();
    for (let i = 0; i < history.length; i++) {
      const id = history[i];
      if (!Number.isInteger(id) || id < 0 || id >= V) fail('RT300', [id, i, V]);
      if (seen.has(id)) continue;
      seen.add(id);
      const x = s[id];
      s[id] = x > 0 ? x / p : x * p;
    }
  }

  const { best, max } = argmax(s);
  const temperature = o.temperature ?? 0;
  if (temperature === 0) return { ids: Int32Array.of(best), weights: Float64Array.of(1) };
  if (!Number.isFinite(max)) fail('RT318', [max]);

  // Candidates: top-k by the k-th largest penalised logit (dividing by T > 0 keeps the order).
  const topK = o.topK ?? 0;
  let cand: Int32Array;
  if (topK > 0 && topK < V) {
    const kth = kthLargest(s, topK);
    let n = 0;
    for (let i = 0; i < V; i++) if (s[i] >= kth) n++;
    cand = new Int32Array(n);
    n = 0;
    for (let i = 0; i < V; i++) if (s[i] >= kth) cand[n++] = i;
  } else {
    cand = new Int32Array(V);
    for (let i = 0; i < V; i++) cand[i] = i;
  }

  // Unnormalised probabilities w = exp((s - max) / T), in f64; the top token has w = 1.
  let w: Float64Array = new Float64Array(cand.length);
  const invT = 1 / temperature;
  for (let j = 0; j < cand.length; j++) w[j] = Math.exp((s[cand[j]] - max) * invT);

  const topP = o.topP ?? 1;
  if (topP < 1) [cand, w] = topPFilter(cand, w, topP);

  const minP = o.minP ?? 0;
  if (minP > 0) {
    // prob_i / prob_max = w_i / max(w); the kept set still holds the top token, so max(w) = 1.
    let n = 0;
    for (let j = 0; j < cand.length; j++) if (w[j] >= minP) n++;
    if (n < cand.length) {
      const c2 = new Int32Array(n);
      const w2 = new Float64Array(n);
      n = 0;
      for (let j = 0; j < cand.length; j++)
        if (w[j] >= minP) {
          c2[n] = cand[j];
          w2[n++] = w[j];
        }
      [cand, w] = [c2, w2];
    }
  }

  return { ids: cand, weights: w };
}

/**
 * Keep the smallest set of highest-probability candidates whose mass reaches topP of the total
 * (ties at the boundary go to the lower ids; at least one). A weighted quickselect: partition
 * around a pivot weight, keep or drop whole parts by their mass, recurse into the part that holds
 * the boundary, so no sort of the vocabulary. The result keeps the candidates' ascending order.
 */
function topPFilter(cand: Int32Array, w: Float64Array, topP: number): [Int32Array, Float64Array] {
  const n = w.length;
  let total = 0;
  for (let j = 0; j < n; j++) total += w[j];
  const need = topP * total;
  const pos = new Int32Array(n); // positions into cand/w, permuted by the partitions
  for (let j = 0; j < n; j++) pos[j] = j;
  let lo = 0; // pos[0, lo) are kept: each outweighs everything in pos[lo, hi)
  let hi = n; // pos[hi, n) are dropped
  let keptMass = 0;
  let keepEnd = -1; // set once the boundary is found
  while (lo < hi) {
    const pivot = median3(w[pos[lo]], w[pos[(lo + hi) >>> 1]], w[pos[hi - 1]]);
    // pos[lo, lt) > pivot, pos[lt, i) == pivot, pos(gt, hi) < pivot.
    let lt = lo;
    let gt = hi - 1;
    let i = lo;
    let massGt = 0;
    while (i <= gt) {
      const p = pos[i];
      const x = w[p];
      if (x > pivot) {
        pos[i++] = pos[lt];
        pos[lt++] = p;
        massGt += x;
      } else if (x < pivot) {
        pos[i] = pos[gt];
        pos[gt--] = p;
      } else i++;
    }
    const eqEnd = gt + 1;
    if (keptMass + massGt >= need) {
      hi = lt; // the boundary lies among the heavier part
      continue;
    }
    keptMass += massGt;
    let m = 0; // how many of the tied pivot-weight tokens are needed, lowest ids first
    while (lt + m < eqEnd && keptMass < need) {
      keptMass += pivot;
      m++;
    }
    if (keptMass >= need) {
      pos.subarray(lt, eqEnd).sort();
      keepEnd = lt + m;
      break;
    }
    lo = eqEnd;
  }
  if (keepEnd < 0) keepEnd = lo; // rounding left need just out of reach: keep what was accumulated
  const kept = pos.subarray(0, Math.max(1, keepEnd)).sort();
  const c2 = new Int32Array(kept.length);
  const w2 = new Float64Array(kept.length);
  for (let j = 0; j < kept.length; j++) {
    c2[j] = cand[kept[j]];
    w2[j] = w[kept[j]];
  }
  return [c2, w2];
}

/** The k-th largest value of `xs` (1-based k ≤ xs.length), by 3-way quickselect on a copy. */
function kthLargest(xs: Float32Array, k: number): number {
  const n = xs.length;
  if (selectBuf.length < n) selectBuf = new Float32Array(n);
  const a = selectBuf.subarray(0, n);
  a.set(xs);
  // Find the (k-1)-th element in descending order.
  let lo = 0;
  let hi = n - 1;
  const target = k - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const pivot = median3(a[lo], a[mid], a[hi]);
    // Partition a[lo..hi] into  > pivot | == pivot | < pivot.
    let lt = lo;
    let gt = hi;
    let i = lo;
    while (i <= gt) {
      const x = a[i];
      if (x > pivot) {
        a[i++] = a[lt];
        a[lt++] = x;
      } else if (x < pivot) {
        a[i] = a[gt];
        a[gt--] = x;
      } else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return pivot;
  }
  return a[lo];
}

function median3(x: number, y: number, z: number): number {
  if (x > y) [x, y] = [y, x];
  if (y > z) y = z;
  return x > y ? x : y;
}
