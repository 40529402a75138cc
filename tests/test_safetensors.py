"""The hand-written safetensors reader/writer against the `safetensors` package, and its refusals of broken files.

References: files written by `safetensors.numpy.save_file` (and torch for bfloat16) are read by ours; files written by
ours are read by `safetensors.numpy.load_file`; every corrupt file we refuse, the package refuses too.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import require_peer
from minichat.errors import CheckpointError
from minichat.model.safetensors import read_safetensors, read_safetensors_metadata, write_safetensors

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.bool_]


def sample_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "h.0.attn.c_attn.weight": rng.standard_normal((8, 24)).astype(np.float32),
        "h.0.ln_1.bias": rng.standard_normal(8).astype(np.float16),
        "wpe": rng.standard_normal((3, 2, 5)).astype(np.float64),
        "ids": rng.integers(-2**40, 2**40, (7,), dtype=np.int64),
        "small": rng.integers(0, 255, (2, 3), dtype=np.uint8),
        "mask": rng.random((4, 4)) < 0.5,
        "scalar": np.array(3, np.int32),
        "empty": np.zeros((0, 5), np.float32),
    }


def assert_same(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert set(ours) == set(reference)
    for name in reference:
        assert ours[name].dtype == reference[name].dtype, name
        assert ours[name].shape == reference[name].shape, name
        np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)


def test_reads_files_written_by_the_safetensors_package(tmp_path):
    st_numpy = require_peer("safetensors.numpy")
    tensors = sample_tensors(np.random.default_rng(0))
    st_numpy.save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "np", "note": "ünïcode"})
    assert_same(read_safetensors(tmp_path / "ref.safetensors"), tensors)
    assert read_safetensors_metadata(tmp_path / "ref.safetensors") == {"format": "np", "note": "ünïcode"}


def test_files_we_write_are_read_by_the_safetensors_package(tmp_path):
    st_numpy = require_peer("safetensors.numpy")
    safetensors = require_peer("safetensors")
    tensors = sample_tensors(np.random.default_rng(1))
    write_safetensors(tmp_path / "ours.safetensors", tensors, metadata={"format": "minichat"})
    assert_same(st_numpy.load_file(tmp_path / "ours.safetensors"), tensors)
    with safetensors.safe_open(tmp_path / "ours.safetensors", framework="numpy") as f:
        assert f.metadata() == {"format": "minichat"}
    assert_same(read_safetensors(tmp_path / "ours.safetensors"), tensors)  # and our own round trip
    assert read_safetensors_metadata(tmp_path / "ours.safetensors") == {"format": "minichat"}


def test_header_is_padded_to_8_bytes_and_tensors_are_read_only_views(tmp_path):
    write_safetensors(tmp_path / "x.safetensors", {"a": np.arange(3, dtype=np.float32)})
    raw = (tmp_path / "x.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and raw[8 + n - 1 : 8 + n].strip() in (b"}", b"")
    t = read_safetensors(tmp_path / "x.safetensors")["a"]
    assert not t.flags.writeable  # a view into the memory map, not a copy
    assert read_safetensors_metadata(tmp_path / "x.safetensors") == {}


def test_bfloat16_written_by_torch_reads_as_exact_float32(tmp_path):
    torch = require_peer("torch")
    st_torch = require_peer("safetensors.torch")
    torch.manual_seed(0)
    x = (torch.randn(6, 10) * 100).to(torch.bfloat16)
    st_torch.save_file({"w": x}, str(tmp_path / "bf16.safetensors"))
    w = read_safetensors(tmp_path / "bf16.safetensors")["w"]
    assert w.dtype == np.float32 and w.shape == (6, 10)
    np.testing.assert_array_equal(w, x.float().numpy())  # widening bf16 -> f32 is exact


def test_big_endian_input_is_stored_little_endian(tmp_path):
    st_numpy = require_peer("safetensors.numpy")
    x = np.arange(6, dtype=">f4").reshape(2, 3)
    write_safetensors(tmp_path / "be.safetensors", {"x": x})
    back = st_numpy.load_file(tmp_path / "be.safetensors")["x"]
    np.testing.assert_array_equal(back, x)
    assert back.dtype == np.float32


arrays = st.sampled_from(DTYPES).flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4,
                                                                                         min_side=0, max_side=4)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tensors=st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda s: s != "__metadata__"), arrays,
                               max_size=5))
def test_round_trips_with_the_package_for_any_shapes_and_dtypes(tmp_path, tensors):
    st_numpy = require_peer("safetensors.numpy")
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # fresh files per example: never rewrite a mapped file
    ours, ref = folder / "ours.safetensors", folder / "ref.safetensors"
    write_safetensors(ours, tensors)
    assert_same(st_numpy.load_file(ours), tensors)
    st_numpy.save_file(tensors, ref)
    assert_same(read_safetensors(ref), tensors)


# -- broken files: we refuse each one naming the culprit, and so does the reference package -------------------------

def raw_file(header: dict, data: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


GOOD_HEADER = {"__metadata__": {"k": "v"},
               "alpha": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
               "beta": {"dtype": "I64", "shape": [3], "data_offsets": [16, 40]}}
GOOD_DATA = bytes(range(40))


def with_entry(name: str, **changes) -> dict:
    header = json.loads(json.dumps(GOOD_HEADER))
    header[name].update(changes)
    return header


CORRUPT = {
    "too short": (b"\x05\x00\x00", ["too short"]),
    "header length beyond the file": (raw_file(GOOD_HEADER, GOOD_DATA, length=10**6), ["header length"]),
    "not JSON": ((5).to_bytes(8, "little") + b"{oops", ["JSON"]),
    "JSON list": (raw_file([], b""), ["not an object"]),  # type: ignore[arg-type]
    "truncated data": (raw_file(GOOD_HEADER, GOOD_DATA[:30]), ["'beta'", "out of range"]),
    "unknown dtype": (raw_file(with_entry("alpha", dtype="Q4"), GOOD_DATA), ["'alpha'", "'Q4'"]),
    "shape does not match bytes": (raw_file(with_entry("beta", shape=[4]), GOOD_DATA), ["'beta'", "needs 32 bytes"]),
    "negative shape": (raw_file(with_entry("beta", shape=[-3]), GOOD_DATA), ["'beta'", "shape"]),
    "overlapping": (raw_file(with_entry("beta", dtype="F32", shape=[4], data_offsets=[8, 24]),
                             GOOD_DATA[:24]), ["'beta'", "overlaps", "'alpha'"]),
    "hole": (raw_file(with_entry("beta", dtype="I32", shape=[5], data_offsets=[20, 40]), GOOD_DATA),
             ["unclaimed", "'beta'"]),
    "trailing bytes": (raw_file(GOOD_HEADER, GOOD_DATA + b"\x00" * 8), ["trailing"]),
    "missing field": (raw_file({"alpha": {"dtype": "F32", "shape": [4]}}, GOOD_DATA[:16]), ["'alpha'",
                                                                                             "data_offsets"]),
    "metadata not strings": (raw_file({**GOOD_HEADER, "__metadata__": {"k": 1}}, GOOD_DATA), ["__metadata__"]),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_files_raise_checkpoint_error_naming_the_culprit(tmp_path, case):
    raw, words = CORRUPT[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as info:
        read_safetensors(path)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    st_numpy = require_peer("safetensors.numpy")
    with pytest.raises(Exception):  # the reference refuses the same file
        st_numpy.load_file(path)


def test_the_good_file_of_the_corruption_cases_is_fine(tmp_path):
    st_numpy = require_peer("safetensors.numpy")
    path = tmp_path / "good.safetensors"
    path.write_bytes(raw_file(GOOD_HEADER, GOOD_DATA))
    assert_same(read_safetensors(path), st_numpy.load_file(path))
    assert read_safetensors(path)["beta"].tolist() == np.frombuffer(GOOD_DATA[16:], "<i8").tolist()


def test_every_truncation_of_a_real_file_is_refused(tmp_path):
    write_safetensors(tmp_path / "x.safetensors", sample_tensors(np.random.default_rng(2)), {"a": "b"})
    raw = (tmp_path / "x.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    for n in range(0, len(raw), 7):
        cut.write_bytes(raw[:n])
        with pytest.raises(CheckpointError):
            read_safetensors(cut)


@pytest.mark.parametrize("tensors, metadata, word", [
    ({"x": np.array(["a"], dtype=object)}, None, "dtype"),
    ({"x": np.zeros(2, np.complex64)}, None, "dtype"),
    ({"__metadata__": np.zeros(2)}, None, "reserved"),
    ({"x": np.zeros(2)}, {"k": 3}, "str to str"),
])
def test_writer_refuses_what_the_format_cannot_hold(tmp_path, tensors, metadata, word):
    with pytest.raises(ValueError, match=word):
        write_safetensors(tmp_path / "x.safetensors", tensors, metadata)
