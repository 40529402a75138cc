"""Checks on values read from an untrusted model file, shared by every checkpoint loader (minichat/model/checkpoint.py).

A model file is untrusted input: a config value may be a string or NaN where a head count belongs, a tensor may be
missing or of the wrong shape, a context length may ask for terabytes of position tables. These helpers turn every
such case into a CheckpointError naming the file and the field, before anything is computed or allocated from it.

    field(source, key, kind, where)     a typed config value ("count", "number", "flag", "object")
    make_config(where, make, **fields)  ModelConfig's own consistency checks, reported against the file
    check_sizes(config, ...)            sizes no tensor backs (n_layer, n_ctx) bounded by the file
    take(tensors, name, shape, where)   a tensor by name with the shape the config implies; no_leftovers after
    read_tokenizer(where, read, ...)    a broken tokenizer inside a model file is the file's error
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from minichat.config import ModelConfig
from minichat.errors import CheckpointError, TokenizerError
from minichat.model.safetensors import short_repr
from minichat.model.transformer import Transformer
from minichat.tokenizer import Tokenizer


def f32(t: np.ndarray) -> np.ndarray:
    """A fresh, C-contiguous float32 copy (detached from any memory map)."""
    return np.array(t, dtype=np.float32, order="C")


def take(tensors: Mapping[str, Any], name: str, shape: tuple[int, ...], where: str) -> Any:
    """tensors[name] (not yet copied), or CheckpointError if it is missing or has the wrong shape.

    The values may be arrays or anything else with a `.shape` (a GGUF TensorInfo: checked before it is decoded)."""
    if name not in tensors:
        raise CheckpointError(f"{where}: missing tensor {name!r} (expected shape {shape}); the file is incomplete "
                              f"or does not match the configuration it declares")
    t = tensors[name]
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{where}: tensor {name!r} has shape {tuple(t.shape)}, expected {tuple(shape)} from "
                              f"the config")
    return t


def no_leftovers(tensors: Mapping[str, Any], used: set[str], where: str) -> None:
    extra = sorted(set(tensors) - used)
    if extra:
        raise CheckpointError(f"{where}: unexpected tensor(s) {extra[:5]}; the file holds more than its config "
                              f"describes (wrong n_layer? another architecture?)")


def check_tokenizer_fits(model: Transformer, tokenizer: Tokenizer | None, where: str = "") -> None:
    """Raise CheckpointError if the tokenizer can produce ids the model has no embedding row for."""
    if tokenizer is None:
        return
    top = max([*tokenizer.vocab, *tokenizer.special_tokens.values()], default=-1)
    if top >= model.config.vocab_size:
        raise CheckpointError(f"{where}: the tokenizer produces ids up to {top} but the model's vocab_size is "
                              f"{model.config.vocab_size}; they do not belong together")


# -- untrusted values: config.json fields and GGUF metadata --------------------------------------------------------

REQUIRED = object()
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {  # kind -> (test, what the message says it must be)
    "count": (lambda v: type(v) is int and v > 0, "a positive integer"),  # type(): a bool is no count
    "number": (lambda v: type(v) in (int, float) and 0 < v <= sys.float_info.max, "a positive finite number"),
    "flag": (lambda v: type(v) is bool, "true or false"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}
TABLE_BYTES_FLOOR = 16 * 2**20  # position tables this big are allowed even for a tiny file (see check_sizes)


def field(source: Mapping[str, Any], key: str, kind: str, where: str, default: Any = REQUIRED) -> Any:
    """source[key] if it is of `kind` (a key of _KINDS); `default` when it is absent or null, if a default is given.

    Anything else is a CheckpointError naming the file and the key: a string, a list or a NaN where a head count
    belongs must stop here, not surface later as a TypeError or a ZeroDivisionError inside the model."""
    value = source.get(key)
    if value is None:
        if default is REQUIRED:
            raise CheckpointError(f"{where}: {key!r} is missing, and the model needs it")
        return default
    test, words = _KINDS[kind]
    if not test(value):
        raise CheckpointError(f"{where}: {key!r} is {short_repr(value)}, but it must be {words}")
    return float(value) if kind == "number" else value


def make_config(where: str, make: Callable[..., ModelConfig], **fields: Any) -> ModelConfig:
    """make(**fields), with ModelConfig's checks of how the fields fit together (n_head a multiple of n_kv_head, an
    even head_dim for RoPE, ...) reported as CheckpointError naming the file."""
    try:
        return make(**fields)
    except (TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{where}: the model it describes is impossible: {e}") from None


def check_sizes(config: ModelConfig, n_tensors: int, file_bytes: int, where: str, ctx_key: str) -> None:
    """Refuse the sizes no tensor backs before anything is allocated for them.

    Every tensor's shape is checked against its bytes, so most config values are bounded by the file. Two are not:
    n_layer is only a loop count until the tensors are looked up (and param_shapes lists every layer first), and
    the RoPE or sinusoid tables have n_ctx rows however small the file is, so a corrupt context length of 2^32
    would ask for terabytes. The tables may be as big as the file itself, or TABLE_BYTES_FLOOR for tiny files.
    """
    if config.n_layer > n_tensors:
        raise CheckpointError(f"{where}: the config declares {config.n_layer} layers but the file holds only "
                              f"{n_tensors} tensors")
    width = {"rope": config.head_dim, "sinusoidal": config.n_embd}.get(config.positions, 0)
    table = config.n_ctx * width * 4  # float32: cos and sin of (n_ctx, D/2) each, or one (n_ctx, C) sinusoid table
    if table > max(file_bytes, TABLE_BYTES_FLOOR):
        raise CheckpointError(f"{where}: {ctx_key!r} is {config.n_ctx}, which needs {table} bytes of position "
                              f"tables, more than the {file_bytes}-byte file itself (or {TABLE_BYTES_FLOOR} bytes); "
                              f"the value is corrupt")


def read_tokenizer(where: str, read: Callable[..., Tokenizer], *args: Any) -> Tokenizer:
    """read(*args), with a broken tokenizer inside a model file reported as CheckpointError (it is part of the file)."""
    try:
        return read(*args)
    except TokenizerError as e:
        detail = str(e).removeprefix(f"{where}: ")  # the GGUF tokenizer's messages name the file already
        raise CheckpointError(f"{where}: the tokenizer cannot be read: {detail}") from e
