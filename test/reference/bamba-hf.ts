// An independent reference of Hugging Face's BambaForCausalLM forward (transformers 4.x, the
// torch_forward path, one sequence, no cache), written from the module structure of modeling_bamba
// in float64 with plain loops. It reads the checkpoint and config.json directly and shares no code
// with the .arch models, the compiler or the CPU kernels.

import { type HfConfig, lookupKey } from '../../runtime/hfconfig.ts';
import type { Checkpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';

type Mat = Float64Array;

export function bambaReference(config: HfConfig, ckpt: Checkpoint, ids: readonly number[]): Float64Array {
  const cfg = (k: string, d?: unknown) => {
    const { found, value } = lookupKey(config, k);
    return (found && value !== null && value !== 'auto' ? value : d) as number;
  };
  const W = (name: string): Mat => Float64Array.from(toF32(ckpt.read(name)));
  const D = cfg('hidden_size');
  const eps = cfg('rms_norm_eps');
  const T = ids.length;
  const attnLayers = cfg('attn_layer_indices') as unknown as number[];

  const rmsnorm = (x: Mat, w: Mat, n: number): Mat => {
    const out = new Float64Array(x.length);
    for (let t = 0; t < x.length / n; t++) {
      let ss = 0;
      for (let i = 0; i < n; i++) ss += x[t * n + i]! ** 2;
      const r = 1 / Math.sqrt(ss / n + eps);
      for (let i = 0; i < n; i++) out[t * n + i] = w[i]! * x[t * n + i]! * r;
    }
    return out;
  };
  /** nn.Linear: x [T, in] · Wᵀ, W [out, in] */
  const linear = (x: Mat, w: Mat, nIn: number, bias?: Mat): Mat => {
    const nOut = w.length / nIn;
    const out = new Float64Array((x.length / nIn) * nOut);
    for (let t = 0; t < x.length / nIn; t++) {
      for (let o = 0; o < nOut; o++) {
        let s = bias ? bias[o]! : 0;
        for (let i = 0; i < nIn; i++) s += x[t * nIn + i]! * w[o * nIn + i]!;
        out[t * nOut + o] = s;
      }
    }
    return out;
  };
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

  // embed_tokens
  const E = W('model.embed_tokens.weight');
  let hidden: Mat = new Float64Array(T * D);
  ids.forEach((id, t) => hidden.set(E.subarray(id * D, (id + 1) * D), t * D));

  // BambaRotaryEmbedding over dim = head_dim · partial_rotary_factor
  const H = cfg('num_attention_heads');
  const KV = cfg('num_key_value_heads');
  const Dh = D / H;
  const rd = Math.floor(Dh * cfg('partial_rotary_factor', 0.5));
  const theta = cfg('rope_theta', undefined) ?? cfg('rope_parameters.rope_theta', 10000);
  const invFreq = Array.from({ length: rd / 2 }, (_, i) => 1 / theta ** ((2 * i) / rd));

  const nL = cfg('num_hidden_layers');
  for (let l = 0; l < nL; l++) {
    const p = `model.layers.${l}`;
    const residual = hidden;
    const normed = rmsnorm(hidden, W(`${p}.input_layernorm.weight`), D);
    const mixed = attnLayers.includes(l) ? attention(p, normed) : mamba(p, normed);
    hidden = residual.map((v, i) => v + mixed[i]!);
    const r2 = hidden;
    const h2 = rmsnorm(hidden, W(`${p}.pre_ff_layernorm.weight`), D);
    const F = cfg('intermediate_size');
    const gate = linear(h2, W(`${p}.feed_forward.gate_proj.weight`), D);
    const up = linear(h2, W(`${p}.feed_forward.up_proj.weight`), D);
    const act = gate.map((g, i) => silu(g) * up[i]!);
    const down = linear(act, W(`${p}.feed_forward.down_proj.weight`), F);
    hidden = r2.map((v, i) => v + down[i]!);
  }
  hidden = rmsnorm(hidden, W('model.final_layernorm.weight'), D);
  const tied = cfg('tie_word_embeddings', true) as unknown as boolean;
  return linear(hidden, tied ? E : W('lm_head.weight'), D);

  function attention(p: string, x: Mat): Mat {
    const q = linear(x, W(`${p}.self_attn.q_proj.weight`), D);
    const k = linear(x, W(`${p}.self_attn.k_proj.weight`), D);
    const v = linear(x, W(`${p}.self_attn.v_proj.weight`), D);
    // apply_rotary_pos_emb on the first rd dims: x·cos + rotate_half(x)·sin, rotate_half = cat(−x2, x1)
    const rope = (m: Mat, heads: number) => {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < heads; h++) {
          const o = (t * heads + h) * Dh;
          const x1 = Array.from({ length: rd / 2 }, (_, i) => m[o + i]!);
          const x2 = Array.from({ length: rd / 2 }, (_, i) => m[o + rd / 2 + i]!);
          for (let i = 0; i < rd; i++) {
            const ang = t * invFreq[i % (rd / 2)]!;
            const rot = i < rd / 2 ? -x2[i]! : x1[i - rd / 2]!;
            const xi = i < rd / 2 ? x1[i]! : x2[i - rd / 2]!;
            m[o + i] = xi * Math.cos(ang) + rot * Math.sin(ang);
          }
        }
      }
    };
    rope(q, H);
    rope(k, KV);
    const out = new Float64Array(T * H * Dh);
    const scale = Dh ** -0.5;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV)); // repeat_kv
      for (let t = 0; t < T; t++) {
        const s: number[] = [];
        for (let u = 0; u <= t; u++) {
          let d = 0;
          for (let i = 0; i < Dh; i++) d += q[(t * H + h) * Dh + i]! * k[(u * KV + g) * Dh + i]!;
          s.push(d * scale);
        }
        const mx = Math.max(...s);
        const e = s.map((z) => Math.exp(z - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < Dh; i++) {
          let acc = 0;
          for (let u = 0; u <= t; u++) acc += (e[u]! / sum) * v[(u * KV + g) * Dh + i]!;
          out[(t * H + h) * Dh + i] = acc;
        }
      }
    }
    return linear(out, W(`${p}.self_attn.o_proj.weight`), H * Dh);
  }

  function mamba(p: string, x: Mat): Mat {
    const nH = cfg('mamba_n_heads');
    const P = cfg('mamba_d_head') ?? (cfg('mamba_expand') * D) / nH;
    const G = cfg('mamba_n_groups');
    const N = cfg('mamba_d_state');
    const K = cfg('mamba_d_conv');
    const inter = nH * P;
    const convDim = inter + 2 * G * N;
    const bias = (n: string, on: boolean) => (on ? W(n) : undefined);
    const projBias = cfg('mamba_proj_bias', false) as unknown as boolean;
    const proj = linear(x, W(`${p}.mamba.in_proj.weight`), D, bias(`${p}.mamba.in_proj.bias`, projBias));
    const width = inter + convDim + nH;
    // split into gate, hidden_states_B_C, dt
    const gate = new Float64Array(T * inter), hbc = new Float64Array(T * convDim), dtRaw = new Float64Array(T * nH);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < inter; i++) gate[t * inter + i] = proj[t * width + i]!;
      for (let i = 0; i < convDim; i++) hbc[t * convDim + i] = proj[t * width + inter + i]!;
      for (let i = 0; i < nH; i++) dtRaw[t * nH + i] = proj[t * width + inter + convDim + i]!;
    }
    // depthwise Conv1d with padding K−1, output truncated to T, then SiLU
    const cw = W(`${p}.mamba.conv1d.weight`);
    const cb = (cfg('mamba_conv_bias', true) as unknown as boolean) ? W(`${p}.mamba.conv1d.bias`) : new Float64Array(convDim);
    const conv = new Float64Array(T * convDim);
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < convDim; c++) {
        let s = cb[c]!;
        for (let j = 0; j < K; j++) {
          const src = t - (K - 1) + j;
          if (src >= 0) s += cw[c * K + j]! * hbc[src * convDim + c]!;
        }
        conv[t * convDim + c] = silu(s);
      }
    }
    const A = W(`${p}.mamba.A_log`).map((a) => -Math.exp(a));
    const dtBias = W(`${p}.mamba.dt_bias`);
    const Dskip = W(`${p}.mamba.D`);
    const limit = (cfg('time_step_limit', [0, Infinity] as never) as unknown as number[]) ?? [0, Infinity];
    const state = new Float64Array(nH * P * N);
    const y = new Float64Array(T * inter);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < nH; h++) {
        const g = Math.floor(h / (nH / G));
        const dt = Math.min(Math.max(softplus(dtRaw[t * nH + h]! + dtBias[h]!), limit[0]!), limit[1]!);
        const dA = Math.exp(dt * A[h]!);
        for (let pp = 0; pp < P; pp++) {
          const xv = conv[t * convDim + h * P + pp]!;
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const Bn = conv[t * convDim + inter + g * N + n]!;
            const Cn = conv[t * convDim + inter + G * N + g * N + n]!;
            const si = (h * P + pp) * N + n;
            state[si] = dA * state[si]! + dt * xv * Bn;
            acc += state[si]! * Cn;
          }
          y[t * inter + h * P + pp] = acc + Dskip[h]! * xv;
        }
      }
    }
    // BambaRMSNormGated: (y · silu(gate)) normalised over the whole intermediate width
    const gated = y.map((v, i) => v * silu(gate[i]!));
    const normed = rmsnorm(gated, W(`${p}.mamba.norm.weight`), inter);
    return linear(normed, W(`${p}.mamba.out_proj.weight`), inter, bias(`${p}.mamba.out_proj.bias`, projBias));
  }
}
