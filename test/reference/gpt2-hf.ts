// An independent reference of Hugging Face's GPT2LMHeadModel forward (transformers 4.x, eager
// attention, one sequence, no cache), written from the module structure of modeling_gpt2 in float64
// with plain loops. It reads the checkpoint and config.json directly and shares no code with the
// .arch models, the compiler or the CPU kernels (its erf is numerical integration).

import { type HfConfig, lookupKey } from '../../runtime/hfconfig.ts';
import type { Checkpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';

type Mat = Float64Array;

/** erf(z) = 2/√π ∫₀ᶻ e^(−t²) dt by composite Simpson's rule (2000 panels; |error| < 1e-13). */
function erf(z: number): number {
  const n = 2000, h = z / n;
  let s = 1 + Math.exp(-z * z);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
  return (2 / Math.sqrt(Math.PI)) * (h / 3) * s;
}

/** ACT2FN of transformers' activations.py, by config name. */
function activation(name: string): (v: number) => number {
  const tanhGelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  switch (name) {
    case 'gelu': return (v) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    case 'gelu_new': case 'gelu_pytorch_tanh': return tanhGelu;
    // GELUFast: 0.5·x·(1 + tanh(x·0.7978845608·(1 + 0.044715·x²))), the same function written differently
    case 'gelu_fast': return (v) => 0.5 * v * (1 + Math.tanh(v * 0.7978845608028654 * (1 + 0.044715 * v * v)));
    case 'silu': case 'swish': return (v) => v / (1 + Math.exp(-v));
    default: throw new Error(`reference: activation ${name} is not transcribed`);
  }
}

export function gpt2Reference(config: HfConfig, ckpt: Checkpoint, ids: readonly number[]): Float64Array {
  const cfg = <V>(k: string, d?: V): V => {
    const { found, value } = lookupKey(config, k);
    return (found && value !== null ? value : d) as V;
  };
  const W = (name: string): Mat => Float64Array.from(toF32(ckpt.read(name)));
  const D = cfg<number>('n_embd');
  const H = cfg<number>('n_head');
  const Dh = D / H;
  const inner = cfg<number | null>('n_inner', null) ?? 4 * D;
  const eps = cfg<number>('layer_norm_epsilon', 1e-5);
  const act = activation(cfg<string>('activation_function', 'gelu_new'));
  const T = ids.length;

  /** nn.LayerNorm over rows of width D: biased variance. */
  const layerNorm = (x: Mat, p: string): Mat => {
    const w = W(`${p}.weight`), b = W(`${p}.bias`);
    const out = new Float64Array(x.length);
    for (let t = 0; t < T; t++) {
      const row = x.subarray(t * D, (t + 1) * D);
      const mean = row.reduce((s, v) => s + v, 0) / D;
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / D;
      for (let i = 0; i < D; i++) out[t * D + i] = ((row[i]! - mean) / Math.sqrt(variance + eps)) * w[i]! + b[i]!;
    }
    return out;
  };
  /** GPT-2's Conv1D: addmm(bias, x, weight), weight [nIn, nOut]. */
  const conv1d = (x: Mat, p: string, nIn: number): Mat => {
    const w = W(`${p}.weight`), b = W(`${p}.bias`);
    const nOut = b.length;
    const out = new Float64Array(T * nOut);
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < nOut; o++) {
        let s = b[o]!;
        for (let i = 0; i < nIn; i++) s += x[t * nIn + i]! * w[i * nOut + o]!;
        out[t * nOut + o] = s;
      }
    }
    return out;
  };

  // GPT2Model: inputs_embeds + position_embeds, positions 0 … T−1
  const wte = W('transformer.wte.weight'), wpe = W('transformer.wpe.weight');
  let hidden: Mat = new Float64Array(T * D);
  ids.forEach((id, t) => { for (let i = 0; i < D; i++) hidden[t * D + i] = wte[id * D + i]! + wpe[t * D + i]!; });

  const nL = cfg<number>('n_layer');
  for (let l = 0; l < nL; l++) {
    const p = `transformer.h.${l}`;
    // GPT2Block: attention, then MLP, each pre-norm with a residual
    const attnOut = attention(p, layerNorm(hidden, `${p}.ln_1`), l);
    hidden = hidden.map((v, i) => v + attnOut[i]!);
    const fc = conv1d(layerNorm(hidden, `${p}.ln_2`), `${p}.mlp.c_fc`, D).map(act);
    const mlpOut = conv1d(fc, `${p}.mlp.c_proj`, inner);
    hidden = hidden.map((v, i) => v + mlpOut[i]!);
  }
  hidden = layerNorm(hidden, 'transformer.ln_f');
  // lm_head (no bias), tied to wte unless tie_word_embeddings is false
  const head = cfg<boolean>('tie_word_embeddings', true) ? wte : W('lm_head.weight');
  const V = head.length / D;
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += hidden[t * D + i]! * head[v * D + i]!;
      logits[t * V + v] = s;
    }
  }
  return logits;

  function attention(p: string, x: Mat, layer: number): Mat {
    const qkv = conv1d(x, `${p}.attn.c_attn`, D); // [T, 3D]: query, key, value, each split into heads
    const at = (t: number, part: number, h: number, i: number) => qkv[t * 3 * D + part * D + h * Dh + i]!;
    let scale = cfg<boolean>('scale_attn_weights', true) ? 1 / Math.sqrt(Dh) : 1;
    if (cfg<boolean>('scale_attn_by_inverse_layer_idx', false)) scale /= layer + 1;
    const out = new Float64Array(T * D);
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        // causal: keys 0 … t; the masked ones get the dtype's minimum, i.e. weight 0 after softmax
        const s: number[] = [];
        for (let u = 0; u <= t; u++) {
          let d = 0;
          for (let i = 0; i < Dh; i++) d += at(t, 0, h, i) * at(u, 1, h, i);
          s.push(d * scale);
        }
        const mx = Math.max(...s);
        const e = s.map((z) => Math.exp(z - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < Dh; i++) {
          let acc = 0;
          for (let u = 0; u <= t; u++) acc += (e[u]! / sum) * at(u, 2, h, i);
          out[t * D + h * Dh + i] = acc; // merge heads: [T, H·Dh]
        }
      }
    }
    return conv1d(out, `${p}.attn.c_proj`, D);
  }
}
