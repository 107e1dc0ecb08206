// The CPU engine running models/gpt2.arch against an independent float64 transcription of Hugging
// Face's GPT2LMHeadModel (gpt2-hf.ts), on random checkpoints of several configurations, with packed
// sequences compared one by one against the reference run on each sequence alone.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { readHfConfig } from '../../runtime/hfconfig.ts';
import { Model } from '../../runtime/model.ts';
import { createRng } from '../../runtime/rng.ts';
import { openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import type { DType } from '../../runtime/tensor.ts';
import { MODELS } from '../helpers/compile.ts';
import { gpt2Reference } from './gpt2-hf.ts';

const GPT2 = join(MODELS, 'gpt2.arch');
const work = mkdtempSync(join(tmpdir(), 'archc-gpt2-ref-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const BASE = ['vocab=40', 'd_model=32', 'n_heads=4', 'context=24'];

interface Case {
  readonly name: string;
  readonly set: string[];
  readonly dtype: DType;
  readonly seqs: number[][];
}

const CASES: Case[] = [
  { name: 'gpt2 defaults (gelu_new, tied), 2 layers, f32', set: ['n_layers=2'], dtype: 'f32', seqs: [[1, 5, 9, 2, 7, 3, 8], [4, 4, 0, 39]] },
  { name: 'exact gelu, n_inner 48, untied, scaled by inverse layer, bf16', set: ['n_layers=3', 'act="gelu"', 'd_ff=48', 'tie=false', 'scale_by_layer=true'], dtype: 'bf16', seqs: [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1, 8, 2, 8, 1]] },
  { name: 'gelu_pytorch_tanh, unscaled scores, eps 1e-6, one long sequence', set: ['n_layers=1', 'act="gelu_pytorch_tanh"', 'scale_attn=false', 'eps=1e-6', 'n_heads=2'], dtype: 'f32', seqs: [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]] },
];

function checkpoint(c: Case): string {
  const dir = join(work, c.name.replace(/\W+/g, '-'));
  mkdirSync(dir, { recursive: true });
  const compiled = compileFile(GPT2, { set: [...BASE, ...c.set] });
  writeFileSync(join(dir, 'config.json'), hfConfigText(compiled, c.dtype));
  writeSafetensors(join(dir, 'model.safetensors'), initWeights(compiled.graph, createRng(13), c.dtype));
  return dir;
}

describe('models/gpt2.arch on the CPU engine = GPT2LMHeadModel (float64 reference)', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const dir = checkpoint(c);
      const compiled = compileFile(GPT2, { hfConfig: join(dir, 'config.json') });
      const model = await Model.loadProgram(lowerToProgram(compiled.graph, compiled.bindings), dir);
      const ids = c.seqs.flat();
      const positions = c.seqs.flatMap((s) => s.map((_, i) => i));
      const got = model.forward({ ids, positions }).logits;
      const config = readHfConfig(join(dir, 'config.json'));
      const ckpt = openCheckpoint(dir);
      const V = model.vocab;
      let row = 0;
      let worst = 0;
      let spread = 0;
      for (const s of c.seqs) {
        const want = gpt2Reference(config, ckpt, s);
        const scale = Math.max(...want.map(Math.abs));
        spread = Math.max(spread, scale);
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(got[row * V + i]! - want[i]!);
          worst = Math.max(worst, err / (1 + scale));
        }
        row += s.length;
      }
      ckpt.close();
      console.log(`${c.name}: max relative error ${worst.toExponential(2)} (max |logit| ${spread.toFixed(2)})`);
      expect(spread, 'the logits carry signal').toBeGreaterThan(0.5);
      // fp32 engine vs float64 reference; bound 1e-5 relative to the largest logit
      expect(worst, `max relative error ${worst}`).toBeLessThan(1e-5);
    }, 30_000);
  }
});
