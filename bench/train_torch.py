# tiny-bamba-a's shape written plainly in PyTorch, for bench/train.ts' side by side: the same
# weights (its model.safetensors), the same packed batches (JSON on stdin: tokens, positions,
# labels, cu_seq_lens), a whole training step each (forward, causal-LM loss, backward, clipping,
# AdamW). Packed sequences stay separate: the conv's taps and the SSD's state do not cross a
# sequence's first row (masks on the flat row, as mamba_ssm's seq_idx does), attention runs per
# sequence. Prints the BLAS torch runs its products on (Debian's torch is built against the generic
# libblas.so.3, which is whichever alternative the system links there: the reference BLAS or
# OpenBLAS, or the library LD_LIBRARY_PATH puts first: the one loaded is printed), each step's
# loss and time, then "torch tokens/s X" over the steps after the first.
# Run: python3 bench/train_torch.py MODEL_DIR STEPS THREADS < batches.json
import json, math, os, re, struct, sys, time
import torch
import torch.nn.functional as F

model_dir, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
blas = re.search(r'BLAS_INFO=([^,\s]+)', torch.__config__.show())
torch.ones(8, 8) @ torch.ones(8, 8)  # loads the BLAS
loaded = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'blas' in l.split()[-1]}) if os.path.exists('/proc/self/maps') else []
print(f'torch {torch.__version__} BLAS: BLAS_INFO={blas.group(1) if blas else "?"}; loaded {", ".join(os.path.realpath(l) for l in loaded) or "?"}')
cfg = json.load(open(f'{model_dir}/config.json'))

def read_safetensors(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == '__metadata__': continue
        a, b = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(v['shape']).clone()
    return out

W = {k: torch.nn.Parameter(v) for k, v in read_safetensors(f'{model_dir}/model.safetensors').items()}
D, L_ = cfg['hidden_size'], cfg['num_hidden_layers']
H, KV, Dh = cfg['num_attention_heads'], cfg['num_key_value_heads'], cfg['hidden_size'] // cfg['num_attention_heads']
R = int(Dh * cfg.get('partial_rotary_factor', 1.0))
MH, MP, MG, MN, Q = cfg['mamba_n_heads'], cfg['mamba_d_head'], cfg['mamba_n_groups'], cfg['mamba_d_state'], cfg['mamba_chunk_size']
EPS, THETA, K = cfg['rms_norm_eps'], cfg.get('rope_theta', 10000.0), cfg['mamba_d_conv']
ATTN = set(cfg['attn_layer_indices'])

def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))

def rope(x, pos):  # x [T, heads, Dh]: the first R dims rotated (rotate_half)
    inv = 1.0 / THETA ** (torch.arange(0, R, 2, dtype=torch.float32) / R)
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    lo, hi, rest = x[..., :R // 2], x[..., R // 2:R], x[..., R:]
    return torch.cat([lo * cos - hi * sin, hi * cos + lo * sin, rest], -1)

def attention(p, x, pos, cu):
    T = x.shape[0]
    q = rope((x @ W[p + 'q_proj.weight'].T).view(T, H, Dh), pos)
    k = rope((x @ W[p + 'k_proj.weight'].T).view(T, KV, Dh), pos)
    v = (x @ W[p + 'v_proj.weight'].T).view(T, KV, Dh)
    outs = []
    for a, b in zip(cu[:-1], cu[1:]):
        qs, ks, vs = q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1)
        ks, vs = ks.repeat_interleave(H // KV, 0), vs.repeat_interleave(H // KV, 0)
        s = (qs @ ks.transpose(1, 2)) * Dh ** -0.5
        s = s.masked_fill(torch.ones(b - a, b - a, dtype=torch.bool).triu(1), float('-inf'))
        outs.append((s.softmax(-1) @ vs).transpose(0, 1).reshape(b - a, H * Dh))
    return torch.cat(outs) @ W[p + 'o_proj.weight'].T

def mamba(p, x, first, seq):
    T, din, dbc = x.shape[0], MH * MP, MG * MN
    zxd = x @ W[p + 'in_proj.weight'].T
    z, xbc, dt = zxd.split([din, din + 2 * dbc, MH], -1)
    # causal depthwise conv, no tap before a sequence's first row (pos = row within its sequence)
    w, posn = W[p + 'conv1d.weight'][:, 0, :], first
    acc = W[p + 'conv1d.bias'].expand(T, -1)
    for j in range(K):
        s = K - 1 - j
        shifted = F.pad(xbc, (0, 0, s, 0))[:T] * (posn >= s)[:, None]
        acc = acc + shifted * w[:, j]
    xbc = F.silu(acc)
    xs, B, C = xbc.split([din, dbc, dbc], -1)
    dt = F.softplus(dt + W[p + 'dt_bias'])
    A = -torch.exp(W[p + 'A_log'])
    y = ssd(xs.view(T, MH, MP), dt, A, B.view(T, MG, MN), C.view(T, MG, MN), seq) + xs.view(T, MH, MP) * W[p + 'D'][:, None]
    y = y.reshape(T, din) * F.silu(z)
    return rms(y, W[p + 'norm.weight']) @ W[p + 'out_proj.weight'].T

def ssd(x, dt, A, B, C, seq):
    # chunks of Q rows of the flat packed row; tokens of different sequences masked apart
    T = x.shape[0]; pad = (-T) % Q; n = (T + pad) // Q
    rep = MH // MG
    B, C = B.repeat_interleave(rep, 1), C.repeat_interleave(rep, 1)
    padf = lambda t: F.pad(t, [0, 0] * (t.dim() - 1) + [0, pad]).view(n, Q, *t.shape[1:])
    X, dtc, Bc, Cc = padf(x * dt[..., None]), padf(dt), padf(B), padf(C)
    sq = F.pad(seq, (0, pad), value=-1).view(n, Q)
    a = (dtc * A).permute(0, 2, 1)                         # [n, H, Q]
    cum = a.cumsum(-1)
    same = sq[:, :, None] == sq[:, None, :]                # [n, Q, Q]
    mask = same & torch.ones(Q, Q, dtype=torch.bool).tril()
    seg = (cum[..., :, None] - cum[..., None, :]).masked_fill(~mask[:, None], float('-inf'))
    Lm = torch.exp(seg)                                     # [n, H, Q, Q]
    y = torch.einsum('clhn,cshn,chls,cshp->clhp', Cc, Bc, Lm, X)
    last = sq[:, -1:]
    decay_out = torch.exp(cum[..., -1:] - cum) * (sq == last)[:, None, :]
    states = torch.einsum('clhn,chl,clhp->chpn', Bc, decay_out, X)
    S = torch.zeros(MH, MP, MN)
    entering = []
    for c in range(n):
        entering.append(S)
        keep = (sq[c, -1] == (sq[c - 1, -1] if c else -2)).float()
        S = S * torch.exp(cum[c, :, -1])[:, None, None] * keep + states[c]
    Sin = torch.stack(entering)                             # [n, H, P, N]
    prev = torch.cat([torch.full((1,), -2), sq[:-1, -1]])
    decay_in = torch.exp(cum) * (sq == prev[:, None])[:, None, :]
    y = y + torch.einsum('clhn,chpn,chl->clhp', Cc, Sin, decay_in)
    return y.reshape(n * Q, MH, MP)[:T]

def forward(tokens, pos, cu):
    T = tokens.shape[0]
    seq = torch.zeros(T, dtype=torch.long)
    for i, (a, b) in enumerate(zip(cu[:-1], cu[1:])): seq[a:b] = i
    first = pos  # positions restart at 0 per sequence
    x = W['model.embed_tokens.weight'][tokens]
    for i in range(L_):
        p = f'model.layers.{i}.'
        n = rms(x, W[p + 'input_layernorm.weight'])
        h = x + (attention(p + 'self_attn.', n, pos, cu) if i in ATTN else mamba(p + 'mamba.', n, first, seq))
        m = rms(h, W[p + 'pre_ff_layernorm.weight'])
        f = p + 'feed_forward.'
        x = h + (F.silu(m @ W[f + 'gate_proj.weight'].T) * (m @ W[f + 'up_proj.weight'].T)) @ W[f + 'down_proj.weight'].T
    x = rms(x, W['model.final_layernorm.weight'])
    return x @ W['model.embed_tokens.weight'].T

params = list(W.values())
decay = [p for p in params if p.dim() >= 2]
nodecay = [p for p in params if p.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': nodecay, 'weight_decay': 0.0}], lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
batches = json.load(sys.stdin)
secs = toks = cpu = 0
for i, b in enumerate(batches[:steps]):
    tokens, pos, labels = torch.tensor(b['tokens']), torch.tensor(b['positions']), torch.tensor(b['labels'])
    cu = b['cu']
    t0, c0 = time.perf_counter(), time.process_time()
    logits = forward(tokens, pos, cu)
    loss = F.cross_entropy(logits[:-1], labels[1:], ignore_index=-100)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    if i: secs += dt; toks += len(b['tokens']); cpu += dc
    print(f'torch step {i + 1}: {len(b["tokens"])} tokens, loss {loss.item():.4f}, {dt:.3f} s')
print(f'torch tokens/s {toks / secs:.1f} over {len(batches[:steps]) - 1} steps ({threads} threads); {toks / cpu:.1f} tokens per CPU-second (all threads)')
