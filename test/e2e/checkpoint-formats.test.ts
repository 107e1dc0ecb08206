// Checkpoint storage does not change the model: a bf16 checkpoint runs as the f32 checkpoint of the
// same values rounded to bf16 (weights are widened exactly; compute is f32 either way), and a
// sharded checkpoint runs as the single file it was split from. Tolerance as elsewhere:
// max|got − ref| ≤ 1e-5 · (1 + max|ref|).

import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toF32 } from '../../runtime/tensor.ts';
import { compileTiny, expectLogitsClose, loadModel, makeDir, maxAbsDiff, randomIds, randomTensors, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const RTOL = 1e-5;
const PARAMS = { mamba_groups: 2, attn_layers: [0, 3] };
const V = 96;
const ids = [...randomIds(7, V, 900), ...randomIds(11, V, 901)];
const cuSeqlens = [0, 7, 18];

let base: string;
beforeAll(() => {
  base = makeDir();
});
afterAll(() => removeDir(base));

const sub = (name: string) => {
  const d = join(base, name);
  mkdirSync(d);
  return d;
};

describe('bf16 weights', () => {
  it('equal an f32 checkpoint holding the bf16-rounded values; differ from the unrounded ones', async () => {
    const compiled = compileTiny(PARAMS);
    const bf16 = randomTensors(compiled, { seed: 21, dtype: 'bf16' });
    expect(bf16.every((t) => t.tensor.dtype === 'bf16' && t.tensor.data instanceof Uint16Array)).toBe(true);
    const rounded = bf16.map(({ name, tensor }) => ({ name, tensor: { dtype: 'f32' as const, shape: tensor.shape, data: toF32(tensor) } }));
    const exact = randomTensors(compiled, { seed: 21, dtype: 'f32' });

    const dBf16 = writeCheckpoint(sub('bf16'), PARAMS, { dtype: 'bf16', tensors: bf16 }).dir;
    const dRounded = writeCheckpoint(sub('rounded'), PARAMS, { dtype: 'f32', tensors: rounded }).dir;
    const dExact = writeCheckpoint(sub('exact'), PARAMS, { dtype: 'f32', tensors: exact }).dir;
    const mBf16 = await loadModel(dBf16);
    expect(mBf16.config.torch_dtype).toBe('bfloat16');
    expect(mBf16.program.params.dtype).toBe('bf16');

    const got = mBf16.forward({ ids, cuSeqlens }).logits;
    const ref = (await loadModel(dRounded)).forward({ ids, cuSeqlens }).logits;
    expectLogitsClose(got, ref, RTOL, 'bf16 checkpoint vs f32 of the rounded values', V);
    // control: rounding to bf16 moves the logits far more than the tolerance
    const unrounded = (await loadModel(dExact)).forward({ ids, cuSeqlens }).logits;
    expect(maxAbsDiff(got, unrounded)).toBeGreaterThan(100 * RTOL);
  });
});

describe('sharded checkpoints', () => {
  it('give the logits of the single file they were split from', async () => {
    const compiled = compileTiny(PARAMS);
    const tensors = randomTensors(compiled, { seed: 22 });
    const single = writeCheckpoint(sub('single'), PARAMS, { tensors }).dir;
    const sharded = writeCheckpoint(sub('sharded'), PARAMS, { tensors, shardSize: 16_384 }).dir;
    const files = readdirSync(sharded);
    expect(files).toContain('model.safetensors.index.json');
    expect(files).not.toContain('model.safetensors');
    expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(5);
    const a = (await loadModel(single)).forward({ ids, cuSeqlens }).logits;
    const b = (await loadModel(sharded)).forward({ ids, cuSeqlens }).logits;
    expectLogitsClose(b, a, RTOL, 'sharded vs single', V);
  });
});
