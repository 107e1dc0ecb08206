// models/nemotron_h.arch against an independent float64 transcription of Hugging Face's
// NemotronHForCausalLM (nemotron-h-hf.ts) on the CPU engine, wasm and WebGPU: random tiny checkpoints
// whose patterns put every kind of layer after every other, packed sequences and step-by-step decode.

import { join } from 'node:path';
import { MODELS } from '../helpers/compile.ts';
import { backendSuite } from './backends-suite.ts';
import { nemotronHReference } from './nemotron-h-hf.ts';

backendSuite({
  title: 'models/nemotron_h.arch = NemotronHForCausalLM (float64 reference)',
  model: join(MODELS, 'nemotron_h.arch'),
  base: ['vocab=48', 'd_model=32', 'n_heads=4', 'n_kv_heads=2', 'head_dim=8', 'd_ff=40', 'mamba_heads=4', 'mamba_head_dim=8',
    'd_state=4', 'dtype=f32'],
  seed: 21,
  cases: [
    // M after M, * after M, - after *, - after -, M after -, * last; 2 Mamba groups (the gated norm over 2 parts)
    { name: 'MM*--M-* untied, 2 groups, chunk 3', set: ['layer_pattern=MM*--M-*', 'mamba_groups=2', 'chunk=3'], seqs: [[1, 5, 9, 2, 7, 3, 8, 30], [4, 4, 0, 47], [11]] },
    // biases everywhere, tied head, head dim unlike d_model / heads, 1 group, kernel 2, a dt limit that bites
    { name: '*M- tied, biases, head dim 12, kernel 2, dt limit', set: ['layer_pattern=*M-', 'tie=true', 'attn_bias=true', 'mlp_bias=true', 'proj_bias=true',
      'conv_bias=false', 'head_dim=12', 'mamba_groups=1', 'd_conv=2', 'chunk=4', 'dt_limit=[0.3, 0.9]'], seqs: [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]] },
  ],
  reference: nemotronHReference,
});
