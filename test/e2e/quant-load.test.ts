// Quantise on load (Model.load's `quantize`): the CPU reference reads q8/q4 weights exactly per
// runtime/quant.ts' definition — a quantised model's logits equal, bit for bit, those of an f32
// checkpoint holding the dequantised values (random and trained weights; packed forward, prefill
// and step-by-step decode; one thread and two). Which weights are quantised, overrides, merged
// parts, and the coded refusals.

import { cpSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Model } from '../../runtime/model.ts';
import { dequantizeRows, quantize } from '../../runtime/quant.ts';
import { type NamedTensor, openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { loadModel, makeDir, randomIds, randomTensors, removeDir, writeCheckpoint, compileTiny } from '../helpers/checkpoints.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a/f32');
const V = 96;

/** Expects `p` to reject with a RuntimeError of `code` whose message matches `text`. */
async function expectRejects(p: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e, `expected ${code}`).toBeInstanceOf(RuntimeError);
  expect((e as RuntimeError).code, (e as RuntimeError).message).toBe(code);
  expect((e as RuntimeError).message).toMatch(text);
}

let base: string;
beforeAll(() => {
  base = makeDir('archc-quant-');
});
afterAll(() => removeDir(base));

const sub = (name: string) => {
  const d = join(base, name);
  mkdirSync(d);
  return d;
};

/** A copy of checkpoint `dir` whose tensors named in `formats` hold their dequantised values (f32). */
function dequantisedCopy(dir: string, formats: ReadonlyMap<string, 'q8' | 'q4'>, name: string): string {
  const out = sub(name);
  cpSync(join(dir, 'config.json'), join(out, 'config.json'));
  const ck = openCheckpoint(dir);
  const tensors: NamedTensor[] = [];
  for (const n of ck.tensors.keys()) {
    const t = ck.read(n);
    const f = formats.get(n);
    if (!f) { tensors.push({ name: n, tensor: t }); continue; }
    const q = quantize(t, f);
    if ('reason' in q) throw new Error(q.reason);
    tensors.push({ name: n, tensor: { dtype: 'f32', shape: t.shape, data: dequantizeRows(q.q, 0, t.shape[0]!) } });
  }
  ck.close();
  writeSafetensors(join(out, 'model.safetensors'), tensors, { format: 'pt' });
  return out;
}

/** Logits of packed forward, prefill's last tokens and decode one token at a time. */
function run(m: Model, seqs: readonly number[][]): Float32Array[] {
  const ids = seqs.flat();
  const cu = [0];
  for (const s of seqs) cu.push(cu.at(-1)! + s.length);
  const out = [m.forward({ ids, cuSeqlens: cu }).logits];
  const { states, logits } = m.prefill(seqs.map((s) => s.slice(0, -2)));
  out.push(...logits);
  for (let j = 2; j >= 1; j--) out.push(m.step(seqs.map((s) => [s[s.length - j]!]), states));
  return out;
}

describe('CPU reference reads quantised weights exactly', () => {
  for (const dtype of ['q8', 'q4'] as const) {
    it(`${dtype}: random tiny checkpoint (f32 and bf16) equals its dequantised f32 copy, 1 and 2 threads`, async () => {
      for (const stored of ['f32', 'bf16'] as const) {
        const dir = writeCheckpoint(sub(`rand-${dtype}-${stored}`), {}, { dtype: stored, seed: 3 }).dir;
        const seqs = [randomIds(9, V, 31), randomIds(6, V, 32)];
        const q = await loadModel(dir, { backend: 'cpu', threads: 1, quantize: dtype });
        const formats = q.quantization!.formats;
        expect(formats.size).toBeGreaterThan(0);
        const ref = await loadModel(dequantisedCopy(dir, formats, `deq-${dtype}-${stored}`), { backend: 'cpu', threads: 1 });
        const want = run(ref, seqs);
        expect(run(q, seqs)).toEqual(want);
        const q2 = await loadModel(dir, { backend: 'cpu', threads: 2, quantize: dtype });
        expect(run(q2, seqs)).toEqual(want);
        // and the quantisation is not a no-op: the unquantised model differs
        const plain = await loadModel(dir, { backend: 'cpu', threads: 1 });
        expect(run(plain, seqs)[0]).not.toEqual(want[0]);
        for (const m of [q, q2, ref, plain]) m.dispose();
      }
    });
  }

  it('trained tiny-bamba-a, q4 with the head at q8: equals its dequantised copy', async () => {
    const text = Array.from(new TextEncoder().encode('The standard library of Python has a module for regular expressions.'));
    const opt = { default: 'q4', overrides: { 'model.embed_tokens.weight': 'q8' } } as const;
    const q = await loadModel(TINY_A, { backend: 'cpu', threads: 2, quantize: opt });
    const formats = q.quantization!.formats;
    expect(formats.get('model.embed_tokens.weight')).toBe('q8');
    expect(formats.get('model.layers.0.mamba.in_proj.weight')).toBe('q4');
    const ref = await loadModel(dequantisedCopy(TINY_A, formats, 'deq-tiny-a'), { backend: 'cpu', threads: 2 });
    expect(run(q, [text.slice(0, 40), text.slice(40)])).toEqual(run(ref, [text.slice(0, 40), text.slice(40)]));
    q.dispose();
    ref.dispose();
  });
});

describe('which weights', () => {
  it('products\' and embeddings\' matrices only: 1-D tensors, norms and the conv weight stay', async () => {
    const dir = writeCheckpoint(sub('which'), { tie: false } as never, { seed: 4 }).dir;
    const m = await loadModel(dir, { backend: 'cpu', threads: 1, quantize: 'q8' });
    const names = [...m.quantization!.formats.keys()];
    const all = m.program.weights.map((w) => w.name);
    const expected = all.filter((n) => /(proj|embed_tokens|lm_head)\.weight$/.test(n));
    expect(names.sort()).toEqual(expected.sort());
    expect(names.some((n) => /norm|conv1d|A_log|dt_bias|\.D$/.test(n))).toBe(false);
    m.dispose();
  });

  it('parts merged into one product take the widest format asked for any of them', async () => {
    const dir = writeCheckpoint(sub('merged'), {}, { seed: 5 }).dir;
    const m = await loadModel(dir, { backend: 'cpu', threads: 1, quantize: { default: 'q4', overrides: { 'model.layers.1.self_attn.k_proj.weight': 'q8' } } });
    const f = m.quantization!.formats;
    for (const p of ['q', 'k', 'v']) expect(f.get(`model.layers.1.self_attn.${p}_proj.weight`)).toBe('q8');
    expect(f.get('model.layers.3.self_attn.k_proj.weight')).toBe('q4');
    expect(f.get('model.layers.1.self_attn.o_proj.weight')).toBe('q4');
    m.dispose();
    const kept = await loadModel(dir, { backend: 'cpu', threads: 1, quantize: { default: 'q4', overrides: { 'model.layers.0.feed_forward.up_proj.weight': 'none' } } });
    expect(kept.quantization!.formats.has('model.layers.0.feed_forward.gate_proj.weight')).toBe(false);
    expect(kept.quantization!.kept).toContainEqual({ name: 'model.layers.0.feed_forward.gate_proj.weight', reason: 'merged with a part kept as stored' });
    kept.dispose();
  });

  it('a weight whose K is not a multiple of 32 stays as stored, reported with the reason', async () => {
    const dir = writeCheckpoint(sub('k48'), { d_model: 48, mamba_heads: 6 }, { seed: 6 }).dir;
    const m = await loadModel(dir, { backend: 'cpu', threads: 1, quantize: 'q4' });
    const kept = m.quantization!.kept;
    expect(kept).toContainEqual({ name: 'model.layers.0.mamba.in_proj.weight', reason: 'K = 48 is not a multiple of 32' });
    // out_proj reads K = d_inner = 96: quantised
    expect(m.quantization!.formats.get('model.layers.0.mamba.out_proj.weight')).toBe('q4');
    m.dispose();
  });
});

describe('refusals', () => {
  let dir: string;
  beforeAll(() => {
    dir = writeCheckpoint(sub('errors'), {}, { seed: 7 }).dir;
  });

  it('RT170: an override naming no weight, or one that is not a matrix', async () => {
    await expectRejects(loadModel(dir, { backend: 'cpu', quantize: { default: 'q4', overrides: { 'lm_head.wieght': 'q8' } } }), 'RT170', /lm_head\.wieght: this model has no weight/);
    await expectRejects(loadModel(dir, { backend: 'cpu', quantize: { default: 'q4', overrides: { 'model.final_layernorm.weight': 'q8' } } }), 'RT170', /final_layernorm.*not a matrix/);
  });

  it('RT174: a format that is not q8, q4 or none', async () => {
    await expectRejects(loadModel(dir, { backend: 'cpu', quantize: 'q3' as never }), 'RT174', /quantize option quantize: expected one of q8, q4, none; got "q3"/);
    await expectRejects(loadModel(dir, { backend: 'cpu', quantize: { default: 'q4', overrides: { 'model.embed_tokens.weight': 'int4' as never } } }), 'RT174', /model\.embed_tokens\.weight/);
  });

  it('RT171: a backend without q8/q4 kernels refuses quantised weights, naming itself and the format', async () => {
    // every shipped backend reads both (the wasm one: test/e2e/wasm-quant.test.ts; webgpu:
    // test/webgpu/quant.test.ts), so a stand-in run target opens a reference backend that lists none
    const { RUN_TARGETS } = await import('../../runtime/targets.ts');
    const { CpuBackend } = await import('../../runtime/cpu/backend.ts');
    class StandIn extends CpuBackend {
      override readonly name = 'stand-in';
      override readonly quantFormats = [] as const;
    }
    const cpu = RUN_TARGETS.find((t) => t.name === 'cpu')!;
    const open = vi.spyOn(cpu, 'open').mockImplementation(async (p) => new StandIn(p));
    try {
      await expectRejects(loadModel(dir, { backend: 'cpu', quantize: 'q4' }), 'RT171', /the stand-in backend does not read q4 weights yet; run with --backend cpu/);
      expect(open).toHaveBeenCalledTimes(1);
    } finally {
      open.mockRestore();
    }
  });

  it('RT176: a group beyond an f16 scale names the tensor and the override that keeps it', async () => {
    const compiled = compileTiny();
    const tensors = randomTensors(compiled, { seed: 8 }).map((t) => {
      if (t.name !== 'model.layers.1.self_attn.o_proj.weight') return t;
      const data = Float32Array.from(t.tensor.data as Float32Array);
      data[3] = 1e9;
      return { name: t.name, tensor: { ...t.tensor, data } };
    });
    const big = writeCheckpoint(sub('huge'), {}, { tensors }).dir;
    await expectRejects(loadModel(big, { backend: 'cpu', quantize: 'q8' }), 'RT176', /tensor model\.layers\.1\.self_attn\.o_proj\.weight cannot be quantised to q8: group \[0, 0\.\.31\].*--keep model\.layers\.1\.self_attn\.o_proj\.weight=none/);
    const m = await loadModel(big, { backend: 'cpu', threads: 1, quantize: { default: 'q8', overrides: { 'model.layers.1.self_attn.o_proj.weight': 'none' } } });
    expect(m.quantization!.formats.has('model.layers.1.self_attn.o_proj.weight')).toBe(false);
    m.dispose();
  });
});
