// models/falcon_h1.arch against an independent float64 transcription of Hugging Face's
// FalconH1ForCausalLM (falcon-h1-hf.ts) on the CPU engine, wasm and WebGPU: random tiny checkpoints
// with every µP multiplier away from 1, packed sequences and step-by-step decode.

import { join } from 'node:path';
import { MODELS } from '../helpers/compile.ts';
import { backendSuite } from './backends-suite.ts';
import { falconH1Reference } from './falcon-h1-hf.ts';

/** Every multiplier a different value, so that one applied in the wrong place shows. */
const MULTS = ['embedding_mult=1.7', 'lm_head_mult=0.6', 'attn_in_mult=0.8', 'attn_out_mult=1.3', 'key_mult=0.45', 'ssm_in_mult=1.2',
  'ssm_out_mult=0.7', 'ssm_mults=[0.5, 1.6, 0.75, 1.4, 0.6]', 'mlp_mults=[1.5, 0.55]'];

backendSuite({
  title: 'models/falcon_h1.arch = FalconH1ForCausalLM (float64 reference)',
  model: join(MODELS, 'falcon_h1.arch'),
  base: ['vocab=48', 'd_model=32', 'n_layers=2', 'n_heads=4', 'n_kv_heads=2', 'head_dim=8', 'd_ff=40', 'd_ssm=32', 'mamba_heads=4',
    'd_state=4', 'dtype=f32', ...MULTS],
  seed: 23,
  cases: [
    { name: 'untied, gate without norm, 2 groups, chunk 3', set: ['mamba_groups=2', 'chunk=3'], seqs: [[1, 5, 9, 2, 7, 3, 8, 30], [4, 4, 0, 47], [11]] },
    // the gated RMSNorm over 2 groups, biases everywhere but the conv, tied head, kernel 2, a dt limit that bites
    { name: 'tied, gated norm, biases, kernel 2, dt limit', set: ['tie=true', 'mamba_rms_norm=true', 'norm_before_gate=false', 'mamba_groups=2',
      'attn_bias=true', 'mlp_bias=true', 'proj_bias=true', 'out_bias=true', 'conv_bias=false', 'd_conv=2', 'chunk=4', 'dt_limit=[0.3, 0.9]',
      'head_dim=12'], seqs: [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]] },
  ],
  reference: falconH1Reference,
});
