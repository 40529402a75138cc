"""Loading models from the checkpoints people actually have, and saving minichat's own.

    minichat's own   a folder: config.json {"format": "minichat", "version": 1, "model": {ModelConfig fields}},
                     model.safetensors (our parameter names, see transformer.param_shapes), tokenizer.bpe (optional)
    HF GPT-2         a folder: config.json (model_type "gpt2") + model.safetensors; names with or without the
                     `transformer.` prefix; Conv1D weights are already (in, out), as minichat stores them; the
                     causal-mask buffers `attn.bias` / `attn.masked_bias` of old files are ignored; lm_head is tied
    HF Llama         a folder: config.json (model_type "llama") + model.safetensors; nn.Linear weights are
                     (out, in), so they are transposed, and q/k/v are concatenated into c_attn
    GGUF (llama)     one file: hyper-parameters and tokenizer in the metadata; llama.cpp's converter permutes the
                     rows of Q and K (to pair RoPE dimensions i, i+1 instead of i, i+D/2), so we permute them back

`load_model(path)` looks at what `path` is and dispatches. Every loader checks names and shapes and raises
CheckpointError naming the tensor at fault. Weights are copied into fresh float32 arrays (not left as memory-map
views) so decoding never waits on the disk.
What it leaves out: sharded checkpoints (model-0000x-of-0000y), PyTorch pickles (.bin: unsafe to open), other GGUF
architectures, RoPE scaling.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from minichat.config import ModelConfig
from minichat.errors import CheckpointError
from minichat.model.safetensors import read_safetensors, write_safetensors
from minichat.model.transformer import Transformer, param_shapes
from minichat.tokenizer import Tokenizer, load_tokenizer, save_tokenizer

FORMAT, VERSION = "minichat", 1
CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.bpe"


def _f32(t: np.ndarray) -> np.ndarray:
    """A fresh, C-contiguous float32 copy (detached from any memory map)."""
    return np.array(t, dtype=np.float32, order="C")


def _take(tensors: dict[str, np.ndarray], name: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """tensors[name] (not yet copied), or CheckpointError if it is missing or has the wrong shape."""
    if name not in tensors:
        raise CheckpointError(f"{where}: missing tensor {name!r} (expected shape {shape}); the file is incomplete "
                              f"or does not match its config.json")
    t = tensors[name]
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{where}: tensor {name!r} has shape {tuple(t.shape)}, expected {tuple(shape)} from "
                              f"the config")
    return t


def _no_leftovers(tensors: dict[str, np.ndarray], used: set[str], where: str) -> None:
    extra = sorted(set(tensors) - used)
    if extra:
        raise CheckpointError(f"{where}: unexpected tensor(s) {extra[:5]}; the file holds more than its config "
                              f"describes (wrong n_layer? another architecture?)")


def check_tokenizer_fits(model: Transformer, tokenizer: Tokenizer | None, where: str = "") -> None:
    """Raise CheckpointError if the tokenizer can produce ids the model has no embedding row for."""
    if tokenizer is None:
        return
    top = max([*tokenizer.vocab, *tokenizer.special_tokens.values()])
    if top >= model.config.vocab_size:
        raise CheckpointError(f"{where}: the tokenizer produces ids up to {top} but the model's vocab_size is "
                              f"{model.config.vocab_size}; they do not belong together")


# -- minichat's own --------------------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model: Transformer, tokenizer: Tokenizer | None = None,
                    metadata: dict[str, Any] | None = None) -> None:
    """Write `model` (and `tokenizer`) as a minichat checkpoint folder; `metadata` (JSON values) goes in config.json."""
    folder = Path(path)
    check_tokenizer_fits(model, tokenizer, str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "version": VERSION, "model": model.config.to_dict(), "metadata": metadata or {}}
    write_safetensors(folder / MODEL_FILE, model.params, metadata={"format": FORMAT})
    if tokenizer is not None:
        save_tokenizer(tokenizer, folder / TOKENIZER_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The `metadata` dict stored by `save_checkpoint` ({} if none)."""
    return dict(_read_config(Path(path)).get("metadata", {}))


def load_checkpoint(path: str | os.PathLike) -> tuple[Transformer, Tokenizer | None]:
    """Read a folder written by `save_checkpoint`."""
    folder = Path(path)
    doc = _read_config(folder)
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not a minichat checkpoint (no \"format\": \"minichat\")")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"{folder}: minichat checkpoint version {doc.get('version')!r} is not supported "
                              f"(this minichat reads version {VERSION})")
    try:
        config = ModelConfig.from_dict(doc["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: invalid model config: {e}") from None
    tensors = _read_weights(folder)
    where = str(folder / MODEL_FILE)
    shapes = param_shapes(config)
    params = {name: _f32(_take(tensors, name, shape, where)) for name, shape in shapes.items()}
    _no_leftovers(tensors, set(shapes), where)
    tok_path = folder / TOKENIZER_FILE
    model, tokenizer = Transformer(config, params), (load_tokenizer(tok_path) if tok_path.exists() else None)
    check_tokenizer_fits(model, tokenizer, str(folder))
    return model, tokenizer


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_FILE}; a checkpoint folder needs one") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{folder / CONFIG_FILE}: expected a JSON object")
    return doc


def _read_weights(folder: Path) -> dict[str, np.ndarray]:
    path = folder / MODEL_FILE
    if not path.exists():
        others = sorted(p.name for p in folder.glob("*.safetensors")) + sorted(p.name for p in folder.glob("*.bin"))
        raise CheckpointError(f"{folder}: no {MODEL_FILE} (found {others or 'no weight files'}); sharded and "
                              f"PyTorch .bin checkpoints are not supported")
    return read_safetensors(path)


# -- Hugging Face folders --------------------------------------------------------------------------------------------

def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from an HF config.json (model_type "gpt2" or "llama"), refusing options minichat lacks."""
    kind = hf.get("model_type")
    try:
        if kind == "gpt2":
            act = hf.get("activation_function", "gelu_new")
            if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
                raise CheckpointError(f"GPT-2 activation_function {act!r} is not supported (only the tanh GELU)")
            if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
                raise CheckpointError("GPT-2 attention-scaling variants are not supported")
            return ModelConfig.gpt2(vocab_size=hf["vocab_size"], n_ctx=hf["n_positions"], n_embd=hf["n_embd"],
                                    n_layer=hf["n_layer"], n_head=hf["n_head"], n_inner=hf.get("n_inner"),
                                    norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                                    tie_embeddings=hf.get("tie_word_embeddings", True))
        if kind == "llama":
            rope = hf.get("rope_parameters") or {}
            scaling = hf.get("rope_scaling") or rope
            if scaling.get("rope_type", scaling.get("type", "default")) != "default":
                raise CheckpointError(f"RoPE scaling {scaling!r} is not supported")
            if hf.get("attention_bias") or hf.get("mlp_bias"):
                raise CheckpointError("Llama checkpoints with attention_bias/mlp_bias are not supported")
            if hf.get("hidden_act", "silu") != "silu":
                raise CheckpointError(f"Llama hidden_act {hf['hidden_act']!r} is not supported (only silu)")
            return ModelConfig.llama(
                vocab_size=hf["vocab_size"], n_ctx=hf["max_position_embeddings"], n_embd=hf["hidden_size"],
                n_layer=hf["num_hidden_layers"], n_head=hf["num_attention_heads"],
                n_kv_head=hf.get("num_key_value_heads"), head_dim=hf.get("head_dim"),
                n_inner=hf["intermediate_size"], rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 1e4))),
                norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=hf.get("tie_word_embeddings", False))
    except KeyError as e:
        raise CheckpointError(f"config.json lacks the field {e.args[0]!r} that a {kind} model needs") from None
    raise CheckpointError(f"model_type {kind!r} is not supported (minichat loads 'gpt2' and 'llama')")


def params_from_hf_gpt2(tensors: dict[str, np.ndarray], config: ModelConfig, where: str = "") -> dict[str, np.ndarray]:
    """Rename HF GPT-2 tensors to minichat's names (they are the same names, minus prefixes and `.weight`s)."""
    # Drop the `transformer.` prefix and the causal-mask buffers that old files carry.
    named = {k.removeprefix("transformer."): v for k, v in tensors.items()
             if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    rename = {"wte": "wte.weight", "wpe": "wpe.weight", "lm_head": "lm_head.weight"}
    params, used = {}, set()
    for name, shape in param_shapes(config).items():
        source = rename.get(name, name)
        params[name] = _f32(_take(named, source, shape, where))
        used.add(source)
    if config.tie_embeddings and "lm_head.weight" in named:  # some writers store the tied copy anyway
        used.add("lm_head.weight")
    _no_leftovers(named, used, where)
    return params


def params_from_hf_llama(tensors: dict[str, np.ndarray], config: ModelConfig, where: str = "") -> dict[str, np.ndarray]:
    """HF Llama tensors -> minichat's names: (out, in) Linear weights transposed, q/k/v concatenated."""
    c = config
    C, F, D = c.n_embd, c.n_inner, c.head_dim
    named = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}
    used: set[str] = set()

    def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
        used.add(name)
        return _take(named, name, shape, where)

    params = {"wte": _f32(take("model.embed_tokens.weight", (c.vocab_size, C))),
              "ln_f.weight": _f32(take("model.norm.weight", (C,)))}
    if not c.tie_embeddings:
        params["lm_head"] = _f32(take("lm_head.weight", (c.vocab_size, C)))
    elif "lm_head.weight" in named:
        used.add("lm_head.weight")
    for i in range(c.n_layer):
        hf, p = f"model.layers.{i}.", f"h.{i}."
        q = take(hf + "self_attn.q_proj.weight", (c.n_head * D, C))  # (H*D, C)
        k = take(hf + "self_attn.k_proj.weight", (c.n_kv_head * D, C))  # (K*D, C)
        v = take(hf + "self_attn.v_proj.weight", (c.n_kv_head * D, C))  # (K*D, C)
        params[p + "attn.c_attn.weight"] = _f32(np.concatenate([q, k, v]).T)  # (C, (H + 2K) D)
        params[p + "attn.c_proj.weight"] = _f32(take(hf + "self_attn.o_proj.weight", (C, c.n_head * D)).T)  # (H*D, C)
        params[p + "mlp.c_gate.weight"] = _f32(take(hf + "mlp.gate_proj.weight", (F, C)).T)  # (C, F)
        params[p + "mlp.c_fc.weight"] = _f32(take(hf + "mlp.up_proj.weight", (F, C)).T)  # (C, F)
        params[p + "mlp.c_proj.weight"] = _f32(take(hf + "mlp.down_proj.weight", (C, F)).T)  # (F, C)
        params[p + "ln_1.weight"] = _f32(take(hf + "input_layernorm.weight", (C,)))
        params[p + "ln_2.weight"] = _f32(take(hf + "post_attention_layernorm.weight", (C,)))
    _no_leftovers(named, used, where)
    return params


def load_hf(path: str | os.PathLike, with_tokenizer: bool = True) -> tuple[Transformer, Tokenizer | None]:
    """Load an HF GPT-2 or Llama folder (config.json + model.safetensors) and its tokenizer files if present."""
    folder = Path(path)
    config = config_from_hf(_read_config(folder))
    tensors = _read_weights(folder)
    convert = params_from_hf_gpt2 if config.family == "gpt2" else params_from_hf_llama
    model = Transformer(config, convert(tensors, config, str(folder / MODEL_FILE)))
    tokenizer = None
    if with_tokenizer:
        from minichat.tokenizer import from_gpt2_files, from_hf_tokenizer_json

        if (folder / "tokenizer.json").exists():
            tokenizer = from_hf_tokenizer_json(folder / "tokenizer.json")
        elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            tokenizer = from_gpt2_files(folder / "vocab.json", folder / "merges.txt")
    check_tokenizer_fits(model, tokenizer, str(folder))
    return model, tokenizer


# -- GGUF ------------------------------------------------------------------------------------------------------------

def config_from_gguf(metadata: dict[str, Any], vocab_size: int | None = None, tied: bool = True) -> ModelConfig:
    """A ModelConfig from GGUF `llama.*` metadata keys."""
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise CheckpointError(f"GGUF architecture {arch!r} is not supported (minichat loads 'llama')")

    def get(key: str, default: Any = None) -> Any:
        value = metadata.get(f"llama.{key}", default)
        if value is None:
            raise CheckpointError(f"GGUF metadata lacks 'llama.{key}'")
        return value

    n_embd, n_head = int(get("embedding_length")), int(get("attention.head_count"))
    head_dim = int(get("attention.key_length", n_embd // n_head))
    if int(get("rope.dimension_count", head_dim)) != head_dim:
        raise CheckpointError("GGUF llama.rope.dimension_count differs from the head width: partial RoPE is not "
                              "supported")
    if metadata.get("llama.rope.scaling.type", "none") not in ("none", "linear") or \
            metadata.get("llama.rope.scaling.factor", 1.0) != 1.0:
        raise CheckpointError("GGUF RoPE scaling is not supported")
    vocab = metadata.get("llama.vocab_size", vocab_size)
    if vocab is None:
        raise CheckpointError("GGUF metadata lacks 'llama.vocab_size' and the token embedding is missing")
    return ModelConfig.llama(
        vocab_size=int(vocab), n_ctx=int(get("context_length")), n_embd=n_embd, n_layer=int(get("block_count")),
        n_head=n_head, n_kv_head=int(get("attention.head_count_kv", n_head)), head_dim=head_dim,
        n_inner=int(get("feed_forward_length")), rope_theta=float(get("rope.freq_base", 10000.0)),
        norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)), tie_embeddings=tied)


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:  # (n_head * D, C) -> (n_head * D, C)
    """Undo llama.cpp's Q/K row permutation: within each head, GGUF rows run (pair 0 dim a, pair 0 dim b, pair 1
    dim a, ...) = interleaved; HF's "rotate half" layout wants all the a's, then all the b's."""
    rows, cols = w.shape
    D = rows // n_head
    return w.reshape(n_head, D // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)  # (H, D/2, 2, C) -> (H, 2, D/2, C)


def load_gguf(path: str | os.PathLike, with_tokenizer: bool = True) -> tuple[Transformer, Tokenizer | None]:
    """Load a llama-architecture GGUF file (F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensors, dequantised to float32)."""
    from minichat.model.gguf import read_gguf

    g = read_gguf(path)
    infos = g.tensor_infos
    vocab = infos["token_embd.weight"].shape[0] if "token_embd.weight" in infos else None
    c = config_from_gguf(g.metadata, vocab, tied="output.weight" not in infos)
    C, F, D, where = c.n_embd, c.n_inner, c.head_dim, str(path)
    used: set[str] = set()

    def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in infos:
            raise CheckpointError(f"{where}: missing tensor {name!r} (expected shape {shape})")
        if tuple(infos[name].shape) != shape:
            raise CheckpointError(f"{where}: tensor {name!r} has shape {tuple(infos[name].shape)}, expected {shape}")
        used.add(name)
        return g.tensor(name)

    params = {"wte": _f32(take("token_embd.weight", (c.vocab_size, C))),
              "ln_f.weight": _f32(take("output_norm.weight", (C,)))}
    if not c.tie_embeddings:
        params["lm_head"] = _f32(take("output.weight", (c.vocab_size, C)))
    for i in range(c.n_layer):
        b, p = f"blk.{i}.", f"h.{i}."
        q = unpermute_rope_rows(take(b + "attn_q.weight", (c.n_head * D, C)), c.n_head)  # (H*D, C)
        k = unpermute_rope_rows(take(b + "attn_k.weight", (c.n_kv_head * D, C)), c.n_kv_head)  # (K*D, C)
        v = take(b + "attn_v.weight", (c.n_kv_head * D, C))  # (K*D, C)
        params[p + "attn.c_attn.weight"] = _f32(np.concatenate([q, k, v]).T)  # (C, (H + 2K) D)
        params[p + "attn.c_proj.weight"] = _f32(take(b + "attn_output.weight", (C, c.n_head * D)).T)  # (H*D, C)
        params[p + "mlp.c_gate.weight"] = _f32(take(b + "ffn_gate.weight", (F, C)).T)  # (C, F)
        params[p + "mlp.c_fc.weight"] = _f32(take(b + "ffn_up.weight", (F, C)).T)  # (C, F)
        params[p + "mlp.c_proj.weight"] = _f32(take(b + "ffn_down.weight", (C, F)).T)  # (F, C)
        params[p + "ln_1.weight"] = _f32(take(b + "attn_norm.weight", (C,)))
        params[p + "ln_2.weight"] = _f32(take(b + "ffn_norm.weight", (C,)))
    _no_leftovers(dict(infos), used, where)
    tokenizer = None
    if with_tokenizer and "tokenizer.ggml.model" in g.metadata:
        from minichat.model.gguf_tokenizer import tokenizer_from_gguf

        tokenizer = tokenizer_from_gguf(g)
    model = Transformer(c, params)
    check_tokenizer_fits(model, tokenizer, where)
    return model, tokenizer


# -- dispatch --------------------------------------------------------------------------------------------------------

BUILTIN_MODEL = Path(__file__).resolve().parent.parent / "assets" / "model"  # the chat model shipped in the package


def load_model(path: str | os.PathLike | None = None,
               with_tokenizer: bool = True) -> tuple[Transformer, Tokenizer | None]:
    """Load whatever `path` is: a .gguf file, a minichat checkpoint folder, or an HF GPT-2/Llama folder; no path
    means the built-in chat model (minichat/assets/model).

    Returns the model and its tokenizer (None when the checkpoint carries none, or with_tokenizer=False). The model
    remembers where it came from (`model.source`), so the chat can read the checkpoint's own chat template and
    default system prompt (minichat.chat.profile).
    """
    model, tokenizer = _load_any(Path(path) if path is not None else BUILTIN_MODEL, with_tokenizer)
    model.source = Path(path) if path is not None else BUILTIN_MODEL
    return model, tokenizer


def _load_any(p: Path, with_tokenizer: bool) -> tuple[Transformer, Tokenizer | None]:
    if p.is_file():
        with open(p, "rb") as f:
            magic = f.read(4)
        if magic == b"GGUF":
            return load_gguf(p, with_tokenizer)
        if p.name == CONFIG_FILE or p.suffix == ".safetensors":
            return _load_any(p.parent, with_tokenizer)
        raise CheckpointError(f"{p}: not a GGUF file (starts with {magic!r}); give a .gguf file or a checkpoint "
                              f"folder holding config.json and model.safetensors")
    if not p.is_dir():
        raise CheckpointError(f"{p}: no such file or folder")
    doc = _read_config(p)
    if doc.get("format") == FORMAT:
        model, tokenizer = load_checkpoint(p)
        return model, tokenizer if with_tokenizer else None
    return load_hf(p, with_tokenizer)
