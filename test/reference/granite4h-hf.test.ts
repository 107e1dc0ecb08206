// The CPU engine running models/granite4h.arch against an independent float64 transcription of
// Hugging Face's GraniteMoeHybridForCausalLM (granite4h-hf.ts), on random checkpoints of several
// configurations (4 to 8 experts, 1 or 2 per token, RoPE or none, tied or not, dense), with packed
// sequences compared one by one against the reference run on each sequence alone.

import { join } from 'node:path';
import { MODELS } from '../helpers/compile.ts';
import { graniteReference } from './granite4h-hf.ts';
import { type ReferenceCase, referenceSuite } from './suite.ts';

const types = (...t: string[]) => `layer_types=[${t.map((x) => `"${x}"`).join(', ')}]`;
const CASES: ReferenceCase[] = [
  { name: '4 experts, 2 per token, nope, tied, f32', set: ['n_layers=3', types('mamba', 'attention', 'mamba'), 'n_experts=4', 'k_experts=2'], dtype: 'f32', seqs: [[1, 5, 9, 2, 7, 3, 8], [4, 4, 0, 39]] },
  { name: '8 experts, 1 per token, rope, untied, bf16', set: ['n_layers=2', types('attention', 'mamba'), 'n_experts=8', 'k_experts=1', 'rope="rope"', 'tie=false', 'chunk=3'], dtype: 'bf16', seqs: [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1, 8, 2, 8, 1]] },
  { name: '6 experts, 2 per token, rope, multipliers', set: ['n_layers=2', types('mamba', 'attention'), 'n_experts=6', 'k_experts=2', 'rope="rope"', 'embedding_mult=3.5', 'residual_mult=0.5', 'attention_mult=0.3', 'logits_scaling=2.5'], dtype: 'f32', seqs: [[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]] },
  { name: 'dense (no experts): the shared MLP alone', set: ['n_layers=2', types('mamba', 'attention'), 'n_experts=0'], dtype: 'f32', seqs: [[5, 6, 7, 8, 9]] },
];

referenceSuite({
  title: 'models/granite4h.arch on the CPU engine = GraniteMoeHybridForCausalLM (float64 reference)',
  model: join(MODELS, 'granite4h.arch'),
  base: ['vocab=40', 'd_model=32', 'n_heads=4', 'n_kv_heads=2', 'mamba_heads=8', 'd_state=4', 'd_ff=24', 'd_shared=40', 'chunk=4',
    'embedding_mult=2.0', 'attention_mult=0.25', 'residual_mult=0.7', 'logits_scaling=1.5'],
  seed: 11,
  cases: CASES,
  reference: graniteReference,
});
