"""The transformer and its checkpoints: layers as pure functions, the forward pass, the KV cache, and the readers and
writers for safetensors, GGUF and minichat's own checkpoint format.

    layers.py          embedding, positions (learned, sinusoidal, RoPE), LayerNorm/RMSNorm, attention, MLPs
    transformer.py     parameter names and shapes, random init, `Transformer.forward` (prefill and cached decode)
    fast.py            the forward's fast path: layers.py's norms, linear layers and MLPs on Numba kernels
    kv_cache.py        `KVCache`: preallocated keys/values, append, crop, fork, memory accounting
    checkpoint.py      `load_model` (HF GPT-2/Llama folders, GGUF, minichat's own), `save_checkpoint`
    safetensors.py     the safetensors file format, read and written by hand
    gguf.py            the GGUF file format (llama.cpp), read by hand, with Q8_0/Q4_0/Q4_1 dequantisation
    gguf_tokenizer.py  the tokenizer a GGUF carries in its metadata, as a minichat Tokenizer
"""
from minichat.model.checkpoint import load_model, save_checkpoint
from minichat.model.kv_cache import KVCache
from minichat.model.transformer import Transformer, init_params, param_shapes

__all__ = ["KVCache", "Transformer", "init_params", "load_model", "param_shapes", "save_checkpoint"]
