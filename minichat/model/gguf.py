"""Reading GGUF files by hand: the single-file format llama.cpp uses for weights, hyper-parameters and tokenizer.

A GGUF file (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) is, little-endian throughout:

    magic "GGUF" | version u32 (2 or 3) | tensor_count u64 | kv_count u64
    kv_count metadata entries:   key (string) | value type u32 | value
    tensor_count tensor infos:   name (string) | n_dims u32 | dims u64 × n_dims | ggml type u32 | offset u64
    padding up to a multiple of `general.alignment` (default 32)
    the tensor data: each tensor at data start + its offset (a multiple of the alignment)

A string is a u64 byte length then UTF-8 bytes; an array is an element type u32, a u64 count, then the elements.
Dims are listed fastest-varying first (ggml's ne[0] is the row length), so the NumPy shape is the dims reversed:
a weight with dims [576, 1536] is a (1536, 576) array whose rows hold 576 numbers.

Quantised types store numbers in blocks of 32 along a row, each block with its own scale (ggml's ggml-common.h):

    Q8_0  34 bytes: d (f16), 32 × int8 q                       x = d·q
    Q4_0  18 bytes: d (f16), 16 bytes of 4-bit q (two per byte) x = d·(q − 8)
    Q4_1  20 bytes: d (f16), m (f16), 16 bytes of 4-bit q       x = d·q + m

In a 4-bit block byte j holds element j in its low nibble and element j+16 in its high nibble.

What it leaves out: GGUF v1 and big-endian files (refused by name); dequantising the K-quants, I-quants and integer
types (their sizes are known so a file that holds them still opens, but asking for such a tensor raises
CheckpointError); writing GGUF. Every problem raises CheckpointError naming the file and the field or tensor at
fault, and nothing else: a hostile file may nest arrays a thousand deep, declare 2^64 elements, or give an empty
tensor 2^62 rows, so each declared count and size is checked against the bytes left in the file before anything is
allocated for it.
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minichat.errors import CheckpointError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# Metadata value types: id -> struct format of one scalar. 8 (STRING) and 9 (ARRAY) are handled apart.
STRING, ARRAY = 8, 9
MAX_NESTING = 16  # arrays of arrays deeper than this are refused (llama.cpp reads no nested arrays at all)
MAX_ELEMENTS = (2**63 - 1) // 8  # ggml's int64 element count; NumPy's limit on an array's bytes as float64
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

# ggml tensor types: id -> (name, elements per block, bytes per block). Only the first group can be dequantised.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2), 8: ("Q8_0", 32, 34), 2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
}
GGML_TYPE_IDS = {name: i for i, (name, _, _) in GGML_TYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: NumPy-order shape, ggml type id and name, absolute byte offset and size in the file."""

    name: str
    shape: tuple[int, ...]
    type: int
    type_name: str
    offset: int
    nbytes: int


# -- dequantisation: raw block bytes -> float32, vectorised over all blocks at once ----------------------------------

def _f16(blocks: np.ndarray, at: int) -> np.ndarray:  # (nb, bytes) u8 -> (nb, 1) f32
    return blocks[:, at : at + 2].view("<f2").astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:  # (nb, 16) u8 -> (nb, 32) f32, low nibbles first, then high
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)


def dequantize(raw: np.ndarray, type_name: str) -> np.ndarray:  # (nbytes,) u8 -> (n,) f32
    """Decode a run of whole blocks of one ggml type into float32 numbers, in order."""
    if type_name == "F32":
        return raw.view("<f4").astype(np.float32, copy=False)  # (n,)
    if type_name == "F16":
        return raw.view("<f2").astype(np.float32)  # (n,)
    if type_name == "BF16":  # the top 16 bits of a float32: shift them back into place
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)  # (n,)
    if type_name == "Q8_0":
        blocks = raw.reshape(-1, 34)  # (nb, 34)
        q = blocks[:, 2:].view(np.int8).astype(np.float32)  # (nb, 32)
        return (q * _f16(blocks, 0)).reshape(-1)  # (nb, 32) -> (n,)
    if type_name == "Q4_0":
        blocks = raw.reshape(-1, 18)  # (nb, 18)
        q = _nibbles(blocks[:, 2:]) - np.float32(8)  # (nb, 32)
        return (q * _f16(blocks, 0)).reshape(-1)  # (n,)
    if type_name == "Q4_1":
        blocks = raw.reshape(-1, 20)  # (nb, 20)
        q = _nibbles(blocks[:, 4:])  # (nb, 32)
        return (q * _f16(blocks, 0) + _f16(blocks, 2)).reshape(-1)  # (n,)
    raise CheckpointError(f"cannot dequantise ggml type {type_name}; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1")


# -- parsing ----------------------------------------------------------------------------------------------------------

class _Cursor:
    """Reads little-endian values from a byte buffer, raising CheckpointError (naming the field) past its end."""

    def __init__(self, buf: memoryview, path: str):
        self.buf, self.pos, self.path = buf, 0, path

    def need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.buf):
            raise CheckpointError(f"{self.path}: truncated or corrupt: needs {n} more bytes at byte {self.pos} to "
                                  f"read {what}, but the file ends at {len(self.buf)}")

    def scalar(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        self.need(size, what)
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str:
        n = self.scalar("Q", what + " (length)")
        self.need(n, what)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError(f"{self.path}: {what} is not valid UTF-8 ({e})") from None

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype], what)
        if vtype == STRING:
            return self.string(what)
        if vtype == ARRAY:
            if depth >= MAX_NESTING:  # each level recurses once: refuse before Python's stack runs out
                raise CheckpointError(f"{self.path}: {what} nests arrays more than {MAX_NESTING} deep")
            etype = self.scalar("I", what + " (element type)")
            count = self.scalar("Q", what + " (element count)")
            if etype in _SCALARS:  # numbers: one vectorised read
                size = struct.calcsize(_SCALARS[etype])
                self.need(count * size, f"{what} ({count} elements)")
                items = np.frombuffer(self.buf, "<" + _SCALARS[etype], count, self.pos).tolist()
                self.pos += count * size
                return items
            if etype not in (STRING, ARRAY):
                raise CheckpointError(f"{self.path}: {what} is an array of unknown value type {etype}")
            self.need(count * 8, f"{what} ({count} elements)")  # every string or array takes at least 8 bytes
            return [self.value(etype, f"{what}[{i}]", depth + 1) for i in range(count)]
        raise CheckpointError(f"{self.path}: {what} has unknown value type {vtype} (known: 0-12)")


class GGUFFile:
    """An open GGUF file: `.version`, `.metadata` (key -> value), `.tensor_infos` (name -> TensorInfo, file order),
    `.alignment`, `.data_start` (byte where the data part begins), `.path`.

    The header is parsed on opening; tensor data stays in a read-only memory map until `tensor(name)` decodes it.
    Metadata values are Python ints, floats, bools, strings, or lists of them (nested for arrays of arrays).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        size = os.path.getsize(self.path)
        if size < 24:
            raise CheckpointError(f"{path}: {size} bytes is too short for a GGUF header (24 bytes); the file is "
                                  f"truncated or not GGUF")
        self._map = np.asarray(np.memmap(self.path, dtype=np.uint8, mode="r"))  # (size,) the whole file
        cur = _Cursor(memoryview(self._map), str(path))
        magic = bytes(cur.buf[:4])
        if magic != MAGIC:
            raise CheckpointError(f"{path}: not a GGUF file (it starts with {magic!r}, not {MAGIC!r})")
        cur.pos = 4
        self.version = cur.scalar("I", "the version")
        if self.version not in (2, 3):
            if self.version & 0xFFFF == 0:
                raise CheckpointError(f"{path}: a big-endian GGUF file; only little-endian files are supported")
            raise CheckpointError(f"{path}: GGUF version {self.version} is not supported (only 2 and 3; version 1 "
                                  f"used 32-bit counts: convert the model again with a recent llama.cpp)")
        n_tensors = cur.scalar("Q", "the tensor count")
        n_kv = cur.scalar("Q", "the metadata count")
        self.metadata: dict[str, Any] = {}
        for k in range(n_kv):
            key = cur.string(f"the key of metadata entry #{k}")
            if key in self.metadata:
                raise CheckpointError(f"{path}: metadata key {key!r} appears twice")
            vtype = cur.scalar("I", f"the value type of metadata key {key!r}")
            self.metadata[key] = cur.value(vtype, f"the value of metadata key {key!r}")
        self.alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (type(self.alignment) is not int or self.alignment <= 0  # bool is an int to Python, not to GGUF
                or self.alignment & (self.alignment - 1)):
            raise CheckpointError(f"{path}: metadata key 'general.alignment' is {self.alignment!r}; it must be a "
                                  f"positive power of two")
        infos = [self._tensor_info(cur, t) for t in range(n_tensors)]
        self.data_start = -(-cur.pos // self.alignment) * self.alignment  # round up to the alignment
        self.tensor_infos: dict[str, TensorInfo] = {}
        for name, shape, type_id, rel in infos:
            if name in self.tensor_infos:
                raise CheckpointError(f"{path}: tensor {name!r} appears twice")
            type_name, block, block_bytes = GGML_TYPES[type_id]
            nbytes = math.prod(shape) // block * block_bytes
            start = self.data_start + rel
            if start + nbytes > size:
                raise CheckpointError(f"{path}: tensor {name!r} is truncated: its data needs bytes {start}.."
                                      f"{start + nbytes} but the file ends at {size}")
            self.tensor_infos[name] = TensorInfo(name, shape, type_id, type_name, start, nbytes)
        self._check_overlaps()

    def _tensor_info(self, cur: _Cursor, t: int) -> tuple[str, tuple[int, ...], int, int]:
        name = cur.string(f"the name of tensor #{t}")
        n_dims = cur.scalar("I", f"the number of dims of tensor {name!r}")
        if n_dims > 4:
            raise CheckpointError(f"{self.path}: tensor {name!r} claims {n_dims} dims; ggml allows at most 4")
        dims = [cur.scalar("Q", f"dim {d} of tensor {name!r}") for d in range(n_dims)]
        type_id = cur.scalar("I", f"the type of tensor {name!r}")
        rel = cur.scalar("Q", f"the data offset of tensor {name!r}")
        if type_id not in GGML_TYPES:
            raise CheckpointError(f"{self.path}: tensor {name!r} has unknown ggml type id {type_id}")
        # ggml counts elements in int64; an empty tensor (a zero dim) has no bytes to bound its other dims
        if math.prod(d for d in dims if d) > MAX_ELEMENTS:
            raise CheckpointError(f"{self.path}: tensor {name!r} has dims {dims}, more than {MAX_ELEMENTS} "
                                  f"elements; the file is corrupt")
        type_name, block, _ = GGML_TYPES[type_id]
        if block > 1 and (not dims or dims[0] % block):
            row = dims[0] if dims else "no"  # a 0-dim (scalar) tensor has no rows to cut into blocks
            raise CheckpointError(f"{self.path}: tensor {name!r} is {type_name} with rows of {row} numbers, "
                                  f"not a multiple of its block size {block}")
        if rel % self.alignment:
            raise CheckpointError(f"{self.path}: tensor {name!r} has data offset {rel}, not a multiple of the "
                                  f"alignment {self.alignment}")
        return name, tuple(reversed(dims)), type_id, rel

    def _check_overlaps(self) -> None:
        end, previous = 0, None
        for info in sorted(self.tensor_infos.values(), key=lambda i: (i.offset, i.nbytes)):
            if info.nbytes and info.offset < end:
                raise CheckpointError(f"{self.path}: tensor {info.name!r} (bytes {info.offset}..."
                                      f"{info.offset + info.nbytes}) overlaps tensor {previous!r}")
            end, previous = max(end, info.offset + info.nbytes), info.name

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensor_infos[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor named {name!r} ({len(self.tensor_infos)} tensors, "
                                  f"e.g. {list(self.tensor_infos)[:4]})") from None

    def raw(self, name: str) -> np.ndarray:  # -> (nbytes,) u8
        """The tensor's bytes exactly as stored (a read-only view into the file)."""
        info = self._info(name)
        return self._map[info.offset : info.offset + info.nbytes]

    def tensor(self, name: str) -> np.ndarray:  # -> shape of the tensor, float32
        """The tensor decoded to float32, in NumPy shape (GGUF dims reversed).

        F32 tensors come back as read-only views into the file (no copy); other types as fresh arrays.
        """
        info = self._info(name)
        if info.type_name not in ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"):
            raise CheckpointError(f"{self.path}: tensor {name!r} has ggml type {info.type_name}, which minichat "
                                  f"cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1); use a file "
                                  f"quantised to one of those")
        return dequantize(self.raw(name), info.type_name).reshape(info.shape)

    def __repr__(self) -> str:
        return (f"GGUFFile({str(self.path)!r}, version={self.version}, {len(self.metadata)} metadata keys, "
                f"{len(self.tensor_infos)} tensors)")


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    """Open a GGUF file: parse its header, metadata and tensor infos; tensor data is decoded on demand."""
    return GGUFFile(path)
