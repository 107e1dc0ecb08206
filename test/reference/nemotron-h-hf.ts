// An independent reference of Hugging Face's NemotronHForCausalLM forward (modeling_nemotron_h: the
// torch_forward path, one sequence, no cache) in float64, from the checkpoint and config.json alone.
// Layers by hybrid_override_pattern: M NemotronHMamba2Mixer, * NemotronHAttention (no position
// encoding), - NemotronHMLP (down(act(up(x))), act "relu2" = relu(x)²); each NemotronHBlock is
// residual + mixer(norm(x)). The mixer's gated norm (Zamba2RMSNormGated) normalises y · silu(gate)
// over n_groups parts. dt is clamped to time_step_limit, as the fused kernels do (dt_limit); the
// torch fallback's clamp at time_step_min instead is not transcribed.

import type { HfConfig } from '../../runtime/hfconfig.ts';
import type { Checkpoint } from '../../runtime/safetensors.ts';
import { attention, configReader, linear, type Mat, plus, reader, rmsnorm, ssmScan } from './hybrid-hf.ts';

const ACTS: Record<string, (v: number) => number> = {
  relu2: (v) => Math.max(v, 0) ** 2,
  silu: (v) => v / (1 + Math.exp(-v)),
};

export function nemotronHReference(config: HfConfig, ckpt: Checkpoint, ids: readonly number[]): Float64Array {
  const cfg = configReader(config);
  const W = reader(ckpt);
  const D = cfg('hidden_size'), eps = cfg('layer_norm_epsilon'), T = ids.length;
  const pattern = cfg<string>('hybrid_override_pattern');

  const E = W('backbone.embeddings.weight');
  let hidden: Mat = new Float64Array(T * D);
  ids.forEach((id, t) => hidden.set(E.subarray(id * D, (id + 1) * D), t * D));

  for (let l = 0; l < pattern.length; l++) {
    const p = `backbone.layers.${l}`;
    const normed = rmsnorm(hidden, W(`${p}.norm.weight`), D, eps);
    const kind = pattern[l];
    const out = kind === 'M' ? mamba(`${p}.mixer`, normed) : kind === '*' ? attn(`${p}.mixer`, normed) : mlp(`${p}.mixer`, normed);
    hidden = plus(hidden, out);
  }
  hidden = rmsnorm(hidden, W('backbone.norm_f.weight'), D, eps);
  return linear(hidden, cfg('tie_word_embeddings', false) ? E : W('lm_head.weight'), D);

  function attn(p: string, x: Mat): Mat {
    const H = cfg('num_attention_heads'), KV = cfg('num_key_value_heads');
    const Dh = cfg('head_dim', undefined) ?? cfg('attention_head_dim', D / H);
    const bias = (n: string) => (cfg('attention_bias', false) ? W(`${p}.${n}.bias`) : undefined);
    const q = linear(x, W(`${p}.q_proj.weight`), D, bias('q_proj'));
    const k = linear(x, W(`${p}.k_proj.weight`), D, bias('k_proj'));
    const v = linear(x, W(`${p}.v_proj.weight`), D, bias('v_proj'));
    return linear(attention(q, k, v, T, H, KV, Dh, Dh ** -0.5), W(`${p}.o_proj.weight`), H * Dh, bias('o_proj'));
  }

  function mlp(p: string, x: Mat): Mat {
    const F = cfg('intermediate_size');
    const act = ACTS[cfg<string>('mlp_hidden_act', 'relu2')]!;
    const bias = (n: string) => (cfg('mlp_bias', false) ? W(`${p}.${n}.bias`) : undefined);
    const up = linear(x, W(`${p}.up_proj.weight`), D, bias('up_proj')).map(act);
    return linear(up, W(`${p}.down_proj.weight`), F, bias('down_proj'));
  }

  function mamba(p: string, x: Mat): Mat {
    const nH = cfg('mamba_num_heads'), P = cfg('mamba_head_dim'), G = cfg('n_groups');
    const limit = cfg<number[]>('time_step_limit', [0, Infinity]);
    const bias = (n: string) => (cfg('use_bias', false) ? W(`${p}.${n}.bias`) : undefined);
    const proj = linear(x, W(`${p}.in_proj.weight`), D, bias('in_proj'));
    const shape = { heads: nH, headDim: P, groups: G, state: cfg('ssm_state_size'), kernel: cfg('conv_kernel'), dtMin: limit[0]!, dtMax: limit[1]! };
    const convBias = cfg('use_conv_bias', true) ? W(`${p}.conv1d.bias`) : undefined;
    const { y, gate } = ssmScan(proj, T, shape, (s) => W(`${p}.${s}`), convBias);
    const inter = nH * P;
    const normed = rmsnorm(y.map((v, i) => v * ACTS.silu!(gate[i]!)), W(`${p}.norm.weight`), inter, eps, G);
    return linear(normed, W(`${p}.out_proj.weight`), inter, bias('out_proj'));
  }
}
