// The prefill's chunked SSD and attention with their heads shared by the threads
// (runtime/wasm/heads.ts through split.ts), and its conv by channels: a packed forward and a prefill (then one decode step)
// of sequences longer than a chunk and than attention's block of 64 rows give the same bits on 1,
// 2 and 3 threads (each head computed by the same routine whichever thread takes it), and equal the
// CPU reference engine within 1e-5 of the logits' scale (test/e2e/wasm.test.ts' bound). A random
// checkpoint with two SSD groups (f32, and q4 with 8-bit activations) and the trained tiny-bamba-a.
// A spy checks that the head routines and the conv were called shared, and the routines wrote
// nothing past the threads' scratch.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Model } from '../../../runtime/model.ts';
import type { Kernel, Program } from '../../../runtime/program.ts';
import { ProgramCalls } from '../../../runtime/wasm/split.ts';
import { ROOT, makeDir, programFor, randomIds, removeDir, writeCheckpoint } from '../../helpers/checkpoints.ts';
import { type ThreadOptions, expectSameOnThreads, useModelsOnThreads } from '../../helpers/threads.ts';

const work = makeDir('archc-heads-');
const onThreads = useModelsOnThreads();
afterAll(() => removeDir(work));

/** The packed forward's logits, the prefill's, then one decode step's. */
function prefillRun(m: Model, prompts: readonly number[][]): Float32Array[] {
  const ids = prompts.flat(), positions = prompts.flatMap((p) => [...p.keys()]);
  const out = [m.forward({ ids, positions }).logits];
  const { states, logits } = m.prefill(prompts);
  out.push(...logits, m.decode(prompts.map((p) => p[0]!), states));
  for (const s of states) m.releaseSequence(s);
  return out;
}

async function check(program: Program, dir: string, prompts: readonly number[][], opts: ThreadOptions, what: string, V: number): Promise<void> {
  const capacity = 256;
  const models = await onThreads(program, dir, capacity, opts), { cpu, wasm } = models;
  const shared = { ssd: 0, attn: 0, conv: 0 }, overruns: string[] = [];
  // the conv's functions (shared by channels, runtime/wasm/program.ts unitsOf 'quad')
  const backends = wasm.map((m) => (m as unknown as { backend: { prog: { get(k: Kernel): { run?: unknown } | undefined } } }).backend);
  const convs = new Set(backends.flatMap((b) => program.entries.prefill.kernels.filter((k) => k.family === 'conv').map((k) => b.prog.get(k)?.run)));
  const run = ProgramCalls.prototype.run;
  const spy = vi.spyOn(ProgramCalls.prototype, 'run').mockImplementation(function (this: ProgramCalls, ...a: Parameters<typeof run>) {
    if (convs.has(a[0]) && a[4] && a[3] >= 2 && this.record) shared.conv++;
    const name = (['ssd', 'attn'] as const).find((n) => a[0] === this.heads?.[n]);
    if (!name) return run.apply(this, a);
    if (a[4] && a[3] >= 2 && this.record) shared[name]++;
    // the bytes past the last thread's scratch (scr + threads·own) keep a poison pattern: no routine writes past its own
    const memory = this.memory!, threads = (this as unknown as { wake: { threads: number } }).wake.threads;
    const end = a[1][4]! + threads * a[5]!, bytes = new Uint8Array(memory.buffer, end, Math.min(4096, memory.buffer.byteLength - end));
    const kept = bytes.slice();
    bytes.fill(0xa5);
    run.apply(this, a);
    if (bytes.some((b) => b !== 0xa5)) overruns.push(`${name} on ${threads} thread(s)`);
    bytes.set(kept);
  });
  try {
    const want = prefillRun(cpu, prompts);
    const got = wasm.map((m) => prefillRun(m, prompts));
    const label = `${what}, sequences of ${prompts.map((p) => p.length).join('+')}`;
    expectSameOnThreads(want, got, label, V);
    expect(overruns, `${label}: routines that wrote past their scratch`).toEqual([]);
    expect(shared.ssd, `${label}: the SSD's heads shared`).toBeGreaterThan(0);
    expect(shared.attn, `${label}: the attention's heads shared`).toBeGreaterThan(0);
    expect(shared.conv, `${label}: the conv's channels shared`).toBeGreaterThan(0);
  } finally {
    spy.mockRestore();
    models.dispose();
  }
}

describe("the prefill's SSD and attention heads and its conv's channels shared by the threads", () => {
  it('random bamba with two SSD groups, f32 and q4a8: 1, 2 and 3 threads the same bits, and the CPU engine within 1e-5', async () => {
    const dir = join(work, 'bamba');
    mkdirSync(dir);
    writeCheckpoint(dir, { vocab: 90, mamba_heads: 4, mamba_groups: 2, n_kv_heads: 2, chunk: 16, context: 256 }, { seed: 7 });
    const program = programFor(dir);
    // 150 rows: 10 chunks of 16 and blocks of 64, 64 and 22 rows; 37: a partial chunk
    const prompts = [randomIds(150, 90, 3), randomIds(37, 90, 4)];
    await check(program, dir, prompts, {}, 'bamba f32', 90);
    await check(program, dir, prompts, { quantize: 'q4', activations: 'q8' }, 'bamba q4a8', 90);
  });

  it('the trained tiny-bamba-a (chunks of 64): the same', async () => {
    const dir = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
    const program = programFor(dir);
    const text = Array.from(readFileSync(join(dir, '..', 'eval-A.txt')).subarray(0, 400));
    await check(program, dir, [text.slice(0, 200), text.slice(200, 330)], {}, 'tiny-bamba-a', program.outputs.logits!);
  });
});
