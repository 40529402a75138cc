"""Building reference objects from minichat ones for the peer tests (kept apart from conftest's fixtures): an HF
tokenizer with a minichat vocabulary, and minichat's transformer written in torch (the tests and bench/train.py use
the same one)."""
from __future__ import annotations

import numpy as np

from minichat.config import ModelConfig
from minichat.tokenizer import Tokenizer
from minichat.tokenizer.vocab import bytes_to_unicode


def hf_tokenizer_from(tok: Tokenizer):
    """The same vocabulary as an HF `tokenizers.Tokenizer` (byte-level BPE from vocab + merges, same split regex)."""
    from tokenizers import AddedToken, Regex, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

    show = bytes_to_unicode()
    text = {i: "".join(show[b] for b in bs) for i, bs in tok.vocab.items()}
    vocab = {s: i for i, s in text.items()}
    merges = [(text[a], text[b]) for a, b, _ in tok.merges]
    hf = HFTokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tok.pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1]):
        hf.add_special_tokens([AddedToken(s, special=True, normalized=False)])
        assert hf.token_to_id(s) == i, "special ids must follow the ordinary ones in order"
    return hf


def torch_model_loss(torch, config: ModelConfig, tp: dict, ids, targets, mask):
    """minichat's architecture written from torch.nn.functional ops, independently of minichat's forward (SDPA with
    enable_gqa, F.rms_norm / F.layer_norm, F.gelu tanh, HF's rotate_half RoPE, interleaved sinusoids); the loss is
    the mean cross-entropy over the targets whose mask is not 0. tp: parameter name -> torch tensor (float32 or
    float64; autograd fills their .grad). ids, targets, mask: (B, T) NumPy arrays or tensors."""
    F = torch.nn.functional
    c = config
    ids = torch.as_tensor(ids, dtype=torch.long)
    B, T = ids.shape
    H, K, D = c.n_head, c.n_kv_head, c.head_dim
    dtype = tp["wte"].dtype
    x = tp["wte"][ids]  # (B, T, C)
    if c.positions == "learned":
        x = x + tp["wpe"][:T]
    elif c.positions == "sinusoidal":
        pos = torch.arange(T, dtype=torch.float64)[:, None]
        freq = 10000.0 ** (-torch.arange(0, c.n_embd, 2, dtype=torch.float64) / c.n_embd)
        pe = torch.stack([torch.sin(pos * freq), torch.cos(pos * freq)], -1).reshape(T, c.n_embd)  # interleaved
        x = x + pe.to(dtype)
    if c.positions == "rope":
        inv = 1.0 / c.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv
        cos, sin = torch.cat([ang, ang], -1).cos().to(dtype), torch.cat([ang, ang], -1).sin().to(dtype)

    def rot(t):
        return t * cos + torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1) * sin

    def norm(x, name):
        if c.norm == "rmsnorm":
            return F.rms_norm(x, (c.n_embd,), tp[name + ".weight"], eps=c.norm_eps)
        return F.layer_norm(x, (c.n_embd,), tp[name + ".weight"], tp.get(name + ".bias"), eps=c.norm_eps)

    def lin(x, name):  # minichat stores weights (in, out), as GPT-2's checkpoints do
        return F.linear(x, tp[name + ".weight"].T, tp.get(name + ".bias"))

    for i in range(c.n_layer):
        p = f"h.{i}."
        qkv = lin(norm(x, p + "ln_1"), p + "attn.c_attn")
        q = qkv[..., :H * D].reshape(B, T, H, D).transpose(1, 2)
        k = qkv[..., H * D:(H + K) * D].reshape(B, T, K, D).transpose(1, 2)
        v = qkv[..., (H + K) * D:].reshape(B, T, K, D).transpose(1, 2)
        if c.smear_keys:  # mixed in before the rotation (minichat smears rotated keys, turning the earlier one on)
            s = torch.sigmoid(tp[p + "attn.smear"])[None, :, None, None]
            k = s * k + (1 - s) * F.pad(k, (0, 0, 1, 0))[:, :, :-1]
        if c.positions == "rope":
            q, k = rot(q), rot(k)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=K != H)
        x = x + lin(a.transpose(1, 2).reshape(B, T, H * D), p + "attn.c_proj")
        h = norm(x, p + "ln_2")
        if c.mlp == "swiglu":
            x = x + lin(F.silu(lin(h, p + "mlp.c_gate")) * lin(h, p + "mlp.c_fc"), p + "mlp.c_proj")
        else:
            x = x + lin(F.gelu(lin(h, p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
    logits = norm(x, "ln_f") @ (tp["wte"] if c.tie_embeddings else tp["lm_head"]).T  # (B, T, V)
    w = torch.as_tensor(np.asarray(mask, dtype=np.float64)).to(dtype).reshape(-1)  # (B*T,)
    t = torch.where(w != 0, torch.as_tensor(targets, dtype=torch.long).reshape(-1), 0)  # dropped targets: any id
    return (F.cross_entropy(logits.reshape(B * T, -1), t, reduction="none") * w).sum() / w.sum()
