// Model.load's quantise-on-load through the WebAssembly SIMD quantiser (worker threads, reads
// overlapped: runtime/quantize-wasm.ts) against the same load forced onto the JS reference
// (`quantizer: 'js'`): logits equal bit for bit (tolerance 0) on the trained tiny-bamba-a (bf16 and
// f32 checkpoints) and on a random checkpoint with a tied head (the embedding kept for two weights),
// wasm and cpu backends, q8 and q4, one and two threads; and a refusal (RT176, RT144) names the
// same tensor and reason. The quantisation is checked not to be a no-op.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { type LoadOptions, Model } from '../../runtime/model.ts';
import { type NamedTensor, writeSafetensors } from '../../runtime/safetensors.ts';
import { makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a');
const work = makeDir('archc-quantizer-load-');
let kernels: Uint8Array[];
beforeAll(async () => { kernels = await wasmKernelVariants(); });
afterAll(() => removeDir(work));

async function load(dir: string, opts: LoadOptions): Promise<Model> {
  const program = programFor(dir);
  const extra = opts.backend === 'wasm' ? { wasmKernels: kernels, wasmProgram: await wasmProgram(program) } : {};
  return Model.loadProgram(program, dir, { ...extra, ...opts });
}

/** Packed forward of two sequences, then a prefill and two decode steps. */
function logits(m: Model, seed: number): Float32Array[] {
  const a = randomIds(13, m.vocab, seed), b = randomIds(7, m.vocab, seed + 1);
  const out = [m.forward({ ids: [...a, ...b], positions: [...a.keys(), ...b.keys()] }).logits];
  const { states, logits: last } = m.prefill([a, b]);
  out.push(...last, m.decode([1, 2], states), m.decode([3, 4], states));
  return out;
}

function expectBitEqual(got: readonly Float32Array[], want: readonly Float32Array[], what: string): void {
  expect(got.length).toBe(want.length);
  for (const [k, w] of want.entries()) {
    const g = got[k]!;
    const i = w.findIndex((v, j) => !Object.is(v, g[j]));
    expect(i, `${what}, output ${k}: first differing logit [${i}]: ${g[i]} vs ${w[i]}`).toBe(-1);
  }
}

describe('quantise-on-load: the wasm quantiser gives the JS reference\'s model, bit for bit', () => {
  for (const stored of ['bf16', 'f32'] as const) {
    it(`trained tiny-bamba-a (${stored}): wasm and cpu backends, q8 and q4`, async () => {
      const dir = join(TINY_A, stored);
      for (const backend of ['wasm', 'cpu'] as const) {
        for (const quantize of ['q8', 'q4'] as const) {
          const js = await load(dir, { backend, threads: 2, quantize, quantizer: 'js' });
          expect(js.quantization!.quantizer).toBe('js');
          const want = logits(js, 5);
          js.dispose();
          for (const threads of [2, 1]) {
            const m = await load(dir, { backend, threads, quantize });
            expect(m.quantization!.formats.size, 'weights were quantised').toBeGreaterThan(0);
            expect(m.quantization!.quantizer).toBe(threads === 1 ? 'wasm, 1 worker' : `wasm, ${threads} workers`);
            expectBitEqual(logits(m, 5), want, `${stored} ${backend} ${quantize} ${threads} threads`);
            m.dispose();
          }
        }
      }
      const plain = await load(dir, { backend: 'cpu', threads: 2 });
      const q = await load(dir, { backend: 'cpu', threads: 2, quantize: 'q4' });
      expect(logits(plain, 5)[0], 'quantising changes the logits').not.toEqual(logits(q, 5)[0]);
      plain.dispose();
      q.dispose();
    });
  }

  it('a random checkpoint with a tied head (the embedding read once, quantised for both), bf16', async () => {
    const dir = join(work, 'tied');
    mkdirSync(dir);
    writeCheckpoint(dir, {}, { dtype: 'bf16', seed: 3 }); // TINY ties its head
    for (const quantize of ['q8', 'q4'] as const) {
      const js = await load(dir, { backend: 'wasm', threads: 2, quantize, quantizer: 'js' });
      const want = logits(js, 9);
      js.dispose();
      const m = await load(dir, { backend: 'wasm', threads: 2, quantize });
      expect(m.quantization!.formats.get('model.embed_tokens.weight')).toBe(quantize);
      expectBitEqual(logits(m, 9), want, `tied ${quantize}`);
      m.dispose();
    }
  });

  for (const [code, value, where] of [['RT176', 1e30, /out_proj.*\[3, 32\.\.63\]/s], ['RT144', NaN, /out_proj.*index 232/s]] as const) {
    it(`${code}: ${value} in a quantised weight is refused as the reference load refuses it, naming the tensor`, async () => {
      const dir = join(work, code);
      mkdirSync(dir);
      const { tensors } = writeCheckpoint(dir, {}, { dtype: 'f32' });
      const name = 'model.layers.0.mamba.out_proj.weight';
      const t = tensors.find((x) => x.name === name)!.tensor;
      const data = new Float32Array(t.data as Float32Array);
      data[3 * t.shape[1]! + 40] = value;
      writeSafetensors(join(dir, 'model.safetensors'), tensors.map((x): NamedTensor => (x.name === name ? { name, tensor: { ...t, data } } : x)), { format: 'pt' });
      const message = async (opts: LoadOptions) => {
        const e = await load(dir, { backend: 'cpu', threads: 2, quantize: 'q4', ...opts }).then(() => null, (x: unknown) => x);
        expect(e).toBeInstanceOf(RuntimeError);
        expect((e as RuntimeError).code).toBe(code);
        return (e as RuntimeError).message;
      };
      const want = await message({ quantizer: 'js' });
      expect(want).toMatch(where);
      expect(await message({})).toBe(want);
      expect(await message({ threads: 1 })).toBe(want);
    });
  }
});
