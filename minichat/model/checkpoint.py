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

`load_model(path)` looks at what `path` is and dispatches. Llama weights arrive under HF names or GGUF names; one
mapping (`params_from_llama`) reads either, driven by the two name tables `LLAMA_HF_NAMES` and `LLAMA_GGUF_NAMES`.

Every loader treats the file as untrusted and is total: whatever the bytes, it returns a model or raises
CheckpointError naming the file and the field or tensor at fault. Config values are type-checked (a string or NaN
where a head count belongs), how they fit together is checked by ModelConfig, every tensor's name and shape is checked
against the config before it is read, and sizes no tensor backs (the number of layers, the context length that sizes
the RoPE tables) are checked against the file before anything is allocated for them (checkpoint_checks.py).

Weights are copied into fresh float32 arrays (not left as memory-map views) so decoding never waits on the disk.
What it leaves out: sharded checkpoints (model-0000x-of-0000y), PyTorch pickles (.bin: unsafe to open), other GGUF
architectures, RoPE scaling.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minichat.config import ModelConfig
from minichat.errors import CheckpointError
from minichat.model.checkpoint_checks import (REQUIRED, check_sizes, check_tokenizer_fits, f32, field,
                                               make_config, no_leftovers, read_tokenizer, take)
from minichat.model.safetensors import read_safetensors, short_repr, write_safetensors
from minichat.model.transformer import Transformer, param_shapes
from minichat.tokenizer import Tokenizer, load_tokenizer, save_tokenizer

FORMAT, VERSION = "minichat", 1
CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.bpe"


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
    folder = Path(path)
    return dict(field(_read_config(folder), "metadata", "object", str(folder / CONFIG_FILE), {}))


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
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # overflow: an integer too big to be a float
        raise CheckpointError(f"{folder / CONFIG_FILE}: invalid model config: {e}") from None
    tensors = _read_weights(folder)
    where = str(folder / MODEL_FILE)
    check_sizes(config, len(tensors), os.path.getsize(where), str(folder / CONFIG_FILE), "n_ctx")
    shapes = param_shapes(config)
    params = {name: f32(take(tensors, name, shape, where)) for name, shape in shapes.items()}
    no_leftovers(tensors, set(shapes), where)
    tok_path = folder / TOKENIZER_FILE
    tokenizer = read_tokenizer(str(tok_path), load_tokenizer, tok_path) if tok_path.exists() else None
    model = Transformer(config, params)
    check_tokenizer_fits(model, tokenizer, str(folder))
    return model, tokenizer


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_FILE}; a checkpoint folder needs one") from None
    except RecursionError:
        raise CheckpointError(f"{folder / CONFIG_FILE}: nests too deeply to parse") from None
    except ValueError as e:  # bad JSON, bad UTF-8, or an integer of more than 4300 digits
        raise CheckpointError(f"{folder / CONFIG_FILE}: not valid JSON ({short_repr(str(e))})") from None
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

def config_from_hf(hf: dict[str, Any], where: str = "config.json") -> ModelConfig:
    """A ModelConfig from an HF config.json (model_type "gpt2" or "llama"), refusing options minichat lacks."""
    kind = hf.get("model_type")

    def get(key: str, kind: str, default: Any = REQUIRED) -> Any:
        return field(hf, key, kind, where, default)

    if kind == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            raise CheckpointError(f"{where}: GPT-2 activation_function {short_repr(act)} is not supported (only the "
                                  f"tanh GELU)")
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
            raise CheckpointError(f"{where}: GPT-2 attention-scaling variants are not supported")
        return make_config(
            where, ModelConfig.gpt2, vocab_size=get("vocab_size", "count"), n_ctx=get("n_positions", "count"),
            n_embd=get("n_embd", "count"), n_layer=get("n_layer", "count"), n_head=get("n_head", "count"),
            n_inner=get("n_inner", "count", None), norm_eps=get("layer_norm_epsilon", "number", 1e-5),
            tie_embeddings=get("tie_word_embeddings", "flag", True))
    if kind == "llama":
        rope = get("rope_parameters", "object", {})
        scaling = get("rope_scaling", "object", None) or rope
        if scaling.get("rope_type", scaling.get("type", "default")) != "default":
            raise CheckpointError(f"{where}: RoPE scaling {short_repr(scaling)} is not supported")
        if hf.get("attention_bias") or hf.get("mlp_bias"):
            raise CheckpointError(f"{where}: Llama checkpoints with attention_bias/mlp_bias are not supported")
        if hf.get("hidden_act", "silu") != "silu":
            raise CheckpointError(f"{where}: Llama hidden_act {short_repr(hf['hidden_act'])} is not supported "
                                  f"(only silu)")
        theta = field(rope, "rope_theta", "number", where, get("rope_theta", "number", 1e4))  # HF 5 moved it
        return make_config(
            where, ModelConfig.llama, vocab_size=get("vocab_size", "count"),
            n_ctx=get("max_position_embeddings", "count"), n_embd=get("hidden_size", "count"),
            n_layer=get("num_hidden_layers", "count"), n_head=get("num_attention_heads", "count"),
            n_kv_head=get("num_key_value_heads", "count", None), head_dim=get("head_dim", "count", None),
            n_inner=get("intermediate_size", "count"), rope_theta=theta, norm_eps=get("rms_norm_eps", "number", 1e-6),
            tie_embeddings=get("tie_word_embeddings", "flag", False))
    raise CheckpointError(f"{where}: model_type {short_repr(kind)} is not supported (minichat loads 'gpt2' and "
                          f"'llama')")


def params_from_hf_gpt2(tensors: dict[str, np.ndarray], config: ModelConfig, where: str = "") -> dict[str, np.ndarray]:
    """Rename HF GPT-2 tensors to minichat's names (they are the same names, minus prefixes and `.weight`s)."""
    # Drop the `transformer.` prefix and the causal-mask buffers that old files carry.
    named = {k.removeprefix("transformer."): v for k, v in tensors.items()
             if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    rename = {"wte": "wte.weight", "wpe": "wpe.weight", "lm_head": "lm_head.weight"}
    params, used = {}, set()
    for name, shape in param_shapes(config).items():
        source = rename.get(name, name)
        params[name] = f32(take(named, source, shape, where))
        used.add(source)
    if config.tie_embeddings and "lm_head.weight" in named:  # some writers store the tied copy anyway
        used.add("lm_head.weight")
    no_leftovers(named, used, where)
    return params


# -- Llama: one mapping, two name tables ------------------------------------------------------------------------------
# Each Llama weight under its name in an HF model.safetensors and in a llama.cpp GGUF file ({i}: the layer). Both
# store nn.Linear weights as (out, in); GGUF also permutes the rows of q and k (see unpermute_rope_rows).

LLAMA_HF_NAMES = {
    "embed": "model.embed_tokens.weight", "norm": "model.norm.weight", "head": "lm_head.weight",
    "q": "model.layers.{i}.self_attn.q_proj.weight", "k": "model.layers.{i}.self_attn.k_proj.weight",
    "v": "model.layers.{i}.self_attn.v_proj.weight", "o": "model.layers.{i}.self_attn.o_proj.weight",
    "gate": "model.layers.{i}.mlp.gate_proj.weight", "up": "model.layers.{i}.mlp.up_proj.weight",
    "down": "model.layers.{i}.mlp.down_proj.weight", "ln_1": "model.layers.{i}.input_layernorm.weight",
    "ln_2": "model.layers.{i}.post_attention_layernorm.weight",
}
LLAMA_GGUF_NAMES = {
    "embed": "token_embd.weight", "norm": "output_norm.weight", "head": "output.weight",
    "q": "blk.{i}.attn_q.weight", "k": "blk.{i}.attn_k.weight",
    "v": "blk.{i}.attn_v.weight", "o": "blk.{i}.attn_output.weight",
    "gate": "blk.{i}.ffn_gate.weight", "up": "blk.{i}.ffn_up.weight",
    "down": "blk.{i}.ffn_down.weight", "ln_1": "blk.{i}.attn_norm.weight",
    "ln_2": "blk.{i}.ffn_norm.weight",
}


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:  # (n_head * D, C) -> (n_head * D, C)
    """Undo llama.cpp's Q/K row permutation: within each head, GGUF rows run (pair 0 dim a, pair 0 dim b, pair 1
    dim a, ...) = interleaved; HF's "rotate half" layout wants all the a's, then all the b's."""
    rows, cols = w.shape
    D = rows // n_head
    return w.reshape(n_head, D // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)  # (H, D/2, 2, C) -> (H, 2, D/2, C)


def params_from_llama(tensors: Mapping[str, Any], load: Callable[[str], np.ndarray], names: Mapping[str, str],
                      config: ModelConfig, where: str = "", rope_interleaved: bool = False) -> dict[str, np.ndarray]:
    """Llama weights named as in `names` (LLAMA_HF_NAMES or LLAMA_GGUF_NAMES) -> minichat's parameters: Linear
    weights transposed to (in, out), q/k/v concatenated into c_attn, q/k rows un-permuted if `rope_interleaved`.

    tensors: every tensor in the file by name, as anything with a `.shape` (the arrays, or GGUF TensorInfos, so that
    names and shapes are all checked before anything is decoded); load(name) returns the array itself.
    """
    c = config
    C, F, D, H, K = c.n_embd, c.n_inner, c.head_dim, c.n_head, c.n_kv_head
    used: set[str] = set()

    def weight(role: str, shape: tuple[int, ...], i: int = 0) -> np.ndarray:
        name = names[role].format(i=i)
        take(tensors, name, shape, where)
        used.add(name)
        return load(name)

    params = {"wte": f32(weight("embed", (c.vocab_size, C))), "ln_f.weight": f32(weight("norm", (C,)))}
    if not c.tie_embeddings:
        params["lm_head"] = f32(weight("head", (c.vocab_size, C)))
    elif names["head"] in tensors:  # some writers store the tied copy anyway
        used.add(names["head"])
    for i in range(c.n_layer):
        p = f"h.{i}."
        q, k, v = weight("q", (H * D, C), i), weight("k", (K * D, C), i), weight("v", (K * D, C), i)  # (H*D | K*D, C)
        if rope_interleaved:
            q, k = unpermute_rope_rows(q, H), unpermute_rope_rows(k, K)
        params[p + "attn.c_attn.weight"] = f32(np.concatenate([q, k, v]).T)  # (C, (H + 2K) D)
        params[p + "attn.c_proj.weight"] = f32(weight("o", (C, H * D), i).T)  # (H*D, C)
        params[p + "mlp.c_gate.weight"] = f32(weight("gate", (F, C), i).T)  # (C, F)
        params[p + "mlp.c_fc.weight"] = f32(weight("up", (F, C), i).T)  # (C, F)
        params[p + "mlp.c_proj.weight"] = f32(weight("down", (C, F), i).T)  # (F, C)
        params[p + "ln_1.weight"] = f32(weight("ln_1", (C,), i))
        params[p + "ln_2.weight"] = f32(weight("ln_2", (C,), i))
    no_leftovers(tensors, used, where)
    return params


def params_from_hf_llama(tensors: dict[str, np.ndarray], config: ModelConfig, where: str = "") -> dict[str, np.ndarray]:
    """HF Llama tensors -> minichat's names (params_from_llama with LLAMA_HF_NAMES); old files' RoPE buffers dropped."""
    named = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}
    return params_from_llama(named, named.__getitem__, LLAMA_HF_NAMES, config, where)


def load_hf(path: str | os.PathLike, with_tokenizer: bool = True) -> tuple[Transformer, Tokenizer | None]:
    """Load an HF GPT-2 or Llama folder (config.json + model.safetensors) and its tokenizer files if present."""
    folder = Path(path)
    config = config_from_hf(_read_config(folder), str(folder / CONFIG_FILE))
    tensors = _read_weights(folder)
    where = str(folder / MODEL_FILE)
    check_sizes(config, len(tensors), os.path.getsize(where), str(folder / CONFIG_FILE),
                 "n_positions" if config.family == "gpt2" else "max_position_embeddings")
    convert = params_from_hf_gpt2 if config.family == "gpt2" else params_from_hf_llama
    model = Transformer(config, convert(tensors, config, where))
    tokenizer = None
    if with_tokenizer:
        from minichat.tokenizer import from_gpt2_files, from_hf_tokenizer_json

        if (folder / "tokenizer.json").exists():
            tokenizer = read_tokenizer(str(folder), from_hf_tokenizer_json, folder / "tokenizer.json")
        elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            tokenizer = read_tokenizer(str(folder), from_gpt2_files, folder / "vocab.json", folder / "merges.txt")
    check_tokenizer_fits(model, tokenizer, str(folder))
    return model, tokenizer


# -- GGUF ------------------------------------------------------------------------------------------------------------

def config_from_gguf(metadata: dict[str, Any], vocab_size: int | None = None, tied: bool = True,
                     where: str = "GGUF metadata") -> ModelConfig:
    """A ModelConfig from GGUF `llama.*` metadata keys (vocab_size: the token embedding's rows, if the metadata
    has no llama.vocab_size)."""
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise CheckpointError(f"{where}: GGUF architecture {short_repr(arch)} is not supported (minichat loads "
                              f"'llama')")

    def get(key: str, kind: str, default: Any = REQUIRED) -> Any:
        return field(metadata, f"llama.{key}", kind, where, default)

    n_embd, n_head = get("embedding_length", "count"), get("attention.head_count", "count")
    head_dim = get("attention.key_length", "count", n_embd // n_head)
    if get("rope.dimension_count", "count", head_dim) != head_dim:
        raise CheckpointError(f"{where}: llama.rope.dimension_count differs from the head width: partial RoPE is not "
                              f"supported")
    if metadata.get("llama.rope.scaling.type", "none") not in ("none", "linear") or \
            metadata.get("llama.rope.scaling.factor", 1.0) != 1.0:
        raise CheckpointError(f"{where}: GGUF RoPE scaling is not supported")
    vocab = get("vocab_size", "count", vocab_size)
    if vocab is None:
        raise CheckpointError(f"{where}: the metadata lacks 'llama.vocab_size' and the token embedding is missing")
    return make_config(
        where, ModelConfig.llama, vocab_size=vocab, n_ctx=get("context_length", "count"), n_embd=n_embd,
        n_layer=get("block_count", "count"), n_head=n_head, n_kv_head=get("attention.head_count_kv", "count", n_head),
        head_dim=head_dim, n_inner=get("feed_forward_length", "count"),
        rope_theta=get("rope.freq_base", "number", 10000.0),
        norm_eps=_decimal32(get("attention.layer_norm_rms_epsilon", "number", 1e-5)), tie_embeddings=tied)


def _decimal32(x: float) -> float:
    """The shortest decimal that a float32 value rounds from: GGUF stores 1e-5 as the float32 9.99999975e-06, and the
    writer meant 1e-05 (a model exported from minichat or HF then comes back with its own epsilon, bit for bit)."""
    return float(str(np.float32(x)))


def load_gguf(path: str | os.PathLike, with_tokenizer: bool = True) -> tuple[Transformer, Tokenizer | None]:
    """Load a llama-architecture GGUF file (F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensors, dequantised to float32)."""
    from minichat.model.gguf import read_gguf

    g, where = read_gguf(path), str(path)
    infos = g.tensor_infos
    embd = infos.get(LLAMA_GGUF_NAMES["embed"])  # (V, C): its rows give vocab_size when the metadata does not
    if embd is not None and len(embd.shape) != 2:
        raise CheckpointError(f"{where}: tensor {embd.name!r} has shape {embd.shape}; a token embedding is (vocab, "
                              f"width)")
    vocab = embd.shape[0] if embd is not None else None
    c = config_from_gguf(g.metadata, vocab, tied=LLAMA_GGUF_NAMES["head"] not in infos, where=where)
    check_sizes(c, len(infos), os.path.getsize(path), where, "llama.context_length")
    params = params_from_llama(infos, g.tensor, LLAMA_GGUF_NAMES, c, where, rope_interleaved=True)
    tokenizer = None
    if with_tokenizer and "tokenizer.ggml.model" in g.metadata:
        from minichat.model.gguf_tokenizer import tokenizer_from_gguf

        tokenizer = read_tokenizer(where, tokenizer_from_gguf, g)
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
