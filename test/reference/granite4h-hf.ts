// An independent reference of Hugging Face's GraniteMoeHybridForCausalLM forward (the torch_forward
// path, one sequence, no cache), written from modeling_granitemoehybrid in float64 with plain loops:
// embedding × embedding_multiplier; per layer (layer_types) Mamba-2 or attention (scores scaled by
// attention_multiplier, RoPE over the whole head or none), residual × residual_multiplier; then
// GraniteMoeHybridMoE (router: top-k of the logits, softmax over the k; each chosen expert's
// input_linear → silu(gate)·up → output_linear, weighted, index_add) + shared_mlp; logits over
// logits_scaling. It reads the checkpoint and config.json directly and shares no code with the .arch
// models, the compiler or the CPU kernels. `routes` receives each MoE layer's chosen experts.

import { type HfConfig, lookupKey } from '../../runtime/hfconfig.ts';
import type { Checkpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';

type Mat = Float64Array;

export function graniteReference(config: HfConfig, ckpt: Checkpoint, ids: readonly number[], routes?: (layer: number, experts: number[][]) => void): Float64Array {
  const cfg = (k: string, d?: unknown) => {
    const { found, value } = lookupKey(config, k);
    return (found && value !== null && value !== 'auto' ? value : d) as number;
  };
  const W = (name: string): Mat => Float64Array.from(toF32(ckpt.read(name)));
  const D = cfg('hidden_size');
  const eps = cfg('rms_norm_eps');
  const T = ids.length;
  const types = cfg('layer_types') as unknown as string[];
  const resMul = cfg('residual_multiplier', 1);

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
  /** F.linear: x [T, in] · Wᵀ, W [out, in] */
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
  /** chunk(2, dim=-1) of [T, 2n] rows, then act(first) · second: [T, n] */
  const glu = (h: Mat, n: number): Mat => {
    const out = new Float64Array((h.length / (2 * n)) * n);
    for (let t = 0; t < out.length / n; t++) for (let i = 0; i < n; i++) out[t * n + i] = silu(h[t * 2 * n + i]!) * h[t * 2 * n + n + i]!;
    return out;
  };

  const E = W('model.embed_tokens.weight');
  let hidden: Mat = new Float64Array(T * D);
  ids.forEach((id, t) => hidden.set(E.subarray(id * D, (id + 1) * D), t * D));
  hidden = hidden.map((v) => v * cfg('embedding_multiplier', 1));

  const H = cfg('num_attention_heads');
  const KV = cfg('num_key_value_heads');
  const Dh = D / H;
  const theta = cfg('rope_theta', undefined) ?? cfg('rope_parameters.rope_theta', 10000);
  const invFreq = Array.from({ length: Dh / 2 }, (_, i) => 1 / theta ** ((2 * i) / Dh));
  const rope = (config.position_embedding_type as unknown) === 'rope';

  const nL = cfg('num_hidden_layers');
  for (let l = 0; l < nL; l++) {
    const p = `model.layers.${l}`;
    const normed = rmsnorm(hidden, W(`${p}.input_layernorm.weight`), D);
    const mixed = types[l] === 'attention' ? attention(p, normed) : mamba(p, normed);
    hidden = hidden.map((v, i) => v + mixed[i]! * resMul);
    const h = rmsnorm(hidden, W(`${p}.post_attention_layernorm.weight`), D);
    const S = cfg('shared_intermediate_size');
    const shared = linear(glu(linear(h, W(`${p}.shared_mlp.input_linear.weight`), D), S), W(`${p}.shared_mlp.output_linear.weight`), S);
    const ff = cfg('num_local_experts', 0) > 0 ? moe(l, p, h).map((v, i) => v + shared[i]!) : shared;
    hidden = hidden.map((v, i) => v + ff[i]! * resMul);
  }
  hidden = rmsnorm(hidden, W('model.norm.weight'), D);
  const tied = cfg('tie_word_embeddings', false) as unknown as boolean;
  return linear(hidden, tied ? E : W('lm_head.weight'), D).map((v) => v / cfg('logits_scaling', 1));

  function moe(l: number, p: string, x: Mat): Mat {
    const nE = cfg('num_local_experts'), k = cfg('num_experts_per_tok'), I = cfg('intermediate_size');
    const logits = linear(x, W(`${p}.block_sparse_moe.router.layer.weight`), D);
    const wIn = W(`${p}.block_sparse_moe.input_linear.weight`), wOut = W(`${p}.block_sparse_moe.output_linear.weight`);
    const out = new Float64Array(T * D);
    const chosen: number[][] = [];
    for (let t = 0; t < T; t++) {
      // logits.topk(k): largest first, ties to the lower index; then softmax over the k
      const order = Array.from({ length: nE }, (_, e) => e).sort((a, b) => logits[t * nE + b]! - logits[t * nE + a]! || a - b).slice(0, k);
      chosen.push(order);
      const mx = Math.max(...order.map((e) => logits[t * nE + e]!));
      const ex = order.map((e) => Math.exp(logits[t * nE + e]! - mx));
      const sum = ex.reduce((a, b) => a + b, 0);
      const row = x.subarray(t * D, (t + 1) * D);
      order.forEach((e, j) => {
        const hid = glu(linear(row, wIn.subarray(e * 2 * I * D, (e + 1) * 2 * I * D), D), I);
        const y = linear(hid, wOut.subarray(e * D * I, (e + 1) * D * I), I);
        for (let c = 0; c < D; c++) out[t * D + c] += (ex[j]! / sum) * y[c]!;
      });
    }
    routes?.(l, chosen);
    return out;
  }

  function attention(p: string, x: Mat): Mat {
    const q = linear(x, W(`${p}.self_attn.q_proj.weight`), D);
    const k = linear(x, W(`${p}.self_attn.k_proj.weight`), D);
    const v = linear(x, W(`${p}.self_attn.v_proj.weight`), D);
    // apply_rotary_pos_emb over the whole head: x·cos + rotate_half(x)·sin, rotate_half = cat(−x2, x1)
    const rot = (m: Mat, heads: number) => {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < heads; h++) {
          const o = (t * heads + h) * Dh;
          const x0 = Array.from(m.subarray(o, o + Dh));
          for (let i = 0; i < Dh; i++) {
            const ang = t * invFreq[i % (Dh / 2)]!;
            const r = i < Dh / 2 ? -x0[i + Dh / 2]! : x0[i - Dh / 2]!;
            m[o + i] = x0[i]! * Math.cos(ang) + r * Math.sin(ang);
          }
        }
      }
    };
    if (rope) { rot(q, H); rot(k, KV); }
    const out = new Float64Array(T * H * Dh);
    const scale = cfg('attention_multiplier');
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
