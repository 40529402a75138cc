"""The hand-written GGUF reader against the `gguf` package (llama.cpp's own Python reader and writer).

Files are written by `gguf.GGUFWriter`, quantised by `gguf.quants.quantize`; our dequantised tensors must equal
`gguf.quants.dequantize` exactly, our metadata must equal what was written, and broken files must raise
CheckpointError naming the field or tensor at fault. Last, the real SmolLM2-135M-Instruct Q4_1 file.
"""
from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import require_peer, smollm2_gguf
from minichat.errors import CheckpointError
from minichat.model.gguf import GGML_TYPES, GGUFFile, dequantize, read_gguf

SUPPORTED = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"]


def gguf_peer():
    return require_peer("gguf")


def write_file(path: Path, tensors: dict[str, tuple[np.ndarray, str]], metadata=(), alignment: int | None = None,
               ) -> Path:
    """Write with the reference writer. tensors: name -> (float32 values, ggml type name)."""
    gguf = gguf_peer()
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, value, vtype, *sub in metadata:
        w.add_key_value(key, value, getattr(gguf.GGUFValueType, vtype), *(getattr(gguf.GGUFValueType, s) for s in sub))
    for name, (x, type_name) in tensors.items():
        qtype = gguf.GGMLQuantizationType[type_name]
        if type_name == "F32":
            w.add_tensor(name, x.astype(np.float32))
        elif type_name == "F16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def assert_matches_reference(ours: GGUFFile, path: Path) -> None:
    """Every tensor equals gguf.GGUFReader's bytes decoded by gguf.quants.dequantize; infos agree."""
    gguf = gguf_peer()
    reader = gguf.GGUFReader(str(path))
    assert list(ours.tensor_infos) == [t.name for t in reader.tensors]
    for t in reader.tensors:
        info = ours.tensor_infos[t.name]
        assert info.shape == tuple(int(d) for d in reversed(t.shape)), t.name  # NumPy order = GGUF dims reversed
        assert (info.type, info.type_name, info.offset) == (int(t.tensor_type), t.tensor_type.name, t.data_offset)
        x = ours.tensor(t.name)
        ref = gguf.quants.dequantize(t.data, t.tensor_type)
        assert x.dtype == np.float32 and x.shape == info.shape, t.name
        np.testing.assert_array_equal(x, ref.reshape(info.shape), err_msg=t.name)


METADATA = [
    ("t.u8", 200, "UINT8"), ("t.i8", -100, "INT8"), ("t.u16", 60000, "UINT16"), ("t.i16", -30000, "INT16"),
    ("t.u32", 4_000_000_000, "UINT32"), ("t.i32", -2_000_000_000, "INT32"), ("t.f32", -0.375, "FLOAT32"),
    ("t.bool", True, "BOOL"), ("t.str", "héllo 🌍 wörld", "STRING"), ("t.u64", 2**63 + 5, "UINT64"),
    ("t.i64", -2**62, "INT64"), ("t.f64", 1 / 3, "FLOAT64"),
    ("t.arr_i32", [1, -2, 3], "ARRAY", "INT32"), ("t.arr_u8", [0, 255, 7], "ARRAY", "UINT8"),
    ("t.arr_f32", [0.25, -1.5, 1e30], "ARRAY", "FLOAT32"), ("t.arr_f64", [1 / 7, -2.0], "ARRAY", "FLOAT64"),
    ("t.arr_bool", [True, False, True], "ARRAY", "BOOL"), ("t.arr_str", ["a", "ß", "", "<|im_start|>"] * 3, "ARRAY",
                                                                  "STRING"),
    ("t.nested", [[1, 2], [3]], "ARRAY"),
]


def test_metadata_of_every_value_type(tmp_path):
    path = write_file(tmp_path / "meta.gguf", {}, METADATA)
    g = read_gguf(path)
    assert g.version == 3 and g.metadata["general.architecture"] == "llama"
    for key, value, *_ in METADATA:
        got = g.metadata[key]
        as_stored = np.asarray(value, np.float32).tolist() if key in ("t.f32", "t.arr_f32") else value  # f32 rounding
        assert got == as_stored and type(got) is type(value), key
    gguf = gguf_peer()
    reader = gguf.GGUFReader(str(path))  # the reference reader agrees (it flattens nested arrays, so skip those)
    for key, field in reader.fields.items():
        if not key.startswith("GGUF.") and key != "t.nested":
            assert g.metadata[key] == field.contents(), key


@pytest.mark.parametrize("type_name", SUPPORTED)
@pytest.mark.parametrize("shape", [(64,), (3, 64), (2, 3, 32), (2, 1, 2, 96)])
def test_tensors_equal_the_reference_dequantisation(tmp_path, type_name, shape):
    rng = np.random.default_rng(abs(hash((type_name, shape))) % 2**32)
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 10)).astype(np.float32)
    path = write_file(tmp_path / "t.gguf", {"w": (x, type_name), "norm": (x.reshape(-1)[:32].copy(), "F32")})
    g = read_gguf(path)
    assert_matches_reference(g, path)
    y = g.tensor("w")
    # and close to what was quantised: error at most one quantisation step of each 32-number block
    blocks, err = x.reshape(-1, 32), np.abs(y - x).reshape(-1, 32)  # (nb, 32)
    step = {"F32": 0, "F16": 1e-3, "BF16": 1e-2}.get(type_name)
    if step is not None:
        assert np.all(err <= step * np.abs(blocks) + 1e-6)
    else:
        span = {"Q8_0": np.abs(blocks).max(1) / 127, "Q4_0": np.abs(blocks).max(1) / 8,
                "Q4_1": (blocks.max(1) - blocks.min(1)) / 15}[type_name]
        assert np.all(err <= span[:, None] * 1.01 + 1e-6)


def test_hand_worked_blocks():
    # Q8_0: d = 0.5, q = -128..127 stepping -> x = d*q
    q8 = np.array([-128, -3, 0, 1, 127] + [2] * 27, np.int8)
    raw = np.frombuffer(np.float16(0.5).tobytes() + q8.tobytes(), np.uint8)
    assert dequantize(raw, "Q8_0").tolist() == [-64.0, -1.5, 0.0, 0.5, 63.5] + [1.0] * 27
    # Q4_0: d = 2, byte j holds low nibble j and high nibble 15-j -> x[j] = 2(j-8), x[j+16] = 2(7-j)
    nibbles = bytes(j | (15 - j) << 4 for j in range(16))
    raw = np.frombuffer(np.float16(2.0).tobytes() + nibbles, np.uint8)
    assert dequantize(raw, "Q4_0").tolist() == [2.0 * (j - 8) for j in range(16)] + [2.0 * (7 - j) for j in range(16)]
    # Q4_1: d = 0.25, m = -1 -> x[j] = j/4 - 1, x[j+16] = (15-j)/4 - 1
    raw = np.frombuffer(np.float16(0.25).tobytes() + np.float16(-1.0).tobytes() + nibbles, np.uint8)
    assert dequantize(raw, "Q4_1").tolist() == [j / 4 - 1 for j in range(16)] + [(15 - j) / 4 - 1 for j in range(16)]
    # BF16: the top half of a float32
    raw = np.frombuffer(np.array([1.5, -2.75], np.float32).view(np.uint16)[1::2].tobytes(), np.uint8)
    assert dequantize(raw, "BF16").tolist() == [1.5, -2.75]


def test_type_table_agrees_with_ggml():
    gguf = gguf_peer()
    for type_id, (name, block, size) in GGML_TYPES.items():
        qtype = gguf.GGMLQuantizationType(type_id)
        assert qtype.name == name and gguf.GGML_QUANT_SIZES[qtype] == (block, size), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_files(tmp_path, data):
    """Any mix of supported types and shapes, written by the reference writer, reads back as the reference does."""
    n = data.draw(st.integers(1, 4))
    tensors = {}
    for i in range(n):
        type_name = data.draw(st.sampled_from(SUPPORTED))
        dims = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
        shape = (*dims, 32 * data.draw(st.integers(1, 3)))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        tensors[f"blk.{i}.w"] = ((rng.standard_normal(shape) * 3).astype(np.float32), type_name)
    alignment = data.draw(st.sampled_from([None, 8, 64, 256]))
    path = write_file(Path(tempfile.mkdtemp(dir=tmp_path)) / "r.gguf", tensors, alignment=alignment)
    g = read_gguf(path)
    assert g.alignment == (alignment or 32)
    assert all((info.offset - g.data_start) % g.alignment == 0 for info in g.tensor_infos.values())
    assert_matches_reference(g, path)


def test_version_2_files_read_the_same(tmp_path):
    x = np.random.default_rng(5).standard_normal((2, 64)).astype(np.float32)
    path = write_file(tmp_path / "v3.gguf", {"w": (x, "Q4_1")}, METADATA[:3])
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 2)
    (tmp_path / "v2.gguf").write_bytes(raw)
    v2, v3 = read_gguf(tmp_path / "v2.gguf"), read_gguf(path)
    assert (v2.version, v3.version) == (2, 3)
    assert v2.metadata == v3.metadata
    np.testing.assert_array_equal(v2.tensor("w"), v3.tensor("w"))
    assert_matches_reference(v2, tmp_path / "v2.gguf")


def test_unsupported_types_open_but_refuse_to_dequantise(tmp_path):
    gguf = gguf_peer()
    w = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "llama")
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((2, 144), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.add_tensor("ok", np.ones(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    g = read_gguf(tmp_path / "k.gguf")
    assert g.tensor_infos["blk.0.ffn_up.weight"].shape == (2, 256)
    assert g.tensor("ok").tolist() == [1.0] * 4
    with pytest.raises(CheckpointError, match=r"'blk\.0\.ffn_up\.weight'.*Q4_K"):
        g.tensor("blk.0.ffn_up.weight")
    with pytest.raises(CheckpointError, match="no tensor named 'nope'"):
        g.tensor("nope")
    assert g.raw("blk.0.ffn_up.weight").shape == (288,)


# -- broken files ----------------------------------------------------------------------------------------------------

@pytest.fixture
def sample(tmp_path) -> bytes:
    rng = np.random.default_rng(7)
    tensors = {"tok.weight": (rng.standard_normal((4, 64)).astype(np.float32), "Q8_0"),
               "blk.weird": (rng.standard_normal((2, 32)).astype(np.float32), "F32")}
    meta = [("t.aaa", 1, "UINT32"), ("t.aab", 2, "UINT32"), ("t.name", "hello", "STRING"),
            ("t.arr_str", ["x", "yy", "zzz"] * 20, "ARRAY", "STRING")]
    return write_file(tmp_path / "sample.gguf", tensors, meta).read_bytes()


def refuse(tmp_path, raw: bytes | bytearray, *words: str) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "bad.gguf"
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as info:
        read_gguf(path)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def patched(raw: bytes, at: int, fmt: str, value) -> bytearray:
    out = bytearray(raw)
    struct.pack_into(fmt if fmt[0] in "<>" else "<" + fmt, out, at, value)
    return out


def info_position(raw: bytes, name: bytes) -> int:
    """Where the tensor info of `name` continues after its name (n_dims u32, dims u64..., type u32, offset u64)."""
    return raw.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)


def test_truncations_name_what_was_being_read(tmp_path, sample):
    refuse(tmp_path, sample[:10], "too short")
    refuse(tmp_path, sample[: sample.index(b"t.arr_str") + 30], "'t.arr_str'")
    refuse(tmp_path, sample[: sample.index(b"t.name") + 8], "'t.name'")
    refuse(tmp_path, sample[: info_position(sample, b"blk.weird") + 6], "'blk.weird'")
    refuse(tmp_path, sample[:-100], "'blk.weird'", "truncated")
    for n in range(0, len(sample), 37):  # every cut anywhere is refused with our error, never another exception
        refuse(tmp_path, sample[:n])


def test_corrupt_headers_name_the_field(tmp_path, sample):
    refuse(tmp_path, b"GGML" + sample[4:], "not a GGUF file")
    refuse(tmp_path, patched(sample, 4, "I", 1), "version 1")
    refuse(tmp_path, patched(sample, 4, "I", 7), "version 7")
    refuse(tmp_path, patched(sample, 4, ">I", 3), "big-endian")
    refuse(tmp_path, patched(sample, 8, "Q", 2**40), "of tensor #")  # an absurd tensor count
    key = sample.index(b"t.aab")
    refuse(tmp_path, patched(sample, key + 5, "I", 99), "'t.aab'", "unknown value type 99")
    refuse(tmp_path, sample[:key] + b"t.aaa" + sample[key + 5 :], "'t.aaa' appears twice")
    name = sample.index(b"hello")
    refuse(tmp_path, sample[:name] + b"\xff" + sample[name + 1 :], "'t.name'", "UTF-8")
    arr = sample.index(b"t.arr_str") + len(b"t.arr_str") + 4
    refuse(tmp_path, patched(sample, arr, "I", 77), "'t.arr_str'", "unknown value type 77")
    at = info_position(sample, b"blk.weird")  # n_dims=2, dims 32, 2, type, offset
    refuse(tmp_path, patched(sample, at, "I", 9), "'blk.weird'", "9 dims")
    refuse(tmp_path, patched(sample, at + 20, "I", 99), "'blk.weird'", "unknown ggml type id 99")
    refuse(tmp_path, patched(sample, at + 4, "Q", 2**33), "'blk.weird'", "truncated")
    (offset,) = struct.unpack_from("<Q", sample, at + 24)
    refuse(tmp_path, patched(sample, at + 24, "Q", offset + 4), "'blk.weird'", "alignment")
    refuse(tmp_path, patched(sample, at + 24, "Q", 0), "overlaps", "'tok.weight'")
    tok = info_position(sample, b"tok.weight")
    refuse(tmp_path, patched(sample, tok + 4, "Q", 48), "'tok.weight'", "block size 32")


def test_bad_alignment_is_refused(tmp_path):
    raw = write_file(tmp_path / "a.gguf", {"w": (np.ones(32, np.float32), "F32")}, alignment=64).read_bytes()
    at = raw.index(b"general.alignment") + len(b"general.alignment") + 4  # past the key and its value type
    refuse(tmp_path, patched(raw, at, "I", 48), "'general.alignment'", "power of two")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_random_header_corruption_never_escapes_as_another_exception(tmp_path, sample, flips):
    raw = bytearray(sample)
    header_end = read_gguf_bytes_header_end(sample)
    for pos, value in flips:
        raw[pos % header_end] = value
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "fuzz.gguf"
    path.write_bytes(bytes(raw))
    try:
        g = read_gguf(path)
        for name in g.tensor_infos:
            g.tensor(name)
    except CheckpointError:
        pass


def read_gguf_bytes_header_end(raw: bytes) -> int:
    return raw.index(b"blk.weird") + len(b"blk.weird") + 4 + 16 + 4 + 8


# -- the real model --------------------------------------------------------------------------------------------------

def test_real_smollm2_file_matches_the_reference_reader():
    gguf = gguf_peer()
    path = smollm2_gguf()
    g = read_gguf(path)
    reader = gguf.GGUFReader(str(path))
    for key, field in reader.fields.items():
        if not key.startswith("GGUF."):
            assert g.metadata[key] == field.contents(), key
    assert len(g.metadata) == len(reader.fields) - 3  # GGUF.version/tensor_count/kv_count are the header
    assert (g.metadata["llama.attention.head_count"], g.metadata["llama.attention.head_count_kv"]) == (9, 3)
    by_name = {t.name: t for t in reader.tensors}
    assert list(g.tensor_infos) == list(by_name)
    for name, info in g.tensor_infos.items():
        t = by_name[name]
        assert (info.shape, info.type_name, info.offset) == (tuple(int(d) for d in reversed(t.shape)),
                                                             t.tensor_type.name, t.data_offset), name
    chosen = ["token_embd.weight", "blk.0.attn_q.weight", "blk.15.attn_k.weight", "blk.29.ffn_down.weight",
              "output_norm.weight", "blk.3.ffn_norm.weight"]
    assert {g.tensor_infos[n].type_name for n in chosen} == {"Q8_0", "Q4_1", "F32"}
    for name in chosen:
        t = by_name[name]
        x = g.tensor(name)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, gguf.quants.dequantize(t.data, t.tensor_type).reshape(x.shape), name)


@given(st.floats(min_value=2.0 ** -40, max_value=1.0, allow_nan=False, width=32))
def test_gguf_epsilon_reads_back_as_the_decimal_written(x):
    from minichat.model.checkpoint import _decimal32

    assert np.float32(_decimal32(x)) == np.float32(x)  # the same float32: nothing the model computes changes
    for eps in (1e-5, 1e-6, 1e-8, 3e-7):
        assert _decimal32(float(np.float32(eps))) == eps  # what GGUF stores for eps comes back as eps
