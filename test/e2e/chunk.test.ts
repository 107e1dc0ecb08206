// Chunked SSD = the sequential recurrence, at the model level: one set of weights, written once
// per chunk size (only config.json's mamba_chunk_size differs, since the chunk changes no shape),
// run on packed sequences whose lengths the chunks do not divide. Every chunk size must give the
// logits of token-by-token decode (the recurrence itself) to fp32 tolerance:
// max|got − ref| ≤ 1e-5 · (1 + max|ref|).

import { hfConfigText } from '../../compiler/init.ts';
import { linkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../runtime/model.ts';
import { type Params, compileTiny, expectLogitsClose, loadModel, makeDir, randomIds, randomTensors, removeDir, rows, writeCheckpoint } from '../helpers/checkpoints.ts';

const RTOL = 1e-5;
const CHUNKS = [1, 2, 3, 4, 64];
const LENS = [7, 11, 13];

describe.each<{ name: string; params: Params }>([
  { name: 'groups 1', params: { mamba_groups: 1 } },
  { name: 'groups 2, attention first', params: { mamba_groups: 2, attn_layers: [0] } },
])('chunked SSD = sequential recurrence ($name)', ({ params }) => {
  let base: string;
  const models = new Map<number, Model>();
  const V = 96;
  const seqs = LENS.map((n, i) => randomIds(n, V, 600 + i));
  let sequential: Float32Array;

  beforeAll(async () => {
    base = makeDir();
    const compiled = compileTiny(params);
    const tensors = randomTensors(compiled, { seed: 5 });
    const first = join(base, 'c0');
    writeCheckpoint(makeSub(first), params, { tensors });
    for (const chunk of CHUNKS) {
      // the same model.safetensors (a hard link), a config.json that says this chunk size
      const dir = makeSub(join(base, `chunk${chunk}`));
      linkSync(join(first, 'model.safetensors'), join(dir, 'model.safetensors'));
      writeFileSync(join(dir, 'config.json'), hfConfigText(compiled, 'f32', (cfg) => { cfg.mamba_chunk_size = chunk; }));
      models.set(chunk, await loadModel(dir));
    }
    // the recurrence: every token alone through decode
    const m = models.get(64)!;
    sequential = new Float32Array(LENS.reduce((a, b) => a + b, 0) * V);
    let row = 0;
    for (const s of seqs) {
      const st = m.newSequence();
      for (const id of s) sequential.set(m.decode([id], [st]), row++ * V);
    }
  });
  afterAll(() => removeDir(base));

  it.each(CHUNKS)('chunk %i: the program carries it, and packed prefill = the recurrence', (chunk) => {
    const m = models.get(chunk)!;
    const ssd = m.program.entries.forward.kernels.filter((k) => k.family === 'ssd');
    expect(ssd.length).toBeGreaterThan(0);
    expect(ssd.every((k) => k.sizes.chunk === chunk)).toBe(true);
    const got = m.forward({ ids: seqs.flat(), cuSeqlens: [0, 7, 18, 31] }).logits;
    expectLogitsClose(got, sequential, RTOL, `chunk ${chunk} vs sequential`, V);
  });

  it.each(CHUNKS)('chunk %i: a prefill of 5 continued by a step of 8 (state entering mid-chunk) = the recurrence', (chunk) => {
    const m = models.get(chunk)!;
    const ids = seqs[2]!;
    const { states } = m.prefill([ids.slice(0, 5)]);
    const got = m.step([ids.slice(5)], states);
    expectLogitsClose(got, rows(sequential, V, 18 + 5, 31), RTOL, `chunk ${chunk}, continued`, V);
  });
});

function makeSub(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
