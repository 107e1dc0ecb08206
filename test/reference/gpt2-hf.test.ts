// The CPU engine running models/gpt2.arch against an independent float64 transcription of Hugging
// Face's GPT2LMHeadModel (gpt2-hf.ts), on random checkpoints of several configurations, with packed
// sequences compared one by one against the reference run on each sequence alone.

import { join } from 'node:path';
import { MODELS } from '../helpers/compile.ts';
import { gpt2Reference } from './gpt2-hf.ts';
import { type ReferenceCase, referenceSuite } from './suite.ts';

const CASES: ReferenceCase[] = [
  { name: 'gpt2 defaults (gelu_new, tied), 2 layers, f32', set: ['n_layers=2'], dtype: 'f32', seqs: [[1, 5, 9, 2, 7, 3, 8], [4, 4, 0, 39]] },
  { name: 'exact gelu, n_inner 48, untied, scaled by inverse layer, bf16', set: ['n_layers=3', 'act="gelu"', 'd_ff=48', 'tie=false', 'scale_by_layer=true'], dtype: 'bf16', seqs: [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1, 8, 2, 8, 1]] },
  { name: 'gelu_pytorch_tanh, unscaled scores, eps 1e-6, one long sequence', set: ['n_layers=1', 'act="gelu_pytorch_tanh"', 'scale_attn=false', 'eps=1e-6', 'n_heads=2'], dtype: 'f32', seqs: [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]] },
];

referenceSuite({
  title: 'models/gpt2.arch on the CPU engine = GPT2LMHeadModel (float64 reference)',
  model: join(MODELS, 'gpt2.arch'),
  base: ['vocab=40', 'd_model=32', 'n_heads=4', 'context=24'],
  seed: 13,
  cases: CASES,
  reference: gpt2Reference,
});
