// Seeded PRNG for sampling: xoshiro128** seeded through splitmix32. Only 32-bit integer ops
// (Math.imul, >>>), so a seed gives the same sequence on every JS engine and platform.

export interface Rng {
  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number;
  /** A uniform unsigned 32-bit integer. */
  nextU32(): number;
}

/** splitmix32 step: a well-mixed 32-bit output from a 32-bit counter (used only for seeding). */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/** A random seed when the caller gives none (crypto where present: Node 20 and browsers). */
function freshSeed(): number {
  const c = (globalThis as { crypto?: { getRandomValues(a: Uint32Array): Uint32Array } }).crypto;
  if (c) return c.getRandomValues(new Uint32Array(1))[0];
  return Math.floor(Math.random() * TWO_POW_32);
}

/**
 * xoshiro128** (Blackman & Vigna). `seed` is any finite number; integers up to 2^53 use both their
 * low and high 32 bits, so nearby large seeds still differ. No seed: a random one.
 */
export function createRng(seed?: number): Rng {
  const s = seed === undefined ? freshSeed() : seed;
  if (!Number.isFinite(s)) throw new RangeError(`rng seed must be a finite number, got ${s}`);
  const whole = Math.trunc(s);
  const lo = (whole % TWO_POW_32) >>> 0;
  const hi = Math.floor(Math.abs(whole) / TWO_POW_32) >>> 0;
  const mix = { s: (lo ^ Math.imul(hi, 0x27d4eb2f) ^ (whole < 0 ? 0x5bd1e995 : 0)) | 0 };
  return xoshiro128ss([splitmix32(mix), splitmix32(mix), splitmix32(mix), splitmix32(mix)]);
}

/** xoshiro128** from an explicit 128-bit state (four u32 words, not all zero). */
export function xoshiro128ss(state: readonly [number, number, number, number]): Rng {
  let [a, b, c, d] = state.map((w) => w | 0);
  if ((a | b | c | d) === 0) a = 1; // the all-zero state is a fixed point

  function nextU32(): number {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  }

  function next(): number {
    const hi27 = nextU32() >>> 5;
    const lo26 = nextU32() >>> 6;
    return (hi27 * 67108864 + lo26) / TWO_POW_53;
  }

  return { next, nextU32 };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
