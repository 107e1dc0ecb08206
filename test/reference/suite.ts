// One harness for the reference tests: random checkpoints of several configurations of a model,
// its logits on the CPU engine for a packed batch, each sequence compared against an independent
// float64 transcription of the Hugging Face forward run on that sequence alone.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../compiler/pipeline.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { type HfConfig, readHfConfig } from '../../runtime/hfconfig.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { type Checkpoint, openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import type { DType } from '../../runtime/tensor.ts';

export interface ReferenceCase {
  readonly name: string;
  readonly set: string[];
  readonly dtype: DType;
  readonly seqs: number[][];
}

export interface ReferenceSuite {
  readonly title: string;
  /** The .arch file. */
  readonly model: string;
  /** `--set` values every case starts from. */
  readonly base: readonly string[];
  readonly seed: number;
  readonly cases: readonly ReferenceCase[];
  /** The reference logits [seq length, vocab] of one sequence. */
  readonly reference: (config: HfConfig, ckpt: Checkpoint, ids: readonly number[]) => ArrayLike<number>;
}

export function referenceSuite(s: ReferenceSuite): void {
  const work = mkdtempSync(join(tmpdir(), 'archc-ref-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  describe(s.title, () => {
    for (const c of s.cases) {
      it(c.name, async () => {
        const dir = join(work, c.name.replace(/\W+/g, '-'));
        mkdirSync(dir, { recursive: true });
        const init = compileModel(s.model, { set: [...s.base, ...c.set] });
        writeFileSync(join(dir, 'config.json'), hfConfigText(init, c.dtype));
        writeSafetensors(join(dir, 'model.safetensors'), initWeights(init.graph, createRng(s.seed), c.dtype));
        // the program for the checkpoint, as `archc forward` makes it from its config.json
        const { program } = compileModel(s.model, { hfConfig: join(dir, 'config.json') });
        const model = await Model.loadProgram(program, dir);
        const ids = c.seqs.flat();
        const positions = c.seqs.flatMap((q) => q.map((_, i) => i));
        const got = model.forward({ ids, positions }).logits;
        const config = readHfConfig(join(dir, 'config.json'));
        const ckpt = openCheckpoint(dir);
        const V = model.vocab;
        let row = 0;
        let worst = 0;
        let spread = 0;
        for (const q of c.seqs) {
          const want = s.reference(config, ckpt, q);
          const scale = Math.max(...Array.from(want, Math.abs));
          spread = Math.max(spread, scale);
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[row * V + i]! - want[i]!) / (1 + scale));
          row += q.length;
        }
        ckpt.close();
        model.dispose();
        console.log(`${c.name}: max relative error ${worst.toExponential(2)} (max |logit| ${spread.toFixed(2)})`);
        expect(spread, 'the logits carry signal').toBeGreaterThan(0.5);
        // fp32 engine vs float64 reference: observed ~1e-7 relative to the largest logit; bound 1e-5
        expect(worst, `max relative error ${worst}`).toBeLessThan(1e-5);
      }, 30_000);
    }
  });
}
