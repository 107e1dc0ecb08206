// Sliding-window attention on the wasm backend = the CPU backend (itself checked against a float64
// band-masked reference in test/runtime/cpu/window.test.ts), within 1e-5: prefill (attentionAt over
// the gathered history in the shared memory, the module's steps around the wasm products; and
// attentionWasm, the same in JS, for a backend without the module) and the one-token attention
// rendered in the program module over the ring, with random cache rows already in the slots (before < window, past
// it, so the ring has wrapped), ragged sequences, a block of query rows past 64, GQA and an odd head
// dim; the output and every slot (the ring after the new rows) compared; with the module on one
// thread and on two (the one-token attention's KV heads shared by them: runtime/wasm/split.ts).

import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../../../runtime/wasm/backend.ts';
import { type OpInput, runOp } from '../../helpers/kernels.ts';
import { useProgramBackends } from '../../helpers/wasm-program.ts';
import { expectClose, prng, uniform } from '../cpu/check.ts';

const backendFor = useProgramBackends();

const act = (rand: () => number, T: number, shape: readonly number[], lo = -1, hi = 1): OpInput =>
  ({ act: uniform(rand, T * shape.reduce((a, b) => a * b, 1), lo, hi), shape: ['T', ...shape] });
const TOL = { atol: 1e-5, rtol: 1e-5 };

describe('sliding-window attention: wasm = the CPU backend', () => {
  // capacity = T + the longest history (runOp's pool); a window past it makes the ring the whole cache
  const SHAPES = [
    { mode: 'prefill' as const, seqs: [5, 1, 9], before: [3, 0, 7], window: 4, H: 4, KV: 2, Dh: 64 },
    { mode: 'prefill' as const, seqs: [70, 2], before: [1, 9], window: 5, H: 2, KV: 1, Dh: 12 },
    { mode: 'prefill' as const, seqs: [70, 3], before: [0, 6], window: 66, H: 2, KV: 2, Dh: 8 },
    { mode: 'prefill' as const, seqs: [4, 6], before: [2, 5], window: 500, H: 4, KV: 1, Dh: 5 },
    { mode: 'decode' as const, seqs: [1, 1, 1], before: [3, 0, 11], window: 4, H: 4, KV: 2, Dh: 64 },
    { mode: 'decode' as const, seqs: [1, 1], before: [5, 2], window: 2, H: 3, KV: 3, Dh: 5 },
    { mode: 'decode' as const, seqs: [1, 1], before: [7, 1], window: 50, H: 2, KV: 1, Dh: 7 },
  ];
  SHAPES.forEach((c, n) => {
    it(`${c.mode} sequences ${c.seqs.join('+')} after ${c.before.join('+')}, window ${c.window}, H=${c.H} KV=${c.KV} Dh=${c.Dh}`, () => {
      const T = c.seqs.reduce((a, b) => a + b, 0);
      const r = prng(9100 + n);
      const inputs = [act(r, T, [c.H, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh], -2, 2), act(r, T, [c.KV, c.Dh])];
      const attrs = { scale: 1 / Math.sqrt(c.Dh), window: c.window };
      const state = (bytes: number, seq: number) => new Uint8Array(uniform(prng(91 + 31 * seq + n), bytes / 4, -1, 1).buffer);
      const batch = { mode: c.mode, seqs: c.seqs, before: c.before, state };
      const cpu = runOp('attention', inputs, attrs, T, batch);
      expect(cpu.pool.slotBytes, 'a slot holds the ring').toBe(4 * 2 * c.KV * c.Dh * Math.min(c.window, T + Math.max(...c.before)));
      for (const [module, threads] of [[true, 1], [true, 2], [false, 1]] as const) {
        let backend: WasmBackend | undefined;
        const got = runOp('attention', inputs, attrs, T, { ...batch, backend: (p) => (backend = backendFor(p, { module, threads })) });
        const family = c.mode === 'decode' ? 'attention_decode' : 'attention';
        const ks = got.program.entries[c.mode].kernels.filter((k) => k.family === family);
        expect(ks.map((k) => k.attrs.window)).toEqual([c.window]);
        // with the module both run there: the one-token attention rendered over the ring, prefill as attentionAt's steps
        for (const k of ks) expect(backend!.renders(k), `${k.name} runs in the module`).toBe(module);
        const what = `attention ${module ? 'with' : 'without'} the module, ${threads} thread(s), ${JSON.stringify(c)}`;
        expectClose(got.outputs[0]!, cpu.outputs[0]!, TOL, what);
        for (const [i, slot] of got.slots.entries()) {
          const want = new Float32Array(cpu.pool.save(cpu.slots[i]!).slice().buffer);
          expectClose(new Float32Array(got.pool.save(slot).slice().buffer), want, TOL, `${what} ring of sequence ${i}`);
        }
      }
    });
  });
});
