// Inputs for the 8-bit activation rounding (runtime/act-quant.ts) on the GPU targets: the edge
// groups test/runtime/wasm/act-quant.test.ts checks the definition on (ties, binade edges 127/64,
// zero and tiny groups, subnormals, the largest finite value, NaN and infinity), and rows whose
// groups hold exact ties and their maximum at 127·s, so a product reading them differs by a whole
// step where a target rounds one value otherwise.

import { quantizeActivations } from '../../runtime/act-quant.ts';
import { uniform } from '../runtime/cpu/check.ts';

/** Named groups of 32 values (as f32). */
export function edgeGroups(rand: () => number): [string, Float32Array][] {
  const groups: [string, number[]][] = [];
  for (let i = 0; i < 24; i++) {
    const mag = 2 ** Math.floor(rand() * 60 - 30);
    groups.push([`random, magnitude ${mag}`, Array.from(uniform(rand, 32, -mag, mag))]);
  }
  groups.push(['ties', [127, ...Array.from({ length: 31 }, (_, i) => (i - 15) + 0.5)]]);
  groups.push(['ties at a small scale', [127 / 1024, ...Array.from({ length: 31 }, (_, i) => ((i - 15) + 0.5) / 1024)]]);
  groups.push(['ties, negative maximum', [-127 * 8, ...Array.from({ length: 31 }, (_, i) => ((i - 15) + 0.5) * 8)]]);
  for (const m of [127 / 64, Math.fround(127 / 64 + 2 ** -22), 1, Math.fround(2 - 2 ** -23), 127, 128, 63.5, 63.75, 2 ** 100, 2 ** -90]) {
    groups.push([`maximum ${m}`, [m, ...Array.from(uniform(rand, 31, -m, m))]]);
  }
  groups.push(['zeros', Array(32).fill(0)]);
  groups.push(['negative zeros and small negatives', [-0, 1, ...Array(30).fill(-0.001)]]);
  groups.push(['tiny (below 2^-96)', [2 ** -97, ...Array(31).fill(2 ** -100)]]);
  groups.push(['just at 2^-96', [2 ** -96, 2 ** -100, ...Array(30).fill(-(2 ** -97))]]);
  groups.push(['subnormals alone', [1e-40, -3e-39, ...Array(30).fill(1e-45)]]);
  groups.push(['subnormals beside a normal maximum', [2 ** -90, 1e-40, -1e-44, ...Array(29).fill(3e-39)]]);
  groups.push(['largest finite', [3.4028234663852886e38, -1e38, 1, ...Array(29).fill(2e37)]]);
  groups.push(['largest finite, negative', [-3.4028234663852886e38, 3e38, ...Array(30).fill(-1)]]);
  groups.push(['NaN', [1, NaN, ...Array(30).fill(0.5)]]);
  groups.push(['infinity', [1, -Infinity, ...Array(30).fill(0.5)]]);
  return groups.map(([n, g]) => [n, Float32Array.from(g)]);
}

/** T rows of K (a multiple of 32) uniform in [-1, 1), each group scaled by 2^p (p in -10..9), with its
 *  maximum 127·s (s = 2^(p-6), the group's step) and a few values at ties (k + 1/2)·s. */
export function tieRows(rand: () => number, T: number, K: number): Float32Array {
  const x = uniform(rand, T * K, -1, 1);
  for (let g = 0; g < x.length; g += 32) {
    const p = Math.floor(rand() * 20) - 10, s = 2 ** (p - 6);
    for (let i = g; i < g + 32; i++) x[i] = Math.fround(x[i]! * 2 ** p);
    x[g + Math.floor(rand() * 32)] = (rand() < 0.5 ? -127 : 127) * s;
    for (let t = 0; t < 4; t++) x[g + Math.floor(rand() * 32)] = (Math.floor(rand() * 200) - 100 + 0.5) * s;
  }
  return x;
}

/** The definition's rounding of T rows of K. */
export function rounded(x: Float32Array, T: number, K: number): Float32Array {
  const out = new Float32Array(T * K);
  quantizeActivations(x, 0, K, T, K, out);
  return out;
}

/** Index of the first value whose bits differ (NaN matching any NaN), or -1. */
export function firstBitDifference(got: Float32Array, want: Float32Array): number {
  for (let i = 0; i < want.length; i++) if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]!) && Number.isNaN(want[i]!)))) return i;
  return got.length === want.length ? -1 : want.length;
}
