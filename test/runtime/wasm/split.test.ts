// The program module's functions shared by the threads (runtime/wasm/split.ts): a decode's logits on
// 1, 2 and 3 threads are the same bits (each unit, a row, an SSD head or a KV head, is computed by
// the same code whichever thread takes it), and equal the CPU reference engine within 1e-5 of the
// logits' scale (test/e2e/wasm.test.ts' bound): one sequence, and a batch of four sequences of
// different lengths (so their caches and states differ), on a random checkpoint (q4 with 8-bit
// activations too) and on the trained tiny-bamba-a; with the default limits of what is shared and
// with every call shared (SPLIT lowered: the maps too). A spy checks that the calls were shared.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Model } from '../../../runtime/model.ts';
import type { Program } from '../../../runtime/program.ts';
import { ProgramCalls, SPLIT } from '../../../runtime/wasm/split.ts';
import { ROOT, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../../helpers/checkpoints.ts';
import { type ThreadOptions, expectSameOnThreads, useModelsOnThreads } from '../../helpers/threads.ts';

const work = makeDir('archc-split-');
const onThreads = useModelsOnThreads();
afterAll(() => removeDir(work));

/** Prompts of these lengths, prefilled together, then `steps` decode steps of the batch: every
 *  step's logits (the prefill's last rows first). */
function decodeRun(m: Model, prompts: readonly number[][], steps: number): Float32Array[] {
  const { states, logits } = m.prefill(prompts);
  const out = [...logits];
  for (let k = 0; k < steps; k++) out.push(m.decode(prompts.map((p, i) => p[(k + i) % p.length]!), states));
  for (const s of states) m.releaseSequence(s);
  return out;
}

async function check(program: Program, dir: string, opts: ThreadOptions, what: string, V: number): Promise<void> {
  const capacity = 96;
  const models = await onThreads(program, dir, capacity, opts), { cpu, wasm } = models;
  const shared = new Map<number, number>();
  const run = ProgramCalls.prototype.run;
  const spy = vi.spyOn(ProgramCalls.prototype, 'run').mockImplementation(function (this: ProgramCalls, ...a: Parameters<typeof run>) {
    if (a[4] && a[3] >= 2) shared.set(a[3], (shared.get(a[3]) ?? 0) + 1);
    return run.apply(this, a);
  });
  const limits = { ...SPLIT }, counts: number[] = [];
  try {
    for (const [lengths, steps, everything] of [[[7], 6, false], [[9, 4, 13, 1], 5, false], [[9, 4, 13, 1], 5, true]] as const) {
      Object.assign(SPLIT, everything ? { rows: 2, floats: 1 } : limits);
      const prompts = lengths.map((n, i) => randomIds(n, V, 11 + i));
      const want = decodeRun(cpu, prompts, steps);
      shared.clear();
      const got = wasm.map((m) => decodeRun(m, prompts, steps));
      const label = `${what}, sequences of ${lengths.join('+')}${everything ? ', every call shared' : ''}`;
      expectSameOnThreads(want, got, label, V);
      // the SSD step's heads and the attention's KV heads were shared (and rows, with several sequences)
      expect(shared.size, `${label}: calls shared by the threads`).toBeGreaterThan(0);
      counts.push([...shared.values()].reduce((a, n) => a + n, 0));
    }
    // lowered limits share more calls (the maps) than the defaults over the same batch
    expect(counts[2], `${what}: calls shared with every call shared against the defaults`).toBeGreaterThan(counts[1]!);
  } finally {
    Object.assign(SPLIT, limits);
    spy.mockRestore();
    models.dispose();
  }
}

describe('a decode with the program module shared by the threads', () => {
  it('random bamba, f32 and q4a8: 1, 2 and 3 threads the same bits, and the CPU engine within 1e-5', async () => {
    const dir = join(work, 'bamba');
    mkdirSync(dir);
    writeCheckpoint(dir, { vocab: 90, mamba_heads: 4, n_kv_heads: 2 }, { seed: 5 });
    const program = programFor(dir);
    await check(program, dir, {}, 'bamba f32', 90);
    await check(program, dir, { quantize: 'q4', activations: 'q8' }, 'bamba q4a8', 90);
  });

  it('the trained tiny-bamba-a: the same', async () => {
    const dir = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
    const program = programFor(dir);
    await check(program, dir, {}, 'tiny-bamba-a', program.outputs.logits!);
  });
});
