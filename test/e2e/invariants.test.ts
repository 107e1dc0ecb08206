// End-to-end invariants of the CPU engine on tiny random Bamba checkpoints (config.json +
// safetensors, loaded as `archc forward` loads them), in several configurations:
//   prefill = step-by-step decode · packed batch = each sequence alone (positions, cu_seqlens,
//   seq_idx) · prefill then decode/step = one forward over everything · batched decode = alone.
// Tolerance (fp32 compute): max|got − ref| ≤ 1e-5 · (1 + max|ref|) over the compared logits.

import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../runtime/model.ts';
import { type Params, TINY, expectLogitsClose, loadModel, makeDir, maxAbsDiff, randomIds, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';

const RTOL = 1e-5;

interface Config {
  readonly name: string;
  readonly params: Params;
  readonly dtype: 'f32' | 'bf16';
  readonly shardSize?: number;
}

const CONFIGS: readonly Config[] = [
  { name: 'groups 1, attention at layers 1 and 3, tied, chunk 4, f32', params: {}, dtype: 'f32' },
  { name: 'groups 2, attention first (layer 0), untied, chunk 4, f32', params: { mamba_groups: 2, attn_layers: [0], tie: false }, dtype: 'f32' },
  { name: 'groups 2, attention last (layer 2 of 3), tied, chunk 4, bf16', params: { n_layers: 3, attn_layers: [2], mamba_groups: 2 }, dtype: 'bf16' },
  {
    name: '8 Mamba heads of 8 dims, groups 4, one kv head, chunk 3, untied, sharded f32',
    params: { mamba_heads: 8, mamba_groups: 4, n_kv_heads: 1, chunk: 3, n_layers: 3, attn_layers: [1], tie: false }, dtype: 'f32', shardSize: 20_000,
  },
];

describe.each(CONFIGS)('$name', (cfg) => {
  let dir: string;
  let model: Model;
  let V: number;
  /** Logits of one sequence run alone from a fresh state. */
  const alone = (ids: readonly number[]) => model.forward({ ids }).logits;

  beforeAll(async () => {
    dir = makeDir();
    writeCheckpoint(dir, cfg.params, { dtype: cfg.dtype, seed: 11, shardSize: cfg.shardSize });
    model = await loadModel(dir);
    V = model.vocab;
  });
  afterAll(() => removeDir(dir));

  it('loads what was written (dtype, shards) and gives finite logits that depend on the input', () => {
    if (cfg.shardSize) expect(readdirSync(dir).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    expect(model.config.torch_dtype).toBe(cfg.dtype === 'bf16' ? 'bfloat16' : 'float32');
    const a = alone(randomIds(7, V, 1));
    const b = alone(randomIds(7, V, 2));
    expect(a.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0.1);
  });

  it.each([7, 11])('prefill of %i tokens = feeding them one at a time through decode', (len) => {
    const ids = randomIds(len, V, 100 + len);
    const ref = alone(ids);
    const state = model.newSequence();
    const got = new Float32Array(ref.length);
    for (let t = 0; t < len; t++) got.set(model.decode([ids[t]!], [state]), t * V);
    expect(state.length).toBe(len);
    expectLogitsClose(got, ref, RTOL, 'step-by-step vs prefill', V);
  });

  describe('packed = each sequence alone', () => {
    const lens = [7, 11, 3];
    const seqs = lens.map((n, i) => randomIds(n, TINY.vocab as number, 200 + i));
    const flat = seqs.flat();
    const starts = [0, 7, 18];
    let ref: Float32Array;
    beforeAll(() => {
      ref = new Float32Array(flat.length * V);
      seqs.forEach((s, i) => ref.set(alone(s), starts[i]! * V));
    });

    it('position ids restarting at 0', () => {
      const positions = seqs.flatMap((s) => s.map((_, j) => j));
      expectLogitsClose(model.forward({ ids: flat, positions }).logits, ref, RTOL, 'packed by positions', V);
    });

    it('cu_seqlens', () => {
      expectLogitsClose(model.forward({ ids: flat, cuSeqlens: [0, 7, 18, 21] }).logits, ref, RTOL, 'packed by cu_seqlens', V);
    });

    it('seq_idx', () => {
      const seqIdx = seqs.flatMap((s, i) => s.map(() => i));
      expectLogitsClose(model.forward({ ids: flat, seqIdx }).logits, ref, RTOL, 'packed by seq_idx', V);
    });

    it('(control) the same tokens as one sequence differ after the first boundary', () => {
      const one = model.forward({ ids: flat }).logits;
      expectLogitsClose(rows(one, V, 0, 7), rows(ref, V, 0, 7), RTOL, 'first sequence', V);
      expect(maxAbsDiff(rows(one, V, 7, 21), rows(ref, V, 7, 21))).toBeGreaterThan(1e-2);
    });
  });

  it('prefill of 5 tokens, then decode 3 = forward on all 8 (last 3 rows)', () => {
    const ids = randomIds(8, V, 300);
    const ref = alone(ids);
    const { states, logits } = model.prefill([ids.slice(0, 5)]);
    expectLogitsClose(logits[0]!, rows(ref, V, 4, 5), RTOL, 'prefill last-token logits', V);
    const got = new Float32Array(3 * V);
    for (let t = 5; t < 8; t++) got.set(model.decode([ids[t]!], states), (t - 5) * V);
    expectLogitsClose(got, rows(ref, V, 5, 8), RTOL, 'decode after prefill', V);
  });

  it('prefill of 5, then a step of 6 more (chunked scan from a non-zero state) = forward on all 11', () => {
    const ids = randomIds(11, V, 400);
    const ref = alone(ids);
    const { states } = model.prefill([ids.slice(0, 5)]);
    const got = model.step([ids.slice(5)], states);
    expect(states[0]!.length).toBe(11);
    expectLogitsClose(got, rows(ref, V, 5, 11), RTOL, 'step after prefill', V);
  });

  it('three prompts prefilled and decoded together = each alone', () => {
    const prompts = [randomIds(5, V, 500), randomIds(9, V, 501), randomIds(1, V, 502)];
    const more = [randomIds(3, V, 510), randomIds(3, V, 511), randomIds(3, V, 512)];
    const refs = prompts.map((p, i) => alone([...p, ...more[i]!]));
    const { states, logits } = model.prefill(prompts);
    prompts.forEach((p, i) => expectLogitsClose(logits[i]!, rows(refs[i]!, V, p.length - 1, p.length), RTOL, `prefill prompt ${i}`, V));
    for (let t = 0; t < 3; t++) {
      const out = model.decode(more.map((m) => m[t]!), states);
      prompts.forEach((p, i) => {
        const row = p.length + t;
        expectLogitsClose(rows(out, V, i, i + 1), rows(refs[i]!, V, row, row + 1), RTOL, `batched decode, sequence ${i}, token ${t}`, V);
      });
    }
  });
});
