"""Exporting a minichat model to the formats the engines that scale out read: a Hugging Face folder and a GGUF file.

When one machine running minichat is not enough, the same OpenAI-style client can talk to vLLM (which reads Hugging
Face folders) or llama.cpp's server (which reads GGUF). Both need the model in their format:

    hf     a folder: config.json (model_type "llama" or "gpt2"), model.safetensors (HF tensor names; nn.Linear weights
           (out, in), so minichat's (in, out) matrices are transposed and c_attn is split into q/k/v), tokenizer.json
           (the byte-level BPE as the `tokenizers` library's JSON), tokenizer_config.json (special tokens and the
           ChatML chat template as Jinja, which HF's apply_chat_template and vLLM run)
    gguf   one file, GGUF v3, float32 tensors under llama.cpp's names; Q and K rows permuted the way llama.cpp's
           converter does (RoPE pairs i, i+1 instead of i, i+D/2; checkpoint.unpermute_rope_rows undoes it), the
           hyper-parameters as `llama.*` keys, the tokenizer as `tokenizer.ggml.*` keys and the chat template

This is the inverse of checkpoint.py's loaders, and the tests close the loop: `transformers` loads the HF folder and
computes the same logits, the `gguf` package reads the GGUF file and minichat's own loader computes the same logits.
What it leaves out: quantised GGUF types (llama.cpp's `llama-quantize` makes them from this file), GPT-2-family GGUF
(llama.cpp's "gpt2" architecture: the built-in model and SmolLM2 are Llamas), sharded safetensors, sinusoidal or
other hybrid configs (neither format has them: refused with a clear message).
"""
from __future__ import annotations

import argparse
import json
import os
import struct
from pathlib import Path

import numpy as np

from minichat.model.checkpoint import LLAMA_GGUF_NAMES, LLAMA_HF_NAMES
from minichat.model.gguf_tokenizer import PRE_TOKENIZER_PATTERNS
from minichat.model.safetensors import write_safetensors
from minichat.model.transformer import Transformer
from minichat.tokenizer import Tokenizer
from minichat.tokenizer.patterns import PATTERNS
from minichat.tokenizer.vocab import bytes_to_unicode

# ChatML, as Jinja (the language HF's and vLLM's chat templates are written in); what minichat.chat.template renders.
CHATML_JINJA = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                "{% endif %}")
# llama.cpp picks its pre-tokenizer regex by name (`tokenizer.ggml.pre`). A regex minichat's GGUF reader knows by
# name gets that name back; GPT-4's (cl100k) regex is llama.cpp's "llama-bpe" (Llama 3's: the same splits).
GGUF_PRE_NAMES = {"gpt4": "llama-bpe", "cl100k": "llama-bpe"}


def chat_template(model: Transformer, tokenizer: Tokenizer | None) -> str | None:
    """The Jinja chat template to ship: the one the model was loaded with (a GGUF's metadata, an HF folder's
    tokenizer_config.json; it may carry the model's default system prompt), else ChatML if the tokenizer has its
    tokens, else none."""
    source = getattr(model, "source", None)  # set by checkpoint.load_model
    if source is not None and Path(source).is_file() and Path(source).suffix == ".gguf":
        from minichat.model.gguf_tokenizer import chat_template_from_gguf

        found = chat_template_from_gguf(source)
        if found:
            return found
    if source is not None and (Path(source) / "tokenizer_config.json").is_file():
        found = json.loads((Path(source) / "tokenizer_config.json").read_text()).get("chat_template")
        if isinstance(found, str):
            return found
    if tokenizer is not None and {"<|im_start|>", "<|im_end|>"} <= set(tokenizer.special_tokens):
        return CHATML_JINJA
    return None


def _family(model: Transformer) -> str:
    c = model.config
    if c.smear_keys:
        raise ValueError("this model smears its keys (ModelConfig.smear_keys), which neither Hugging Face's Llama/GPT-2 "
                         "nor GGUF can express; it stays a minichat checkpoint")
    if (c.positions, c.norm, c.mlp, c.bias) == ("rope", "rmsnorm", "swiglu", False):
        return "llama"
    if (c.positions, c.norm, c.mlp, c.bias) == ("learned", "layernorm", "gelu", True):
        return "gpt2"
    raise ValueError(f"this model mixes families (positions={c.positions}, norm={c.norm}, mlp={c.mlp}, bias={c.bias}); "
                     f"only Llama-shaped (rope, rmsnorm, swiglu, no bias) and GPT-2-shaped models can be exported")


def _split_qkv(model: Transformer, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # -> 3 x (out, C)
    c = model.config
    w = model.params[f"h.{i}.attn.c_attn.weight"]  # (C, (H + 2K) D)
    q, k = c.n_head * c.head_dim, c.n_kv_head * c.head_dim
    return w[:, :q].T, w[:, q:q + k].T, w[:, q + k:].T  # (H D, C), (K D, C), (K D, C)


def llama_tensors(model: Transformer, names: dict[str, str], interleave_rope: bool) -> dict[str, np.ndarray]:
    """minichat's Llama parameters under `names` (LLAMA_HF_NAMES or LLAMA_GGUF_NAMES), Linear weights (out, in)."""
    c, p = model.config, model.params
    out = {names["embed"]: p["wte"], names["norm"]: p["ln_f.weight"]}
    if not c.tie_embeddings:
        out[names["head"]] = p["lm_head"]
    for i in range(c.n_layer):
        q, k, v = _split_qkv(model, i)
        if interleave_rope:
            q, k = permute_rope_rows(q, c.n_head), permute_rope_rows(k, c.n_kv_head)
        h = f"h.{i}."
        for role, w in (("q", q), ("k", k), ("v", v), ("o", p[h + "attn.c_proj.weight"].T),
                        ("gate", p[h + "mlp.c_gate.weight"].T), ("up", p[h + "mlp.c_fc.weight"].T),
                        ("down", p[h + "mlp.c_proj.weight"].T), ("ln_1", p[h + "ln_1.weight"]),
                        ("ln_2", p[h + "ln_2.weight"])):
            out[names[role].format(i=i)] = np.ascontiguousarray(w, dtype=np.float32)
    return out


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:  # (n_head * D, C) -> (n_head * D, C)
    """llama.cpp's Q/K row order: within each head, HF's (all first halves, all second halves) becomes pairs."""
    rows, cols = w.shape
    D = rows // n_head
    return w.reshape(n_head, 2, D // 2, cols).swapaxes(1, 2).reshape(rows, cols)  # (H, 2, D/2, C) -> (H, D/2, 2, C)


# -- Hugging Face ----------------------------------------------------------------------------------------------------

def hf_config(model: Transformer, tokenizer: Tokenizer | None) -> dict:
    c, family = model.config, _family(model)
    eos = tokenizer.special_tokens.get("<|im_end|>", tokenizer.special_tokens.get("<|endoftext|>")) \
        if tokenizer is not None else None
    common = {"vocab_size": c.vocab_size, "tie_word_embeddings": c.tie_embeddings, "torch_dtype": "float32",
              "bos_token_id": None, "eos_token_id": eos}
    if family == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_positions": c.n_ctx,
                "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head, "n_inner": c.n_inner,
                "activation_function": "gelu_new", "layer_norm_epsilon": c.norm_eps, **common}
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": c.n_embd,
            "intermediate_size": c.n_inner, "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head,
            "num_key_value_heads": c.n_kv_head, "head_dim": c.head_dim, "max_position_embeddings": c.n_ctx,
            "rope_theta": c.rope_theta, "rms_norm_eps": c.norm_eps, "hidden_act": "silu", "attention_bias": False,
            "mlp_bias": False, **common}


def hf_tensors(model: Transformer) -> dict[str, np.ndarray]:
    if _family(model) == "llama":
        return llama_tensors(model, LLAMA_HF_NAMES, interleave_rope=False)
    # GPT-2: HF's Conv1D stores (in, out), as minichat does: the names are the same after a prefix
    rename = {"wte": "wte.weight", "wpe": "wpe.weight"}
    return {"transformer." + rename.get(k, k): v for k, v in model.params.items() if k != "lm_head"}


def _pattern(tokenizer: Tokenizer) -> str:  # the split regex itself
    return PATTERNS.get(tokenizer.pattern, tokenizer.pattern)


def _gguf_pre(tokenizer: Tokenizer) -> str:
    regex = _pattern(tokenizer)
    known = next((n for n, r in PRE_TOKENIZER_PATTERNS.items() if r == regex), None)
    if known is not None:
        return known
    return GGUF_PRE_NAMES.get(next((n for n, r in PATTERNS.items() if r == regex), ""), "default")


def hf_tokenizer_json(tokenizer: Tokenizer) -> dict:
    """The tokenizer as the `tokenizers` library's JSON: a byte-level BPE (GPT-2's byte-to-character map for the
    vocabulary strings), the split regex as a Split pre-tokenizer, special tokens as added tokens."""
    chars = bytes_to_unicode()

    def s(b: bytes) -> str:
        return "".join(chars[x] for x in b)

    vocab = {s(b): i for i, b in sorted(tokenizer.vocab.items())}
    merges = [[s(tokenizer.vocab[a]), s(tokenizer.vocab[b])] for a, b, _ in tokenizer.merges]  # rank order
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for t, i in sorted(tokenizer.special_tokens.items(), key=lambda kv: kv[1])]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": _pattern(tokenizer)}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def export_hf(model: Transformer, tokenizer: Tokenizer | None, folder: str | os.PathLike) -> Path:
    """Write `model` (and `tokenizer`) as a Hugging Face folder that transformers and vLLM load."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config(model, tokenizer), indent=2) + "\n")
    write_safetensors(out / "model.safetensors", hf_tensors(model), metadata={"format": "pt"})
    if tokenizer is not None:
        (out / "tokenizer.json").write_text(json.dumps(hf_tokenizer_json(tokenizer), ensure_ascii=False))
        sp = tokenizer.special_tokens
        end = "<|im_end|>" if "<|im_end|>" in sp else ("<|endoftext|>" if "<|endoftext|>" in sp else None)
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.config.n_ctx,
               "eos_token": end, "pad_token": "<|endoftext|>" if "<|endoftext|>" in sp else end,
               "bos_token": None, "add_bos_token": False, "clean_up_tokenization_spaces": False,
               "added_tokens_decoder": {str(i): {"content": t, "special": True, "normalized": False,
                                                 "lstrip": False, "rstrip": False, "single_word": False}
                                        for t, i in sp.items()}}
        template = chat_template(model, tokenizer)
        if template is not None:
            cfg["chat_template"] = template
        (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return out


# -- GGUF ------------------------------------------------------------------------------------------------------------
# Value types of GGUF metadata (ggml/docs/gguf.md) and the one tensor type written here.
U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10
GGML_F32, ALIGNMENT = 0, 32


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(v) -> bytes:  # a metadata value, with its type tag
    if isinstance(v, bool):
        return struct.pack("<I?", BOOL, v)
    if isinstance(v, int):
        return struct.pack("<II", U32, v)
    if isinstance(v, float):
        return struct.pack("<If", F32, v)
    if isinstance(v, str):
        return struct.pack("<I", STRING) + _string(v)
    if isinstance(v, list):  # arrays of strings or of int32s
        if all(isinstance(x, str) for x in v):
            return struct.pack("<IIQ", ARRAY, STRING, len(v)) + b"".join(_string(x) for x in v)
        return struct.pack("<IIQ", ARRAY, I32, len(v)) + np.asarray(v, "<i4").tobytes()
    raise TypeError(f"no GGUF encoding for {type(v).__name__}")


def gguf_metadata(model: Transformer, tokenizer: Tokenizer | None, name: str = "minichat") -> dict:
    c = model.config
    meta = {"general.architecture": "llama", "general.name": name, "general.alignment": ALIGNMENT,
            "llama.vocab_size": c.vocab_size, "llama.context_length": c.n_ctx, "llama.embedding_length": c.n_embd,
            "llama.block_count": c.n_layer, "llama.feed_forward_length": c.n_inner,
            "llama.attention.head_count": c.n_head, "llama.attention.head_count_kv": c.n_kv_head,
            "llama.attention.key_length": c.head_dim, "llama.attention.value_length": c.head_dim,
            "llama.rope.dimension_count": c.head_dim, "llama.rope.freq_base": float(c.rope_theta),
            "llama.attention.layer_norm_rms_epsilon": float(c.norm_eps)}
    if tokenizer is None:
        return meta
    chars = bytes_to_unicode()
    tokens = [""] * c.vocab_size
    types = [5] * c.vocab_size  # UNUSED for ids the tokenizer does not fill
    for i, b in tokenizer.vocab.items():
        tokens[i], types[i] = "".join(chars[x] for x in b), 1  # NORMAL
    for t, i in tokenizer.special_tokens.items():
        tokens[i], types[i] = t, 3  # CONTROL
    for i in range(c.vocab_size):
        if types[i] == 5:
            tokens[i] = f"<unused{i}>"
    sp = tokenizer.special_tokens
    meta.update({"tokenizer.ggml.model": "gpt2",
                 "tokenizer.ggml.pre": _gguf_pre(tokenizer),
                 "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
                 "tokenizer.ggml.merges": [f"{tokens[a]} {tokens[b]}" for a, b, _ in tokenizer.merges],
                 "tokenizer.ggml.add_bos_token": False})
    end = sp.get("<|im_end|>", sp.get("<|endoftext|>"))
    if end is not None:
        meta["tokenizer.ggml.eos_token_id"] = end
    if "<|endoftext|>" in sp:
        meta["tokenizer.ggml.padding_token_id"] = sp["<|endoftext|>"]
    template = chat_template(model, tokenizer)
    if template is not None:
        meta["tokenizer.chat_template"] = template
    return meta


def export_gguf(model: Transformer, tokenizer: Tokenizer | None, path: str | os.PathLike,
                name: str = "minichat") -> Path:
    """Write a Llama-shaped `model` as a GGUF v3 file of float32 tensors (llama.cpp reads it)."""
    if _family(model) != "llama":
        raise ValueError("GGUF export covers Llama-shaped models (rope, rmsnorm, swiglu); for a GPT-2-shaped model "
                         "use --format hf and llama.cpp's convert_hf_to_gguf.py")
    meta = gguf_metadata(model, tokenizer, name)
    tensors = llama_tensors(model, LLAMA_GGUF_NAMES, interleave_rope=True)
    infos, offset = [], 0
    for tname, t in tensors.items():
        dims = t.shape[::-1]  # GGUF lists the fastest-varying dimension first
        infos.append(_string(tname) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", GGML_F32, offset))
        offset += -(-t.nbytes // ALIGNMENT) * ALIGNMENT
    head = (b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
            + b"".join(_string(k) + _value(v) for k, v in meta.items()) + b"".join(infos))
    out = Path(path)
    with open(out, "wb") as f:
        f.write(head + b"\0" * (-len(head) % ALIGNMENT))
        for t in tensors.values():
            data = np.ascontiguousarray(t, dtype="<f4").tobytes()
            f.write(data + b"\0" * (-len(data) % ALIGNMENT))
    return out


# -- command line ----------------------------------------------------------------------------------------------------

def cmd_export(fmt: str, model_path: str | None, out: str) -> int:
    from minichat.model.checkpoint import load_model

    model, tokenizer = load_model(None if model_path in (None, "builtin") else model_path)
    where = export_hf(model, tokenizer, out) if fmt == "hf" else export_gguf(model, tokenizer, out)
    print(f"wrote {where} ({fmt}, {model.n_params / 1e6:.1f}M parameters"
          f"{', with its tokenizer' if tokenizer is not None else ', no tokenizer'})")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `minichat export --format hf|gguf MODEL OUT`; sets `run=fn(args) -> int`."""
    p = subparsers.add_parser("export", help="write a model as a Hugging Face folder (vLLM) or a GGUF file (llama.cpp)")
    p.add_argument("--format", choices=("hf", "gguf"), required=True, help="hf: a folder; gguf: one file")
    p.add_argument("model", help="a minichat/HF folder or GGUF file, or 'builtin' for the built-in model")
    p.add_argument("out", help="the folder (hf) or file (gguf) to write")
    p.set_defaults(run=lambda a: cmd_export(a.format, a.model, a.out))
    return p
