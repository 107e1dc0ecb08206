// The experts family on the wasm backend (runtime/wasm/experts.ts: each chosen expert's rows through
// its own packed matrices on the product kernels) against the CPU backend, f32 and bf16 experts,
// prefill and decode; and what a step reads: the panels of the experts some token chose, once each
// per step — k of E experts' bytes for one token, never the unchosen ones'.

import { describe, expect, it } from 'vitest';
import type { EntryName } from '../../../runtime/program.ts';
import type { DType } from '../../../runtime/tensor.ts';
import { f32ToBf16 } from '../../../runtime/tensor.ts';
import type { WasmBackend } from '../../../runtime/wasm/backend.ts';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { useProgramBackends } from '../../helpers/wasm-program.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

const wasmFor = useProgramBackends();

const r = prng(777);
const act = (T: number, n: number, lo = -1, hi = 1): OpInput => ({ act: uniform(r, T * n, lo, hi), shape: ['T', n] });
const weight = (shape: number[], dtype: DType): OpInput => {
  const v = uniform(r, shape.reduce((a, b) => a * b, 1), -0.5, 0.5);
  return { weight: dtype === 'f32' ? { dtype, shape, data: v } : { dtype, shape, data: Uint16Array.from(v, f32ToBf16) } };
};
/** Token t's k experts: t, t + 1, … mod `used` (experts from `used` on are chosen by none). */
const routes = (T: number, k: number, used: number): OpInput => ({ act: Float32Array.from({ length: T * k }, (_, i) => (Math.floor(i / k) + (i % k)) % used), shape: ['T', k], dtype: 'i32' });

describe('experts on the wasm backend = the CPU backend', () => {
  for (const [dtype, mode, T, E, K, used] of [['f32', 'forward', 9, 6, 2, 5], ['bf16', 'forward', 5, 8, 2, 8], ['bf16', 'decode', 1, 8, 2, 8], ['f32', 'decode', 3, 6, 1, 4]] as const) {
    it(`${dtype} experts, ${mode}, ${T} rows, ${K} of ${E} (${used} used)`, () => {
      const H = 16, I = 12;
      const inputs = [act(T, H), routes(T, K, used), act(T, K, 0.1, 1), weight([E, 2 * I, H], dtype), weight([E, H, I], dtype)];
      const cpu = runOp('experts', inputs, {}, T, { mode: mode as EntryName });
      let backend: WasmBackend | undefined;
      const got = runOp('experts', inputs, {}, T, { mode: mode as EntryName, backend: (p) => (backend = wasmFor(p)) });
      expectClose(got.outputs[0]!, cpu.outputs[0]!, { atol: 2e-6, rtol: 2e-6 }, `experts ${dtype} ${mode}`);
      // the chosen experts' panels, each once: min(T + K − 1, used) experts × (2I·H + H·I) elements
      const chosen = new Set(Array.from((inputs[1] as { act: Float32Array }).act)).size;
      expect(backend!.experts.read).toBe(chosen * 3 * I * H * (dtype === 'bf16' ? 2 : 4));
      expect(chosen).toBeLessThan(E + (T > 1 ? 1 : 0));
      if (T === 1) expect(backend!.experts.read, 'one token reads k of E experts').toBe(K * 3 * I * H * 2);
    });
  }
});
