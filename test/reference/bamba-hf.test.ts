// The CPU engine running models/bamba.arch against an independent float64 transcription of Hugging
// Face's BambaForCausalLM (bamba-hf.ts), on random checkpoints of several configurations, with
// packed sequences compared one by one against the reference run on each sequence alone.

import { join } from 'node:path';
import { MODELS } from '../helpers/compile.ts';
import { bambaReference } from './bamba-hf.ts';
import { type ReferenceCase, referenceSuite } from './suite.ts';

const CASES: ReferenceCase[] = [
  { name: 'attention in the middle, tied, f32', set: ['n_layers=3', 'attn_layers=[1]', 'chunk=4'], dtype: 'f32', seqs: [[1, 5, 9, 2, 7, 3, 8], [4, 4, 0, 39]] },
  { name: 'attention first, 2 groups, untied, bf16, chunk 3', set: ['n_layers=3', 'attn_layers=[0]', 'mamba_groups=2', 'tie=false', 'chunk=3'], dtype: 'bf16', seqs: [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1, 8, 2, 8, 1]] },
  { name: 'attention last, projection biases, no conv bias, kernel 2', set: ['n_layers=2', 'attn_layers=[1]', 'proj_bias=true', 'conv_bias=false', 'd_conv=2', 'chunk=5'], dtype: 'f32', seqs: [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]] },
];

referenceSuite({
  title: 'models/bamba.arch on the CPU engine = BambaForCausalLM (float64 reference)',
  model: join(MODELS, 'bamba.arch'),
  base: ['vocab=40', 'd_model=32', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=8', 'd_state=4', 'd_ff=40'],
  seed: 11,
  cases: CASES,
  reference: bambaReference,
});
