"""GGUF files taken apart into fields, for the fuzzer in test_checkpoint_fuzz.py.

`GGUF` splits a well-formed file into its header counts, its metadata entries (key, value type, value bytes), its
tensor infos (name, dims, ggml type, offset) and its data, and writes it back byte for byte, or with any field
changed: counts that disagree with the entries, a value type that disagrees with the value's bytes, arrays whose
declared length or element type is wrong or that nest thousands deep, typed values at the edges of their type, dims
and offsets anywhere in 64 bits. `gguf_mutations` draws lists of such changes and `apply_gguf` applies them.
`write_tiny_llama_gguf` makes the small real file they start from, with the `gguf` package.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from conftest import require_peer
from hostile_safetensors import U64, index
from minichat.tokenizer.vocab import bytes_to_unicode


# -- GGUF: counts, typed metadata entries, tensor infos ---------------------------------------------------------------

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> bytes
STRING, ARRAY = 8, 9


def value_end(raw: bytes, pos: int, vtype: int) -> int:
    """Where the GGUF value of type `vtype` starting at `pos` ends (a walk over a well-formed file)."""
    if vtype in SCALAR_SIZES:
        return pos + SCALAR_SIZES[vtype]
    if vtype == STRING:
        return pos + 8 + struct.unpack_from("<Q", raw, pos)[0]
    etype, count = struct.unpack_from("<IQ", raw, pos)
    pos += 12
    if etype in SCALAR_SIZES:
        return pos + count * SCALAR_SIZES[etype]
    for _ in range(count):
        pos = value_end(raw, pos, etype)
    return pos


@dataclass(frozen=True)
class GGUF:
    """A GGUF file split into fields, as written bytes where the fuzzer may keep them whole (a metadata value).

    kvs: (key, value type, value bytes); infos: (name, n_dims as written or None for len(dims), dims, ggml type,
    offset). `data` is the tensor data, or its length for a file written with a sparse run of zeros instead."""

    version: int
    kvs: tuple
    infos: tuple
    alignment: int
    data: bytes | int
    n_tensors: int | None = None  # the counts as written (None: the true counts)
    n_kv: int | None = None
    flips: tuple = ()  # (position, byte) changes anywhere in the header (and the data, if it is bytes)
    cut: int | None = None
    tail: bytes = b""

    @classmethod
    def parse(cls, raw: bytes, file_size: int | None = None) -> GGUF:
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", raw, 4)
        pos, kvs, infos = 24, [], []
        for _ in range(n_kv):
            (n,) = struct.unpack_from("<Q", raw, pos)
            key, (vtype,) = raw[pos + 8 : pos + 8 + n], struct.unpack_from("<I", raw, pos + 8 + n)
            start = pos + 12 + n
            pos = value_end(raw, start, vtype)
            kvs.append((key, vtype, raw[start:pos]))
        alignment = next((int.from_bytes(v, "little") for k, _, v in kvs if k == b"general.alignment"), 32)
        for _ in range(n_tensors):
            (n,) = struct.unpack_from("<Q", raw, pos)
            name, (n_dims,) = raw[pos + 8 : pos + 8 + n], struct.unpack_from("<I", raw, pos + 8 + n)
            dims = struct.unpack_from(f"<{n_dims}Q", raw, pos + 12 + n)
            type_id, offset = struct.unpack_from("<IQ", raw, pos + 12 + n + 8 * n_dims)
            pos += 12 + n + 8 * n_dims + 12
            infos.append((name, None, dims, type_id, offset))
        start = -(-pos // alignment) * alignment
        data = raw[start:] if file_size is None else file_size - start
        return cls(version, tuple(kvs), tuple(infos), alignment, data)

    def header(self) -> bytes:
        out = [b"GGUF", struct.pack("<I", self.version % 2**32),
               struct.pack("<QQ", (len(self.infos) if self.n_tensors is None else self.n_tensors) % 2**64,
                           (len(self.kvs) if self.n_kv is None else self.n_kv) % 2**64)]
        for key, vtype, value in self.kvs:
            out += [struct.pack("<Q", len(key)), key, struct.pack("<I", vtype % 2**32), value]
        for name, n_dims, dims, type_id, offset in self.infos:
            out += [struct.pack("<Q", len(name)), name, struct.pack("<I", (len(dims) if n_dims is None else n_dims)
                                                                    % 2**32),
                    *(struct.pack("<Q", d % 2**64) for d in dims), struct.pack("<IQ", type_id % 2**32, offset % 2**64)]
        head = b"".join(out)
        return head + bytes(-len(head) % self.alignment)

    def write(self, path: Path) -> int:
        """Write the file; returns its size. A sparse `data` costs no disk and no memory."""
        sparse = isinstance(self.data, int)
        raw = bytearray(self.header() if sparse else self.header() + self.data)
        for position, byte in self.flips:
            raw[position % len(raw)] = byte
        size = len(raw) + (self.data if sparse else 0)
        with open(path, "wb") as f:
            f.write(raw)
            f.truncate(size)
            if self.cut is not None:
                size = self.cut % (size + 1)
                f.truncate(size)
            f.seek(size)
            f.write(self.tail)
        return size + len(self.tail)


INT_TYPES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 10: "Q", 11: "q"}


def payloads(vtype: int, depth: int = 0):
    """Value bytes of GGUF type `vtype`: edge values of each integer type, any float, any byte as a bool, strings
    that are and are not UTF-8, short arrays of any element type (nested once)."""
    if vtype in INT_TYPES:
        fmt = "<" + INT_TYPES[vtype]
        bits = 8 * struct.calcsize(fmt)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if INT_TYPES[vtype].islower() else (0, 2**bits - 1)
        edges = [v for v in (0, 1, 2, 3, 4, 8, 32, 64, -1, lo, hi) if lo <= v <= hi]
        return st.one_of(st.sampled_from(edges), st.integers(lo, hi)).map(lambda v: struct.pack(fmt, v))
    if vtype in (6, 12):
        return st.floats(width=32 if vtype == 6 else 64).map(lambda x: struct.pack("<f" if vtype == 6 else "<d", x))
    if vtype == 7:
        return st.integers(0, 255).map(lambda b: bytes([b]))
    if vtype == STRING:
        return st.one_of(st.text(max_size=8).map(str.encode), st.binary(max_size=8),
                         st.sampled_from([b"llama", b"gpt2", b"gpt-2", b"smollm", b"none", b"linear", b""]),
                         ).map(lambda b: struct.pack("<Q", len(b)) + b)
    etypes = st.sampled_from([t for t in range(13) if depth < 1 or t != ARRAY])
    return etypes.flatmap(lambda e: st.lists(payloads(e, depth + 1), max_size=4).map(
        lambda items: struct.pack("<IQ", e, len(items)) + b"".join(items)))


typed_values = st.integers(0, 12).flatmap(lambda t: st.tuples(st.just(t), payloads(t)))
KEYS = ["general.architecture", "general.alignment", "general.name", "llama.context_length",
        "llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.attention.key_length", "llama.rope.dimension_count",
        "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size",
        "llama.rope.scaling.type", "llama.rope.scaling.factor", "tokenizer.ggml.model", "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id", "tokenizer.chat_template"]
u32s = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 30, 31, 39, 40, 2**31, 2**32 - 1]),
                 st.integers(0, 2**32 - 1))
u64s = st.one_of(st.sampled_from(U64), st.integers(0, 2**64 - 1))
small = st.integers(-3, 3)
gguf_ops = st.one_of(
    st.tuples(st.just("version"), st.sampled_from([0, 1, 2, 3, 4, 2**24, 2**32 - 1])),
    st.tuples(st.just("n_tensors"), u64s | small), st.tuples(st.just("n_kv"), u64s | small),
    st.tuples(st.just("kv set"), st.sampled_from(KEYS), typed_values),
    st.tuples(st.just("kv set"), st.sampled_from(KEYS), typed_values),  # twice: the most fruitful change
    st.tuples(st.just("kv retype"), index, u32s),
    st.tuples(st.just("kv count"), index, u64s | small),
    st.tuples(st.just("kv etype"), index, u32s),
    st.tuples(st.just("kv nest"), st.sampled_from(KEYS), st.integers(1, 3000)),
    st.tuples(st.just("kv shrink"), index, st.integers(1, 16)),
    st.tuples(st.just("kv drop"), index), st.tuples(st.just("kv dup"), index),
    st.tuples(st.just("kv key"), index, st.binary(max_size=12) | st.sampled_from([k.encode() for k in KEYS])),
    st.tuples(st.just("t ndims"), index, u32s),
    st.tuples(st.just("t dim"), index, st.integers(0, 3), u64s),
    st.tuples(st.just("t dims"), index, st.lists(u64s | st.integers(0, 64), max_size=6)),
    st.tuples(st.just("t type"), index, u32s),
    st.tuples(st.just("t offset"), index, u64s),
    st.tuples(st.just("t shift"), index, st.sampled_from([-64, -32, -1, 1, 31, 32, 64, 2**32])),
    st.tuples(st.just("t name"), index, index), st.tuples(st.just("t rename"), index, st.binary(max_size=12)),
    st.tuples(st.just("t drop"), index), st.tuples(st.just("t dup"), index),
)
gguf_frame_ops = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, 2**31)),
    st.tuples(st.just("tail"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("flip"), st.integers(0, 2**31), st.integers(0, 255)),
)
gguf_mutations = st.tuples(st.lists(gguf_ops, min_size=1, max_size=4), st.one_of(st.none(), st.none(), gguf_frame_ops),
                           ).map(lambda t: t[0] + ([t[1]] if t[1] else []))


def apply_gguf(base: GGUF, ops) -> GGUF:
    kvs, infos, g = list(base.kvs), [list(i) for i in base.infos], base
    for op, *args in ops:
        k = args[0] % len(kvs) if kvs and args and type(args[0]) is int else None
        t = args[0] % len(infos) if infos and args and type(args[0]) is int else None
        if op in ("version", "n_tensors", "n_kv"):
            true = {"n_tensors": len(infos), "n_kv": len(kvs)}.get(op, 0)
            g = replace(g, **{op: true + args[0] if -3 <= args[0] <= 3 and op != "version" else args[0]})
        elif op in ("kv set", "kv nest"):
            key = args[0].encode()
            if op == "kv set":
                entry = (key, *args[1])
            else:  # an array of arrays of ... of one empty array of int32
                entry = (key, ARRAY, struct.pack("<IQ", ARRAY, 1) * (args[1] - 1) + struct.pack("<IQ", 5, 0))
            at = next((i for i, kv in enumerate(kvs) if kv[0] == key), None)
            if at is None:
                kvs.append(entry)
            else:
                kvs[at] = entry
        elif op == "kv retype" and k is not None:
            kvs[k] = (kvs[k][0], args[1], kvs[k][2])
        elif op in ("kv count", "kv etype") and k is not None and kvs[k][1] == ARRAY and len(kvs[k][2]) >= 12:
            key, vtype, value = kvs[k]
            count = struct.unpack_from("<Q", value, 4)[0]
            field = (struct.pack("<I", args[1]) + value[4:12] if op == "kv etype" else
                     value[:4] + struct.pack("<Q", (count + args[1] if -3 <= args[1] <= 3 else args[1]) % 2**64))
            kvs[k] = (key, vtype, field + value[12:])
        elif op == "kv shrink" and k is not None:
            kvs[k] = (kvs[k][0], kvs[k][1], kvs[k][2][: -args[1]])
        elif op == "kv drop" and k is not None:
            del kvs[k]
        elif op == "kv dup" and k is not None:
            kvs.insert(k, kvs[k])
        elif op == "kv key" and k is not None:
            kvs[k] = (args[1], *kvs[k][1:])
        elif op == "t ndims" and t is not None:
            infos[t][1] = args[1]
        elif op == "t dim" and t is not None and infos[t][2]:
            dims = list(infos[t][2])
            dims[args[1] % len(dims)] = args[2]
            infos[t][2] = tuple(dims)
        elif op == "t dims" and t is not None:
            infos[t][2] = tuple(args[1])
        elif op == "t type" and t is not None:
            infos[t][3] = args[1]
        elif op == "t offset" and t is not None:
            infos[t][4] = args[1]
        elif op == "t shift" and t is not None:
            infos[t][4] = (infos[t][4] + args[1]) % 2**64
        elif op == "t name" and t is not None:
            infos[t][0] = infos[args[1] % len(infos)][0]
        elif op == "t rename" and t is not None:
            infos[t][0] = args[1]
        elif op == "t drop" and t is not None:
            del infos[t]
        elif op == "t dup" and t is not None:
            infos.insert(t, list(infos[t]))
        elif op == "cut":
            g = replace(g, cut=args[0])
        elif op == "tail":
            g = replace(g, tail=args[0])
        elif op == "flip":
            g = replace(g, flips=g.flips + (tuple(args),))
    return replace(g, kvs=tuple(kvs), infos=tuple(tuple(i) for i in infos))


def write_tiny_llama_gguf(path: Path) -> None:
    """A one-layer Llama with a byte-level BPE tokenizer, as llama.cpp's converter lays it out, in six ggml types."""
    gguf = require_peer("gguf")
    show = bytes_to_unicode()
    tokens = [show[b] for b in range(256)] + ["Ġt", "he", "Ġthe", "<|im_start|>", "<|im_end|>"]
    V, C, H, K, D, F = len(tokens), 32, 4, 2, 8, 64
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(C)
    w.add_block_count(1)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(K)
    w.add_rope_dimension_count(D)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([1] * (V - 2) + [3, 3])
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(V - 2)
    w.add_eos_token_id(V - 1)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    rng = np.random.default_rng(0)
    for name, shape, type_name in [
            ("token_embd.weight", (V, C), "Q8_0"), ("output_norm.weight", (C,), "F32"),
            ("output.weight", (V, C), "Q4_0"),
            ("blk.0.attn_q.weight", (H * D, C), "Q4_1"), ("blk.0.attn_k.weight", (K * D, C), "F16"),
            ("blk.0.attn_v.weight", (K * D, C), "BF16"), ("blk.0.attn_output.weight", (C, H * D), "Q8_0"),
            ("blk.0.ffn_gate.weight", (F, C), "F32"), ("blk.0.ffn_up.weight", (F, C), "Q4_0"),
            ("blk.0.ffn_down.weight", (C, F), "F16"), ("blk.0.attn_norm.weight", (C,), "F32"),
            ("blk.0.ffn_norm.weight", (C,), "F32")]:
        x = (rng.standard_normal(shape) * 0.3).astype(np.float32)
        if type_name == "F32":
            w.add_tensor(name, x)
        elif type_name == "F16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            qtype = gguf.GGMLQuantizationType[type_name]
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
