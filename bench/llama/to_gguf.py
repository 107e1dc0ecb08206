#!/usr/bin/env python3
"""A Bamba checkpoint (Hugging Face layout) as a GGUF file for llama.cpp's `granitehybrid` loader.

  python3 bench/llama/to_gguf.py <checkpoint dir> <out.gguf> [--type f32|f16|bf16]

Needs numpy and llama.cpp's gguf-py (bench/llama/build.sh puts the source under
~/.cache/archc-bench/llama.cpp; set GGUF_PY to another gguf-py directory). No torch, no
safetensors package: the safetensors headers are read here and each tensor is memory-mapped,
converted and written on its own (in row blocks), so a ~20 GB sharded checkpoint
(model.safetensors.index.json) streams through in bounded memory.

What the conversion must get right (the names and shapes are those llama.cpp's loader asks for in
src/models/granite-hybrid.cpp; gguf-py's TENSOR_NAMES spell them):
  * partial rotary: llama.cpp ropes granitehybrid with LLAMA_ROPE_TYPE_NORM (pairs 2i, 2i+1 of the
    first n_rot dims of a head) where HF Bamba rotates halves (i, i + n_rot/2) of the first
    n_rot = head_dim * partial_rotary_factor dims. So rope.dimension_count is written explicitly
    (left out, llama.cpp ropes the whole head) and the q/k rows of each head are permuted within
    the first n_rot only (the rest of the head passes through unroped in both).
  * A_log -> A = -exp(A_log) as [n_heads, 1]; D as [n_heads, 1]; conv1d [C, 1, K] -> [C, K];
    the gated norm as [n_groups, d_inner / n_groups]; dt_bias -> ssm_dt.bias.
  * tied head: no output.weight (llama.cpp reuses token_embd); untied: lm_head -> output.
  * norms, biases, A, D and the conv stay F32 (llama.cpp's ops on them take F32); --type sets the
    products and the embedding.
  * no tokenizer: a placeholder vocabulary of vocab_size entries (llama-bench draws random ids
    below it); feed token ids (bench/llama/logits.cpp), not text.
Written through a temp file renamed at the end: the output is whole or absent.
"""
import argparse
import json
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GGUF_PY = Path(os.environ.get('GGUF_PY', Path(os.environ.get('ARCHC_BENCH_CACHE', Path.home() / '.cache' / 'archc-bench')) / 'llama.cpp' / 'gguf-py'))
sys.path.insert(0, str(GGUF_PY))
try:
    import gguf  # noqa: E402
except ImportError:
    sys.exit(f'to_gguf: gguf-py not found at {GGUF_PY} (run bench/llama/build.sh or set GGUF_PY)')

T = gguf.MODEL_TENSOR
ROWS_PER_BLOCK = 4096  # rows converted at a time (a 4096-wide bf16 matrix: 32 MiB of f32)


def fail(where: str, msg: str) -> 'None':
    print(f'to_gguf: {where}: {msg}', file=sys.stderr)
    sys.exit(1)


# ---- safetensors, read lazily ---------------------------------------------------------------------

ST_DTYPES = {'F32': np.float32, 'F16': np.float16, 'BF16': np.uint16}


class Source:
    """One tensor of a checkpoint: its file, dtype and shape; .array() memory-maps it."""

    def __init__(self, path: Path, name: str, info: dict, base: int):
        if info['dtype'] not in ST_DTYPES:
            fail(f'{path.name}: {name}', f'dtype {info["dtype"]} (expected F32, F16 or BF16)')
        self.path, self.name, self.dtype, self.shape = path, name, info['dtype'], tuple(info['shape'])
        self.offset = base + info['data_offsets'][0]
        n = math.prod(self.shape) * np.dtype(ST_DTYPES[self.dtype]).itemsize
        if info['data_offsets'][1] - info['data_offsets'][0] != n:
            fail(f'{path.name}: {name}', f'data_offsets span {info["data_offsets"]} does not hold shape {list(self.shape)}')

    def array(self) -> np.ndarray:
        if math.prod(self.shape) == 0:
            return np.zeros(self.shape, ST_DTYPES[self.dtype])
        return np.memmap(self.path, dtype=ST_DTYPES[self.dtype], mode='r', offset=self.offset, shape=self.shape)


def read_checkpoint(d: Path) -> dict[str, Source]:
    index = d / 'model.safetensors.index.json'
    if index.exists():
        files = sorted(set(json.loads(index.read_text())['weight_map'].values()))
    else:
        files = sorted(p.name for p in d.glob('*.safetensors'))
    if not files:
        fail(str(d), 'no model.safetensors or model.safetensors.index.json')
    out: dict[str, Source] = {}
    for f in files:
        p = d / f
        with open(p, 'rb') as fh:
            n = struct.unpack('<Q', fh.read(8))[0]
            header = json.loads(fh.read(n))
        for name, info in header.items():
            if name == '__metadata__':
                continue
            if name in out:
                fail(str(p), f'tensor {name} also in {out[name].path.name}')
            out[name] = Source(p, name, info, 8 + n)
    return out


def f32_of(a: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == 'BF16':
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def bf16_of(f: np.ndarray) -> np.ndarray:
    u = f.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


# ---- the plan: GGUF name, source, reshaping, output type ---------------------------------------------

class Out:
    def __init__(self, name: str, src: Source, shape: tuple, qtype, fn=None, rowwise=True):
        self.name, self.src, self.shape, self.qtype, self.fn, self.rowwise = name, src, shape, qtype, fn, rowwise


def rope_perm(head_dim: int, n_rot: int) -> np.ndarray:
    """Row order within a head taking HF's halves rotation to ggml's NORM pairs, first n_rot rows only."""
    half = n_rot // 2
    return np.array([j for i in range(half) for j in (i, i + half)] + list(range(n_rot, head_dim)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('checkpoint', type=Path)
    ap.add_argument('out', type=Path)
    ap.add_argument('--type', choices=['f32', 'f16', 'bf16'], default='bf16', help='products and embedding (default bf16)')
    a = ap.parse_args()
    cfg_path = a.checkpoint / 'config.json'
    if not cfg_path.exists():
        fail(str(a.checkpoint), 'no config.json')
    cfg = json.loads(cfg_path.read_text())  # json accepts Infinity (time_step_limit)

    def c(key, default=None):
        if key in cfg:
            return cfg[key]
        if default is None:
            fail(f'{cfg_path}: {key}', 'missing')
        return default

    d_model, n_layer = c('hidden_size'), c('num_hidden_layers')
    n_head, n_kv = c('num_attention_heads'), c('num_key_value_heads')
    head_dim = d_model // n_head
    attn = set(c('attn_layer_indices', []))
    m_heads, m_dhead, expand = c('mamba_n_heads'), c('mamba_d_head'), c('mamba_expand', 2)
    n_group, d_state, d_conv = c('mamba_n_groups', 1), c('mamba_d_state'), c('mamba_d_conv', 4)
    d_inner = m_heads * m_dhead
    if d_inner != expand * d_model or expand != 2:
        fail(f'{cfg_path}: mamba_expand', f'llama.cpp supports d_inner = 2 * hidden_size only (here {m_heads} x {m_dhead} = {d_inner}, hidden {d_model})')
    if cfg.get('hidden_act', 'silu') != 'silu':
        fail(f'{cfg_path}: hidden_act', 'llama.cpp granitehybrid has silu only')
    lim = cfg.get('time_step_limit', [0, float('inf')])
    if lim[0] > 0 or lim[1] != float('inf'):
        fail(f'{cfg_path}: time_step_limit', f'{lim}: llama.cpp does not clamp dt')
    partial = c('partial_rotary_factor', 0.5)
    n_rot = int(head_dim * partial)
    if 'attn_rotary_emb' in cfg and cfg['attn_rotary_emb'] != n_rot:
        fail(f'{cfg_path}: attn_rotary_emb', f'{cfg["attn_rotary_emb"]} disagrees with head_dim x partial_rotary_factor = {n_rot}')
    if n_rot % 2 or n_rot <= 0:
        fail(f'{cfg_path}: partial_rotary_factor', f'rotary dims {n_rot} must be even and positive')
    vocab, tied = c('vocab_size'), c('tie_word_embeddings', False)

    src = read_checkpoint(a.checkpoint)
    used: set[str] = set()
    mat = {'f32': gguf.GGMLQuantizationType.F32, 'f16': gguf.GGMLQuantizationType.F16, 'bf16': gguf.GGMLQuantizationType.BF16}[a.type]
    F32 = gguf.GGMLQuantizationType.F32
    plan: list[Out] = []

    def take(hf: str, kind, bid=None, suffix='.weight', qtype=None, shape=None, fn=None, rowwise=True, optional=False):
        s = src.get(hf)
        if s is None:
            if optional:
                return
            fail(f'{a.checkpoint}: {hf}', 'tensor missing')
        used.add(hf)
        name = gguf.TENSOR_NAMES[kind].format(bid=bid) + suffix
        plan.append(Out(name, s, shape or s.shape, mat if qtype is None else qtype, fn, rowwise))

    def want(hf: str, shape: tuple):
        s = src.get(hf)
        if s is not None and tuple(s.shape) != shape:
            fail(f'{a.checkpoint}: {hf}', f'shape {list(s.shape)}, expected {list(shape)}')

    want('model.embed_tokens.weight', (vocab, d_model))
    take('model.embed_tokens.weight', T.TOKEN_EMBD)
    take('model.final_layernorm.weight', T.OUTPUT_NORM, qtype=F32)
    if not tied:
        take('lm_head.weight', T.OUTPUT)
    elif 'lm_head.weight' in src:
        used.add('lm_head.weight')  # tied: the same values as the embedding
    perm = rope_perm(head_dim, n_rot)

    def permute_heads(heads: int):
        return lambda w: w.reshape(heads, head_dim, -1)[:, perm, :].reshape(heads * head_dim, -1)

    for i in range(n_layer):
        p = f'model.layers.{i}.'
        take(p + 'input_layernorm.weight', T.ATTN_NORM, i, qtype=F32)
        take(p + 'pre_ff_layernorm.weight', T.FFN_NORM, i, qtype=F32)
        for hf, kind in (('gate_proj', T.FFN_GATE), ('up_proj', T.FFN_UP), ('down_proj', T.FFN_DOWN)):
            take(p + f'feed_forward.{hf}.weight', kind, i)
            take(p + f'feed_forward.{hf}.bias', kind, i, '.bias', F32, optional=True)
        if i in attn:
            want(p + 'self_attn.q_proj.weight', (n_head * head_dim, d_model))
            want(p + 'self_attn.k_proj.weight', (n_kv * head_dim, d_model))
            take(p + 'self_attn.q_proj.weight', T.ATTN_Q, i, fn=permute_heads(n_head), rowwise=False)
            take(p + 'self_attn.k_proj.weight', T.ATTN_K, i, fn=permute_heads(n_kv), rowwise=False)
            take(p + 'self_attn.v_proj.weight', T.ATTN_V, i)
            take(p + 'self_attn.o_proj.weight', T.ATTN_OUT, i)
            take(p + 'self_attn.q_proj.bias', T.ATTN_Q, i, '.bias', F32, fn=lambda b: permute_heads(n_head)(b[:, None])[:, 0], rowwise=False, optional=True)
            take(p + 'self_attn.k_proj.bias', T.ATTN_K, i, '.bias', F32, fn=lambda b: permute_heads(n_kv)(b[:, None])[:, 0], rowwise=False, optional=True)
            take(p + 'self_attn.v_proj.bias', T.ATTN_V, i, '.bias', F32, optional=True)
            take(p + 'self_attn.o_proj.bias', T.ATTN_OUT, i, '.bias', F32, optional=True)
        else:
            m = p + 'mamba.'
            conv_ch = d_inner + 2 * n_group * d_state
            want(m + 'in_proj.weight', (2 * d_inner + 2 * n_group * d_state + m_heads, d_model))
            want(m + 'conv1d.weight', (conv_ch, 1, d_conv))
            take(m + 'in_proj.weight', T.SSM_IN, i)
            take(m + 'conv1d.weight', T.SSM_CONV1D, i, qtype=F32, shape=(conv_ch, d_conv), fn=lambda w: w.reshape(w.shape[0], -1))
            take(m + 'conv1d.bias', T.SSM_CONV1D, i, '.bias', F32)
            take(m + 'dt_bias', T.SSM_DT, i, '.bias', F32)
            take(m + 'A_log', T.SSM_A, i, '', F32, shape=(m_heads, 1), fn=lambda x: -np.exp(x.reshape(-1, 1)))
            take(m + 'D', T.SSM_D, i, '', F32, shape=(m_heads, 1), fn=lambda x: x.reshape(-1, 1))
            take(m + 'norm.weight', T.SSM_NORM, i, qtype=F32, shape=(n_group, d_inner // n_group), fn=lambda x: x.reshape(n_group, -1), rowwise=False)
            take(m + 'out_proj.weight', T.SSM_OUT, i)
    extra = sorted(set(src) - used)
    if extra:
        fail(str(a.checkpoint), f'{len(extra)} tensors llama.cpp granitehybrid has no place for: {", ".join(extra[:5])}')

    # ---- metadata ----
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GRANITE_HYBRID]
    tmp = a.out.with_name(a.out.name + f'.tmp{os.getpid()}')
    w = gguf.GGUFWriter(tmp, arch)
    w.add_name(a.checkpoint.resolve().name)
    w.add_context_length(c('max_position_embeddings', 4096))
    w.add_embedding_length(d_model)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(c('intermediate_size'))
    w.add_head_count(n_head)
    w.add_head_count_kv([n_kv if i in attn else 0 for i in range(n_layer)])
    w.add_rope_dimension_count(n_rot)
    w.add_rope_freq_base(float(c('rope_theta', 10000.0)))
    w.add_rope_scaling_finetuned(True)  # granitehybrid's switch for "rope on"
    w.add_layer_norm_rms_eps(float(c('rms_norm_eps', 1e-5)))
    w.add_ssm_conv_kernel(d_conv)
    w.add_ssm_state_size(d_state)
    w.add_ssm_group_count(n_group)
    w.add_ssm_inner_size(d_inner)
    w.add_ssm_time_step_rank(m_heads)
    w.add_file_type({'f32': gguf.LlamaFileType.ALL_F32, 'f16': gguf.LlamaFileType.MOSTLY_F16, 'bf16': gguf.LlamaFileType.MOSTLY_BF16}[a.type])
    w.add_tokenizer_model('llama')
    w.add_token_list([f'<id{i}>' for i in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([gguf.TokenType.NORMAL] * vocab)
    for key, add in (('bos_token_id', w.add_bos_token_id), ('eos_token_id', w.add_eos_token_id), ('pad_token_id', w.add_pad_token_id)):
        if isinstance(cfg.get(key), int) and 0 <= cfg[key] < vocab:
            add(cfg[key])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    np_of = {gguf.GGMLQuantizationType.F32: np.float32, gguf.GGMLQuantizationType.F16: np.float16, gguf.GGMLQuantizationType.BF16: np.uint16}
    for o in plan:
        dt = np.dtype(np_of[o.qtype])
        w.add_tensor_info(o.name, o.shape, dt, math.prod(o.shape) * dt.itemsize, raw_dtype=o.qtype)

    def convert(x: np.ndarray, o: Out) -> np.ndarray:
        if o.qtype == gguf.GGMLQuantizationType.BF16 and o.src.dtype == 'BF16' and o.fn is None:
            return np.ascontiguousarray(x)  # bit-exact
        f = f32_of(np.asarray(x), o.src.dtype)
        if o.fn is not None:
            f = np.ascontiguousarray(o.fn(f), dtype=np.float32)
        if o.qtype == gguf.GGMLQuantizationType.F32:
            return f
        if o.qtype == gguf.GGMLQuantizationType.BF16:
            return bf16_of(f)
        h = f.astype(np.float16)
        if not np.isfinite(h).all() and np.isfinite(f).all():
            fail(f'{o.src.path.name}: {o.src.name}', 'values beyond f16 range (use --type bf16)')
        return h

    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        fout = w.fout[0]
        for k, o in enumerate(plan):
            x = o.src.array()
            w.write_padding(fout, fout.tell())
            start = fout.tell()
            if o.rowwise and x.ndim == 2 and x.shape[0] > ROWS_PER_BLOCK:
                for r in range(0, x.shape[0], ROWS_PER_BLOCK):
                    convert(x[r:r + ROWS_PER_BLOCK], o).tofile(fout)
            else:
                convert(x, o).tofile(fout)
            n = fout.tell() - start
            want_n = math.prod(o.shape) * np.dtype(np_of[o.qtype]).itemsize
            if n != want_n:
                fail(o.name, f'wrote {n} bytes, expected {want_n}')
            w.write_padding(fout, n)
            if sys.stderr.isatty():
                print(f'\r[{k + 1}/{len(plan)}] {o.name}\033[K', end='' if k + 1 < len(plan) else '\n', file=sys.stderr)
        w.close()
        os.replace(tmp, a.out)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f'wrote {a.out}: {len(plan)} tensors, products {a.type}, rope dims {n_rot} of {head_dim}')


if __name__ == '__main__':
    main()
