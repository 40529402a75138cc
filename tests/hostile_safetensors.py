"""Safetensors files and HF folders taken apart into fields, for the fuzzer in test_checkpoint_fuzz.py.

`Safetensors` splits a file into its JSON header (a dict) and its data and writes it back, optionally with a damaged
frame (the length field, the JSON text, a cut, a tail). `st_mutations` draws structural changes to the header: a
field set to another dtype, shape, offset pair or any JSON value, a shape rearranged, offsets nudged or swapped,
entries dropped or copied, `__metadata__` replaced, literals that Python's json refuses. `config_mutations` does the
same to an HF config.json. `apply_st` applies a drawn list of changes.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

U64 = [0, 1, 2, 3, 8, 31, 32, 33, 255, 256, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**53 + 1, 2**62,
       2**63 - 1, 2**63, 2**64 - 1]  # edges of the integer widths a reader may convert to
index = st.integers(0, 50)  # which entry to change, taken modulo the entries there are


# -- safetensors: the header as JSON -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Safetensors:
    """A safetensors file split into its header (a dict) and its data bytes, with optional damage to the frame."""

    header: dict
    data: bytes
    length: int | None = None  # the 8-byte header length as written (None: the true length + length_delta)
    length_delta: int = 0
    text_edits: tuple = ()  # (position, byte) changes to the JSON text
    prefix: bytes = b""  # bytes before the JSON object (the reference refuses anything but '{' there)
    cut: int | None = None  # truncate the whole file to this many bytes
    tail: bytes = b""  # bytes appended to the file

    @classmethod
    def parse(cls, raw: bytes) -> Safetensors:
        n = int.from_bytes(raw[:8], "little")
        return cls(json.loads(raw[8 : 8 + n]), raw[8 + n :])

    def to_bytes(self) -> bytes:
        text = json.dumps(self.header)
        for marker, literal in PLACEHOLDERS.items():  # literals json.dumps cannot write (or would recurse on)
            text = text.replace(json.dumps(marker), literal)
        raw = bytearray(self.prefix + text.encode("utf-8"))
        for position, byte in self.text_edits:
            if raw:
                raw[position % len(raw)] = byte
        length = len(raw) + self.length_delta if self.length is None else self.length
        out = (length % 2**64).to_bytes(8, "little") + bytes(raw) + self.data + self.tail
        return out if self.cut is None else out[: self.cut % (len(out) + 1)]


PLACEHOLDERS = {  # a field set to one of these markers is written as the literal
    "@@digits@@": "9" * 5000,  # Python refuses to parse integers of more than 4300 digits
    "@@deep-list@@": "[" * 3000 + "]" * 3000,  # deeper than json (and repr) can recurse
    "@@deep-dict@@": '{"a":' * 3000 + "1" + "}" * 3000,
}
ints = st.one_of(st.sampled_from(U64), st.sampled_from([-1, -2**63, 10**30, 10**400]), st.integers(-3, 70), st.integers())
json_leaves = st.one_of(st.none(), st.booleans(), ints, st.floats(), st.text(max_size=6))
json_values = st.recursive(json_leaves, lambda kids: st.lists(kids, max_size=3) |
                           st.dictionaries(st.text(max_size=4), kids, max_size=3), max_leaves=6)
dtype_names = st.sampled_from(["F32", "F16", "BF16", "F64", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64",
                               "BOOL", "F8_E4M3", "F4", "Q4", "", "f32"])
shapes = st.one_of(st.lists(ints.filter(lambda d: abs(d) < 2**70), max_size=5),
                   st.integers(60, 70).map(lambda n: [1] * n), st.integers(60, 70).map(lambda n: [0] * n))
FIELDS = ["dtype", "shape", "data_offsets"]
RESHAPES = {"reverse": lambda s: s[::-1], "flatten": lambda s: [int(np.prod(s))], "add 1": lambda s: s + [1],
            "add 0": lambda s: [0] + s, "add 2^62 to an empty one": lambda s: s + [2**62] if 0 in s else s,
            "drop": lambda s: s[1:]}
index = st.integers(0, 50)

# Changes to the header's entries; indexes are taken modulo the entries that exist.
entry_ops = st.one_of(
    st.tuples(st.just("set"), index, st.sampled_from(FIELDS), st.one_of(dtype_names, shapes, json_values,
                                                                         st.tuples(ints, ints).map(list))),
    st.tuples(st.just("dtype"), index, dtype_names),
    st.tuples(st.just("reshape"), index, st.sampled_from(sorted(RESHAPES))),
    st.tuples(st.just("nudge"), index, st.sampled_from(FIELDS[1:]), st.integers(0, 5),
              st.one_of(st.integers(-9, 9), st.sampled_from([-2**32, 2**32, 2**63, -2**63, 2**64]))),
    st.tuples(st.just("swap offsets"), index, index),
    st.tuples(st.just("del"), index, st.sampled_from(FIELDS)),
    st.tuples(st.just("extra"), index, st.text(max_size=5), json_values),
    st.tuples(st.just("entry"), index, json_values),
    st.tuples(st.just("literal"), index, st.sampled_from(FIELDS), st.sampled_from(sorted(PLACEHOLDERS))),
    st.tuples(st.just("drop"), index),
    st.tuples(st.just("copy"), index, st.text(max_size=5) | st.just("__metadata__")),
    st.tuples(st.just("meta"), st.dictionaries(st.text(max_size=3), st.text(max_size=3) | json_values, max_size=2)
              | json_values),
)
# Damage to the frame around the JSON: its text, the length field, the file's end.
frame_ops = st.one_of(
    st.tuples(st.just("text"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("length"), st.sampled_from(U64)),
    st.tuples(st.just("length_delta"), st.integers(-40, 40)),
    st.tuples(st.just("prefix"), st.sampled_from([b" ", b"\n", b"\xef\xbb\xbf", b"[", b"x"])),
    st.tuples(st.just("cut"), st.integers(0, 10**6)),
    st.tuples(st.just("tail"), st.binary(min_size=1, max_size=40)),
)
st_mutations = st.tuples(st.lists(entry_ops, min_size=1, max_size=4),
                         st.one_of(st.none(), st.none(), frame_ops)).map(lambda t: t[0] + ([t[1]] if t[1] else []))


def apply_st(base: Safetensors, ops) -> Safetensors:
    header, f = copy.deepcopy(base.header), base
    for op, *args in ops:
        names = sorted(k for k in header if k != "__metadata__")
        name = names[args[0] % len(names)] if names and args and type(args[0]) is int else None
        entry = header.get(name) if name is not None else None
        if op == "set" and isinstance(entry, dict):
            entry[args[1]] = args[2]
        elif op == "dtype" and isinstance(entry, dict):
            entry["dtype"] = args[1]
        elif op == "reshape" and isinstance(entry, dict) and isinstance(entry.get("shape"), list) and all(
                type(d) is int for d in entry["shape"]):
            entry["shape"] = RESHAPES[args[1]](entry["shape"])
        elif op == "nudge" and isinstance(entry, dict) and isinstance(entry.get(args[1]), list) and entry[args[1]]:
            values = entry[args[1]]
            k = args[2] % len(values)
            if type(values[k]) is int:
                values[k] += args[3]
        elif op == "swap offsets" and isinstance(entry, dict):
            other = header.get(names[args[1] % len(names)])
            if isinstance(other, dict) and "data_offsets" in entry and "data_offsets" in other:
                entry["data_offsets"], other["data_offsets"] = other["data_offsets"], entry["data_offsets"]
        elif op == "del" and isinstance(entry, dict):
            entry.pop(args[1], None)
        elif op in ("extra", "literal") and isinstance(entry, dict):
            entry[args[1]] = args[2]
        elif op == "entry" and name is not None:
            header[name] = args[1]
        elif op == "drop" and name is not None:
            del header[name]
        elif op == "copy" and name is not None:
            header[args[1]] = copy.deepcopy(header[name])
        elif op == "meta":
            header["__metadata__"] = args[0]
        elif op == "text":
            f = replace(f, text_edits=f.text_edits + (tuple(args),))
        elif op in ("length", "length_delta", "prefix", "cut", "tail"):
            f = replace(f, **{op: args[0]})
    return replace(f, header=header)


ASSORTED = {  # every dtype the package writes from NumPy, a scalar and an empty tensor
    "f32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "f16": np.arange(4, dtype=np.float16),
    "f64": np.array([[1 / 3]]), "i8": np.array([-128, 0, 127], np.int8), "u8": np.arange(5, dtype=np.uint8),
    "i16": np.array([-2, 2], np.int16), "u16": np.array([65535], np.uint16), "i32": np.arange(3, dtype=np.int32),
    "u32": np.array([2**32 - 1], np.uint32), "i64": np.array([-2**62], np.int64),
    "u64": np.array([2**64 - 1], np.uint64),
    "mask": np.array([True, False]), "scalar": np.array(7, np.int32), "empty": np.zeros((0, 3), np.float32),
}


# -- checkpoint folders: config.json fields and the weights' header --------------------------------------------------

MINICHAT_MODEL = {"vocab_size": 48, "n_ctx": 32, "n_embd": 16, "n_layer": 1, "n_head": 4, "n_kv_head": 2, "head_dim": 4,
                  "n_inner": 24, "positions": "rope", "rope_theta": 10000.0, "norm": "rmsnorm", "norm_eps": 1e-5,
                  "mlp": "swiglu", "bias": False, "tie_embeddings": True}  # ModelConfig.to_dict() of a tiny Llama
FOLDER_CONFIGS = {  # HF's config.json for a tiny Llama and GPT-2, and minichat's own for a tiny Llama
    "llama": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 48,
              "max_position_embeddings": 32, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 4, "intermediate_size": 24, "rope_theta": 10000.0,
              "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "hidden_act": "silu", "attention_bias": False,
              "mlp_bias": False, "rope_scaling": None},
    "gpt2": {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 48, "n_positions": 32,
             "n_embd": 16, "n_layer": 1, "n_head": 4, "n_inner": None, "layer_norm_epsilon": 1e-5,
             "activation_function": "gelu_new", "tie_word_embeddings": True},
    "minichat": {"format": "minichat", "version": 1, "model": MINICHAT_MODEL, "metadata": {"step": 1}},
}
FOLDER_SHAPES = {  # the tensors written for these configs (GPT-2 with and without the `transformer.` prefix)
    "llama": {"model.embed_tokens.weight": (48, 16), "model.norm.weight": (16,), "lm_head.weight": (48, 16),
              "model.layers.0.self_attn.q_proj.weight": (16, 16), "model.layers.0.self_attn.k_proj.weight": (8, 16),
              "model.layers.0.self_attn.v_proj.weight": (8, 16), "model.layers.0.self_attn.o_proj.weight": (16, 16),
              "model.layers.0.mlp.gate_proj.weight": (24, 16), "model.layers.0.mlp.up_proj.weight": (24, 16),
              "model.layers.0.mlp.down_proj.weight": (16, 24), "model.layers.0.input_layernorm.weight": (16,),
              "model.layers.0.post_attention_layernorm.weight": (16,)},
    "gpt2": {"transformer.wte.weight": (48, 16), "transformer.wpe.weight": (32, 16), "h.0.ln_1.weight": (16,),
             "h.0.ln_1.bias": (16,), "h.0.attn.c_attn.weight": (16, 48), "h.0.attn.c_attn.bias": (48,),
             "h.0.attn.c_proj.weight": (16, 16), "h.0.attn.c_proj.bias": (16,), "h.0.ln_2.weight": (16,),
             "h.0.ln_2.bias": (16,), "h.0.mlp.c_fc.weight": (16, 64), "h.0.mlp.c_fc.bias": (64,),
             "h.0.mlp.c_proj.weight": (64, 16), "h.0.mlp.c_proj.bias": (16,), "ln_f.weight": (16,),
             "ln_f.bias": (16,)},
    "minichat": {"wte": (48, 16), "ln_f.weight": (16,), "h.0.ln_1.weight": (16,), "h.0.ln_2.weight": (16,),
                 "h.0.attn.c_attn.weight": (16, 32), "h.0.attn.c_proj.weight": (16, 16),
                 "h.0.mlp.c_gate.weight": (16, 24), "h.0.mlp.c_fc.weight": (16, 24), "h.0.mlp.c_proj.weight": (24, 16)},
}
CONFIG_KEYS = sorted({k for c in FOLDER_CONFIGS.values() for k in c} | set(MINICHAT_MODEL) | {"rope_parameters"})
NAMES = ["llama", "gpt2", "silu", "gelu_new", "minichat", "rope", "learned", "sinusoidal", "rmsnorm", "layernorm",
         "gelu", "swiglu"]
config_values = st.one_of(ints, json_values, st.floats(), st.sampled_from(NAMES),
                          st.dictionaries(st.sampled_from(["rope_type", "type", "rope_theta", "factor"]),
                                          st.sampled_from(["default", "linear", "yarn"]) | json_values, max_size=2))
config_ops = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(CONFIG_KEYS) | st.text(max_size=5), config_values),
    st.tuples(st.just("del"), st.sampled_from(CONFIG_KEYS)),
)
rare_config_ops = st.one_of(  # these stop at the JSON parser, so they are drawn for one example in ten
    st.tuples(st.just("whole"), json_values),
    st.tuples(st.just("set"), st.sampled_from(CONFIG_KEYS), st.sampled_from(sorted(PLACEHOLDERS))),
)
config_mutations = st.tuples(st.lists(config_ops, max_size=3),
                             st.sampled_from([False] * 9 + [True]).flatmap(
                                 lambda rare: rare_config_ops.map(lambda op: [op]) if rare else st.just([])),
                             ).map(lambda t: t[0] + t[1])


def mutate_config(kind: str, ops) -> object:
    """FOLDER_CONFIGS[kind] with `ops` applied; in minichat's own config.json the model's fields live under "model"."""
    config: object = copy.deepcopy(FOLDER_CONFIGS[kind])
    for op, *args in ops:
        if op == "whole":
            config = args[0]
            continue
        target = config
        if kind == "minichat" and isinstance(config, dict) and isinstance(config.get("model"), dict) and \
                args[0] in MINICHAT_MODEL:
            target = config["model"]
        if isinstance(target, dict) and op == "del":
            target.pop(args[0], None)
        elif isinstance(target, dict):
            target[args[0]] = args[1]
    return config


def write_hf(folder: Path, config, weights: Safetensors) -> None:
    folder.mkdir(parents=True)
    text = json.dumps(config)
    for marker, literal in PLACEHOLDERS.items():
        text = text.replace(json.dumps(marker), literal)
    (folder / "config.json").write_text(text)
    (folder / "model.safetensors").write_bytes(weights.to_bytes())
