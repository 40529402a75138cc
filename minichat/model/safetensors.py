"""Reading and writing safetensors files by hand: what a checkpoint file really is.

A safetensors file (Hugging Face's format, https://github.com/huggingface/safetensors) is three things back to back:

    [ 8 bytes ]  N, the header length, an unsigned 64-bit little-endian integer
    [ N bytes ]  a JSON object (UTF-8, may be padded with trailing spaces), one entry per tensor:
                     "h.0.attn.c_attn.weight": {"dtype": "F32", "shape": [768, 2304], "data_offsets": [0, 7077888]}
                 plus an optional "__metadata__": {"format": "pt", ...} holding strings only
    [ rest    ]  the raw tensor bytes, little-endian, C (row-major) order; data_offsets are [begin, end) byte
                 positions counted from the start of this part

That is all: no compression, no pickled Python (which is why the format is safe to open from strangers), and since
each tensor is a plain byte range, a reader can memory-map the file and hand out NumPy views without copying.

The rules we check, as the reference implementation does: the header length fits in the file; the JSON parses into an
object; every dtype is known; every shape times the dtype's size equals the tensor's byte range; the ranges lie inside
the data, do not overlap and leave no holes (together they cover the data exactly). A file that breaks a rule raises
`CheckpointError` naming the file and the tensor or field at fault, and nothing else: the header is untrusted input
(a hostile file may nest JSON a thousand levels deep, put a list where a string belongs, or declare an empty tensor
with 2^62 rows), so every value is type-checked before use, and nothing is allocated from a declared size before
that size has been checked against the file.

What it leaves out: the 8-bit and smaller float dtypes (F8_*, F6_*, F4; refused by name), big-endian machines, and
writing from lazy/streamed tensors. NumPy has no bfloat16, so BF16 tensors are widened exactly to float32 on reading.
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from minichat.errors import CheckpointError

MAX_HEADER_BYTES = 100_000_000  # the reference reader refuses larger headers, as a guard against garbage lengths
MAX_DIMS = 64  # NumPy arrays have at most 64 dimensions
# NumPy refuses an array whose element count (zero dims left out) times its itemsize overflows a signed 64-bit
# integer, even when the array is empty; 8 bytes per element leaves room for widening to float64 later.
MAX_ELEMENTS = (2**63 - 1) // 8

# safetensors dtype name -> the NumPy dtype of its bytes (little-endian). BF16 is read as raw uint16 then widened.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_NAMES = {np.dtype(d).newbyteorder("<") if np.dtype(d).itemsize > 1 else np.dtype(d): name
          for name, d in DTYPES.items() if name != "BF16"}  # NumPy dtype -> name, for writing


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:  # (...) uint16 -> (...) float32
    """bfloat16 is the top half of a float32, so widening is a 16-bit shift: exact, no rounding."""
    return (raw.astype(np.uint32) << 16).view(np.float32)  # (...) u16 -> (...) u32 -> same bits as f32


def short_repr(value: object) -> str:
    """A repr cut to 200 characters, for error messages about untrusted values: a hostile header can hold huge
    values, or nest them deeper than repr can recurse."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a {type(value).__name__} nested too deeply to show>"
    return text if len(text) <= 200 else text[:200] + "..."


# Python's json is laxer than JSON and than the reference reader (serde_json, which holds numbers as 64-bit integers
# or doubles): it reads NaN and Infinity, and numbers of any size. These hooks refuse what the reference refuses.
def _not_json(word: str) -> None:
    raise ValueError(f"{word} is not JSON")


def _finite(text: str) -> float:
    if not math.isfinite(value := float(text)):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _finite_int(text: str) -> int:
    if abs(value := int(text)) > sys.float_info.max:
        raise ValueError(f"the number {text[:40]}... is out of range")
    return value


def _read_header(path: str | os.PathLike) -> tuple[dict, int, int]:
    """Parse and validate the header -> (header dict, byte position where data starts, data length)."""
    size = os.path.getsize(path)
    if size < 8:
        raise CheckpointError(f"{path}: {size} bytes is too short for a safetensors file (it starts with an 8-byte "
                              f"header length); the file is truncated or not safetensors")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise CheckpointError(f"{path}: bad header length {n} (file size {size} bytes); the file is truncated "
                                  f"or not safetensors")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_not_json, parse_float=_finite, parse_int=_finite_int)
    except RecursionError:  # json recurses once per nesting level
        raise CheckpointError(f"{path}: the JSON header nests too deeply to parse; the file is corrupt") from None
    except ValueError as e:  # bad UTF-8, bad JSON, a number out of range, or an integer of more than 4300 digits
        raise CheckpointError(f"{path}: the JSON header does not parse ({short_repr(str(e))}); the file is "
                              f"corrupt") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the JSON header is a {type(header).__name__}, not an object")
    data_start, data_len = 8 + n, size - 8 - n
    _validate(path, header, data_len)
    return header, data_start, data_len


def _validate(path, header: dict, data_len: int) -> None:
    """Check every entry against the rules in the module docstring; raise naming the first entry at fault."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: '__metadata__' must map strings to strings, got {short_repr(meta)}")
    spans = []  # (begin, end, name) for the overlap/hole check
    for name, info in header.items():
        if name == "__metadata__":
            continue
        tensor = f"tensor {short_repr(name)}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise CheckpointError(f"{path}: {tensor} needs 'dtype', 'shape' and 'data_offsets', got "
                                  f"{short_repr(info)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise CheckpointError(f"{path}: {tensor} has unknown or unsupported dtype {short_repr(dtype)} "
                                  f"(supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: {tensor} has a bad shape {short_repr(shape)}; expected a list of "
                                  f"non-negative integers")
        if len(shape) > MAX_DIMS or math.prod(d for d in shape if d) > MAX_ELEMENTS:
            raise CheckpointError(f"{path}: {tensor} has shape {short_repr(shape)}, beyond what NumPy can hold (at "
                                  f"most {MAX_DIMS} dims and {MAX_ELEMENTS} elements); the file is corrupt")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_len):
            raise CheckpointError(f"{path}: {tensor} has data_offsets {short_repr(offsets)} out of range: the data "
                                  f"part holds {data_len} bytes (is the file truncated?)")
        want = math.prod(shape) * DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != want:
            raise CheckpointError(f"{path}: {tensor} is {dtype} of shape {short_repr(shape)}, which needs {want} "
                                  f"bytes, but its data_offsets {offsets} span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    # Sorted by position, each tensor must start exactly where the previous one ended: no overlap, no hole.
    position, previous = 0, None
    for begin, end, name in sorted(spans):
        if begin < position:
            raise CheckpointError(f"{path}: tensor {short_repr(name)} (bytes {begin}..{end}) overlaps tensor "
                                  f"{short_repr(previous)}")
        if begin > position:
            raise CheckpointError(f"{path}: {begin - position} unclaimed bytes before tensor {short_repr(name)}; the "
                                  f"data part must be covered exactly")
        position, previous = end, name
    if position != data_len:
        raise CheckpointError(f"{path}: the tensors claim {position} bytes but the data part holds {data_len}; "
                              f"the file has trailing bytes or is corrupt")


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The optional `__metadata__` strings of a safetensors file ({} when absent). Reads only the header."""
    header, _, _ = _read_header(path)
    return dict(header.get("__metadata__", {}))


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, by name, in its stored dtype (BF16 widened to float32).

    Tensors are read-only views into a memory map of the file, so opening a large checkpoint costs almost nothing
    until the numbers are touched; copy one (`np.array(t)`) to modify it. Callers convert to float32 as they need.
    """
    header, data_start, data_len = _read_header(path)
    tensors: dict[str, np.ndarray] = {}
    if data_len == 0:  # mmap refuses an empty range; every tensor is then empty too
        return {name: np.zeros(info["shape"], DTYPES[info["dtype"]])
                for name, info in header.items() if name != "__metadata__"}
    # np.asarray drops the memmap subclass; the views keep the mapping alive through their .base
    data = np.asarray(np.memmap(path, dtype=np.uint8, mode="r", offset=data_start, shape=(data_len,)))  # (D,) bytes
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = data[begin:end].view(DTYPES[info["dtype"]]).reshape(info["shape"])  # (nbytes,) u8 -> shape, dtype
        tensors[name] = bf16_to_f32(t) if info["dtype"] == "BF16" else t
    return tensors


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write NumPy arrays (bool, ints, float16/32/64) as a safetensors file, in name order.

    The header is padded with spaces to a multiple of 8 bytes so that the data starts aligned, as the reference
    writer does. Metadata values must be strings (the format allows nothing else).
    """
    header: dict = {}
    if metadata:
        bad = {k: v for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)}
        if bad:
            raise ValueError(f"safetensors metadata must map str to str; offending entries: {bad!r:.200}")
        header["__metadata__"] = dict(metadata)
    blobs, position = [], 0
    for name in sorted(tensors):
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"{name!r} cannot name a tensor (names are strings; '__metadata__' is reserved)")
        array = np.asarray(tensors[name])
        dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        if dtype not in _NAMES:
            raise ValueError(f"tensor {name!r} has dtype {array.dtype}, which safetensors cannot store here; "
                             f"convert it to one of {sorted(str(d) for d in _NAMES)}")
        blob = np.ascontiguousarray(array, dtype=dtype).tobytes()  # C order, little-endian
        header[name] = {"dtype": _NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [position, position + len(blob)]}
        blobs.append(blob)
        position += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(Path(path), "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)
