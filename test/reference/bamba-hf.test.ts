// The CPU engine running models/bamba.arch against an independent float64 transcription of Hugging
// Face's BambaForCausalLM (bamba-hf.ts), on random checkpoints of several configurations, with
// packed sequences compared one by one against the reference run on each sequence alone.

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
import { bambaReference } from './bamba-hf.ts';

const BAMBA = join(MODELS, 'bamba.arch');
const work = mkdtempSync(join(tmpdir(), 'archc-ref-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const BASE = ['vocab=40', 'd_model=32', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=8', 'd_state=4', 'd_ff=40'];

interface Case {
  readonly name: string;
  readonly set: string[];
  readonly dtype: DType;
  readonly seqs: number[][];
}

const CASES: Case[] = [
  { name: 'attention in the middle, tied, f32', set: ['n_layers=3', 'attn_layers=[1]', 'chunk=4'], dtype: 'f32', seqs: [[1, 5, 9, 2, 7, 3, 8], [4, 4, 0, 39]] },
  { name: 'attention first, 2 groups, untied, bf16, chunk 3', set: ['n_layers=3', 'attn_layers=[0]', 'mamba_groups=2', 'tie=false', 'chunk=3'], dtype: 'bf16', seqs: [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1, 8, 2, 8, 1]] },
  { name: 'attention last, projection biases, no conv bias, kernel 2', set: ['n_layers=2', 'attn_layers=[1]', 'proj_bias=true', 'conv_bias=false', 'd_conv=2', 'chunk=5'], dtype: 'f32', seqs: [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]] },
];

function checkpoint(c: Case): string {
  const dir = join(work, c.name.replace(/\W+/g, '-'));
  mkdirSync(dir, { recursive: true });
  const compiled = compileFile(BAMBA, { set: [...BASE, ...c.set] });
  writeFileSync(join(dir, 'config.json'), hfConfigText(compiled, c.dtype));
  writeSafetensors(join(dir, 'model.safetensors'), initWeights(compiled.graph, createRng(11), c.dtype));
  return dir;
}

describe('models/bamba.arch on the CPU engine = BambaForCausalLM (float64 reference)', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const dir = checkpoint(c);
      const compiled = compileFile(BAMBA, { hfConfig: join(dir, 'config.json') });
      const model = await Model.loadProgram(lowerToProgram(compiled.graph, compiled.bindings), dir);
      const ids = c.seqs.flat();
      const positions = c.seqs.flatMap((s) => s.map((_, i) => i));
      const got = model.forward({ ids, positions }).logits;
      const config = readHfConfig(join(dir, 'config.json'));
      const ckpt = openCheckpoint(dir);
      const V = model.vocab;
      let row = 0;
      let worst = 0;
      for (const s of c.seqs) {
        const want = bambaReference(config, ckpt, s);
        const scale = Math.max(...want.map(Math.abs));
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(got[row * V + i]! - want[i]!);
          worst = Math.max(worst, err / (1 + scale));
        }
        row += s.length;
      }
      ckpt.close();
      console.log(`${c.name}: max relative error ${worst.toExponential(2)}`);
      // fp32 engine vs float64 reference: observed ~1e-7 relative (to the largest logit); bound 1e-5
      expect(worst, `max relative error ${worst}`).toBeLessThan(1e-5);
    }, 30_000);
  }
});
