// SSM states kept in bf16 (runtime/program.ts withSsmState) on a trained model, tiny-bamba-a, with
// the wasm backend's program module: a saved sequence is smaller by half its SSM states' bytes;
// through a prefill of ragged prompts (one past a 64-token SSD chunk) and 16 decode steps, wasm's
// logits equal the CPU backend's over bf16 states, and differ from those over f32 states, a little;
// a saved sequence resumes bit for bit; a state saved over bf16 states is refused over f32 ones, and
// one holding a bf16 NaN or infinity is refused whichever half of a float holds it.
// (The kernels' own checks, against f32 states rounded: test/runtime/wasm/program.test.ts.)

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTarget } from '../../codegen/targets.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { Model } from '../../runtime/model.ts';
import { type Program, withSsmState } from '../../runtime/program.ts';
import { SAVED_HEADER_BYTES, heldRuns } from '../../runtime/sequences.ts';
import { RUN_TARGETS, type RunTarget, checkTargetRuns } from '../../runtime/targets.ts';
import { expectRuntimeError } from '../helpers/errors.ts';
import { ROOT, compileTiny, expectLogitsClose, maxAbsDiff, programFor } from '../helpers/checkpoints.ts';

const TINY_A = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a');
const DIR = join(TINY_A, 'f32');
const text = readFileSync(join(TINY_A, 'eval-A.txt'));
// byte-level: <|endoftext|> (256), then the text's bytes
const prompts = [70, 83, 12].map((n, i) => [256, ...text.subarray(i * 4000, i * 4000 + n)]);

let p32: Program, p16: Program;
const models: Record<'cpu16' | 'wasm16' | 'wasm32', Model> = {} as never;
const wasm = async (p: Program) => ({ backend: 'wasm' as const, threads: 2, ...(await buildTarget('wasm')!.inProcess(p, { cudaArchs: [] })) });

beforeAll(async () => {
  p32 = programFor(DIR);
  p16 = withSsmState(p32, 'bf16');
  models.cpu16 = await Model.loadProgram(p16, DIR, { backend: 'cpu', threads: 1 });
  models.wasm16 = await Model.loadProgram(p16, DIR, await wasm(p16));
  models.wasm32 = await Model.loadProgram(p32, DIR, await wasm(p32));
}, 120_000);
afterAll(() => { for (const m of Object.values(models)) m.dispose(); });

/** The logits of a prefill of `prompts`, then of 16 decode steps feeding the text that follows. */
async function run(m: Model): Promise<Float32Array[]> {
  const { states, logits } = await m.prefillAsync(prompts);
  const out = logits.map((l) => l.slice());
  for (let t = 0; t < 16; t++) out.push((await m.decodeAsync(prompts.map((_, i) => text[i * 4000 + 100 + t]!), states)).slice());
  for (const s of states) m.releaseSequence(s);
  return out;
}

describe('SSM states kept in bf16', () => {
  it('every run target keeps them; one that did not would refuse the program (RT178), naming the state', () => {
    expect(RUN_TARGETS.filter((t) => !t.bf16States).map((t) => t.name)).toEqual([]);
    for (const t of RUN_TARGETS) expect(() => checkTargetRuns(p16, t)).not.toThrow();
    const lacking: RunTarget = { ...RUN_TARGETS[0]!, bf16States: false };
    const err = expectRuntimeError(() => checkTargetRuns(p16, lacking), 'RT178', `the ${lacking.name} backend`, p16.states.find((st) => st.dtype === 'bf16')!.name);
    expect(err.message).toContain('--ssm-state f32');
    expect(() => checkTargetRuns(p32, lacking)).not.toThrow();
  });

  it('WebGPU refuses an odd d_state (RT178, naming the kernel): its shaders read the state two values a word', () => {
    const odd = compileTiny({ d_state: 7 });
    const program = withSsmState(lowerToProgram(odd.graph, odd.bindings), 'bf16');
    expectRuntimeError(() => renderProgram(program), 'RT178', 'the webgpu backend', 'mamba:ssd: d_state 7 is odd', '--ssm-state f32');
  });

  it('a saved sequence holds them in half the bytes', () => {
    const bytes = (m: Model) => {
      const s = m.newSequence();
      try {
        return m.saveSequence(s).bytes.byteLength;
      } finally {
        m.releaseSequence(s);
      }
    };
    const ssm = p32.states.filter((s) => s.kind === 'ssm').map((s) => s.shape.reduce((a, b) => a * b, 1));
    expect(ssm.length).toBe(4);
    expect(bytes(models.wasm32) - bytes(models.wasm16)).toBe(ssm.reduce((a, n) => a + 4 * n - 16 * Math.ceil(n / 8), 0));
  });

  it('wasm = the CPU backend over them; both a little off the f32 states\' logits', async () => {
    const [cpu16, wasm16, wasm32] = [await run(models.cpu16), await run(models.wasm16), await run(models.wasm32)];
    let off = 0;
    wasm16.forEach((l, i) => {
      expectLogitsClose(l, cpu16[i]!, 1e-4, `step ${i}`);
      off = Math.max(off, maxAbsDiff(l, wasm32[i]!));
    });
    // the prefill's logits read no stored state; the decode steps' do
    expect(maxAbsDiff(wasm16[0]!, wasm32[0]!)).toBe(0);
    expect(off).toBeGreaterThan(0);
    expect(off).toBeLessThan(0.05);
  });

  it('a saved sequence resumes bit for bit; over f32 states it is refused (RT335)', async () => {
    const m = models.wasm16;
    const { states: [s] } = await m.prefillAsync([prompts[1]!]);
    const saved = m.saveSequence(s!);
    const next = [...text.subarray(4200, 4204)];
    const steps = async (h: typeof s) => {
      const out: Float32Array[] = [];
      for (const id of next) out.push((await m.decodeAsync([id], [h!])).slice());
      return out;
    };
    const first = await steps(s);
    const again = m.restoreSequence(saved);
    expect(await steps(again)).toEqual(first);
    m.releaseSequence(s!);
    m.releaseSequence(again);
    expect(() => models.wasm32.restoreSequence(saved)).toThrow(/RT335.*another program/);
  });

  it('a saved state holding a bf16 NaN or infinity is refused (RT336), in either half of a float', async () => {
    const m = models.wasm16;
    const { states: [s] } = await m.prefillAsync([prompts[2]!]);
    const saved = m.saveSequence(s!);
    m.releaseSequence(s!);
    // where the first SSM state's run begins in the saved bytes: the runs of the states before it
    const capacity = new DataView(saved.bytes.buffer, saved.bytes.byteOffset).getUint32(20, true);
    const first = p16.states.findIndex((st) => st.kind === 'ssm');
    const before = p16.states.slice(0, first).reduce((a, st) => a + (st.per === 'sequence' ? 1 : st.shape[0]!), 0);
    const at = SAVED_HEADER_BYTES + 4 * heldRuns(p16.states, capacity, saved.length).slice(0, before).reduce((a, [, n]) => a + n, 0);
    for (const [byte, bits, what] of [[at, 0x7fc0, 'NaN'], [at + 2, 0xff80, '-Infinity']] as const) {
      const bytes = saved.bytes.slice();
      new DataView(bytes.buffer).setUint16(byte, bits, true);
      expect(() => m.restoreSequence({ length: saved.length, bytes }), what).toThrow(new RegExp(`RT336.*${what} at float ${(at - SAVED_HEADER_BYTES) >> 2}`));
    }
    m.releaseSequence(m.restoreSequence(saved));
  });
});
