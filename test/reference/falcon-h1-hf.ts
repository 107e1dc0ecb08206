// An independent reference of Hugging Face's FalconH1ForCausalLM forward (modeling_falcon_h1: the
// torch_forward path, one sequence, no cache) in float64, from the checkpoint and config.json alone.
// FalconH1DecoderLayer: h = input_layernorm(x); x + (mamba(h)·ssm_out + self_attn(h·attn_in)·attn_out);
// then x + feed_forward(pre_ff_layernorm(x)). The mixer scales its input by ssm_in_multiplier and
// in_proj's output by the µP vector (ssm_multipliers over z, x, B, C, dt) before the conv; the
// attention scales its keys by key_multiplier; the MLP is down(up(x) · silu(gate(x)·m0))·m1; the
// embedding and the logits carry their own multipliers.

import type { HfConfig } from '../../runtime/hfconfig.ts';
import type { Checkpoint } from '../../runtime/safetensors.ts';
import { attention, configReader, linear, type Mat, plus, reader, rmsnorm, rope, silu, ssmScan, times } from './hybrid-hf.ts';

export function falconH1Reference(config: HfConfig, ckpt: Checkpoint, ids: readonly number[]): Float64Array {
  const cfg = configReader(config);
  const W = reader(ckpt);
  const D = cfg('hidden_size'), eps = cfg('rms_norm_eps'), T = ids.length;

  const E = W('model.embed_tokens.weight');
  let hidden: Mat = new Float64Array(T * D);
  ids.forEach((id, t) => hidden.set(E.subarray(id * D, (id + 1) * D), t * D));
  hidden = times(hidden, cfg('embedding_multiplier', 1));

  for (let l = 0; l < cfg<number>('num_hidden_layers'); l++) {
    const p = `model.layers.${l}`;
    const h = rmsnorm(hidden, W(`${p}.input_layernorm.weight`), D, eps);
    const m = times(mamba(`${p}.mamba`, h), cfg('ssm_out_multiplier', 1));
    const a = times(attn(`${p}.self_attn`, times(h, cfg('attention_in_multiplier', 1))), cfg('attention_out_multiplier', 1));
    hidden = plus(hidden, plus(m, a));
    hidden = plus(hidden, mlp(`${p}.feed_forward`, rmsnorm(hidden, W(`${p}.pre_ff_layernorm.weight`), D, eps)));
  }
  hidden = rmsnorm(hidden, W('model.final_layernorm.weight'), D, eps);
  const logits = linear(hidden, cfg('tie_word_embeddings', false) ? E : W('lm_head.weight'), D);
  return times(logits, cfg('lm_head_multiplier', 1));

  function attn(p: string, x: Mat): Mat {
    const H = cfg('num_attention_heads'), KV = cfg('num_key_value_heads');
    const Dh = cfg('head_dim', D / H);
    const bias = (n: string) => (cfg('attention_bias', false) ? W(`${p}.${n}.bias`) : undefined);
    const q = linear(x, W(`${p}.q_proj.weight`), D, bias('q_proj'));
    const k = times(linear(x, W(`${p}.k_proj.weight`), D, bias('k_proj')), cfg('key_multiplier', 1));
    const v = linear(x, W(`${p}.v_proj.weight`), D, bias('v_proj'));
    const theta = cfg('rope_theta', undefined) ?? cfg('rope_parameters.rope_theta', 100000);
    rope(q, T, H, Dh, theta);
    rope(k, T, KV, Dh, theta);
    return linear(attention(q, k, v, T, H, KV, Dh, Dh ** -0.5), W(`${p}.o_proj.weight`), H * Dh, bias('o_proj'));
  }

  function mlp(p: string, x: Mat): Mat {
    const [gm, dm] = cfg<number[]>('mlp_multipliers', [1, 1]);
    const bias = (n: string) => (cfg('mlp_bias', false) ? W(`${p}.${n}.bias`) : undefined);
    const gate = linear(x, W(`${p}.gate_proj.weight`), D, bias('gate_proj'));
    const up = linear(x, W(`${p}.up_proj.weight`), D, bias('up_proj'));
    const y = up.map((u, i) => u * silu(gate[i]! * gm!));
    return times(linear(y, W(`${p}.down_proj.weight`), cfg('intermediate_size'), bias('down_proj')), dm!);
  }

  function mamba(p: string, x: Mat): Mat {
    const inter = cfg('mamba_d_ssm', undefined) ?? cfg<number>('mamba_expand') * D;
    const nH = cfg('mamba_n_heads'), G = cfg('mamba_n_groups'), N = cfg('mamba_d_state');
    const P = cfg('mamba_d_head', inter / nH);
    const limit = cfg<number[]>('time_step_limit', [0, Infinity]);
    const input = times(x, cfg('ssm_in_multiplier', 1));
    const proj = linear(input, W(`${p}.in_proj.weight`), D, cfg('mamba_proj_bias', false) ? W(`${p}.in_proj.bias`) : undefined);
    // compute_mup_vector: one factor per part of in_proj's output [z | x | B | C | dt]
    const mults = cfg<number[]>('ssm_multipliers', [1, 1, 1, 1, 1]);
    const ends = [inter, 2 * inter, 2 * inter + G * N, 2 * inter + 2 * G * N, 2 * inter + 2 * G * N + nH];
    const width = ends[4]!;
    for (let i = 0; i < proj.length; i++) proj[i] = proj[i]! * mults[ends.findIndex((e) => i % width < e)]!;
    const shape = { heads: nH, headDim: P, groups: G, state: N, kernel: cfg('mamba_d_conv'), dtMin: limit[0]!, dtMax: limit[1]! };
    const convBias = cfg('mamba_conv_bias', true) ? W(`${p}.conv1d.bias`) : undefined;
    const { y, gate } = ssmScan(proj, T, shape, (s) => W(`${p}.${s}`), convBias);
    // FalconH1RMSNormGated with norm_before_gate false: (y · silu(gate)) normalised over n_groups parts
    const gated = y.map((v, i) => v * silu(gate[i]!));
    const out = cfg('mamba_rms_norm', false) ? rmsnorm(gated, W(`${p}.norm.weight`), inter, eps, G) : gated;
    return linear(out, W(`${p}.out_proj.weight`), inter, cfg('projectors_bias', false) ? W(`${p}.out_proj.bias`) : undefined);
  }
}
